//! The game inside one node, for a node `j` the referee may not recompute whole
//! (`train::Node::fits` under the tasks bounds): the output descent over the BLAKE3
//! tree of `j`'s output to the first element whose bits differ, the fold bisection
//! inside that element (a product's fma chain, a column sum's rows), then one tile
//! recomputed from proven slices of the inputs (`repops::tile`, `repops::slice`).
use framework::{BlockCtx, StateWrite};
use repops::tile;
use tasks::TasksRead;

use crate::component::state::{VerdeRead, VerdeWrite};
use crate::dispute::{Dispute, Inner, Phase, Source, Turn};
use crate::error::{h32, Result, VerdeError};
use crate::proof::disputed_node;
use crate::referee;

fn shapes(node: &train::Node) -> Vec<&[usize]> {
    node.input_shapes.iter().map(Vec::as_slice).collect()
}

fn op_err(e: impl std::fmt::Display) -> VerdeError {
    VerdeError::Referee(e.to_string())
}

/// Whether a dispute on `node` goes on inside it: it costs more than the referee's
/// bound and its op has tiles (submission refuses any other node over the bound).
pub(crate) fn goes_inside<S: StateWrite + ?Sized>(s: &S, node: &train::Node) -> Result<bool> {
    let p = s.tasks_params()?;
    Ok(!node.fits(p.max_referee_flops, p.max_reveal_bytes) && tile::rule(&node.op).is_some())
}

/// Node `j` found and too costly: the output descent starts at the root, each
/// party's chaining value being its output hash.
pub(crate) fn start<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    d: &mut Dispute,
    node: &train::Node,
) -> Result<()> {
    let total = repops::slice::message_len(&node.shape).map_err(op_err)?;
    d.inner = Inner {
        out_offset: 0,
        out_len: total,
        ..Inner::default()
    };
    d.solver_node = Some(h32(&d.solver_output, "solver output")?);
    d.challenger_node = Some(h32(&d.challenger_output, "challenger output")?);
    d.solver_children.clear();
    d.challenger_children.clear();
    let c = node.cost();
    d.record(
        ctx.height,
        "chain",
        format!(
            "node {} costs {} FLOPs and {} input bytes, over the referee's bound: the game goes inside it",
            d.node, c.flops, c.input_bytes
        ),
    );
    s.next_move(ctx, d, Phase::OutputDescent, Turn::Both)
}

/// The output descent reached a leaf: element `e` is the first whose bits differ and
/// the solver's bits of it are `value`. Next: its fold, or its tile.
pub(crate) fn element_found<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    d: &mut Dispute,
    e: u64,
    value: u32,
) -> Result<()> {
    let (_, _, node) = disputed_node(s, d.task_id, d.node)?;
    d.inner.element = e;
    d.inner.solver_value = Some(value);
    d.record(
        ctx.height,
        "chain",
        format!("output element {e} differs (the solver's bits {value:#010x})"),
    );
    match tile::fold(&node.op, &shapes(&node)) {
        None => start_tile(s, ctx, d, &node, 0..0),
        Some(f) => {
            d.inner.fold_lo = 0;
            d.inner.fold_hi = f.len as u64;
            d.inner.acc_lo = vec![0; f.width];
            if f.width == 1 {
                // A product's partial sum after all of K is the element itself.
                d.inner.acc_hi = vec![value];
                after_fold(s, ctx, d, &node)
            } else {
                // A column sum's element is its lanes combined: the solver first
                // shows the lanes that combine to its element (fold_mid = fold_hi).
                d.inner.fold_mid = d.inner.fold_hi;
                d.inner.acc_mid.clear();
                s.next_move(ctx, d, Phase::FoldReveal, Turn::Solver)
            }
        }
    }
}

fn fold_tile(d: &Dispute, node: &train::Node) -> Result<tile::Tile> {
    let k = d.inner.fold_lo as usize..d.inner.fold_hi as usize;
    tile::element_tile(&node.op, &shapes(node), d.inner.element as usize, k).map_err(op_err)
}

