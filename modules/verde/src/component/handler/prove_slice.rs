//! `MsgProveSlice`: the solver proves the slice of node `j`'s input `i` that the
//! referee's tile reads: the input's tensor hash against its commitment (as a whole
//! upload's would be), then the slice against that hash. The values are stored once
//! and deleted when the dispute ends; the tile is judged once every input is in.
use framework::{BlockCtx, StateWrite};

use crate::component::inner;
use crate::component::state::VerdeWrite;
use crate::dispute::{Phase, Source};
use crate::error::{Result, VerdeError};
use crate::msg::MsgProveSlice;
use crate::proof::check_input_hash;
use crate::state_key;

pub fn execute<S: StateWrite + ?Sized>(s: &mut S, ctx: &BlockCtx, m: &MsgProveSlice) -> Result<()> {
    let mut d = s.active(ctx, m.dispute_id, Phase::TileInputs, &m.solver)?;
    let i = m.input as usize;
    let u = d
        .inputs
        .get(i)
        .ok_or_else(|| VerdeError::BadUpload(format!("node has no input {i}")))?;
    if u.complete {
        return Err(VerdeError::BadUpload(format!(
            "input {i} is already proven"
        )));
    }
    if matches!(u.source, Source::Batch(_)) {
        return Err(VerdeError::BadUpload(
            "batch inputs are rebuilt by the referee".into(),
        ));
    }
    check_input_hash(s, &d, i, &m.tensor_hash, &m.proof)?;
    let (node, ranges) = inner::tile_ranges(s, &d)?;
    let vals =
        repops::slice::verify_ranges(&m.tensor_hash, &node.input_shapes[i], &ranges[i], &m.slice)
            .map_err(|e| VerdeError::BadProof(format!("input {i}'s slice: {e}")))?;
    let bytes: Vec<u8> = vals
        .iter()
        .flatten()
        .flat_map(|v| v.to_bits().to_le_bytes())
        .collect();
    let n = bytes.len() as u64;
    s.put_raw(state_key::upload_chunk(d.id, m.input, 0), bytes);
    let u = &mut d.inputs[i];
    u.uploaded_bytes = n;
    u.tensor_hash = Some(m.tensor_hash);
    u.complete = true;
    d.record(
        ctx.height,
        "solver",
        format!(
            "prove input {i}'s slice ({n} bytes of values, {} on chain)",
            m.slice.len_bytes()
        ),
    );
    inner::inputs_progress(s, ctx, &mut d)
}
