//! Swarm rounds through real messages on the runtime's test world (supply and
//! every escrow, the swarm's included, checked after every block), with real
//! training: contributors and evaluators compute their tasks with the CPU
//! reference, verifiers attest with evidence, losses are reported with proofs.
use bank::BankRead;
use framework::StateRead;
use framework::{Address, Amount};
use proto::swarm::v1 as spb;
use swarm::msg::{MsgCreateSwarm, MsgReportLoss};
use swarm::{Phase, SwarmMsg, SwarmRead};
use tasks::{Status, TasksMsg, TasksRead};
use train::Program;
use world::{base, create_msg, W};

mod world;

#[test]
fn a_round_pays_measured_improvement_merges_the_best_and_ranks_contributors() {
    let mut w = W::new();
    let creator0 = w.w.state.balance(&w.creator).unwrap();
    let id = w.create(2, 2);
    let sw = w.w.state.swarm(id).unwrap();
    assert_eq!(sw.escrow, Amount(6_000_000));
    assert!(
        sw.global.source.starts_with("seed:"),
        "{}",
        sw.global.source
    );
    let g0 = sw.global.root;
    let (c0, c1) = (w.contributors[0], w.contributors[1]);
    w.join(c0, id).unwrap();
    // Bad joins change nothing.
    let e = w.join(c0, id).unwrap_err();
    assert!(e.1.contains("already holds a slot"), "{e:?}");
    let stranger = Address::module("stranger");
    let e = w.join(stranger, id).unwrap_err();
    assert!(e.1.contains("stake"), "{e:?}");
    w.join(c1, id).unwrap();
    let e = w.join(w.contributors[2], id).unwrap_err();
    assert!(
        e.1.contains("joining closed") || e.1.contains("every slot"),
        "{e:?}"
    );

    // The contributions train on training rows only, each on its own shard; the
    // evaluation seed does not exist until every contribution has ended.
    let r = w.w.state.round(id, 0).unwrap();
    let progs: Vec<Program> = r
        .contributions
        .iter()
        .map(|c| {
            let t = w.w.state.task(c.task_id).unwrap();
            Program::from_json(std::str::from_utf8(&t.program_json).unwrap()).unwrap()
        })
        .collect();
    assert_ne!(progs[0].seed, progs[1].seed, "distinct shards");
    for p in &progs {
        assert_eq!(p.init_state.as_ref().unwrap().root, g0);
        for t in 1..=p.steps {
            assert!(train::trainer::batch_rows(p, t)
                .iter()
                .all(|&row| row < 1500));
        }
    }
    assert!(r.eval_seed.is_none());

    let r0 = w.until_settled(id, 0);
    assert!(r0.eval_seed.is_some());
    let base = r0.base.as_ref().unwrap();
    assert!(base.reported);
    // Each contribution's measurement used held-out rows only.
    for c in &r0.contributions {
        let m = c.eval.as_ref().unwrap();
        assert!(m.reported, "{c:?}");
        let t = w.w.state.task(m.task_id).unwrap();
        let p = Program::from_json(std::str::from_utf8(&t.program_json).unwrap()).unwrap();
        for s in 1..=p.steps {
            assert!(train::trainer::batch_rows(&p, s)
                .iter()
                .all(|&row| (1500..1797).contains(&row)));
        }
        assert_eq!(c.improvement, base.loss_fixed.saturating_sub(m.loss_fixed));
    }
    // Training from the seed state improves the held-out loss: both get a share,
    // in proportion to their improvement, and the pool is paid out to the unit
    // (up to rounding).
    let total: u64 = r0.contributions.iter().map(|c| c.improvement).sum();
    assert!(total > 0, "{r0:?}");
    let paid: u128 = r0.contributions.iter().map(|c| c.quality_paid.0).sum();
    assert_eq!(paid, r0.quality_paid.0);
    assert!(
        r0.quality_pool.0 - paid < 2,
        "{} of {}",
        paid,
        r0.quality_pool
    );
    for c in &r0.contributions {
        assert_eq!(
            c.quality_paid,
            r0.quality_pool.mul_ratio(c.improvement, total)
        );
    }
    // The best improvement is G_1.
    let best = r0
        .contributions
        .iter()
        .max_by_key(|c| c.improvement)
        .unwrap();
    assert_eq!(r0.merged_slot, Some(best.slot));
    let sw = w.w.state.swarm(id).unwrap();
    assert_eq!(sw.global.root, best.final_state_hash.unwrap());
    assert_eq!(sw.global.step, 12);
    assert_eq!(sw.round, 1);

    // The leaderboard ranks by verified quality, in this swarm and over all.
    let board = w.w.state.leaderboard(id, 10).unwrap();
    assert_eq!(board.len(), 2);
    let q = |e: &spb::ContributorScore| e.quality.parse::<u128>().unwrap();
    assert!(q(&board[0]) >= q(&board[1]));
    assert_eq!(board[0].address, best.solver.unwrap().to_string());
    assert_eq!(w.w.state.leaderboard(0, 10).unwrap(), {
        let mut g = board.clone();
        g.iter_mut().for_each(|e| e.swarm_id = 0);
        g
    });

    // Round 1 starts from G_1: its contributions fine-tune the merged state.
    w.join(c1, id).unwrap();
    w.join(c0, id).unwrap();
    let r1 = w.w.state.round(id, 1).unwrap();
    let t = w.w.state.task(r1.contributions[0].task_id).unwrap();
    let p = Program::from_json(std::str::from_utf8(&t.program_json).unwrap()).unwrap();
    let init = p.init_state.unwrap();
    assert_eq!((init.root, init.step), (best.final_state_hash.unwrap(), 12));
    let r1 = w.until_settled(id, 1);
    let base1 = r1.base.as_ref().unwrap().loss_fixed;
    assert!(base1 < base.loss_fixed, "G_1 measures better than G_0");

    // The last round refunds what is left: the swarm account is empty, and the
    // creator paid exactly what the swarm paid out.
    let sw = w.w.state.swarm(id).unwrap();
    assert!(sw.done);
    assert_eq!(sw.escrow, Amount::ZERO);
    assert_eq!(
        w.w.state.balance(&swarm::module_address()).unwrap(),
        Amount::ZERO
    );
    let creator1 = w.w.state.balance(&w.creator).unwrap();
    assert!(creator1 < creator0);
    // Leaderboard order equals sorting every score by quality.
    let board = w.w.state.leaderboard(id, 10).unwrap();
    let mut sorted = board.clone();
    sorted.sort_by(|a, b| q(b).cmp(&q(a)).then(a.address.cmp(&b.address)));
    assert_eq!(
        board.iter().map(|e| &e.address).collect::<Vec<_>>(),
        sorted.iter().map(|e| &e.address).collect::<Vec<_>>()
    );
    assert!(board.iter().all(|e| e.contributions == 2));
}

