//! End block (after `tasks`): every swarm whose check is due looks at its round's
//! tasks and moves on (`round::advance`), then checks again `check_blocks` later.
use framework::{take_due, BlockCtx, StateWrite};

use crate::component::round::advance;
use crate::component::state::{SwarmRead, SwarmWrite};
use crate::error::Result;
use crate::state_key;

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
        if advance(s, ctx, id)? {
            s.schedule_check(ctx.height.saturating_add(every), id);
        }
    }
    Ok(())
}
