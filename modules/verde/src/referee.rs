//! The referee: the one place consensus computes with floats, through
//! `train::execute_node` on the CPU RepOps reference. Its work is bounded at
//! submission (`max_referee_flops`, `max_reveal_bytes`).
use std::collections::BTreeMap;

use crate::dispute::Dispute;
use crate::error::{Result, VerdeError};
use crate::proof::{builtin_dataset, tensor_from};

/// The referee's verdict on node `d.node`: whether the solver's output hash
/// is right, why, and the referee's own output hash (hex).
pub struct Judgement {
    pub solver_right: bool,
    pub reason: String,
    pub output: String,
}

/// Runs the disputed node on its proven inputs. `uploads[i]` are input `i`'s
/// bytes (empty for batch inputs); `rows` the proven dataset rows.
pub fn judge(
    t: &tasks::Task,
    prog: &train::Program,
    node: &train::Node,
    d: &Dispute,
    uploads: &[Vec<u8>],
    rows: &BTreeMap<u64, Vec<u8>>,
) -> Result<Judgement> {
    let mut batch = None;
    let tensors = (0..node.inputs.len())
        .map(|i| input_tensor(t, prog, node, d, uploads, rows, &mut batch, i))
        .collect::<Result<Vec<_>>>()?;
    let refs: Vec<&repops::Tensor> = tensors.iter().collect();
    Ok(match train::execute_node(node, &refs) {
        Ok(out) => {
            let h = repops::tensor_hash(&out);
            let right = h.as_slice() == d.solver_output.as_slice();
            Judgement {
                solver_right: right,
                reason: format!(
                    "the referee's output of node {} {} the solver's",
                    d.node,
                    if right { "matches" } else { "differs from" }
                ),
                output: hex::encode(h),
            }
        }
        Err(e) => Judgement {
            solver_right: false,
            reason: format!(
                "node {} cannot be computed from the proven inputs: {e}",
                d.node
            ),
            output: String::new(),
        },
    })
}

/// Node `d.node`'s input `i`: a batch tensor rebuilt from the dataset (once per
/// node, into `batch`), else the uploaded bytes as a tensor of the input's shape.
#[allow(clippy::too_many_arguments)]
fn input_tensor(
    t: &tasks::Task,
    prog: &train::Program,
    node: &train::Node,
    d: &Dispute,
    uploads: &[Vec<u8>],
    rows: &BTreeMap<u64, Vec<u8>>,
    batch: &mut Option<BTreeMap<String, repops::Tensor>>,
    i: usize,
) -> Result<repops::Tensor> {
    match &node.inputs[i] {
        train::Input::Batch(name) => {
            if batch.is_none() {
                let b = match builtin_dataset(prog) {
                    Ok(ds) => train::batch_for_step(prog, &ds, d.hi),
                    Err(_) => train::batch_from_rows(
                        prog,
                        t.dataset.schema,
                        t.dataset.row_bytes,
                        d.hi,
                        |r| rows.get(&r).map(|v| v.as_slice()),
                    ),
                };
                *batch = Some(b.map_err(|e| VerdeError::Referee(e.to_string()))?);
            }
            batch
                .as_ref()
                .and_then(|b| b.get(name))
                .cloned()
                .ok_or_else(|| VerdeError::Referee(format!("no batch tensor {name}")))
        }
        _ => {
            let bytes = uploads.get(i).map(Vec::as_slice).unwrap_or_default();
            tensor_from(&node.input_shapes[i], bytes)
        }
    }
}

/// The referee's verdict inside node `d.node` (the game's last level): its tile
/// recomputed from the proven slices (`uploads[i]`: input `i`'s slice values; batch
/// inputs rebuilt whole and sliced here) from the agreed fold state `acc_lo`. The
/// solver is right iff its state at the tile's end (`acc_hi` in a fold, else its
/// element) is the referee's, bit for bit.
pub fn judge_tile(
    t: &tasks::Task,
    prog: &train::Program,
    node: &train::Node,
    d: &Dispute,
    uploads: &[Vec<u8>],
    rows: &BTreeMap<u64, Vec<u8>>,
) -> Result<Judgement> {
    use repops::tile;
    let shapes: Vec<&[usize]> = node.input_shapes.iter().map(Vec::as_slice).collect();
    let e = d.inner.element as usize;
    let fold = tile::fold(&node.op, &shapes);
    let k = if fold.is_some() {
        d.inner.fold_lo as usize..d.inner.fold_hi as usize
    } else {
        0..0
    };
    let ref_err = |e: repops::RepOpsError| VerdeError::Referee(e.to_string());
    let tl = tile::element_tile(&node.op, &shapes, e, k.clone()).map_err(ref_err)?;
    let ranges = tile::input_ranges(&node.op, &shapes, &tl).map_err(ref_err)?;
    let mut batch = None;
    let mut values = Vec::with_capacity(ranges.len());
    for (i, r) in ranges.iter().enumerate() {
        values.push(match &node.inputs[i] {
            train::Input::Batch(_) => {
                let b = input_tensor(t, prog, node, d, uploads, rows, &mut batch, i)?;
                tile::gather(&[&b], std::slice::from_ref(r))
                    .map_err(ref_err)?
                    .remove(0)
            }
            _ => {
                let bytes = uploads.get(i).map(Vec::as_slice).unwrap_or_default();
                crate::dispute::bits_from_le(bytes)
                    .ok_or_else(|| VerdeError::BadUpload("slice values: whole f32s".into()))?
                    .into_iter()
                    .map(f32::from_bits)
                    .collect()
            }
        });
    }
    let acc: Option<Vec<f32>> =
        fold.map(|_| d.inner.acc_lo.iter().map(|&b| f32::from_bits(b)).collect());
    let claimed: Vec<u32> = match fold {
        Some(_) => d.inner.acc_hi.clone(),
        None => d.inner.solver_value.into_iter().collect(),
    };
    let what = match fold {
        Some(_) => format!(
            "output element {e}'s fold state at step {} from step {}",
            k.end, k.start
        ),
        None => format!("output element {e}"),
    };
    Ok(
        match tile::element_state(&node.op, &shapes, e, k, &values, acc.as_deref()) {
            Ok(state) => {
                let bits: Vec<u32> = state.iter().map(|v| v.to_bits()).collect();
                let right = bits == claimed;
                Judgement {
                    solver_right: right,
                    reason: format!(
                        "the referee's {what} of node {} {} the solver's",
                        d.node,
                        if right { "matches" } else { "differs from" }
                    ),
                    output: hex::encode(crate::dispute::bits_to_le(&bits)),
                }
            }
            Err(err) => Judgement {
                solver_right: false,
                reason: format!(
                    "the {what} of node {} cannot be computed from the proven slices: {err}",
                    d.node
                ),
                output: String::new(),
            },
        },
    )
}
