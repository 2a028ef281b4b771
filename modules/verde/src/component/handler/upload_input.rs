//! `MsgUploadInput`: the solver uploads node `j`'s inputs in full-size
//! chunks. Each chunk is stored once under its own key (never rewritten) and
//! deleted when the dispute ends; a completed input must hash to its
//! commitment (a state tensor against `h_lo`, an earlier node's output
//! against the solver's op root).
use framework::{BlockCtx, StateWrite};

use crate::component::game::adjudicate;
use crate::component::state::{VerdeRead, VerdeWrite};
use crate::dispute::{Dispute, Phase, Turn};
use crate::error::{Result, VerdeError};
use crate::msg::MsgUploadInput;
use crate::proof::{check_input_hash, disputed_node, tensor_from};
use crate::state_key;

pub fn execute<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    m: &MsgUploadInput,
) -> Result<()> {
    let mut d = s.active(ctx, m.dispute_id, Phase::Reveal, &m.solver)?;
    let p = s.verde_params()?;
    let len = m.data.len() as u64;
    if len > p.max_chunk_bytes {
        return Err(VerdeError::BadUpload(format!(
            "chunk is {len} bytes, the limit is {}",
            p.max_chunk_bytes
        )));
    }
    let input = m.input;
    let u = d
        .inputs
        .get_mut(input as usize)
        .ok_or_else(|| VerdeError::BadUpload(format!("node has no input {input}")))?;
    if u.complete {
        return Err(VerdeError::BadUpload(format!(
            "input {input} is already complete"
        )));
    }
    if m.offset != u.uploaded_bytes {
        return Err(VerdeError::BadUpload(format!(
            "offset {}, expected {}",
            m.offset, u.uploaded_bytes
        )));
    }
    // Every chunk but the last is full-size, so the number of moves (each
    // of which restarts the clock) is bounded by the input size.
    let remaining = u.expected_bytes.saturating_sub(u.uploaded_bytes);
    if len < remaining.min(p.max_chunk_bytes) {
        return Err(VerdeError::BadUpload(format!(
            "chunk is {len} bytes; it must be {} (full-size chunks except the last)",
            remaining.min(p.max_chunk_bytes)
        )));
    }
    if len > remaining {
        return Err(VerdeError::BadUpload(format!(
            "input {input} is {} bytes; this chunk overflows it",
            u.expected_bytes
        )));
    }
    s.put_raw(
        state_key::upload_chunk(d.id, input, m.offset),
        m.data.clone(),
    );
    u.uploaded_bytes += len;
    let complete = u.uploaded_bytes == u.expected_bytes;
    if complete {
        check_input(s, &mut d, input as usize, m)?;
    }
    let note = format!(
        "upload input {input} at {} ({len} bytes){}",
        m.offset,
        if complete { ", proven" } else { "" }
    );
    d.record(ctx.height, "solver", note);
    if d.inputs.iter().all(|u| u.complete) {
        return adjudicate(s, ctx, &mut d);
    }
    // Progress restarts the clock.
    s.next_move(ctx, &mut d, Phase::Reveal, Turn::Solver)
}

/// A completed upload must hash to its commitment.
fn check_input<S: StateWrite + ?Sized>(
    s: &mut S,
    d: &mut Dispute,
    i: usize,
    m: &MsgUploadInput,
) -> Result<()> {
    let (_, _, node) = disputed_node(s, d.task_id, d.node)?;
    let bytes = s.uploaded(d.id, i as u32)?;
    let tensor = tensor_from(&node.input_shapes[i], &bytes)?;
    let th = repops::tensor_hash(&tensor);
    let pr = m
        .proof
        .as_ref()
        .ok_or_else(|| VerdeError::BadProof("input proof: missing".into()))?;
    check_input_hash(s, d, i, &th, pr)?;
    d.inputs[i].tensor_hash = Some(th);
    d.inputs[i].complete = true;
    Ok(())
}
