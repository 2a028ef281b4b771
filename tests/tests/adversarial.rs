//! Attacks on verification, each played over real gRPC against the dev chain,
//! solverd and verifierd (see `../shared/spec/threat-model.md`). Every test
//! is one attack that succeeded before the rule that now stops it.
use agent::exec::Fault;
use framework::Amount;
use std::time::Duration;
use tests::{eventually, net, status_name, Net};

const STEPS: u64 = 30;

async fn send(
    n: &Net,
    who: &str,
    msg: prost_types::Any,
) -> anyhow::Result<proto::node::v1::TxResult> {
    let s = n.c.signer(who)?;
    let (_, r) =
        n.c.client
            .sign_and_send(s, vec![msg], "", None, Some(Duration::from_secs(30)))
            .await?;
    r.ok_or_else(|| anyhow::anyhow!("no result"))
}

/// A verifier that attests without re-executing: at the full level the
/// solver serves none of its trace before the task ends, so the lazy
/// verifier has no evidence to attest with; it earns nothing and is slashed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_verifier_cannot_attest_and_is_slashed() {
    let n = net().await.unwrap();
    let mut vc = n.c.verifier_config("verifier");
    vc.inject_fault = vec![Fault::Lazy];
    let v = verifierd::start(vc).await.unwrap();
    let s = solverd::start(n.c.solver_config("solver")).await.unwrap();
    let (before, _) = n.stake("verifier").await.unwrap();
    let (id, _) = n.submit(STEPS).await.unwrap();
    let t = n.finish(id, 120).await.unwrap();
    assert_eq!(status_name(&t), "TASK_STATUS_FINALIZED", "{}", t.note);
    assert_eq!(t.verifiers, vec![n.addr("verifier").to_string()]);
    assert!(t.attestations.is_empty(), "{:?}", t.attestations);
    assert!(t.note.contains("did not attest"), "{}", t.note);
    let (after, _) = n.stake("verifier").await.unwrap();
    assert_eq!(after, before.checked_sub(Amount(10_000)).unwrap());
    s.shutdown().await;
    v.shutdown().await;
    n.c.shutdown().await;
}

/// At the sampled level the solver withholds exactly the hashes each drawn
/// verifier must prove (and the checkpoints and op traces that would give
/// them away) until the task ends: a lazy verifier cannot attest and is
/// slashed; the same verifier re-executing honestly proves its sample and
/// keeps its stake. (A lazy verifier used to attest from the served hashes.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_the_sampled_level_only_re_execution_proves_the_drawn_steps() {
    use proto::solver::v1::{solver_client::SolverClient, *};
    let n = net().await.unwrap();
    let mut vc = n.c.verifier_config("verifier");
    vc.inject_fault = vec![Fault::Lazy];
    let lazy = verifierd::start(vc).await.unwrap();
    let s = solverd::start(n.c.solver_config("solver")).await.unwrap();
    let (before, _) = n.stake("verifier").await.unwrap();
    let id = n.submit_sampled(STEPS, 1_000).await.unwrap();
    eventually(60, "the draw", || async {
        Ok(!n.task(id).await?.selection_seed.is_empty())
    })
    .await
    .unwrap();
    let t = n.task(id).await.unwrap();
    let level = tasks::Level::from_proto(t.verification_level, t.sample_bps).unwrap();
    let seed: [u8; 32] = t.selection_seed.as_slice().try_into().unwrap();
    let ev = tasks::level::evidence_steps(level, &seed, &n.addr("verifier"), STEPS);
    let mut c = SolverClient::connect(s.endpoint()).await.unwrap();
    let hs = c
        .step_hashes(StepHashesRequest { task_id: id })
        .await
        .unwrap()
        .into_inner();
    let withheld: Vec<u64> = hs.withheld.iter().map(|w| w.step).collect();
    assert_eq!(withheld, ev);
    for &k in &ev {
        assert!(hs.hashes[k as usize].is_empty());
        let denied = |r: Result<(), tonic::Status>| r.unwrap_err().code();
        let e = denied(
            c.checkpoint(CheckpointRequest {
                task_id: id,
                step: k,
            })
            .await
            .map(|_| ()),
        );
        assert_eq!(e, tonic::Code::PermissionDenied);
        let e = denied(
            c.step_hash(StepHashRequest {
                task_id: id,
                step: k,
            })
            .await
            .map(|_| ()),
        );
        assert_eq!(e, tonic::Code::PermissionDenied);
        let e = denied(
            c.op_trace(OpTraceRequest {
                task_id: id,
                step: k + 1,
            })
            .await
            .map(|_| ()),
        );
        assert_eq!(e, tonic::Code::PermissionDenied);
    }
    let t = n.finish(id, 120).await.unwrap();
    assert_eq!(status_name(&t), "TASK_STATUS_FINALIZED", "{}", t.note);
    assert!(t.attestations.is_empty(), "{:?}", t.attestations);
    let (mid, _) = n.stake("verifier").await.unwrap();
    assert_eq!(mid, before.checked_sub(Amount(10_000)).unwrap());
    // Once the task has ended everything is served.
    let hs = c
        .step_hashes(StepHashesRequest { task_id: id })
        .await
        .unwrap()
        .into_inner();
    assert!(hs.withheld.is_empty() && hs.hashes.iter().all(|h| h.len() == 32));
    lazy.shutdown().await;
    // The same key, re-executing: proves its sample, keeps its stake.
    let honest = verifierd::start(n.c.verifier_config("verifier"))
        .await
        .unwrap();
    let id = n.submit_sampled(STEPS, 1_000).await.unwrap();
    let t = n.finish(id, 120).await.unwrap();
    assert_eq!(status_name(&t), "TASK_STATUS_FINALIZED", "{}", t.note);
    assert_eq!(t.attestations.len(), 1, "{}", t.note);
    assert_eq!(n.stake("verifier").await.unwrap().0, mid);
    s.shutdown().await;
    honest.shutdown().await;
    n.c.shutdown().await;
}

