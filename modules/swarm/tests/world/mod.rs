//! The swarm test world: the runtime's test world with funded and staked parties,
//! and honest parties played with real training (shared by `rounds.rs` and the
//! round benchmark). Times what each party spends, for the benchmark.
#![allow(dead_code)]
use framework::{Address, Amount};
use proto::swarm::v1 as spb;
use runtime::testkit;
use staking::{Role, StakingWrite};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use swarm::msg::{MsgCreateSwarm, MsgJoinRound, MsgReportLoss, StepLoss};
use swarm::{Phase, SwarmMsg, SwarmRead};
use tasks::{Status, TasksMsg, TasksRead};
use train::{Dataset, Hash, Program, Trainer};

pub type State = BTreeMap<String, repops::Tensor>;

/// Wall time each party spent, for the round benchmark.
#[derive(Clone, Copy, Debug, Default)]
pub struct Spent {
    /// Validators: delivering messages and running end blocks (invariant checks excluded
    /// when `w.check_every` is raised).
    pub chain: Duration,
    /// Contributors training their slots.
    pub training: Duration,
    /// Evaluators running evaluation programs.
    pub evaluating: Duration,
    /// Verifiers re-executing every task.
    pub verifying: Duration,
    /// Reporters building loss proofs.
    pub reporting: Duration,
}

pub struct W {
    pub spent: Spent,
    pub w: testkit::World,
    pub creator: Address,
    pub contributors: Vec<Address>,
    pub evaluator: Address,
    /// Every state a party has computed, by hash (what a solver would serve).
    pub states: BTreeMap<Hash, State>,
    /// Each committed task's step hashes and states (for evidence and reports).
    pub runs: BTreeMap<u64, (Vec<Hash>, Vec<State>)>,
    /// Open tasks nobody claims (an evaluation left undone).
    pub shunned: Vec<u64>,
    /// Parties that never commit what they claimed.
    pub silent: Vec<Address>,
}

pub fn base() -> Program {
    let mut p = Program::builtin("mlp-digits").unwrap();
    p.record_loss = true;
    p
}

pub fn create_msg(creator: Address, rounds: u64, slots: u64) -> MsgCreateSwarm {
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
        seed_commitment: None,
        pools: vec![],
        outer_lr_bits: 0,
    }
}

