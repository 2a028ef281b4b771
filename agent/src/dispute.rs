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
        Phase::BisectReveal
        | Phase::Assembly
        | Phase::Reveal
        | Phase::FoldReveal
        | Phase::TileInputs => side == Side::Solver,
        Phase::BisectRespond | Phase::FoldRespond => side == Side::Challenger,
        Phase::OpRoots => match side {
            Side::Solver => d.solver_op_root.is_empty(),
            Side::Challenger => d.challenger_op_root.is_empty(),
        },
        Phase::Descent | Phase::TraceDescent | Phase::OutputDescent => match side {
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
        Phase::OutputDescent => {
            let out = node_output(run, hi, d.node)?;
            vec![any(output_reveal(d, me, &out)?)]
        }
        Phase::FoldReveal => {
            let acc = fold_state(d, run, d.fold_mid)?;
            vec![any(pb::MsgRevealPartial {
                solver: me.into(),
                dispute_id: id,
                acc: bits_le(&acc),
            })]
        }
        Phase::FoldRespond => {
            let mine = fold_state(d, run, d.fold_mid)?;
            vec![any(pb::MsgRespond {
                challenger: me.into(),
                dispute_id: id,
                agree: bits_le(&mine) == d.acc_mid,
            })]
        }
        Phase::TileInputs => tile_inputs(d, me, run, max_chunk)?,
        Phase::Resolved | Phase::Unspecified => Vec::new(),
    };
    Ok(msgs)
}

/// The proven rows the chain still lacks for node `d.node`'s batch inputs (a
/// dataset it does not hold), as many as fit `max_chunk` bytes of chunks (at least
/// one): one move, one group a block (the chain keeps what was proven).
fn rows_move(
    d: &pb::Dispute,
    me: &str,
    run: &Run,
    max_chunk: usize,
) -> Result<Option<Any>, AgentError> {
    if d.rows_needed.is_empty() || d.rows_proven as usize >= d.rows_needed.len() {
        return Ok(None);
    }
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
                proof: Some(proof_to_pb(&rp.proof)),
            })
        })
        .collect::<Result<Vec<_>, AgentError>>()?;
    Ok(Some(any(pb::MsgUploadRows {
        solver: me.into(),
        dispute_id: d.id,
        rows,
    })))
}

/// Node `node` of the run's step graph.
fn graph_node(run: &Run, node: u64) -> Result<train::Node, AgentError> {
    run.graph
        .nodes
        .get(node as usize)
        .cloned()
        .ok_or_else(|| AgentError::Invalid(format!("no node {node}")))
}

/// Node `node`'s output at step `hi` in this party's run.
fn node_output(run: &mut Run, hi: u64, node: u64) -> Result<repops::Tensor, AgentError> {
    run.step_out(hi)?
        .outputs
        .get(node as usize)
        .cloned()
        .ok_or_else(|| AgentError::Invalid(format!("no node {node}")))
}

/// Input `i` of `node` at step `hi` with its proof against its commitment (a state
/// tensor against `h_lo` or a merge input's root, an earlier output against the op
/// root); `None` for batch inputs, which the chain rebuilds.
fn committed_input(
    run: &mut Run,
    node: &train::Node,
    hi: u64,
    i: usize,
) -> Result<Option<(repops::Tensor, pb::MerkleProof)>, AgentError> {
    Ok(match node.inputs.get(i) {
        Some(Input::State(name)) => {
            let st = run.state_at(hi - 1)?;
            let t = st
                .get(name)
                .ok_or_else(|| AgentError::Invalid(format!("state has no tensor {name}")))?
                .clone();
            let (_, p) = train::exec::state_input_proof(&run.program, hi - 1, &st, name)?;
            Some((t, proof_to_pb(&p)))
        }
        Some(Input::Node(k)) => {
            let out = run.step_out(hi)?;
            let t = out
                .outputs
                .get(*k)
                .ok_or_else(|| AgentError::Invalid(format!("no node {k}")))?
                .clone();
            Some((t, pb_proof(&out.node_hashes(), *k)?))
        }
        Some(Input::Batch(_)) | None => None,
    })
}

/// Every input of `node` at step `hi`, batch tensors included.
fn node_inputs(
    run: &mut Run,
    node: &train::Node,
    hi: u64,
) -> Result<Vec<repops::Tensor>, AgentError> {
    let mut batch = None;
    (0..node.inputs.len())
        .map(|i| match &node.inputs[i] {
            Input::Batch(name) => {
                if batch.is_none() {
                    batch = Some(train::batch_for_step(&run.program, &run.dataset, hi)?);
                }
                batch
                    .as_ref()
                    .and_then(|b| b.get(name))
                    .cloned()
                    .ok_or_else(|| AgentError::Invalid(format!("no batch tensor {name}")))
            }
            _ => committed_input(run, node, hi, i)?
                .map(|(t, _)| t)
                .ok_or_else(|| AgentError::Invalid(format!("node has no input {i}"))),
        })
        .collect()
}

