//! Swarm rounds through real messages on the runtime's test world (supply and
//! every escrow, the swarm's included, checked after every block), with real
//! training: contributors and evaluators compute their tasks with the CPU
//! reference, verifiers attest with evidence, losses are reported with proofs.
use bank::BankRead;
use framework::{Address, Amount};
use proto::swarm::v1 as spb;
use runtime::testkit;
use staking::{Role, StakingWrite};
use std::collections::BTreeMap;
use std::sync::Arc;
use swarm::msg::{MsgCreateSwarm, MsgJoinRound, MsgReportLoss, StepLoss};
use swarm::{Phase, SwarmMsg, SwarmRead};
use tasks::{Status, TasksMsg, TasksRead};
use train::{Dataset, Hash, Program, Trainer};

type State = BTreeMap<String, repops::Tensor>;

struct W {
    w: testkit::World,
    creator: Address,
    contributors: Vec<Address>,
    evaluator: Address,
    /// Every state a party has computed, by hash (what a solver would serve).
    states: BTreeMap<Hash, State>,
    /// Each committed task's step hashes and states (for evidence and reports).
    runs: BTreeMap<u64, (Vec<Hash>, Vec<State>)>,
    /// Open tasks nobody claims (an evaluation left undone).
    shunned: Vec<u64>,
}

fn base() -> Program {
    let mut p = Program::builtin("mlp-digits").unwrap();
    p.record_loss = true;
    p
}

fn create_msg(creator: Address, rounds: u64, slots: u64) -> MsgCreateSwarm {
    MsgCreateSwarm {
        creator,
        program_json: serde_json::to_vec(&base()).unwrap(),
        rounds,
        slots,
        inner_steps: 12,
        eval_steps: 2,
        eval_batch: 64,
        budget_per_round: Amount(3_000_000),
        contribution_reward: Amount(200_000),
        evaluation_reward: Amount(50_000),
        verification_fee: Amount(20_000),
        min_stake: Amount(1_000_000),
        dataset: None,
    }
}