/// At the sampled level a solver that withholds its checkpoints forces the
/// verifier to replay from earlier states. The verifier asks for them on
/// chain; the withholding solver does not post and pays `withhold_slash` per
/// request to the verifier, which still replays, attests and keeps its
/// stake. An honest solver asked the same posts the checkpoint (checked
/// against its trace root) and gets the request's bond. (Withholding used to
/// cost the solver nothing.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withholding_checkpoints_pays_for_the_replay_it_forces() {
    use proto::tasks::v1::CheckpointRequestState as St;
    let n = net().await.unwrap();
    let v = verifierd::start(n.c.verifier_config("verifier"))
        .await
        .unwrap();
    let mut cc = n.c.solver_config("cheater");
    cc.inject_fault = vec![Fault::WithholdCheckpoints];
    let s = solverd::start(cc).await.unwrap();
    let (stake_v, _) = n.stake("verifier").await.unwrap();
    let (stake_s, _) = n.stake("cheater").await.unwrap();
    let id = n.submit_sampled(60, 500).await.unwrap();
    let t = n.finish(id, 180).await.unwrap();
    assert_eq!(status_name(&t), "TASK_STATUS_FINALIZED", "{}", t.note);
    assert_eq!(t.attestations.len(), 1, "{}", t.note);
    let missed = t
        .checkpoint_requests
        .iter()
        .filter(|r| r.state == St::Missed as i32 && r.requester == n.addr("verifier").to_string())
        .count() as u128;
    assert!(missed >= 1, "{:?}", t.checkpoint_requests);
    let paid: u128 = t
        .payouts
        .iter()
        .filter(|p| p.reason == "the solver withheld a requested checkpoint")
        .map(|p| p.amount.parse::<u128>().unwrap())
        .sum();
    assert_eq!(paid, missed * 100_000);
    assert_eq!(
        n.stake("cheater").await.unwrap().0,
        stake_s.checked_sub(Amount(missed * 100_000)).unwrap()
    );
    assert_eq!(n.stake("verifier").await.unwrap().0, stake_v);
    s.shutdown().await;
    v.shutdown().await;
    // An honest solver answers a request by posting the checkpoint. (The
    // verifier, registered above, has no daemon now: the request is sent by
    // hand.)
    let s = solverd::start(n.c.solver_config("solver")).await.unwrap();
    let id = n.submit_sampled(60, 500).await.unwrap();
    eventually(60, "the draw", || async {
        Ok(!n.task(id).await?.selection_seed.is_empty())
    })
    .await
    .unwrap();
    let t = n.task(id).await.unwrap();
    let level = tasks::Level::from_proto(t.verification_level, t.sample_bps).unwrap();
    let seed: [u8; 32] = t.selection_seed.as_slice().try_into().unwrap();
    let drawn: Vec<framework::Address> = t.verifiers.iter().map(|v| v.parse().unwrap()).collect();
    let withheld = tasks::level::withheld_steps(level, &seed, &drawn, 60);
    let step = (10..60).find(|k| !withheld.contains(k)).unwrap();
    let req = tasks::msg::MsgRequestCheckpoint {
        verifier: n.addr("verifier"),
        task_id: id,
        step,
    }
    .to_proto();
    let r = send(&n, "verifier", proto::to_any(&req)).await.unwrap();
    assert_eq!(r.code, 0, "{}", r.log);
    eventually(60, "the solver to post", || async {
        Ok(n.task(id).await?.checkpoint_requests[0].state == St::Posted as i32)
    })
    .await
    .unwrap();
    let bytes = proto::tasks::v1::query_client::QueryClient::new(n.c.client.channel())
        .posted_checkpoint(proto::tasks::v1::QueryPostedCheckpointRequest { task_id: id, step })
        .await
        .unwrap()
        .into_inner()
        .checkpoint;
    let p = tests::program(60);
    let (st, _, h) =
        train::checkpoint::decode_hashed(&p, &p.graph().unwrap().state_shapes, &bytes).unwrap();
    assert_eq!(st, step);
    let t = n.finish(id, 180).await.unwrap();
    assert!(
        t.payouts
            .iter()
            .any(|p| p.reason == "checkpoint posted on request"
                && p.recipient == n.addr("solver").to_string()),
        "{:?}",
        t.payouts
    );
    // What was posted is the state the solver committed to.
    let hs = proto::solver::v1::solver_client::SolverClient::connect(s.endpoint())
        .await
        .unwrap()
        .step_hashes(proto::solver::v1::StepHashesRequest { task_id: id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(hs.hashes[step as usize], h.to_vec());
    s.shutdown().await;
    n.c.shutdown().await;
}

/// A whistleblower drawn as a task's verifier attests (it used to re-execute,
/// log that the run reproduces, never attest, and be slashed on every task).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whistleblower_drawn_as_verifier_attests_and_keeps_its_stake() {
    let n = net().await.unwrap();
    let mut vc = n.c.verifier_config("verifier");
    vc.whistleblower = true;
    let v = verifierd::start(vc).await.unwrap();
    let s = solverd::start(n.c.solver_config("solver")).await.unwrap();
    let (before, _) = n.stake("verifier").await.unwrap();
    let (id, _) = n.submit(STEPS).await.unwrap();
    let t = n.finish(id, 120).await.unwrap();
    assert_eq!(status_name(&t), "TASK_STATUS_FINALIZED", "{}", t.note);
    assert_eq!(t.attestations.len(), 1, "{}", t.note);
    assert_eq!(n.stake("verifier").await.unwrap().0, before);
    s.shutdown().await;
    v.shutdown().await;
    n.c.shutdown().await;
}