#[test]
fn a_copied_contribution_measures_nothing_and_earns_no_quality_share() {
    let mut w = W::new();
    let id = w.create(1, 2);
    let (c0, c1) = (w.contributors[0], w.contributors[1]);
    w.join(c0, id).unwrap();
    w.join(c1, id).unwrap();
    let r = w.w.state.round(id, 0).unwrap();
    let (t0, t1) = (r.contributions[0].task_id, r.contributions[1].task_id);
    // c0 trains; c1 commits c0's result as its own.
    w.solve(t0, c0);
    let (h0, s0) = w.runs[&t0].clone();
    w.runs.insert(t1, (h0.clone(), s0));
    w.tasks_tx(TasksMsg::Commit(tasks::msg::MsgCommitResult {
        solver: c1,
        task_id: t1,
        trace_root: train::merkle::root(&h0),
        final_state_hash: *h0.last().unwrap(),
    }))
    .unwrap();
    let r = w.until_settled(id, 0);
    let copy = &r.contributions[1];
    // No honest verifier can attest the copy (its slot's program gives other
    // hashes); whatever its task's fate, it is never measured nor paid for quality.
    assert!(copy.eval.is_none());
    assert_eq!(copy.improvement, 0);
    assert_eq!(copy.quality_paid, Amount::ZERO);
    let t1 = w.w.state.task(t1).unwrap();
    assert!(t1.attestations.is_empty(), "nobody attested the copy");
    assert!(r.contributions[0].quality_paid > Amount::ZERO);
}

