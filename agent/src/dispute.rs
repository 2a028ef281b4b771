//! The moves of one party in a Verde dispute, computed from the dispute as
//! the chain holds it and the party's own [`Run`]. Pure: the caller sends the
//! messages. The solver's view is its (possibly faulty) run; the challenger's
//! is an honest re-execution.
use crate::run::Run;
use crate::AgentError;
use prost_types::Any;
use proto::verde::v1::{self as pb, Phase};
use proto::{to_any, TypeUrl};
use train::merkle::{self, Hash};
use train::Input;

/// Which side of the dispute this party is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    Solver,
    Challenger,
}

/// A merkle proof as the chain's message type.
pub fn pb_proof(leaves: &[Hash], i: usize) -> Result<pb::MerkleProof, AgentError> {
    let p = merkle::proof(leaves, i)
        .ok_or_else(|| AgentError::Invalid(format!("no leaf {i} among {}", leaves.len())))?;
    Ok(proof_to_pb(&p))
}

fn proof_to_pb(p: &merkle::Proof) -> pb::MerkleProof {
    pb::MerkleProof {
        index: p.index,
        leaf_count: p.leaf_count,
        siblings: p.siblings.iter().map(|s| s.to_vec()).collect(),
    }
}

/// Every level of train::merkle's tree over `leaves` (level 0 = leaf nodes).
pub fn tree_levels(leaves: &[Hash]) -> Vec<Vec<Hash>> {
    let mut v = vec![leaves.iter().map(merkle::leaf_node).collect::<Vec<_>>()];
    while v.last().is_some_and(|l| l.len() > 1) {
        let next: Vec<Hash> = v
            .last()
            .map(|l| {
                l.chunks(2)
                    .map(|c| match c {
                        [a, b] => merkle::internal_node(a, b),
                        [a] => *a,
                        _ => unreachable!("chunks(2)"),
                    })
                    .collect()
            })
            .unwrap_or_default();
        v.push(next);
    }
    v
}

/// The two children of node `index` at `level` of the tree over `leaves`
/// (at level 0: the leaf value itself and nothing).
fn children(
    leaves: &[Hash],
    level: u32,
    index: u64,
    what: &str,
) -> Result<(Vec<u8>, Vec<u8>), AgentError> {
    if level == 0 {
        let l = leaves
            .get(index as usize)
            .ok_or_else(|| AgentError::Invalid(format!("the {what} has no leaf {index}")))?;
        return Ok((l.to_vec(), Vec::new()));
    }
    let lv = tree_levels(leaves);
    let below = lv
        .get(level as usize - 1)
        .ok_or_else(|| AgentError::Invalid(format!("the {what} has no level {level}")))?;
    let i = 2 * index as usize;
    match (below.get(i), below.get(i + 1)) {
        (Some(l), Some(r)) => Ok((l.to_vec(), r.to_vec())),
        _ => Err(AgentError::Invalid(format!(
            "the {what} has no children at level {level} index {index}"
        ))),
    }
}

fn any<M: prost::Message + TypeUrl>(m: M) -> Any {
    to_any(&m)
}

fn f32_bytes(t: &repops::Tensor) -> Vec<u8> {
    t.data().iter().flat_map(|f| f.to_le_bytes()).collect()
}

/// Whether it is `side`'s move now (the other party or the clock otherwise).
pub fn my_turn(d: &pb::Dispute, side: Side) -> bool {
    let phase = Phase::try_from(d.phase).unwrap_or(Phase::Unspecified);
    match phase {
        Phase::BisectReveal | Phase::Assembly | Phase::Reveal => side == Side::Solver,
        Phase::BisectRespond => side == Side::Challenger,
        Phase::OpRoots => match side {
            Side::Solver => d.solver_op_root.is_empty(),
            Side::Challenger => d.challenger_op_root.is_empty(),
        },
        Phase::Descent | Phase::TraceDescent => match side {
            Side::Solver => d.solver_children.is_empty(),
            Side::Challenger => d.challenger_children.is_empty(),
        },
        Phase::Resolved | Phase::Unspecified => false,
    }
}

