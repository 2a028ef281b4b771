//! Whole-program behaviour: accuracy, determinism across thread counts, traces that a
//! referee can re-check node by node, and checkpoints.

use repops::Tensor;
use std::collections::BTreeMap;
use train::exec::run_nodes;
use train::{execute_node, merkle, Input, Trainer};

fn run(name: &str, steps: u64, threads: usize) -> (train::Hash, train::Hash, Trainer) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .unwrap();
    pool.install(|| {
        let mut tr = Trainer::builtin(name).unwrap();
        let mut hs = vec![tr.state_hash()];
        for t in 1..=steps {
            hs.push(tr.step(t).unwrap().state_hash);
        }
        (tr.state_hash(), merkle::root(&hs), tr)
    })
}

#[test]
fn mlp_digits_reaches_95_percent_heldout_accuracy_in_300_steps() {
    let (_, _, tr) = run("mlp-digits", 300, 2);
    let e = tr.evaluate().unwrap();
    let acc = e.accuracy.unwrap();
    assert!(acc >= 0.95, "held-out accuracy {acc}");
    assert_eq!(e.examples, 297);
}

#[test]
fn one_and_two_threads_give_the_same_final_hash_and_trace_root() {
    let (h1, r1, _) = run("mlp-digits", 300, 1);
    let (h2, r2, _) = run("mlp-digits", 300, 2);
    assert_eq!(h1, h2);
    assert_eq!(r1, r2);
    // The published figures (BENCHMARKS.md): hashing may get faster, never different.
    let (l1, lr1, _) = run("tiny-lm", 3, 1);
    let (l2, lr2, _) = run("tiny-lm", 3, 2);
    for (got, want) in [
        (
            h1,
            "038b8cca3cb28546e2473b7eda689b5c169896438d74499913ff678139ab59f8",
        ),
        (
            r1,
            "ecb57c81e083709ed7c8e19d4592e112bc1ed11f1e7e4cfae6fea001665ca15f",
        ),
        (
            l1,
            "341df020c265643c575b0a92a97e52db54c6caf4706484ff5b9547e3a019f786",
        ),
        (
            lr1,
            "175601a81a21c96c3ecd70a3048172446ed5efd60b11fcb978c814abd70fc80a",
        ),
    ] {
        assert_eq!(hex::encode(got), want);
    }
    assert_eq!(l1, l2);
    assert_eq!(lr1, lr2);
}

#[test]
fn traced_and_plain_steps_reach_the_same_state() {
    let mut a = Trainer::builtin("tiny-lm").unwrap();
    let mut b = Trainer::builtin("tiny-lm").unwrap();
    let ra = a.step(1).unwrap();
    let rb = b.step_traced(1).unwrap();
    assert_eq!(ra.state_hash, rb.state_hash);
    assert_eq!(
        ra.state_hash,
        a.state_hash(),
        "incremental hash equals a full rehash"
    );
    assert_eq!(rb.state_hash, b.state_hash());
    assert_eq!(rb.node_hashes.len(), b.graph().nodes.len());
    assert_eq!(rb.op_root, merkle::root(&rb.node_hashes));
}

/// The referee's path: take one node, gather its inputs (state before the step, batch,
/// earlier outputs), execute only that node, compare with the traced hash and prove it
/// against the op root.
#[test]
fn a_referee_recomputes_any_single_node_from_its_revealed_inputs() {
    let tr0 = Trainer::builtin("tiny-lm").unwrap();
    let state: BTreeMap<String, Tensor> = tr0.state().clone();
    let batch = tr0.batch(1).unwrap();
    let mut tr = Trainer::builtin("tiny-lm").unwrap();
    let traced = tr.step_traced(1).unwrap();
    let nodes = tr0.graph().nodes.clone();
    let outs = run_nodes(&nodes, &state, &batch, |_, _| {}).unwrap();
    for j in [0, 7, nodes.len() / 2, nodes.len() - 1] {
        let node = &nodes[j];
        let ins: Vec<&Tensor> = node
            .inputs
            .iter()
            .map(|i| match i {
                Input::State(s) => &state[s],
                Input::Batch(s) => &batch[s],
                Input::Node(n) => &outs[*n],
            })
            .collect();
        let out = execute_node(node, &ins).unwrap();
        assert_eq!(
            repops::tensor_hash(&out),
            traced.node_hashes[j],
            "node {j} {}",
            node.label
        );
        let p = merkle::proof(&traced.node_hashes, j).unwrap();
        assert!(merkle::verify(&traced.op_root, &traced.node_hashes[j], &p));
        let c = node.cost();
        assert!(c.input_bytes > 0);
    }
}

#[test]
fn a_checkpoint_resumes_to_the_same_final_hash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ck.safetensors");
    let mut a = Trainer::builtin("mlp-digits").unwrap();
    for t in 1..=20 {
        a.step(t).unwrap();
    }
    a.save_checkpoint(&path).unwrap();
    for t in 21..=40 {
        a.step(t).unwrap();
    }
    let p = a.program().clone();
    let d = a.dataset().clone();
    let mut b = Trainer::load_checkpoint(p, d, &path).unwrap();
    assert_eq!(b.current_step(), 20);
    for t in 21..=40 {
        b.step(t).unwrap();
    }
    assert_eq!(a.state_hash(), b.state_hash());
}

#[test]
fn the_tiny_lm_learns_below_the_unigram_entropy() {
    let (_, _, tr) = run("tiny-lm", 60, 2);
    let e = tr.evaluate().unwrap();
    let u = tr.unigram_entropy();
    assert!((e.loss as f64) < u, "held-out {} vs unigram {u}", e.loss);
}

#[test]
fn state_hash_covers_optimizer_moments_and_the_step_counter() {
    let tr = Trainer::builtin("mlp-digits").unwrap();
    let names: Vec<&String> = tr.state().keys().collect();
    assert!(names.iter().any(|n| n.as_str() == "opt.step"));
    assert!(names.iter().any(|n| n.starts_with("opt.m.")));
    assert!(names.iter().any(|n| n.starts_with("opt.v.")));
}

#[test]
fn steps_out_of_order_are_refused() {
    let mut tr = Trainer::builtin("mlp-digits").unwrap();
    let e = tr.step(2).unwrap_err().to_string();
    assert!(
        e.contains("step 2 requested but the trainer is at step 0"),
        "{e}"
    );
}

#[test]
fn every_batch_row_is_provable_against_the_program_dataset_root() {
    let tr = Trainer::builtin("tiny-lm").unwrap();
    let root = tr.program().dataset.root;
    let h = tr.dataset().header().clone();
    let rows = tr.batch_rows(5);
    let proofs = tr.batch_row_proofs(5);
    assert_eq!(proofs.len(), rows.len());
    for (r, p) in rows.iter().zip(&proofs) {
        let bytes = train::dataset::verify_row(&root, h.row_bytes, h.chunk_rows, p).unwrap();
        assert_eq!(Some(bytes.as_slice()), tr.dataset().row(*r));
    }
}
