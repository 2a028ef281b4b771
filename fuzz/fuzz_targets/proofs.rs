//! Merkle proofs (`train::merkle::verify`: step hashes against a trace
//! root, op roots, dataset chunks) and dataset row proofs
//! (`train::dataset::verify_row`) through their verifiers. Slice proofs do
//! not exist yet; add them here when they do.
//!
//! Input: the leaves of an honest tree and a leaf index, then edits an
//! attacker may make to the honest proof (flip a sibling bit, drop, add or
//! swap siblings, change index, leaf count or leaf), or for a row proof to
//! the row, the chunk bytes and the layout the verifier is given.
//!
//! Invariants (no hash collisions assumed, as everywhere):
//! - the honest proof of every leaf verifies;
//! - an accepted proof of the tree's leaf count is the honest proof of that
//!   index, for the leaf at that index;
//! - any accepted proof is for one of the tree's leaves (a leaf count that
//!   differs can re-use the shape of a tree; callers check the count);
//! - an accepted row proof under the dataset's own layout returns exactly
//!   that row of the dataset.
#![no_main]
use libfuzzer_sys::fuzz_target;
use train::dataset::{verify_row, Dataset, Schema};
use train::merkle::{self, Hash};
use veritrain_fuzz::Reader;

fn edit_proof(r: &mut Reader<'_>, p: &mut merkle::Proof, leaf: &mut Hash) {
    for _ in 0..r.range(0, 4) {
        match r.u8() % 8 {
            0 => {
                let n = p.siblings.len();
                if n > 0 {
                    let b = r.u8() as usize;
                    p.siblings[r.range(0, n - 1)][b % 32] ^= 1 << (b % 8);
                }
            }
            1 => {
                p.siblings.pop();
            }
            2 => p.siblings.push(*leaf),
            3 => p.index = r.u64() % 80,
            4 => p.leaf_count = r.u64() % 80,
            5 => leaf[0] ^= 1,
            6 => {
                let n = p.siblings.len();
                if n > 1 {
                    p.siblings.swap(0, n - 1);
                }
            }
            _ => {
                p.index = r.u64();
                p.leaf_count = r.u64();
            }
        }
    }
}

fn merkle_case(r: &mut Reader<'_>) {
    let n = r.range(1, 70);
    let tag = r.u8();
    let leaves: Vec<Hash> = (0..n)
        .map(|i| *blake3::hash(&[tag, i as u8, (i >> 8) as u8]).as_bytes())
        .collect();
    let root = merkle::root(&leaves);
    let i = r.range(0, n - 1);
    let honest = merkle::proof(&leaves, i).expect("proof in range");
    assert!(
        merkle::verify(&root, &leaves[i], &honest),
        "the honest proof of leaf {i}/{n}"
    );
    let (mut p, mut leaf) = (honest, leaves[i]);
    edit_proof(r, &mut p, &mut leaf);
    if merkle::verify(&root, &leaf, &p) {
        assert!(
            leaves.contains(&leaf),
            "a proof for a leaf not in the tree was accepted"
        );
        if p.leaf_count == n as u64 {
            let at = p.index as usize;
            assert_eq!(leaf, leaves[at], "accepted for the wrong index");
            assert_eq!(
                Some(&p),
                merkle::proof(&leaves, at).as_ref(),
                "accepted a non-honest proof"
            );
        }
    }
}

fn row_case(r: &mut Reader<'_>) {
    let row_bytes = r.range(1, 9) as u64;
    let chunk_rows = r.range(1, 5) as u64;
    let rows = r.range(1, 40) as u64;
    let data: Vec<u8> = (0..rows * row_bytes)
        .map(|i| (i as u8).wrapping_mul(31) % 128)
        .collect();
    let d = Dataset::build("p", Schema::Ascii, row_bytes, chunk_rows, data, "", "").expect("build");
    let i = r.range(0, rows as usize - 1) as u64;
    let mut p = d.row_proof(i).expect("row proof");
    let (mut rb, mut cr) = (row_bytes, chunk_rows);
    let mut leaf = [0u8; 32];
    edit_proof(r, &mut p.proof, &mut leaf);
    for _ in 0..r.range(0, 3) {
        match r.u8() % 5 {
            0 => p.row = r.u64() % 64,
            1 => p.row = r.u64(),
            2 => {
                if !p.chunk.is_empty() {
                    let k = r.range(0, p.chunk.len() - 1);
                    p.chunk[k] ^= 1;
                }
            }
            3 => rb = r.u64(),
            _ => cr = r.u64(),
        }
    }
    let got = verify_row(&d.root(), rb, cr, &p);
    if let Some(bytes) = got {
        if (rb, cr) == (row_bytes, chunk_rows)
            && p.proof.leaf_count == d.header().rows.div_ceil(chunk_rows)
        {
            assert_eq!(
                Some(bytes.as_slice()),
                d.row(p.row),
                "accepted the wrong row"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    if r.bool() {
        merkle_case(&mut r);
    } else {
        row_case(&mut r);
    }
});
