//! Bad input is reported with a message saying what is wrong, never a panic.

use repops::Tensor;
use train::{execute_node, Dataset, Program, Trainer};

fn err_of<T: std::fmt::Debug, E: std::fmt::Display>(r: Result<T, E>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn a_node_given_a_wrongly_shaped_input_says_which_and_how() {
    let nodes = Program::builtin("mlp-digits").unwrap().nodes().unwrap();
    let mm = nodes.iter().find(|n| n.op.name() == "mat_mul").unwrap();
    let a = Tensor::zeros(&[3, 3]);
    let b = Tensor::zeros(&[3, 3]);
    let e = err_of(execute_node(mm, &[&a, &b]));
    assert!(e.contains("has shape [3, 3], the node declares"), "{e}");
    let e = err_of(execute_node(mm, &[&a]));
    assert!(e.contains("expected 2 inputs, got 1"), "{e}");
}

#[test]
fn an_out_of_range_label_is_an_index_error() {
    let nodes = Program::builtin("mlp-digits").unwrap().nodes().unwrap();
    let ce = nodes
        .iter()
        .find(|n| n.op.name() == "cross_entropy")
        .unwrap();
    let logits = Tensor::zeros(&ce.input_shapes[0]);
    let mut y = Tensor::zeros(&ce.input_shapes[1]);
    y.data_mut()[3] = 10.0;
    let e = err_of(execute_node(ce, &[&logits, &y]));
    assert!(
        e.contains("index 10 at position 3 is not an integer in 0..10"),
        "{e}"
    );
    y.data_mut()[3] = f32::NAN;
    let e = err_of(execute_node(ce, &[&logits, &y]));
    assert!(e.contains("index NaN at position 3"), "{e}");
}

#[test]
fn impossible_programs_are_rejected_with_the_offending_field() {
    let base = Program::builtin("tiny-lm").unwrap();
    let mut p = base.clone();
    if let train::program::Model::Transformer { heads, .. } = &mut p.model {
        *heads = 5;
    }
    assert!(err_of(p.validate()).contains("heads = 5 does not divide d_model = 64"));
    let mut p = base.clone();
    p.batch_size = 0;
    assert!(err_of(p.validate()).contains("batch_size 0"));
    let mut p = base.clone();
    p.optimizer = train::program::Optimizer::Adamw {
        lr: f32::NAN,
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    assert!(err_of(p.validate()).contains("optimizer.lr = NaN"));
    let mut p = base.clone();
    p.op_version = 2;
    assert!(err_of(p.validate()).contains("op_version 2 is not supported"));
    let mut p = base.clone();
    if let train::program::Model::Transformer { ctx, .. } = &mut p.model {
        *ctx = 64;
    }
    let e = err_of(Trainer::new(p, Dataset::builtin("corpus").unwrap()));
    assert!(
        e.contains("ctx + 1 = 65 exceeds the dataset's 64-byte rows"),
        "{e}"
    );
    let p = Program::builtin("mlp-digits").unwrap();
    let e = err_of(Trainer::new(p, Dataset::builtin("corpus").unwrap()));
    assert!(e.contains("is not the program's"), "{e}");
    assert!(err_of(Program::from_json("{\"name\": 3}")).contains("not a valid program"));
    assert!(err_of(Program::builtin("gpt-5")).contains("no builtin program named"));
}

#[test]
fn a_dataset_file_with_a_wrong_root_or_bad_rows_is_refused() {
    let d = Dataset::builtin("digits").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.vtds");
    let mut bytes = d.to_bytes();
    std::fs::write(&path, &bytes).unwrap();
    let e = err_of(Dataset::load(&path, Some(&[1u8; 32])));
    assert!(e.contains("is not the expected root"), "{e}");
    let n = bytes.len();
    bytes[n - 1] = 200; // a label of 200
    std::fs::write(&path, &bytes).unwrap();
    let e = err_of(Dataset::load(&path, None));
    assert!(e.contains("label 200 is outside 0..=9"), "{e}");
    std::fs::write(&path, b"VTDSET01\xff\xff\xff\xff{}").unwrap();
    let e = err_of(Dataset::load(&path, None));
    assert!(e.contains("runs past the end of the file"), "{e}");
    let e = err_of(Dataset::load(&dir.path().join("missing.vtds"), None));
    assert!(e.contains("missing.vtds"), "{e}");
}

#[test]
fn a_tampered_or_foreign_checkpoint_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck.safetensors");
    let mut tr = Trainer::builtin("mlp-digits").unwrap();
    tr.step(1).unwrap();
    tr.save_checkpoint(&path).unwrap();
    let p = tr.program().clone();
    let d = tr.dataset().clone();

    // flip one bit of the last tensor's data
    let mut bytes = std::fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 0x01;
    std::fs::write(&path, &bytes).unwrap();
    let e = err_of(Trainer::load_checkpoint(p.clone(), d.clone(), &path));
    assert!(e.contains("does not match the recorded"), "{e}");

    // a NaN in a tensor
    bytes[n - 4..].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&path, &bytes).unwrap();
    let e = err_of(Trainer::load_checkpoint(p.clone(), d.clone(), &path));
    assert!(e.contains("non-finite value NaN"), "{e}");

    // garbage
    std::fs::write(&path, b"not a checkpoint").unwrap();
    let e = err_of(Trainer::load_checkpoint(p.clone(), d.clone(), &path));
    assert!(e.contains("not a safetensors file"), "{e}");

    // another program's checkpoint
    tr.save_checkpoint(&path).unwrap();
    let mut other = p.clone();
    other.seed = 99;
    let e = err_of(Trainer::load_checkpoint(other, d, &path));
    assert!(e.contains("checkpoint is for program"), "{e}");
}

