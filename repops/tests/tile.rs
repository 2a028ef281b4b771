//! Tiles: for every op with a tile rule, a random tile computed from the slices of the
//! inputs it names equals that part of the whole op's output, bit for bit; a matrix
//! product folded block after block over `k` is the product; and the whole referee
//! path for one tile runs on proven slices (`repops::slice`) alone.

use repops::conformance::{fuzz_case, FUZZ_KINDS};
use repops::slice::{prove_ranges, verify_ranges};
use repops::tile::{execute, finish, input_ranges, rule, Rule, Tile};
use repops::{tensor_hash, Op, Philox, Tensor};
use std::ops::Range;

fn canon(v: &[f32]) -> Vec<u32> {
    v.iter()
        .map(|x| if x.is_nan() { 0x7fc0_0000 } else { x.to_bits() })
        .collect()
}

fn gather(t: &Tensor, ranges: &[Range<usize>]) -> Vec<f32> {
    ranges
        .iter()
        .flat_map(|r| t.data()[r.clone()].iter().copied())
        .collect()
}

fn pick(p: &Philox, c: &mut u64, n: usize) -> Range<usize> {
    let a = p.below_at(*c, n as u32) as usize;
    let len = 1 + p.below_at(*c + 1, (n - a) as u32) as usize;
    *c += 2;
    a..a + len
}

