//! `MsgRevealEvalSeed`: the creator reveals the next link of its seed chain
//! (SHA-256 of it is the swarm's current head); the link becomes the head and
//! the round's evaluations start from the seed it draws.
use framework::{BlockCtx, StateWrite};

use crate::component::round::{revealed_seed, start_evaluation};
use crate::component::state::{SwarmRead, SwarmWrite};
use crate::error::{Result, SwarmError};
use crate::msg::{sha256, MsgRevealEvalSeed};
use crate::swarm::Phase;

pub fn execute<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    m: &MsgRevealEvalSeed,
) -> Result<()> {
    let mut sw = s.swarm(m.swarm_id)?;
    let bad = |w: String| Err(SwarmError::BadReveal(w));
    if m.creator != sw.creator {
        return bad(format!(
            "only the swarm's creator {} reveals its seed",
            sw.creator
        ));
    }
    let Some(head) = sw.seed_chain else {
        return bad("the swarm has no seed chain".into());
    };
    let mut r = s.round(sw.id, sw.round)?;
    if sw.done || m.round != r.round || r.phase != Phase::Seeding {
        return Err(SwarmError::WrongPhase {
            swarm: sw.id,
            round: r.round,
            phase: r.phase.name(),
            why: format!("round {} is not waiting for its seed", m.round),
        });
    }
    if sha256(&m.secret) != head {
        return bad("SHA-256 of the secret is not the seed chain's head".into());
    }
    sw.seed_chain = Some(m.secret);
    r.seed_revealed = true;
    let seed = revealed_seed(&m.secret, &sw, &r);
    start_evaluation(s, ctx, &mut sw, &mut r, seed)?;
    s.put_round(&r);
    s.put_swarm(&sw);
    Ok(())
}
