//! End block (after `tasks`): every swarm whose check is due looks at its round's
//! tasks and moves on (`round::advance`), then checks again `check_blocks` later.
use framework::{take_due, BlockCtx, Delta, Layered, StateWrite};

use crate::component::round::advance;
use crate::component::state::{SwarmRead, SwarmWrite};
use crate::error::Result;
use crate::state_key;
use framework::StateWriteExt;

/// Checks handled per block at most; the rest stay due for the next block.
const MAX_CHECKS_PER_BLOCK: usize = 64;

pub fn end_block<S: StateWrite + ?Sized>(s: &mut S, ctx: &BlockCtx) -> Result<()> {
    let every = s.swarm_params()?.check_blocks.max(1);
    let due = take_due(s, state_key::CHECK_PREFIX, ctx.height, MAX_CHECKS_PER_BLOCK)?;
    let mut seen = Vec::new();
    for e in due {
        let Some(id) = <[u8; 8]>::try_from(e.rest.as_slice())
            .ok()
            .map(u64::from_be_bytes)
        else {
            continue;
        };
        // One look per swarm per block, however many checks were queued.
        if seen.contains(&id) {
            continue;
        }
        seen.push(id);
        // Each swarm moves on in its own delta: one whose round cannot move
        // (an error, the same on every node) changes nothing and is looked at
        // again later, without holding up the other swarms.
        let mut d = Delta::default();
        let r = {
            let mut l = Layered::new(&*s, &mut d);
            advance(&mut l, ctx, id)
        };
        match r {
            Ok(false) => apply(s, d),
            Ok(true) => {
                apply(s, d);
                s.schedule_check(ctx.height.saturating_add(every), id);
            }
            Err(e) => {
                s.emit_typed(&crate::event::EventSwarmStalled {
                    swarm_id: id,
                    error: e.to_string(),
                });
                s.schedule_check(ctx.height.saturating_add(every), id);
            }
        }
    }
    Ok(())
}

fn apply<S: StateWrite + ?Sized>(s: &mut S, d: Delta) {
    for (k, v) in d.writes {
        match v {
            Some(v) => s.put_raw(k, v),
            None => s.delete(k),
        }
    }
    for e in d.events {
        s.emit(e);
    }
}
