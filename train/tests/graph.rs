//! Graph programs (`model.family: graph`): a model as parameters and forward nodes in
//! RepOps' op vocabulary, its backward built by the same rules as the builtin
//! families'. The builtin models written as graphs train to the same state hashes;
//! the backward rules of the ops only graphs use agree with finite differences;
//! malformed graphs are refused with clear errors.
use std::collections::BTreeMap;
use train::program::{GraphNode, GraphParam, Init, Model};
use train::{Dataset, Program, Trainer};

fn hashes(p: &Program, steps: u64) -> Vec<train::Hash> {
    let d = Dataset::builtin(&p.dataset.name).unwrap();
    let mut tr = Trainer::new(p.clone(), d).unwrap();
    let mut h = vec![tr.state_hash()];
    for t in 1..=steps {
        h.push(tr.step(t).unwrap().state_hash);
    }
    h
}

#[test]
fn the_builtin_models_written_as_graphs_train_to_the_same_state_hashes() {
    for name in ["mlp-digits", "tiny-lm"] {
        let p = Program::builtin(name).unwrap();
        let g = p.to_graph().unwrap();
        let Model::Graph { nodes, params, .. } = &g.model else {
            panic!("not a graph")
        };
        assert!(nodes.len() > 5 && !params.is_empty());
        // The JSON round trip keeps the program (what a submitter sends).
        let json = serde_json::to_string(&g).unwrap();
        assert_eq!(Program::from_json(&json).unwrap(), g);
        let steps = if name == "tiny-lm" { 2 } else { 5 };
        assert_eq!(hashes(&g, steps), hashes(&p, steps), "{name}");
        // Same node list (ops, shapes, inputs), whatever the labels.
        let (a, b) = (p.graph().unwrap(), g.graph().unwrap());
        assert_eq!(a.nodes.len(), b.nodes.len());
        for (x, y) in a.nodes.iter().zip(&b.nodes) {
            assert_eq!((&x.op, &x.inputs, &x.shape), (&y.op, &y.inputs, &y.shape));
        }
        let fp = g.footprint();
        assert!(fp.nodes >= b.nodes.len() as u64, "{fp:?}");
    }
}

/// The shipped `gated-digits` graph at batch `batch`.
fn custom(batch: usize) -> Program {
    let mut p = Program::builtin("gated-digits").unwrap();
    p.batch_size = batch;
    p
}

#[test]
fn a_custom_graph_trains_and_its_backward_agrees_with_finite_differences() {
    let p = custom(8);
    // The buffer has no optimizer slots and is carried unchanged.
    let spec = p.state_spec().unwrap();
    assert!(spec.contains_key("shift") && !spec.contains_key("opt.m.shift"));
    assert!(spec.contains_key("opt.m.wt"));
    let d = Dataset::builtin("digits").unwrap();
    let mut tr = Trainer::new(p.clone(), d.clone()).unwrap();
    let s0 = tr.state().clone();
    let mut losses = vec![];
    for t in 1..=60 {
        losses.push(tr.step(t).unwrap().loss);
    }
    assert_eq!(tr.state()["shift"], s0["shift"]);
    let first: f32 = losses[..5].iter().sum();
    let last: f32 = losses[55..].iter().sum();
    assert!(last < first * 0.8, "{losses:?}");
    // It learns the digits: held-out accuracy after 300 steps at the shipped batch.
    let mut full = Trainer::new(Program::builtin("gated-digits").unwrap(), d.clone()).unwrap();
    for t in 1..=300 {
        full.step(t).unwrap();
    }
    let acc = full.evaluate().unwrap().accuracy.unwrap();
    eprintln!("gated-digits: held-out accuracy {acc:.3} after 300 steps");
    assert!(acc > 0.9, "{acc}");
    // Bit-identical at 2 threads.
    let again = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
        .install(|| hashes(&p, 3));
    assert_eq!(again, hashes(&p, 3));

    check_gradients(&p, &["wt", "gate", "v", "u"]);
}

