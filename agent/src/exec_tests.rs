use super::*;
use train::{Dataset, Trainer};

/// mlp-digits changed by `edit`, its dataset, graph and a trainer at `h_0`.
fn mlp(edit: impl FnOnce(&mut Program)) -> (Program, Dataset, StepGraph, Trainer) {
    let mut p = Program::builtin("mlp-digits").unwrap();
    edit(&mut p);
    let ds = Dataset::builtin(&p.dataset.name).unwrap();
    let graph = p.graph().unwrap();
    let tr = Trainer::new(p.clone(), ds.clone()).unwrap();
    (p, ds, graph, tr)
}

#[test]
fn honest_steps_match_the_trainer_bit_for_bit() {
    let (p, ds, graph, mut tr) = mlp(|p| p.steps = 5);
    let mut state = tr.state().clone();
    for t in 1..=5 {
        let out = run_step(
            &repops::CpuBackend,
            &p,
            &graph,
            &ds,
            &state,
            t,
            &FaultPlan::default(),
        )
        .unwrap();
        let traced = tr.step_traced(t).unwrap();
        assert_eq!(out.state_hash, traced.state_hash, "step {t}");
        assert_eq!(out.node_hashes(), traced.node_hashes, "step {t}");
        state = out.state;
    }
}

#[test]
fn each_fault_changes_exactly_its_step() {
    let mut p = Program::builtin("mlp-digits").unwrap();
    p.steps = 3;
    let ds = Dataset::builtin(&p.dataset.name).unwrap();
    let graph = p.graph().unwrap();
    let s0 = Trainer::new(p.clone(), ds.clone()).unwrap().state().clone();
    let honest = run_step(
        &repops::CpuBackend,
        &p,
        &graph,
        &ds,
        &s0,
        1,
        &FaultPlan::default(),
    )
    .unwrap();
    // An update node's output is a state tensor, so its fault reaches h_1.
    let j = graph.updates.values().next().copied().unwrap();
    for f in [
        format!("corrupt:1:{j}"),
        "skip:1".into(),
        "wrong-batch:1".into(),
        "held-out:1".into(),
    ] {
        let plan: FaultPlan = [f.parse::<Fault>().unwrap()].into_iter().collect();
        assert!(plan.changes_result());
        let bad = run_step(&repops::CpuBackend, &p, &graph, &ds, &s0, 1, &plan).unwrap();
        assert_ne!(bad.state_hash, honest.state_hash, "{f}");
        // A fault at another step leaves step 1 alone.
        let later: FaultPlan = [f.replacen(":1", ":2", 1).parse::<Fault>().unwrap()]
            .into_iter()
            .collect();
        let ok = run_step(&repops::CpuBackend, &p, &graph, &ds, &s0, 1, &later).unwrap();
        assert_eq!(ok.state_hash, honest.state_hash, "{f}");
    }
}

#[test]
fn a_diverged_state_is_refused_like_the_trainer_and_checkpoint_decode_refuse_it() {
    let (p, ds, graph, mut tr) = mlp(|p| {
        p.optimizer = train::program::Optimizer::Sgd {
            lr: 1e30,
            momentum: 0.9,
        }
    });
    let mut state = tr.state().clone();
    for t in 1..=50 {
        let ours = run_step(
            &repops::CpuBackend,
            &p,
            &graph,
            &ds,
            &state,
            t,
            &FaultPlan::default(),
        );
        let theirs = tr.step(t);
        match (ours, theirs) {
            (Ok(o), Ok(r)) => {
                assert_eq!(o.state_hash, r.state_hash, "step {t}");
                let bytes = train::checkpoint::encode(&p, t, &o.state).unwrap();
                train::checkpoint::decode(&p, &graph.state_shapes, &bytes).unwrap();
                state = o.state;
            }
            (Err(a), Err(b)) => {
                assert_eq!(a.to_string(), b.to_string());
                assert!(a.to_string().contains("training diverged"), "{a}");
                return;
            }
            (a, b) => panic!(
                "step {t}: agent {:?} vs trainer {b:?}",
                a.map(|o| o.state_hash)
            ),
        }
    }
    panic!("lr 1e30 must diverge within 50 steps");
}

#[test]
fn bad_fault_specs_are_rejected_with_the_reason() {
    for (s, want) in [
        ("corrupt:0:1", "steps start at 1"),
        ("corrupt:x:1", "not a number"),
        ("corrupt:3", "unknown fault"),
        ("explode", "unknown fault"),
    ] {
        let e = s.parse::<Fault>().unwrap_err();
        assert!(e.contains(want), "{s}: {e}");
    }
    assert_eq!(
        "corrupt:3:7".parse::<Fault>().unwrap().to_string(),
        "corrupt:3:7"
    );
}
