//! Datasets by content: a program names its dataset (a builtin name, an
//! `http(s)://` URL, a `grpc://host:port` blob service of another daemon, or
//! a local path when the operator allows a directory) and commits to its
//! Merkle root; whatever is fetched is checked against that root before use
//! and cached under the root's hex.
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

    /// Whether `program`'s dataset is at hand, without waiting: the first call
    /// starts a background fetch and says `Pending`; a failed fetch is
    /// remembered (and not retried by this process: its name is the
    /// submitter's, who can submit another task).
    pub fn ready(self: &Arc<Self>, program: &Program) -> Readiness {
        let root = program.dataset.root;
        // Known answers first: this runs for every open task every block.
        let mut st = lock(&self.state);
        if let Some(r) = st.get(&root) {
            return r.clone();
        }
        if Dataset::builtin(&program.dataset.name).is_ok_and(|d| d.root() == root)
            || cache_path(&self.cache_dir, &root).exists()
        {
            st.insert(root, Readiness::Ready);
            return Readiness::Ready;
        }
        st.insert(root, Readiness::Pending);
        let (me, program) = (self.clone(), program.clone());
        tokio::spawn(async move {
            let r = match me.resolve(&program).await {
                Ok(_) => Readiness::Ready,
                Err(e) => {
                    tracing::warn!(dataset = %program.dataset.name, error = %e, "dataset fetch failed");
                    Readiness::Failed(e.to_string())
                }
            };
            lock(&me.state).insert(program.dataset.root, r);
        });
        Readiness::Pending
    }
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
    let fetch = async {
        if let Some(addr) = name.strip_prefix("grpc://") {
            fetch_grpc(&format!("http://{addr}"), &root, policy.max_bytes).await
        } else if name.starts_with("http://") || name.starts_with("https://") {
            fetch_http(name, policy.max_bytes).await
        } else {
            read_local(name, policy)
        }
    };
    let bytes = tokio::time::timeout(policy.timeout, fetch)
        .await
        .map_err(|_| {
            AgentError::Dataset(format!(
                "{name}: no complete answer within {:?}",
                policy.timeout
            ))
        })??;
    let d = Dataset::from_bytes(&bytes, Some(&root))
        .map_err(|e| AgentError::Dataset(format!("{name}: {e}")))?;
    std::fs::create_dir_all(cache_dir).map_err(|e| AgentError::io(cache_dir, e))?;
    crate::write_file_atomic(&cached, &bytes)?;
    tracing::info!(dataset = name, root = %hex::encode(root), bytes = bytes.len(), "dataset fetched and checked");
    Ok(d)
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