impl W {
    pub fn new() -> W {
        let creator = Address::module("creator");
        let contributors: Vec<Address> = (0..4)
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
                challenge_window_blocks: 10,
                claim_timeout_blocks: 5,
                commit_blocks: 8,
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
            spent: Spent::default(),
            w,
            creator,
            contributors,
            evaluator,
            states: BTreeMap::new(),
            runs: BTreeMap::new(),
            shunned: Vec::new(),
            silent: Vec::new(),
        }
    }

    pub fn swarm_tx(&mut self, m: SwarmMsg) -> Result<(), (u32, String)> {
        let t0 = Instant::now();
        let r = self.w.tx(m).map_err(|e| (e.code, e.log));
        self.spent.chain += t0.elapsed();
        r
    }

    /// `n` empty blocks.
    pub fn advance(&mut self, n: u64) {
        let t0 = Instant::now();
        self.w.advance(n);
        self.spent.chain += t0.elapsed();
    }

    pub fn create(&mut self, rounds: u64, slots: u64) -> u64 {
        self.create_with(create_msg(self.creator, rounds, slots))
    }

    pub fn create_with(&mut self, m: MsgCreateSwarm) -> u64 {
        self.swarm_tx(SwarmMsg::Create(m)).unwrap();
        self.w.state.swarms(0, 1000).unwrap().last().unwrap().id
    }

    pub fn join(&mut self, who: Address, id: u64) -> Result<(), (u32, String)> {
        let round = self.w.state.swarm(id).unwrap().round;
        self.swarm_tx(SwarmMsg::Join(MsgJoinRound {
            contributor: who,
            swarm_id: id,
            round,
            endpoint: format!("http://{who}"),
            dataset: None,
        }))
    }

    pub fn tasks_tx(&mut self, m: TasksMsg) -> Result<(), (u32, String)> {
        let t0 = Instant::now();
        let r = self.w.tx(m).map_err(|e| (e.code, e.log));
        self.spent.chain += t0.elapsed();
        r
    }

    /// The state a task's program starts from (what a solver fetches).
    pub fn initial(&self, p: &Program) -> State {
        if p.is_merge() {
            let parts = (0..p.inputs.len())
                .map(|i| self.initial(&p.input_program(i).unwrap()))
                .collect();
            return train::checkpoint::merge_inputs(p, parts).unwrap();
        }
        if let Some(s) = train::trainer::seeded_initial(p).unwrap() {
            return s;
        }
        self.states[&p.init_state.as_ref().unwrap().root].clone()
    }

    /// Runs task `id`'s program honestly and commits it.
    pub fn solve(&mut self, id: u64, solver: Address) {
        let started = Instant::now();
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
        if p.mode.is_train() {
            self.spent.training += started.elapsed();
        } else {
            self.spent.evaluating += started.elapsed();
        }
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
    pub fn play(&mut self, id: u64) {
        let sw = self.w.state.swarm(id).unwrap();
        if sw.done {
            self.advance(1);
            return;
        }
        let r = self.w.state.round(id, sw.round).unwrap();
        let mut ids: Vec<u64> = r.contributions.iter().map(|c| c.task_id).collect();
        ids.extend(r.measurements().map(|m| m.task_id));
        ids.extend(r.merge.iter().map(|m| m.task_id));
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
                    if !self.silent.contains(&solver) {
                        self.solve(tid, solver);
                    }
                }
                Status::Committed if !t.verifiers.is_empty() => {
                    let (hashes, _) = self.runs[&tid].clone();
                    for v in t.verifiers.clone() {
                        if t.attestations.iter().any(|a| a.verifier == v) {
                            continue;
                        }
                        // An honest verifier attests only to what it re-executed.
                        let t0 = Instant::now();
                        let honest = self.honest_hashes(tid);
                        self.spent.verifying += t0.elapsed();
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
                        // Late (the window passed while other parties moved): the
                        // verifier misses it, as a slow one would.
                        let _ = self.tasks_tx(TasksMsg::Attest(m));
                    }
                }
                Status::Finalized => {
                    let reported = r.measurements().any(|m| m.task_id == tid && m.reported);
                    if r.measurements().any(|m| m.task_id == tid) && !reported {
                        let t0 = Instant::now();
                        let m = self.report(id, tid);
                        self.spent.reporting += t0.elapsed();
                        self.swarm_tx(SwarmMsg::ReportLoss(m)).unwrap();
                    }
                }
                _ => {}
            }
        }
        self.advance(1);
    }

    /// The step hashes an honest re-execution of task `tid` gives.
    pub fn honest_hashes(&self, tid: u64) -> Vec<Hash> {
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

    pub fn report(&self, id: u64, tid: u64) -> MsgReportLoss {
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
    pub fn until_settled(&mut self, id: u64, round: u64) -> swarm::Round {
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

impl W {
    /// [`W::play`] without the reports (for testing them one by one).
    pub fn play_without_reports(&mut self, id: u64) {
        let sw = self.w.state.swarm(id).unwrap();
        let r = self.w.state.round(id, sw.round).unwrap();
        let reported: Vec<u64> = r.measurements().map(|m| m.task_id).collect();
        let finalized_evals = reported
            .iter()
            .filter(|t| self.w.state.task(**t).unwrap().status == Status::Finalized)
            .count();
        if finalized_evals > 0 {
            // Leave the finalized evaluations unreported: step without playing.
            self.advance(1);
            return;
        }
        self.play(id);
    }
}