impl W {
    fn new() -> W {
        let creator = Address::module("creator");
        let contributors: Vec<Address> = (0..3)
            .map(|i| Address::module(&format!("contrib{i}")))
            .collect();
        let evaluator = Address::module("evaluator");
        let verifiers: Vec<Address> = (0..2)
            .map(|i| Address::module(&format!("ver{i}")))
            .collect();
        let mut w = testkit::World::new();
        let mut all = vec![creator, evaluator];
        all.extend(&contributors);
        all.extend(&verifiers);
        w.fund(&all, 100_000_000);
        w.setup(|s, c| -> Result<(), String> {
            let tp = tasks::Params {
                challenge_window_blocks: 3,
                claim_timeout_blocks: 5,
                ..Default::default()
            };
            tasks::init_genesis(
                s,
                &proto::tasks::v1::GenesisState {
                    params: Some(tp.to_proto()),
                },
            )
            .map_err(|e| e.to_string())?;
            let sp = swarm::Params {
                join_blocks: 10,
                report_blocks: 20,
                check_blocks: 1,
                ..Default::default()
            };
            swarm::init_genesis(
                s,
                &spb::GenesisState {
                    params: Some(sp.to_proto()),
                },
            )
            .map_err(|e| e.to_string())?;
            for a in contributors.iter().chain([&evaluator]) {
                s.register(c, *a, Role::Solver, Amount(5_000_000))
                    .map_err(|e| e.to_string())?;
            }
            for v in &verifiers {
                s.register(c, *v, Role::Verifier, Amount(1_000_000))
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        });
        W {
            w,
            creator,
            contributors,
            evaluator,
            states: BTreeMap::new(),
            runs: BTreeMap::new(),
            shunned: Vec::new(),
        }
    }

    fn swarm_tx(&mut self, m: SwarmMsg) -> Result<(), (u32, String)> {
        self.w.tx(m).map_err(|e| (e.code, e.log))
    }

    fn create(&mut self, rounds: u64, slots: u64) -> u64 {
        self.swarm_tx(SwarmMsg::Create(create_msg(self.creator, rounds, slots)))
            .unwrap();
        self.w.state.swarms(0, 1000).unwrap().last().unwrap().id
    }

    fn join(&mut self, who: Address, id: u64) -> Result<(), (u32, String)> {
        let round = self.w.state.swarm(id).unwrap().round;
        self.swarm_tx(SwarmMsg::Join(MsgJoinRound {
            contributor: who,
            swarm_id: id,
            round,
            endpoint: format!("http://{who}"),
        }))
    }

    fn tasks_tx(&mut self, m: TasksMsg) -> Result<(), (u32, String)> {
        self.w.tx(m).map_err(|e| (e.code, e.log))
    }

    /// The state a task's program starts from (what a solver fetches).
    fn initial(&self, p: &Program) -> State {
        if let Some(s) = train::trainer::seeded_initial(p).unwrap() {
            return s;
        }
        self.states[&p.init_state.as_ref().unwrap().root].clone()
    }

    /// Runs task `id`'s program honestly and commits it.
    fn solve(&mut self, id: u64, solver: Address) {
        let t = self.w.state.task(id).unwrap();
        let p = Program::from_json(std::str::from_utf8(&t.program_json).unwrap()).unwrap();
        let cpu: Arc<dyn repops::Backend> = Arc::new(repops::CpuBackend);
        let mut tr = Trainer::from_initial(
            p.clone(),
            Dataset::builtin("digits").unwrap(),
            cpu,
            self.initial(&p),
        )
        .unwrap();
        let mut hashes = vec![tr.state_hash()];
        let mut states = vec![tr.state().clone()];
        for step in 1..=p.steps {
            hashes.push(tr.step(step).unwrap().state_hash);
            states.push(tr.state().clone());
        }
        self.states
            .insert(*hashes.last().unwrap(), states.last().unwrap().clone());
        self.runs.insert(id, (hashes.clone(), states));
        self.tasks_tx(TasksMsg::Commit(tasks::msg::MsgCommitResult {
            solver,
            task_id: id,
            trace_root: train::merkle::root(&hashes),
            final_state_hash: *hashes.last().unwrap(),
        }))
        .unwrap();
    }

    /// Plays every honest role on the swarm's current tasks for one block:
    /// contributors and the evaluator commit, drawn verifiers attest, and
    /// verified evaluations are reported.
    fn play(&mut self, id: u64) {
        let sw = self.w.state.swarm(id).unwrap();
        if sw.done {
            self.w.advance(1);
            return;
        }
        let r = self.w.state.round(id, sw.round).unwrap();
        let mut ids: Vec<u64> = r.contributions.iter().map(|c| c.task_id).collect();
        ids.extend(r.measurements().map(|m| m.task_id));
        for tid in ids {
            let t = self.w.state.task(tid).unwrap();
            match t.status {
                Status::Open if self.shunned.contains(&tid) => {}
                Status::Open => {
                    let e = self.evaluator;
                    self.tasks_tx(TasksMsg::Claim(tasks::msg::MsgClaimTask {
                        solver: e,
                        task_id: tid,
                        endpoint: "http://evaluator".into(),
                    }))
                    .unwrap();
                }
                Status::Claimed => {
                    let solver = t.claim.as_ref().unwrap().solver;
                    self.solve(tid, solver);
                }
                Status::Committed if !t.verifiers.is_empty() => {
                    let (hashes, _) = self.runs[&tid].clone();
                    for v in t.verifiers.clone() {
                        if t.attestations.iter().any(|a| a.verifier == v) {
                            continue;
                        }
                        // An honest verifier attests only to what it re-executed.
                        let honest = self.honest_hashes(tid);
                        if honest != hashes {
                            continue;
                        }
                        let m = tasks::msg::MsgAttest::from_trace(
                            v,
                            tid,
                            t.level,
                            &t.selection_seed.unwrap(),
                            &hashes,
                            t.steps,
                        );
                        self.tasks_tx(TasksMsg::Attest(m)).unwrap();
                    }
                }
                Status::Finalized => {
                    let reported = r.measurements().any(|m| m.task_id == tid && m.reported);
                    if r.measurements().any(|m| m.task_id == tid) && !reported {
                        let m = self.report(id, tid);
                        self.swarm_tx(SwarmMsg::ReportLoss(m)).unwrap();
                    }
                }
                _ => {}
            }
        }
        self.w.advance(1);
    }

    /// The step hashes an honest re-execution of task `tid` gives.
    fn honest_hashes(&self, tid: u64) -> Vec<Hash> {
        let t = self.w.state.task(tid).unwrap();
        let p = Program::from_json(std::str::from_utf8(&t.program_json).unwrap()).unwrap();
        let cpu: Arc<dyn repops::Backend> = Arc::new(repops::CpuBackend);
        let mut tr = Trainer::from_initial(
            p.clone(),
            Dataset::builtin("digits").unwrap(),
            cpu,
            self.initial(&p),
        )
        .unwrap();
        let mut h = vec![tr.state_hash()];
        for step in 1..=p.steps {
            h.push(tr.step(step).unwrap().state_hash);
        }
        h
    }

    fn report(&self, id: u64, tid: u64) -> MsgReportLoss {
        let (hashes, states) = &self.runs[&tid];
        MsgReportLoss {
            reporter: self.evaluator,
            swarm_id: id,
            task_id: tid,
            losses: (1..hashes.len() as u64)
                .map(|t| StepLoss::from_run(t, hashes, &states[t as usize]).unwrap())
                .collect(),
        }
    }

    /// Plays until round `round` of swarm `id` is settled (or the swarm is done).
    fn until_settled(&mut self, id: u64, round: u64) -> swarm::Round {
        for _ in 0..200 {
            let r = self.w.state.round(id, round).unwrap();
            if r.phase == Phase::Settled {
                return r;
            }
            self.play(id);
        }
        panic!(
            "round {round} did not settle: {:?}",
            self.w.state.round(id, round).unwrap()
        );
    }
}

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

impl W {
    /// [`W::play`] without the reports (for testing them one by one).
    fn play_without_reports(&mut self, id: u64) {
        let sw = self.w.state.swarm(id).unwrap();
        let r = self.w.state.round(id, sw.round).unwrap();
        let reported: Vec<u64> = r.measurements().map(|m| m.task_id).collect();
        let finalized_evals = reported
            .iter()
            .filter(|t| self.w.state.task(**t).unwrap().status == Status::Finalized)
            .count();
        if finalized_evals > 0 {
            // Leave the finalized evaluations unreported: step without playing.
            self.w.advance(1);
            return;
        }
        self.play(id);
    }
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
