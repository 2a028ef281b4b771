//! `veritraind demo`: the dev chain, an honest solver, a verifier (which also
//! re-executes whole tasks as a whistleblower) and a cheating solver in one
//! process, all talking over real gRPC. It runs an honest digits-MLP job to a
//! verified, paid result, then a job taken by a solver that corrupts one
//! operator output at a random (step, node), and shows the dispute that
//! localises and slashes it.
use crate::cluster::{Cluster, Timing};
use crate::follow;
use anyhow::{bail, Context};
use framework::Amount;
use rand::Rng;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// What `veritraind demo` shows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Scenario {
    /// An honest job verified and paid, then a cheat localised and slashed.
    #[default]
    Job,
    /// Four contributors training one model in rounds (one cheating), paid for
    /// measured improvement, with a leaderboard.
    Swarm,
}

#[derive(Clone, Debug, clap::Args)]
pub struct DemoArgs {
    /// `job` (the default) or `swarm`.
    #[arg(value_enum, default_value_t = Scenario::Job)]
    pub scenario: Scenario,
    /// Swarm: rounds to run.
    #[arg(long, default_value_t = 5)]
    pub rounds: u64,
    /// Swarm: merge each round by averaging the improving contributions with this
    /// outer learning rate (a verified merge task); 0 merges by selection.
    #[arg(long, default_value_t = 1.0, value_parser = crate::cli::parse_outer_lr)]
    pub outer_lr: f32,
    /// Swarm: training steps of each contribution.
    #[arg(long, default_value_t = 20)]
    pub inner_steps: u64,
    /// Training steps of each job.
    #[arg(long, default_value_t = 300)]
    pub steps: u64,
    /// Keep the network's files here (default: a temporary directory, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Block interval in milliseconds.
    #[arg(long, default_value_t = 100)]
    pub block_ms: u64,
    /// Inject the cheat at this step instead of a random one.
    #[arg(long)]
    pub cheat_step: Option<u64>,
    /// Inject the cheat at this node instead of a random one whose error reaches the state.
    #[arg(long)]
    pub cheat_node: Option<usize>,
    /// After the demo, keep the network and its block explorer running until Ctrl-C.
    #[arg(long)]
    pub serve: bool,
    /// Where the explorer listens (with --serve; port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub explorer_address: std::net::SocketAddr,
}

/// The (step, node) the cheating solver corrupts: the flags' choice, checked
/// by [`check_cheat`], with a random step and/or node for what they leave
/// open, always one whose corruption reaches the state.
pub fn pick_cheat(args: &DemoArgs, program: &train::Program) -> anyhow::Result<(u64, usize)> {
    check_cheat(args, program)?;
    let mut rng = rand::thread_rng();
    let range = (args.steps / 3).max(1)..=(2 * args.steps / 3).max(1);
    // A fixed step, or a few random ones from the middle third.
    let steps: Vec<u64> = match args.cheat_step {
        Some(s) => vec![s],
        None => (0..5).map(|_| rng.gen_range(range.clone())).collect(),
    };
    for &step in &steps {
        let eff = effective_nodes(program, step)?;
        match args.cheat_node {
            Some(n) if eff.contains(&n) => return Ok((step, n)),
            Some(_) => continue,
            None if !eff.is_empty() => return Ok((step, eff[rng.gen_range(0..eff.len())])),
            None => continue,
        }
    }
    match args.cheat_node {
        Some(n) => bail!(
            "--cheat-node {n}: corrupting it at step(s) {steps:?} does not change the state (its \
             error is absorbed), so there is nothing to dispute; pick another node or a --cheat-step"
        ),
        None => bail!(
            "no node of step(s) {steps:?} changes the state when corrupted; pick another --cheat-step"
        ),
    }
}

/// Refuses a `--cheat-step` outside `1..=steps` or a `--cheat-node` the
/// program does not have (a node whose corruption is absorbed is refused by
/// [`pick_cheat`]).
pub fn check_cheat(args: &DemoArgs, program: &train::Program) -> anyhow::Result<()> {
    if let Some(s) = args.cheat_step {
        if s == 0 || s > args.steps {
            bail!(
                "--cheat-step {s} is not a step of this job: steps are 1 to {} (--steps)",
                args.steps
            );
        }
    }
    if let Some(n) = args.cheat_node {
        let count = program.graph()?.nodes.len();
        if n >= count {
            bail!(
                "--cheat-node {n} does not exist: {} has {count} nodes, numbered 0 to {}",
                program.name,
                count - 1
            );
        }
    }
    Ok(())
}

