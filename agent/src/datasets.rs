//! Task inputs by content: a program names its dataset (a builtin name, an
//! `http(s)://` URL, a `grpc://host:port` blob service of another daemon, or
//! a local path when the operator allows a directory) and commits to its
//! Merkle root; whatever is fetched is checked against that root before use
//! and cached under the root's hex. A fine-tuning program's initial state
//! (`init_state`) is fetched from the same kinds of source, checked against
//! its state hash and cached beside the datasets (`<root>.vtstate`).
//!
//! The names come from strangers (submitters), so every fetch runs under a
//! [`Policy`]: a time limit, a size limit, and no local file outside the one
//! directory the operator allowed. [`Fetcher::ready`] never waits: it starts a
//! fetch in the background and answers "pending" until it is done, so no
//! dataset can hold up a daemon's block loop.
use crate::{lock, AgentError};
use proto::solver::v1::{solver_client::SolverClient, DatasetRequest};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use train::step::State;
use train::{Dataset, Program};

/// What a daemon may do to fetch a dataset a task names.
#[derive(Clone, Debug)]
pub struct Policy {
    /// Local paths are read only below this directory (none: never).
    pub allow_dir: Option<PathBuf>,
    /// Largest dataset fetched, in bytes.
    pub max_bytes: u64,
    /// Time limit for one fetch (connect, transfer, everything).
    pub timeout: Duration,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            allow_dir: None,
            max_bytes: 1 << 30,
            timeout: Duration::from_secs(60),
        }
    }
}

/// The daemons' dataset flags (shared by solverd and verifierd, hence the
/// `VERITRAIN_` environment names).
#[derive(Clone, Debug, clap::Args)]
pub struct DatasetArgs {
    /// Allow tasks to name local dataset files below this directory (none:
    /// only http(s):// and grpc:// sources, and builtins).
    #[arg(long, env = "VERITRAIN_ALLOW_DATASET_DIR")]
    pub allow_dataset_dir: Option<PathBuf>,
    /// Largest dataset this daemon fetches, in bytes.
    #[arg(long, env = "VERITRAIN_DATASET_MAX_BYTES", default_value_t = 1 << 30)]
    pub dataset_max_bytes: u64,
    /// Time limit for one dataset fetch, in seconds.
    #[arg(long, env = "VERITRAIN_DATASET_TIMEOUT_SECS", default_value_t = 60)]
    pub dataset_timeout_secs: u64,
}

impl Default for DatasetArgs {
    fn default() -> Self {
        DatasetArgs {
            allow_dataset_dir: None,
            dataset_max_bytes: 1 << 30,
            dataset_timeout_secs: 60,
        }
    }
}

impl DatasetArgs {
    pub fn policy(&self) -> Policy {
        Policy {
            allow_dir: self.allow_dataset_dir.clone(),
            max_bytes: self.dataset_max_bytes,
            timeout: Duration::from_secs(self.dataset_timeout_secs.max(1)),
        }
    }
}

/// Where a dataset stands for [`Fetcher::ready`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    Pending,
    Failed(String),
}

/// Background dataset fetches for one daemon, under one policy and cache.
pub struct Fetcher {
    pub policy: Policy,
    pub cache_dir: PathBuf,
    state: Mutex<BTreeMap<[u8; 32], Readiness>>,
}

impl Fetcher {
    pub fn new(policy: Policy, cache_dir: PathBuf) -> Arc<Fetcher> {
        Arc::new(Fetcher {
            policy,
            cache_dir,
            state: Mutex::new(BTreeMap::new()),
        })
    }

    /// The program's dataset, waiting for it (under the policy's limits).
    pub async fn resolve(&self, program: &Program) -> Result<Dataset, AgentError> {
        resolve_with(program, &self.cache_dir, &self.policy).await
    }

    /// The program's initial state if it fine-tunes one (`init_state`), waiting for
    /// it (under the policy's limits); `None` for a program that starts from its seed.
    pub async fn resolve_initial(&self, program: &Program) -> Result<Option<State>, AgentError> {
        resolve_initial_with(program, &self.cache_dir, &self.policy).await
    }