#[test]
fn every_tile_equals_that_part_of_the_whole_output() {
    let p = Philox::new(5, 9);
    let mut c = 0u64;
    let mut checked = [0usize; 5];
    for seed in 0..6u64 {
        for kind in 0..FUZZ_KINDS {
            let (op, ins) = fuzz_case(kind, 1000 * seed + kind as u64);
            let Some(r) = rule(&op) else { continue };
            let refs: Vec<&Tensor> = ins.iter().collect();
            let Ok(full) = op.execute(&refs) else {
                continue;
            };
            let shapes: Vec<&[usize]> = ins.iter().map(|t| t.shape()).collect();
            for _ in 0..4 {
                let (tile, want): (Tile, Vec<f32>) = match r {
                    Rule::Elems => {
                        let e = pick(&p, &mut c, full.len().max(1));
                        (Tile::Elems(e.clone()), full.data()[e].to_vec())
                    }
                    Rule::Rows => {
                        let s0 = ins[0].shape();
                        let d = *s0.last().unwrap();
                        let rows = ins[0].len() / d;
                        let rr = pick(&p, &mut c, rows);
                        let per = full.len() / rows;
                        (
                            Tile::Rows(rr.clone()),
                            full.data()[rr.start * per..rr.end * per].to_vec(),
                        )
                    }
                    Rule::Scan => {
                        // An element scanned over random blocks of steps.
                        let e = p.below_at(c, full.len() as u32) as usize;
                        c += 1;
                        let len = repops::tile::fold(&op, &shapes).unwrap().len;
                        let mut st: Option<Vec<f32>> = None;
                        let mut k0 = 0;
                        while k0 < len {
                            let k1 = (k0 + 1 + p.below_at(c, 9) as usize).min(len);
                            c += 1;
                            let tile = Tile::Scan { elem: e, k: k0..k1 };
                            let ranges = input_ranges(&op, &shapes, &tile).unwrap();
                            let values: Vec<Vec<f32>> =
                                ins.iter().zip(&ranges).map(|(t, r)| gather(t, r)).collect();
                            st =
                                Some(execute(&op, &shapes, &tile, &values, st.as_deref()).unwrap());
                            k0 = k1;
                        }
                        assert_eq!(
                            canon(&st.unwrap()),
                            canon(&full.data()[e..e + 1]),
                            "{} element {e}",
                            op.name()
                        );
                        checked[4] += 1;
                        continue;
                    }
                    Rule::Lanes => {
                        // Columns folded over random row blocks, then finished.
                        let ncols = *ins[0].shape().last().unwrap();
                        let rows = ins[0].len() / ncols;
                        // A cross-entropy has one output (the mean of its rows' losses).
                        let cols = if op.name() == "cross_entropy" {
                            0..1
                        } else {
                            pick(&p, &mut c, ncols)
                        };
                        let mut lanes: Option<Vec<f32>> = None;
                        let mut r0 = 0;
                        while r0 < rows {
                            let r1 = (r0 + 1 + p.below_at(c, 70) as usize).min(rows);
                            c += 1;
                            let tile = Tile::Lanes {
                                cols: cols.clone(),
                                rows: r0..r1,
                            };
                            let ranges = input_ranges(&op, &shapes, &tile).unwrap();
                            let values: Vec<Vec<f32>> =
                                ins.iter().zip(&ranges).map(|(t, r)| gather(t, r)).collect();
                            lanes = Some(
                                execute(&op, &shapes, &tile, &values, lanes.as_deref()).unwrap(),
                            );
                            r0 = r1;
                        }
                        let got = finish(&op, &shapes, &lanes.unwrap()).unwrap();
                        assert_eq!(
                            canon(&got),
                            canon(&full.data()[cols.clone()]),
                            "{} {cols:?}",
                            op.name()
                        );
                        checked[3] += 1;
                        continue;
                    }
                    Rule::Block => {
                        // A product of a batched one, or the one product.
                        let fs = full.shape();
                        let (g, m, n) = match fs.len() {
                            3 => (fs[0], fs[1], fs[2]),
                            _ => (1, fs[0], fs[1]),
                        };
                        let batch = p.below_at(c, g as u32) as usize;
                        c += 1;
                        let (rows, cols) = (pick(&p, &mut c, m), pick(&p, &mut c, n));
                        let k = repops::tile::fold(&op, &shapes).unwrap().len;
                        let base = batch * m * n;
                        let want = rows
                            .clone()
                            .flat_map(|i| {
                                full.data()[base + i * n + cols.start..base + i * n + cols.end]
                                    .to_vec()
                            })
                            .collect();
                        (
                            Tile::Block {
                                batch,
                                rows,
                                cols,
                                k: 0..k,
                            },
                            want,
                        )
                    }
                };
                let ranges = input_ranges(&op, &shapes, &tile).unwrap();
                let values: Vec<Vec<f32>> =
                    ins.iter().zip(&ranges).map(|(t, r)| gather(t, r)).collect();
                let got = execute(&op, &shapes, &tile, &values, None).unwrap();
                assert_eq!(canon(&got), canon(&want), "{} {tile:?}", op.name());
                checked[r as usize] += 1;
            }
        }
    }
    eprintln!("tiles checked: {checked:?} (elements, rows, blocks, lane folds, scans)");
    assert!(checked.iter().all(|&n| n >= 8), "{checked:?}");
}

#[test]
fn a_product_folded_block_by_block_over_k_is_the_product() {
    let p = Philox::new(3, 3);
    for (case, &(m, k, n, ta, tb)) in [
        (9usize, 700usize, 13usize, false, false),
        (5, 1000, 7, true, false),
        (6, 333, 11, false, true),
        (4, 257, 4, true, true),
    ]
    .iter()
    .enumerate()
    {
        let mk = |rows: usize, cols: usize, s: u64| {
            let data = (0..(rows * cols) as u64)
                .map(|i| (p.uniform_at(i + s) - 0.5) * 4.0)
                .collect();
            Tensor::new(vec![rows, cols], data).unwrap()
        };
        let a = if ta { mk(k, m, 0) } else { mk(m, k, 0) };
        let b = if tb {
            mk(n, k, 1 << 20)
        } else {
            mk(k, n, 1 << 20)
        };
        let op = Op::MatMul { ta, tb };
        let full = op.execute(&[&a, &b]).unwrap();
        let shapes = [a.shape(), b.shape()];
        let (rows, cols) = (1..m, 2..n);
        // Blocks of 64 along k, each from the last one's partial sums.
        let mut acc: Option<Vec<f32>> = None;
        let mut k0 = 0;
        while k0 < k {
            let k1 = (k0 + 64).min(k);
            let tile = Tile::Block {
                batch: 0,
                rows: rows.clone(),
                cols: cols.clone(),
                k: k0..k1,
            };
            let ranges = input_ranges(&op, &shapes, &tile).unwrap();
            let values = vec![gather(&a, &ranges[0]), gather(&b, &ranges[1])];
            acc = Some(execute(&op, &shapes, &tile, &values, acc.as_deref()).unwrap());
            k0 = k1;
        }
        let want: Vec<f32> = rows
            .clone()
            .flat_map(|i| full.data()[i * n + cols.start..i * n + cols.end].to_vec())
            .collect();
        assert_eq!(canon(&acc.unwrap()), canon(&want), "case {case}");
    }
}

