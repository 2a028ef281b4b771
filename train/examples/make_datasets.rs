//! Convert the shipped raw data into VTDS v1 files (run once; the outputs are committed).
//!
//! ```text
//! zcat sklearn/datasets/data/digits.csv.gz > /tmp/digits.csv   # from the scikit-learn wheel
//! cargo run -p train --example make_datasets -- /tmp/digits.csv train/data/corpus.txt train/data
//! ```

use anyhow::{bail, Context, Result};
use train::dataset::{Dataset, Schema};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [csv, txt, out] = args.as_slice() else {
        bail!("usage: make_datasets DIGITS_CSV CORPUS_TXT OUT_DIR");
    };
    let text = std::fs::read_to_string(csv).with_context(|| csv.clone())?;
    let mut rows = Vec::new();
    for (i, line) in text.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let v: Vec<u8> = line
            .split(',')
            .map(|s| s.trim().parse::<u8>())
            .collect::<std::result::Result<_, _>>()
            .with_context(|| format!("line {}", i + 1))?;
        if v.len() != 65 {
            bail!("line {}: {} fields, want 65", i + 1, v.len());
        }
        rows.extend_from_slice(&v);
    }
    // Shuffle the rows once (Fisher-Yates driven by Philox(seed 0x5eed, stream 0)), so
    // that the held-out tail is a random sample rather than the last writers in file order.
    let n = rows.len() / 65;
    let ph = repops::Philox::new(0x5eed, 0);
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        let j = ph.below_at(i as u64, (i + 1) as u32) as usize;
        order.swap(i, j);
    }
    let rows: Vec<u8> = order
        .iter()
        .flat_map(|&r| rows[r * 65..(r + 1) * 65].to_vec())
        .collect();
    let digits = Dataset::build(
        "digits",
        Schema::Digits8x8,
        65,
        16,
        rows,
        "UCI ML hand-written digits (optdigits test set as shipped by scikit-learn): 1797 8x8 images, pixels 0..16, label 0..9, rows shuffled once with Philox(0x5eed)",
        "CC BY 4.0 (UCI Machine Learning Repository, E. Alpaydin and C. Kaynak, 1998); copy from scikit-learn (BSD-3-Clause)",
    )?;
    std::fs::write(format!("{out}/digits.vtds"), digits.to_bytes())?;
    println!(
        "digits: rows={} root={}",
        digits.rows(),
        hex::encode(digits.root())
    );

    let mut corpus = std::fs::read(txt).with_context(|| txt.clone())?;
    while corpus.len() % 64 != 0 {
        corpus.push(b' ');
    }
    // Same one-time shuffle of the 64-byte rows (stream 1), so held-out rows are a sample.
    let n = corpus.len() / 64;
    let mut order: Vec<usize> = (0..n).collect();
    let ph = repops::Philox::new(0x5eed, 1);
    for i in (1..n).rev() {
        let j = ph.below_at(i as u64, (i + 1) as u32) as usize;
        order.swap(i, j);
    }
    let corpus: Vec<u8> = order
        .iter()
        .flat_map(|&r| corpus[r * 64..(r + 1) * 64].to_vec())
        .collect();
    let c = Dataset::build(
        "corpus",
        Schema::Ascii,
        64,
        8,
        corpus,
        "US Declaration of Independence, Constitution preamble, First Amendment, Gettysburg Address, Shakespeare sonnets 18/29/73/116/130 (ASCII, space padded to 64-byte rows, rows shuffled once with Philox(0x5eed, stream 1))",
        "public domain",
    )?;
    std::fs::write(format!("{out}/corpus.vtds"), c.to_bytes())?;
    println!("corpus: rows={} root={}", c.rows(), hex::encode(c.root()));
    Ok(())
}
