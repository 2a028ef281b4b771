//! Swarms over real gRPC: the dev chain, a solverd per contributor (`--swarm`),
//! evaluators (solverds claiming the rounds' evaluation tasks) and a verifier
//! re-executing every task.
use agent::exec::Fault;
use framework::Amount;
use proto::swarm::v1 as pb;
use std::time::Duration;
use tests::{eventually, net};

/// The demo's swarm: a contributor corrupting its contributions is slashed every
/// round and earns nothing; one training honestly on its own data with shuffled
/// labels does verified work but earns no quality share; the others are paid for
/// measured improvement, the global model's held-out loss falls round over
/// round, and the leaderboard is sorted by verified quality.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swarm_pays_measured_improvement_and_slashes_a_corrupting_contributor() {
    let dir = tempfile::tempdir().unwrap();
    let d = app::swarm_demo::SwarmDemo {
        rounds: 2,
        inner_steps: 20,
        block_ms: 100,
        dir: Some(dir.path().join("net")),
        outer_lr: 1.0,
    };
    let r = app::swarm_demo::run(&d, true).await.unwrap();
    assert_ne!(r["mallory_slashed"], "0", "{r:#}");
    let rounds = r["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2);
    let paid = |round: &serde_json::Value, who: &str| -> u64 {
        round["contributions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["contributor"] == who)
            .map(|c| c["quality_paid"].as_str().unwrap().parse().unwrap())
            .unwrap()
    };
    // Training on wrong labels makes the model worse on correctly labelled rows:
    // no measured improvement, no quality share (against a model that is still
    // poor, a little calibration could be real and measured; never much).
    let total = |who: &str| rounds.iter().map(|r| paid(r, who)).sum::<u64>();
    let honest = total("alice").min(total("bob"));
    assert!(total("dave") < honest / 4, "{r:#}");
    for round in rounds {
        assert_eq!(round["seed_revealed"], true, "{round}");
        for c in round["contributions"].as_array().unwrap() {
            match c["contributor"].as_str().unwrap() {
                "mallory" => {
                    assert_eq!(c["status"], "failed", "{c}");
                    assert_eq!(c["quality_paid"], "0", "{c}");
                }
                "dave" => assert_eq!(c["status"], "finalized", "{c}"),
                _ => {
                    assert_eq!(c["status"], "finalized", "{c}");
                    assert!(c["improvement"].as_u64().unwrap() > 0, "{c}");
                }
            }
        }
    }
    let losses: Vec<f64> = rounds
        .iter()
        .map(|r| r["global_heldout_loss_after"].as_f64().unwrap())
        .collect();
    assert!(losses[1] < losses[0], "{losses:?}");
    let board = r["leaderboard"].as_array().unwrap();
    assert_eq!(
        board.len(),
        3,
        "mallory has no verified contribution: {board:?}"
    );
    let q: Vec<u128> = board
        .iter()
        .map(|e| e["quality"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(q.windows(2).all(|w| w[0] >= w[1]), "{q:?}");
    assert_eq!(board[2]["contributor"], "dave", "{board:?}");
}

/// An evaluator that corrupts an evaluation (a better loss for a contribution
/// than it has) is disputed and slashed; the evaluation is submitted again and
/// an honest evaluator measures it, so the contribution is still paid for its
/// real improvement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_evaluation_is_slashed_and_measured_again() {
    let r = bad_evaluator(|loss_node| {
        vec![Fault::Corrupt {
            step: 1,
            node: loss_node,
        }]
    })
    .await;
    assert!(
        r.base
            .iter()
            .chain(r.contributions.iter().filter_map(|k| k.eval.as_ref()))
            .any(|m| m.attempts >= 2),
        "an evaluation was redone: {r:?}"
    );
}

/// A lazy evaluator commits without evaluating (its first step's state is the one
/// it started from: no forward pass, no loss recorded): the verifier's re-execution
/// disputes it, it is slashed, the evaluation is submitted again and an honest
/// evaluator measures it. Laziness denies no contributor its measurement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lazy_evaluator_is_slashed_and_the_evaluation_is_done_by_another() {
    bad_evaluator(|_| vec![Fault::Skip { step: 1 }]).await;
}

/// In settled round `r`, the cheater's contribution (task `bad`) failed: no quality
/// share, no payout, its stake slashed; the honest one (task `good`) was finalized
/// and paid for a measured improvement.
async fn cheater_lost_honest_paid(n: &tests::Net, r: &pb::Round, bad: u64, good: u64) {
    let of = |task: u64| r.contributions.iter().find(|k| k.task_id == task).unwrap();
    let (b, g) = (of(bad), of(good));
    assert_eq!(b.task_status, "failed", "{b:?}");
    assert_eq!(b.quality_paid, "0");
    let t = n.task(bad).await.unwrap();
    let cheater = n.addr("cheater").to_string();
    assert!(
        !t.payouts.iter().any(|p| p.recipient == cheater),
        "{:?}",
        t.payouts
    );
    assert!(
        n.stake("cheater").await.unwrap().1 > Amount::ZERO,
        "slashed"
    );
    assert_eq!(g.task_status, "finalized", "{g:?}");
    assert!(g.improvement > 0, "{g:?}");
    assert_ne!(g.quality_paid, "0", "{g:?}");
}

/// Round `round` of swarm `id` once it has settled (waits up to 300 s).
async fn settled(n: &tests::Net, id: u64, round: u64) -> pb::Round {
    let q = n.c.client.swarm();
    let get = || {
        let mut q = q.clone();
        async move {
            anyhow::Ok(
                q.round(pb::QueryRoundRequest {
                    swarm_id: id,
                    round,
                })
                .await?
                .into_inner()
                .round
                .unwrap_or_default(),
            )
        }
    };
    eventually(300, "the round settles", || async {
        Ok(get().await?.phase == pb::RoundPhase::Settled as i32)
    })
    .await
    .unwrap();
    get().await.unwrap()
}

/// A contributor that trains on the evaluation pool (its first step on held-out
/// rows instead of its slot's batch): its slot's program draws training rows
/// only, so the verifier's re-execution disputes the result; the contributor is
/// slashed and earns neither the work share nor a quality share, while the
/// honest contributor is paid for its measured improvement.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contributor_training_on_the_evaluation_pool_is_disputed_and_slashed() {
    let n = net().await.unwrap();
    let c = &n.c;
    let v = n.whistleblower().await.unwrap();
    n.create_swarm(1, 2, 8, 3_000_000).await.unwrap();
    let id = 1;
    // The honest contributor ("solver") trains its slot and evaluates.
    let mut sc = c.solver_config("solver");
    sc.swarm = vec![id];
    let honest = solverd::start(sc).await.unwrap();
    // The cheater only contributes, training its first step on held-out rows.
    let mut cc = c.solver_config("cheater");
    cc.swarm = vec![id];
    cc.min_reward = "1000000uvtr".into();
    cc.inject_fault = vec![Fault::HeldOut { step: 1 }];
    let cheater = solverd::start(cc).await.unwrap();
    let r = settled(&n, id, 0).await;
    let of = |who: &str| {
        r.contributions
            .iter()
            .find(|k| k.contributor == n.addr(who).to_string())
            .unwrap_or_else(|| panic!("{who} holds no slot: {r:?}"))
    };
    let (bad, good) = (of("cheater"), of("solver"));
    // The slot's program never draws a held-out row.
    let t = n.task(bad.task_id).await.unwrap();
    let p = train::Program::from_json(std::str::from_utf8(&t.program_json).unwrap()).unwrap();
    for step in 1..=p.steps {
        assert!(train::trainer::batch_rows(&p, step)
            .iter()
            .all(|&row| row < p.dataset.train_rows));
    }
    cheater_lost_honest_paid(&n, &r, bad.task_id, good.task_id).await;
    cheater.shutdown().await;
    honest.shutdown().await;
    v.shutdown().await;
    n.c.shutdown().await;
}