/// The referee's path for one block of a product too large to recompute: both inputs'
/// slices proven against their hashes, the partial sums folded, the result compared
/// with the tile the solver shows of its output, itself proven against the output hash.
#[test]
fn a_block_is_adjudicated_from_proven_slices_alone() {
    let p = Philox::new(8, 8);
    let (m, k, n) = (128, 768, 512);
    let data = |len: usize, s: u64| {
        (0..len as u64)
            .map(|i| (p.uniform_at(i + s) - 0.5) * 0.2)
            .collect::<Vec<f32>>()
    };
    let a = Tensor::new(vec![m, k], data(m * k, 0)).unwrap();
    let b = Tensor::new(vec![k, n], data(k * n, 1 << 30)).unwrap();
    let op = Op::MatMul {
        ta: false,
        tb: false,
    };
    let out = op.execute(&[&a, &b]).unwrap();
    let (ha, hb, ho) = (tensor_hash(&a), tensor_hash(&b), tensor_hash(&out));
    let shapes = [a.shape(), b.shape()];
    let tile = Tile::Block {
        batch: 0,
        rows: 32..48,
        cols: 256..272,
        k: 0..k,
    };
    let ranges = input_ranges(&op, &shapes, &tile).unwrap();
    let (pa, pb) = (
        prove_ranges(&a, &ranges[0]).unwrap(),
        prove_ranges(&b, &ranges[1]).unwrap(),
    );
    let va: Vec<f32> = verify_ranges(&ha, a.shape(), &ranges[0], &pa)
        .unwrap()
        .concat();
    let vb: Vec<f32> = verify_ranges(&hb, b.shape(), &ranges[1], &pb)
        .unwrap()
        .concat();
    let got = execute(&op, &shapes, &tile, &[va, vb], None).unwrap();
    let out_rows: Vec<_> = (32..48).map(|i| i * n + 256..i * n + 272).collect();
    let po = prove_ranges(&out, &out_rows).unwrap();
    let claimed = verify_ranges(&ho, out.shape(), &out_rows, &po)
        .unwrap()
        .concat();
    assert_eq!(canon(&got), canon(&claimed));
    let bytes = pa.len_bytes() + pb.len_bytes() + po.len_bytes();
    eprintln!(
        "a 16x16 block of a 128x768 . 768x512 product: {} FLOPs for the referee (the node: {}), {bytes} bytes of proofs",
        2 * 16 * 16 * k,
        2 * m * n * k
    );
    assert!(bytes < 1 << 20);
}

