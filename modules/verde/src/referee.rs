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
    let mut tensors = Vec::with_capacity(node.inputs.len());
    let mut batch = None;
    for (i, inp) in node.inputs.iter().enumerate() {
        let tensor = match inp {
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
                    batch = Some(b.map_err(|e| VerdeError::Referee(e.to_string()))?);
                }
                batch
                    .as_ref()
                    .and_then(|b| b.get(name))
                    .cloned()
                    .ok_or_else(|| VerdeError::Referee(format!("no batch tensor {name}")))?
            }
            _ => {
                let bytes = uploads.get(i).map(Vec::as_slice).unwrap_or_default();
                tensor_from(&node.input_shapes[i], bytes)?
            }
        };
        tensors.push(tensor);
    }
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