/// Finite differences (f64 loss of f32 perturbations; a sanity check of the backward
/// rules, not a bit-level one) for a few elements of each named trainable param.
fn check_gradients(p: &Program, names: &[&str]) {
    let g = p.graph().unwrap();
    let d = Dataset::builtin(&p.dataset.name).unwrap();
    let s0 = train::trainer::initial_state(p).unwrap();
    // Finite differences (f64 loss of f32 perturbations; a sanity check of the rules,
    // not a bit-level one) for a few elements of every trainable param.
    let batch = train::trainer::batch_for_step(p, &d, 1).unwrap();
    let run = |state: &BTreeMap<String, repops::Tensor>| -> Vec<repops::Tensor> {
        let mut outs: Vec<repops::Tensor> = Vec::new();
        for n in &g.nodes {
            let ins: Vec<&repops::Tensor> = n
                .inputs
                .iter()
                .map(|i| match i {
                    train::Input::State(s) => &state[s],
                    train::Input::Batch(s) => &batch[s],
                    train::Input::Node(k) => &outs[*k],
                })
                .collect();
            let o = train::execute_node(n, &ins).unwrap();
            outs.push(o);
        }
        outs
    };
    let outs = run(&s0);
    let loss = |state: &BTreeMap<String, repops::Tensor>| run(state)[g.loss].data()[0] as f64;
    for name in names {
        // The gradient node: the AdamM node reads it as its second input.
        let m = g.updates[&format!("opt.m.{name}")];
        let name = *name;
        let train::Input::Node(gi) = g.nodes[m].inputs[1] else {
            panic!("no gradient of {name}")
        };
        let grad = &outs[gi];
        for e in [0usize, 7, 33] {
            let eps = 1e-2f32;
            let mut plus = s0.clone();
            let mut minus = s0.clone();
            let t = &s0[name];
            let mut dp = t.data().to_vec();
            let mut dm = t.data().to_vec();
            dp[e] += eps;
            dm[e] -= eps;
            plus.insert(
                name.into(),
                repops::Tensor::new(t.shape().to_vec(), dp).unwrap(),
            );
            minus.insert(
                name.into(),
                repops::Tensor::new(t.shape().to_vec(), dm).unwrap(),
            );
            let numeric = (loss(&plus) - loss(&minus)) / (2.0 * eps as f64);
            let analytic = grad.data()[e] as f64;
            assert!(
                (numeric - analytic).abs() <= 2e-3 + 0.05 * analytic.abs(),
                "{name}[{e}]: finite differences {numeric}, backward {analytic}"
            );
        }
    }
}

fn nodes(m: &mut Model) -> &mut Vec<GraphNode> {
    match m {
        Model::Graph { nodes, .. } => nodes,
        _ => unreachable!(),
    }
}

fn params(m: &mut Model) -> &mut Vec<GraphParam> {
    match m {
        Model::Graph { params, .. } => params,
        _ => unreachable!(),
    }
}

#[test]
fn malformed_graphs_are_refused_with_clear_errors() {
    let ok = custom(8);
    ok.graph().unwrap();
    let bad = |f: &dyn Fn(&mut Model), want: &str| {
        let mut p = ok.clone();
        f(&mut p.model);
        let e = p.graph().unwrap_err().to_string();
        assert!(e.contains(want), "{want}: {e}");
    };
    bad(
        &|m| nodes(m)[1].inputs[0] = "nope".into(),
        "neither a batch tensor",
    );
    bad(
        &|m| nodes(m)[1].inputs[0] = "lsm".into(),
        "neither a batch tensor",
    );
    bad(&|m| nodes(m)[2].name = "h".into(), "used twice");
    bad(&|m| params(m)[0].name = "opt.m.x".into(), "reserved");
    bad(&|m| params(m)[0].name = "a/b".into(), "without '/'");
    bad(&|m| params(m)[0].shape = vec![0, 3], "shape");
    bad(
        &|m| params(m)[0].init = Init::Uniform(f32::INFINITY),
        "finite",
    );
    bad(&|m| nodes(m)[1].op = repops::Op::Relu, "expected 1 inputs");
    bad(
        &|m| {
            if let Model::Graph { logits, .. } = m {
                *logits = "x".into()
            }
        },
        "not a node",
    );
    // An op without a backward rule on the gradient path.
    bad(
        &|m| nodes(m)[7].op = repops::Op::Log,
        "no backward rule for log",
    );
    bad(&|m| nodes(m).clear(), "1..=");
}