/// An aggregator that lies (it corrupts the merged value of one parameter and does
/// every other task honestly): the verifier re-executes the merge, disputes it down
/// to that operator, whose state input the aggregator must prove against G_r's own
/// root (h_0 commits to the inputs' roots); it loses, is slashed and earns nothing,
/// the merge is submitted again and done honestly, and its verified final state,
/// not the lie, is the next global model.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lying_aggregator_is_slashed_and_the_merge_is_done_again() {
    let n = net().await.unwrap();
    let c = &n.c;
    let v = n.whistleblower().await.unwrap();
    let mut create = tests::swarm_create(&n, 1, 1, 8, 3_000_000);
    create.outer_lr = 1.0;
    n.send_create_swarm(create).await.unwrap();
    let id = 1;
    // The contributor leaves evaluations and merges to others.
    let mut cfg = c.solver_config("solver");
    cfg.swarm = vec![id];
    cfg.min_reward = "1000000uvtr".into();
    let contributor = solverd::start(cfg).await.unwrap();
    // The merge of G_r and one contribution: corrupt the merged l0.b.
    let mut m = train::Program::builtin("mlp-digits").unwrap();
    m.record_loss = true;
    m.mode = train::program::Mode::Merge { outer_lr: 1.0 };
    m.steps = 1;
    let any = train::StateRef {
        name: "x".into(),
        root: [0; 32],
        step: 0,
    };
    m.inputs = vec![any.clone(), any];
    let node = m.graph().unwrap().updates["l0.b"];
    let mut ac = c.solver_config("cheater");
    ac.inject_fault = vec![Fault::OnlyMerges, Fault::Corrupt { step: 1, node }];
    let liar = solverd::start(ac).await.unwrap();
    eventually(300, "the lying aggregator is slashed", || async {
        Ok(n.stake("cheater").await?.1 > Amount::ZERO)
    })
    .await
    .unwrap();
    liar.shutdown().await;
    let honest = solverd::start(c.solver_config("submitter")).await.unwrap();
    let r = settled(&n, id, 0).await;
    let merge = r.merge.as_ref().expect("a merge task");
    assert!(merge.attempts >= 2, "{r:?}");
    assert_eq!(merge.task_status, "finalized", "{r:?}");
    assert_eq!(r.merge_slots, vec![0]);
    // Every evaluation the liar did was honest and verified; every merge it did failed.
    let cheater = n.addr("cheater").to_string();
    let mut lies = 0;
    for t in 1..=merge.task_id {
        let t = n.task(t).await.unwrap();
        let p = train::Program::from_json(std::str::from_utf8(&t.program_json).unwrap()).unwrap();
        if t.solver == cheater && p.is_merge() {
            assert_eq!(
                t.status,
                proto::tasks::v1::TaskStatus::Failed as i32,
                "{t:?}"
            );
            assert!(!t.payouts.iter().any(|p| p.recipient == cheater));
            lies += 1;
        }
    }
    assert!(lies >= 1);
    let t = n.task(merge.task_id).await.unwrap();
    assert_eq!(t.solver, n.addr("submitter").to_string());
    let sw = c
        .client
        .swarm()
        .swarm(pb::QuerySwarmRequest { swarm_id: id })
        .await
        .unwrap()
        .into_inner()
        .swarm
        .unwrap();
    let g = sw.global.unwrap();
    assert_eq!(g.root, t.final_state_hash);
    assert_eq!(g.task_id, merge.task_id);
    honest.shutdown().await;
    contributor.shutdown().await;
    v.shutdown().await;
    n.c.shutdown().await;
}