    /// Whether `program`'s inputs (its dataset and any initial state) are at hand,
    /// without waiting: the first call starts background fetches and says `Pending`;
    /// a failed fetch is remembered (and not retried by this process: the name is
    /// the submitter's, who can submit another task).
    pub fn ready(self: &Arc<Self>, program: &Program) -> Readiness {
        let mut all = vec![self.ready_one(program, program.dataset.root, Input::Dataset)];
        if let Some(init) = &program.init_state {
            all.push(self.ready_one(program, init.root, Input::State));
        }
        // A merge's inputs, each as the fine-tune of it would fetch it.
        for (i, input) in program.inputs.iter().enumerate() {
            all.push(self.ready_one(program, input.root, Input::Merged(i)));
        }
        if let Some(e) = all.iter().find_map(|r| match r {
            Readiness::Failed(e) => Some(e.clone()),
            _ => None,
        }) {
            return Readiness::Failed(e);
        }
        if all.iter().all(|r| matches!(r, Readiness::Ready)) {
            Readiness::Ready
        } else {
            Readiness::Pending
        }
    }

    fn ready_one(self: &Arc<Self>, program: &Program, root: [u8; 32], what: Input) -> Readiness {
        // Known answers first: this runs for every open task every block.
        let mut st = lock(&self.state);
        if let Some(r) = st.get(&root) {
            return r.clone();
        }
        let at_hand = match what {
            Input::Dataset => {
                Dataset::builtin(&program.dataset.name).is_ok_and(|d| d.root() == root)
                    || cache_path(&self.cache_dir, &root).exists()
            }
            // A `seed:` state is computed and checked in the background like a fetch.
            Input::State | Input::Merged(_) => state_cache_path(&self.cache_dir, &root).exists(),
        };
        if at_hand {
            st.insert(root, Readiness::Ready);
            return Readiness::Ready;
        }
        st.insert(root, Readiness::Pending);
        let (me, program) = (self.clone(), program.clone());
        tokio::spawn(async move {
            let got = match what {
                Input::Dataset => me.resolve(&program).await.map(|_| ()),
                Input::State => me.resolve_initial(&program).await.map(|_| ()),
                Input::Merged(i) => match program.input_program(i) {
                    Some(p) => me.resolve_initial(&p).await.map(|_| ()),
                    None => Err(AgentError::Invalid(format!("merge input {i}"))),
                },
            };
            let r = match got {
                Ok(()) => Readiness::Ready,
                Err(e) => {
                    tracing::warn!(program = %program.name, input = ?what, error = %e, "task input fetch failed");
                    Readiness::Failed(e.to_string())
                }
            };
            lock(&me.state).insert(root, r);
        });
        Readiness::Pending
    }
}

/// The kinds of task input fetched by content.
#[derive(Clone, Copy, Debug)]
enum Input {
    Dataset,
    State,
    /// Input `i` of a merge (fetched as the fine-tune of it would be).
    Merged(usize),
}

/// The initial state of a fine-tuning `program` (its `init_state`) or of a merge (its
/// inputs, each fetched and checked as a fine-tune of it would be, under their
/// prefixes) under `policy`, from the cache in `cache_dir` or its source; `None` for
/// a seed program.
pub async fn resolve_initial_with(
    program: &Program,
    cache_dir: &Path,
    policy: &Policy,
) -> Result<Option<State>, AgentError> {
    if program.is_merge() {
        let mut parts = Vec::with_capacity(program.inputs.len());
        for i in 0..program.inputs.len() {
            let p = program
                .input_program(i)
                .ok_or_else(|| AgentError::Invalid(format!("merge input {i}")))?;
            let part = resolve_committed(&p, cache_dir, policy)
                .await?
                .ok_or_else(|| AgentError::Invalid(format!("merge input {i} has no state")))?;
            parts.push(part);
        }
        return Ok(Some(train::checkpoint::merge_inputs(program, parts)?));
    }
    resolve_committed(program, cache_dir, policy).await
}

