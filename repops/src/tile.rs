//! What a referee recomputes when a dispute goes on inside one operator: a tile of the
//! output from slices of the inputs, the building block (with [`crate::slice`], which
//! proves those slices against the inputs' hashes) for disputes whose node is too
//! large to recompute whole.
//!
//! Three tile rules cover the ops whose outputs are local:
//! - **elements** of an elementwise op: output element `i` reads element `i` of each
//!   input of the output's shape, and scalars whole;
//! - **rows** of a row-local op (softmax, the norms, a bias, row reductions): output
//!   row `r` reads row `r` of each input of the output's row shape, and vectors whole
//!   (a cross-entropy's backward too: its label per row, and the division by the
//!   batch's row count done as the whole op does it);
//! - **blocks** of a matrix product (or of one product of a batched one): output rows ×
//!   columns, contracting only `k` — the
//!   partial sums at `k.end` from those at `k.start`. R2 defines each output as the
//!   in-order fma fold over `k` from `+0`, so partial sums at any `k` are well defined
//!   bits, and folding the blocks `0..k1, k1..k2, …, ..K` in turn gives the product.
//!
//! - **lanes** of a column reduction (`sum_axis0`, `mean_axis0`): output columns, folding
//!   only rows `rows.start..rows.end` into R3's 32 lanes from the lanes at `rows.start`
//!   (`+0` at 0); [`finish`] then combines the lanes as R3 does (and divides for a mean).
//!   R3 adds row `i` into lane `i % 32` in order, so the lanes after any row are defined
//!   bits, as a product's partial sums are. A cross-entropy is the same fold over its
//!   rows' losses (each from its whole row and label), its one output their mean.
//!
//! - **scans** of a lookup (`embedding`, `embedding_backward`): one output element over
//!   steps `k` of the table's or the gradient's rows ([`Rule::Scan`]).
//!
//! Tiles of every other op (layout ops, position-dependent ops
//! such as `rope`, `causal_mask` and `dropout`, the norms' gamma
//! gradients) are not defined yet: [`rule`] returns `None` for them.
use crate::error::{RepOpsError, Result};
use crate::ops::Op;
use crate::reduce::LANES;
use crate::tensor::{numel, Tensor};
use std::ops::Range;

/// A part of an op's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tile {
    /// Output elements (row-major order).
    Elems(Range<usize>),
    /// Output rows (along the last axis of the inputs).
    Rows(Range<usize>),
    /// Output rows × columns of a matrix product (of product `batch` of a batched
    /// one; 0 for `mat_mul`), contracted over `k` only.
    Block {
        batch: usize,
        rows: Range<usize>,
        cols: Range<usize>,
        k: Range<usize>,
    },
    /// Output columns of a column reduction, folding input rows `rows` only: the R3
    /// lanes (32 per column, lane-major) after them.
    Lanes {
        cols: Range<usize>,
        rows: Range<usize>,
    },
    /// Output element `elem` of a lookup, scanned over steps `k` only ([`Rule::Scan`]).
    Scan { elem: usize, k: Range<usize> },
}

/// Which tiles an op has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    Elems,
    Rows,
    Block,
    Lanes,
    /// A lookup's element as a scan whose state is one float, from `+0`: an
    /// `embedding`'s over the table's rows (the state becomes row `ids[r]`'s value
    /// when the scan passes it), an `embedding_backward`'s over the gradient rows (each
    /// whose id is the element's row added in order, as the op adds them). Its reads
    /// do not depend on the ids' values, so they are proven like any other.
    Scan,
}

