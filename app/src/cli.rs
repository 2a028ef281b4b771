//! The `veritraind` command line, in the Cosmos shape. Every flag can also be
//! set through an environment variable (`VERITRAIND_HOME`, `VERITRAIND_NODE`,
//! `VERITRAIND_CHAIN_ID`, …) and every command takes `--output json`.
use crate::client::NodeClient;
use crate::home::Home;
use crate::keyring::Keyring;
use crate::node;
use crate::testkit;
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use framework::{Address, Amount};
use serde_json::json;
use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "veritraind",
    version,
    about = "Veritrain: an app chain for verifiable machine-learning training"
)]
pub struct Cli {
    /// Node home directory.
    #[arg(long, global = true, env = "VERITRAIND_HOME", default_value_os_t = default_home())]
    pub home: PathBuf,
    /// Output format.
    #[arg(long, short = 'o', global = true, env = "VERITRAIND_OUTPUT", value_enum, default_value_t = Output::Text)]
    pub output: Output,
    /// Log filter (RUST_LOG syntax), e.g. `info` or `app=debug`.
    #[arg(long, global = true, env = "RUST_LOG", default_value = "info")]
    pub log: String,
    /// Log as JSON lines.
    #[arg(long, global = true, env = "VERITRAIND_LOG_JSON")]
    pub log_json: bool,
    #[command(subcommand)]
    pub cmd: Cmd,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Text,
    Json,
}

fn default_home() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."))
        .join(".veritraind")
}

#[derive(Args, Debug, Clone)]
pub struct NodeArg {
    /// gRPC URL of the node (default: from `--home`: config/client.toml, the
    /// node running on that home, or its app.toml; else http://127.0.0.1:9090).
    #[arg(long, env = "VERITRAIND_NODE")]
    pub node: Option<String>,
}

impl NodeArg {
    /// The URL to dial: `--node`, else `home_node` (resolved from `--home`).
    pub fn url<'a>(&'a self, home_node: &'a str) -> &'a str {
        self.node.as_deref().unwrap_or(home_node)
    }
}

/// The node's HTTP side: the block explorer (with its JSON API) and Prometheus metrics.
#[derive(Args, Debug, Clone, Default)]
pub struct HttpArgs {
    /// Serve the block explorer and its JSON API here (default: app.toml's explorer_address).
    #[arg(long, env = "VERITRAIND_EXPLORER_ADDRESS")]
    pub explorer_address: Option<SocketAddr>,
    /// Do not serve the explorer.
    #[arg(long, env = "VERITRAIND_NO_EXPLORER")]
    pub no_explorer: bool,
    /// Serve Prometheus metrics at /metrics here (default: app.toml's metrics_address).
    #[arg(long, env = "VERITRAIND_METRICS_ADDRESS")]
    pub metrics_address: Option<SocketAddr>,
    /// Do not serve metrics.
    #[arg(long, env = "VERITRAIND_NO_METRICS")]
    pub no_metrics: bool,
}

impl HttpArgs {
    /// Where to serve each, from the flags and `app.toml`: `(address, explicit)`.
    fn resolve(
        &self,
        cfg: &crate::home::AppConfig,
    ) -> Result<(crate::explorer::Serve, crate::explorer::Serve)> {
        let pick = |off: bool, flag: Option<SocketAddr>, conf: &str, what: &str| -> Result<_> {
            Ok(match (off, flag) {
                (true, _) => None,
                (false, Some(a)) => Some((a, true)),
                (false, None) if conf.trim().is_empty() => None,
                (false, None) => Some((
                    conf.trim()
                        .parse()
                        .with_context(|| format!("{what} in app.toml: {conf:?}"))?,
                    false,
                )),
            })
        };
        Ok((
            pick(
                self.no_explorer,
                self.explorer_address,
                &cfg.explorer_address,
                "explorer_address",
            )?,
            pick(
                self.no_metrics,
                self.metrics_address,
                &cfg.metrics_address,
                "metrics_address",
            )?,
        ))
    }
}