/// The nodes of step `step` whose corrupted output changes `h_step` (a
/// corruption that is absorbed, e.g. by a ReLU, leaves nothing to dispute).
pub fn effective_nodes(program: &train::Program, step: u64) -> anyhow::Result<Vec<usize>> {
    effective_nodes_from(program, None, step)
}

/// [`effective_nodes`] of a fine-tune that starts from `initial`.
pub fn effective_nodes_from(
    program: &train::Program,
    initial: Option<train::step::State>,
    step: u64,
) -> anyhow::Result<Vec<usize>> {
    let ds = train::Dataset::builtin(&program.dataset.name)?;
    let mut run =
        agent::run::Run::in_memory(0, program.clone(), ds.clone(), initial, Default::default())?;
    let prev = run.state_at(step - 1)?;
    let honest = run.step_out(step)?.state_hash;
    let graph = program.graph()?;
    let mut out = Vec::new();
    for j in 0..graph.nodes.len() {
        let plan = agent::exec::FaultPlan {
            corrupt: Some((step, j)),
            ..Default::default()
        };
        let o = agent::exec::run_step(
            &repops::CpuBackend,
            program,
            &graph,
            &ds,
            &prev,
            step,
            &plan,
        )?;
        if o.state_hash != honest {
            out.push(j);
        }
    }
    Ok(out)
}

/// Bonded stake of each address (zero if not an operator).
async fn stakes(
    client: &client::NodeClient,
    addrs: &[framework::Address],
) -> anyhow::Result<Vec<u128>> {
    let mut out = Vec::new();
    for a in addrs {
        let r = client
            .staking()
            .operator(proto::staking::v1::QueryOperatorRequest {
                address: a.to_string(),
            })
            .await;
        let stake = match r {
            Ok(r) => r
                .into_inner()
                .operator
                .map(|o| o.stake.parse::<u128>().unwrap_or(0))
                .unwrap_or(0),
            Err(_) => 0,
        };
        out.push(stake);
    }
    Ok(out)
}

fn payouts(t: &proto::tasks::v1::Task) -> Value {
    Value::Array(
        t.payouts
            .iter()
            .map(|p| json!({"recipient": p.recipient, "amount": p.amount, "reason": p.reason}))
            .collect(),
    )
}

/// Runs the demo; returns the report (also what `--output json` prints).
pub async fn run(args: &DemoArgs, quiet: bool) -> anyhow::Result<Value> {
    Ok(run_and_keep(args, quiet).await?.0)
}

/// What `--serve` keeps running after the demo: the network and its explorer.
pub struct Kept {
    cluster: Cluster,
    web: crate::explorer::Http,
    root: PathBuf,
    temp: bool,
}

impl Kept {
    pub fn explorer_url(&self) -> Option<String> {
        self.web.explorer_url()
    }

    /// Stops the explorer and the network (and removes a temporary directory).
    pub async fn shutdown(self) {
        self.web.shutdown().await;
        self.cluster.shutdown().await;
        if self.temp {
            let _ = std::fs::remove_dir_all(&self.root);
        }
    }
}