/// The tile rule of `op`, if its tiles are defined.
pub fn rule(op: &Op) -> Option<Rule> {
    Some(match op {
        Op::Add
        | Op::Sub
        | Op::Mul
        | Op::Scale { .. }
        | Op::AddScalar { .. }
        | Op::Relu
        | Op::ReluBackward
        | Op::Gelu
        | Op::GeluBackward
        | Op::Tanh
        | Op::TanhBackward
        | Op::Sigmoid
        | Op::SigmoidBackward
        | Op::Exp
        | Op::Log
        | Op::Rsqrt
        | Op::Silu
        | Op::SiluBackward
        | Op::SgdMomentumBuf { .. }
        | Op::SgdUpdate { .. }
        | Op::AdamM { .. }
        | Op::AdamV { .. }
        | Op::AdamWUpdate { .. }
        | Op::MulScalar
        | Op::SgdUpdateLr
        | Op::AdamWUpdateLr { .. } => Rule::Elems,
        Op::Softmax
        | Op::LogSoftmax
        | Op::SoftmaxBackward
        | Op::LogSoftmaxBackward
        | Op::LayerNorm { .. }
        | Op::LayerNormBackwardInput { .. }
        | Op::RmsNorm { .. }
        | Op::RmsNormBackwardInput { .. }
        | Op::AddBias
        | Op::MaxLast
        | Op::MaxLastBackward
        | Op::SumLast
        | Op::MeanLast
        | Op::CrossEntropyBackward => Rule::Rows,
        Op::MatMul { .. } | Op::BatchedMatMul { .. } => Rule::Block,
        Op::SumAxis0 | Op::MeanAxis0 | Op::CrossEntropy => Rule::Lanes,
        Op::Embedding | Op::EmbeddingBackward { .. } => Rule::Scan,
        _ => return None,
    })
}

fn bad(m: impl Into<String>) -> RepOpsError {
    RepOpsError::Param {
        op: "tile",
        detail: m.into(),
    }
}

/// A list of one range (what an input reads when its part is contiguous).
fn one(r: Range<usize>) -> Vec<Range<usize>> {
    std::iter::once(r).collect()
}

/// How input `i` of a row-local op lines up with the output's rows.
enum RowPart {
    /// Row for row (the shape of input 0).
    Rows,
    /// One value per row (`max_last_backward`'s `dy`).
    PerRow,
    /// A per-column vector read whole (a norm's gamma and beta, a bias).
    Whole,
}

fn row_part(op: &Op, i: usize) -> RowPart {
    match (op, i) {
        (_, 0) => RowPart::Rows,
        (Op::MaxLastBackward | Op::CrossEntropyBackward, 1) => RowPart::PerRow,
        (Op::LayerNorm { .. }, _)
        | (Op::LayerNormBackwardInput { .. }, 1)
        | (Op::RmsNorm { .. }, _)
        | (Op::RmsNormBackwardInput { .. }, 1)
        | (Op::AddBias, _) => RowPart::Whole,
        _ => RowPart::Rows,
    }
}

/// Rows and the row length of a row-local op's main input.
fn rows_of(shape: &[usize]) -> (usize, usize) {
    let d = shape.last().copied().unwrap_or(1);
    (numel(shape).unwrap_or(0).checked_div(d).unwrap_or(0), d)
}