#[test]
fn loss_reports_must_prove_the_verified_bits() {
    let mut w = W::new();
    let id = w.create(1, 1);
    let c0 = w.contributors[0];
    w.join(c0, id).unwrap();
    // Play until the evaluations are finalized, without reporting.
    let mut tid = None;
    for _ in 0..100 {
        let r = w.w.state.round(id, 0).unwrap();
        if let Some(m) = r.base.as_ref() {
            if w.w.state.task(m.task_id).unwrap().status == Status::Finalized {
                tid = Some(m.task_id);
                break;
            }
            // Before its task is finalized, a report is refused.
            if w.runs.contains_key(&m.task_id) {
                let e = w
                    .swarm_tx(SwarmMsg::ReportLoss(w.report(id, m.task_id)))
                    .unwrap_err();
                assert!(e.1.contains("verified"), "{e:?}");
            }
        }
        let sw = w.w.state.swarm(id).unwrap();
        let r = w.w.state.round(id, sw.round).unwrap();
        // Solve and attest, never report.
        let ids: Vec<u64> = r
            .contributions
            .iter()
            .map(|c| c.task_id)
            .chain(r.measurements().map(|m| m.task_id))
            .collect();
        let finalized = ids
            .iter()
            .all(|t| w.w.state.task(*t).unwrap().status == Status::Finalized);
        if finalized && r.base.is_some() {
            continue;
        }
        w.play_without_reports(id);
    }
    let tid = tid.expect("the base evaluation finalized");
    let good = w.report(id, tid);
    let refused = |w: &mut W, m: MsgReportLoss, what: &str| {
        let e = w.swarm_tx(SwarmMsg::ReportLoss(m)).unwrap_err();
        assert_eq!(e.0, 6, "{e:?}");
        assert!(e.1.contains(what), "{what}: {e:?}");
    };
    // An inflated score: the loss bits of a better model than the one measured.
    let mut m = good.clone();
    m.losses[0].loss_bits = (f32::from_bits(m.losses[0].loss_bits) * 0.5).to_bits();
    refused(&mut w, m, "not proven");
    // A step hash that is not the trace's.
    let mut m = good.clone();
    m.losses[1].state_hash[0] ^= 1;
    refused(&mut w, m, "not proven");
    // Steps out of order, or too few.
    let mut m = good.clone();
    m.losses.swap(0, 1);
    refused(&mut w, m, "expected 1");
    let mut m = good.clone();
    m.losses.pop();
    refused(&mut w, m, "steps");
    // A task that is not one of the round's evaluations.
    let mut m = good.clone();
    m.task_id = w.w.state.round(id, 0).unwrap().contributions[0].task_id;
    refused(&mut w, m, "not an evaluation");
    // The honest report is accepted once, exactly.
    w.swarm_tx(SwarmMsg::ReportLoss(good.clone())).unwrap();
    refused(&mut w, good, "already reported");
}

#[test]
fn bad_swarms_are_refused_with_clear_errors_and_cost_nothing() {
    let mut w = W::new();
    let before = w.w.state.balance(&w.creator).unwrap();
    type Change = Box<dyn Fn(&mut MsgCreateSwarm)>;
    let cases: Vec<(Change, &str)> = vec![
        (Box::new(|m| m.rounds = 0), "rounds"),
        (Box::new(|m| m.slots = 0), "slots"),
        (Box::new(|m| m.slots = 1000), "slots"),
        (Box::new(|m| m.inner_steps = 1), "inner_steps"),
        (Box::new(|m| m.eval_steps = 1), "eval_steps"),
        (Box::new(|m| m.eval_steps = 10_000), "eval_steps"),
        (
            Box::new(|m| m.budget_per_round = Amount(1_000)),
            "does not cover",
        ),
        (Box::new(|m| m.contribution_reward = Amount(1)), "minimum"),
        (
            Box::new(|m| m.budget_per_round = Amount(u128::MAX / 4)),
            "insufficient",
        ),
        (
            Box::new(|m| {
                let mut p = base();
                p.record_loss = false;
                m.program_json = serde_json::to_vec(&p).unwrap();
            }),
            "record_loss",
        ),
        (
            Box::new(|m| m.program_json = b"{not json".to_vec()),
            "invalid program",
        ),
        (Box::new(|m| m.eval_batch = 0), "batch"),
    ];
    for (f, want) in cases {
        let mut m = create_msg(w.creator, 2, 2);
        f(&mut m);
        let e = w.swarm_tx(SwarmMsg::Create(m)).unwrap_err();
        assert!(e.1.to_lowercase().contains(want), "{want}: {e:?}");
    }
    assert_eq!(w.w.state.balance(&w.creator).unwrap(), before);
    assert!(w.w.state.swarms(0, 10).unwrap().is_empty());
}

