//! Checkpoint files (safetensors with Veritrain metadata) through
//! `train::checkpoint::decode_hashed`, what a verifier runs on a checkpoint
//! a solver serves and what `MsgPostCheckpoint` runs on chain.
//!
//! Input: first byte even → the rest is a checkpoint file for a small
//! fixed program. Odd → a step and tensor values (NaN, infinities,
//! subnormals, -0 included) that the harness encodes with
//! `checkpoint::encode`, so the decoder's checks are reached behind a valid
//! state hash.
//!
//! Invariants:
//! - an accepted file's state has exactly the program's tensors and shapes,
//!   only finite values, `opt.step` equal to the step, and the returned hash
//!   is its state hash;
//! - decode → encode → decode gives the same step and the same bits;
//! - encode → decode accepts exactly the states that are finite and whose
//!   `opt.step` matches the step, and gives back the same bits.
#![no_main]
use libfuzzer_sys::fuzz_target;
use repops::Tensor;
use std::collections::BTreeMap;
use train::checkpoint;
use train::program::{Activation, DatasetRef, Model, Optimizer};
use train::Program;
use veritrain_fuzz::Reader;

type State = BTreeMap<String, Tensor>;

fn program() -> &'static (Program, BTreeMap<String, Vec<usize>>) {
    static P: std::sync::OnceLock<(Program, BTreeMap<String, Vec<usize>>)> =
        std::sync::OnceLock::new();
    P.get_or_init(|| {
        let p = Program {
            name: "ck".into(),
            model: Model::Mlp {
                input: 2,
                hidden: vec![],
                classes: 2,
                activation: Activation::Relu,
                input_scale: 1.0,
            },
            loss: train::program::Loss::CrossEntropy,
            optimizer: Optimizer::Sgd {
                lr: 0.1,
                momentum: 0.5,
            },
            batch_size: 1,
            steps: 4,
            seed: 1,
            dataset: DatasetRef {
                name: "x".into(),
                root: [0; 32],
                train_rows: 1,
            },
            op_version: repops::OP_VERSION,
            init_state: None,
            inputs: Vec::new(),
            mode: Default::default(),
            record_loss: false,
            schedule: None,
            clip_norm: None,
            grad_accum: 1,
        };
        let shapes = p
            .state_spec()
            .expect("spec")
            .into_iter()
            .map(|(k, (s, _))| (k, s))
            .collect();
        (p, shapes)
    })
}

fn same_bits(a: &State, b: &State) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|((ka, ta), (kb, tb))| {
            ka == kb
                && ta.shape() == tb.shape()
                && ta
                    .data()
                    .iter()
                    .map(|v| v.to_bits())
                    .eq(tb.data().iter().map(|v| v.to_bits()))
        })
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let (p, _) = program();
    let s0 = train::trainer::initial_state(p).expect("h_0");
    let mut a = vec![0u8];
    a.extend(checkpoint::encode(p, 0, &s0).expect("encode"));
    let mut s2 = s0.clone();
    s2.insert("opt.step".into(), Tensor::scalar(2.0));
    let mut b = vec![0u8];
    b.extend(checkpoint::encode(p, 2, &s2).expect("encode"));
    vec![
        ("step0", a),
        ("step2", b),
        ("built", vec![1, 0, 0, 0, 0, 0, 0, 0, 0]),
    ]
}

fuzz_target!(
    init: veritrain_fuzz::write_seeds_if_asked(seeds),
    |data: &[u8]| {
        let (p, shapes) = program();
        let mut r = Reader::new(data);
        if r.u8() & 1 == 0 {
            let Ok((step, state, hash)) = checkpoint::decode_hashed(p, shapes, r.rest()) else { return };
            assert!(state.keys().eq(shapes.keys()));
            assert!(state.iter().all(|(k, t)| t.shape() == shapes[k].as_slice()));
            assert!(checkpoint::check_finite(&state).is_ok());
            assert_eq!(state["opt.step"].data()[0], step as f32);
            assert_eq!(hash, train::state_hash(&state));
            let again = checkpoint::encode(p, step, &state).expect("re-encode");
            let (s2, st2, h2) = checkpoint::decode_hashed(p, shapes, &again).expect("re-encoded decodes");
            assert!(s2 == step && h2 == hash && same_bits(&state, &st2));
            return;
        }
        let step = u64::from(r.u8() % 8);
        let state: State = shapes
            .iter()
            .map(|(k, s)| {
                let n: usize = s.iter().product();
                let data = (0..n).map(|_| r.f32()).collect();
                (k.clone(), Tensor::new(s.clone(), data).expect("tensor"))
            })
            .collect();
        let bytes = checkpoint::encode(p, step, &state).expect("encode");
        let ok = checkpoint::check_finite(&state).is_ok() && state["opt.step"].data()[0] == step as f32;
        match checkpoint::decode(p, shapes, &bytes) {
            Ok((s2, st2)) => {
                assert!(ok, "accepted a non-finite state or a wrong step");
                assert!(s2 == step && same_bits(&state, &st2));
            }
            Err(e) => assert!(!ok, "refused its own encoding: {e}"),
        }
    }
);
