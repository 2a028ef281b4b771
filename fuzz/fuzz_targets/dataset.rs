//! Dataset files (VTDS: magic, header length, JSON header, rows) through
//! their decoder `Dataset::from_bytes` (what a verifier runs on a dataset a
//! solver serves) and the builder `Dataset::build`.
//!
//! Input: first byte even → the rest is a file image. Odd → a schema,
//! `row_bytes`, `chunk_rows` and row data the harness builds a dataset from
//! (so the fuzzer also reaches files whose root matches).
//!
//! Invariants:
//! - decode → encode → decode gives the same header, rows and root, and the
//!   canonical image is a fixed point of encode∘decode;
//! - the image a built dataset writes decodes to the same dataset;
//! - every row's proof verifies against the root and yields that row.
#![no_main]
use libfuzzer_sys::fuzz_target;
use train::dataset::{verify_row, Dataset, Schema};
use veritrain_fuzz::Reader;

fn check(d: &Dataset) {
    let img = d.to_bytes();
    let e = Dataset::from_bytes(&img, Some(&d.root())).expect("a dataset's own image decodes");
    assert_eq!(e.header(), d.header());
    assert_eq!(e.data(), d.data());
    assert_eq!(
        e.to_bytes(),
        img,
        "the canonical image is not a fixed point"
    );
    let h = d.header();
    for i in (0..d.rows()).take(64) {
        let p = d.row_proof(i).expect("a proof for every row");
        let row = verify_row(&d.root(), h.row_bytes, h.chunk_rows, &p);
        assert_eq!(row.as_deref(), d.row(i), "row {i}'s proof");
    }
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let small = Dataset::build(
        "t",
        Schema::Ascii,
        4,
        3,
        b"abcdefghijklmnopqrstuvwx".to_vec(),
        "",
        "",
    )
    .expect("build");
    let mut file = vec![0u8];
    file.extend(small.to_bytes());
    let digits =
        Dataset::build("d", Schema::Digits8x8, 65, 2, vec![3; 65 * 3], "", "").expect("build");
    let mut dfile = vec![0u8];
    dfile.extend(digits.to_bytes());
    vec![
        ("ascii-file", file),
        ("digits-file", dfile),
        ("built", vec![1, 0, 4, 0, 3, 0, b'a', b'b', b'c', b'd']),
    ]
}

fuzz_target!(
    init: veritrain_fuzz::write_seeds_if_asked(seeds),
    |data: &[u8]| {
        let mut r = Reader::new(data);
        if r.u8() & 1 == 0 {
            if let Ok(d) = Dataset::from_bytes(r.rest(), None) {
                check(&d);
            }
            return;
        }
        let schema = if r.bool() { Schema::Digits8x8 } else { Schema::Ascii };
        let row_bytes = r.u16() as u64;
        let chunk_rows = if r.bool() { r.u64() } else { r.u16() as u64 };
        let rows = r.rest().to_vec();
        if let Ok(d) = Dataset::build("fuzz", schema, row_bytes, chunk_rows, rows, "", "") {
            check(&d);
        }
    }
);
