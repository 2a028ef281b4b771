//! Whole jobs over real gRPC between separate components: the dev chain's
//! node, solverd and verifierd, each with its own key and home.
use agent::exec::Fault;
use rand::Rng;
use tests::{eventually, net, status_name};

const STEPS: u64 = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn honest_job_is_verified_paid_and_its_model_matches_the_chain() {
    let n = net().await.unwrap();
    let v = verifierd::start(n.c.verifier_config("verifier"))
        .await
        .unwrap();
    let s = solverd::start(n.c.solver_config("solver")).await.unwrap();
    let (id, p) = n.submit(STEPS).await.unwrap();
    let t = n.finish(id, 120).await.unwrap();
    assert_eq!(status_name(&t), "TASK_STATUS_FINALIZED", "{}", t.note);
    assert_eq!(t.verifiers, vec![n.addr("verifier").to_string()]);
    assert_eq!(t.attestations.len(), 1, "the verifier attested");
    let paid = |who: &str| {
        t.payouts
            .iter()
            .any(|p| p.recipient == n.addr(who).to_string())
    };
    assert!(paid("solver") && paid("verifier"), "{:?}", t.payouts);
    // The solver's result is the CPU reference's, bit for bit.
    let mut tr = train::Trainer::builtin("mlp-digits").unwrap();
    for step in 1..=STEPS {
        tr.step(step).unwrap();
    }
    assert_eq!(t.final_state_hash, tr.state_hash().to_vec());
    // The model the submitter downloads is checked against the chain.
    let model = app::follow::fetch_model(&t).await.unwrap();
    let (step, _) =
        train::checkpoint::decode(&p, &p.graph().unwrap().state_shapes, &model).unwrap();
    assert_eq!(step, STEPS);
    assert!(v.metrics().counter("attestations") >= 1);
    assert!(s.metrics().counter("steps_trained") >= STEPS);
    // Once the task has ended the solver keeps only the final checkpoint (and the
    // hashes); the model is still served.
    let run_dir =
        n.c.solver_config("solver")
            .home
            .join("tasks")
            .join(id.to_string());
    let ckpts = || {
        std::fs::read_dir(&run_dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("ckpt-"))
            .count()
    };
    eventually(30, "the finished run is pruned", || async {
        Ok(ckpts() == 1)
    })
    .await
    .unwrap();
    assert!(run_dir
        .join(format!("ckpt-{STEPS:08}.safetensors"))
        .exists());
    let again = app::follow::fetch_model(&t).await.unwrap();
    let shapes = p.graph().unwrap().state_shapes;
    let (_, a) = train::checkpoint::decode(&p, &shapes, &again).unwrap();
    let (_, b) = train::checkpoint::decode(&p, &shapes, &model).unwrap();
    assert!(a == b, "the model served after pruning is the same state");
    s.shutdown().await;
    v.shutdown().await;
    n.c.shutdown().await;
}

/// A cheating solver at a random (step, node) whose error reaches the state:
/// the whistleblowing verifier disputes, and the dispute ends at exactly that
/// operator with the solver slashed. `VT_E2E_FAULTS` sets how many (2 by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cheating_solver_is_slashed_at_the_injected_step_and_node() {
    let rounds: usize = std::env::var("VT_E2E_FAULTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let n = net().await.unwrap();
    let mut vc = n.c.verifier_config("verifier");
    vc.whistleblower = true;
    let v = verifierd::start(vc).await.unwrap();
    let verifier_stake = n.stake("verifier").await.unwrap().0;
    let p = tests::program(STEPS);
    for round in 0..rounds {
        let step = rand::thread_rng().gen_range(1..=STEPS);
        let eff = app::demo::effective_nodes(&p, step).unwrap();
        let node = eff[rand::thread_rng().gen_range(0..eff.len())];
        eprintln!("round {round}: corrupting node {node} at step {step}");
        let (mut stake0, slashed0) = n.stake("cheater").await.unwrap_or_default();
        let want = framework::Amount(5_000_000);
        if round > 0 && stake0 < want {
            // Each lost dispute slashes stake: top it up for the next round.
            let top_up = framework::Amount(want.0 - stake0.0);
            let signer = &n.c.keys["cheater"];
            let msg = app::testkit::add_stake_msg(&signer.address(), top_up);
            let (_, r) =
                n.c.client
                    .sign_and_send(
                        signer,
                        vec![msg],
                        "",
                        None,
                        Some(std::time::Duration::from_secs(30)),
                    )
                    .await
                    .unwrap();
            assert_eq!(r.unwrap().code, 0);
            stake0 = want;
        }
        let mut sc = n.c.solver_config("cheater");
        sc.inject_fault = vec![Fault::Corrupt { step, node }];
        let s = solverd::start(sc).await.unwrap();
        let (id, _) = n.submit(STEPS).await.unwrap();
        let t = n.finish(id, 180).await.unwrap();
        s.shutdown().await;
        assert_eq!(status_name(&t), "TASK_STATUS_FAILED", "{}", t.note);
        let d = n.dispute_of(id).await.unwrap().expect("a dispute");
        assert!(d.outcome.starts_with("challenger wins"), "{}", d.outcome);
        assert_eq!((d.hi, d.node), (step, node as u64), "{}", d.outcome);
        let (stake1, slashed1) = n.stake("cheater").await.unwrap();
        assert!(slashed1 > slashed0, "slashed {slashed0} -> {slashed1}");
        if round > 0 {
            assert!(stake1 < stake0, "stake {stake0} -> {stake1}");
        }
    }
    // The honest whistleblower never lost stake, whichever way each went.
    assert_eq!(n.stake("verifier").await.unwrap().0, verifier_stake);
    v.shutdown().await;
    n.c.shutdown().await;
}

