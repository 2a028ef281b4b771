//! What the gRPC `Query` service returns: protobuf views of the state, with
//! the fields only queries fill (the guarantee, the summary).
use bank::BankRead;
use framework::{Address, Amount, StateRead};
use proto::tasks::v1 as pb;
use staking::{Role, StakingRead};

use crate::component::state::TasksRead;
use crate::error::{Result, TasksError};
use crate::level::guarantee;
use crate::module_address;
use crate::state_key;
use crate::stats::Stats;
use crate::task::{Status, Task};

/// A task as clients see it, with its guarantee filled in.
pub fn task_view<S: StateRead + ?Sized>(s: &S, t: &Task) -> Result<pb::Task> {
    let k = if t.verifiers.is_empty() {
        s.tasks_params()?.verifiers_per_task
    } else {
        t.verifiers.len() as u32
    };
    let mut p = t.to_proto();
    p.guarantee = guarantee(t.level, t.steps, k);
    Ok(p)
}

/// A one-paragraph summary of where a task stands, for people.
pub fn summary(t: &Task, height: u64) -> String {
    match t.status {
        Status::Open => format!("open: waiting for a solver until height {} (now {height})", t.claim_deadline),
        Status::Claimed => format!(
            "claimed by {}: training, result due by height {} (now {height})",
            t.solver().map(|a| a.to_string()).unwrap_or_default(),
            t.claim.as_ref().map_or(0, |c| c.commit_deadline)
        ),
        Status::Committed if !t.open_disputes.is_empty() => format!(
            "committed; dispute(s) {:?} open, finalization waits for them",
            t.open_disputes
        ),
        Status::Committed => format!(
            "committed: challenge window until height {} (now {height}); {} of {} selected verifiers attested",
            t.commitment.as_ref().map_or(0, |c| c.challenge_end),
            t.attestations.len(),
            t.verifiers.len()
        ),
        st if t.note.starts_with(st.name()) => t.note.clone(),
        st => format!("{}: {}", st.name(), t.note),
    }
}

/// Operator stats in address order after `after`, optionally of one role.
/// Returns the page and the key of the next one (empty at the end).
pub fn leaderboard<S: StateRead + ?Sized>(
    s: &S,
    role: Option<Role>,
    after: Option<&Address>,
    limit: usize,
) -> Result<(Vec<Stats>, Option<Address>)> {
    let prefix = state_key::STATS_PREFIX;
    let mut start = match after {
        Some(a) => [prefix, a.as_bytes(), &[0]].concat(),
        None => Vec::new(),
    };
    let mut out: Vec<Stats> = Vec::new();
    loop {
        let rows = s.prefix_raw(prefix, &start, 256)?;
        for (k, _) in &rows {
            let addr = Address::from_slice(&k[prefix.len()..])
                .ok_or_else(|| TasksError::InvalidAddress("bad stats key".into()))?;
            if let Some(want) = role {
                match s.operator(&addr)? {
                    Some(op) if op.role == want => {}
                    _ => continue,
                }
            }
            if out.len() == limit {
                let next = out.last().map(|o| o.operator);
                return Ok((out, next));
            }
            out.push(s.stats(&addr)?);
        }
        match rows.last() {
            Some((k, _)) if rows.len() == 256 => {
                start = k.clone();
                start.push(0);
            }
            _ => return Ok((out, None)),
        }
    }
}

/// The escrow invariant: the module account holds exactly the open
/// obligations (reward + fee + bond of every unfinished task).
pub fn check_escrow<S: StateRead + ?Sized>(s: &S) -> Result<Amount> {
    let mut owed = Amount::ZERO;
    for t in s.tasks(None, 0, usize::MAX)? {
        owed = owed.checked_add(t.escrow()?)?;
    }
    let held = s.balance(&module_address())?;
    if held != owed {
        return Err(TasksError::EscrowMismatch { held, owed });
    }
    Ok(owed)
}

/// The checkpoint the solver of task `id` posted for `step`, if any (kept
/// until the task ends).
pub fn posted_checkpoint<S: StateRead + ?Sized>(
    s: &S,
    id: u64,
    step: u64,
) -> Result<Option<Vec<u8>>> {
    Ok(s.get_raw(&crate::state_key::posted_checkpoint(id, step))?)
}
