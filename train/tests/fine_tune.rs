//! Fine-tuning from a committed state (`Program::init_state`): the state file is
//! addressed by its hash, the run starts exactly where the pretraining ended, and
//! every way a state file can be wrong is refused.

use std::collections::BTreeMap;
use std::sync::Arc;
use train::checkpoint::{decode_initial, encode, fine_tune_state, read_tensors};
use train::dataset::Schema;
use train::{Dataset, Program, StateRef, Trainer};

/// Another text than the builtin corpus: this repository's architecture notes, in
/// the corpus's row layout.
fn other_text() -> Dataset {
    let corpus = Dataset::builtin("corpus").unwrap();
    let h = corpus.header();
    let text: Vec<u8> = include_str!("../../ARCHITECTURE.md")
        .bytes()
        .filter(|b| *b < 128)
        .collect();
    let n = text.len() / h.row_bytes as usize * h.row_bytes as usize;
    Dataset::build(
        "architecture",
        Schema::Ascii,
        h.row_bytes,
        h.chunk_rows,
        text[..n].to_vec(),
        "Veritrain's ARCHITECTURE.md",
        "Apache-2.0",
    )
    .unwrap()
}

fn tiny_lm_on(d: &Dataset, steps: u64) -> Program {
    let mut p = Program::builtin("tiny-lm").unwrap();
    p.steps = steps;
    p.dataset.name = d.header().name.clone();
    p.dataset.root = d.root();
    p.dataset.train_rows = d.rows() * 9 / 10;
    p
}

fn cpu() -> Arc<dyn repops::Backend> {
    Arc::new(repops::CpuBackend)
}

/// Pretrains tiny-lm for `steps` on the builtin corpus.
fn pretrained(steps: u64) -> (Trainer, Vec<f32>) {
    let mut tr = Trainer::builtin("tiny-lm").unwrap();
    let losses = (1..=steps).map(|t| tr.step(t).unwrap().loss).collect();
    (tr, losses)
}

/// `program` made a fine-tune of `trained`: its initial state and the program that
/// commits to it.
fn fine_tune(
    mut program: Program,
    trained: &Trainer,
) -> (Program, BTreeMap<String, repops::Tensor>) {
    let state = fine_tune_state(&program, trained.state()).unwrap();
    program.init_state = Some(StateRef {
        name: "pretrained.safetensors".into(),
        root: train::state_hash(&state),
        step: 0,
    });
    (program, state)
}

#[test]
fn a_fine_tune_starts_where_pretraining_ended() {
    let (pre, losses) = pretrained(60);
    let text = other_text();
    // The same state under a program on the pretraining corpus evaluates to the
    // pretrained model's held-out loss, bit for bit: the parameters are carried over
    // exactly (only the optimizer starts afresh).
    let corpus = Dataset::builtin("corpus").unwrap();
    let (same, s0) = fine_tune(tiny_lm_on(&corpus, 10), &pre);
    let ev = Trainer::from_initial(same, corpus, cpu(), s0)
        .unwrap()
        .evaluate()
        .unwrap();
    assert_eq!(ev.loss.to_bits(), pre.evaluate().unwrap().loss.to_bits());

    // On another text, the fine-tune's first loss is near where pretraining ended,
    // far below a model trained from the seed (which starts near ln 128 = 4.85).
    let (ft, s0) = fine_tune(tiny_lm_on(&text, 20), &pre);
    let h0 = ft.init_state.as_ref().unwrap().root;
    let mut tr = Trainer::from_initial(ft.clone(), text.clone(), cpu(), s0).unwrap();
    assert_eq!(tr.state_hash(), h0, "h_0 is the committed state's hash");
    let ft_losses: Vec<f32> = (1..=20).map(|t| tr.step(t).unwrap().loss).collect();
    let mut fresh = Trainer::new(tiny_lm_on(&text, 20), text.clone()).unwrap();
    let fresh_first = fresh.step(1).unwrap().loss;
    let pre_end = *losses.last().unwrap();
    eprintln!(
        "pretraining {:.3} -> {pre_end:.3}; fine-tune starts {:.3}, ends {:.3}; from the seed {fresh_first:.3}",
        losses[0],
        ft_losses[0],
        ft_losses[19]
    );
    assert!(
        ft_losses[0] < fresh_first - 1.0,
        "fine-tune starts at {}, the seed at {fresh_first}",
        ft_losses[0]
    );
    // Its first loss is the pretrained model's own on that batch, bit for bit: the
    // same batch under the pretrained state itself (moments and counter included,
    // committed with `init_state.step`) gives the same forward loss.
    let mut cont = ft.clone();
    cont.init_state = Some(StateRef {
        name: "continued.safetensors".into(),
        root: train::state_hash(pre.state()),
        step: 60,
    });
    let mut cont = Trainer::from_initial(cont, text.clone(), cpu(), pre.state().clone()).unwrap();
    assert_eq!(cont.step(1).unwrap().loss.to_bits(), ft_losses[0].to_bits());
    assert!(ft_losses[19] < ft_losses[0], "{ft_losses:?}");

    // Deterministic: the same fine-tune on 2 threads gives the same hashes.
    let again = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
        .install(|| {
            let (ft2, s0) = fine_tune(tiny_lm_on(&other_text(), 20), &pre);
            assert_eq!(ft2, ft);
            let mut tr2 = Trainer::from_initial(ft2, other_text(), cpu(), s0).unwrap();
            (1..=20).for_each(|t| {
                tr2.step(t).unwrap();
            });
            tr2.state_hash()
        });
    assert_eq!(again, tr.state_hash());
}