fn bits_le(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_bits().to_le_bytes()).collect()
}

/// The output descent's move inside node `d.node`: the children of the current
/// BLAKE3 subtree of `out`, or at a leaf the elements of its chunk with their proof.
pub fn output_reveal(
    d: &pb::Dispute,
    me: &str,
    out: &repops::Tensor,
) -> Result<pb::MsgRevealOutput, AgentError> {
    use repops::slice;
    let bad = |e: repops::RepOpsError| AgentError::Invalid(e.to_string());
    let (off, len) = (d.out_offset, d.out_len);
    let mut m = pb::MsgRevealOutput {
        sender: me.into(),
        dispute_id: d.id,
        ..Default::default()
    };
    match slice::children(off, len) {
        Some(((lo, ll), (ro, rl))) => {
            let msg = repops::tensor::hash_message(out);
            m.left = slice::subtree_cv(&msg, lo, ll, false)
                .map_err(bad)?
                .to_vec();
            m.right = slice::subtree_cv(&msg, ro, rl, false)
                .map_err(bad)?
                .to_vec();
        }
        None => {
            let elems = slice::chunk_elements(out.shape(), off, len).map_err(bad)?;
            m.slice = Some(slice_to_pb(&slice::prove(out, elems).map_err(bad)?));
        }
    }
    Ok(m)
}

/// A slice proof as the chain's message type.
pub fn slice_to_pb(p: &repops::slice::SliceProof) -> pb::SliceProof {
    pb::SliceProof {
        chunks: p.chunks.clone(),
        siblings: p.siblings.iter().map(|s| s.to_vec()).collect(),
    }
}

/// This party's fold state of output element `d.element` after `upto` steps.
fn fold_state(d: &pb::Dispute, run: &mut Run, upto: u64) -> Result<Vec<f32>, AgentError> {
    let node = graph_node(run, d.node)?;
    let ins = node_inputs(run, &node, d.hi)?;
    let refs: Vec<&repops::Tensor> = ins.iter().collect();
    repops::tile::element_state_whole(&node.op, &refs, d.element as usize, upto as usize)
        .map_err(|e| AgentError::Invalid(e.to_string()))
}

/// The slices of node `d.node`'s inputs its tile reads, one move per input still
/// unproven (dataset rows first, when the chain needs them).
fn tile_inputs(
    d: &pb::Dispute,
    me: &str,
    run: &mut Run,
    max_chunk: usize,
) -> Result<Vec<Any>, AgentError> {
    if let Some(m) = rows_move(d, me, run, max_chunk)? {
        return Ok(vec![m]);
    }
    let node = graph_node(run, d.node)?;
    let shapes: Vec<&[usize]> = node.input_shapes.iter().map(Vec::as_slice).collect();
    let bad = |e: repops::RepOpsError| AgentError::Invalid(e.to_string());
    let k = if repops::tile::fold(&node.op, &shapes).is_some() {
        d.fold_lo as usize..d.fold_hi as usize
    } else {
        0..0
    };
    let tile = repops::tile::element_tile(&node.op, &shapes, d.element as usize, k).map_err(bad)?;
    let ranges = repops::tile::input_ranges(&node.op, &shapes, &tile).map_err(bad)?;
    let mut msgs = Vec::new();
    for (i, u) in d.inputs.iter().enumerate() {
        if u.complete {
            continue;
        }
        let Some((t, proof)) = committed_input(run, &node, d.hi, i)? else {
            continue;
        };
        let slice = repops::slice::prove_ranges(&t, &ranges[i]).map_err(bad)?;
        msgs.push(any(pb::MsgProveSlice {
            solver: me.into(),
            dispute_id: d.id,
            input: i as u32,
            tensor_hash: repops::tensor_hash(&t).to_vec(),
            proof: Some(proof),
            slice: Some(slice_to_pb(&slice)),
        }));
    }
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
    if let Some(m) = rows_move(d, me, run, max_chunk)? {
        return Ok(vec![m]);
    }
    let node = graph_node(run, d.node)?;
    let max_chunk = max_chunk.max(1);
    let mut msgs = Vec::new();
    for (i, u) in d.inputs.iter().enumerate() {
        if u.complete {
            continue;
        }
        let Some((t, proof)) = committed_input(run, &node, d.hi, i)? else {
            continue;
        };
        let data = f32_bytes(&t);
        let start = u.uploaded_bytes as usize;
        let rest = data.get(start..).unwrap_or_default();
        let n = rest.len().div_ceil(max_chunk);
        for (ci, chunk) in rest.chunks(max_chunk).enumerate() {
            msgs.push(any(pb::MsgUploadInput {
                solver: me.into(),
                dispute_id: d.id,
                input: i as u32,
                offset: (start + ci * max_chunk) as u64,
                data: chunk.to_vec(),
                proof: (ci + 1 == n).then(|| proof.clone()),
            }));
        }
    }
    Ok(msgs)
}
