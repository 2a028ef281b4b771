//! Merge programs (`mode: merge`, DiLoCo's outer step over several committed states):
//! the bits of the merged state, `h_0` over the inputs' roots, proofs of input tensors
//! against their own input's root, and the refusals.
use std::collections::BTreeMap;
use std::sync::Arc;
use train::checkpoint::{merge_input, merge_inputs};
use train::program::{inputs_root, Mode};
use train::{Dataset, Program, StateRef, Trainer};

type State = BTreeMap<String, repops::Tensor>;

fn cpu() -> Arc<dyn repops::Backend> {
    Arc::new(repops::CpuBackend)
}

fn base() -> Program {
    let mut p = Program::builtin("mlp-digits").unwrap();
    p.record_loss = true;
    p.steps = 4;
    p
}

/// `steps` steps of `p` (batch seed `seed`) from `from` (whose counter is `step`).
fn train_from(from: &State, step: u64, seed: u64, steps: u64) -> State {
    let mut p = base();
    p.seed = seed;
    p.steps = steps;
    p.init_state = Some(StateRef {
        name: "g.safetensors".into(),
        root: train::state_hash(from),
        step,
    });
    let mut tr =
        Trainer::from_initial(p, Dataset::builtin("digits").unwrap(), cpu(), from.clone()).unwrap();
    for t in 1..=steps {
        tr.step(t).unwrap();
    }
    tr.state().clone()
}

fn sref(name: &str, s: &State) -> StateRef {
    StateRef {
        name: name.into(),
        root: train::state_hash(s),
        step: train::checkpoint::step_counter(s) as u64,
    }
}

fn merge_of(inputs: &[(&str, &State)], outer_lr: f32) -> Program {
    let mut p = base();
    p.mode = Mode::Merge { outer_lr };
    p.steps = 1;
    p.inputs = inputs.iter().map(|(n, s)| sref(n, s)).collect();
    p
}

/// G, and two contributions of 3 steps each from it on their own batches.
fn round() -> (State, State, State) {
    let g = train::trainer::initial_state(&base()).unwrap();
    let g = train_from(&g, 0, 1, 2);
    (
        g.clone(),
        train_from(&g, 2, 11, 3),
        train_from(&g, 2, 12, 3),
    )
}

#[test]
fn a_merge_is_the_outer_step_over_the_contributions_bit_for_bit() {
    let (g, c0, c1) = round();
    let p = merge_of(&[("g", &g), ("c0", &c0), ("c1", &c1)], 0.7);
    let start = merge_inputs(&p, vec![g.clone(), c0.clone(), c1.clone()]).unwrap();
    let mut tr =
        Trainer::from_initial(p.clone(), Dataset::builtin("digits").unwrap(), cpu(), start)
            .unwrap();
    // h_0 is the root over the inputs' roots, which the chain computes alone.
    assert_eq!(tr.state_hash(), inputs_root(&p.inputs));
    assert_eq!(p.committed_h0(), Some(inputs_root(&p.inputs)));
    tr.step(1).unwrap();
    let m = tr.state().clone();
    assert_eq!(
        m.keys().collect::<Vec<_>>(),
        g.keys().collect::<Vec<_>>(),
        "the base layout"
    );
    let (outer, mean) = (0.7f32 / 2.0, 1.0f32 / 2.0);
    for (name, t) in &m {
        let (gv, a, b) = (g[name].data(), c0[name].data(), c1[name].data());
        let want: Vec<f32> = match name.as_str() {
            "opt.step" => vec![gv[0] + 1.0],
            n if n.starts_with("opt.beta") => a.to_vec(),
            n if n.starts_with("opt.") || n == "loss" => {
                a.iter().zip(b).map(|(x, y)| (x + y) * mean).collect()
            }
            _ => (0..gv.len())
                .map(|i| gv[i] + ((a[i] - gv[i]) + (b[i] - gv[i])) * outer)
                .collect(),
        };
        let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
        assert_eq!(bits(t.data()), bits(&want), "{name}");
    }
    assert_eq!(m["opt.step"].data()[0], 3.0, "G's counter plus one");
    // The merged state checkpoints like any step's, counting on from G's counter.
    let ck = train::checkpoint::encode(&p, 1, &m).unwrap();
    let shapes = p.graph().unwrap().state_shapes;
    let (step, back) = train::checkpoint::decode(&p, &shapes, &ck).unwrap();
    assert_eq!((step, train::state_hash(&back)), (1, tr.state_hash()));
    // Bit-identical at 2 threads.
    let again = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
        .install(|| {
            let start = merge_inputs(&p, vec![g.clone(), c0.clone(), c1.clone()]).unwrap();
            let mut tr =
                Trainer::from_initial(p.clone(), Dataset::builtin("digits").unwrap(), cpu(), start)
                    .unwrap();
            tr.step(1).unwrap();
            tr.state_hash()
        });
    assert_eq!(again, train::state_hash(&m));
}