#[derive(Args, Debug, Clone)]
pub struct TxArgs {
    #[command(flatten)]
    pub node: NodeArg,
    /// Key name (or address) in the keyring that signs.
    #[arg(long, env = "VERITRAIND_FROM")]
    pub from: String,
    /// Fee in uvtr (default: the chain's minimum fee).
    #[arg(long, env = "VERITRAIND_FEE")]
    pub fee: Option<String>,
    #[arg(long, default_value = "")]
    pub memo: String,
    /// Skip the confirmation prompt.
    #[arg(long, short = 'y', env = "VERITRAIND_YES")]
    pub yes: bool,
    /// Seconds to wait for inclusion (0 = do not wait).
    #[arg(long, env = "VERITRAIND_WAIT_SECS", default_value_t = 30)]
    pub wait_secs: u64,
    /// Expected chain id (checked against the node's).
    #[arg(long, env = "VERITRAIND_CHAIN_ID")]
    pub chain_id: Option<String>,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Cmd {
    /// Create a node home: genesis.json and app.toml.
    Init {
        #[arg(long, env = "VERITRAIND_CHAIN_ID")]
        chain_id: String,
        #[arg(long, env = "VERITRAIND_MONIKER", default_value = "node")]
        moniker: String,
        #[arg(long)]
        overwrite: bool,
    },
    /// Run the ABCI application for CometBFT, the gRPC API, the explorer and metrics.
    Start {
        #[arg(long, env = "VERITRAIND_ABCI_ADDRESS")]
        abci_address: Option<SocketAddr>,
        #[arg(long, env = "VERITRAIND_GRPC_ADDRESS")]
        grpc_address: Option<SocketAddr>,
        #[arg(long, env = "VERITRAIND_COMET_RPC")]
        comet_rpc: Option<String>,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// Run the embedded single-node dev chain, the gRPC API, the explorer and metrics.
    Dev {
        #[arg(long, env = "VERITRAIND_GRPC_ADDRESS")]
        grpc_address: Option<SocketAddr>,
        /// Block interval in milliseconds.
        #[arg(long, env = "VERITRAIND_BLOCK_MS")]
        block_ms: Option<u64>,
        #[command(flatten)]
        http: HttpArgs,
    },
    /// The node's chain id, height and app hash.
    Status {
        #[command(flatten)]
        node: NodeArg,
    },
    /// Manage the keyring.
    #[command(subcommand)]
    Keys(KeysCmd),
    /// Sign and broadcast transactions.
    #[command(subcommand)]
    Tx(TxCmd),
    /// Query state.
    #[command(subcommand)]
    Query(QueryCmd),
    /// Tools for checking a node's data.
    #[command(subcommand)]
    Debug(DebugCmd),
    /// Local multi-validator networks under CometBFT.
    #[command(subcommand)]
    Testnet(crate::testnet::TestnetCmd),
    /// The whole system in one process: dev chain, solver, verifier and a
    /// cheating solver; an honest job, then a cheat caught by a dispute.
    Demo(crate::demo::DemoArgs),
    /// Trained models.
    #[command(subcommand)]
    Model(ModelCmd),
}

#[derive(Subcommand, Debug)]
pub enum ModelCmd {
    /// Download a task's trained model (safetensors) from its solver and check
    /// it against the final state hash on chain.
    Fetch {
        task_id: u64,
        /// Where to write the model.
        #[arg(long)]
        out: PathBuf,
        #[command(flatten)]
        node: NodeArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum DebugCmd {
    /// Re-execute every committed block of this home on a fresh store (in a
    /// temporary directory) and check each height's app hash. The node must
    /// be stopped (sled holds a lock on its store).
    Replay {
        /// Stop at this height.
        #[arg(long)]
        to_height: Option<u64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum KeysCmd {
    /// Create a new random key.
    Add {
        name: String,
    },
    List,
    Show {
        name: String,
        /// Print only the address.
        #[arg(long, short = 'a')]
        address: bool,
    },
    /// Print the secret key (hex). Anyone with it controls the account.
    Export {
        name: String,
    },
    /// Import a secret key (hex).
    Import {
        name: String,
        secret_hex: String,
    },
}

#[derive(Subcommand, Debug)]
pub enum TxCmd {
    #[command(subcommand)]
    Bank(BankTx),
    #[command(subcommand)]
    Staking(StakingTx),
    #[command(subcommand)]
    Tasks(TasksTx),
    #[command(subcommand)]
    Verde(VerdeTx),
    #[command(subcommand)]
    Swarm(SwarmTx),
}

/// Swarms: rounds of verified contributions, paid for measured improvement.
#[derive(Subcommand, Debug)]
pub enum SwarmTx {
    /// Create a swarm: escrows ROUNDS x BUDGET_PER_ROUND. The program must train
    /// with `record_loss: true`; rows after its `train_rows` are the held-out pool.
    Create {
        /// A builtin program (mlp-digits, tiny-lm, gated-digits) or a program JSON file.
        #[arg(long)]
        program: String,
        #[arg(long, default_value_t = 5)]
        rounds: u64,
        #[arg(long, default_value_t = 4)]
        slots: u64,
        /// Training steps of each contribution.
        #[arg(long, default_value_t = 20)]
        inner_steps: u64,
        /// Batches of each measurement.
        #[arg(long, default_value_t = 4)]
        eval_steps: u64,
        /// Rows per measurement batch.
        #[arg(long, default_value_t = 64)]
        eval_batch: u64,
        #[arg(long)]
        budget_per_round: String,
        #[arg(long, default_value = "200000uvtr")]
        contribution_reward: String,
        #[arg(long, default_value = "50000uvtr")]
        evaluation_reward: String,
        #[arg(long, default_value = "20000uvtr")]
        verification_fee: String,
        /// Bonded solver stake a contributor needs.
        #[arg(long, default_value = "0uvtr")]
        min_stake: String,
        /// A sealed evaluation pool per round, in order (dataset files, repeat the
        /// flag once per round; recorded by path: publish each where solvers can
        /// read it only when its round evaluates). With pools, contributors may
        /// train on their own data (`solverd --swarm-data`).
        #[arg(long)]
        pool: Vec<PathBuf>,
        /// Merge each round by averaging the improving contributions with this outer
        /// learning rate (a verified merge task, paid the evaluation reward; 1
        /// averages them); 0 merges by selection (the best becomes the next model).
        #[arg(long, default_value_t = 0.0, value_parser = parse_outer_lr)]
        outer_lr: f32,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Reveal the next link of a swarm's seed chain (the secret `tx swarm create`
    /// kept under --home): the waiting round's evaluations start.
    RevealSeed {
        swarm_id: u64,
        #[arg(long, default_value = "http://127.0.0.1:26658")]
        node: String,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Take a slot of a swarm's current round (a registered solver; solverd
    /// --swarm does this and trains it).
    Join {
        swarm_id: u64,
        /// The round to join (default: the current one).
        #[arg(long)]
        round: Option<u64>,
        /// Where this solver serves its states.
        #[arg(long, default_value = "")]
        endpoint: String,
        #[arg(long, default_value = "http://127.0.0.1:26658")]
        node: String,
        #[command(flatten)]
        tx: TxArgs,
    },
}

/// Dispute moves. Hashes are hex; proofs are JSON files in train::merkle's
/// format: `{"index": I, "leaf_count": N, "siblings": ["hex", ...]}`.
/// (verifierd and solverd make these moves automatically.)
#[derive(Subcommand, Debug)]
pub enum VerdeTx {
    /// Open a dispute on steps (LO, HI] of a task with a bond.
    Open {
        task_id: u64,
        #[arg(long)]
        bond: String,
        #[arg(long)]
        lo: u64,
        #[arg(long)]
        h_lo: String,
        #[arg(long)]
        proof_lo: PathBuf,
        #[arg(long)]
        hi: u64,
        #[arg(long)]
        h_hi: String,
        #[arg(long)]
        proof_hi: PathBuf,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Solver: reveal h_mid with its proof against the trace root.
    RevealMid {
        dispute_id: u64,
        #[arg(long)]
        h_mid: String,
        #[arg(long)]
        proof: PathBuf,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Challenger: agree or disagree with the revealed h_mid.
    Respond {
        dispute_id: u64,
        #[arg(long, action = clap::ArgAction::Set)]
        agree: bool,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Either party: post its op root of the disputed step.
    PostOpRoot {
        dispute_id: u64,
        op_root: String,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Either party: reveal the children of the current tree node (or, at a leaf, the leaf value as LEFT).
    RevealChildren {
        dispute_id: u64,
        left: String,
        #[arg(default_value = "")]
        right: String,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Solver: prove the disputed state assembles from the agreed op root. ENTRIES is a JSON file
    /// `[{"name": ..., "tensor_hash": "hex", "proof": {...}}, ...]` in state-name order.
    ProveAssembly {
        dispute_id: u64,
        entries: PathBuf,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Solver: upload the disputed step's batch rows with their proofs (datasets the chain does
    /// not hold). ROWS is a JSON file: a list of train::RowProof `{"row", "chunk" (hex), "proof"}`.
    UploadRows {
        dispute_id: u64,
        rows: PathBuf,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Solver: upload one chunk of an input of the disputed node (raw f32 little-endian bytes).
    Upload {
        dispute_id: u64,
        #[arg(long)]
        input: u32,
        #[arg(long)]
        offset: u64,
        #[arg(long)]
        data: PathBuf,
        /// With the last chunk: the input's proof.
        #[arg(long)]
        proof: Option<PathBuf>,
        #[command(flatten)]
        tx: TxArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum TasksTx {
    /// Submit a training job: escrows REWARD + the verification fee.
    Submit {
        /// A builtin program (mlp-digits, tiny-lm, gated-digits) or a program JSON file.
        #[arg(long)]
        program: String,
        /// Override the program's number of steps.
        #[arg(long)]
        steps: Option<u64>,
        #[arg(long)]
        reward: String,
        #[arg(long, default_value = "0uvtr")]
        verification_fee: String,
        /// For a dataset the chain does not hold: its file (checked against the
        /// program's dataset root), whose layout goes on chain.
        #[arg(long)]
        dataset_file: Option<PathBuf>,
        /// Where solvers and verifiers fetch that dataset: an http(s):// URL,
        /// a grpc://host:port blob service (e.g. a solverd holding it) or a
        /// path they can read. Recorded as the program's dataset name; needs
        /// --dataset-file (the layout and root are taken from it).
        #[arg(long, requires = "dataset_file")]
        dataset_url: Option<String>,
        /// Verification level: `full` (every drawn verifier re-executes all
        /// steps; the default) or `sampled` (each re-executes --sample-bps).
        #[arg(long, default_value = "full", value_parser = ["full", "sampled"])]
        verification: String,
        /// With --verification sampled: basis points of the steps each drawn
        /// verifier re-executes (200 = 2%).
        #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u32).range(1..=10000))]
        sample_bps: u32,
        /// Follow the job to its end (claim, training, commit, verification,
        /// finalisation): a progress bar on a terminal, log lines otherwise.
        #[arg(long)]
        wait: bool,
        /// With --wait: give up after this many seconds.
        #[arg(long, default_value_t = 3600)]
        wait_timeout: u64,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Cancel an unclaimed task (refund).
    Cancel {
        task_id: u64,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Claim a task as a registered solver (posts the claim bond).
    Claim {
        task_id: u64,
        /// Where the solver serves checkpoints and traces.
        #[arg(long, default_value = "")]
        endpoint: String,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Commit a result: trace root and final state hash (hex).
    Commit {
        task_id: u64,
        #[arg(long)]
        trace_root: String,
        #[arg(long)]
        final_state_hash: String,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Reveal the seed committed at submission, once the solver has
    /// committed: the verifiers are drawn from it at once. `tx tasks submit`
    /// without --wait keeps the secret under --home for this.
    RevealSeed {
        task_id: u64,
        /// The secret (64 hex digits); default: the one `tx tasks submit`
        /// kept in <home>/seeds/TASK_ID.secret.
        #[arg(long)]
        secret: Option<String>,
        #[command(flatten)]
        tx: TxArgs,
    },
    /// Attest a task as one of its selected verifiers.
    Attest {
        task_id: u64,
        #[arg(long, default_value_t = 0)]
        steps_checked: u64,
        /// Evidence of re-execution: h_s (hex) of each of this verifier's
        /// evidence steps, ascending (one at the full level; every sampled
        /// step below T at the sampled level), ...
        #[arg(long, required = true)]
        evidence_hash: Vec<String>,
        /// ... and, in the same order, each one's Merkle proof against
        /// trace_root (a JSON file).
        #[arg(long, required = true)]
        evidence_proof: Vec<PathBuf>,
        #[command(flatten)]
        tx: TxArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum BankTx {
    /// Send AMOUNT (e.g. 1000uvtr) from FROM (key name or address) to TO.
    Send {
        from_key: String,
        to: String,
        amount: String,
        #[command(flatten)]
        node: NodeArg,
        #[arg(long, env = "VERITRAIND_FEE")]
        fee: Option<String>,
        #[arg(long, default_value = "")]
        memo: String,
        #[arg(long, short = 'y', env = "VERITRAIND_YES")]
        yes: bool,
        #[arg(long, env = "VERITRAIND_WAIT_SECS", default_value_t = 30)]
        wait_secs: u64,
        #[arg(long, env = "VERITRAIND_CHAIN_ID")]
        chain_id: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum StakingTx {
    /// Register the signer as an operator with an initial stake.
    Register {
        #[arg(long)]
        role: String,
        #[arg(long)]
        stake: String,
        #[command(flatten)]
        tx: TxArgs,
    },
    AddStake {
        amount: String,
        #[command(flatten)]
        tx: TxArgs,
    },
    Unbond {
        amount: String,
        #[command(flatten)]
        tx: TxArgs,
    },
}

#[derive(Subcommand, Debug)]
pub enum QueryCmd {
    #[command(subcommand)]
    Bank(BankQuery),
    #[command(subcommand)]
    Staking(StakingQuery),
    #[command(subcommand)]
    Auth(AuthQuery),
    #[command(subcommand)]
    Tasks(TasksQuery),
    #[command(subcommand)]
    Verde(VerdeQuery),
    #[command(subcommand)]
    Swarm(SwarmQuery),
    /// A committed transaction by hash (hex).
    Tx {
        hash: String,
        #[command(flatten)]
        node: NodeArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum BankQuery {
    Balances {
        address: String,
        #[command(flatten)]
        node: NodeArg,
    },
    TotalSupply {
        #[command(flatten)]
        node: NodeArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum StakingQuery {
    Operator {
        address: String,
        #[command(flatten)]
        node: NodeArg,
    },
    Operators {
        /// solver, verifier or all.
        #[arg(long, default_value = "all")]
        role: String,
        #[arg(long, default_value_t = 100)]
        limit: u64,
        /// Continue after this address (from the previous page's next_key).
        #[arg(long)]
        after: Option<String>,
        #[command(flatten)]
        node: NodeArg,
    },
    Params {
        #[command(flatten)]
        node: NodeArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum TasksQuery {
    /// A task's status, deadlines, commitments, verifiers, dispute and payouts.
    Task {
        task_id: u64,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Tasks, optionally of one status (open, claimed, committed, finalized, cancelled, failed, expired).
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u64,
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Operators' track records: tasks solved, steps verified, disputes, rewards, slashes.
    Leaderboard {
        /// solver, verifier or all.
        #[arg(long, default_value = "all")]
        role: String,
        #[arg(long, default_value_t = 100)]
        limit: u64,
        #[command(flatten)]
        node: NodeArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum SwarmQuery {
    /// A swarm: its program, budget, current round and global model.
    Swarm {
        swarm_id: u64,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Swarms in id order.
    List {
        #[arg(long, default_value_t = 0)]
        after: u64,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[command(flatten)]
        node: NodeArg,
    },
    /// One round: contributions, measurements, improvements and payouts.
    Round {
        swarm_id: u64,
        round: u64,
        #[command(flatten)]
        node: NodeArg,
    },
    /// Contributors ranked by verified quality (of one swarm, or of all with 0).
    Leaderboard {
        #[arg(default_value_t = 0)]
        swarm_id: u64,
        #[arg(long, default_value_t = 20)]
        limit: u32,
        #[command(flatten)]
        node: NodeArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum VerdeQuery {
    /// A dispute and its transcript.
    Dispute {
        dispute_id: u64,
        #[command(flatten)]
        node: NodeArg,
    },
}

#[derive(Subcommand, Debug)]
pub enum AuthQuery {
    Account {
        address: String,
        #[command(flatten)]
        node: NodeArg,
    },
}

struct Out(Output);

impl Out {
    fn print(&self, value: serde_json::Value, text: impl FnOnce() -> String) {
        match self.0 {
            Output::Json => write_stdout(&serde_json::to_string_pretty(&value).unwrap_or_default()),
            Output::Text => write_stdout(&text()),
        }
    }
}

/// Writes `s` and a newline to stdout. A reader that went away (`| head -1`)
/// ends the output quietly, as with other Unix tools, instead of panicking
/// as `println!` does.
fn write_stdout(s: &str) {
    use std::io::Write;
    let mut o = std::io::stdout().lock();
    if let Err(e) = writeln!(o, "{s}").and_then(|()| o.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            tracing::warn!(error = %e, "cannot write to stdout");
        }
    }
}

pub fn init_tracing(cli: &Cli) {
    // The demo prints its own story; its daemons only speak up for warnings
    // unless a log level was asked for.
    let quiet_demo = matches!(cli.cmd, Cmd::Demo(_))
        && cli.log == "info"
        && std::env::var_os("RUST_LOG").is_none();
    let level = if quiet_demo { "warn" } else { cli.log.as_str() };
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if cli.log_json {
        b.json().try_init()
    } else {
        b.try_init()
    };
}

/// `--outer-lr`: 0 (merge by selection) or a finite positive rate.
pub(crate) fn parse_outer_lr(v: &str) -> std::result::Result<f32, String> {
    let x: f32 = v
        .parse()
        .map_err(|e| format!("{v:?} is not a number: {e}"))?;
    if x == 0.0 || (x.is_finite() && x > 0.0) {
        Ok(x)
    } else {
        Err(format!(
            "{v}: the outer learning rate must be finite and > 0, or 0"
        ))
    }
}

/// Parses `1000uvtr` (or `1000`), saying exactly what is wrong otherwise.
pub fn parse_amount(s: &str) -> Result<Amount> {
    crate::client::parse_amount(s).map_err(|e| anyhow::anyhow!("amount {e}"))
}

/// Commands that read a home fail clearly when it does not exist.
fn need_home(root: &std::path::Path) -> Result<()> {
    if !root.is_dir() {
        bail!(
            "home {} does not exist (set --home or VERITRAIND_HOME; `veritraind init` or \
             `veritraind keys add` creates one)",
            root.display()
        );
    }
    Ok(())
}

fn resolve_address(keys: &Keyring, s: &str) -> Result<Address> {
    if let Ok(a) = s.parse::<Address>() {
        return Ok(a);
    }
    match keys.get(s) {
        Ok(e) => Ok(e.address.parse()?),
        Err(_) => bail!("{s:?} is neither a vt1… address nor a key name in the keyring"),
    }
}

fn confirm(yes: bool, what: &str) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        bail!("refusing to sign without confirmation: pass --yes");
    }
    eprint!("{what}\nconfirm transaction before signing and broadcasting [y/N]: ");
    let mut line = String::new();
    std::io::stdin().read_line(&mut line)?;
    if matches!(line.trim(), "y" | "Y" | "yes") {
        Ok(())
    } else {
        bail!("cancelled")
    }
}

#[allow(clippy::too_many_arguments)]
async fn send_tx(
    out: &Out,
    dn: &str,
    keys: &Keyring,
    tx: &TxArgs,
    msgs: Vec<prost_types::Any>,
    what: String,
    print: bool,
) -> Result<Option<proto::node::v1::TxResult>> {
    let signer = keys.signer(&tx.from)?;
    let client = NodeClient::connect(tx.node.url(dn)).await?;
    if let Some(want) = &tx.chain_id {
        let have = client.status().await?.chain_id;
        if &have != want {
            bail!(
                "the node at {} runs chain {have:?}, not {want:?}",
                tx.node.url(dn)
            );
        }
    }
    let fee = tx.fee.as_deref().map(parse_amount).transpose()?;
    confirm(tx.yes, &what)?;
    let wait = (tx.wait_secs > 0).then(|| Duration::from_secs(tx.wait_secs));
    let (hash, res) = client
        .sign_and_send(&signer, msgs, &tx.memo, fee, wait)
        .await?;
    let hash_hex = hex::encode_upper(&hash);
    match &res {
        _ if !print => {
            if let Some(r) = &res {
                if r.code != 0 {
                    bail!(
                        "transaction failed with code {} ({}): {}",
                        r.code,
                        r.codespace,
                        r.log
                    );
                }
            }
        }
        None => out.print(
            json!({"txhash": hash_hex, "code": 0, "included": false}),
            || format!("txhash: {hash_hex} (accepted into the mempool)"),
        ),
        Some(r) => {
            let code = r.code;
            out.print(
                json!({"txhash": hash_hex, "height": r.height, "code": r.code, "codespace": r.codespace, "log": r.log, "events": r.events}),
                || {
                    if r.code == 0 {
                        format!("txhash: {hash_hex}\nheight: {}\ncode: 0 (success)", r.height)
                    } else {
                        format!("txhash: {hash_hex}\nheight: {}\ncode: {} ({})\nlog: {}", r.height, r.code, r.codespace, r.log)
                    }
                },
            );
            if code != 0 {
                bail!("transaction failed with code {code}");
            }
        }
    }
    Ok(res)
}

pub async fn run(cli: Cli) -> Result<()> {
    let out = Out(cli.output);
    let home = Home::new(&cli.home);
    let keys = Keyring::open(&cli.home);
    // The node `--home` points at, for commands given no --node.
    let dn = match home.client_node_url() {
        Ok(u) => u,
        Err(e) => {
            tracing::warn!(error = %e, "ignoring the client config");
            crate::home::grpc_url_of(&crate::home::AppConfig::default().grpc_address)
        }
    };
    match cli.cmd {
        Cmd::Init {
            chain_id,
            moniker,
            overwrite,
        } => {
            let g = home.init(&chain_id, &moniker, overwrite)?;
            out.print(
                json!({"home": cli.home, "chain_id": g.chain_id, "genesis": home.genesis_path()}),
                || {
                    format!(
                        "initialised {} for chain {}",
                        cli.home.display(),
                        g.chain_id
                    )
                },
            );
        }
        Cmd::Dev {
            grpc_address,
            block_ms,
            http,
        } => {
            let cfg = home.read_config()?;
            let grpc: SocketAddr = match grpc_address {
                Some(a) => a,
                None => cfg
                    .grpc_address
                    .parse()
                    .context("grpc_address in app.toml")?,
            };
            let interval =
                Duration::from_millis(block_ms.unwrap_or(cfg.dev_block_interval_ms).max(1));
            let (explorer, metrics) = http.resolve(&cfg)?;
            let n = node::start_dev(&home, grpc, interval).await?;
            let web = crate::explorer::Http::start(explorer, metrics, &n.grpc_url(), None).await?;
            let _ = crate::home::write_atomic(&home.grpc_url_path(), n.grpc_url().as_bytes());
            let dev = keys.get(node::DEV_KEY)?;
            out.print(
                json!({"grpc": n.grpc_url(), "chain_id": n.app.chain_id(), "dev_key": dev.address,
                       "explorer": web.explorer_url(), "metrics": web.metrics_url()}),
                || {
                    let mut s = format!(
                        "dev chain {} running; gRPC at {}; key `dev` = {}",
                        n.app.chain_id(),
                        n.grpc_url(),
                        dev.address
                    );
                    if let Some(u) = web.explorer_url() {
                        s.push_str(&format!("\nexplorer at {u}"));
                    }
                    if let Some(u) = web.metrics_url() {
                        s.push_str(&format!("\nmetrics at {u}"));
                    }
                    s
                },
            );
            node::shutdown_signal().await;
            let _ = std::fs::remove_file(home.grpc_url_path());
            web.shutdown().await;
            n.shutdown().await;
        }
        Cmd::Start {
            abci_address,
            grpc_address,
            comet_rpc,
            http,
        } => {
            let cfg = home.read_config()?;
            let abci = match abci_address {
                Some(a) => a,
                None => cfg
                    .abci_address
                    .parse()
                    .context("abci_address in app.toml")?,
            };
            let grpc = match grpc_address {
                Some(a) => a,
                None => cfg
                    .grpc_address
                    .parse()
                    .context("grpc_address in app.toml")?,
            };
            let rpc = comet_rpc.unwrap_or(cfg.comet_rpc.clone());
            let (explorer, metrics) = http.resolve(&cfg)?;
            let n = node::start_comet(&home, abci, grpc, &rpc).await?;
            let web =
                crate::explorer::Http::start(explorer, metrics, &n.grpc_url(), Some(rpc.clone()))
                    .await?;
            let _ = crate::home::write_atomic(&home.grpc_url_path(), n.grpc_url().as_bytes());
            if let Some(u) = web.explorer_url() {
                tracing::info!(url = %u, "explorer");
            }
            node::shutdown_signal().await;
            let _ = std::fs::remove_file(home.grpc_url_path());
            web.shutdown().await;
            n.shutdown().await;
        }
        Cmd::Status { node } => {
            let c = NodeClient::connect(node.url(&dn)).await?;
            let s = c.status().await?;
            // Hashes in hex, as Cosmos tools print them.
            let v = json!({
                "chain_id": s.chain_id, "height": s.height,
                "app_hash": hex::encode_upper(&s.app_hash), "block_time_ms": s.block_time_ms,
                "mode": s.mode, "mempool_size": s.mempool_size,
            });
            out.print(v, || {
                format!(
                    "chain_id: {}\nheight: {}\napp_hash: {}\nmode: {}\nmempool: {}",
                    s.chain_id,
                    s.height,
                    hex::encode_upper(&s.app_hash),
                    s.mode,
                    s.mempool_size
                )
            });
        }
        Cmd::Keys(k) => match k {
            KeysCmd::Add { name } => {
                let s = auth::Signer::generate(&mut rand::rngs::OsRng);
                let e = keys.add(&name, &s)?;
                out.print(json!({"name": e.name, "address": e.address}), || {
                    format!("{}: {}", e.name, e.address)
                });
            }
            KeysCmd::List => {
                need_home(&cli.home)?;
                let l = keys.list()?;
                out.print(
                    json!(l
                        .iter()
                        .map(|e| json!({"name": e.name, "address": e.address}))
                        .collect::<Vec<_>>()),
                    || {
                        if l.is_empty() {
                            return format!(
                                "no keys in {}; `veritraind keys add NAME` creates one",
                                cli.home.display()
                            );
                        }
                        l.iter()
                            .map(|e| format!("{}: {}", e.name, e.address))
                            .collect::<Vec<_>>()
                            .join("\n")
                    },
                );
            }
            KeysCmd::Show { name, address } => {
                need_home(&cli.home)?;
                let e = keys.get(&name)?;
                if address && out.0 == Output::Text {
                    write_stdout(&e.address);
                } else {
                    out.print(json!({"name": e.name, "address": e.address}), || {
                        format!("{}: {}", e.name, e.address)
                    });
                }
            }
            KeysCmd::Export { name } => {
                need_home(&cli.home)?;
                let e = keys.get(&name)?;
                eprintln!("WARNING: anyone with this secret controls {}", e.address);
                out.print(
                    json!({"name": e.name, "address": e.address, "secret": e.secret}),
                    || e.secret.clone(),
                );
            }
            KeysCmd::Import { name, secret_hex } => {
                let e = keys.import(&name, &secret_hex)?;
                out.print(json!({"name": e.name, "address": e.address}), || {
                    format!("{}: {}", e.name, e.address)
                });
            }
        },
        Cmd::Tx(cmd) => {
            let mut follow_submit = None;
            let mut seed_secret: Option<[u8; 32]> = None;
            let (mut tx, msg, what) = match cmd {
                TxCmd::Bank(BankTx::Send {
                    from_key,
                    to,
                    amount,
                    node,
                    fee,
                    memo,
                    yes,
                    wait_secs,
                    chain_id,
                }) => {
                    let signer = keys.signer(&from_key)?;
                    let to_addr = resolve_address(&keys, &to)?;
                    let amt = parse_amount(&amount)?;
                    let msg = testkit::send_msg(&signer.address(), &to_addr, amt);
                    let what = format!("send {amt} from {} to {to_addr}", signer.address());
                    let tx = TxArgs {
                        node,
                        from: from_key,
                        fee,
                        memo,
                        yes,
                        wait_secs,
                        chain_id,
                    };
                    (tx, msg, what)
                }
                TxCmd::Staking(s) => staking_tx(&keys, s)?,
                TxCmd::Tasks(t) => {
                    if let TasksTx::Submit {
                        wait, wait_timeout, ..
                    } = &t
                    {
                        if *wait {
                            follow_submit = Some(Duration::from_secs(*wait_timeout));
                        }
                        // Every submission commits to a seed, revealed after
                        // the commit (by this process with --wait, else by
                        // `tx tasks reveal-seed`): the verifier draw is then
                        // one no block proposer can grind.
                        seed_secret = Some(rand::random::<[u8; 32]>());
                    }
                    tasks_tx(&keys, &home, t, seed_secret)?
                }
                TxCmd::Verde(v) => verde_tx(&keys, v)?,
                TxCmd::Swarm(sw) => swarm_tx(&keys, &home, sw).await?,
            };
            if tx.chain_id.is_none() {
                // client.toml's chain id, if the home has one.
                tx.chain_id = home
                    .read_client_config()
                    .ok()
                    .map(|c| c.chain_id)
                    .filter(|c| !c.is_empty());
            }
            // With --wait and JSON output, one document at the end says it all.
            let print = !(follow_submit.is_some() && matches!(out.0, Output::Json));
            let signer = keys.signer(&tx.from).ok();
            let res = send_tx(&out, &dn, &keys, &tx, vec![msg], what, print).await?;
            if let (Some(secret), None) = (seed_secret, follow_submit) {
                keep_seed(&home, res.as_ref(), secret, &tx.from)?;
            }
            if let Some(timeout) = follow_submit {
                let res =
                    res.context("--wait needs --wait-secs > 0 (the submit must be included)")?;
                let id = crate::follow::task_id_from(&res)
                    .context("the submit result carries no task id")?;
                let c = NodeClient::connect(tx.node.url(&dn)).await?;
                let reveal = async {
                    match (seed_secret, &signer) {
                        (Some(secret), Some(s)) => {
                            crate::follow::reveal_seed(&c, s, id, secret, timeout).await
                        }
                        _ => Ok(()),
                    }
                };
                let (t, revealed) = tokio::join!(
                    crate::follow::follow(&c, id, timeout, matches!(out.0, Output::Json)),
                    reveal
                );
                if let Err(e) = revealed {
                    tracing::warn!(task = id, error = %e, "the seed was not revealed: the draw fell back to the block hash");
                }
                let t = t?;
                let st = proto::tasks::v1::TaskStatus::try_from(t.status)
                    .map(|s| s.as_str_name())
                    .unwrap_or("?");
                out.print(
                    json!({"task_id": id, "txhash": hex::encode_upper(&res.hash), "status": st, "final_state_hash": hex::encode(&t.final_state_hash), "trace_root": hex::encode(&t.trace_root), "note": t.note, "payouts": t.payouts.iter().map(|p| json!({"recipient": p.recipient, "amount": p.amount, "reason": p.reason})).collect::<Vec<_>>()}),
                    || format!("task {id}: {st}: {}\nfinal_state_hash: {}", t.note, hex::encode(&t.final_state_hash)),
                );
                if t.status != proto::tasks::v1::TaskStatus::Finalized as i32 {
                    bail!("task {id} ended as {st}");
                }
            }
        }
        Cmd::Query(q) => query(&out, &dn, &keys, q).await?,
        Cmd::Debug(DebugCmd::Replay { to_height }) => {
            let g = home.read_genesis()?;
            let src = crate::store::Store::open(&home.db_path()).with_context(|| {
                format!(
                    "opening {} (is the node still running?)",
                    home.db_path().display()
                )
            })?;
            let tmp = tempdir_in(&home.root)?;
            let r = crate::replay::replay(&src, &g, &tmp, to_height);
            let _ = std::fs::remove_dir_all(&tmp);
            let r = r?;
            out.print(serde_json::to_value(&r)?, || {
                format!(
                    "replayed {} blocks: every app hash matches; last {} at height {}",
                    r.blocks, r.app_hash, r.last_height
                )
            });
        }
        Cmd::Testnet(crate::testnet::TestnetCmd::InitFiles(o)) => {
            let s = crate::testnet::init_files(&o)?;
            out.print(serde_json::to_value(&s)?, || s.to_text());
        }
        Cmd::Demo(args) if args.scenario == crate::demo::Scenario::Swarm => {
            let json = matches!(out.0, Output::Json);
            let d = crate::swarm_demo::SwarmDemo {
                rounds: args.rounds,
                inner_steps: args.inner_steps,
                block_ms: args.block_ms,
                dir: args.dir.clone(),
                outer_lr: args.outer_lr,
            };
            let r = crate::swarm_demo::run(&d, json).await?;
            let ok = r["mallory_slashed"]
                .as_str()
                .is_some_and(|s| s != "0" && !s.is_empty());
            out.print(r, || {
                if ok {
                    "swarm demo finished: contributions verified and paid for measured improvement; the cheater was slashed".into()
                } else {
                    "swarm demo finished with an unexpected outcome (see above)".into()
                }
            });
            if !ok {
                bail!("the swarm demo did not end as expected");
            }
        }
        Cmd::Demo(args) => {
            let json = matches!(out.0, Output::Json);
            let (r, kept) = crate::demo::run_and_keep(&args, json).await?;
            let ok = r["honest_job"]["status"] == "TASK_STATUS_FINALIZED"
                && r["cheating_job"]["status"] == "TASK_STATUS_FAILED"
                && r["cheating_job"]["localised_to_injected_fault"] == true;
            out.print(r, || {
                if ok {
                    "demo finished: the honest job was verified and paid; the cheat was localised and slashed".into()
                } else {
                    "demo finished with an unexpected outcome (see above)".into()
                }
            });
            if let Some(k) = kept {
                if let Some(u) = k.explorer_url() {
                    eprintln!("explorer at {u} (Ctrl-C to stop)");
                }
                node::shutdown_signal().await;
                k.shutdown().await;
            }
            if !ok {
                bail!("the demo did not end as expected");
            }
        }
        Cmd::Model(ModelCmd::Fetch {
            task_id,
            out: path,
            node,
        }) => {
            let c = NodeClient::connect(node.url(&dn)).await?;
            let t = crate::follow::task(&c, task_id).await?;
            let bytes = crate::follow::fetch_model(&t).await?;
            crate::home::write_atomic(&path, &bytes)?;
            let h = hex::encode(&t.final_state_hash);
            out.print(
                json!({"task_id": task_id, "out": path, "bytes": bytes.len(), "final_state_hash": h}),
                || format!("wrote {} ({} bytes); state hash {h} matches the chain", path.display(), bytes.len()),
            );
        }
    }
    Ok(())
}

async fn swarm_query(out: &Out, dn: &str, q: SwarmQuery) -> Result<()> {
    use proto::swarm::v1 as pb;
    match q {
        SwarmQuery::Swarm { swarm_id, node } => {
            let c = NodeClient::connect(node.url(dn)).await?;
            let s = c
                .swarm()
                .swarm(pb::QuerySwarmRequest { swarm_id })
                .await?
                .into_inner()
                .swarm
                .unwrap_or_default();
            let mut v = serde_json::to_value(&s)?;
            if let Some(o) = v.as_object_mut() {
                o.remove("program_json");
            }
            out.print(v, || {
                let g = s.global.clone().unwrap_or_default();
                let merge = if s.outer_lr > 0.0 {
                    format!("averaging (outer lr {})", s.outer_lr)
                } else {
                    "selection".to_string()
                };
                format!(
                    "swarm {} by {} — round {}/{}{}\nslots {} · inner steps {} · budget {}uvtr per round · escrow {}uvtr · merge by {merge}\nglobal model {} (step {}, from task {})",
                    s.id, s.creator, s.round, s.rounds,
                    if s.status == pb::SwarmStatus::Done as i32 { " (done)" } else { "" },
                    s.slots, s.inner_steps, s.budget_per_round, s.escrow,
                    hex::encode(&g.root), g.step, g.task_id
                )
            });
        }
        SwarmQuery::List { after, limit, node } => {
            let c = NodeClient::connect(node.url(dn)).await?;
            let r = c
                .swarm()
                .swarms(pb::QuerySwarmsRequest { after, limit })
                .await?
                .into_inner();
            let rows: Vec<String> = r
                .swarms
                .iter()
                .map(|s| {
                    format!(
                        "{}\tround {}/{}\tslots {}\tescrow {}uvtr\t{}",
                        s.id, s.round, s.rounds, s.slots, s.escrow, s.creator
                    )
                })
                .collect();
            let mut v = serde_json::to_value(&r.swarms)?;
            if let Some(a) = v.as_array_mut() {
                a.iter_mut()
                    .filter_map(|s| s.as_object_mut())
                    .for_each(|o| {
                        o.remove("program_json");
                    });
            }
            out.print(v, || rows.join("\n"));
        }
        SwarmQuery::Round {
            swarm_id,
            round,
            node,
        } => {
            let c = NodeClient::connect(node.url(dn)).await?;
            let r = c
                .swarm()
                .round(pb::QueryRoundRequest { swarm_id, round })
                .await?
                .into_inner()
                .round
                .unwrap_or_default();
            let loss = |m: &Option<pb::Measurement>| match m {
                Some(m) if m.reported => format!(
                    "{:.4}",
                    m.loss_fixed as f64 / 4_294_967_296.0 / m.loss_bits.len().max(1) as f64
                ),
                Some(m) if !m.task_status.is_empty() => format!("unmeasured ({})", m.task_status),
                Some(_) => "measuring".into(),
                None => "-".into(),
            };
            out.print(serde_json::to_value(&r)?, || {
                let mut s = format!(
                    "round {} of swarm {} — {}\nheld-out loss of G_r: {}\nquality pool {}uvtr, paid {}uvtr{}",
                    r.round,
                    r.swarm_id,
                    swarm::Phase::from_proto(r.phase).map_or("unknown", swarm::Phase::name),
                    loss(&r.base),
                    r.quality_pool,
                    r.quality_paid,
                    if r.merged { format!(", slot {} merged", r.merged_slot) } else { String::new() }
                );
                for c in &r.contributions {
                    s.push_str(&format!(
                        "\n  slot {} {} task {} {}{}: loss {} improvement {} quality {}uvtr",
                        c.slot, c.contributor, c.task_id, c.task_status,
                        if c.duplicate { " (duplicate)" } else { "" },
                        loss(&c.eval), c.improvement, c.quality_paid
                    ));
                }
                if let Some(m) = &r.merge {
                    let status = if m.task_status.is_empty() { "running" } else { &m.task_status };
                    s.push_str(&format!(
                        "\nmerge task {} ({status}, attempt {}) averaging slots {:?}",
                        m.task_id, m.attempts, r.merge_slots
                    ));
                }
                if !r.note.is_empty() {
                    s.push_str(&format!("\nnote: {}", r.note));
                }
                s
            });
        }
        SwarmQuery::Leaderboard {
            swarm_id,
            limit,
            node,
        } => {
            let c = NodeClient::connect(node.url(dn)).await?;
            let r = c
                .swarm()
                .leaderboard(pb::QueryLeaderboardRequest { swarm_id, limit })
                .await?
                .into_inner();
            out.print(serde_json::to_value(&r.entries)?, || {
                r.entries
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        let q = e.quality.parse::<u128>().unwrap_or(0) as f64 / 4_294_967_296.0;
                        format!("{}\t{}\tquality {q:.4} nats\trewards {}uvtr\tcontributions {} ({} improved)", i + 1, e.address, e.rewards, e.contributions, e.improvements)
                    })
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
    }
    Ok(())
}

async fn query(out: &Out, dn: &str, keys: &Keyring, q: QueryCmd) -> Result<()> {
    match q {
        QueryCmd::Bank(BankQuery::Balances { address, node }) => {
            let a = resolve_address(keys, &address)?;
            let c = NodeClient::connect(node.url(dn)).await?;
            let b = c.balance(&a).await?;
            out.print(json!({"address": a.to_string(), "balances": [{"denom": framework::DENOM, "amount": b.0.to_string()}]}), || b.to_string());
        }
        QueryCmd::Bank(BankQuery::TotalSupply { node }) => {
            let c = NodeClient::connect(node.url(dn)).await?;
            let s = c
                .bank()
                .total_supply(proto::bank::v1::QueryTotalSupplyRequest {})
                .await?
                .into_inner();
            let coin = s.supply.unwrap_or_default();
            out.print(json!({"supply": coin}), || {
                format!("{}{}", coin.amount, coin.denom)
            });
        }
        QueryCmd::Staking(StakingQuery::Operator { address, node }) => {
            let a = resolve_address(keys, &address)?;
            let c = NodeClient::connect(node.url(dn)).await?;
            let op = c
                .staking()
                .operator(proto::staking::v1::QueryOperatorRequest {
                    address: a.to_string(),
                })
                .await?
                .into_inner()
                .operator
                .unwrap_or_default();
            out.print(operator_json(&op), || operator_text(&op));
        }
        QueryCmd::Staking(StakingQuery::Operators {
            role,
            limit,
            after,
            node,
        }) => {
            let r = match role.as_str() {
                "all" => proto::staking::v1::Role::Unspecified,
                s => staking::Role::parse(s)
                    .with_context(|| format!("--role {s:?}: expected solver, verifier or all"))?
                    .to_proto(),
            };
            let key = match after {
                Some(a) => resolve_address(keys, &a)?.0.to_vec(),
                None => vec![],
            };
            let c = NodeClient::connect(node.url(dn)).await?;
            let resp = c
                .staking()
                .operators(proto::staking::v1::QueryOperatorsRequest {
                    role: r as i32,
                    pagination: Some(proto::base::v1::PageRequest { key, limit }),
                })
                .await?
                .into_inner();
            let next = resp
                .pagination
                .as_ref()
                .and_then(|p| Address::from_slice(&p.next_key))
                .map(|a| a.to_string());
            out.print(
                json!({"operators": resp.operators.iter().map(operator_json).collect::<Vec<_>>(), "next": next}),
                || {
                    let mut s = resp.operators.iter().map(operator_text).collect::<Vec<_>>().join("\n---\n");
                    if let Some(n) = &next {
                        s.push_str(&format!("\n(more: --after {n})"));
                    }
                    if s.is_empty() {
                        s = "no operators".into();
                    }
                    s
                },
            );
        }
        QueryCmd::Staking(StakingQuery::Params { node }) => {
            let c = NodeClient::connect(node.url(dn)).await?;
            let p = c
                .staking()
                .params(proto::staking::v1::QueryParamsRequest {})
                .await?
                .into_inner()
                .params
                .unwrap_or_default();
            out.print(serde_json::to_value(&p)?, || format!("{p:?}"));
        }
        QueryCmd::Auth(AuthQuery::Account { address, node }) => {
            let a = resolve_address(keys, &address)?;
            let c = NodeClient::connect(node.url(dn)).await?;
            match c.account(&a).await? {
                None => bail!("account {a} does not exist"),
                Some(acc) => out.print(
                    json!({"address": acc.address, "account_number": acc.account_number, "sequence": acc.sequence, "public_key": hex::encode(&acc.public_key)}),
                    || format!("address: {}\naccount_number: {}\nsequence: {}", acc.address, acc.account_number, acc.sequence),
                ),
            }
        }
        QueryCmd::Tasks(TasksQuery::Task { task_id, node }) => {
            let c = NodeClient::connect(node.url(dn)).await?;
            let r = proto::tasks::v1::query_client::QueryClient::new(c.channel())
                .max_decoding_message_size(64 << 20)
                .task(proto::tasks::v1::QueryTaskRequest { task_id })
                .await?
                .into_inner();
            let t = r.task.unwrap_or_default();
            let mut v = serde_json::to_value(&t)?;
            if let Some(o) = v.as_object_mut() {
                o.remove("program_json");
                o.insert("status".into(), json!(tasks::status_name(t.status)));
                o.insert("summary".into(), json!(r.summary));
                for k in [
                    "trace_root",
                    "final_state_hash",
                    "program_hash",
                    "dataset_root",
                ] {
                    let b = match k {
                        "trace_root" => &t.trace_root,
                        "final_state_hash" => &t.final_state_hash,
                        "program_hash" => &t.program_hash,
                        _ => &t.dataset_root,
                    };
                    o.insert(k.into(), json!(hex::encode(b)));
                }
            }
            out.print(v, || {
                let mut s = format!(
                    "task {} — {}\nsubmitter: {}\nreward: {}uvtr, fee: {}uvtr\nverification: {}",
                    t.id, r.summary, t.submitter, t.reward, t.verification_fee, t.guarantee
                );
                if !t.solver.is_empty() {
                    s.push_str(&format!("\nsolver: {}", t.solver));
                }
                if !t.trace_root.is_empty() {
                    s.push_str(&format!(
                        "\ntrace_root: {}\nfinal_state_hash: {}",
                        hex::encode(&t.trace_root),
                        hex::encode(&t.final_state_hash)
                    ));
                }
                for p in &t.payouts {
                    s.push_str(&format!(
                        "\npaid {}uvtr to {} ({})",
                        p.amount, p.recipient, p.reason
                    ));
                }
                s
            });
        }
        QueryCmd::Tasks(TasksQuery::List {
            status,
            limit,
            after,
            node,
        }) => {
            let st = match status.as_deref() {
                None | Some("all") => 0,
                Some(s) => (1..=7)
                    .find(|i| tasks::status_name(*i) == s)
                    .with_context(|| format!("unknown status {s:?}"))?,
            };
            let c = NodeClient::connect(node.url(dn)).await?;
            let r = proto::tasks::v1::query_client::QueryClient::new(c.channel())
                .max_decoding_message_size(64 << 20)
                .tasks(crate::client::tasks_page(st, after, limit))
                .await?
                .into_inner();
            out.print(json!(r.tasks.iter().map(|t| json!({"id": t.id, "status": tasks::status_name(t.status), "submitter": t.submitter, "solver": t.solver, "reward": t.reward, "steps": t.steps})).collect::<Vec<_>>()), || {
                r.tasks.iter().map(|t| format!("{}\t{}\t{} steps\treward {}uvtr\t{}", t.id, tasks::status_name(t.status), t.steps, t.reward, t.solver)).collect::<Vec<_>>().join("\n")
            });
        }
        QueryCmd::Tasks(TasksQuery::Leaderboard { role, limit, node }) => {
            let role = match role.as_str() {
                "all" => proto::staking::v1::Role::Unspecified,
                s => staking::Role::parse(s)
                    .with_context(|| format!("--role {s:?}: expected solver, verifier or all"))?
                    .to_proto(),
            } as i32;
            let c = NodeClient::connect(node.url(dn)).await?;
            let r = proto::tasks::v1::query_client::QueryClient::new(c.channel())
                .max_decoding_message_size(64 << 20)
                .leaderboard(proto::tasks::v1::QueryLeaderboardRequest {
                    pagination: Some(proto::base::v1::PageRequest { key: vec![], limit }),
                    role,
                })
                .await?
                .into_inner();
            out.print(serde_json::to_value(&r.operators)?, || {
                r.operators
                    .iter()
                    .map(|o| format!("{}\tsolved {}\tverified {} steps\tdisputes {}/{} won/lost\trewards {}\tslashed {}", o.operator, o.tasks_solved, o.steps_verified, o.disputes_won, o.disputes_lost, o.rewards, o.slashed))
                    .collect::<Vec<_>>()
                    .join("\n")
            });
        }
        QueryCmd::Swarm(q) => swarm_query(out, dn, q).await?,
        QueryCmd::Verde(VerdeQuery::Dispute { dispute_id, node }) => {
            let c = NodeClient::connect(node.url(dn)).await?;
            let d = proto::verde::v1::query_client::QueryClient::new(c.channel())
                .dispute(proto::verde::v1::QueryDisputeRequest { dispute_id })
                .await?
                .into_inner()
                .dispute
                .unwrap_or_default();
            let mut v = serde_json::to_value(&d)?;
            if let Some(o) = v.as_object_mut() {
                o.insert("phase".into(), json!(verde::phase_name(d.phase)));
                o.remove("inputs");
            }
            out.print(v, || {
                let mut s = format!(
                    "dispute {} on task {} — phase {}\nchallenger: {}\nsolver: {}\nsteps ({}, {}], node {} ({}), {} rounds\n{}",
                    d.id, d.task_id, verde::phase_name(d.phase), d.challenger, d.solver, d.lo, d.hi, d.node, d.op_kind, d.rounds, d.outcome
                );
                if d.out_len > 0 {
                    // The game went inside node j (too costly for the referee whole).
                    s.push_str(&format!(
                        "\ninside node {}: output bytes {}..{}, element {}, fold ({}, {}]",
                        d.node,
                        d.out_offset,
                        d.out_offset + d.out_len,
                        d.element,
                        d.fold_lo,
                        d.fold_hi
                    ));
                }
                for m in &d.transcript {
                    s.push_str(&format!("\n  h{} {}: {}", m.height, m.actor, m.action));
                }
                s
            });
        }
        QueryCmd::Tx { hash, node } => {
            let h =
                hex::decode(hash.trim()).with_context(|| format!("hash {hash:?} is not hex"))?;
            let c = NodeClient::connect(node.url(dn)).await?;
            let r = c
                .node()
                .get_tx(proto::node::v1::GetTxRequest { hash: h })
                .await?
                .into_inner()
                .result
                .unwrap_or_default();
            let mut v = serde_json::to_value(&r)?;
            v["hash"] = json!(hex::encode_upper(&r.hash));
            out.print(v, || {
                format!(
                    "height: {}\ncode: {} {}\nlog: {}",
                    r.height, r.code, r.codespace, r.log
                )
            });
        }
    }
    Ok(())
}

/// Loads a program by builtin name or from a JSON file, with an optional
/// step override, and returns its JSON.
pub fn load_program(spec: &str, steps: Option<u64>) -> Result<(train::Program, Vec<u8>)> {
    let mut p = match train::Program::builtin(spec) {
        Ok(p) => p,
        Err(_) => {
            let text = std::fs::read_to_string(spec).with_context(|| format!("--program {spec:?} is neither a builtin (mlp-digits, tiny-lm, gated-digits) nor a readable file"))?;
            train::Program::from_json(&text).with_context(|| format!("program file {spec}"))?
        }
    };
    if let Some(s) = steps {
        p.steps = s;
    }
    p.validate().context("program")?;
    let json = serde_json::to_vec(&p)?;
    Ok((p, json))
}

fn hex32(s: &str, what: &str) -> Result<Vec<u8>> {
    let b = hex::decode(s.trim()).with_context(|| format!("{what} is not hex"))?;
    if b.len() != 32 {
        bail!("{what} is {} bytes, expected 32", b.len());
    }
    Ok(b)
}

fn staking_tx(keys: &Keyring, s: StakingTx) -> Result<(TxArgs, prost_types::Any, String)> {
    Ok(match s {
        StakingTx::Register { role, stake, tx } => {
            let r = staking::Role::parse(&role)
                .with_context(|| format!("--role {role:?}: expected solver or verifier"))?;
            let amt = parse_amount(&stake)?;
            let signer = keys.signer(&tx.from)?;
            let m = testkit::register_msg(&signer.address(), r, amt);
            (
                tx,
                m,
                format!(
                    "register {} as {} with stake {amt}",
                    signer.address(),
                    r.as_str()
                ),
            )
        }
        StakingTx::AddStake { amount, tx } => {
            let amt = parse_amount(&amount)?;
            let signer = keys.signer(&tx.from)?;
            (
                tx,
                testkit::add_stake_msg(&signer.address(), amt),
                format!("add stake {amt}"),
            )
        }
        StakingTx::Unbond { amount, tx } => {
            let amt = parse_amount(&amount)?;
            let signer = keys.signer(&tx.from)?;
            (
                tx,
                testkit::unbond_msg(&signer.address(), amt),
                format!("unbond {amt}"),
            )
        }
    })
}

/// Keeps a submission's seed secret under the home for `tx tasks
/// reveal-seed`, and says what to do with it.
fn keep_seed(
    home: &Home,
    res: Option<&proto::node::v1::TxResult>,
    secret: [u8; 32],
    from: &str,
) -> Result<()> {
    let Some(id) = res.and_then(crate::follow::task_id_from) else {
        eprintln!(
            "the verifier draw waits for the seed secret {}: once the task is committed, run \
             `veritraind tx tasks reveal-seed TASK_ID --secret <that hex> --from {from}`",
            hex::encode(secret)
        );
        return Ok(());
    };
    let p = home.seed_path(id);
    if let Some(dir) = p.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    crate::home::write_atomic(&p, hex::encode(secret).as_bytes())?;
    eprintln!(
        "task {id}: once the solver has committed, reveal the seed so the verifiers are drawn: \
         `veritraind tx tasks reveal-seed {id} --from {from}` (secret kept in {}; without a reveal \
         the draw falls back to a block hash after the reveal window)",
        p.display()
    );
    Ok(())
}

/// `seed_secret`: with `submit`, commit to this secret's SHA-256 (the
/// caller reveals it after the commit).
fn tasks_tx(
    keys: &Keyring,
    home: &Home,
    t: TasksTx,
    seed_secret: Option<[u8; 32]>,
) -> Result<(TxArgs, prost_types::Any, String)> {
    use proto::tasks::v1 as pb;
    Ok(match t {
        TasksTx::Submit {
            program,
            steps,
            reward,
            verification_fee,
            dataset_file,
            dataset_url,
            verification,
            sample_bps,
            tx,
            ..
        } => {
            let signer = keys.signer(&tx.from)?;
            let (mut p, mut json) = load_program(&program, steps)?;
            if let Some(url) = dataset_url {
                p.dataset.name = url;
                json = serde_json::to_vec(&p)?;
            }
            let (r, f) = (parse_amount(&reward)?, parse_amount(&verification_fee)?);
            let m = proto::to_any(&pb::MsgSubmitTask {
                submitter: signer.address().to_string(),
                program_json: json,
                reward: Some(testkit::coin(r)),
                verification_fee: Some(testkit::coin(f)),
                dataset: match &dataset_file {
                    None => None,
                    Some(path) => {
                        let d = train::Dataset::load(path, Some(&p.dataset.root))
                            .with_context(|| format!("dataset file {}", path.display()))?;
                        let h = d.header();
                        Some(pb::DatasetInfo {
                            schema: h.schema.name().into(),
                            rows: h.rows,
                            row_bytes: h.row_bytes,
                            chunk_rows: h.chunk_rows,
                        })
                    }
                },
                verification_level: if verification == "sampled" {
                    pb::VerificationLevel::Sampled as i32
                } else {
                    pb::VerificationLevel::Full as i32
                },
                sample_bps: if verification == "sampled" {
                    sample_bps
                } else {
                    0
                },
                seed_commitment: seed_secret
                    .map(|x| <sha2::Sha256 as sha2::Digest>::digest(x).to_vec())
                    .unwrap_or_default(),
            });
            (
                tx,
                m,
                format!(
                    "submit {} ({} steps) with reward {r} and fee {f}",
                    p.name, p.steps
                ),
            )
        }
        TasksTx::Cancel { task_id, tx } => {
            let a = keys.signer(&tx.from)?.address().to_string();
            (
                tx,
                proto::to_any(&pb::MsgCancelTask {
                    submitter: a,
                    task_id,
                }),
                format!("cancel task {task_id}"),
            )
        }
        TasksTx::Claim {
            task_id,
            endpoint,
            tx,
        } => {
            let a = keys.signer(&tx.from)?.address().to_string();
            (
                tx,
                proto::to_any(&pb::MsgClaimTask {
                    solver: a,
                    task_id,
                    endpoint,
                }),
                format!("claim task {task_id}"),
            )
        }
        TasksTx::Commit {
            task_id,
            trace_root,
            final_state_hash,
            tx,
        } => {
            let a = keys.signer(&tx.from)?.address().to_string();
            let m = pb::MsgCommitResult {
                solver: a,
                task_id,
                trace_root: hex32(&trace_root, "--trace-root")?,
                final_state_hash: hex32(&final_state_hash, "--final-state-hash")?,
            };
            (
                tx,
                proto::to_any(&m),
                format!("commit the result of task {task_id}"),
            )
        }
        TasksTx::RevealSeed {
            task_id,
            secret,
            tx,
        } => {
            let a = keys.signer(&tx.from)?.address().to_string();
            let hex_secret = match secret {
                Some(s) => s,
                None => {
                    let p = home.seed_path(task_id);
                    std::fs::read_to_string(&p).with_context(|| {
                        format!(
                            "no kept secret for task {task_id} at {} (give --secret)",
                            p.display()
                        )
                    })?
                }
            };
            let secret = hex::decode(hex_secret.trim())
                .ok()
                .filter(|h| h.len() == 32)
                .context("the seed secret must be 32 bytes of hex")?;
            (
                tx,
                proto::to_any(&pb::MsgRevealSeed {
                    submitter: a,
                    task_id,
                    secret,
                }),
                format!("reveal the seed of task {task_id}"),
            )
        }
        TasksTx::Attest {
            task_id,
            steps_checked,
            evidence_hash,
            evidence_proof,
            tx,
        } => {
            let a = keys.signer(&tx.from)?.address().to_string();
            if evidence_hash.len() != evidence_proof.len() {
                bail!(
                    "{} --evidence-hash but {} --evidence-proof: give one proof per hash",
                    evidence_hash.len(),
                    evidence_proof.len()
                );
            }
            let evidence = evidence_hash
                .iter()
                .zip(&evidence_proof)
                .map(|(h, p)| {
                    let h = hex::decode(h.trim())
                        .ok()
                        .filter(|h| h.len() == 32)
                        .context("--evidence-hash must be 32 bytes of hex")?;
                    Ok(pb::StepEvidence {
                        state_hash: h,
                        proof: Some(proof_file(p)?),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            (
                tx,
                proto::to_any(&pb::MsgAttest {
                    verifier: a,
                    task_id,
                    steps_checked,
                    evidence,
                }),
                format!("attest task {task_id}"),
            )
        }
    })
}

fn proof_file(p: &std::path::Path) -> Result<proto::verde::v1::MerkleProof> {
    let text = std::fs::read_to_string(p).with_context(|| format!("proof file {}", p.display()))?;
    let pr: train::merkle::Proof = serde_json::from_str(&text)
        .with_context(|| format!("proof file {} is not a Merkle proof", p.display()))?;
    Ok(proto::verde::v1::MerkleProof {
        index: pr.index,
        leaf_count: pr.leaf_count,
        siblings: pr.siblings.iter().map(|s| s.to_vec()).collect(),
    })
}

#[derive(serde::Deserialize)]
struct EntryJson {
    name: String,
    tensor_hash: String,
    proof: train::merkle::Proof,
}

async fn swarm_tx(
    keys: &Keyring,
    home: &Home,
    t: SwarmTx,
) -> Result<(TxArgs, prost_types::Any, String)> {
    use proto::swarm::v1 as pb;
    Ok(match t {
        SwarmTx::Create {
            program,
            rounds,
            slots,
            inner_steps,
            eval_steps,
            eval_batch,
            budget_per_round,
            contribution_reward,
            evaluation_reward,
            verification_fee,
            min_stake,
            pool,
            outer_lr,
            tx,
        } => {
            let signer = keys.signer(&tx.from)?;
            let pools = pool
                .iter()
                .map(|path| {
                    let d = train::Dataset::load(path, None)
                        .with_context(|| format!("--pool {}", path.display()))?;
                    let h = d.header();
                    Ok(pb::DataSource {
                        name: path.display().to_string(),
                        root: d.root().to_vec(),
                        layout: Some(proto::tasks::v1::DatasetInfo {
                            schema: h.schema.name().into(),
                            rows: h.rows,
                            row_bytes: h.row_bytes,
                            chunk_rows: h.chunk_rows,
                        }),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let (mut p, _) = load_program(&program, None)?;
            // Swarm programs record each step's loss (what evaluations prove).
            p.record_loss = true;
            // A seed chain: each round's evaluation seed comes from a link revealed
            // after the contributions (`tx swarm reveal-seed`), not from a block hash.
            let secret = rand::random::<[u8; 32]>();
            let head = swarm::msg::seed_chain(&secret, rounds);
            let path = home.swarm_seed_path(&head);
            if let Some(d) = path.parent() {
                std::fs::create_dir_all(d)?;
            }
            crate::home::write_atomic(&path, hex::encode(secret).as_bytes())?;
            let m = pb::MsgCreateSwarm {
                creator: signer.address().to_string(),
                program_json: serde_json::to_vec(&p)?,
                rounds,
                slots,
                inner_steps,
                eval_steps,
                eval_batch,
                budget_per_round: parse_amount(&budget_per_round)?.0.to_string(),
                contribution_reward: parse_amount(&contribution_reward)?.0.to_string(),
                evaluation_reward: parse_amount(&evaluation_reward)?.0.to_string(),
                verification_fee: parse_amount(&verification_fee)?.0.to_string(),
                min_stake: parse_amount(&min_stake)?.0.to_string(),
                dataset: None,
                seed_commitment: head.to_vec(),
                pools,
                outer_lr,
            };
            let what = format!(
                "create a swarm of {rounds} rounds x {slots} slots (seed chain kept in {})",
                path.display()
            );
            (tx, proto::to_any(&m), what)
        }
        SwarmTx::RevealSeed { swarm_id, node, tx } => {
            let signer = keys.signer(&tx.from)?;
            let c = NodeClient::connect(&node).await?;
            let sw = c
                .swarm()
                .swarm(pb::QuerySwarmRequest { swarm_id })
                .await?
                .into_inner()
                .swarm
                .with_context(|| format!("no swarm {swarm_id}"))?;
            let head: [u8; 32] = sw
                .seed_chain
                .as_slice()
                .try_into()
                .with_context(|| format!("swarm {swarm_id} has no seed chain"))?;
            let link = home
                .swarm_seeds()
                .iter()
                .find_map(|s| swarm::msg::link_for(s, sw.rounds, &head))
                .with_context(|| {
                    format!("no secret under --home whose chain reaches swarm {swarm_id}'s head")
                })?;
            let m = pb::MsgRevealEvalSeed {
                creator: signer.address().to_string(),
                swarm_id,
                round: sw.round,
                secret: link.to_vec(),
            };
            (
                tx,
                proto::to_any(&m),
                format!("reveal round {}'s seed of swarm {swarm_id}", sw.round),
            )
        }
        SwarmTx::Join {
            swarm_id,
            round,
            endpoint,
            node,
            tx,
        } => {
            let signer = keys.signer(&tx.from)?;
            let round = match round {
                Some(r) => r,
                None => {
                    let c = NodeClient::connect(&node).await?;
                    c.swarm()
                        .swarm(pb::QuerySwarmRequest { swarm_id })
                        .await?
                        .into_inner()
                        .swarm
                        .map(|s| s.round)
                        .unwrap_or_default()
                }
            };
            let m = pb::MsgJoinRound {
                contributor: signer.address().to_string(),
                swarm_id,
                round,
                endpoint,
                dataset: None,
            };
            (
                tx,
                proto::to_any(&m),
                format!("join round {round} of swarm {swarm_id}"),
            )
        }
    })
}

fn verde_tx(keys: &Keyring, v: VerdeTx) -> Result<(TxArgs, prost_types::Any, String)> {
    use proto::verde::v1 as pb;
    let me = |tx: &TxArgs| -> Result<String> { Ok(keys.signer(&tx.from)?.address().to_string()) };
    Ok(match v {
        VerdeTx::Open {
            task_id,
            bond,
            lo,
            h_lo,
            proof_lo,
            hi,
            h_hi,
            proof_hi,
            tx,
        } => {
            let b = parse_amount(&bond)?;
            let m = pb::MsgOpenDispute {
                challenger: me(&tx)?,
                task_id,
                bond: Some(testkit::coin(b)),
                lo,
                h_lo: hex32(&h_lo, "--h-lo")?,
                proof_lo: Some(proof_file(&proof_lo)?),
                hi,
                h_hi: hex32(&h_hi, "--h-hi")?,
                proof_hi: Some(proof_file(&proof_hi)?),
                trace_root: vec![],
            };
            (
                tx,
                proto::to_any(&m),
                format!("open a dispute on task {task_id}, steps ({lo}, {hi}], bond {b}"),
            )
        }
        VerdeTx::RevealMid {
            dispute_id,
            h_mid,
            proof,
            tx,
        } => {
            let m = pb::MsgRevealMid {
                solver: me(&tx)?,
                dispute_id,
                h_mid: hex32(&h_mid, "--h-mid")?,
                proof: Some(proof_file(&proof)?),
            };
            (
                tx,
                proto::to_any(&m),
                format!("reveal the midpoint of dispute {dispute_id}"),
            )
        }
        VerdeTx::Respond {
            dispute_id,
            agree,
            tx,
        } => {
            let m = pb::MsgRespond {
                challenger: me(&tx)?,
                dispute_id,
                agree,
            };
            (
                tx,
                proto::to_any(&m),
                format!(
                    "{} in dispute {dispute_id}",
                    if agree { "agree" } else { "disagree" }
                ),
            )
        }
        VerdeTx::PostOpRoot {
            dispute_id,
            op_root,
            tx,
        } => {
            let m = pb::MsgPostOpRoot {
                sender: me(&tx)?,
                dispute_id,
                op_root: hex32(&op_root, "OP_ROOT")?,
            };
            (
                tx,
                proto::to_any(&m),
                format!("post an op root in dispute {dispute_id}"),
            )
        }
        VerdeTx::RevealChildren {
            dispute_id,
            left,
            right,
            tx,
        } => {
            let r = if right.is_empty() {
                vec![]
            } else {
                hex32(&right, "RIGHT")?
            };
            let m = pb::MsgRevealChildren {
                sender: me(&tx)?,
                dispute_id,
                left: hex32(&left, "LEFT")?,
                right: r,
            };
            (
                tx,
                proto::to_any(&m),
                format!("reveal children in dispute {dispute_id}"),
            )
        }
        VerdeTx::ProveAssembly {
            dispute_id,
            entries,
            tx,
        } => {
            let text = std::fs::read_to_string(&entries)
                .with_context(|| format!("entries file {}", entries.display()))?;
            let es: Vec<EntryJson> = serde_json::from_str(&text).context("entries file")?;
            let entries = es
                .into_iter()
                .map(|e| {
                    Ok(pb::StateEntry {
                        tensor_hash: hex32(&e.tensor_hash, &e.name)?,
                        name: e.name,
                        proof: Some(pb::MerkleProof {
                            index: e.proof.index,
                            leaf_count: e.proof.leaf_count,
                            siblings: e.proof.siblings.iter().map(|s| s.to_vec()).collect(),
                        }),
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            let m = pb::MsgProveAssembly {
                solver: me(&tx)?,
                dispute_id,
                entries,
            };
            (
                tx,
                proto::to_any(&m),
                format!("prove the state assembly in dispute {dispute_id}"),
            )
        }
        VerdeTx::UploadRows {
            dispute_id,
            rows,
            tx,
        } => {
            let text = std::fs::read_to_string(&rows)
                .with_context(|| format!("rows file {}", rows.display()))?;
            let list: Vec<train::RowProof> = serde_json::from_str(&text).context("rows file")?;
            let n = list.len();
            let rows = list
                .into_iter()
                .map(|r| pb::RowProof {
                    row: r.row,
                    chunk: r.chunk,
                    proof: Some(pb::MerkleProof {
                        index: r.proof.index,
                        leaf_count: r.proof.leaf_count,
                        siblings: r.proof.siblings.iter().map(|s| s.to_vec()).collect(),
                    }),
                })
                .collect();
            let m = pb::MsgUploadRows {
                solver: me(&tx)?,
                dispute_id,
                rows,
            };
            (
                tx,
                proto::to_any(&m),
                format!("upload {n} dataset rows in dispute {dispute_id}"),
            )
        }
        VerdeTx::Upload {
            dispute_id,
            input,
            offset,
            data,
            proof,
            tx,
        } => {
            let bytes =
                std::fs::read(&data).with_context(|| format!("data file {}", data.display()))?;
            let proof = proof.as_deref().map(proof_file).transpose()?;
            let n = bytes.len();
            let m = pb::MsgUploadInput {
                solver: me(&tx)?,
                dispute_id,
                input,
                offset,
                data: bytes,
                proof,
            };
            (
                tx,
                proto::to_any(&m),
                format!("upload {n} bytes of input {input} in dispute {dispute_id}"),
            )
        }
    })
}

fn tempdir_in(root: &std::path::Path) -> Result<PathBuf> {
    let p = root.join(format!("data/replay-{}", std::process::id()));
    if p.exists() {
        std::fs::remove_dir_all(&p)?;
    }
    Ok(p)
}

fn operator_json(op: &proto::staking::v1::Operator) -> serde_json::Value {
    let role = staking::Role::from_proto(op.role)
        .map(|r| r.as_str())
        .unwrap_or("unknown");
    json!({
        "address": op.address, "role": role, "stake": op.stake,
        "unbonding": op.unbonding.iter().map(|u| json!({"amount": u.amount, "completion_height": u.completion_height})).collect::<Vec<_>>(),
        "slashed_total": op.slashed_total, "registered_height": op.registered_height,
    })
}

fn operator_text(op: &proto::staking::v1::Operator) -> String {
    let role = staking::Role::from_proto(op.role)
        .map(|r| r.as_str())
        .unwrap_or("unknown");
    let mut s = format!(
        "address: {}\nrole: {role}\nstake: {}uvtr\nslashed: {}uvtr\nregistered at: {}",
        op.address, op.stake, op.slashed_total, op.registered_height
    );
    for u in &op.unbonding {
        s.push_str(&format!(
            "\nunbonding: {}uvtr until height {}",
            u.amount, u.completion_height
        ));
    }
    s
}