#[test]
fn an_evaluation_left_undone_is_submitted_again_so_no_evaluator_can_deny_a_measurement() {
    let mut w = W::new();
    let id = w.create(1, 1);
    w.join(w.contributors[0], id).unwrap();
    // Play until the evaluations exist, then shun the base's first one.
    let first = loop {
        let r = w.w.state.round(id, 0).unwrap();
        if let Some(m) = r.base.as_ref() {
            break m.task_id;
        }
        w.play(id);
    };
    w.shunned.push(first);
    let r = w.until_settled(id, 0);
    let base = r.base.as_ref().unwrap();
    assert_ne!(base.task_id, first, "a new evaluation task");
    assert_eq!(base.attempts, 2);
    assert!(base.reported);
    assert_eq!(w.w.state.task(first).unwrap().status, Status::Expired);
    assert!(r.contributions[0].improvement > 0, "{r:?}");
    assert!(r.contributions[0].quality_paid > Amount::ZERO);
}

#[test]
fn a_seed_chain_fixes_each_rounds_evaluation_rows_when_the_creator_reveals() {
    use swarm::msg::{seed_chain, seed_link, MsgRevealEvalSeed};
    let mut w = W::new();
    let secret = [9u8; 32];
    let mut m = create_msg(w.creator, 2, 1);
    m.seed_commitment = Some(seed_chain(&secret, 2));
    let id = w.create_with(m);
    let c0 = w.contributors[0];
    w.join(c0, id).unwrap();
    // The contribution ends; the round waits for the creator's link.
    for _ in 0..200 {
        if w.w.state.round(id, 0).unwrap().phase == swarm::Phase::Seeding {
            break;
        }
        w.play(id);
    }
    let r = w.w.state.round(id, 0).unwrap();
    assert_eq!(r.phase, swarm::Phase::Seeding);
    assert!(
        r.eval_seed.is_none() && r.base.is_none(),
        "no evaluation before the reveal"
    );
    let reveal = |who: Address, secret: [u8; 32]| {
        SwarmMsg::RevealEvalSeed(MsgRevealEvalSeed {
            creator: who,
            swarm_id: id,
            round: 0,
            secret,
        })
    };
    // Not the creator, or not the chain's link: refused (code 10), nothing changes.
    let e = w
        .swarm_tx(reveal(c0, seed_link(&secret, 2, 0)))
        .unwrap_err();
    assert_eq!(e.0, 10, "{e:?}");
    let e = w
        .swarm_tx(reveal(w.creator, seed_link(&secret, 2, 1)))
        .unwrap_err();
    assert_eq!(e.0, 10, "{e:?}");
    w.swarm_tx(reveal(w.creator, seed_link(&secret, 2, 0)))
        .unwrap();
    let r = w.w.state.round(id, 0).unwrap();
    assert!(
        r.seed_revealed && r.eval_seed.is_some() && r.base.is_some(),
        "{r:?}"
    );
    assert_eq!(r.phase, swarm::Phase::Evaluating);
    // The same link again is refused: the head moved on.
    assert!(w
        .swarm_tx(reveal(w.creator, seed_link(&secret, 2, 0)))
        .is_err());
    let r0 = w.until_settled(id, 0);
    assert!(r0.contributions[0].quality_paid > Amount::ZERO);
    // Round 1: the creator stays silent; after reveal_blocks the block hash draws.
    w.join(c0, id).unwrap();
    let r1 = w.until_settled(id, 1);
    assert!(!r1.seed_revealed);
    assert!(r1.note.contains("did not reveal"), "{}", r1.note);
    assert!(r1.base.as_ref().unwrap().reported);
}