/// The element game: for every op with tiles, each output element recomputed from its
/// own tile (its fold cut at random points, each part from the state the last one left)
/// is the whole op's element, bit for bit; and the proof bound holds for its inputs.
#[test]
fn every_element_is_its_folds_parts_in_turn() {
    use repops::slice::proof_bound;
    use repops::tile::{element_state, element_tile, element_value, fold, gather as take};
    let p = Philox::new(8, 3);
    let mut c = 0u64;
    let mut folds = 0;
    for seed in 0..4u64 {
        for kind in 0..FUZZ_KINDS {
            let (op, ins) = fuzz_case(kind, 77 * seed + kind as u64);
            if rule(&op).is_none() {
                continue;
            }
            let refs: Vec<&Tensor> = ins.iter().collect();
            let Ok(full) = op.execute(&refs) else {
                continue;
            };
            let shapes: Vec<&[usize]> = ins.iter().map(|t| t.shape()).collect();
            for _ in 0..6 {
                let e = p.below_at(c, full.len() as u32) as usize;
                c += 1;
                let f = fold(&op, &shapes);
                let len = f.map_or(0, |f| f.len);
                // Cut points 0 = c0 < c1 < ... < len.
                let mut cuts = vec![0, len];
                for _ in 0..3 {
                    cuts.push(p.below_at(c, len as u32 + 1) as usize);
                    c += 1;
                }
                cuts.sort_unstable();
                cuts.dedup();
                let mut state: Option<Vec<f32>> = None;
                for w in cuts.windows(2).map(|w| w[0]..w[1]).chain(
                    // An op without a fold is one part.
                    (cuts.len() == 1).then_some(0..0),
                ) {
                    let tile = element_tile(&op, &shapes, e, w.clone()).unwrap();
                    let ranges = input_ranges(&op, &shapes, &tile).unwrap();
                    for (s, r) in shapes.iter().zip(&ranges) {
                        let shown: u64 = prove_ranges(
                            &Tensor::new(s.to_vec(), vec![0.0; s.iter().product()]).unwrap(),
                            r.iter()
                                .filter(|r| !r.is_empty())
                                .cloned()
                                .collect::<Vec<_>>()
                                .as_slice(),
                        )
                        .map_or(0, |pr| pr.len_bytes() as u64);
                        assert!(shown <= proof_bound(s, r), "{} input {s:?}", op.name());
                    }
                    let vals = take(&refs, &ranges).unwrap();
                    state =
                        Some(element_state(&op, &shapes, e, w, &vals, state.as_deref()).unwrap());
                }
                if f.is_some() {
                    folds += 1;
                }
                let v = element_value(&op, &shapes, &state.unwrap()).unwrap();
                assert_eq!(
                    canon(&[v]),
                    canon(&full.data()[e..e + 1]),
                    "{} element {e}",
                    op.name()
                );
            }
        }
    }
    assert!(folds > 20, "{folds} folds checked");
}

/// The output descent: children and chaining values rebuild the tensor hash level by
/// level, and a leaf chunk's elements are those whose bytes it holds.
#[test]
fn the_output_tree_rebuilds_the_tensor_hash() {
    use repops::slice::{
        children, chunk_elements, message_len, parent_cv, subtree_cv, CHUNK_BYTES,
    };
    for shape in [vec![3usize], vec![300], vec![1000, 7], vec![33, 65, 5]] {
        let n: usize = shape.iter().product();
        let t = Tensor::new(shape.clone(), (0..n).map(|i| i as f32 * 0.25).collect()).unwrap();
        let msg = repops::tensor::hash_message(&t);
        let total = message_len(&shape).unwrap();
        assert_eq!(total, msg.len() as u64);
        let root = subtree_cv(&msg, 0, total, true).unwrap();
        assert_eq!(root, tensor_hash(&t));
        // Walk every node: children hash to the parent; leaves cover the elements.
        let mut stack = vec![(0u64, total, root, true)];
        let mut covered = vec![false; n];
        while let Some((off, len, cv, is_root)) = stack.pop() {
            match children(off, len) {
                Some(((lo, ll), (ro, rl))) => {
                    let l = subtree_cv(&msg, lo, ll, false).unwrap();
                    let r = subtree_cv(&msg, ro, rl, false).unwrap();
                    assert_eq!(parent_cv(&l, &r, is_root), cv);
                    stack.push((lo, ll, l, false));
                    stack.push((ro, rl, r, false));
                }
                None => {
                    assert!(len <= CHUNK_BYTES);
                    for i in chunk_elements(&shape, off, len).unwrap() {
                        covered[i] = true;
                    }
                }
            }
        }
        assert!(covered.iter().all(|&c| c), "{shape:?}");
    }
}