/// The cheating solver's own second key opens a proof-less dispute on
/// (0, T] right after the commit and stays silent. Several disputes may be
/// open at once, so the honest verifier still disputes and the cheat fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_sybil_dispute_does_not_shield_a_cheating_solver() {
    let n = net().await.unwrap();
    let mut cc = n.c.solver_config("cheater");
    // A node whose corruption reaches the state (the result is really wrong).
    let node = app::demo::effective_nodes(&tests::program(STEPS), 12).unwrap()[0];
    cc.inject_fault = vec![Fault::Corrupt { step: 12, node }];
    let s = solverd::start(cc).await.unwrap();
    let v = verifierd::start(n.c.verifier_config("verifier"))
        .await
        .unwrap();
    let (before, _) = n.stake("verifier").await.unwrap();
    let (id, p) = n.submit(STEPS).await.unwrap();
    eventually(60, "the commit", || async {
        Ok(!n.task(id).await?.trace_root.is_empty())
    })
    .await
    .unwrap();
    // The sybil ("verifier2") disputes first, before any verifier runs.
    let t = n.task(id).await.unwrap();
    let h0 = train::Trainer::new(p.clone(), train::Dataset::builtin("digits").unwrap())
        .unwrap()
        .state_hash();
    let open = proto::verde::v1::MsgOpenDispute {
        challenger: n.addr("verifier2").to_string(),
        task_id: id,
        bond: Some(proto::base::v1::Coin {
            denom: "uvtr".into(),
            amount: "100000".into(),
        }),
        lo: 0,
        h_lo: h0.to_vec(),
        hi: STEPS,
        h_hi: t.final_state_hash.clone(),
        ..Default::default()
    };
    let r = send(&n, "verifier2", proto::to_any(&open)).await.unwrap();
    assert_eq!(r.code, 0, "{}", r.log);
    let t = n.finish(id, 180).await.unwrap();
    assert_eq!(status_name(&t), "TASK_STATUS_FAILED", "{}", t.note);
    assert!(
        n.stake("cheater").await.unwrap().1 > Amount::ZERO,
        "slashed"
    );
    assert_eq!(n.stake("verifier").await.unwrap().0, before);
    s.shutdown().await;
    v.shutdown().await;
    n.c.shutdown().await;
}