/// A graph program (the shipped `gated-digits`): a cheat at a gradient node of a
/// backward rule only graphs use, at a random step, is disputed and localised by the
/// referee to exactly that operator; the solver is slashed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cheat_in_a_graph_program_is_localised_to_its_operator() {
    let n = net().await.unwrap();
    let v = n.whistleblower().await.unwrap();
    let mut p = train::Program::builtin("gated-digits").unwrap();
    p.steps = STEPS;
    let graph = p.graph().unwrap();
    // A gradient node of a rule only graphs use, whose flipped bit reaches the state,
    // at a random step (or the next one that has such a node).
    let graph_only = |op: &repops::Op| {
        matches!(
            op,
            repops::Op::SigmoidBackward
                | repops::Op::Mul
                | repops::Op::Scale { .. }
                | repops::Op::Transpose
                | repops::Op::LogSoftmaxBackward
                | repops::Op::MatMul { ta: true, tb: true }
        )
    };
    let start = rand::thread_rng().gen_range(0..STEPS);
    let (step, candidates) = (0..STEPS)
        .map(|i| 1 + (start + i) % STEPS)
        .map(|step| {
            let eff = app::demo::effective_nodes(&p, step).unwrap();
            let c: Vec<usize> = eff
                .into_iter()
                .filter(|&k| {
                    graph.nodes[k].label.ends_with(".grad") && graph_only(&graph.nodes[k].op)
                })
                .collect();
            (step, c)
        })
        .find(|(_, c)| !c.is_empty())
        .expect("an effective gradient node of a graph-only rule at some step");
    let node = candidates[rand::thread_rng().gen_range(0..candidates.len())];
    eprintln!(
        "corrupting node {node} ({}, {}) at step {step}",
        graph.nodes[node].label,
        graph.nodes[node].op.name()
    );
    cheater_is_localised(n, v, &p, step, node).await;
}

/// "cheater" corrupts operator `node` of step `step` of `p`: the dispute must end at
/// exactly that operator ([`tests::Net::expect_localised`]). Shuts the net down.
async fn cheater_is_localised(
    n: tests::Net,
    v: verifierd::RunningVerifier,
    p: &train::Program,
    step: u64,
    node: usize,
) {
    let mut sc = n.c.solver_config("cheater");
    sc.inject_fault = vec![Fault::Corrupt { step, node }];
    let s = solverd::start(sc).await.unwrap();
    n.expect_localised(p, step, node, 180).await.unwrap();
    s.shutdown().await;
    v.shutdown().await;
    n.c.shutdown().await;
}

/// A cheat inside an operator the referee may not recompute whole: the chain's
/// bounds are lowered (65,536 FLOPs, 32 KiB of proofs per dispute) so that at batch
/// 256 mlp-digits' products, column sums and optimizer updates go over them, as a
/// 124M-parameter model's do at the default bounds. verifierd and solverd play the
/// output descent, the fold bisection and the tile's slice proofs over gRPC, and the
/// cheat is localised to its operator all the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cheat_inside_an_operator_too_costly_whole_is_localised() {
    use rand::Rng;
    let (flops, bytes) = (1 << 16, 32 << 10);
    let n = tests::net_with(|t| {
        t.max_referee_flops = flops;
        t.max_reveal_bytes = bytes;
    })
    .await
    .unwrap();
    let v = n.whistleblower().await.unwrap();
    let mut p = tests::program(STEPS);
    p.batch_size = 256;
    let graph = p.graph().unwrap();
    let step = 1 + rand::thread_rng().gen_range(0..STEPS);
    let inside: Vec<usize> = app::demo::effective_nodes(&p, step)
        .unwrap()
        .into_iter()
        .filter(|&k| !graph.nodes[k].fits(flops, bytes))
        .collect();
    assert!(
        !inside.is_empty(),
        "no effective node too costly at step {step}"
    );
    let node = inside[rand::thread_rng().gen_range(0..inside.len())];
    eprintln!(
        "corrupting node {node} ({}, {}) at step {step}",
        graph.nodes[node].label,
        graph.nodes[node].op.name()
    );
    cheater_is_localised(n, v, &p, step, node).await;
}