#[test]
fn own_data_is_refused_without_sealed_pools() {
    use swarm::swarm::DataSource;
    let layout = |schema, rows| tasks::DatasetLayout {
        schema,
        rows,
        row_bytes: 65,
        chunk_rows: 8,
    };
    let own = DataSource {
        name: "https://example.invalid/mine.vtds".into(),
        root: [3; 32],
        layout: layout(train::dataset::Schema::Digits8x8, 1500),
    };
    let join = |w: &mut W, id: u64, who: Address, d: DataSource| {
        w.swarm_tx(SwarmMsg::Join(swarm::msg::MsgJoinRound {
            contributor: who,
            swarm_id: id,
            round: 0,
            endpoint: "http://me".into(),
            dataset: Some(d),
        }))
    };
    let mut w = W::new();
    // Without pools the public held-out rows measure every round: own data could
    // hold them, so it is refused.
    let id = w.create(1, 2);
    let c0 = w.contributors[0];
    let e = join(&mut w, id, c0, own.clone()).unwrap_err();
    assert_eq!(e.0, 5, "{e:?}");
    assert!(e.1.contains("sealed"), "{e:?}");
    // With one sealed pool per round, own data in the swarm's schema is accepted.
    let pool = |i: u8| DataSource {
        name: format!("https://example.invalid/pool-{i}.vtds"),
        root: [10 + i; 32],
        layout: layout(train::dataset::Schema::Digits8x8, 60),
    };
    let mut m = create_msg(w.creator, 2, 2);
    m.pools = vec![pool(0)];
    let e = w.swarm_tx(SwarmMsg::Create(m.clone())).unwrap_err();
    assert!(e.1.contains("one per round"), "{e:?}");
    m.pools = vec![pool(0), pool(1)];
    let id = w.create_with(m);
    let mut wrong = own.clone();
    wrong.layout.schema = train::dataset::Schema::Ascii;
    assert!(join(&mut w, id, c0, wrong).is_err());
    join(&mut w, id, c0, own.clone()).unwrap();
    let r = w.w.state.round(id, 0).unwrap();
    let t = w.w.state.task(r.contributions[0].task_id).unwrap();
    let p = Program::from_json(std::str::from_utf8(&t.program_json).unwrap()).unwrap();
    assert_eq!((p.dataset.root, p.dataset.train_rows), ([3; 32], 1499));
    assert_eq!(r.contributions[0].dataset.as_ref(), Some(&own));
}

#[test]
fn an_evaluation_nobody_does_is_retried_three_times_then_given_up_and_the_round_still_settles() {
    use swarm::component::round::MAX_EVAL_ATTEMPTS;
    let mut w = W::new();
    let id = w.create(1, 1);
    let c0 = w.contributors[0];
    w.join(c0, id).unwrap();
    let escrow0 = w.w.state.swarm(id).unwrap().escrow;
    // Every attempt at measuring the base is shunned: it expires each time.
    let r = loop {
        let r = w.w.state.round(id, 0).unwrap();
        if let Some(b) = r.base.as_ref() {
            if !w.shunned.contains(&b.task_id) {
                w.shunned.push(b.task_id);
            }
        }
        if r.phase == Phase::Settled {
            break r;
        }
        assert!(w.w.height < 2_000, "round 0 never settled: {r:?}");
        w.play(id);
    };
    let base = r.base.as_ref().unwrap();
    assert_eq!(base.attempts, MAX_EVAL_ATTEMPTS);
    assert_eq!(
        w.shunned.len() as u32,
        MAX_EVAL_ATTEMPTS,
        "no fourth attempt"
    );
    assert!(!base.reported);
    assert_ne!(base.task_status, Status::Finalized.name());
    // Without the base's loss there is no measured improvement: no quality share, but the
    // verified work is still paid, and the swarm's escrow only ever shrank by what it paid.
    let c = &r.contributions[0];
    assert_eq!(c.improvement, 0);
    assert_eq!(c.quality_paid, Amount::ZERO);
    assert!(w.w.state.balance(&c0).unwrap() > Amount::ZERO);
    assert!(w.w.state.swarm(id).unwrap().escrow <= escrow0);
}