/// The fold interval changed: bisect more, or recompute it once it fits the bound
/// (one step always does: submission checks `Node::min_tile_cost`).
pub(crate) fn after_fold<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    d: &mut Dispute,
    node: &train::Node,
) -> Result<()> {
    let p = s.tasks_params()?;
    let (lo, hi) = (d.inner.fold_lo, d.inner.fold_hi);
    // A fold of L steps reads at least 4·L bytes and costs at least L FLOPs: no
    // need to list its ranges (L of them, strided) until it might fit.
    let fits = hi - lo <= 1
        || (hi - lo).saturating_mul(4) <= p.max_reveal_bytes
            && hi - lo <= p.max_referee_flops
            && node.tile_cost(&fold_tile(d, node)?).map_err(op_err)?.fits(
                p.max_referee_flops,
                p.max_reveal_bytes,
                p.max_chunk_bytes,
            );
    if fits {
        return start_tile(s, ctx, d, node, lo as usize..hi as usize);
    }
    d.inner.fold_mid = lo + (hi - lo) / 2;
    d.inner.acc_mid.clear();
    s.next_move(ctx, d, Phase::FoldReveal, Turn::Solver)
}

/// The tile is known: the solver must prove the slices of the inputs it reads.
fn start_tile<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    d: &mut Dispute,
    node: &train::Node,
    k: std::ops::Range<usize>,
) -> Result<()> {
    let sh = shapes(node);
    let t = tile::element_tile(&node.op, &sh, d.inner.element as usize, k).map_err(op_err)?;
    let ranges = tile::input_ranges(&node.op, &sh, &t).map_err(op_err)?;
    for (u, r) in d.inputs.iter_mut().zip(&ranges) {
        if matches!(u.source, Source::Batch(_)) {
            continue; // rebuilt from the dataset (proven rows first, if needed)
        }
        u.expected_bytes = 4 * r.iter().map(|x| x.len() as u64).sum::<u64>();
        u.uploaded_bytes = 0;
        u.complete = false;
    }
    d.record(ctx.height, "chain", format!("tile {t:?}"));
    inputs_progress(s, ctx, d)
}

/// After an input or rows were proven in the tile phase: judge once all are in,
/// else the solver owes the next.
pub(crate) fn inputs_progress<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    d: &mut Dispute,
) -> Result<()> {
    if d.inputs.iter().all(|u| u.complete) {
        return adjudicate(s, ctx, d);
    }
    s.next_move(ctx, d, Phase::TileInputs, Turn::Solver)
}

/// The input slices of node `j`'s tile (`tile::input_ranges`).
pub(crate) fn tile_ranges<S: StateWrite + ?Sized>(
    s: &S,
    d: &Dispute,
) -> Result<(train::Node, Vec<Vec<std::ops::Range<usize>>>)> {
    let (_, _, node) = disputed_node(s, d.task_id, d.node)?;
    let t = fold_tile(d, &node)?;
    let r = tile::input_ranges(&node.op, &shapes(&node), &t).map_err(op_err)?;
    Ok((node, r))
}

/// Recomputes the tile from the proven slices and settles: the solver is right iff
/// its state at the end of the tile (its element, or its fold state at `fold_hi`)
/// is the referee's, bit for bit.
fn adjudicate<S: StateWrite + ?Sized>(s: &mut S, ctx: &BlockCtx, d: &mut Dispute) -> Result<()> {
    let (t, prog, node) = disputed_node(s, d.task_id, d.node)?;
    let uploads = d
        .inputs
        .iter()
        .map(|u| s.uploaded(d.id, u.input))
        .collect::<Result<Vec<_>>>()?;
    let rows = s.proven_rows(d.id)?;
    let j = referee::judge_tile(&t, &prog, &node, d, &uploads, &rows)?;
    d.referee_output = j.output;
    s.resolve(ctx, d, j.solver_right, &j.reason)
}
