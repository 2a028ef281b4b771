//! Program rules that submission applies (`tasks::validate_program`), each with the
//! attack it stops.

use tasks::{validate_program, Params, TasksError};

fn json(p: &train::Program) -> Vec<u8> {
    serde_json::to_vec(p).unwrap()
}

/// The reveal bytes a program is refused for, if it is, on a dataset the chain does
/// not hold (the digits rows in chunks of 16 under another root): a dispute proves
/// the step's rows against its root, each with its whole chunk.
fn reveal_refusal(p: &train::Program, params: &Params) -> Option<u64> {
    let mut p = p.clone();
    p.dataset.name = "ext-digits".into();
    p.dataset.root = [7; 32];
    let info = proto::tasks::v1::DatasetInfo {
        schema: "digits8x8".into(),
        rows: 1797,
        row_bytes: 65,
        chunk_rows: 16,
    };
    match validate_program(&json(&p), params, Some(&info)).err()? {
        TasksError::NodeTooExpensive {
            what: "reveal bytes",
            got,
            ..
        } => Some(got),
        other => panic!("refused for another reason: {other}"),
    }
}

/// A dispute over a node that reads the batch may need every row the step read, each
/// proven with its whole chunk, within `max_reveal_bytes`. With gradient accumulation
/// a step reads `grad_accum × batch_size` rows. Counting only `batch_size` would let a
/// submitter (or a colluding solver) pass a program whose batch nodes no dispute can
/// adjudicate: a cheat in one would never be slashed.
#[test]
fn every_micro_batch_counts_toward_the_reveal_bound() {
    let mut p = train::Program::builtin("mlp-digits").unwrap();
    let mut params = Params {
        max_reveal_bytes: 0,
        ..Params::default()
    };
    let one = reveal_refusal(&p, &params).expect("refused at a zero bound");
    assert_eq!(
        one,
        64 * 16 * 65,
        "each of a batch's 64 rows with its chunk of 16"
    );
    params.max_reveal_bytes = one;
    assert_eq!(reveal_refusal(&p, &params), None, "one batch fits exactly");
    p.grad_accum = 2;
    assert_eq!(
        reveal_refusal(&p, &params),
        Some(2 * one),
        "two micro-batches reveal twice the rows"
    );
}

/// Every builtin program, and the 124M-parameter GPT-2-shaped one, is submittable at the
/// default bounds: each node the referee may not recompute whole has a tile that fits,
/// so a dispute on any of them is judged within `max_referee_flops` and
/// `max_reveal_bytes`.
#[test]
fn every_builtin_and_gpt2_small_are_disputable_at_the_default_bounds() {
    let p = Params::default();
    for name in [
        "mlp-digits",
        "tiny-lm",
        "gated-digits",
        "llama-lm",
        "cnn-digits",
    ] {
        let prog = train::Program::builtin(name).unwrap();
        if let Err(e) = validate_program(&json(&prog), &p, None) {
            panic!("{name}: {e}");
        }
    }
    let (mut g, ds) = train::program::gpt2_small_on_random_tokens(128, 12).unwrap();
    g.dataset.train_rows = ds.rows() - 1;
    let h = ds.header();
    let info = proto::tasks::v1::DatasetInfo {
        schema: tasks::task::schema_name(h.schema).into(),
        rows: h.rows,
        row_bytes: h.row_bytes,
        chunk_rows: h.chunk_rows,
    };
    let big = Params {
        max_state_bytes: 4 << 30,
        max_program_bytes: 1 << 20,
        ..p
    };
    let nodes = g.nodes().unwrap();
    let inside = nodes
        .iter()
        .filter(|n| !n.fits(big.max_referee_flops, big.max_reveal_bytes))
        .count();
    if let Err(e) = validate_program(&json(&g), &big, Some(&info)) {
        panic!("gpt2-small: {e}");
    }
    eprintln!(
        "gpt2-small: {inside} of {} nodes are disputed inside",
        nodes.len()
    );
}
