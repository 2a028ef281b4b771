//! `verifierd`: a verifier daemon. It watches for tasks it is drawn to
//! verify, fetches the solver's step hashes (checked against the committed
//! trace root) and checkpoints (checked against those hashes), re-executes
//! sampled steps, and attests, or opens a Verde dispute on the first wrong
//! step and plays it to the end. In whistleblower mode it re-executes every
//! committed task from scratch and challenges anything wrong. Its work is
//! derived from chain state, so a restart simply resumes it.
//!
//! Library + thin binary: [`Config`] is the command line, [`start`] runs it.

use agent::chain::Chain;
use agent::dispute::{self, Side};
use agent::exec::{Fault, FaultPlan};
use agent::metrics::Metrics;
use agent::run::Run;
use agent::{lock, stopped, AgentError};
use framework::Amount;
use proto::solver::v1::{solver_client::SolverClient, CheckpointRequest, StepHashesRequest};
use proto::tasks::v1::{Task, TaskStatus};
use rand::seq::SliceRandom;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use train::{Hash, Program};

/// Command line of `verifierd`; every flag is also an environment variable.
#[derive(Clone, Debug, clap::Parser)]
#[command(
    name = "verifierd",
    version,
    about = "Veritrain verifier daemon: re-executes sampled steps, attests or disputes; whistleblower mode"
)]
pub struct Config {
    /// Directory for the dataset cache and state (and the keyring, for `--from NAME`).
    #[arg(long, env = "VERIFIERD_HOME", default_value = ".verifierd")]
    pub home: PathBuf,
    /// The node's gRPC URL.
    #[arg(long, env = "VERIFIERD_NODE", default_value = "http://127.0.0.1:9090")]
    pub node: String,
    /// Signing key: a key name or address in the keyring under --home, or a file holding the hex secret.
    #[arg(long, env = "VERIFIERD_FROM")]
    pub from: String,
    /// Register as a verifier with this stake (e.g. 1000000uvtr) if not registered yet.
    #[arg(long, env = "VERIFIERD_STAKE")]
    pub stake: Option<String>,
    /// Fraction of a task's steps to re-execute (at least one step).
    #[arg(long, env = "VERIFIERD_SAMPLE_RATE", default_value_t = 0.02)]
    pub sample_rate: f64,
    /// Also re-execute every committed task from scratch and challenge wrong ones.
    #[arg(long, env = "VERIFIERD_WHISTLEBLOWER")]
    pub whistleblower: bool,
    /// Dispute bond (default: the chain's minimum).
    #[arg(long, env = "VERIFIERD_BOND")]
    pub bond: Option<String>,
    /// RepOps backend for re-execution: auto, cpu or cuda.
    #[arg(long, env = "VERIFIERD_BACKEND", default_value = "auto")]
    pub backend: String,
    /// Where this daemon serves gRPC health.
    #[arg(long, env = "VERIFIERD_LISTEN", default_value = "127.0.0.1:9191")]
    pub listen: SocketAddr,
    /// Serve Prometheus metrics at http://<addr>/metrics.
    #[arg(long, env = "VERIFIERD_METRICS_ADDRESS")]
    pub metrics_address: Option<SocketAddr>,
    /// FAULT INJECTION, for tests only: corrupt:STEP:NODE makes this verifier's
    /// own re-execution wrong (a false challenger, which loses its bond); silent
    /// makes it never attest or move.
    #[arg(
        long = "inject-fault",
        env = "VERIFIERD_INJECT_FAULT",
        value_delimiter = ','
    )]
    pub inject_fault: Vec<Fault>,
    /// Log as JSON lines.
    #[arg(long, env = "VERIFIERD_LOG_JSON")]
    pub log_json: bool,
    #[command(flatten)]
    pub datasets: agent::datasets::DatasetArgs,
}

impl Config {
    pub fn new(node: &str, from: &str, home: PathBuf) -> Config {
        Config {
            home,
            node: node.into(),
            from: from.into(),
            stake: None,
            sample_rate: 0.02,
            whistleblower: false,
            bond: None,
            backend: "auto".into(),
            listen: ([127, 0, 0, 1], 0).into(),
            metrics_address: None,
            inject_fault: Vec::new(),
            log_json: false,
            datasets: Default::default(),
        }
    }
}