/// The messages `me` (on `side`) sends now, in order; empty when it is not
/// its turn. `max_chunk` is verde's `max_chunk_bytes`.
pub fn moves(
    d: &pb::Dispute,
    me: &str,
    side: Side,
    run: &mut Run,
    max_chunk: usize,
) -> Result<Vec<Any>, AgentError> {
    if !my_turn(d, side) {
        return Ok(Vec::new());
    }
    let phase = Phase::try_from(d.phase).unwrap_or(Phase::Unspecified);
    let id = d.id;
    let hi = d.hi;
    let msgs = match phase {
        Phase::BisectReveal => {
            let hs = run.hashes().to_vec();
            let m = d.mid as usize;
            let h = hs.get(m).ok_or_else(|| {
                AgentError::Invalid(format!("the run has no h_{m} ({} known)", hs.len()))
            })?;
            vec![any(pb::MsgRevealMid {
                solver: me.into(),
                dispute_id: id,
                h_mid: h.to_vec(),
                proof: Some(pb_proof(&hs, m)?),
            })]
        }
        Phase::BisectRespond => {
            let mine = run.hash(d.mid)?;
            vec![any(pb::MsgRespond {
                challenger: me.into(),
                dispute_id: id,
                agree: mine.as_slice() == d.h_mid.as_slice(),
            })]
        }
        Phase::OpRoots => {
            let root = merkle::root(&run.step_out(hi)?.node_hashes());
            vec![any(pb::MsgPostOpRoot {
                sender: me.into(),
                dispute_id: id,
                op_root: root.to_vec(),
            })]
        }
        Phase::Descent | Phase::TraceDescent => {
            let (leaves, what) = if phase == Phase::Descent {
                (run.step_out(hi)?.node_hashes(), "op tree")
            } else {
                // The whole trace: a full re-execution (or the solver's run).
                let hs = run.hashes().to_vec();
                if hs.len() as u64 != run.program.steps + 1 {
                    return Err(AgentError::Invalid(format!(
                        "the trace descent needs every h_t; the run has {} of {}",
                        hs.len(),
                        run.program.steps + 1
                    )));
                }
                (hs, "trace tree")
            };
            let (left, right) = children(&leaves, d.level, d.index, what)?;
            vec![any(pb::MsgRevealChildren {
                sender: me.into(),
                dispute_id: id,
                left,
                right,
            })]
        }
        Phase::Assembly => {
            let nh = run.step_out(hi)?.node_hashes();
            let entries = run
                .graph
                .updates
                .iter()
                .map(|(name, &k)| {
                    Ok(pb::StateEntry {
                        name: name.clone(),
                        tensor_hash: nh.get(k).map(|h| h.to_vec()).unwrap_or_default(),
                        proof: Some(pb_proof(&nh, k)?),
                    })
                })
                .collect::<Result<Vec<_>, AgentError>>()?;
            vec![any(pb::MsgProveAssembly {
                solver: me.into(),
                dispute_id: id,
                entries,
            })]
        }
        Phase::Reveal => reveal(d, me, run, max_chunk)?,
        Phase::Resolved | Phase::Unspecified => Vec::new(),
    };
    Ok(msgs)
}

/// The solver's uploads of node `d.node`'s inputs: batch rows first (when the
/// chain does not hold the dataset), then every incomplete input in chunks.
fn reveal(
    d: &pb::Dispute,
    me: &str,
    run: &mut Run,
    max_chunk: usize,
) -> Result<Vec<Any>, AgentError> {
    let id = d.id;
    let hi = d.hi;
    if !d.rows_needed.is_empty() && (d.rows_proven as usize) < d.rows_needed.len() {
        // One transaction must hold the move: send the rows the chain still
        // lacks, as many as fit `max_chunk` bytes of chunks (at least one), one
        // group a block (the chain keeps what was proven).
        let h = run.dataset.header();
        let per_move = (max_chunk / (h.row_bytes * h.chunk_rows).max(1) as usize).max(1);
        let rows = d
            .rows_needed
            .iter()
            .skip(d.rows_proven as usize)
            .take(per_move)
            .map(|&r| {
                let rp = run
                    .dataset
                    .row_proof(r)
                    .ok_or_else(|| AgentError::Invalid(format!("dataset has no row {r}")))?;
                Ok(pb::RowProof {
                    row: r,
                    chunk: rp.chunk,
                    proof: Some(pb::MerkleProof {
                        index: rp.proof.index,
                        leaf_count: rp.proof.leaf_count,
                        siblings: rp.proof.siblings.iter().map(|s| s.to_vec()).collect(),
                    }),
                })
            })
            .collect::<Result<Vec<_>, AgentError>>()?;
        return Ok(vec![any(pb::MsgUploadRows {
            solver: me.into(),
            dispute_id: id,
            rows,
        })]);
    }
    let node = run
        .graph
        .nodes
        .get(d.node as usize)
        .cloned()
        .ok_or_else(|| AgentError::Invalid(format!("no node {}", d.node)))?;
    let max_chunk = max_chunk.max(1);
    let mut msgs = Vec::new();
    for (i, u) in d.inputs.iter().enumerate() {
        if u.complete {
            continue;
        }
        let (data, proof) = match node.inputs.get(i) {
            Some(Input::State(name)) => {
                let st = run.state_at(hi - 1)?;
                let t = st
                    .get(name)
                    .ok_or_else(|| AgentError::Invalid(format!("state has no tensor {name}")))?;
                // Against h_lo, or a merge input's own root (Program::state_slot).
                let (_, p) = train::exec::state_input_proof(&run.program, hi - 1, &st, name)?;
                (f32_bytes(t), proof_to_pb(&p))
            }
            Some(Input::Node(k)) => {
                let out = run.step_out(hi)?;
                let t = out
                    .outputs
                    .get(*k)
                    .ok_or_else(|| AgentError::Invalid(format!("no node {k}")))?;
                (f32_bytes(t), pb_proof(&out.node_hashes(), *k)?)
            }
            // The chain rebuilds batch inputs from the dataset.
            Some(Input::Batch(_)) | None => continue,
        };
        let start = u.uploaded_bytes as usize;
        let rest = data.get(start..).unwrap_or_default();
        let n = rest.len().div_ceil(max_chunk);
        for (ci, chunk) in rest.chunks(max_chunk).enumerate() {
            msgs.push(any(pb::MsgUploadInput {
                solver: me.into(),
                dispute_id: id,
                input: i as u32,
                offset: (start + ci * max_chunk) as u64,
                data: chunk.to_vec(),
                proof: (ci + 1 == n).then(|| proof.clone()),
            }));
        }
    }
    Ok(msgs)
}
