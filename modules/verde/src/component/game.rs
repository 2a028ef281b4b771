//! Transitions shared by several handlers: the next bisection step, the
//! descent's promoted levels, the start of the reveal and adjudication.
use framework::{BlockCtx, StateWrite};

use crate::component::state::{VerdeRead, VerdeWrite};
use crate::dispute::{Dispute, Phase, Source, Turn, Upload};
use crate::error::Result;
use crate::proof::{builtin_dataset, disputed_node};
use crate::referee;

/// Next phase once the interval changed: bisect more or go to the op roots.
pub(crate) fn after_interval<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    d: &mut Dispute,
) -> Result<()> {
    if d.hi - d.lo > 1 {
        d.mid = d.lo + (d.hi - d.lo) / 2;
        d.h_mid = None;
        s.next_move(ctx, d, Phase::BisectReveal, Turn::Solver)
    } else {
        d.solver_op_root = None;
        d.challenger_op_root = None;
        s.next_move(ctx, d, Phase::OpRoots, Turn::Both)
    }
}

/// Skips levels where the current node has a single (promoted) child.
pub(crate) fn descend_promoted(d: &mut Dispute, sizes: &[u64]) {
    while d.level > 0 {
        let below = sizes[d.level as usize - 1];
        if 2 * d.index + 1 < below {
            break;
        }
        d.level -= 1;
        d.index *= 2;
    }
    d.solver_children.clear();
    d.challenger_children.clear();
}

/// Leaf `j` found: set up the uploads of node `j`'s inputs.
pub(crate) fn start_reveal<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    d: &mut Dispute,
) -> Result<()> {
    d.node = d.index;
    d.solver_output = d.solver_children.clone();
    d.challenger_output = d.challenger_children.clone();
    let (_, prog, node) = disputed_node(s, d.task_id, d.node)?;
    d.op_kind = node.op.name().to_string();
    // Builtin datasets are held by the chain; rows of any other dataset
    // must be uploaded with their proofs against the dataset root.
    let on_chain_data = builtin_dataset(&prog).is_ok();
    d.inputs = node
        .inputs
        .iter()
        .zip(&node.input_shapes)
        .enumerate()
        .map(|(i, (inp, shape))| {
            let bytes = 4 * shape.iter().map(|&x| x as u64).product::<u64>();
            let (source, complete) = match inp {
                train::Input::State(n) => (Source::State(n.clone()), false),
                train::Input::Batch(n) => (Source::Batch(n.clone()), on_chain_data),
                train::Input::Node(k) => (Source::Node(*k as u64), false),
            };
            Upload {
                input: i as u32,
                source,
                expected_bytes: if complete { 0 } else { bytes },
                uploaded_bytes: 0,
                tensor_hash: None,
                complete,
            }
        })
        .collect();
    if d.inputs
        .iter()
        .any(|u| !u.complete && matches!(u.source, Source::Batch(_)))
    {
        let mut need = train::batch_rows(&prog, d.hi);
        need.sort_unstable();
        need.dedup();
        d.rows_needed = need;
    }
    let m = format!("step {} node {} ({}) differs", d.hi, d.node, d.op_kind);
    d.record(ctx.height, "chain", m);
    if crate::component::inner::goes_inside(s, &node)? {
        return crate::component::inner::start(s, ctx, d, &node);
    }
    if d.inputs.iter().all(|u| u.complete) {
        return adjudicate(s, ctx, d);
    }
    s.next_move(ctx, d, Phase::Reveal, Turn::Solver)
}

/// Runs node `j` with the CPU reference and settles the dispute.
pub(crate) fn adjudicate<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    d: &mut Dispute,
) -> Result<()> {
    let (t, prog, node) = disputed_node(s, d.task_id, d.node)?;
    let uploads = d
        .inputs
        .iter()
        .map(|u| s.uploaded(d.id, u.input))
        .collect::<Result<Vec<_>>>()?;
    let rows = s.proven_rows(d.id)?;
    let j = referee::judge(&t, &prog, &node, d, &uploads, &rows)?;
    d.referee_output = j.output;
    s.resolve(ctx, d, j.solver_right, &j.reason)
}