#[test]
fn a_swarm_that_cannot_move_holds_up_no_other_and_is_looked_at_again() {
    let mut w = W::new();
    // A corrupted record would trip the invariant checks: this test is about the block.
    w.w.check_every = u64::MAX;
    let a = w.create(1, 1);
    let b = w.create(1, 1);
    w.join(w.contributors[0], a).unwrap();
    w.join(w.contributors[1], b).unwrap();
    // Swarm a's round record becomes unreadable: every look at it fails.
    let key = swarm::state_key::round(a, 0);
    let good = w.w.state.get_raw(&key).unwrap().unwrap();
    let swarm_key = swarm::state_key::swarm(a);
    let a_before = w.w.state.get_raw(&swarm_key).unwrap();
    w.w.write(|s| s.put_raw(key.clone(), b"not a round".to_vec()));
    // Swarm b settles as if a did not exist, in the same blocks as a's failed looks;
    // a's records stay as they were, and nothing panics.
    let rb = w.until_settled(b, 0);
    assert!(rb.contributions[0].improvement > 0, "{rb:?}");
    assert_eq!(
        w.w.state.get_raw(&key).unwrap().unwrap(),
        b"not a round".to_vec()
    );
    assert_eq!(w.w.state.get_raw(&swarm_key).unwrap(), a_before);
    // Repaired, a is looked at again and moves on.
    w.w.write(|s| s.put_raw(key.clone(), good));
    let ra = w.until_settled(a, 0);
    assert_eq!(ra.phase, Phase::Settled);
}

/// A swarm that merges by averaging: settlement submits one merge task over `G_r`
/// and every improving contribution; once it is verified its final state is
/// `G_{r+1}` (the outer step's bits, as anyone recomputes them), the next round's
/// contributions start from it, and the held-out loss falls.
#[test]
fn an_averaged_round_merges_the_improving_contributions_in_a_verified_task() {
    let mut w = W::new();
    let mut m = create_msg(w.creator, 2, 2);
    m.outer_lr_bits = 1.0f32.to_bits();
    let id = w.create_with(m);
    let g0 = w.w.state.swarm(id).unwrap().global;
    let (c0, c1) = (w.contributors[0], w.contributors[1]);
    w.join(c0, id).unwrap();
    w.join(c1, id).unwrap();
    let r0 = w.until_settled(id, 0);
    let merge = r0.merge.as_ref().expect("a merge task");
    assert_eq!(merge.task_status, "finalized", "{r0:?}");
    assert_eq!(merge.attempts, 1);
    assert_eq!(r0.merged_slot, None, "merged by averaging, not selection");
    let improving: Vec<&swarm::swarm::Contribution> = r0
        .contributions
        .iter()
        .filter(|c| c.improvement > 0)
        .collect();
    assert!(!improving.is_empty(), "{r0:?}");
    assert_eq!(
        r0.merge_slots,
        improving.iter().map(|c| c.slot).collect::<Vec<_>>()
    );
    // The merge task's program reads G_r and the improving contributions, in
    // slot order; its h_0 commits to their roots.
    let t = w.w.state.task(merge.task_id).unwrap();
    let p = Program::from_json(std::str::from_utf8(&t.program_json).unwrap()).unwrap();
    assert!(p.is_merge() && p.steps == 1);
    let roots: Vec<[u8; 32]> = p.inputs.iter().map(|i| i.root).collect();
    let mut want = vec![g0.root];
    want.extend(improving.iter().map(|c| c.final_state_hash.unwrap()));
    assert_eq!(roots, want);
    // G_1 is the merge's verified final state, recomputed here bit for bit.
    let sw = w.w.state.swarm(id).unwrap();
    let final_hash = t.commitment.unwrap().final_state_hash;
    assert_eq!(sw.global.root, final_hash);
    assert_eq!(sw.global.task_id, merge.task_id);
    assert_eq!(sw.global.step, g0.step + 1);
    assert_eq!(*w.honest_hashes(merge.task_id).last().unwrap(), final_hash);
    // The merge was paid like an evaluation, out of what settlement kept back.
    assert!(r0.quality_pool.0 > 0);
    // Round 1 fine-tunes the merged state and measures it better than G_0.
    w.join(c1, id).unwrap();
    w.join(c0, id).unwrap();
    let r1 = w.w.state.round(id, 1).unwrap();
    let t = w.w.state.task(r1.contributions[0].task_id).unwrap();
    let p = Program::from_json(std::str::from_utf8(&t.program_json).unwrap()).unwrap();
    let init = p.init_state.unwrap();
    assert_eq!((init.root, init.step), (final_hash, 1));
    let r1 = w.until_settled(id, 1);
    assert!(
        r1.base.as_ref().unwrap().loss_fixed < r0.base.as_ref().unwrap().loss_fixed,
        "the merged model measures better than G_0"
    );
    let sw = w.w.state.swarm(id).unwrap();
    assert!(sw.done);
    assert_eq!(sw.escrow, Amount::ZERO);
    assert_eq!(
        w.w.state.balance(&swarm::module_address()).unwrap(),
        Amount::ZERO
    );
}

