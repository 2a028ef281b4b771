//! Harness of the whole-system scenarios in `tests/tests/`: a fast dev chain
//! in a temporary directory with funded accounts, and helpers to follow tasks
//! and read disputes, stakes and balances over the node's gRPC API.
use app::cluster::{Cluster, Timing};
use framework::{Address, Amount};
use proto::tasks::v1::Task;
use std::time::Duration;

pub use app::cluster;
pub mod proc;

/// Block and deadline timing of the scenarios: 100 ms blocks, a 5 s
/// challenge window and 5 s per dispute move (room for a loaded CI machine
/// running several scenarios at once).
pub fn timing() -> Timing {
    Timing {
        block_ms: 100,
        challenge_window_blocks: 50,
        move_blocks: 50,
    }
}

pub struct Net {
    pub c: Cluster,
    _dir: tempfile::TempDir,
}

/// A fresh network with accounts `submitter`, `solver`, `cheater`, `verifier`, `verifier2`.
pub async fn net() -> anyhow::Result<Net> {
    net_with(|_| {}).await
}

/// [`net`] with the tasks params of genesis changed by `tasks`.
pub async fn net_with(tasks: impl FnOnce(&mut tasks::Params)) -> anyhow::Result<Net> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_test_writer()
        .try_init();
    let dir = tempfile::tempdir()?;
    let c = Cluster::start_with(
        dir.path(),
        &["submitter", "solver", "cheater", "verifier", "verifier2"],
        &timing(),
        tasks,
    )
    .await?;
    Ok(Net { c, _dir: dir })
}

/// mlp-digits with `steps` steps.
pub fn program(steps: u64) -> train::Program {
    let mut p = train::Program::builtin("mlp-digits").expect("builtin program");
    p.steps = steps;
    p
}

/// `MsgCreateSwarm` from "submitter": mlp-digits recording its loss, 2 evaluation
/// batches of 64 held-out rows, rewards 200,000 / 50,000, fee 20,000, no minimum
/// stake, no seed chain, no sealed pools.
pub fn swarm_create(
    n: &Net,
    rounds: u64,
    slots: u64,
    inner_steps: u64,
    budget_per_round: u128,
) -> proto::swarm::v1::MsgCreateSwarm {
    let mut program = train::Program::builtin("mlp-digits").expect("builtin program");
    program.record_loss = true;
    proto::swarm::v1::MsgCreateSwarm {
        creator: n.addr("submitter").to_string(),
        program_json: serde_json::to_vec(&program).expect("program JSON"),
        rounds,
        slots,
        inner_steps,
        eval_steps: 2,
        eval_batch: 64,
        budget_per_round: budget_per_round.to_string(),
        contribution_reward: "200000".into(),
        evaluation_reward: "50000".into(),
        verification_fee: "20000".into(),
        min_stake: "0".into(),
        dataset: None,
        seed_commitment: vec![],
        pools: vec![],
        outer_lr: 0.0,
    }
}

impl Net {
    /// "submitter" creates a swarm from [`swarm_create`] (the dev chain's first is swarm 1).
    pub async fn create_swarm(
        &self,
        rounds: u64,
        slots: u64,
        inner_steps: u64,
        budget_per_round: u128,
    ) -> anyhow::Result<()> {
        self.send_create_swarm(swarm_create(
            self,
            rounds,
            slots,
            inner_steps,
            budget_per_round,
        ))
        .await
    }

    /// "submitter" sends `create` (e.g. a [`swarm_create`] changed by the caller).
    pub async fn send_create_swarm(
        &self,
        create: proto::swarm::v1::MsgCreateSwarm,
    ) -> anyhow::Result<()> {
        let (_, r) = self
            .c
            .client
            .sign_and_send(
                self.c.signer("submitter")?,
                vec![proto::to_any(&create)],
                "",
                None,
                Some(std::time::Duration::from_secs(30)),
            )
            .await?;
        let code = r.ok_or_else(|| anyhow::anyhow!("no result"))?.code;
        anyhow::ensure!(code == 0, "swarm creation failed with code {code}");
        Ok(())
    }

    /// A verifier ("verifier") that also whistleblows: re-executes every task.
    pub async fn whistleblower(&self) -> anyhow::Result<verifierd::RunningVerifier> {
        let mut vc = self.c.verifier_config("verifier");
        vc.whistleblower = true;
        verifierd::start(vc).await
    }