/// For each input of `op` (shapes `shapes`), the element ranges the tile reads, in
/// the order [`execute`] takes their values.
pub fn input_ranges(op: &Op, shapes: &[&[usize]], tile: &Tile) -> Result<Vec<Vec<Range<usize>>>> {
    let out = op.output_shape(shapes)?;
    let whole = |s: &[usize]| one(0..numel(s).unwrap_or(0));
    match (rule(op), tile) {
        (Some(Rule::Elems), Tile::Elems(r)) => {
            let n = numel(&out).unwrap_or(0);
            if r.start >= r.end || r.end > n {
                return Err(bad(format!("elements {r:?} of {n}")));
            }
            Ok(shapes
                .iter()
                .map(|s| {
                    if s.is_empty() {
                        one(0..1)
                    } else {
                        one(r.clone())
                    }
                })
                .collect())
        }
        (Some(Rule::Rows), Tile::Rows(r)) => {
            let (rows, d) = rows_of(shapes[0]);
            if r.start >= r.end || r.end > rows {
                return Err(bad(format!("rows {r:?} of {rows}")));
            }
            Ok(shapes
                .iter()
                .enumerate()
                .map(|(i, s)| match row_part(op, i) {
                    RowPart::Rows => one(r.start * d..r.end * d),
                    RowPart::PerRow => one(r.clone()),
                    RowPart::Whole => whole(s),
                })
                .collect())
        }
        (
            Some(Rule::Block),
            Tile::Block {
                batch,
                rows,
                cols,
                k,
            },
        ) => {
            let p = product(op, shapes, *batch)?;
            let (m, kk, n) = (p.m, p.k, p.n);
            if rows.start >= rows.end
                || rows.end > m
                || cols.start >= cols.end
                || cols.end > n
                || k.start > k.end
                || k.end > kk
            {
                return Err(bad(format!(
                    "block {rows:?} x {cols:?} over {k:?} of [{m}, {n}] with K = {kk}"
                )));
            }
            let (oa, ob) = (p.a_offset, p.b_offset);
            let a_ranges = if p.ta {
                // A is [K, M]: for each k, the rows' columns.
                k.clone()
                    .map(|x| oa + x * m + rows.start..oa + x * m + rows.end)
                    .collect()
            } else {
                rows.clone()
                    .map(|i| oa + i * kk + k.start..oa + i * kk + k.end)
                    .collect()
            };
            let b_ranges = if p.tb {
                // B is [N, K]: for each column, its k piece.
                cols.clone()
                    .map(|j| ob + j * kk + k.start..ob + j * kk + k.end)
                    .collect()
            } else {
                k.clone()
                    .map(|x| ob + x * n + cols.start..ob + x * n + cols.end)
                    .collect()
            };
            Ok(vec![a_ranges, b_ranges])
        }
        (Some(Rule::Lanes), Tile::Lanes { cols, rows }) => {
            let (nrows, c) = rows_of(shapes[0]);
            if cols.start >= cols.end || cols.end > c || rows.start > rows.end || rows.end > nrows {
                return Err(bad(format!(
                    "columns {cols:?}, rows {rows:?} of [{nrows}, {c}]"
                )));
            }
            if matches!(op, Op::CrossEntropy) {
                // Its one output folds whole rows' losses: the rows and their labels.
                return Ok(if rows.is_empty() {
                    vec![vec![], vec![]]
                } else {
                    vec![one(rows.start * c..rows.end * c), one(rows.clone())]
                });
            }
            Ok(vec![rows
                .clone()
                .map(|i| i * c + cols.start..i * c + cols.end)
                .collect()])
        }
        (Some(Rule::Scan), Tile::Scan { elem, k }) => {
            let n = numel(&out).unwrap_or(0);
            let sc = scan(op, shapes)?;
            if *elem >= n || k.start > k.end || k.end > sc.len {
                return Err(bad(format!(
                    "element {elem} of {n} over {k:?} of {}",
                    sc.len
                )));
            }
            let (row, col) = (elem / sc.d, elem % sc.d);
            let column = |x: usize| x * sc.d + col..x * sc.d + col + 1;
            Ok(match op {
                // [table, ids]: the table's column over rows k, the element's id.
                Op::Embedding => vec![k.clone().map(column).collect(), one(row..row + 1)],
                // [ids, dy]: ids k, dy's column over rows k.
                _ if k.is_empty() => vec![vec![], vec![]],
                _ => vec![one(k.clone()), k.clone().map(column).collect()],
            })
        }
        _ => Err(bad(format!("{} has no tile {tile:?}", op.name()))),
    }
}

/// A lookup's scan: its length (table rows, or gradient rows) and row width.
struct ScanShape {
    len: usize,
    d: usize,
}

fn scan(op: &Op, shapes: &[&[usize]]) -> Result<ScanShape> {
    match (op, shapes) {
        (Op::Embedding, [t, _]) if t.len() == 2 => Ok(ScanShape { len: t[0], d: t[1] }),
        (Op::EmbeddingBackward { .. }, [ids, dy]) if !dy.is_empty() => Ok(ScanShape {
            len: numel(ids).unwrap_or(0),
            d: dy[dy.len() - 1],
        }),
        _ => Err(bad(format!("{} has no scan", op.name()))),
    }
}