/// A merge task nobody does (or that fails verification) is submitted again, at
/// most three times in all; then the round merges by selection, so no aggregator
/// can stall a swarm.
#[test]
fn a_merge_nobody_does_is_retried_then_the_round_merges_by_selection() {
    let mut w = W::new();
    let mut m = create_msg(w.creator, 1, 1);
    m.outer_lr_bits = 0.5f32.to_bits();
    let id = w.create_with(m);
    w.join(w.contributors[0], id).unwrap();
    let mut shunned = vec![];
    let r = loop {
        let r = w.w.state.round(id, 0).unwrap();
        if r.phase == Phase::Settled {
            break r;
        }
        if let Some(m) = r.merge.as_ref() {
            if !w.shunned.contains(&m.task_id) {
                w.shunned.push(m.task_id);
                shunned.push(m.task_id);
            }
        }
        w.play(id);
    };
    assert_eq!(shunned.len(), 3, "{r:?}");
    for t in &shunned {
        assert_eq!(w.w.state.task(*t).unwrap().status, Status::Expired);
    }
    let merge = r.merge.as_ref().unwrap();
    assert_eq!((merge.attempts, merge.task_status.as_str()), (3, "expired"));
    assert!(r.note.contains("merged by selection"), "{}", r.note);
    let c = &r.contributions[0];
    assert!(c.improvement > 0, "{r:?}");
    assert_eq!(r.merged_slot, Some(c.slot));
    let sw = w.w.state.swarm(id).unwrap();
    assert_eq!(sw.global.root, c.final_state_hash.unwrap());
    assert!(sw.done && sw.escrow == Amount::ZERO);
}

#[test]
fn an_averaging_swarm_refuses_a_bad_outer_learning_rate() {
    let mut w = W::new();
    let before = w.w.state.balance(&w.creator).unwrap();
    for bits in [
        (-1.0f32).to_bits(),
        f32::NAN.to_bits(),
        f32::INFINITY.to_bits(),
    ] {
        let mut m = create_msg(w.creator, 1, 1);
        m.outer_lr_bits = bits;
        let e = w.swarm_tx(SwarmMsg::Create(m)).unwrap_err();
        assert!(e.1.contains("outer_lr"), "{e:?}");
    }
    // The merge's task is budgeted: a budget that pays only the other tasks is refused.
    let mut m = create_msg(w.creator, 1, 2);
    m.outer_lr_bits = 1.0f32.to_bits();
    m.budget_per_round = Amount(2 * 220_000 + 3 * 70_000);
    let e = w.swarm_tx(SwarmMsg::Create(m)).unwrap_err();
    assert!(e.1.contains("budget_per_round"), "{e:?}");
    assert_eq!(w.w.state.balance(&w.creator).unwrap(), before);
}

/// An endpoint of many multi-byte characters is recorded cut to 256 bytes, so the
/// `grpc://` source naming the contribution's state always fits a program: the
/// evaluations and the merge of its contribution are submitted and the round
/// settles (were it refused, the round could never move on).
#[test]
fn a_long_multibyte_endpoint_cannot_stall_a_round() {
    for outer_lr_bits in [0, 1.0f32.to_bits()] {
        let mut w = W::new();
        let mut m = create_msg(w.creator, 1, 1);
        m.outer_lr_bits = outer_lr_bits;
        let id = w.create_with(m);
        w.swarm_tx(SwarmMsg::Join(swarm::msg::MsgJoinRound {
            contributor: w.contributors[0],
            swarm_id: id,
            round: 0,
            endpoint: "€".repeat(300),
            dataset: None,
        }))
        .unwrap();
        let r = w.until_settled(id, 0);
        let c = &r.contributions[0];
        assert!(
            c.endpoint.len() <= tasks::msg::MAX_ENDPOINT_BYTES,
            "{}",
            c.endpoint.len()
        );
        assert!(c.eval.as_ref().unwrap().reported, "{r:?}");
        assert!(c.improvement > 0);
        if outer_lr_bits != 0 {
            assert_eq!(r.merge.as_ref().unwrap().task_status, "finalized", "{r:?}");
        }
    }
}
