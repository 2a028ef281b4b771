//! Proof checks and the program facts the game needs (the disputed node,
//! tree shapes).
use framework::StateRead;
use tasks::{Task, TasksRead};
use train::merkle::{self, Hash};

use crate::error::{Result, VerdeError};

/// Checks that `leaf` is leaf `index` of `leaf_count` under `root`.
pub(crate) fn check_proof(
    root: &Hash,
    leaf: &Hash,
    p: &merkle::Proof,
    index: u64,
    leaf_count: u64,
    what: &str,
) -> Result<()> {
    if p.index != index || p.leaf_count != leaf_count {
        return Err(VerdeError::BadProof(format!(
            "{what}: proof is for leaf {} of {}, expected leaf {index} of {leaf_count}",
            p.index, p.leaf_count
        )));
    }
    if !merkle::verify(root, leaf, p) {
        return Err(VerdeError::BadProof(format!(
            "{what}: does not hash to the committed root"
        )));
    }
    Ok(())
}

/// Number of nodes at each level of train::merkle's tree over `n` leaves.
pub(crate) fn level_sizes(n: u64) -> Vec<u64> {
    let mut v = vec![n.max(1)];
    while let Some(&last) = v.last() {
        if last <= 1 {
            break;
        }
        v.push(last.div_ceil(2));
    }
    v
}

/// The program a task runs, parsed.
pub(crate) fn program_of(t: &Task) -> Result<train::Program> {
    t.program().map_err(|e| VerdeError::Referee(e.to_string()))
}

/// The task, its program and the program's node `j` (the disputed operator).
pub(crate) fn disputed_node<S: StateRead + ?Sized>(
    s: &S,
    task_id: u64,
    j: u64,
) -> Result<(Task, train::Program, train::Node)> {
    let t = s.task(task_id)?;
    let prog = program_of(&t)?;
    let node = prog
        .nodes()
        .map_err(|e| VerdeError::Referee(e.to_string()))?
        .into_iter()
        .nth(j as usize)
        .ok_or_else(|| VerdeError::Referee(format!("node {j} out of range")))?;
    Ok((t, prog, node))
}

/// `h_0` of the task's program: the committed state's hash for a fine-tune (free),
/// the root over the inputs' roots for a merge (one leaf per input), otherwise the
/// seed initialisation's (reads no dataset; its cost is bounded at submission by
/// `max_state_bytes`).
pub(crate) fn initial_hash(t: &Task) -> Result<Hash> {
    let prog = program_of(t)?;
    if let Some(h0) = prog.committed_h0() {
        return Ok(h0);
    }
    let s = train::trainer::initial_state(&prog).map_err(|e| VerdeError::Referee(e.to_string()))?;
    Ok(train::state_hash(&s))
}

/// The program's dataset from the builtin registry, checked against its root.
pub(crate) fn builtin_dataset(prog: &train::Program) -> Result<train::Dataset> {
    let ds = train::Dataset::builtin(&prog.dataset.name)
        .map_err(|e| VerdeError::Referee(format!("dataset {:?}: {e}", prog.dataset.name)))?;
    if ds.root() != prog.dataset.root {
        return Err(VerdeError::Referee(
            "the builtin dataset's root differs from the program's".into(),
        ));
    }
    Ok(ds)
}

pub(crate) fn tensor_from(shape: &[usize], bytes: &[u8]) -> Result<repops::Tensor> {
    if !bytes.len().is_multiple_of(4) {
        return Err(VerdeError::BadUpload(
            "length is not a multiple of 4".into(),
        ));
    }
    let data: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    repops::Tensor::new(shape.to_vec(), data).map_err(|e| VerdeError::BadUpload(e.to_string()))
}

/// Checks that `th` is the hash of node `d.node`'s input `i` under its commitment:
/// a state leaf under `h_lo` (or, in a merge's first step, under that input's own
/// root, which the program lists and `h_0` commits to), or an earlier node's output
/// under the solver's op root. Batch inputs have none: the referee rebuilds them.
pub(crate) fn check_input_hash<S: StateRead + ?Sized>(
    s: &S,
    d: &crate::dispute::Dispute,
    i: usize,
    th: &Hash,
    pr: &merkle::Proof,
) -> Result<()> {
    use crate::dispute::Source;
    let (t, prog, _) = disputed_node(s, d.task_id, d.node)?;
    let u = d
        .inputs
        .get(i)
        .ok_or_else(|| VerdeError::BadUpload(format!("node has no input {i}")))?;
    match &u.source {
        Source::State(name) => {
            let slot = prog
                .state_slot(d.lo, name)
                .map_err(|e| VerdeError::Referee(e.to_string()))?;
            let root = slot.input.map_or(d.h_lo, |(_, root)| root);
            let leaf = train::exec::state_leaf(&slot.leaf_name, th);
            check_proof(
                &root,
                &leaf,
                pr,
                slot.index,
                slot.count,
                &format!("state {name}"),
            )
        }
        Source::Node(k) => {
            let root = d.solver_op_root.ok_or(VerdeError::WrongPhase {
                id: d.id,
                phase: "op-roots",
            })?;
            check_proof(
                &root,
                th,
                pr,
                *k,
                t.node_count,
                &format!("output of node {k}"),
            )
        }
        Source::Batch(_) => Err(VerdeError::BadUpload(
            "batch inputs are rebuilt by the referee".into(),
        )),
    }
}