/// The tile of `op`'s output from the values of [`input_ranges`] (each input's ranges
/// concatenated) and, for a block, the partial sums at `k.start` (`None`: `+0`, the
/// start of R2's fold). Equal, bit for bit, to that part of `op.execute` on the whole
/// inputs (for a block contracted over all of `K`, or folded block after block).
pub fn execute(
    op: &Op,
    shapes: &[&[usize]],
    tile: &Tile,
    values: &[Vec<f32>],
    acc: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let ranges = input_ranges(op, shapes, tile)?;
    if values.len() != ranges.len()
        || values
            .iter()
            .zip(&ranges)
            .any(|(v, r)| v.len() != r.iter().map(|x| x.len()).sum::<usize>())
    {
        return Err(bad("the values do not match the tile's input ranges"));
    }
    match tile {
        Tile::Elems(_) => {
            let ins = values
                .iter()
                .zip(shapes)
                .map(|(v, s)| {
                    let shape = if s.is_empty() { vec![] } else { vec![v.len()] };
                    Tensor::new(shape, v.clone())
                })
                .collect::<Result<Vec<_>>>()?;
            let refs: Vec<&Tensor> = ins.iter().collect();
            Ok(op.execute(&refs)?.into_data())
        }
        Tile::Rows(r) => {
            let (_, d) = rows_of(shapes[0]);
            // A 1-D main input is one row: its tile is the whole of every input.
            let flat = shapes[0].len() < 2;
            let ins = values
                .iter()
                .zip(shapes)
                .enumerate()
                .map(|(i, (v, s))| {
                    let shape = match row_part(op, i) {
                        _ if flat => s.to_vec(),
                        RowPart::Rows => vec![r.len(), d],
                        RowPart::PerRow => vec![r.len()],
                        RowPart::Whole => s.to_vec(),
                    };
                    Tensor::new(shape, v.clone())
                })
                .collect::<Result<Vec<_>>>()?;
            let refs: Vec<&Tensor> = ins.iter().collect();
            if matches!(op, Op::CrossEntropyBackward) && !flat {
                // It divides by the batch's row count: row by row (a division by 1,
                // exact), then by the whole input's, as the op does.
                let n = rows_of(shapes[0]).0 as f32;
                let mut out = Vec::with_capacity(r.len() * d);
                for i in 0..r.len() {
                    let x = Tensor::new(vec![1, d], values[0][i * d..(i + 1) * d].to_vec())?;
                    let l = Tensor::new(vec![1], vec![values[1][i]])?;
                    out.extend(
                        op.execute(&[&x, &l])?
                            .into_data()
                            .into_iter()
                            .map(|v| v / n),
                    );
                }
                canonical(&mut out);
                return Ok(out);
            }
            Ok(op.execute(&refs)?.into_data())
        }
        Tile::Lanes { cols, rows } => {
            let nc = cols.len();
            let mut lanes = match acc {
                Some(a) if a.len() == LANES * nc => a.to_vec(),
                Some(_) => return Err(bad("lanes of the wrong size")),
                None => vec![0.0; LANES * nc],
            };
            if matches!(op, Op::CrossEntropy) {
                let c = rows_of(shapes[0]).1;
                for (idx, i) in rows.clone().enumerate() {
                    let label = crate::ops::index("cross_entropy", values[1][idx], i, c)?;
                    lanes[i % LANES] +=
                        crate::ops::cross_entropy_row(&values[0][idx * c..(idx + 1) * c], label);
                }
            } else {
                for (idx, i) in rows.clone().enumerate() {
                    let l = i % LANES;
                    for j in 0..nc {
                        lanes[l * nc + j] += values[0][idx * nc + j];
                    }
                }
            }
            // Lanes are compared bit for bit in a dispute: canonical NaNs (R1), as the
            // payload an add propagates differs between CPUs.
            canonical(&mut lanes);
            Ok(lanes)
        }
        Tile::Scan { elem, k } => {
            let mut st = match acc {
                Some([a]) => *a,
                Some(_) => return Err(bad("a scan's state is one float")),
                None => 0.0,
            };
            let sc = scan(op, shapes)?;
            match op {
                Op::Embedding => {
                    let id = crate::ops::index("embedding", values[1][0], elem / sc.d, sc.len)?;
                    if k.contains(&id) {
                        st = values[0][id - k.start];
                    }
                }
                Op::EmbeddingBackward { vocab } => {
                    for (idx, i) in k.clone().enumerate() {
                        if crate::ops::index("embedding_backward", values[0][idx], i, *vocab)?
                            == elem / sc.d
                        {
                            st += values[1][idx];
                        }
                    }
                }
                _ => return Err(bad(format!("{} has no scan", op.name()))),
            }
            let mut out = vec![st];
            canonical(&mut out);
            Ok(out)
        }
        Tile::Block {
            batch,
            rows,
            cols,
            k,
        } => {
            let (nr, nc, nk) = (rows.len(), cols.len(), k.len());
            let mut out = match acc {
                Some(a) if a.len() == nr * nc => a.to_vec(),
                Some(_) => return Err(bad("partial sums of the wrong size")),
                None => vec![0.0; nr * nc],
            };
            let Product { ta, tb, .. } = product(op, shapes, *batch)?;
            // The values as laid out by `input_ranges`: A's element (i, x) and B's (x, j)
            // of the block, i < nr, j < nc, x < nk.
            let a_at = |i: usize, x: usize| {
                if ta {
                    values[0][x * nr + i]
                } else {
                    values[0][i * nk + x]
                }
            };
            let b_at = |x: usize, j: usize| {
                if tb {
                    values[1][j * nk + x]
                } else {
                    values[1][x * nc + j]
                }
            };
            for i in 0..nr {
                for j in 0..nc {
                    let mut s = out[i * nc + j];
                    for x in 0..nk {
                        s = a_at(i, x).mul_add(b_at(x, j), s);
                    }
                    out[i * nc + j] = s;
                }
            }
            // Outputs are stored canonical (R1).
            canonical(&mut out);
            Ok(out)
        }
    }
}