/// Issue 13's acceptance: a CNN on the digits (two convolutions through `im2col` and
/// matrix products, max pooling through `im2col` and `max_last`) reaches 0.97 held-out
/// accuracy, with the same state hash at 1 and 2 threads.
#[test]
fn a_cnn_on_the_digits_reaches_097_held_out_accuracy_the_same_at_1_and_2_threads() {
    let p = Program::builtin("cnn-digits").unwrap();
    check_gradients(&p, &["c1.w", "c2.w", "fc.w"]);
    let d = Dataset::builtin("digits").unwrap();
    let run = || {
        let mut tr = Trainer::new(p.clone(), d.clone()).unwrap();
        for t in 1..=p.steps {
            tr.step(t).unwrap();
        }
        (tr.state_hash(), tr.evaluate().unwrap().accuracy.unwrap())
    };
    let pool = |n| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build()
            .unwrap()
    };
    let (h1, acc) = pool(1).install(run);
    let (h2, acc2) = pool(2).install(run);
    eprintln!(
        "cnn-digits: held-out accuracy {acc:.4} after {} steps",
        p.steps
    );
    assert_eq!(h1, h2);
    assert_eq!(acc, acc2);
    assert!(acc >= 0.97, "{acc}");
}

/// Warmup and cosine decay of the learning rate, and gradient clipping: computed by
/// ops from the state's counter and the gradients, so every party gets the same bits.
/// The rate follows the schedule (read back from a one-parameter SGD step), clipping
/// bounds the update, and the builtin models still train with both.
#[test]
fn a_schedule_and_gradient_clipping_are_ops_of_the_step() {
    use train::program::{Optimizer, Schedule};
    let sched = Schedule {
        warmup: 10,
        decay: 40,
        min_factor: 0.1,
    };
    // The rate each step used, from the scheduled program's graph run on the CPU.
    let mut p = Program::builtin("mlp-digits").unwrap();
    p.optimizer = Optimizer::Sgd {
        lr: 0.5,
        momentum: 0.0,
    };
    p.schedule = Some(sched.clone());
    let g = p.graph().unwrap();
    let lr_node = g
        .nodes
        .iter()
        .position(|n| n.label == "lr")
        .expect("an lr node");
    let rate = |t: u64| -> f32 {
        // Evaluate the scalar chain alone: it reads only opt.step.
        let mut outs: Vec<repops::Tensor> = Vec::new();
        let counter = repops::Tensor::scalar((t - 1) as f32);
        for n in &g.nodes[..=lr_node] {
            let ins: Vec<&repops::Tensor> = n
                .inputs
                .iter()
                .map(|i| match i {
                    train::Input::State(s) if s == "opt.step" => &counter,
                    train::Input::Node(k) => &outs[*k],
                    _ => &counter,
                })
                .collect();
            // Nodes off the chain (the forward and backward) are skipped as zeros.
            let reads_only_chain = n.inputs.iter().all(|i| match i {
                train::Input::State(s) => s == "opt.step",
                train::Input::Node(k) => g.nodes[*k].shape.is_empty(),
                train::Input::Batch(_) => false,
            });
            let o = if reads_only_chain && n.shape.is_empty() {
                train::execute_node(n, &ins).unwrap()
            } else {
                repops::Tensor::new(n.shape.clone(), vec![0.0; n.shape.iter().product()]).unwrap()
            };
            outs.push(o);
        }
        outs[lr_node].data()[0]
    };
    let want = |t: u64| -> f64 {
        let w = (t as f64 / 10.0).min(1.0);
        let p = ((t as f64 - 10.0) / 40.0).clamp(0.0, 1.0);
        0.5 * w * (0.1 + 0.9 * (1.0 + (std::f64::consts::PI * p).cos()) / 2.0)
    };
    for t in [1u64, 5, 10, 11, 20, 30, 49, 50, 51, 100] {
        let got = rate(t) as f64;
        assert!(
            (got - want(t)).abs() < 1e-6,
            "t = {t}: {got} vs {}",
            want(t)
        );
    }
    assert_eq!(rate(60), rate(100), "the floor is kept");
    // Both features on the builtin models: they train, the same at 1 and 2 threads, and
    // the footprint still bounds the node list.
    for name in ["mlp-digits", "cnn-digits", "tiny-lm"] {
        let mut p = Program::builtin(name).unwrap();
        p.schedule = Some(sched.clone());
        p.clip_norm = Some(1.0);
        let steps = if name == "tiny-lm" { 2 } else { 20 };
        let g = p.graph().unwrap();
        assert!(p.footprint().nodes >= g.nodes.len() as u64, "{name}");
        let one = hashes(&p, steps);
        let two = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap()
            .install(|| hashes(&p, steps));
        assert_eq!(one, two, "{name}");
        // Absent fields keep the program's JSON and graph.
        let plain = Program::builtin(name).unwrap();
        assert!(!serde_json::to_string(&plain).unwrap().contains("schedule"));
    }
    // Clipping: with a tiny norm the first update is tiny; without, it is not.
    let d = Dataset::builtin("digits").unwrap();
    let moved = |clip: Option<f32>| -> f32 {
        let mut p = Program::builtin("mlp-digits").unwrap();
        p.optimizer = Optimizer::Sgd {
            lr: 0.5,
            momentum: 0.0,
        };
        p.clip_norm = clip;
        let mut tr = Trainer::new(p, d.clone()).unwrap();
        let before = tr.state()["l1.w"].clone();
        tr.step(1).unwrap();
        let after = &tr.state()["l1.w"];
        before
            .data()
            .iter()
            .zip(after.data())
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max)
    };
    let (free, clipped) = (moved(None), moved(Some(1e-3)));
    assert!(clipped <= 0.5 * 1e-3 * 1.001, "{clipped}");
    assert!(free > 10.0 * clipped, "{free} vs {clipped}");
    // Refusals.
    let mut p = Program::builtin("mlp-digits").unwrap();
    p.clip_norm = Some(0.0);
    assert!(p.validate().unwrap_err().to_string().contains("clip_norm"));
    p.clip_norm = None;
    p.schedule = Some(Schedule {
        warmup: 1,
        decay: 1,
        min_factor: 1.5,
    });
    assert!(p.validate().unwrap_err().to_string().contains("min_factor"));
}

