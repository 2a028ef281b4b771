//! Slice proofs: any range of a tensor's elements is proven against its unchanged R6
//! hash with the covering chunks and the siblings beside their path; nothing else
//! verifies, and hostile proofs are errors, never panics.

use repops::slice::{prove, prove_ranges, verify, verify_ranges, SliceProof};
use repops::{tensor_hash, Philox, Tensor};

fn tensor(shape: &[usize], seed: u64) -> Tensor {
    let n: usize = shape.iter().product();
    let p = Philox::new(seed, 0);
    // Every bit pattern, NaNs with payloads included (hashed canonical).
    let data = (0..n as u64).map(|i| f32::from_bits(p.u32_at(i))).collect();
    Tensor::new(shape.to_vec(), data).unwrap()
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    let canon = |v: &f32| if v.is_nan() { 0x7fc0_0000 } else { v.to_bits() };
    a.len() == b.len() && a.iter().map(canon).eq(b.iter().map(canon))
}

#[test]
fn every_range_of_every_size_verifies_against_the_tensor_hash() {
    let p = Philox::new(9, 1);
    // Sizes around one chunk, around powers of two of chunks, and large.
    let shapes: &[&[usize]] = &[
        &[1],
        &[250],
        &[251],
        &[256],
        &[257, 1],
        &[2, 512],
        &[3, 683],
        &[4096],
        &[17, 1000],
        &[2, 3, 5, 7, 11, 13],
        &[300_001],
    ];
    for (k, shape) in shapes.iter().enumerate() {
        let t = tensor(shape, k as u64);
        let root = tensor_hash(&t);
        let n = t.len();
        for c in 0..40u64 {
            let a = p.below_at(2 * c + 1000 * k as u64, n as u32) as usize;
            let len =
                1 + p.below_at(2 * c + 1 + 1000 * k as u64, (n - a).min(3000) as u32) as usize;
            let r = a..a + len;
            let proof = prove(&t, r.clone()).unwrap();
            let got = verify(&root, shape, r.clone(), &proof).unwrap();
            assert!(same_bits(&got, &t.data()[r.clone()]), "{shape:?} {r:?}");
            // Small: the data, at most two extra chunks and the header's chunk, and
            // siblings along two paths (the header's and the range's two edges).
            let levels = ((4 * n) as f64 / 1024.0).log2().ceil().max(0.0) as usize + 1;
            assert!(proof.siblings.len() <= 3 * levels, "{shape:?} {r:?}");
            assert!(proof.chunks.len() <= 4 * len + 2048 + 1024);
        }
        // The whole tensor is a range too.
        let all = prove(&t, 0..n).unwrap();
        assert!(all.siblings.is_empty());
        assert!(same_bits(
            &verify(&root, shape, 0..n, &all).unwrap(),
            t.data()
        ));
    }
}

#[test]
fn a_changed_byte_sibling_range_shape_or_root_does_not_verify() {
    let shape = [40, 300];
    let t = tensor(&shape, 3);
    let root = tensor_hash(&t);
    let r = 5000..5100;
    let proof = prove(&t, r.clone()).unwrap();
    assert!(verify(&root, &shape, r.clone(), &proof).is_ok());
    for i in (0..proof.chunks.len()).step_by(97) {
        let mut p = proof.clone();
        p.chunks[i] ^= 1;
        assert!(
            verify(&root, &shape, r.clone(), &p).is_err(),
            "chunk byte {i}"
        );
    }
    for i in 0..proof.siblings.len() {
        let mut p = proof.clone();
        p.siblings[i][7] ^= 0x80;
        assert!(verify(&root, &shape, r.clone(), &p).is_err(), "sibling {i}");
        let mut p = proof.clone();
        p.siblings.remove(i);
        assert!(verify(&root, &shape, r.clone(), &p).is_err());
    }
    let mut extra = proof.clone();
    extra.siblings.push([0; 32]);
    assert!(verify(&root, &shape, r.clone(), &extra).is_err());
    // Other elements inside the same chunks are proven too, with their true values;
    // elements outside them, another shape or another root are not.
    let inside = verify(&root, &shape, 5001..5101, &proof).unwrap();
    assert!(same_bits(&inside, &t.data()[5001..5101]));
    assert!(verify(&root, &shape, 9000..9100, &proof).is_err());
    assert!(verify(&root, &[300, 40], r.clone(), &proof).is_err());
    assert!(verify(&root, &[12_000], r.clone(), &proof).is_err());
    let mut other = root;
    other[0] ^= 1;
    assert!(verify(&other, &shape, r.clone(), &proof).is_err());
    // Empty and out-of-range requests.
    assert!(prove(&t, 7..7).is_err());
    assert!(prove(&t, 0..12_001).is_err());
    assert!(verify(&root, &shape, 11_999..12_001, &proof).is_err());
}

#[test]
fn hostile_proofs_are_errors_not_panics() {
    let shape = [1000, 100];
    let t = tensor(&shape, 5);
    let root = tensor_hash(&t);
    let p = Philox::new(77, 2);
    for c in 0..3000u64 {
        let chunks = (0..p.below_at(3 * c, 5000))
            .map(|i| p.u32_at(u64::from(i) + 10_000 * c) as u8)
            .collect();
        let siblings = (0..p.below_at(3 * c + 1, 40))
            .map(|i| [p.u32_at(u64::from(i) + 77 * c) as u8; 32])
            .collect();
        let a = p.below_at(3 * c + 2, 110_000) as usize;
        let r = a..a + 1 + (c as usize % 900);
        let proof = SliceProof { chunks, siblings };
        assert!(verify(&root, &shape, r, &proof).is_err());
    }
    // Shapes that overflow or have absurd ranks.
    let proof = prove(&t, 0..10).unwrap();
    assert!(verify(&root, &[usize::MAX, 2], 0..10, &proof).is_err());
    assert!(verify(&root, &[1; 300], 0..1, &proof).is_err());
}

/// A tile's rows: many disjoint ranges in one proof, sharing their paths' siblings.
#[test]
fn the_rows_of_a_tile_are_proven_together() {
    let shape = [768, 3072];
    let t = tensor(&shape, 8);
    let root = tensor_hash(&t);
    // Columns 1024..1088 of 64 rows: one 256-byte piece per row.
    let rows: Vec<_> = (100..164)
        .map(|r| r * 3072 + 1024..r * 3072 + 1088)
        .collect();
    let proof = prove_ranges(&t, &rows).unwrap();
    let got = verify_ranges(&root, &shape, &rows, &proof).unwrap();
    for (r, v) in rows.iter().zip(&got) {
        assert!(same_bits(v, &t.data()[r.clone()]));
    }
    // 64 chunks of 1 KiB hold the pieces, plus the header's; the siblings are shared.
    assert_eq!(proof.chunks.len(), 65 * 1024);
    assert!(proof.siblings.len() < 64 * 10, "{}", proof.siblings.len());
    eprintln!(
        "a 64x64 tile of a 768x3072 weight (9.4 MB): {} bytes of proof",
        proof.len_bytes()
    );
    // The same proof does not show other rows.
    let other: Vec<_> = rows.iter().map(|r| r.start + 3072..r.end + 3072).collect();
    assert!(verify_ranges(&root, &shape, &other, &proof).is_err());
}
