//! `MsgUploadRows`: batch rows of step `hi` from a dataset the chain does not
//! hold, each proven against the dataset root; each stored once, deleted when
//! the dispute ends.
use framework::{BlockCtx, StateWrite};
use tasks::TasksRead;

use crate::component::game::adjudicate;
use crate::component::state::{VerdeRead, VerdeWrite};
use crate::dispute::{Phase, Source, Turn};
use crate::error::{Result, VerdeError};
use crate::msg::MsgUploadRows;
use crate::state_key;

pub fn execute<S: StateWrite + ?Sized>(s: &mut S, ctx: &BlockCtx, m: &MsgUploadRows) -> Result<()> {
    // Rows serve a whole node's reveal or, inside a node, its tile.
    let phase = match s.dispute(m.dispute_id)?.phase {
        Phase::TileInputs => Phase::TileInputs,
        _ => Phase::Reveal,
    };
    let mut d = s.active(ctx, m.dispute_id, phase, &m.solver)?;
    if d.rows_needed.is_empty() {
        return Err(VerdeError::BadUpload(
            "this node needs no dataset rows".into(),
        ));
    }
    if m.rows.is_empty() {
        return Err(VerdeError::BadUpload("no rows".into()));
    }
    let t = s.task(d.task_id)?;
    let info = &t.dataset;
    let chunks = info.chunks();
    for r in &m.rows {
        if d.rows_needed.binary_search(&r.row).is_err() {
            return Err(VerdeError::BadUpload(format!(
                "row {} is not in step {}'s batch",
                r.row, d.hi
            )));
        }
        if r.proof.leaf_count != chunks {
            return Err(VerdeError::BadProof(format!(
                "row proof over {} chunks, the dataset has {chunks}",
                r.proof.leaf_count
            )));
        }
        let data = train::dataset::verify_row(&t.dataset_root, info.row_bytes, info.chunk_rows, r)
            .ok_or_else(|| {
                VerdeError::BadProof(format!("row {} does not hash to the dataset root", r.row))
            })?;
        let key = state_key::row(d.id, r.row);
        if s.get_raw(&key)?.is_none() {
            s.put_raw(key, data);
            d.rows_proven += 1;
        }
    }
    let note = format!(
        "upload {} dataset rows ({} of {} proven)",
        m.rows.len(),
        d.rows_proven,
        d.rows_needed.len()
    );
    d.record(ctx.height, "solver", note);
    if d.rows_proven == d.rows_needed.len() as u64 {
        for u in &mut d.inputs {
            if matches!(u.source, Source::Batch(_)) {
                u.complete = true;
            }
        }
    }
    if phase == Phase::TileInputs {
        return crate::component::inner::inputs_progress(s, ctx, &mut d);
    }
    if d.inputs.iter().all(|u| u.complete) {
        return adjudicate(s, ctx, &mut d);
    }
    s.next_move(ctx, &mut d, Phase::Reveal, Turn::Solver)
}