/// Gradient accumulation: a step of `k` micro-batches of `B` rows reads `k * B` rows,
/// averages the micro-batches' gradients (summed in order) and losses, and its update
/// equals the one computed from those averaged gradients by hand, bit for bit.
#[test]
fn gradient_accumulation_averages_the_micro_batches_gradients() {
    use train::program::Optimizer;
    let d = Dataset::builtin("digits").unwrap();
    let mut p = Program::builtin("mlp-digits").unwrap();
    p.batch_size = 16;
    p.grad_accum = 4;
    p.optimizer = Optimizer::Sgd {
        lr: 0.25,
        momentum: 0.0,
    };
    assert_eq!(train::trainer::batch_rows(&p, 3).len(), 64);
    let batch = train::trainer::batch_for_step(&p, &d, 1).unwrap();
    assert_eq!(batch.len(), 8, "x and y for each of 4 micro-batches");
    assert_eq!(batch["x#3"].shape(), &[16, 64]);
    // The micro-batches are the step's rows in order.
    let rows = train::trainer::batch_rows(&p, 1);
    let mut one = p.clone();
    one.grad_accum = 1;
    one.batch_size = 64;
    assert_eq!(train::trainer::batch_rows(&one, 1), rows);
    let whole = train::trainer::batch_for_step(&one, &d, 1).unwrap();
    assert_eq!(
        &whole["x"].data()[16 * 64 * 2..16 * 64 * 3],
        batch["x#2"].data()
    );
    // The step: with plain SGD, p1 = p0 - lr * mean(g_i); check l1.b by hand from the
    // graph's own per-micro-batch gradient nodes.
    let g = p.graph().unwrap();
    let tr = Trainer::new(p.clone(), d.clone()).unwrap();
    let s0 = tr.state().clone();
    let out = tr
        .executor()
        .run(1, &s0, train::Record::ALL, &train::Honest)
        .unwrap();
    let outputs = &out.outputs;
    let mean = g
        .nodes
        .iter()
        .position(|n| n.label == "l1.b.grad.mean")
        .unwrap();
    let train::Input::Node(sum) = g.nodes[mean].inputs[0] else {
        panic!()
    };
    let got = outputs[mean].data().to_vec();
    let want: Vec<f32> = outputs[sum].data().iter().map(|v| v * 0.25).collect();
    assert_eq!(got, want);
    let new_b: Vec<f32> = s0["l1.b"]
        .data()
        .iter()
        .zip(&got)
        .map(|(p, g)| p - 0.25 * g)
        .collect();
    assert_eq!(out.state["l1.b"].data(), &new_b[..]);
    // It trains, the same at 2 threads, and the footprint bounds its nodes.
    assert!(p.footprint().nodes >= g.nodes.len() as u64);
    p.steps = 30;
    let a = hashes(&p, 30);
    let b = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
        .install(|| hashes(&p, 30));
    assert_eq!(a, b);
    // Refused outside training and beyond the bound.
    let mut bad = p.clone();
    bad.grad_accum = 0;
    assert!(bad.validate().is_err());
    bad.grad_accum = 65;
    assert!(bad.validate().is_err());
    bad.grad_accum = 2;
    bad.mode = train::program::Mode::Evaluate {
        rows_from: 1500,
        rows_to: 1797,
    };
    bad.record_loss = true;
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("grad_accum"));
}