/// [`resolve_initial_with`] of a program's `init_state`.
async fn resolve_committed(
    program: &Program,
    cache_dir: &Path,
    policy: &Policy,
) -> Result<Option<State>, AgentError> {
    let Some(init) = &program.init_state else {
        return Ok(None);
    };
    if init.name.starts_with(train::trainer::SEED_SOURCE) {
        let p = program.clone();
        return tokio::task::spawn_blocking(move || train::trainer::seeded_initial(&p))
            .await
            .map_err(|e| AgentError::Invalid(e.to_string()))?
            .map_err(AgentError::from);
    }
    let shapes: BTreeMap<String, Vec<usize>> = program
        .state_spec()?
        .into_iter()
        .map(|(k, (shape, _))| (k, shape))
        .collect();
    let decode = |b: &[u8]| train::checkpoint::decode_initial(program, &shapes, b);
    let cached = state_cache_path(cache_dir, &init.root);
    if let Ok(b) = std::fs::read(&cached) {
        match decode(&b) {
            Ok(s) => return Ok(Some(s)),
            Err(e) => {
                tracing::warn!(path = %cached.display(), error = %e, "cached initial state is bad; fetching again")
            }
        }
    }
    // A state is as large as the program says, whatever the dataset limit: the
    // bound comes from its shapes.
    let state_policy = Policy {
        max_bytes: train::checkpoint::max_file_bytes(&shapes),
        ..policy.clone()
    };
    let bytes = fetch_source(&init.name, &init.root, &state_policy).await?;
    let state = decode(&bytes).map_err(|e| AgentError::Dataset(format!("{}: {e}", init.name)))?;
    std::fs::create_dir_all(cache_dir).map_err(|e| AgentError::io(cache_dir, e))?;
    crate::write_file_atomic(&cached, &bytes)?;
    tracing::info!(source = %init.name, root = %hex::encode(init.root), bytes = bytes.len(), "initial state fetched and checked");
    Ok(Some(state))
}

/// A dataset of one's own (e.g. a swarm contributor's training data), from an
/// `http(s)://` URL or an allowed local path, whatever its root; cached by its root
/// under `cache_dir`, where this daemon's blob service serves it to others.
pub async fn load_own(
    name: &str,
    cache_dir: &Path,
    policy: &Policy,
) -> Result<Dataset, AgentError> {
    if name.starts_with("grpc://") {
        return Err(AgentError::Dataset(format!(
            "{name}: one's own dataset is a URL or a local path, not a blob service"
        )));
    }
    let bytes = fetch_source(name, &[0; 32], policy).await?;
    let d = Dataset::from_bytes(&bytes, None)
        .map_err(|e| AgentError::Dataset(format!("{name}: {e}")))?;
    std::fs::create_dir_all(cache_dir).map_err(|e| AgentError::io(cache_dir, e))?;
    crate::write_file_atomic(&cache_path(cache_dir, &d.root()), &bytes)?;
    Ok(d)
}

/// Where a fetched initial state (a safetensors file) is cached.
pub fn state_cache_path(dir: &Path, root: &[u8; 32]) -> PathBuf {
    dir.join(format!("{}.vtstate", hex::encode(root)))
}

fn cache_path(dir: &Path, root: &[u8; 32]) -> PathBuf {
    dir.join(format!("{}.vtds", hex::encode(root)))
}

/// The dataset of `program`, from the cache in `cache_dir` or its source,
/// under the default [`Policy`] (no local files).
pub async fn resolve(program: &Program, cache_dir: &Path) -> Result<Dataset, AgentError> {
    resolve_with(program, cache_dir, &Policy::default()).await
}

/// The dataset of `program` under `policy`.
pub async fn resolve_with(
    program: &Program,
    cache_dir: &Path,
    policy: &Policy,
) -> Result<Dataset, AgentError> {
    let r = &program.dataset;
    let root = r.root;
    if let Ok(d) = Dataset::builtin(&r.name) {
        if d.root() == root {
            return Ok(d);
        }
        return Err(AgentError::Dataset(format!(
            "builtin dataset {} has root {}, the program wants {}",
            r.name,
            hex::encode(d.root()),
            hex::encode(root)
        )));
    }
    let cached = cache_path(cache_dir, &root);
    if cached.exists() {
        match Dataset::load(&cached, Some(&root)) {
            Ok(d) => return Ok(d),
            Err(e) => {
                tracing::warn!(path = %cached.display(), error = %e, "cached dataset is bad; fetching again")
            }
        }
    }
    let name = r.name.as_str();
    let bytes = fetch_source(name, &root, policy).await?;
    let d = Dataset::from_bytes(&bytes, Some(&root))
        .map_err(|e| AgentError::Dataset(format!("{name}: {e}")))?;
    std::fs::create_dir_all(cache_dir).map_err(|e| AgentError::io(cache_dir, e))?;
    crate::write_file_atomic(&cached, &bytes)?;
    tracing::info!(dataset = name, root = %hex::encode(root), bytes = bytes.len(), "dataset fetched and checked");
    Ok(d)
}

