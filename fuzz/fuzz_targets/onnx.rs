//! ONNX files through `train::onnx::import` and `Imported::into_program`: what
//! `vt-train --import-onnx` runs on a file a stranger sends.
//!
//! Input: an ONNX file (seeds: the PyTorch exports in train/tests/onnx/).
//!
//! Invariants:
//! - import is a function of the bytes (twice: the same model and weights);
//! - an imported model's weights are finite and have their params' shapes;
//! - a program made from it (on the base its batch kind needs) validates, its
//!   start state hashes to its `init_state.root`, and it expands into a step.
#![no_main]
use libfuzzer_sys::fuzz_target;
use train::program::{BatchKind, Model};
use train::Program;

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../train/tests/onnx");
    ["mlp", "cnn", "lm"]
        .into_iter()
        .map(|n| {
            let bytes = std::fs::read(format!("{dir}/{n}.onnx")).expect("a committed export");
            (n, bytes)
        })
        .collect()
}

fuzz_target!(
    init: veritrain_fuzz::write_seeds_if_asked(seeds),
    |data: &[u8]| {
        let Ok(m) = train::onnx::import(data) else {
            return;
        };
        let again = train::onnx::import(data).expect("import is a function of the bytes");
        assert_eq!(m.model, again.model);
        assert_eq!(m.weights, again.weights);
        let Model::Graph { params, batch, .. } = &m.model else {
            panic!("an import is a graph");
        };
        for p in params {
            let w = &m.weights[&p.name];
            assert_eq!(w.shape(), p.shape.as_slice());
            assert!(w.data().iter().all(|v| v.is_finite()));
        }
        let base = match batch {
            BatchKind::Rows { .. } => "mlp-digits",
            BatchKind::Tokens { .. } => "tiny-lm",
        };
        let mut base = Program::builtin(base).expect("a builtin");
        base.steps = 1;
        base.batch_size = 2;
        if let Ok((p, state)) = m.into_program(base, "s.safetensors".into()) {
            p.validate().expect("into_program validated it");
            assert_eq!(
                p.init_state.as_ref().map(|s| s.root),
                Some(train::state_hash(&state))
            );
            p.nodes().expect("a valid program expands");
        }
    }
);