#[test]
fn a_state_file_is_used_only_if_it_is_the_committed_one() {
    let (pre, _) = pretrained(3);
    let corpus = Dataset::builtin("corpus").unwrap();
    let (ft, s0) = fine_tune(tiny_lm_on(&corpus, 5), &pre);
    let shapes = ft.graph().unwrap().state_shapes;
    let file = encode(&ft, 0, &s0).unwrap();
    assert_eq!(decode_initial(&ft, &shapes, &file).unwrap(), s0);
    // The file is addressed by content: another program's metadata does not matter.
    let elsewhere = encode(&Program::builtin("tiny-lm").unwrap(), 0, &s0).unwrap();
    assert_eq!(decode_initial(&ft, &shapes, &elsewhere).unwrap(), s0);

    let err = |bytes: &[u8]| decode_initial(&ft, &shapes, bytes).unwrap_err().to_string();
    // One parameter changed by one ulp.
    let mut tampered = s0.clone();
    let w = tampered.get_mut("wte").unwrap();
    let mut data = w.data().to_vec();
    data[0] = f32::from_bits(data[0].to_bits() ^ 1);
    *w = repops::Tensor::new(w.shape().to_vec(), data).unwrap();
    assert!(err(&encode(&ft, 0, &tampered).unwrap()).contains("commits to"));
    // A pretraining checkpoint as is: its step counter is not 0 (and its hash differs).
    let pre_file = encode(pre.program(), 3, pre.state()).unwrap();
    assert!(err(&pre_file).contains("commits to"));
    let mut counted = s0.clone();
    counted.insert("opt.step".into(), repops::Tensor::scalar(3.0));
    let mut ft3 = ft.clone();
    ft3.init_state.as_mut().unwrap().root = train::state_hash(&counted);
    let e = decode_initial(&ft3, &shapes, &encode(&ft3, 0, &counted).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("opt.step = 0"), "{e}");
    // Missing tensors, garbage bytes, a non-finite value.
    let mut partial = s0.clone();
    partial.remove("wte");
    assert!(err(&encode(&ft, 0, &partial).unwrap()).contains("missing"));
    assert!(err(b"not a state").contains("safetensors"));
    // A seed program has no committed state to load.
    let seed = tiny_lm_on(&corpus, 5);
    assert!(decode_initial(&seed, &shapes, &file).is_err());
    // A fine-tune cannot be started from its seed by mistake, nor from the wrong state.
    let e = Trainer::new(ft.clone(), corpus.clone())
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("init_state"), "{e}");
    assert!(Trainer::from_initial(ft.clone(), corpus, cpu(), tampered).is_err());
    // Parameters must exist in the trained state with the program's shapes.
    let mut wide = tiny_lm_on(&Dataset::builtin("corpus").unwrap(), 5);
    if let train::program::Model::Transformer { d_mlp, .. } = &mut wide.model {
        *d_mlp *= 2;
    }
    let e = fine_tune_state(&wide, pre.state()).unwrap_err().to_string();
    assert!(e.contains("shape"), "{e}");
    // read_tensors takes any program's checkpoint.
    assert_eq!(&read_tensors(&pre_file).unwrap(), pre.state());
}

