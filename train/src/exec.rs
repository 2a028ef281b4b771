//! Executing nodes: the referee's single-node entry point and the whole-step runner.

use crate::error::{Result, TrainError};
use crate::merkle::Hash;
use crate::program::{Input, Node};
use repops::{Backend, CpuBackend, Tensor, OP_VERSION};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Run one node on its input tensors (in the node's input order) with the CPU
/// reference. Checks the op version, the number and shapes of the inputs, and that the
/// output has the declared shape. This is what the referee calls.
pub fn execute_node(node: &Node, inputs: &[&Tensor]) -> Result<Tensor> {
    execute_node_on(&CpuBackend, node, inputs)
}

/// [`execute_node`] on another backend (a solver's GPU). Same checks; the backend must
/// return the CPU reference's bits (its conformance suite's job).
pub fn execute_node_on(backend: &dyn Backend, node: &Node, inputs: &[&Tensor]) -> Result<Tensor> {
    if node.version != OP_VERSION {
        return Err(TrainError::NodeInputs {
            node: node.index,
            detail: format!(
                "op {} version {} is not implemented (this build: {OP_VERSION})",
                node.op.name(),
                node.version
            ),
        });
    }
    if inputs.len() != node.inputs.len() {
        return Err(TrainError::NodeInputs {
            node: node.index,
            detail: format!(
                "expected {} inputs, got {}",
                node.inputs.len(),
                inputs.len()
            ),
        });
    }
    for (i, (t, want)) in inputs.iter().zip(&node.input_shapes).enumerate() {
        if t.shape() != want.as_slice() {
            return Err(TrainError::NodeInputs {
                node: node.index,
                detail: format!(
                    "input {i} ({:?}) has shape {:?}, the node declares {:?}",
                    node.inputs[i],
                    t.shape(),
                    want
                ),
            });
        }
    }
    let out = backend
        .execute(&node.op, inputs)
        .map_err(|source| TrainError::Op {
            node: node.index,
            label: node.label.clone(),
            source,
        })?;
    if out.shape() != node.shape.as_slice() {
        return Err(TrainError::NodeInputs {
            node: node.index,
            detail: format!(
                "output shape {:?} differs from declared {:?}",
                out.shape(),
                node.shape
            ),
        });
    }
    Ok(out)
}

/// Run every node in order on the CPU reference. Returns all node outputs.
pub fn run_nodes(
    nodes: &[Node],
    state: &BTreeMap<String, Tensor>,
    batch: &BTreeMap<String, Tensor>,
    on_node: impl FnMut(usize, &Tensor),
) -> Result<Vec<Tensor>> {
    run_nodes_on(&CpuBackend, nodes, state, batch, on_node)
}

/// [`run_nodes`] on `backend`.
pub fn run_nodes_on(
    backend: &dyn Backend,
    nodes: &[Node],
    state: &BTreeMap<String, Tensor>,
    batch: &BTreeMap<String, Tensor>,
    mut on_node: impl FnMut(usize, &Tensor),
) -> Result<Vec<Tensor>> {
    let outs = run_nodes_shared(backend, nodes, state, batch, |i, o| on_node(i, o))?;
    Ok(outs.into_iter().map(unshare).collect())
}

/// [`run_nodes_on`] with the outputs behind `Arc`s, so that `on_node` can hand one to
/// another thread (to hash it while the next nodes run).
pub fn run_nodes_shared(
    backend: &dyn Backend,
    nodes: &[Node],
    state: &BTreeMap<String, Tensor>,
    batch: &BTreeMap<String, Tensor>,
    on_node: impl FnMut(usize, &Arc<Tensor>),
) -> Result<Vec<Arc<Tensor>>> {
    run_nodes_altered(backend, nodes, state, batch, |_, _| Ok(()), on_node)
}

/// [`run_nodes_shared`] with `alter` applied to each output before later nodes read it
/// and before `on_node` sees it (the step executor's fault hook).
pub(crate) fn run_nodes_altered(
    backend: &dyn Backend,
    nodes: &[Node],
    state: &BTreeMap<String, Tensor>,
    batch: &BTreeMap<String, Tensor>,
    mut alter: impl FnMut(usize, &mut Tensor) -> Result<()>,
    mut on_node: impl FnMut(usize, &Arc<Tensor>),
) -> Result<Vec<Arc<Tensor>>> {
    let mut outs: Vec<Arc<Tensor>> = Vec::with_capacity(nodes.len());
    for node in nodes {
        let mut ins: Vec<&Tensor> = Vec::with_capacity(node.inputs.len());
        for i in &node.inputs {
            let t = match i {
                Input::State(s) => state.get(s),
                Input::Batch(s) => batch.get(s),
                Input::Node(n) if *n < outs.len() => outs.get(*n).map(|t| &**t),
                Input::Node(_) => None,
            };
            ins.push(t.ok_or_else(|| TrainError::NodeInputs {
                node: node.index,
                detail: format!("input {i:?} is not available"),
            })?);
        }
        let mut out = execute_node_on(backend, node, &ins)?;
        alter(node.index, &mut out)?;
        let out = Arc::new(out);
        on_node(node.index, &out);
        outs.push(out);
    }
    Ok(outs)
}

/// The tensor of an `Arc` nobody else holds (a copy if someone does).
pub(crate) fn unshare(t: Arc<Tensor>) -> Tensor {
    Arc::try_unwrap(t).unwrap_or_else(|t| (*t).clone())
}

/// Domain tag of a state leaf.
pub const STATE_LEAF_DOMAIN: &[u8] = b"veritrain/state-leaf/v1";

/// Leaf value of a named tensor: `BLAKE3("veritrain/state-leaf/v1" || len(name):u32 LE || name || tensor_hash)`.
pub fn state_leaf(name: &str, tensor_hash: &Hash) -> Hash {
    // Short names (all of the builtin programs'): one-shot hash of a stack buffer, the
    // same digest as the `Hasher` below without its set-up cost.
    const D: usize = STATE_LEAF_DOMAIN.len();
    let mut buf = [0u8; 128];
    let len = D + 4 + name.len() + 32;
    if len <= buf.len() {
        buf[..D].copy_from_slice(STATE_LEAF_DOMAIN);
        buf[D..D + 4].copy_from_slice(&(name.len() as u32).to_le_bytes());
        buf[D + 4..D + 4 + name.len()].copy_from_slice(name.as_bytes());
        buf[D + 4 + name.len()..len].copy_from_slice(tensor_hash);
        return *blake3::hash(&buf[..len]).as_bytes();
    }
    let mut h = blake3::Hasher::new();
    h.update(STATE_LEAF_DOMAIN);
    h.update(&(name.len() as u32).to_le_bytes());
    h.update(name.as_bytes());
    h.update(tensor_hash);
    *h.finalize().as_bytes()
}

/// State hash (R6): Merkle root over `state_leaf(name, tensor_hash)` sorted by name.
pub fn state_hash(state: &BTreeMap<String, Tensor>) -> Hash {
    use rayon::prelude::*;
    // Leaves are independent; `collect` keeps name order, so threads do not matter.
    let leaves: Vec<Hash> = state
        .par_iter()
        .map(|(k, t)| state_leaf(k, &repops::tensor_hash(t)))
        .collect();
    crate::merkle::root(&leaves)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_leaf_is_blake3_of_the_tagged_name_and_hash_for_short_and_long_names() {
        let th = *blake3::hash(b"t").as_bytes();
        for name in [
            "",
            "l0.w",
            &"n".repeat(68),
            &"n".repeat(69),
            &"x".repeat(300),
        ] {
            let mut h = blake3::Hasher::new();
            h.update(STATE_LEAF_DOMAIN);
            h.update(&(name.len() as u32).to_le_bytes());
            h.update(name.as_bytes());
            h.update(&th);
            assert_eq!(state_leaf(name, &th), *h.finalize().as_bytes(), "{name}");
        }
    }
}
