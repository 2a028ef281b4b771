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
    let mut checked = [0usize; 4];
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
                    Rule::Lanes => {
                        // Columns folded over random row blocks, then finished.
                        let ncols = *ins[0].shape().last().unwrap();
                        let rows = ins[0].len() / ncols;
                        let cols = pick(&p, &mut c, ncols);
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
                            let values = vec![gather(&ins[0], &ranges[0])];
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
                        let (m, n) = (full.shape()[0], full.shape()[1]);
                        let (rows, cols) = (pick(&p, &mut c, m), pick(&p, &mut c, n));
                        let Op::MatMul { ta, .. } = op else {
                            unreachable!()
                        };
                        let k = if ta {
                            ins[0].shape()[0]
                        } else {
                            ins[0].shape()[1]
                        };
                        let want = rows
                            .clone()
                            .flat_map(|i| {
                                full.data()[i * n + cols.start..i * n + cols.end].to_vec()
                            })
                            .collect();
                        (
                            Tile::Block {
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
    eprintln!("tiles checked: {checked:?} (elements, rows, blocks, lane folds)");
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
