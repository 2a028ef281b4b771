//! Read-only views: the escrow invariant (checked after every block in tests).
use bank::BankRead;
use framework::{Amount, StateRead};
use tasks::TasksRead;

use crate::component::state::SwarmRead;
use crate::error::{Result, SwarmError};
use crate::swarm::Phase;

/// The swarm account holds exactly what the active swarms' escrows say, plus
/// what ended tasks returned to it that their round has not looked at yet.
pub fn check_escrow<S: StateRead + ?Sized>(s: &S) -> Result<()> {
    let me = crate::module_address();
    let held = s.balance(&me)?;
    let mut owed = Amount::ZERO;
    let mut after = 0;
    loop {
        let page = s.swarms(after, 256)?;
        let Some(last) = page.last().map(|w| w.id) else {
            break;
        };
        for sw in page.iter().filter(|w| !w.done) {
            owed = owed.checked_add(sw.escrow)?;
            let r = s.round(sw.id, sw.round)?;
            let unseen: Vec<u64> = match r.phase {
                Phase::Joining | Phase::Training => r
                    .contributions
                    .iter()
                    .filter(|c| c.task_status.is_empty())
                    .map(|c| c.task_id)
                    .collect(),
                _ => r
                    .measurements()
                    .filter(|m| m.task_status.is_empty())
                    .map(|m| m.task_id)
                    .collect(),
            };
            for id in unseen {
                let t = s.task(id)?;
                if !t.status.is_open() {
                    for p in t.payouts.iter().filter(|p| p.recipient == me) {
                        owed = owed.checked_add(p.amount)?;
                    }
                }
            }
        }
        after = last;
    }
    if held != owed {
        return Err(SwarmError::EscrowMismatch(format!(
            "the swarm account holds {held}, the swarms are owed {owed}"
        )));
    }
    Ok(())
}