    pub async fn submit(&self, steps: u64) -> anyhow::Result<(u64, train::Program)> {
        let p = program(steps);
        let id = self
            .c
            .submit("submitter", &p, Amount(1_000_000), Amount(100_000))
            .await?;
        Ok((id, p))
    }

    /// [`Net::submit`] at the sampled level: `bps` basis points of the
    /// steps per drawn verifier.
    pub async fn submit_sampled(&self, steps: u64, bps: u32) -> anyhow::Result<u64> {
        let p = program(steps);
        let s = self.c.signer("submitter")?;
        let (reward, fee) = (Amount(1_000_000), Amount(100_000));
        app::follow::submit_at(&self.c.client, s, &p, None, reward, fee, Some(bps), None).await
    }

    /// Submits `p` from "submitter" (reward 1,000,000, fee 100,000) and waits up to
    /// `secs` for it to end: it must fail, its dispute won by the challenger at exactly
    /// operator `node` of step `step`, and "cheater" slashed more than before.
    pub async fn expect_localised(
        &self,
        p: &train::Program,
        step: u64,
        node: usize,
        secs: u64,
    ) -> anyhow::Result<()> {
        let (_, slashed0) = self.stake("cheater").await?;
        let id = self
            .c
            .submit("submitter", p, Amount(1_000_000), Amount(100_000))
            .await?;
        let t = self.finish(id, secs).await?;
        anyhow::ensure!(status_name(&t) == "TASK_STATUS_FAILED", "{}", t.note);
        let d = self
            .dispute_of(id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("no dispute"))?;
        anyhow::ensure!(d.outcome.starts_with("challenger wins"), "{}", d.outcome);
        anyhow::ensure!((d.hi, d.node) == (step, node as u64), "{}", d.outcome);
        anyhow::ensure!(self.stake("cheater").await?.1 > slashed0, "not slashed");
        Ok(())
    }

    /// Waits (up to `secs`) for task `id` to end.
    pub async fn finish(&self, id: u64, secs: u64) -> anyhow::Result<Task> {
        app::follow::follow(&self.c.client, id, Duration::from_secs(secs), true).await
    }

    pub async fn task(&self, id: u64) -> anyhow::Result<Task> {
        app::follow::task(&self.c.client, id).await
    }

    /// The dispute about task `task_id` (open or resolved), if any.
    pub async fn dispute_of(
        &self,
        task_id: u64,
    ) -> anyhow::Result<Option<proto::verde::v1::Dispute>> {
        app::follow::dispute_of(&self.c.client, task_id).await
    }

    pub fn addr(&self, name: &str) -> Address {
        self.c.keys[name].address()
    }

    pub async fn balance(&self, name: &str) -> anyhow::Result<Amount> {
        Ok(self.c.client.balance(&self.addr(name)).await?)
    }

    /// Bonded stake and total slashed of operator `name`.
    pub async fn stake(&self, name: &str) -> anyhow::Result<(Amount, Amount)> {
        let op = self
            .c
            .client
            .staking()
            .operator(proto::staking::v1::QueryOperatorRequest {
                address: self.addr(name).to_string(),
            })
            .await?
            .into_inner()
            .operator
            .ok_or_else(|| anyhow::anyhow!("{name} is not an operator"))?;
        let p = |s: &str| -> anyhow::Result<Amount> {
            Amount::parse_coin(s)
                .or_else(|_| s.parse::<u128>().map(Amount))
                .map_err(|_| anyhow::anyhow!("bad amount {s:?}"))
        };
        Ok((p(&op.stake)?, p(&op.slashed_total)?))
    }
}

/// Waits until `f` holds (polling every 100 ms), up to `secs`.
pub async fn eventually<F, Fut>(secs: u64, what: &str, mut f: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>>,
{
    let end = tokio::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if f().await? {
            return Ok(());
        }
        if tokio::time::Instant::now() > end {
            anyhow::bail!("timed out after {secs} s waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

pub fn status_name(t: &Task) -> &'static str {
    proto::tasks::v1::TaskStatus::try_from(t.status)
        .map(|s| s.as_str_name())
        .unwrap_or("?")
}