/// A program that accumulates gradients over micro-batches: a cheat at a node reading
/// a later micro-batch's batch tensor is localised to it, the referee rebuilding that
/// micro-batch from the step's rows proven against the dataset root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cheat_in_a_later_micro_batch_is_localised_with_its_rows_rebuilt() {
    let n = net().await.unwrap();
    let v = n.whistleblower().await.unwrap();
    let mut p = tests::program(STEPS);
    p.batch_size = 16;
    p.grad_accum = 4;
    let graph = p.graph().unwrap();
    let later = |k: &usize| {
        graph.nodes[*k]
            .inputs
            .iter()
            .any(|i| matches!(i, train::Input::Batch(b) if b.contains('#')))
    };
    // A random step, or the next one with such an effective node.
    let start = rand::thread_rng().gen_range(0..STEPS);
    let (step, node) = (0..STEPS)
        .map(|i| 1 + (start + i) % STEPS)
        .find_map(|step| {
            let eff = app::demo::effective_nodes(&p, step).unwrap();
            eff.into_iter().find(|k| later(k)).map(|k| (step, k))
        })
        .expect("an effective node reading a later micro-batch at some step");
    eprintln!(
        "corrupting node {node} ({}) at step {step}",
        graph.nodes[node].label
    );
    cheater_is_localised(n, v, &p, step, node).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skipped_steps_and_wrong_batches_are_caught() {
    let n = net().await.unwrap();
    let mut vc = n.c.verifier_config("verifier");
    vc.whistleblower = true;
    let v = verifierd::start(vc).await.unwrap();
    for fault in [Fault::Skip { step: 7 }, Fault::WrongBatch { step: 11 }] {
        let mut sc = n.c.solver_config("cheater");
        sc.inject_fault = vec![fault.clone()];
        let s = solverd::start(sc).await.unwrap();
        let (id, _) = n.submit(STEPS).await.unwrap();
        let t = n.finish(id, 180).await.unwrap();
        s.shutdown().await;
        assert_eq!(status_name(&t), "TASK_STATUS_FAILED", "{fault}: {}", t.note);
        let d = n.dispute_of(id).await.unwrap().expect("a dispute");
        assert!(
            d.outcome.starts_with("challenger wins"),
            "{fault}: {}",
            d.outcome
        );
        let want = match fault {
            Fault::Skip { step } | Fault::WrongBatch { step } => step,
            _ => unreachable!(),
        };
        assert_eq!(d.hi, want, "{fault}: {}", d.outcome);
    }
    v.shutdown().await;
    n.c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withheld_checkpoints_do_not_stop_verification() {
    let n = net().await.unwrap();
    let mut vc = n.c.verifier_config("verifier");
    vc.sample_rate = 0.1;
    let v = verifierd::start(vc).await.unwrap();
    let mut sc = n.c.solver_config("solver");
    sc.inject_fault = vec![Fault::WithholdCheckpoints];
    let s = solverd::start(sc).await.unwrap();
    // The sampled level is the one that fetches checkpoints.
    let id = n.submit_sampled(STEPS, 1_000).await.unwrap();
    let t = n.finish(id, 120).await.unwrap();
    assert_eq!(status_name(&t), "TASK_STATUS_FINALIZED", "{}", t.note);
    assert_eq!(
        t.attestations.len(),
        1,
        "the verifier replayed and attested"
    );
    s.shutdown().await;
    v.shutdown().await;
    n.c.shutdown().await;
}

/// A cheat at the last step behind withheld checkpoints, at the sampled
/// level with every step sampled: the verifier replays from h_0, finds the
/// step that does not reproduce, re-executes the whole run and disputes the
/// trace within the window (which covers a full re-execution); the cheater
/// is slashed, the verifier keeps its stake. (With a fixed window and a long
/// job the verifier used to miss the window and be slashed.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cheat_behind_withheld_checkpoints_is_caught_within_the_window() {
    let n = net().await.unwrap();
    let v = verifierd::start(n.c.verifier_config("verifier"))
        .await
        .unwrap();
    let p = tests::program(STEPS);
    let node = app::demo::effective_nodes(&p, STEPS).unwrap()[0];
    let mut sc = n.c.solver_config("cheater");
    sc.inject_fault = vec![
        Fault::WithholdCheckpoints,
        Fault::Corrupt { step: STEPS, node },
    ];
    let s = solverd::start(sc).await.unwrap();
    let (stake, _) = n.stake("verifier").await.unwrap();
    let id = n.submit_sampled(STEPS, 10_000).await.unwrap();
    let t = n.finish(id, 180).await.unwrap();
    assert_eq!(status_name(&t), "TASK_STATUS_FAILED", "{}", t.note);
    let d = n.dispute_of(id).await.unwrap().expect("a dispute");
    assert!(d.outcome.starts_with("challenger wins"), "{}", d.outcome);
    assert_eq!(d.challenger, n.addr("verifier").to_string());
    assert_eq!(n.stake("verifier").await.unwrap().0, stake);
    s.shutdown().await;
    v.shutdown().await;
    n.c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn false_challenger_loses_its_bond() {
    let n = net().await.unwrap();
    // A verifier whose own re-execution is wrong at step 5 (fault injection).
    let p = tests::program(STEPS);
    let node = app::demo::effective_nodes(&p, 5).unwrap()[0];
    let mut vc = n.c.verifier_config("verifier");
    vc.inject_fault = vec![Fault::Corrupt { step: 5, node }];
    let v = verifierd::start(vc).await.unwrap();
    let s = solverd::start(n.c.solver_config("solver")).await.unwrap();
    let before = n.balance("verifier").await.unwrap();
    let (stake_before, _) = n.stake("verifier").await.unwrap();
    let (id, _) = n.submit(STEPS).await.unwrap();
    let t = n.finish(id, 180).await.unwrap();
    assert_eq!(status_name(&t), "TASK_STATUS_FINALIZED", "{}", t.note);
    let d = n.dispute_of(id).await.unwrap().expect("a dispute");
    assert!(d.outcome.starts_with("solver wins"), "{}", d.outcome);
    let after = n.balance("verifier").await.unwrap();
    assert!(
        after < before,
        "the challenger lost its bond: {before} -> {after}"
    );
    // It was the drawn verifier and did not attest, but it challenged: it
    // pays with its bond, not also with the missed-attestation slash.
    assert_eq!(t.verifiers, vec![n.addr("verifier").to_string()]);
    assert!(t.attestations.is_empty());
    assert_eq!(n.stake("verifier").await.unwrap().0, stake_before);
    s.shutdown().await;
    v.shutdown().await;
    n.c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_solver_loses_on_the_clock() {
    let n = net().await.unwrap();
    let mut vc = n.c.verifier_config("verifier");
    vc.whistleblower = true;
    let v = verifierd::start(vc).await.unwrap();
    let p = tests::program(STEPS);
    // At the last step, so the committed final hash itself is wrong (an
    // earlier one-bit fault can heal before the end).
    let node = app::demo::effective_nodes(&p, STEPS).unwrap()[0];
    let mut sc = n.c.solver_config("cheater");
    sc.inject_fault = vec![Fault::Corrupt { step: STEPS, node }, Fault::Silent];
    let s = solverd::start(sc).await.unwrap();
    let (id, _) = n.submit(STEPS).await.unwrap();
    let t = n.finish(id, 180).await.unwrap();
    assert_eq!(status_name(&t), "TASK_STATUS_FAILED", "{}", t.note);
    let d = n.dispute_of(id).await.unwrap().expect("a dispute");
    assert!(d.outcome.contains("solver missed"), "{}", d.outcome);
    s.shutdown().await;
    v.shutdown().await;
    n.c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_verifier_loses_on_the_clock() {
    let n = net().await.unwrap();
    let mut vc = n.c.verifier_config("verifier");
    vc.inject_fault = vec![Fault::Silent];
    let v = verifierd::start(vc).await.unwrap();
    let s = solverd::start(n.c.solver_config("solver")).await.unwrap();
    let (id, _) = n.submit(STEPS).await.unwrap();
    let t = n.finish(id, 120).await.unwrap();
    assert_eq!(status_name(&t), "TASK_STATUS_FINALIZED", "{}", t.note);
    assert!(t.attestations.is_empty());
    let (_, slashed) = n.stake("verifier").await.unwrap();
    assert!(slashed.0 > 0, "the silent verifier was slashed");
    s.shutdown().await;
    v.shutdown().await;
    n.c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_solver_requests_get_invalid_argument_or_not_found() {
    use proto::solver::v1::{solver_client::SolverClient, *};
    let n = net().await.unwrap();
    let s = solverd::start(n.c.solver_config("solver")).await.unwrap();
    let mut c = SolverClient::connect(s.endpoint()).await.unwrap();
    let code = |r: Result<tonic::Response<_>, tonic::Status>| -> (tonic::Code, String) {
        let e = r.map(|_: tonic::Response<()>| ()).unwrap_err();
        (e.code(), e.message().to_string())
    };
    let e = code(
        c.step_hashes(StepHashesRequest { task_id: 0 })
            .await
            .map(|_| tonic::Response::new(())),
    );
    assert_eq!(e.0, tonic::Code::InvalidArgument, "{}", e.1);
    let e = code(
        c.step_hashes(StepHashesRequest { task_id: 99 })
            .await
            .map(|_| tonic::Response::new(())),
    );
    assert_eq!(e.0, tonic::Code::NotFound, "{}", e.1);
    let e = code(
        c.dataset(DatasetRequest { root: vec![1, 2] })
            .await
            .map(|_| tonic::Response::new(())),
    );
    assert_eq!(e.0, tonic::Code::InvalidArgument, "{}", e.1);
    let e = code(
        c.dataset(DatasetRequest { root: vec![7; 32] })
            .await
            .map(|_| tonic::Response::new(())),
    );
    assert_eq!(e.0, tonic::Code::NotFound, "{}", e.1);
    // A task held by this solver: at the full level nothing of its trace
    // (nor the model) is served before the task ends, so a verifier's
    // evidence must come from its own re-execution.
    let (id, _) = n.submit(STEPS).await.unwrap();
    eventually(60, "the solver to commit", || async {
        Ok(!n.task(id).await?.trace_root.is_empty())
    })
    .await
    .unwrap();
    let e = code(
        c.step_hashes(StepHashesRequest { task_id: id })
            .await
            .map(|_| tonic::Response::new(())),
    );
    assert_eq!(e.0, tonic::Code::PermissionDenied, "{}", e.1);
    let e = code(
        c.model(ModelRequest { task_id: id })
            .await
            .map(|_| tonic::Response::new(())),
    );
    assert_eq!(e.0, tonic::Code::FailedPrecondition, "{}", e.1);
    // Once it has ended: asked for a step it does not have.
    n.finish(id, 120).await.unwrap();
    let e = code(
        c.checkpoint(CheckpointRequest {
            task_id: id,
            step: STEPS + 1,
        })
        .await
        .map(|_| tonic::Response::new(())),
    );
    assert_eq!(e.0, tonic::Code::InvalidArgument, "{}", e.1);
    let e = code(
        c.op_trace(OpTraceRequest {
            task_id: id,
            step: 0,
        })
        .await
        .map(|_| tonic::Response::new(())),
    );
    assert_eq!(e.0, tonic::Code::InvalidArgument, "{}", e.1);
    let e = code(
        c.step_hash(StepHashRequest {
            task_id: id,
            step: STEPS + 1,
        })
        .await
        .map(|_| tonic::Response::new(())),
    );
    assert_eq!(e.0, tonic::Code::InvalidArgument, "{}", e.1);
    // And the good requests work.
    let t = n.task(id).await.unwrap();
    let sh = c
        .step_hash(StepHashRequest {
            task_id: id,
            step: 7,
        })
        .await
        .unwrap()
        .into_inner();
    let pr = sh.proof.unwrap();
    let proof = train::merkle::Proof {
        index: pr.index,
        leaf_count: pr.leaf_count,
        siblings: pr
            .siblings
            .iter()
            .map(|s| s.as_slice().try_into().unwrap())
            .collect(),
    };
    let root: [u8; 32] = t.trace_root.as_slice().try_into().unwrap();
    let leaf: [u8; 32] = sh.hash.as_slice().try_into().unwrap();
    assert!(
        train::merkle::verify(&root, &leaf, &proof),
        "the proof checks against the chain's trace root"
    );
    let hs = c
        .step_hashes(StepHashesRequest { task_id: id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hs.hashes.len() as u64, STEPS + 1);
    let ot = c
        .op_trace(OpTraceRequest {
            task_id: id,
            step: 3,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        ot.node_hashes.len(),
        tests::program(STEPS).graph().unwrap().nodes.len()
    );
    s.shutdown().await;
    n.c.shutdown().await;
}