/// Hostile graphs: random ops (every kind, random parameters), random shapes and
/// random wiring. Expanding one never panics, and whenever it expands, the footprint
/// the chain checks first bounds its node list and its state, with every training
/// feature on (the chain relies on that bound before it expands anything).
#[test]
fn random_graphs_never_panic_and_their_footprint_bounds_the_expansion() {
    use repops::Op;
    use train::program::{BatchKind, Optimizer, Schedule};
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move |n: u64| {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n.max(1)
    };
    let mut expanded = 0;
    for case in 0..20_000 {
        let dims = |next: &mut dyn FnMut(u64) -> u64| -> Vec<usize> {
            (0..next(5))
                .map(|_| [1, 2, 3, 4, 8, 16, 64][next(7) as usize])
                .collect()
        };
        let params: Vec<GraphParam> = (0..next(5))
            .map(|i| GraphParam {
                name: format!("p{i}"),
                shape: dims(&mut next),
                init: [Init::Zeros, Init::Ones, Init::Uniform(0.1)][next(3) as usize],
                trainable: next(4) != 0,
            })
            .collect();
        let mut names: Vec<String> = vec!["x".into(), "y".into()];
        names.extend(params.iter().map(|p| p.name.clone()));
        let mut nodes = Vec::new();
        for j in 0..1 + next(12) {
            let u = |next: &mut dyn FnMut(u64) -> u64| 1 + next(4) as usize;
            let op = match next(25) {
                0 => Op::MatMul {
                    ta: next(2) == 1,
                    tb: next(2) == 1,
                },
                1 => Op::BatchedMatMul {
                    ta: next(2) == 1,
                    tb: next(2) == 1,
                },
                2 => Op::Add,
                3 => Op::Sub,
                4 => Op::Mul,
                5 => Op::AddBias,
                6 => Op::Relu,
                7 => Op::Sigmoid,
                8 => Op::Exp,
                9 => Op::Log,
                10 => Op::LogSoftmax,
                11 => Op::Softmax,
                12 => Op::Transpose,
                13 => Op::Reshape {
                    shape: (0..1 + next(4))
                        .map(|_| [0, 1, 2, 8, 64][next(5) as usize])
                        .collect(),
                },
                14 => Op::Permute {
                    perm: vec![1, 0, 2],
                },
                15 => Op::Im2Col {
                    kh: u(&mut next),
                    kw: u(&mut next),
                    stride: u(&mut next),
                    pad: next(2) as usize,
                },
                16 => Op::MaxLast,
                17 => Op::LayerNorm { eps: 1e-5 },
                18 => Op::Scale { s: 0.5 },
                19 => Op::CausalMask {
                    fill: repops::MaskFill::NegInf,
                },
                20 => Op::Embedding,
                21 => Op::SumLast,
                22 => Op::MeanAxis0,
                23 => Op::Rope {
                    base: 10_000.0,
                    inverse: next(2) == 1,
                },
                _ => Op::Gelu,
            };
            let inputs = (0..op.arity())
                .map(|_| names[next(names.len() as u64) as usize].clone())
                .collect();
            let name = format!("n{j}");
            nodes.push(GraphNode {
                name: name.clone(),
                op,
                inputs,
            });
            names.push(name);
        }
        // Logits: some node (or the input) viewed as [batch, whatever divides].
        let batch = 1 + next(8) as usize;
        let from = names[next(names.len() as u64) as usize].clone();
        nodes.push(GraphNode {
            name: "logits".into(),
            op: Op::Reshape {
                shape: vec![batch, 0],
            },
            inputs: vec![from],
        });
        let logits = "logits".to_string();
        let mut p = Program::builtin("mlp-digits").unwrap();
        p.batch_size = batch;
        p.model = Model::Graph {
            batch: BatchKind::Rows {
                features: 64,
                classes: 10,
            },
            params,
            nodes,
            logits,
        };
        if next(2) == 0 {
            p.optimizer = Optimizer::Sgd {
                lr: 0.1,
                momentum: 0.9,
            };
        }
        p.clip_norm = (next(2) == 0).then_some(1.0);
        p.schedule = (next(2) == 0).then_some(Schedule {
            warmup: 3,
            decay: 5,
            min_factor: 0.0,
        });
        p.grad_accum = 1 + next(3) as u32;
        let fp = p.footprint();
        let Ok(g) = p.graph() else { continue };
        expanded += 1;
        assert!(
            fp.nodes >= g.nodes.len() as u64,
            "case {case}: {fp:?} < {}",
            g.nodes.len()
        );
        let state: u64 = g
            .state_shapes
            .values()
            .map(|s| 4 * s.iter().product::<usize>() as u64)
            .sum();
        assert!(
            fp.state_bytes >= state,
            "case {case}: {fp:?} < {state} bytes"
        );
        for n in &g.nodes {
            let _ = n.cost();
        }
    }
    eprintln!("{expanded} of 20000 random graphs expanded");
    assert!(expanded > 300, "{expanded}");
}