/// mlp-digits with a learning rate that overflows within a few steps.
fn diverging() -> Program {
    let mut p = Program::builtin("mlp-digits").unwrap();
    p.optimizer = train::program::Optimizer::Sgd {
        lr: 1e30,
        momentum: 0.9,
    };
    p
}

#[test]
fn a_diverging_program_stops_with_a_non_finite_error() {
    let mut tr = Trainer::new(diverging(), Dataset::builtin("digits").unwrap()).unwrap();
    let mut err = None;
    for t in 1..=50 {
        if let Err(e) = tr.step(t) {
            err = Some(e.to_string());
            break;
        }
    }
    let e = err.expect("lr 1e30 must diverge");
    assert!(e.contains("training diverged"), "{e}");
}

#[test]
fn a_diverging_run_is_refused_by_the_executor_at_the_step_whose_checkpoint_decode_refuses() {
    use train::{checkpoint, Honest, Record, StepExecutor};
    let p = diverging();
    let ds = Dataset::builtin("digits").unwrap();
    let graph = p.graph().unwrap();
    let exec = StepExecutor::new(&p, &graph, &ds, &repops::CpuBackend);
    let mut state = Trainer::new(p.clone(), ds.clone()).unwrap().state().clone();
    for t in 1..=50 {
        match exec.run(t, &state, Record::STATE, &Honest) {
            Ok(out) => {
                // Every state the executor accepts has a checkpoint that loads.
                let bytes = checkpoint::encode(&p, t, &out.state).unwrap();
                checkpoint::decode(&p, &graph.state_shapes, &bytes).unwrap();
                state = out.state;
            }
            Err(e) => {
                assert!(e.to_string().contains("training diverged"), "{e}");
                // The state it refused, computed without the executor, has a checkpoint
                // that decode refuses for the same reason.
                let batch = train::batch_for_step(&p, &ds, t).unwrap();
                let outs = train::exec::run_nodes(&graph.nodes, &state, &batch, |_, _| {}).unwrap();
                let refused: std::collections::BTreeMap<String, repops::Tensor> = graph
                    .updates
                    .iter()
                    .map(|(name, &i)| (name.clone(), outs[i].clone()))
                    .collect();
                let bytes = checkpoint::encode(&p, t, &refused).unwrap();
                let e = err_of(checkpoint::decode(&p, &graph.state_shapes, &bytes));
                assert!(e.contains("non-finite value"), "{e}");
                return;
            }
        }
    }
    panic!("lr 1e30 must diverge within 50 steps");
}

#[test]
fn an_embedding_backward_costs_at_least_one_operation_per_gradient_element() {
    // Found by fuzz/cost_model: the cost counted only the first input (the
    // ids), so a batch of more positions than twice the vocabulary cost less
    // than the gradient rows the referee really reads.
    let mut p = Program::builtin("tiny-lm").unwrap();
    if let train::program::Model::Transformer { vocab, .. } = &mut p.model {
        *vocab = 2;
    }
    let g = p.graph().unwrap();
    let n = g
        .nodes
        .iter()
        .find(|n| matches!(n.op, repops::Op::EmbeddingBackward { .. }))
        .unwrap();
    let grad_elems: u64 = n.input_shapes[1].iter().map(|&d| d as u64).product();
    assert!(
        n.cost().flops >= grad_elems,
        "{} flops for {grad_elems} gradient elements",
        n.cost().flops
    );
}