/// Runs the demo; with `--serve` the network and explorer stay up in [`Kept`].
pub async fn run_and_keep(args: &DemoArgs, quiet: bool) -> anyhow::Result<(Value, Option<Kept>)> {
    if args.steps < 3 {
        bail!("--steps must be at least 3");
    }
    // The cheat is chosen (and an impossible one refused) before anything starts.
    let cheat = {
        let mut program = train::Program::builtin("mlp-digits")?;
        program.steps = args.steps;
        pick_cheat(args, &program)?
    };
    let started = Instant::now();
    let (root, temp) = match &args.dir {
        Some(d) => (d.clone(), false),
        None => (
            std::env::temp_dir().join(format!("veritrain-demo-{}", std::process::id())),
            true,
        ),
    };
    if temp {
        let _ = std::fs::remove_dir_all(&root);
    }
    let timing = Timing {
        block_ms: args.block_ms,
        ..Default::default()
    };
    let say = |m: String| {
        if !quiet {
            eprintln!("{m}");
        }
    };
    let c = Cluster::start(
        &root,
        &["submitter", "solver", "cheater", "verifier"],
        &timing,
    )
    .await?;
    say(format!(
        "dev chain at {} ({} ms blocks); network files in {}",
        c.node.grpc_url(),
        args.block_ms,
        root.display()
    ));
    let web = if args.serve {
        let w = crate::explorer::Http::start(
            Some((args.explorer_address, true)),
            None,
            &c.node.grpc_url(),
            None,
        )
        .await?;
        if let Some(u) = w.explorer_url() {
            say(format!("explorer at {u}"));
        }
        Some(w)
    } else {
        None
    };
    let mut vcfg = c.verifier_config("verifier");
    vcfg.whistleblower = true;
    let verifier = verifierd::start(vcfg).await?;
    let solver = solverd::start(c.solver_config("solver")).await?;
    say(format!(
        "verifier {} and solver {} registered",
        verifier.address, solver.address
    ));

    // 1. An honest job.
    let mut program = train::Program::builtin("mlp-digits")?;
    program.steps = args.steps;
    let reward = Amount(1_000_000);
    let fee = Amount(100_000);
    // The submitter commits to a secret and reveals it once the result is
    // committed: the verifier draw is one no block proposer can grind.
    let submitter = c.signer("submitter")?.clone();
    let submit = |seed: [u8; 32]| {
        let (client, submitter, program) = (c.client.clone(), submitter.clone(), program.clone());
        async move {
            follow::submit_at(
                &client,
                &submitter,
                &program,
                None,
                reward,
                fee,
                None,
                Some(seed),
            )
            .await
        }
    };
    let seed1 = rand::random::<[u8; 32]>();
    let id1 = submit(seed1).await?;
    say(format!(
        "job {id1}: {} for {} steps, reward {reward}",
        program.name, program.steps
    ));
    let honest = [verifier.address, solver.address];
    let stakes_before = stakes(&c.client, &honest).await?;
    let (followed, revealed) = tokio::join!(
        follow::follow(&c.client, id1, Duration::from_secs(600), quiet),
        follow::reveal_seed(&c.client, &submitter, id1, seed1, Duration::from_secs(600))
    );
    followed?;
    revealed?;
    let t1 = follow::task(&c.client, id1).await?;
    say(format!("job {id1}: verification — {}", t1.guarantee));
    let drawn_from_reveal = {
        use sha2::Digest;
        let mut h = sha2::Sha256::new();
        h.update(b"veritrain/tasks/selection-revealed");
        h.update(seed1);
        h.update(&t1.trace_root);
        h.update(id1.to_be_bytes());
        h.finalize()[..] == t1.selection_seed[..]
    };
    say(if drawn_from_reveal {
        format!("job {id1}: verifiers drawn from the submitter's revealed seed")
    } else {
        format!(
            "job {id1}: verifiers drawn from the block hash (the seed was not revealed in time)"
        )
    });
    let model = follow::fetch_model(&t1)
        .await
        .context("fetching the model")?;
    let ds = train::Dataset::builtin(&program.dataset.name)?;
    let eval = train::Trainer::from_checkpoint_bytes(program.clone(), ds, &model)?.evaluate()?;
    let acc = eval.accuracy.unwrap_or(0.0);
    say(format!(
        "job {id1}: {} — held-out accuracy {acc:.3}, model hash {}",
        proto::tasks::v1::TaskStatus::try_from(t1.status)
            .map(|s| s.as_str_name())
            .unwrap_or("?"),
        hex::encode(&t1.final_state_hash)
    ));
    solver.shutdown().await;

    // 2. A cheating solver.
    let (step, node) = cheat;
    let mut ccfg = c.solver_config("cheater");
    ccfg.inject_fault = vec![agent::exec::Fault::Corrupt { step, node }];
    let cheater = solverd::start(ccfg).await?;
    let seed2 = rand::random::<[u8; 32]>();
    let id2 = submit(seed2).await?;
    say(format!(
        "job {id2}: the same program, taken by a solver that corrupts node {node} at step {step} (fault injection)"
    ));
    let (t2, revealed) = tokio::join!(
        follow::follow(&c.client, id2, Duration::from_secs(600), quiet),
        follow::reveal_seed(&c.client, &submitter, id2, seed2, Duration::from_secs(600))
    );
    let t2 = t2?;
    revealed?;
    let dispute = follow::dispute_of(&c.client, id2).await?;
    cheater.shutdown().await;
    verifier.shutdown().await;
    // Honesty never costs stake: the honest verifier and solver keep theirs.
    let stakes_after = stakes(&c.client, &honest).await?;
    let honest_slashed: Vec<String> = honest
        .iter()
        .zip(stakes_before.iter().zip(&stakes_after))
        .filter(|(_, (b, a))| a < b)
        .map(|(addr, _)| addr.to_string())
        .collect();
    say(if honest_slashed.is_empty() {
        "no honest party lost stake".to_string()
    } else {
        format!("HONEST PARTIES SLASHED: {honest_slashed:?}")
    });

    let op_kind = dispute
        .as_ref()
        .map(|d| d.op_kind.clone())
        .unwrap_or_default();
    let localised = dispute
        .as_ref()
        .is_some_and(|d| d.hi == step && d.node == node as u64);
    let report = json!({
        "honest_job": {
            "task_id": id1,
            "status": proto::tasks::v1::TaskStatus::try_from(t1.status).map(|s| s.as_str_name()).unwrap_or("?"),
            "steps": t1.steps,
            "test_accuracy": acc,
            "test_loss": eval.loss,
            "model_hash": hex::encode(&t1.final_state_hash),
            "trace_root": hex::encode(&t1.trace_root),
            "solver": t1.solver,
            "verifiers": t1.verifiers,
            "payouts": payouts(&t1),
            "verification_level": if t1.verification_level == proto::tasks::v1::VerificationLevel::Sampled as i32 { "sampled" } else { "full" },
            "guarantee": t1.guarantee,
            "draw": if drawn_from_reveal { "revealed seed" } else { "block hash" },
        },
        "honest_parties_slashed": honest_slashed,
        "cheating_job": {
            "task_id": id2,
            "status": proto::tasks::v1::TaskStatus::try_from(t2.status).map(|s| s.as_str_name()).unwrap_or("?"),
            "injected": {"step": step, "node": node},
            "note": t2.note,
            "payouts": payouts(&t2),
            "dispute": dispute.as_ref().map(|d| json!({
                "id": d.id,
                "challenger": d.challenger,
                "step": d.hi,
                "node": d.node,
                "op_kind": op_kind,
                "rounds": d.rounds,
                "moves": d.transcript.len(),
                "slashed": d.slashed,
                "outcome": d.outcome,
                "transcript": d.transcript.iter().map(|m| json!({"height": m.height, "actor": m.actor, "action": m.action})).collect::<Vec<_>>(),
            })),
            "localised_to_injected_fault": localised,
        },
        "seconds": started.elapsed().as_secs_f64(),
        "explorer": web.as_ref().and_then(|w| w.explorer_url()),
    });
    if let Some(d) = &dispute {
        say(format!("dispute {} transcript:", d.id));
        for m in &d.transcript {
            say(format!(
                "  height {:>5}  {:<10} {}",
                m.height, m.actor, m.action
            ));
        }
        say(format!(
            "job {id2}: {} — dispute localised to step {} node {} ({}), {} moves, {} rounds, solver slashed {} uvtr; {}",
            proto::tasks::v1::TaskStatus::try_from(t2.status).map(|s| s.as_str_name()).unwrap_or("?"),
            d.hi, d.node, d.op_kind, d.transcript.len(), d.rounds, d.slashed,
            if localised { "exactly the injected fault" } else { "NOT the injected fault" }
        ));
    } else {
        say(format!("job {id2}: no dispute was found"));
    }
    if let Some(web) = web {
        return Ok((
            report,
            Some(Kept {
                cluster: c,
                web,
                root,
                temp,
            }),
        ));
    }
    c.shutdown().await;
    if temp {
        let _ = std::fs::remove_dir_all(&root);
    }
    Ok((report, None))
}