/// The shipped `llama-lm` graph (RMSNorm, SwiGLU through SiLU, RoPE on queries and
/// keys, no biases, with a warmup-cosine schedule and clipping): its backward (RoPE's
/// through `wq` and `wk`) agrees with finite differences,
/// it learns the corpus, and its state hashes are the same at 1 and 2 threads.
#[test]
fn a_llama_style_graph_with_rmsnorm_and_swiglu_trains_on_text() {
    let p = Program::builtin("llama-lm").unwrap();
    let mut plain = p.clone();
    plain.clip_norm = None;
    plain.schedule = None;
    check_gradients(
        &plain,
        &[
            "h0.ln1.g", "h0.wq", "h0.wk", "h1.wk", "h0.w1", "h1.w3", "lnf.g",
        ],
    );
    let d = Dataset::builtin("corpus").unwrap();
    let mut tr = Trainer::new(p.clone(), d).unwrap();
    let losses: Vec<f32> = (1..=60).map(|t| tr.step(t).unwrap().loss).collect();
    let first: f32 = losses[..5].iter().sum();
    let last: f32 = losses[55..].iter().sum();
    eprintln!(
        "llama-lm: loss {:.3} -> {:.3} in 60 steps",
        losses[0], losses[59]
    );
    assert!(last < first * 0.8, "{losses:?}");
    let a = hashes(&p, 2);
    let b = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
        .install(|| hashes(&p, 2));
    assert_eq!(a, b);
}