/// One round of two contributors in which "cheater" evaluates first, alone, with
/// `faults(loss node of the evaluation program)`, until it is slashed; then an
/// honest evaluator takes over. The round must settle with every evaluation
/// reported, every contribution paid for its improvement, and the cheater nowhere
/// on the leaderboard. Returns the settled round.
async fn bad_evaluator(faults: impl FnOnce(usize) -> Vec<Fault>) -> pb::Round {
    let n = net().await.unwrap();
    let c = &n.c;
    let v = n.whistleblower().await.unwrap();
    // Contributors: "solver" and "verifier2" (any funded key can stake as a
    // solver); they leave the evaluations to others.
    let mut contributors = Vec::new();
    let mut program = train::Program::builtin("mlp-digits").unwrap();
    program.record_loss = true;
    n.create_swarm(1, 2, 8, 3_000_000).await.unwrap();
    let id = 1;
    for name in ["solver", "verifier2"] {
        let mut cfg = c.solver_config(name);
        cfg.swarm = vec![id];
        cfg.min_reward = "1000000uvtr".into();
        contributors.push(solverd::start(cfg).await.unwrap());
    }
    let mut eval_prog = program.clone();
    eval_prog.mode = train::program::Mode::Evaluate {
        rows_from: 1500,
        rows_to: 1797,
    };
    eval_prog.batch_size = 64;
    let loss_node = eval_prog.graph().unwrap().loss;
    let mut ec = c.solver_config("cheater");
    ec.inject_fault = faults(loss_node);
    let eve = solverd::start(ec).await.unwrap();
    eventually(240, "the bad evaluator is slashed", || async {
        Ok(n.stake("cheater").await?.1 > Amount::ZERO)
    })
    .await
    .unwrap();
    eve.shutdown().await;
    // An honest evaluator ("submitter" also stakes as a solver) takes over.
    let honest = solverd::start(c.solver_config("submitter")).await.unwrap();
    let r = settled(&n, id, 0).await;
    let mut q = c.client.swarm();
    let ms: Vec<&pb::Measurement> = r
        .base
        .iter()
        .chain(r.contributions.iter().filter_map(|k| k.eval.as_ref()))
        .collect();
    assert!(ms.iter().all(|m| m.reported), "{r:?}");
    for k in &r.contributions {
        assert!(k.improvement > 0, "{k:?}");
        assert_ne!(k.quality_paid, "0", "{k:?}");
    }
    let board = q
        .leaderboard(pb::QueryLeaderboardRequest {
            swarm_id: id,
            limit: 10,
        })
        .await
        .unwrap()
        .into_inner()
        .entries;
    assert!(board
        .iter()
        .all(|e| e.address != n.addr("cheater").to_string()));
    honest.shutdown().await;
    for s in contributors {
        s.shutdown().await;
    }
    v.shutdown().await;
    n.c.shutdown().await;
    r
}