struct Shared {
    chain: Chain,
    backend: Arc<dyn repops::Backend>,
    cfg: Config,
    fault: FaultPlan,
    /// The run this verifier holds per task (for dispute moves).
    runs: Mutex<BTreeMap<u64, Arc<Mutex<Run>>>>,
    /// Tasks with a verification in flight or finished by this process.
    busy: Mutex<BTreeSet<u64>>,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
    fetcher: Arc<agent::datasets::Fetcher>,
}

/// A running verifier.
pub struct RunningVerifier {
    pub address: framework::Address,
    pub grpc_addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    metrics: Arc<Metrics>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningVerifier {
    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

pub async fn start(cfg: Config) -> anyhow::Result<RunningVerifier> {
    use anyhow::Context;
    if !(cfg.sample_rate > 0.0 && cfg.sample_rate <= 1.0) {
        anyhow::bail!("--sample-rate must be in (0, 1], got {}", cfg.sample_rate);
    }
    if let Some(b) = &cfg.bond {
        client::parse_amount(b).map_err(|e| anyhow::anyhow!("--bond {e}"))?;
    }
    let kind: repops_cuda::BackendKind = cfg
        .backend
        .parse()
        .map_err(|e| anyhow::anyhow!("--backend {:?}: {e}", cfg.backend))?;
    let selected =
        repops_cuda::select_backend(kind).map_err(|e| anyhow::anyhow!("--backend {kind}: {e}"))?;
    if let Some(why) = &selected.fallback_reason {
        tracing::info!(reason = %why, "re-executing on the CPU");
    }
    // Checked before anything is dialled.
    let stake = cfg
        .stake
        .as_deref()
        .map(|s| client::parse_amount(s).map_err(|e| anyhow::anyhow!("--stake {e}")))
        .transpose()?;
    std::fs::create_dir_all(&cfg.home)
        .with_context(|| format!("creating {}", cfg.home.display()))?;
    let signer = agent::load_signer(&cfg.home, &cfg.from)?;
    let chain = Chain::connect(&cfg.node, signer).await?;
    if let Some(amount) = stake {
        chain
            .ensure_registered(proto::staking::v1::Role::Verifier, amount)
            .await?;
    }
    let fault: FaultPlan = cfg.inject_fault.iter().cloned().collect();
    if !fault.is_honest() {
        tracing::warn!(
            ?fault,
            "FAULT INJECTION is on: this verifier misbehaves on purpose"
        );
    }
    let metrics = Arc::new(Metrics::new(
        "verifierd",
        &[
            (
                "tasks_verified",
                "Tasks whose sampled steps were re-executed",
            ),
            ("steps_reexecuted", "Training steps re-executed"),
            ("attestations", "Attestations sent"),
            ("disputes_opened", "Disputes opened"),
            (
                "checkpoints_requested",
                "Checkpoints requested on chain (not served by the solver)",
            ),
            ("dispute_moves", "Dispute moves sent"),
            ("errors", "Errors in the work loop"),
            (
                "compute_us",
                "Microseconds spent re-executing training steps",
            ),
            ("hash_us", "Of which hashing states"),
            (
                "checkpoint_us",
                "Microseconds spent fetching, decoding and checking checkpoints",
            ),
        ],
        &[("height", "Last block seen")],
    ));
    let (stop, rx) = watch::channel(false);
    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .with_context(|| format!("cannot listen on {} (--listen)", cfg.listen))?;
    let grpc_addr = listener.local_addr()?;
    let (health, health_svc) = tonic_health::server::health_reporter();
    health
        .set_service_status("veritrain.verifier", tonic_health::ServingStatus::Serving)
        .await;
    let shutdown = stopped(&rx);
    let mut tasks = vec![tokio::spawn(async move {
        // TCP_NODELAY: small HTTP/2 frames must not wait for delayed ACKs (40 ms stalls).
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        if let Err(e) = tonic::transport::Server::builder()
            .add_service(health_svc)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
        {
            tracing::error!(error = %e, "health server failed");
        }
    })];
    let metrics_addr = match cfg.metrics_address {
        Some(a) => Some(
            agent::metrics::serve(a, metrics.clone(), stopped(&rx))
                .await
                .with_context(|| format!("cannot listen on {a} (--metrics-address)"))?,
        ),
        None => None,
    };
    let address = chain.address;
    let fetcher = agent::datasets::Fetcher::new(cfg.datasets.policy(), cfg.home.join("datasets"));
    let shared = Arc::new(Shared {
        fetcher,
        chain,
        backend: selected.backend,
        cfg,
        fault,
        runs: Mutex::new(BTreeMap::new()),
        busy: Mutex::new(BTreeSet::new()),
        metrics: metrics.clone(),
        stop: rx,
    });
    let s2 = shared.clone();
    tasks.push(tokio::spawn(async move { work_loop(s2).await }));
    tracing::info!(%address, whistleblower = shared.cfg.whistleblower, "verifierd running");
    Ok(RunningVerifier {
        address,
        grpc_addr,
        metrics_addr,
        metrics,
        stop,
        tasks,
    })
}

async fn work_loop(s: Arc<Shared>) {
    agent::block_loop(&s.chain, s.stop.clone(), &s.metrics, || tick(&s)).await
}

async fn tick(s: &Arc<Shared>) -> Result<(), AgentError> {
    if s.fault.silent {
        return Ok(());
    }
    let me = s.chain.address.to_string();
    let committed = s.chain.tasks(TaskStatus::Committed).await?;
    prune_runs(s, &committed);
    for t in &committed {
        if t.solver == me {
            continue;
        }
        // Any number of disputes may be open on a task: play ours, and
        // keep verifying unless we already challenged it.
        let mut challenged = false;
        for &did in &t.open_disputes {
            if let Some(d) = s.chain.dispute(did).await? {
                if d.challenger == me {
                    challenged = true;
                    if let Err(e) = play(s, t, &d).await {
                        s.metrics.inc("errors", 1);
                        tracing::warn!(task = t.id, dispute = d.id, error = %e, "dispute move failed; retrying next block");
                    }
                }
            }
        }
        if challenged || t.challengers.contains(&me) {
            continue;
        }
        // Wait for the draw (the block after the commit): whether this
        // verifier was drawn, and its evidence step, are known only then. A
        // whistleblower that started earlier would never attest when drawn.
        if t.selection_seed.is_empty() {
            continue;
        }
        let selected = t.verifiers.contains(&me)
            && !t.selection_seed.is_empty()
            && !t.attestations.iter().any(|a| a.verifier == me);
        if !(selected || s.cfg.whistleblower) || !lock(&s.busy).insert(t.id) {
            continue;
        }
        let (s2, t2) = (s.clone(), t.clone());
        tokio::spawn(async move {
            // The task's level decides what a drawn verifier re-executes; a
            // whistleblower checks every step, drawn or not.
            let full = t2.verification_level != proto::tasks::v1::VerificationLevel::Sampled as i32;
            let r = if s2.fault.lazy && selected {
                attest_lazily(&s2, &t2).await
            } else if s2.cfg.whistleblower || full {
                whistleblow(&s2, &t2, selected).await
            } else {
                verify_sampled(&s2, &t2).await
            };
            if let Err(e) = r {
                // A task that ended meanwhile (finalized, failed) has nothing
                // left to verify: say so once, and do not retry it.
                match s2.chain.task(t2.id).await {
                    Ok(Some(now)) if now.status != TaskStatus::Committed as i32 => {
                        tracing::info!(
                            task = t2.id,
                            status = TaskStatus::try_from(now.status)
                                .map(|s| s.as_str_name())
                                .unwrap_or("?"),
                            error = %e,
                            "verification stopped: the task is already final"
                        );
                    }
                    _ => {
                        s2.metrics.inc("errors", 1);
                        tracing::warn!(task = t2.id, error = %e, "verification failed; will retry");
                        lock(&s2.busy).remove(&t2.id);
                    }
                }
            }
        });
    }
    Ok(())
}

/// Drops task `id`'s run, in memory and on disk.
fn forget_run(s: &Shared, id: u64) {
    lock(&s.runs).remove(&id);
    let dir = s.cfg.home.join("runs").join(id.to_string());
    if let Err(err) = std::fs::remove_dir_all(&dir) {
        if err.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!(task = id, error = %err, "could not delete a finished run");
        }
    }
}

/// Deletes the kept runs of tasks that are no longer committed (nothing
/// left to verify or dispute), so a whistleblower's disk does not grow with
/// every task it ever checked.
fn prune_runs(s: &Shared, committed: &[Task]) {
    let live: BTreeSet<u64> = committed.iter().map(|t| t.id).collect();
    let dir = s.cfg.home.join("runs");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for e in entries.flatten() {
        let Some(id) = e.file_name().to_str().and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        if live.contains(&id) {
            continue;
        }
        forget_run(s, id);
    }
}

/// FAULT `lazy`: attests with evidence built from the solver's served hashes,
/// without re-executing anything. The solver withholds exactly the hashes
/// the evidence needs, so this fails (and the lazy verifier is slashed for
/// not attesting); that it fails is what the tests check.
async fn attest_lazily(s: &Arc<Shared>, t: &Task) -> Result<(), AgentError> {
    tracing::warn!(task = t.id, "lazy verifier: attesting without re-executing");
    let served = solver_trace(t).await?;
    let own: BTreeMap<u64, Hash> = served
        .hashes
        .iter()
        .enumerate()
        .filter_map(|(k, h)| Some((k as u64, (*h)?)))
        .collect();
    attest(s, t, &own, served.nodes, 0).await
}

fn h32(b: &[u8]) -> Option<Hash> {
    b.try_into().ok()
}

/// The solver's trace as served at the sampled level: `h_k` where served,
/// `None` where withheld (the drawn verifiers' evidence steps), and every
/// leaf node `H(0x00 || h_k)`, which is what proofs need.
struct Served {
    hashes: Vec<Option<Hash>>,
    nodes: Vec<Hash>,
}

/// The solver's served trace, checked against the task's commitment.
async fn solver_trace(t: &Task) -> Result<Served, AgentError> {
    let mut c = agent::solver_client(t).await?;
    let r = c
        .step_hashes(StepHashesRequest { task_id: t.id })
        .await?
        .into_inner();
    let bad =
        |why: &str| AgentError::Invalid(format!("task {}: the solver's step hashes {why}", t.id));
    let withheld: BTreeMap<u64, Hash> = r
        .withheld
        .iter()
        .map(|w| {
            Ok((
                w.step,
                h32(&w.leaf_node).ok_or_else(|| bad("have a bad leaf node"))?,
            ))
        })
        .collect::<Result<_, AgentError>>()?;
    let mut served = Served {
        hashes: Vec::with_capacity(r.hashes.len()),
        nodes: Vec::with_capacity(r.hashes.len()),
    };
    for (k, h) in r.hashes.iter().enumerate() {
        match (h32(h), withheld.get(&(k as u64))) {
            (Some(h), None) => {
                served.nodes.push(train::merkle::leaf_node(&h));
                served.hashes.push(Some(h));
            }
            (None, Some(node)) if h.is_empty() => {
                served.nodes.push(*node);
                served.hashes.push(None);
            }
            _ => return Err(bad("are malformed")),
        }
    }
    if served.nodes.len() as u64 != t.steps + 1
        || train::merkle::root_of_nodes(served.nodes.clone()).as_slice() != t.trace_root.as_slice()
        || served.hashes.last().copied().flatten().map(|h| h.to_vec())
            != Some(t.final_state_hash.clone())
    {
        return Err(bad("do not match its committed trace root"));
    }
    Ok(served)
}

/// Checkpoint interval of this verifier's own full re-executions.
const CHECKPOINT_EVERY: u64 = 50;

/// A run for task `t`. `persist`: kept under `--home` with checkpoints and
/// hashes (full re-executions: after a restart mid-dispute the verifier
/// resumes from its newest checkpoint instead of redoing the whole run, so
/// long jobs still make the move deadlines); otherwise in memory.
async fn new_run(s: &Shared, t: &Task, persist: bool) -> Result<Run, AgentError> {
    let program: Program = serde_json::from_slice(&t.program_json)
        .map_err(|e| AgentError::Invalid(format!("task {}: bad program: {e}", t.id)))?;
    let dataset = s.fetcher.resolve(&program).await?;
    let initial = s.fetcher.resolve_initial(&program).await?;
    let (id, fault, backend) = (t.id, s.fault.clone(), s.backend.clone());
    let dir = persist.then(|| s.cfg.home.join("runs").join(t.id.to_string()));
    tokio::task::spawn_blocking(move || {
        let mut r = match dir {
            Some(dir) => {
                Run::on_disk(id, program, dataset, initial, fault, &dir, CHECKPOINT_EVERY)?
            }
            None => Run::in_memory(id, program, dataset, initial, fault)?,
        };
        r.set_backend(backend);
        Ok(r)
    })
    .await
    .map_err(|e| AgentError::Invalid(e.to_string()))?
}

/// A long list for a log line: the first `n` items, then how many more.
fn summarise(items: &[u64], n: usize) -> String {
    let head: Vec<String> = items.iter().take(n).map(u64::to_string).collect();
    match items.len().saturating_sub(n) {
        0 => format!("[{}]", head.join(", ")),
        more => format!("[{}, … and {more} more]", head.join(", ")),
    }
}

/// This verifier's level, draw seed and address for task `t`.
fn drawn(t: &Task) -> Result<(tasks::Level, tasks::task::Hash), AgentError> {
    let level = tasks::Level::from_proto(t.verification_level, t.sample_bps)
        .map_err(|e| AgentError::Invalid(format!("task {}: {e}", t.id)))?;
    let seed = h32(&t.selection_seed)
        .ok_or_else(|| AgentError::Invalid(format!("task {}: no selection seed yet", t.id)))?;
    Ok((level, seed))
}

/// The steps to re-execute: the sample the chain drew for this verifier
/// after the commit (it must prove each), more private random steps when
/// `--sample-rate` asks for more, and the step this verifier's own fault
/// targets (so that a false challenger really challenges).
fn sample_steps(s: &Shared, t: &Task) -> Result<Vec<u64>, AgentError> {
    let steps = t.steps;
    let (level, seed) = drawn(t)?;
    let me = &s.chain.address;
    let mut v: BTreeSet<u64> = tasks::level::sample_steps(level, &seed, me, steps)
        .into_iter()
        .chain(tasks::level::evidence_steps(level, &seed, me, steps))
        .collect();
    let want = ((steps as f64 * s.cfg.sample_rate).ceil() as u64).min(steps);
    if want > v.len() as u64 {
        let rest: Vec<u64> = (1..=steps).filter(|k| !v.contains(k)).collect();
        let more = (want - v.len() as u64) as usize;
        v.extend(rest.choose_multiple(&mut rand::rngs::OsRng, more).copied());
    }
    if let Some((st, _)) = s.fault.corrupt {
        if (1..=steps).contains(&st) {
            v.insert(st);
        }
    }
    Ok(v.into_iter().collect())
}

/// The state after step `t - 1` from the solver's checkpoint, if it is served
/// and hashes to `want`; otherwise `None` (the caller replays).
async fn fetch_checkpoint(
    c: &mut SolverClient<tonic::transport::Channel>,
    t: &Task,
    run: &Arc<Mutex<Run>>,
    step: u64,
    want: &Hash,
) -> Option<agent::exec::State> {
    let stream = match c
        .checkpoint(CheckpointRequest {
            task_id: t.id,
            step,
        })
        .await
    {
        Ok(s) => s.into_inner(),
        Err(e) => {
            tracing::info!(task = t.id, step, reason = %e.message(), "checkpoint not served; replaying from an earlier state");
            return None;
        }
    };
    let limit = train::checkpoint::max_file_bytes(&lock(run).graph.state_shapes);
    let bytes = agent::collect_chunks(stream, limit).await.ok()?;
    match decode_checked(run, &bytes, step, want) {
        Ok(state) => Some(state),
        Err(None) => {
            tracing::warn!(
                task = t.id,
                step,
                "checkpoint does not match the committed hash; ignoring it"
            );
            None
        }
        Err(Some(e)) => {
            tracing::warn!(task = t.id, step, error = %e, "corrupt checkpoint; ignoring it");
            None
        }
    }
}

/// A missing checkpoint is requested on chain only when replaying to it
/// would take more than this many steps.
const REQUEST_AFTER_STEPS: u64 = 8;

/// Asks on chain for the checkpoints of `steps`, which the solver did not
/// serve (or served wrong): `MsgRequestCheckpoint` each, in one transaction.
/// A step already posted (for another verifier) is read, not requested: the
/// chain refuses such a request, and one refusal would sink the others.
async fn request_checkpoints(s: &Shared, t: &Task, steps: &[(u64, Hash)]) {
    let mut wanted = Vec::with_capacity(steps.len());
    for &(k, h) in steps {
        if !matches!(s.chain.posted_checkpoint(t.id, k).await, Ok(Some(_))) {
            wanted.push((k, h));
        }
    }
    let steps = wanted.as_slice();
    if steps.is_empty() {
        return;
    }
    let msgs = steps
        .iter()
        .map(|(step, _)| {
            proto::to_any(
                &tasks::msg::MsgRequestCheckpoint {
                    verifier: s.chain.address,
                    task_id: t.id,
                    step: *step,
                }
                .to_proto(),
            )
        })
        .collect();
    let list: Vec<u64> = steps.iter().map(|(k, _)| *k).collect();
    match s.chain.send(msgs, "request checkpoints").await {
        Ok(_) => {
            s.metrics.inc("checkpoints_requested", steps.len() as u64);
            tracing::warn!(task = t.id, steps = %summarise(&list, 8), "checkpoints not served: requested on chain");
        }
        Err(e) => {
            tracing::info!(task = t.id, error = %e, "could not request the checkpoints on chain; replaying")
        }
    }
}

/// The checkpoint of `step` if the solver has posted it on chain by now and
/// it hashes to `want` (no waiting: the caller replays otherwise).
async fn posted_checkpoint(
    s: &Shared,
    t: &Task,
    run: &Arc<Mutex<Run>>,
    step: u64,
    want: &Hash,
) -> Option<agent::exec::State> {
    let bytes = s.chain.posted_checkpoint(t.id, step).await.ok().flatten()?;
    decode_checked(run, &bytes, step, want).ok()
}

/// The state in checkpoint `bytes` if it is the state after `step` and
/// hashes to `want`; else `Err(Some(why))` (it does not decode) or
/// `Err(None)` (another state).
fn decode_checked(
    run: &Arc<Mutex<Run>>,
    bytes: &[u8],
    step: u64,
    want: &Hash,
) -> Result<agent::exec::State, Option<train::TrainError>> {
    let (program, shapes) = {
        let r = lock(run);
        (r.program.clone(), r.graph.state_shapes.clone())
    };
    match train::checkpoint::decode_hashed(&program, &shapes, bytes) {
        Ok((st, state, h)) if st == step && h == *want => Ok(state),
        Ok(_) => Err(None),
        Err(e) => Err(Some(e)),
    }
}

async fn verify_sampled(s: &Arc<Shared>, t: &Task) -> Result<(), AgentError> {
    let served = match solver_trace(t).await {
        Ok(h) => h,
        Err(e) => {
            // Nothing to sample against: check every step instead.
            tracing::warn!(task = t.id, error = %e, "the solver's step hashes are unavailable; re-executing the whole task");
            return whistleblow(s, t, true).await;
        }
    };
    let run = Arc::new(Mutex::new(new_run(s, t, false).await?));
    lock(&s.runs).insert(t.id, run.clone());
    let sample = sample_steps(s, t)?;
    let mut own = BTreeMap::new();
    // One connection for every checkpoint of this task.
    let mut client = agent::solver_client(t).await?;
    tracing::info!(
        task = t.id,
        count = sample.len(),
        steps = %summarise(&sample, 8),
        "re-executing sampled steps"
    );
    // Every checkpoint first. A withheld step's checkpoint is not served
    // either (replay from an earlier state then). What the solver does not
    // serve, and would cost a long replay, is requested on chain in one
    // transaction; the verifier never waits for it (it must make the
    // window): a posting that arrives in time is used, and a solver that
    // does not post pays for the replay.
    let fetched = std::time::Instant::now();
    let mut missing = Vec::new();
    for &step in &sample {
        if let Some(want) = served.hashes[step as usize - 1] {
            match fetch_checkpoint(&mut client, t, &run, step - 1, &want).await {
                Some(state) => lock(&run).add_state(step - 1, state),
                None if step > 1 => missing.push((step - 1, want)),
                None => {}
            }
        }
    }
    let far: Vec<(u64, Hash)> = missing
        .into_iter()
        .filter(|(k, _)| k - lock(&run).nearest_state(*k) > REQUEST_AFTER_STEPS)
        .collect();
    request_checkpoints(s, t, &far).await;
    s.metrics
        .inc("checkpoint_us", fetched.elapsed().as_micros() as u64);
    for &step in &sample {
        if let Some((k, want)) = far.iter().find(|(k, _)| *k == step - 1) {
            if let Some(state) = posted_checkpoint(s, t, &run, *k, want).await {
                lock(&run).add_state(*k, state);
            }
        }
        let r2 = run.clone();
        let m2 = s.metrics.clone();
        let mine = tokio::task::spawn_blocking(move || -> Result<Hash, AgentError> {
            let mut r = lock(&r2);
            let before = r.stats;
            let h = r.step_out(step)?.state_hash;
            m2.add_compute(before, r.stats);
            Ok(h)
        })
        .await
        .map_err(|e| AgentError::Invalid(e.to_string()))??;
        s.metrics.inc("steps_reexecuted", 1);
        if train::merkle::leaf_node(&mine) != served.nodes[step as usize] {
            // The solver's h_step may be withheld (only its leaf node is
            // known), so no range dispute can name it: re-execute the whole
            // run and dispute the trace, which needs nothing of the solver's.
            // The challenge window covers a full re-execution.
            tracing::warn!(
                task = t.id,
                step,
                "step does not reproduce: re-executing the whole run to dispute the trace"
            );
            lock(&s.runs).remove(&t.id);
            return whistleblow(s, t, true).await;
        }
        own.insert(step, mine);
    }
    attest(s, t, &own, served.nodes, sample.len() as u64).await
}

/// Attests with this verifier's evidence: `h_s` of each of its evidence
/// steps (fixed by the draw), from `own` (hashes this verifier computed),
/// with proofs built from `nodes` (every leaf node of the trace, which must
/// reproduce the trace root).
async fn attest(
    s: &Shared,
    t: &Task,
    own: &BTreeMap<u64, Hash>,
    nodes: Vec<Hash>,
    steps_checked: u64,
) -> Result<(), AgentError> {
    s.metrics.inc("tasks_verified", 1);
    let (level, seed) = drawn(t)?;
    let steps = tasks::level::evidence_steps(level, &seed, &s.chain.address, t.steps);
    let tree = train::merkle::Tree::from_nodes(nodes);
    let evidence = steps
        .iter()
        .map(|&step| {
            let state_hash = *own.get(&step).ok_or_else(|| {
                AgentError::Invalid(format!(
                    "task {}: h_{step} (an evidence step) was not re-executed",
                    t.id
                ))
            })?;
            let proof = tree.proof(step as usize).ok_or_else(|| {
                AgentError::Invalid(format!("task {}: no leaf for step {step}", t.id))
            })?;
            Ok(tasks::msg::Evidence { state_hash, proof })
        })
        .collect::<Result<Vec<_>, AgentError>>()?;
    let msg = tasks::msg::MsgAttest {
        verifier: s.chain.address,
        task_id: t.id,
        steps_checked,
        evidence,
    }
    .to_proto();
    let res = s.chain.send(vec![proto::to_any(&msg)], "attest").await?;
    s.metrics.inc("attestations", 1);
    tracing::info!(task = t.id, height = res.height, steps_checked, "attested");
    Ok(())
}

/// The bond this verifier posts: `--bond`, or the chain's minimum.
async fn dispute_bond(s: &Shared) -> Result<Amount, AgentError> {
    let bond = match &s.cfg.bond {
        Some(b) => b.clone(),
        None => s.chain.verde_params().await?.min_bond,
    };
    Amount::parse_coin(&bond)
        .or_else(|_| bond.parse::<u128>().map(Amount).map_err(|_| ()))
        .map_err(|_| AgentError::Invalid(format!("bad bond {bond:?}")))
}

/// Re-executes the whole task; challenges the first run of wrong steps, or
/// attests (all steps checked) when `selected`.
async fn whistleblow(s: &Arc<Shared>, t: &Task, selected: bool) -> Result<(), AgentError> {
    let run = Arc::new(Mutex::new(new_run(s, t, true).await?));
    lock(&s.runs).insert(t.id, run.clone());
    let r2 = run.clone();
    let stop = s.stop.clone();
    let m2 = s.metrics.clone();
    let mine: Vec<Hash> = tokio::task::spawn_blocking(move || -> Result<Vec<Hash>, AgentError> {
        let mut r = lock(&r2);
        let before = r.stats;
        while r.steps_done() < r.program.steps {
            if *stop.borrow() {
                return Err(AgentError::Invalid("stopping".into()));
            }
            r.train_next()?;
        }
        m2.add_compute(before, r.stats);
        Ok(r.hashes().to_vec())
    })
    .await
    .map_err(|e| AgentError::Invalid(e.to_string()))??;
    s.metrics.inc("steps_reexecuted", t.steps);
    if train::merkle::root(&mine).as_slice() == t.trace_root.as_slice() {
        tracing::info!(task = t.id, "whistleblower: the whole run reproduces");
        // Nothing to dispute: the run is not needed any more.
        forget_run(s, t.id);
        if selected {
            let own = mine
                .iter()
                .enumerate()
                .map(|(k, h)| (k as u64, *h))
                .collect();
            let nodes = mine.iter().map(train::merkle::leaf_node).collect();
            attest(s, t, &own, nodes, t.steps).await?;
        }
        return Ok(());
    }
    // The run does not reproduce the committed trace. Nothing of the
    // solver's is needed: the dispute descends both trace trees to the
    // first differing step (whatever h_T is).
    tracing::warn!(
        task = t.id,
        "the run does not reproduce the committed trace: disputing it"
    );
    open_trace_dispute(s, t, train::merkle::root(&mine)).await
}

/// Opens a dispute in trace mode with this verifier's own trace root.
async fn open_trace_dispute(s: &Shared, t: &Task, root: Hash) -> Result<(), AgentError> {
    let bond = dispute_bond(s).await?;
    let msg = verde::msg::MsgOpenDispute::trace(s.chain.address, t.id, bond, root).to_proto();
    s.chain
        .send(vec![proto::to_any(&msg)], "open dispute")
        .await?;
    s.metrics.inc("disputes_opened", 1);
    tracing::warn!(task = t.id, %bond, "dispute opened on the trace");
    Ok(())
}

async fn play(s: &Arc<Shared>, t: &Task, d: &proto::verde::v1::Dispute) -> Result<(), AgentError> {
    if !dispute::my_turn(d, Side::Challenger) {
        return Ok(());
    }
    let existing = lock(&s.runs).get(&t.id).cloned();
    let run = match existing {
        Some(r) => r,
        None => {
            // After a restart: start from the solver's checkpoint of the agreed step if it
            // is served and matches h_lo, else replay from h_0.
            let r = Arc::new(Mutex::new(new_run(s, t, true).await?));
            if let Some(h_lo) = h32(&d.h_lo) {
                if let Ok(mut c) = agent::solver_client(t).await {
                    if let Some(state) = fetch_checkpoint(&mut c, t, &r, d.lo, &h_lo).await {
                        lock(&r).add_state(d.lo, state);
                    }
                }
            }
            lock(&s.runs).insert(t.id, r.clone());
            r
        }
    };
    // A trace descent needs this verifier's whole trace: after a restart
    // the kept run resumes from its newest checkpoint; finish it first.
    if d.phase == proto::verde::v1::Phase::TraceDescent as i32 {
        let r2 = run.clone();
        let stop = s.stop.clone();
        tokio::task::spawn_blocking(move || -> Result<(), AgentError> {
            let mut r = lock(&r2);
            while r.steps_done() < r.program.steps {
                if *stop.borrow() {
                    return Err(AgentError::Invalid("stopping".into()));
                }
                r.train_next()?;
            }
            Ok(())
        })
        .await
        .map_err(|e| AgentError::Invalid(e.to_string()))??;
    }
    let max_chunk = s.chain.verde_params().await?.max_chunk_bytes as usize;
    let me = s.chain.address.to_string();
    let d2 = d.clone();
    let m2 = s.metrics.clone();
    let msgs = tokio::task::spawn_blocking(move || {
        let mut r = lock(&run);
        let before = r.stats;
        let m = dispute::moves(&d2, &me, Side::Challenger, &mut r, max_chunk);
        m2.add_compute(before, r.stats);
        m
    })
    .await
    .map_err(|e| AgentError::Invalid(e.to_string()))??;
    if msgs.is_empty() {
        return Ok(());
    }
    let n = msgs.len() as u64;
    tracing::info!(
        task = t.id,
        dispute = d.id,
        step = d.hi,
        deadline = d.deadline,
        "dispute move"
    );
    s.chain.send_all(msgs, "dispute move").await?;
    s.metrics.inc("dispute_moves", n);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn long_step_lists_are_summarised_in_log_lines() {
        let many: Vec<u64> = (1..=600).collect();
        assert_eq!(
            super::summarise(&many, 8),
            "[1, 2, 3, 4, 5, 6, 7, 8, … and 592 more]"
        );
        assert_eq!(super::summarise(&[3, 9], 8), "[3, 9]");
    }
}