/// A solver cannot unbond while a task it claimed is open: its stake stays
/// where a lost dispute can reach it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_solver_cannot_unbond_while_its_claim_is_open() {
    let n = net().await.unwrap();
    let s = solverd::start(n.c.solver_config("solver")).await.unwrap();
    let (id, _) = n.submit(STEPS).await.unwrap();
    eventually(60, "the claim", || async {
        Ok(!n.task(id).await?.solver.is_empty())
    })
    .await
    .unwrap();
    s.shutdown().await;
    let unbond = proto::to_any(&proto::staking::v1::MsgUnbond {
        operator: n.addr("solver").to_string(),
        amount: Some(proto::base::v1::Coin {
            denom: "uvtr".into(),
            amount: "5000000".into(),
        }),
    });
    let e = send(&n, "solver", unbond.clone()).await.unwrap_err();
    assert!(e.to_string().contains("staking code 11"), "{e}");
    // The solver comes back, finishes; then it may leave.
    let s = solverd::start(n.c.solver_config("solver")).await.unwrap();
    let t = n.finish(id, 120).await.unwrap();
    assert_eq!(status_name(&t), "TASK_STATUS_FINALIZED", "{}", t.note);
    s.shutdown().await;
    let r = send(&n, "solver", unbond).await.unwrap();
    assert_eq!(r.code, 0, "{}", r.log);
    n.c.shutdown().await;
}

/// A task whose dataset URL accepts connections and never answers does not
/// hold up the solver: the fetch runs in the background under a time limit
/// while the solver claims, trains and finishes another task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_dataset_url_does_not_hold_up_the_solver() {
    let n = net().await.unwrap();
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = silent.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((c, _)) = silent.accept().await {
            held.push(c);
        }
    });
    let ds = train::Dataset::builtin("digits").unwrap();
    let ext = train::Dataset::build(
        "ext",
        train::dataset::Schema::Digits8x8,
        65,
        4,
        ds.data().to_vec(),
        "",
        "",
    )
    .unwrap();
    let mut hostile = tests::program(STEPS);
    hostile.dataset = train::program::DatasetRef {
        name: format!("http://{addr}/data"),
        root: ext.root(),
        train_rows: 1500,
    };
    let h = ext.header();
    let info = proto::tasks::v1::DatasetInfo {
        schema: "digits8x8".into(),
        rows: h.rows,
        row_bytes: h.row_bytes,
        chunk_rows: h.chunk_rows,
    };
    let bad = app::follow::submit(
        &n.c.client,
        n.c.signer("submitter").unwrap(),
        &hostile,
        Some(info),
        Amount(1_000_000),
        Amount(100_000),
    )
    .await
    .unwrap();
    let v = verifierd::start(n.c.verifier_config("verifier"))
        .await
        .unwrap();
    let s = solverd::start(n.c.solver_config("solver")).await.unwrap();
    let (good, _) = n.submit(STEPS).await.unwrap();
    let t = n.finish(good, 90).await.unwrap();
    assert_eq!(status_name(&t), "TASK_STATUS_FINALIZED", "{}", t.note);
    assert!(
        n.task(bad).await.unwrap().solver.is_empty(),
        "never claimed"
    );
    s.shutdown().await;
    v.shutdown().await;
    n.c.shutdown().await;
}

/// 71 tasks whose programs carry 60 KB names push the task list past a
/// default 4 MiB gRPC message: the daemons page the list and raise their
/// decode limit, so the solver still sees and claims the task it wants.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bulky_tasks_does_not_blind_the_solver() {
    let n = net().await.unwrap();
    let mut bulky = tests::program(2);
    bulky.name = "x".repeat(60_000);
    for _ in 0..71 {
        n.c.submit("submitter", &bulky, Amount(1_000), Amount(0))
            .await
            .unwrap();
    }
    let mut sc = n.c.solver_config("solver");
    sc.min_reward = "500000uvtr".into(); // not worth claiming the bulky ones
    let s = solverd::start(sc).await.unwrap();
    let (id, _) = n.submit(STEPS).await.unwrap();
    eventually(60, "the claim", || async {
        Ok(!n.task(id).await?.solver.is_empty())
    })
    .await
    .unwrap();
    s.shutdown().await;
    n.c.shutdown().await;
}