/// A contributor that copies another's result instead of training its own slot
/// (whose program has its own batch seed): the verifier re-executes the copier's
/// program, disputes the copy and wins; the copier is slashed, earns neither the
/// work share nor a quality share, and the honest contributor is paid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_contribution_is_disputed_and_slashed() {
    let n = net().await.unwrap();
    let c = &n.c;
    let v = n.whistleblower().await.unwrap();
    n.create_swarm(1, 2, 8, 3_000_000).await.unwrap();
    let send = |who: &'static str, msg: prost_types::Any| {
        let c = &n.c;
        async move {
            let (_, r) = c
                .client
                .sign_and_send(
                    c.signer(who)?,
                    vec![msg],
                    "",
                    None,
                    Some(Duration::from_secs(30)),
                )
                .await?;
            anyhow::Ok(r.ok_or_else(|| anyhow::anyhow!("no result"))?)
        }
    };
    let id = 1;
    // The honest contributor ("solver") trains its slot and evaluates.
    let mut sc = c.solver_config("solver");
    sc.swarm = vec![id];
    let honest = solverd::start(sc).await.unwrap();
    // The copier ("cheater") stakes, takes the other slot by hand, and commits
    // the honest contributor's result as its own.
    let stake =
        app::testkit::register_msg(&n.addr("cheater"), staking::Role::Solver, Amount(5_000_000));
    assert_eq!(send("cheater", stake).await.unwrap().code, 0);
    let join = pb::MsgJoinRound {
        contributor: n.addr("cheater").to_string(),
        swarm_id: id,
        round: 0,
        endpoint: "http://127.0.0.1:1".into(),
        dataset: None,
    };
    let mut q = c.client.swarm();
    eventually(60, "a slot to copy into", || {
        let q = q.clone();
        let join = join.clone();
        let send = &send;
        async move {
            let mut q = q;
            let r = q
                .round(pb::QueryRoundRequest {
                    swarm_id: id,
                    round: 0,
                })
                .await?
                .into_inner()
                .round
                .unwrap_or_default();
            if r.contributions
                .iter()
                .any(|k| k.contributor == join.contributor)
            {
                return Ok(true);
            }
            let _ = send("cheater", proto::to_any(&join)).await;
            Ok(false)
        }
    })
    .await
    .unwrap();
    let r = q
        .round(pb::QueryRoundRequest {
            swarm_id: id,
            round: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .round
        .unwrap();
    let task_of = |who: &str| {
        r.contributions
            .iter()
            .find(|k| k.contributor == n.addr(who).to_string())
            .unwrap()
            .task_id
    };
    let (honest_task, copy_task) = (task_of("solver"), task_of("cheater"));
    eventually(120, "the honest contribution's commit", || async {
        Ok(!n.task(honest_task).await?.trace_root.is_empty())
    })
    .await
    .unwrap();
    let t = n.task(honest_task).await.unwrap();
    let (root, fin) = (t.trace_root.clone(), t.final_state_hash.clone());
    let commit = proto::tasks::v1::MsgCommitResult {
        solver: n.addr("cheater").to_string(),
        task_id: copy_task,
        trace_root: root,
        final_state_hash: fin,
    };
    assert_eq!(
        send("cheater", proto::to_any(&commit)).await.unwrap().code,
        0
    );
    eventually(300, "the round settles", || {
        let q = q.clone();
        async move {
            let mut q = q;
            let r = q
                .round(pb::QueryRoundRequest {
                    swarm_id: id,
                    round: 0,
                })
                .await?
                .into_inner()
                .round
                .unwrap_or_default();
            Ok(r.phase == pb::RoundPhase::Settled as i32)
        }
    })
    .await
    .unwrap();
    let r = q
        .round(pb::QueryRoundRequest {
            swarm_id: id,
            round: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .round
        .unwrap();
    cheater_lost_honest_paid(&n, &r, copy_task, honest_task).await;
    honest.shutdown().await;
    v.shutdown().await;
    n.c.shutdown().await;
}