/// One product of a (batched) matrix product: its shape, transposes and where its
/// operands start in the inputs.
struct Product {
    ta: bool,
    tb: bool,
    m: usize,
    k: usize,
    n: usize,
    a_offset: usize,
    b_offset: usize,
}

fn product(op: &Op, shapes: &[&[usize]], batch: usize) -> Result<Product> {
    let (ta, tb, a, b, g) = match (op, shapes) {
        (Op::MatMul { ta, tb }, [a, b]) if a.len() == 2 && b.len() == 2 => (*ta, *tb, *a, *b, 1),
        (Op::BatchedMatMul { ta, tb }, [a, b]) if a.len() == 3 && b.len() == 3 => {
            (*ta, *tb, &a[1..], &b[1..], a[0])
        }
        _ => return Err(bad(format!("{} has no blocks", op.name()))),
    };
    if batch >= g {
        return Err(bad(format!("product {batch} of {g}")));
    }
    let (m, k) = if ta { (a[1], a[0]) } else { (a[0], a[1]) };
    let n = if tb { b[0] } else { b[1] };
    Ok(Product {
        ta,
        tb,
        m,
        k,
        n,
        a_offset: batch * a[0] * a[1],
        b_offset: batch * b[0] * b[1],
    })
}

/// R1: every NaN as the canonical one.
fn canonical(v: &mut [f32]) {
    for x in v.iter_mut().filter(|x| x.is_nan()) {
        *x = f32::from_bits(crate::tensor::CANONICAL_NAN_BITS);
    }
}

/// The output columns of a column reduction from its lanes after the last row
/// ([`Tile::Lanes`] folded over every row): R3's pairwise combination, then the
/// division by the row count for a mean.
pub fn finish(op: &Op, shapes: &[&[usize]], lanes: &[f32]) -> Result<Vec<f32>> {
    if !lanes.len().is_multiple_of(LANES)
        || !matches!(op, Op::SumAxis0 | Op::MeanAxis0 | Op::CrossEntropy)
    {
        return Err(bad(
            "lanes finish a sum_axis0, mean_axis0 or cross_entropy only",
        ));
    }
    let mut l = crate::reduce::combine_lanes(lanes.to_vec(), lanes.len() / LANES);
    if matches!(op, Op::MeanAxis0 | Op::CrossEntropy) {
        let rows = rows_of(shapes.first().copied().unwrap_or(&[])).0 as f32;
        l.iter_mut().for_each(|v| *v /= rows);
    }
    canonical(&mut l);
    Ok(l)
}

/// The fold inside one output element of a contraction: a matrix product's `K`
/// fma steps (state: the partial sum) or a column reduction's rows (state: R3's 32
/// lanes). The dispute game bisects over it when one element costs too much.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fold {
    /// Steps of the fold.
    pub len: usize,
    /// Floats of its state.
    pub width: usize,
}

/// The fold of `op`'s output elements, if they are folds ([`Rule::Block`],
/// [`Rule::Lanes`]).
pub fn fold(op: &Op, shapes: &[&[usize]]) -> Option<Fold> {
    match (rule(op)?, op) {
        (Rule::Block, _) => Some(Fold {
            len: product(op, shapes, 0).ok()?.k,
            width: 1,
        }),
        (Rule::Scan, _) => Some(Fold {
            len: scan(op, shapes).ok()?.len,
            width: 1,
        }),
        (Rule::Lanes, _) => Some(Fold {
            len: rows_of(shapes.first()?).0,
            width: LANES,
        }),
        _ => None,
    }
}

