//! Executing nodes: the referee's single-node entry point and the whole-graph runner.

use crate::error::{Result, TrainError};
use crate::merkle::Hash;
use crate::program::{Input, Node};
use repops::{Backend, CpuBackend, DeviceTensor, Tensor, OP_VERSION};
use std::collections::BTreeMap;

/// Run one node on its input tensors (in the node's input order) with the CPU
/// reference. Checks the op version, the number and shapes of the inputs, and that the
/// output has the declared shape. This is what the referee calls.
pub fn execute_node(node: &Node, inputs: &[&Tensor]) -> Result<Tensor> {
    execute_node_on(&CpuBackend, node, inputs)
}

/// [`execute_node`] on another backend (a solver's GPU): host tensors in and out. Same
/// checks; the backend must return the CPU reference's bits (its conformance suite's
/// job).
pub fn execute_node_on(backend: &dyn Backend, node: &Node, inputs: &[&Tensor]) -> Result<Tensor> {
    let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape()).collect();
    check_inputs(node, &shapes)?;
    let ins = inputs
        .iter()
        .map(|t| backend.upload(t))
        .collect::<repops::Result<Vec<_>>>()
        .map_err(TrainError::Transfer)?;
    let refs: Vec<&DeviceTensor> = ins.iter().collect();
    let out = execute_node_device(backend, node, &refs)?;
    backend.download(&out).map_err(TrainError::Transfer)
}

/// [`execute_node_on`] on tensors in the backend's memory; the output stays there.
pub fn execute_node_device(
    backend: &dyn Backend,
    node: &Node,
    inputs: &[&DeviceTensor],
) -> Result<DeviceTensor> {
    let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape()).collect();
    check_inputs(node, &shapes)?;
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

/// The op version, the number of inputs and their shapes against the node's declaration.
fn check_inputs(node: &Node, shapes: &[&[usize]]) -> Result<()> {
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
    if shapes.len() != node.inputs.len() {
        return Err(TrainError::NodeInputs {
            node: node.index,
            detail: format!(
                "expected {} inputs, got {}",
                node.inputs.len(),
                shapes.len()
            ),
        });
    }
    for (i, (s, want)) in shapes.iter().zip(&node.input_shapes).enumerate() {
        if *s != want.as_slice() {
            return Err(TrainError::NodeInputs {
                node: node.index,
                detail: format!(
                    "input {i} ({:?}) has shape {:?}, the node declares {:?}",
                    node.inputs[i], s, want
                ),
            });
        }
    }
    Ok(())
}

/// Upload every tensor of a named map.
pub fn upload_all(
    backend: &dyn Backend,
    tensors: &BTreeMap<String, Tensor>,
) -> repops::Result<BTreeMap<String, DeviceTensor>> {
    tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), backend.upload(t)?)))
        .collect()
}

/// Download every tensor of a named map (the inverse of [`upload_all`]).
pub fn download_all(
    backend: &dyn Backend,
    tensors: &BTreeMap<String, DeviceTensor>,
) -> repops::Result<BTreeMap<String, Tensor>> {
    tensors
        .iter()
        .map(|(k, t)| Ok((k.clone(), backend.download(t)?)))
        .collect()
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

/// [`run_nodes`] on `backend`: host tensors in, every output downloaded.
pub fn run_nodes_on(
    backend: &dyn Backend,
    nodes: &[Node],
    state: &BTreeMap<String, Tensor>,
    batch: &BTreeMap<String, Tensor>,
    mut on_node: impl FnMut(usize, &Tensor),
) -> Result<Vec<Tensor>> {
    let up = |m| upload_all(backend, m).map_err(TrainError::Transfer);
    let (state, batch) = (up(state)?, up(batch)?);
    let mut outs = Vec::with_capacity(nodes.len());
    run_graph(
        backend,
        nodes,
        &state,
        &batch,
        |_, o| Ok(o),
        |i, o| {
            let h = backend.download(o).map_err(TrainError::Transfer)?;
            on_node(i, &h);
            outs.push(h);
            Ok(())
        },
    )?;
    Ok(outs)
}

/// Run every node in order on `backend` over tensors in its memory. `alter` gets each
/// output first and returns the one later nodes read (the step executor's fault hook;
/// the identity otherwise); `on_node` then sees it. Returns all outputs, on the device.
pub fn run_graph(
    backend: &dyn Backend,
    nodes: &[Node],
    state: &BTreeMap<String, DeviceTensor>,
    batch: &BTreeMap<String, DeviceTensor>,
    mut alter: impl FnMut(usize, DeviceTensor) -> Result<DeviceTensor>,
    mut on_node: impl FnMut(usize, &DeviceTensor) -> Result<()>,
) -> Result<Vec<DeviceTensor>> {
    let mut outs: Vec<DeviceTensor> = Vec::with_capacity(nodes.len());
    for node in nodes {
        let mut ins: Vec<&DeviceTensor> = Vec::with_capacity(node.inputs.len());
        for i in &node.inputs {
            let t = match i {
                Input::State(s) => state.get(s),
                Input::Batch(s) => batch.get(s),
                Input::Node(n) => outs.get(*n),
            };
            ins.push(t.ok_or_else(|| TrainError::NodeInputs {
                node: node.index,
                detail: format!("input {i:?} is not available"),
            })?);
        }
        let out = alter(node.index, execute_node_device(backend, node, &ins)?)?;
        on_node(node.index, &out)?;
        outs.push(out);
    }
    Ok(outs)
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

/// The proof that tensor `name` of `state` is a leaf of [`state_hash`]`(state)`
/// (its leaf is `state_leaf(name, tensor_hash)`); `None` if there is no such tensor.
pub fn state_tensor_proof(
    state: &BTreeMap<String, Tensor>,
    name: &str,
) -> Option<crate::merkle::Proof> {
    let index = state.keys().position(|k| k == name)?;
    let leaves: Vec<Hash> = state
        .iter()
        .map(|(k, t)| state_leaf(k, &repops::tensor_hash(t)))
        .collect();
    crate::merkle::proof(&leaves, index)
}

/// The proof of state tensor `name` as step `lo + 1` reads it from `state` (the state
/// after step `lo`), against where [`crate::Program::state_slot`] says it is
/// committed: `h_lo`, or a merge input's root. Returns the leaf's slot and proof.
pub fn state_input_proof(
    program: &crate::Program,
    lo: u64,
    state: &BTreeMap<String, Tensor>,
    name: &str,
) -> Result<(crate::program::StateSlot, crate::merkle::Proof)> {
    let slot = program.state_slot(lo, name)?;
    let own;
    let committed = match slot.input {
        None => state,
        Some((i, _)) => {
            own = crate::checkpoint::merge_input(program, state, i)?;
            &own
        }
    };
    let proof = state_tensor_proof(committed, &slot.leaf_name)
        .filter(|p| p.index == slot.index && p.leaf_count == slot.count)
        .ok_or_else(|| {
            TrainError::Program(format!(
                "the state does not have {name:?} where it is committed"
            ))
        })?;
    Ok((slot, proof))
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