#[test]
fn seed_programs_keep_their_hash() {
    // `init_state` is absent from a seed program's JSON, so hashes recorded before
    // fine-tuning existed (and on chain) are unchanged.
    let p = Program::builtin("mlp-digits").unwrap();
    assert!(!serde_json::to_string(&p).unwrap().contains("init_state"));
    let back = Program::from_json(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(back.hash(), p.hash());
}

/// A swarm's measurement: an evaluation program (`mode: evaluate`, `record_loss`)
/// starting from a committed model draws its batches from the held-out pool only,
/// carries every parameter unchanged and records each batch's loss in `h_t`.
#[test]
fn an_evaluation_program_measures_a_committed_model_without_changing_it() {
    let digits = Dataset::builtin("digits").unwrap();
    let mut p = Program::builtin("mlp-digits").unwrap();
    p.record_loss = true;
    p.steps = 40;
    let mut tr = Trainer::new(p.clone(), digits.clone()).unwrap();
    let seed_state = tr.state().clone();
    assert_eq!(seed_state["loss"].data(), &[0.0]);
    let last = (1..=40).map(|t| tr.step(t).unwrap().loss).last().unwrap();
    // A training step records its own loss.
    assert_eq!(tr.state()["loss"].data()[0].to_bits(), last.to_bits());
    let trained = tr.state().clone();

    let eval_of = |state: &BTreeMap<String, repops::Tensor>, step: u64| {
        let mut e = p.clone();
        e.mode = train::program::Mode::Evaluate {
            rows_from: 1500,
            rows_to: 1797,
        };
        e.steps = 3;
        e.seed = 77;
        e.init_state = Some(StateRef {
            name: "model.safetensors".into(),
            root: train::state_hash(state),
            step,
        });
        let mut ev =
            Trainer::from_initial(e.clone(), digits.clone(), cpu(), state.clone()).unwrap();
        let mut losses = vec![];
        for t in 1..=3 {
            assert!(train::trainer::batch_rows(&e, t)
                .iter()
                .all(|r| (1500..1797).contains(r)));
            let r = ev.step(t).unwrap();
            let s = ev.state();
            assert_eq!(s["loss"].data()[0].to_bits(), r.loss.to_bits());
            assert_eq!(s["opt.step"].data()[0], (step + t) as f32);
            for (name, t0) in state {
                if name != "loss" && name != "opt.step" {
                    assert_eq!(&s[name], t0, "{name} is carried unchanged");
                }
            }
            losses.push(r.loss);
        }
        // The run's checkpoints decode, counting on from the committed counter.
        let shapes = e.graph().unwrap().state_shapes;
        let ck = encode(&e, 3, ev.state()).unwrap();
        assert_eq!(train::checkpoint::decode(&e, &shapes, &ck).unwrap().0, 3);
        losses
    };
    let before = eval_of(&seed_state, 0);
    let after = eval_of(&trained, 40);
    let sum = |v: &[f32]| v.iter().map(|&x| x as f64).sum::<f64>();
    eprintln!("held-out loss from the seed {before:?}, after 40 steps {after:?}");
    assert!(sum(&after) < sum(&before) - 1.0, "{before:?} -> {after:?}");
    // Bit-identical on 2 threads.
    let again = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
        .install(|| eval_of(&trained, 40));
    assert_eq!(
        again.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        after.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );

    // Refused: an evaluation without record_loss, an empty or missing pool, a
    // committed counter that is not the file's.
    let mut bad = p.clone();
    bad.mode = train::program::Mode::Evaluate {
        rows_from: 1500,
        rows_to: 1797,
    };
    bad.record_loss = false;
    assert!(bad.validate().is_err());
    bad.record_loss = true;
    bad.mode = train::program::Mode::Evaluate {
        rows_from: 9,
        rows_to: 9,
    };
    assert!(bad.validate().is_err());
    bad.mode = train::program::Mode::Evaluate {
        rows_from: 1500,
        rows_to: 5000,
    };
    assert!(bad.validate_dataset(&digits).is_err());
    bad.mode = train::program::Mode::Evaluate {
        rows_from: 1500,
        rows_to: 1797,
    };
    bad.init_state = Some(StateRef {
        name: "model.safetensors".into(),
        root: train::state_hash(&trained),
        step: 39,
    });
    let shapes = bad.graph().unwrap().state_shapes;
    let e = decode_initial(&bad, &shapes, &encode(&bad, 0, &trained).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("opt.step = 39"), "{e}");
}