/// Dropout in a graph: the mask is a function of the program's key, the step counter
/// and the micro-batch (the same at 1 and 2 threads, different each step), evaluation
/// keeps every element, and the backward through the mask agrees with finite
/// differences.
#[test]
fn dropout_draws_its_mask_from_the_step_and_is_off_in_evaluation() {
    use repops::Op;
    let mut with = Program::builtin("gated-digits").unwrap();
    with.batch_size = 8;
    let Model::Graph { nodes: ns, .. } = &mut with.model else {
        panic!("a graph")
    };
    // Drop a quarter of the gate's activations.
    let at = ns.iter().position(|n| n.name == "hs").unwrap();
    ns.insert(
        at + 1,
        GraphNode::new("hs.drop", Op::Dropout { p: 0.25, key: 7 }, &["hs"]),
    );
    ns[at + 2].inputs[0] = "hs.drop".into();
    let d = Dataset::builtin("digits").unwrap();
    // Training differs from the same graph without dropout, and is deterministic.
    let plain = {
        let mut p = with.clone();
        if let Model::Graph { nodes, .. } = &mut p.model {
            nodes.remove(at + 1);
            nodes[at + 1].inputs[0] = "hs".into();
        }
        p
    };
    assert_ne!(hashes(&with, 2), hashes(&plain, 2));
    let two = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap()
        .install(|| hashes(&with, 2));
    assert_eq!(two, hashes(&with, 2));
    // The training step's dropout node reads the step counter; with micro-batches each
    // has its own key; evaluation has no dropout node at all.
    let g = with.graph().unwrap();
    let drops: Vec<_> = g
        .nodes
        .iter()
        .filter(|n| matches!(n.op, Op::Dropout { .. }))
        .collect();
    assert_eq!(drops.len(), 2, "forward and backward");
    assert!(drops
        .iter()
        .all(|n| n.inputs[1] == train::Input::State("opt.step".into())));
    let mut accum = with.clone();
    accum.grad_accum = 2;
    let keys: std::collections::BTreeSet<u64> = accum
        .graph()
        .unwrap()
        .nodes
        .iter()
        .filter_map(|n| match n.op {
            Op::Dropout { key, .. } => Some(key),
            _ => None,
        })
        .collect();
    assert_eq!(keys.len(), 2, "one mask per micro-batch: {keys:?}");
    let mut eval = with.clone();
    eval.record_loss = true;
    eval.mode = train::program::Mode::Evaluate {
        rows_from: 1500,
        rows_to: 1797,
    };
    assert!(!eval
        .graph()
        .unwrap()
        .nodes
        .iter()
        .any(|n| matches!(n.op, Op::Dropout { .. })));
    let mut tr = Trainer::new(with.clone(), d.clone()).unwrap();
    tr.step(1).unwrap();
    // Evaluation keeps every element: the same held-out metrics as without dropout
    // from the same state.
    let s = tr.state().clone();
    let cpu = || -> std::sync::Arc<dyn repops::Backend> { std::sync::Arc::new(repops::CpuBackend) };
    let ev = |p: &Program| {
        Trainer::from_initial(p.clone(), d.clone(), cpu(), s.clone())
            .unwrap()
            .evaluate()
            .unwrap()
    };
    let (a, b) = (ev(&with), ev(&plain));
    assert_eq!(a.loss.to_bits(), b.loss.to_bits());
    // The backward through the mask.
    check_gradients(&with, &["wt", "gate", "v"]);
}