/// The tile that recomputes output element `e` of `op`: the element, its row, or its
/// fold over steps `k` (ignored when `op` has no fold).
pub fn element_tile(op: &Op, shapes: &[&[usize]], e: usize, k: Range<usize>) -> Result<Tile> {
    let out = op.output_shape(shapes)?;
    let n = numel(&out).unwrap_or(0);
    if e >= n {
        return Err(bad(format!("element {e} of {n}")));
    }
    Ok(match rule(op) {
        Some(Rule::Elems) => Tile::Elems(e..e + 1),
        Some(Rule::Rows) => {
            let r = row_of(shapes, n, e);
            Tile::Rows(r..r + 1)
        }
        Some(Rule::Block) => {
            let cols = out.last().copied().unwrap_or(1).max(1);
            let rows = out
                .get(out.len().wrapping_sub(2))
                .copied()
                .unwrap_or(1)
                .max(1);
            let (batch, rem) = (e / (rows * cols), e % (rows * cols));
            let (i, j) = (rem / cols, rem % cols);
            Tile::Block {
                batch,
                rows: i..i + 1,
                cols: j..j + 1,
                k,
            }
        }
        Some(Rule::Lanes) => Tile::Lanes {
            cols: e..e + 1,
            rows: k,
        },
        Some(Rule::Scan) => Tile::Scan { elem: e, k },
        None => return Err(bad(format!("{} has no tiles", op.name()))),
    })
}

/// The row of a row-local op's input 0 that output element `e` (of `n`) comes from:
/// itself for a row reduction (one output per row), else `e` over the row length.
fn row_of(shapes: &[&[usize]], n: usize, e: usize) -> usize {
    let (rows, d) = rows_of(shapes.first().copied().unwrap_or(&[]));
    if n == rows {
        e
    } else {
        e / d.max(1)
    }
}

/// Output element `e`'s state after [`element_tile`]`(e, k)`: the element itself (one
/// float) for an op without a fold, else the fold's state at `k.end` from `acc`, its
/// state at `k.start` (`None` at 0). `values` as [`execute`] takes them.
pub fn element_state(
    op: &Op,
    shapes: &[&[usize]],
    e: usize,
    k: Range<usize>,
    values: &[Vec<f32>],
    acc: Option<&[f32]>,
) -> Result<Vec<f32>> {
    let tile = element_tile(op, shapes, e, k)?;
    let out = execute(op, shapes, &tile, values, acc)?;
    match &tile {
        Tile::Rows(r) => {
            let n = numel(&op.output_shape(shapes)?).unwrap_or(0);
            let per_row = n / rows_of(shapes[0]).0.max(1);
            out.get(e - r.start * per_row)
                .map(|v| vec![*v])
                .ok_or_else(|| bad("element outside its row"))
        }
        _ => Ok(out),
    }
}

/// Output element `e`'s value from its state at the end of its fold (or from
/// [`element_state`] of an op without one).
pub fn element_value(op: &Op, shapes: &[&[usize]], state: &[f32]) -> Result<f32> {
    let v = match rule(op) {
        Some(Rule::Lanes) => finish(op, shapes, state)?,
        _ => state.to_vec(),
    };
    match v.as_slice() {
        [x] => Ok(*x),
        _ => Err(bad(format!(
            "a state of {} floats is not one element's",
            state.len()
        ))),
    }
}

/// The values of `ranges` (from [`input_ranges`]) in `inputs`, as [`execute`] takes
/// them: what a party that holds the whole tensors recomputes a tile from.
pub fn gather(inputs: &[&Tensor], ranges: &[Vec<Range<usize>>]) -> Result<Vec<Vec<f32>>> {
    if inputs.len() != ranges.len() {
        return Err(bad("one range list per input"));
    }
    inputs
        .iter()
        .zip(ranges)
        .map(|(t, rs)| {
            let mut v = Vec::with_capacity(rs.iter().map(|r| r.len()).sum());
            for r in rs {
                v.extend_from_slice(
                    t.data()
                        .get(r.clone())
                        .ok_or_else(|| bad(format!("elements {r:?} of {}", t.len())))?,
                );
            }
            Ok(v)
        })
        .collect()
}

/// Output element `e`'s fold state after `upto` steps (or its value, for an op
/// without a fold), from the whole inputs: what a party holding them reveals or
/// checks in a dispute.
pub fn element_state_whole(op: &Op, inputs: &[&Tensor], e: usize, upto: usize) -> Result<Vec<f32>> {
    let shapes: Vec<&[usize]> = inputs.iter().map(|t| t.shape()).collect();
    let k = if fold(op, &shapes).is_some() {
        0..upto
    } else {
        0..0
    };
    let tile = element_tile(op, &shapes, e, k.clone())?;
    let values = gather(inputs, &input_ranges(op, &shapes, &tile)?)?;
    element_state(op, &shapes, e, k, &values, None)
}