#[test]
fn one_contribution_at_outer_lr_one_is_that_contribution_up_to_rounding() {
    let (g, c0, _) = round();
    let p = merge_of(&[("g", &g), ("c0", &c0)], 1.0);
    let start = merge_inputs(&p, vec![g.clone(), c0.clone()]).unwrap();
    let mut tr =
        Trainer::from_initial(p, Dataset::builtin("digits").unwrap(), cpu(), start).unwrap();
    tr.step(1).unwrap();
    // Moments and loss are C_0's exactly (times 1); parameters are g + (c - g).
    for (name, t) in tr.state() {
        if name.starts_with("opt.m") || name.starts_with("opt.v") || name == "loss" {
            assert_eq!(t, &c0[name], "{name}");
        }
    }
}

#[test]
fn input_tensors_are_proven_against_their_own_inputs_root() {
    let (g, c0, c1) = round();
    let p = merge_of(&[("g", &g), ("c0", &c0), ("c1", &c1)], 1.0);
    let start = merge_inputs(&p, vec![g.clone(), c0.clone(), c1.clone()]).unwrap();
    let graph = p.graph().unwrap();
    let mut read = 0;
    for node in &graph.nodes {
        for input in &node.inputs {
            let train::Input::State(name) = input else {
                continue;
            };
            let (slot, proof) = train::exec::state_input_proof(&p, 0, &start, name).unwrap();
            let (i, root) = slot.input.expect("a merge's step 1 reads its inputs");
            assert_eq!(root, p.inputs[i].root);
            let own = merge_input(&p, &start, i).unwrap();
            let leaf = train::exec::state_leaf(
                &slot.leaf_name,
                &repops::tensor_hash(&own[&slot.leaf_name]),
            );
            assert!(train::merkle::verify(&root, &leaf, &proof), "{name}");
            assert_eq!((proof.index, proof.leaf_count), (slot.index, slot.count));
            read += 1;
        }
    }
    assert!(read > 3 * g.len() / 2, "{read}");
    // After step 1 the state is an ordinary one, proven against h_1.
    let slot = p.state_slot(1, "l0.w").unwrap();
    assert_eq!(slot.input, None);
    assert!(p.state_slot(0, "x/l0.w").is_err());
    assert!(
        p.state_slot(0, "c2/l0.w").is_err(),
        "only two contributions"
    );
}

#[test]
fn a_merge_refuses_inputs_that_are_not_the_committed_ones() {
    let (g, c0, c1) = round();
    let p = merge_of(&[("g", &g), ("c0", &c0), ("c1", &c1)], 1.0);
    let digits = Dataset::builtin("digits").unwrap();
    // Swapped contributions hash to other roots.
    let swapped = merge_inputs(&p, vec![g.clone(), c1.clone(), c0.clone()]).unwrap();
    assert!(Trainer::from_initial(p.clone(), digits.clone(), cpu(), swapped).is_err());
    // A missing input.
    assert!(merge_inputs(&p, vec![g.clone(), c0.clone()]).is_err());
    // A merge never starts from its seed.
    assert!(train::trainer::initial_state(&p).is_err());
    assert!(Trainer::new(p, digits).is_err());
}

#[test]
fn merge_programs_are_validated() {
    let (g, c0, _) = round();
    let ok = merge_of(&[("g", &g), ("c0", &c0)], 1.0);
    ok.validate().unwrap();
    let json = serde_json::to_string(&ok).unwrap();
    assert_eq!(Program::from_json(&json).unwrap(), ok);
    let bad = |f: &dyn Fn(&mut Program)| {
        let mut p = ok.clone();
        f(&mut p);
        p.validate().unwrap_err().to_string()
    };
    assert!(bad(&|p| p.inputs.truncate(1)).contains("2..="));
    assert!(bad(&|p| p.steps = 2).contains("one step"));
    assert!(bad(&|p| p.mode = Mode::Merge { outer_lr: 0.0 }).contains("outer_lr"));
    assert!(bad(&|p| p.mode = Mode::Merge { outer_lr: f32::NAN }).contains("outer_lr"));
    assert!(bad(&|p| p.mode = Mode::Train).contains("only mode merge"));
    assert!(bad(&|p| p.inputs[1].name.clear()).contains("inputs[1].name"));
    assert!(bad(&|p| {
        let i = p.inputs[0].clone();
        p.inputs = vec![i; train::program::MAX_MERGE_INPUTS + 1];
    })
    .contains("2..="));
    // Programs without inputs keep their JSON (and so their hashes).
    assert!(
        !serde_json::to_string(&Program::builtin("tiny-lm").unwrap())
            .unwrap()
            .contains("inputs")
    );
}

#[test]
fn a_merges_planned_peak_counts_every_input_state() {
    let (g, c0, c1) = round();
    let state: u64 = g.values().map(|t| 4 * t.len() as u64).sum();
    let two = merge_of(&[("g", &g), ("c0", &c0)], 1.0).graph().unwrap();
    let three = merge_of(&[("g", &g), ("c0", &c0), ("c1", &c1)], 1.0)
        .graph()
        .unwrap();
    assert!(two.planned_peak_bytes() >= 3 * state);
    assert!(three.planned_peak_bytes() >= 4 * state);
    assert!(three.planned_peak_bytes() > two.planned_peak_bytes());
}