/// The bytes `name` points to (a `grpc://` blob service asked for `root`, an
/// `http(s)://` URL, or an allowed local file), within the policy's time and size.
/// The caller checks them against `root`.
async fn fetch_source(name: &str, root: &[u8; 32], policy: &Policy) -> Result<Vec<u8>, AgentError> {
    let fetch = async {
        if let Some(addr) = name.strip_prefix("grpc://") {
            fetch_grpc(&format!("http://{addr}"), root, policy.max_bytes).await
        } else if name.starts_with("http://") || name.starts_with("https://") {
            fetch_http(name, policy.max_bytes).await
        } else {
            read_local(name, policy)
        }
    };
    tokio::time::timeout(policy.timeout, fetch)
        .await
        .map_err(|_| {
            AgentError::Dataset(format!(
                "{name}: no complete answer within {:?}",
                policy.timeout
            ))
        })?
}

/// A local file, only below the operator's allowed directory.
fn read_local(name: &str, policy: &Policy) -> Result<Vec<u8>, AgentError> {
    let p = Path::new(name.strip_prefix("file://").unwrap_or(name));
    let Some(dir) = &policy.allow_dir else {
        return Err(AgentError::Dataset(format!(
            "{name}: local dataset paths are not allowed (the operator can allow a directory with --allow-dataset-dir)"
        )));
    };
    let dir = dir.canonicalize().map_err(|e| AgentError::io(dir, e))?;
    let full = p.canonicalize().map_err(|e| AgentError::io(p, e))?;
    if !full.starts_with(&dir) {
        return Err(AgentError::Dataset(format!(
            "{name}: outside the allowed dataset directory {}",
            dir.display()
        )));
    }
    let len = std::fs::metadata(&full)
        .map_err(|e| AgentError::io(&full, e))?
        .len();
    if len > policy.max_bytes {
        return Err(AgentError::Dataset(format!(
            "{name}: {len} bytes, over the {}-byte limit",
            policy.max_bytes
        )));
    }
    std::fs::read(&full).map_err(|e| AgentError::io(&full, e))
}

async fn fetch_grpc(url: &str, root: &[u8; 32], max: u64) -> Result<Vec<u8>, AgentError> {
    let mut c = SolverClient::connect(url.to_string())
        .await
        .map_err(|e| AgentError::Dataset(format!("cannot reach {url}: {e}")))?
        .max_decoding_message_size(crate::MAX_MESSAGE);
    let s = c
        .dataset(DatasetRequest {
            root: root.to_vec(),
        })
        .await?
        .into_inner();
    crate::collect_chunks(s, max).await
}

/// GET `url`, reading at most `max` bytes (a server that lies about or
/// omits its length is cut off at the limit).
async fn fetch_http(url: &str, max: u64) -> Result<Vec<u8>, AgentError> {
    let err = |e: reqwest::Error| AgentError::Dataset(format!("GET {url}: {e}"));
    let mut r = reqwest::get(url).await.map_err(err)?;
    if !r.status().is_success() {
        return Err(AgentError::Dataset(format!("GET {url}: {}", r.status())));
    }
    if r.content_length().is_some_and(|n| n > max) {
        return Err(AgentError::Dataset(format!(
            "GET {url}: {} bytes, over the {max}-byte limit",
            r.content_length().unwrap_or(0)
        )));
    }
    let mut out = Vec::new();
    while let Some(chunk) = r.chunk().await.map_err(err)? {
        if out.len() as u64 + chunk.len() as u64 > max {
            return Err(AgentError::Dataset(format!(
                "GET {url}: more than the {max}-byte limit"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
