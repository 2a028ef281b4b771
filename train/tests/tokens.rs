//! Token datasets (`tokens_u16`, `tokens_u32`): a language model trains on token
//! ids instead of bytes, bit-identically whatever the id width or thread count,
//! and ids outside the vocabulary are refused before anyone trains.
use std::collections::BTreeMap;
use train::dataset::Schema;
use train::{Dataset, Program, Trainer};

/// The builtin corpus as word ids (a toy tokenizer: lower-cased words, ids by
/// first appearance), in rows of `row_tokens` ids.
fn words(row_tokens: usize) -> (Vec<u32>, usize) {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/data/corpus.txt")).unwrap();
    let mut ids: BTreeMap<String, u32> = BTreeMap::new();
    let mut out = Vec::new();
    for w in text.split_whitespace() {
        let w = w.to_lowercase();
        let next = ids.len() as u32;
        out.push(*ids.entry(w).or_insert(next));
    }
    out.truncate(out.len() / row_tokens * row_tokens);
    (out, ids.len())
}

fn dataset(schema: Schema, ids: &[u32], row_tokens: usize) -> Dataset {
    let w = schema.token_bytes().unwrap();
    let data: Vec<u8> = ids
        .iter()
        .flat_map(|&t| match w {
            2 => (t as u16).to_le_bytes().to_vec(),
            _ => t.to_le_bytes().to_vec(),
        })
        .collect();
    Dataset::build(
        "corpus-words",
        schema,
        (row_tokens * w) as u64,
        8,
        data,
        "corpus words",
        "public domain",
    )
    .unwrap()
}

fn program(d: &Dataset, vocab: usize, steps: u64) -> Program {
    let mut p = Program::builtin("tiny-lm").unwrap();
    if let train::program::Model::Transformer { vocab: v, ctx, .. } = &mut p.model {
        *v = vocab;
        *ctx = 16;
    }
    p.steps = steps;
    p.batch_size = 8;
    p.dataset.name = d.header().name.clone();
    p.dataset.root = d.root();
    p.dataset.train_rows = d.rows() * 9 / 10;
    p
}

fn run(p: &Program, d: &Dataset, threads: usize) -> (Vec<f32>, train::Hash) {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap()
        .install(|| {
            let mut tr = Trainer::new(p.clone(), d.clone()).unwrap();
            let losses = (1..=p.steps).map(|t| tr.step(t).unwrap().loss).collect();
            (losses, tr.state_hash())
        })
}

#[test]
fn a_language_model_trains_on_token_ids_bit_identically_at_any_width_and_thread_count() {
    let (ids, vocab) = words(32);
    assert!(vocab > 256, "a vocabulary bytes could not hold: {vocab}");
    let d16 = dataset(Schema::TokensU16, &ids, 32);
    let d32 = dataset(Schema::TokensU32, &ids, 32);
    assert_eq!(d16.header().row_bytes, 64);
    let p16 = program(&d16, vocab, 30);
    let p32 = program(&d32, vocab, 30);
    let (l16, h16) = run(&p16, &d16, 1);
    let (l16b, h16b) = run(&p16, &d16, 2);
    let (l32, h32) = run(&p32, &d32, 2);
    eprintln!(
        "word-level loss {:.3} -> {:.3} (ln V = {:.3})",
        l16[0],
        l16[29],
        (vocab as f32).ln()
    );
    assert_eq!(h16, h16b, "1 and 2 threads");
    assert_eq!(
        h16, h32,
        "the same ids at either width are the same training"
    );
    assert_eq!(
        l16.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        l32.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    assert_eq!(
        l16.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        l16b.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    let first = l16[..5].iter().sum::<f32>() / 5.0;
    let last = l16[25..].iter().sum::<f32>() / 5.0;
    assert!(last < first - 0.5, "{first} -> {last}");

    // The referee rebuilds a step's batch from the proven rows alone: the same tensors.
    let tr = Trainer::new(p16.clone(), d16.clone()).unwrap();
    for t in [1, 17] {
        let proofs = tr.batch_row_proofs(t);
        let rows: BTreeMap<u64, Vec<u8>> = proofs
            .iter()
            .map(|rp| {
                let h = d16.header();
                let within = (rp.row % h.chunk_rows) as usize * h.row_bytes as usize;
                (
                    rp.row,
                    rp.chunk[within..within + h.row_bytes as usize].to_vec(),
                )
            })
            .collect();
        let rebuilt = train::trainer::batch_from_rows(&p16, Schema::TokensU16, 64, t, |r| {
            rows.get(&r).map(|v| v.as_slice())
        })
        .unwrap();
        assert_eq!(rebuilt, tr.batch(t).unwrap());
    }
}

#[test]
fn token_ids_outside_the_vocabulary_and_bad_layouts_are_refused() {
    let (mut ids, vocab) = words(32);
    // One id past the vocabulary, in the last row.
    let n = ids.len();
    ids[n - 3] = vocab as u32;
    let d = dataset(Schema::TokensU32, &ids, 32);
    let p = program(&d, vocab, 5);
    let e = p.validate_dataset(&d).unwrap_err().to_string();
    assert!(e.contains("outside the model's vocabulary"), "{e}");
    assert!(
        Trainer::new(p.clone(), d.clone()).is_err(),
        "refused before any step"
    );
    // A vocabulary that holds it is fine.
    let p = program(&d, vocab + 1, 5);
    p.validate_dataset(&d).unwrap();
    // Rows must be whole tokens, at least two.
    let e = Dataset::build("x", Schema::TokensU16, 63, 8, vec![0; 63 * 4], "", "").unwrap_err();
    assert!(e.to_string().contains("tokens"), "{e}");
    let e = Dataset::build("x", Schema::TokensU32, 4, 8, vec![0; 16], "", "").unwrap_err();
    assert!(e.to_string().contains("at least 2 tokens"), "{e}");
    // Rows shorter than the context are refused for the program.
    let (ids, vocab) = words(8);
    let d = dataset(Schema::TokensU16, &ids, 8);
    let e = program(&d, vocab, 5)
        .validate_dataset(&d)
        .unwrap_err()
        .to_string();
    assert!(e.contains("ctx + 1"), "{e}");
    // Layout names round-trip.
    for s in [
        Schema::Digits8x8,
        Schema::Ascii,
        Schema::TokensU16,
        Schema::TokensU32,
    ] {
        assert_eq!(Schema::parse(s.name()), Some(s));
    }
    // A file survives its round trip with the schema.
    let (ids, _) = words(32);
    let d = dataset(Schema::TokensU16, &ids, 32);
    let back = Dataset::from_bytes(&d.to_bytes(), Some(&d.root())).unwrap();
    assert_eq!(back.header().schema, Schema::TokensU16);
}
