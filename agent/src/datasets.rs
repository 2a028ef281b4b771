//! Datasets by content: a program names its dataset (a builtin name, a local
//! path, an `http(s)://` URL or a `grpc://host:port` blob service of another
//! daemon) and commits to its Merkle root; whatever is fetched is checked
//! against that root before use and cached under the root's hex.
use crate::AgentError;
use proto::solver::v1::{solver_client::SolverClient, DatasetRequest};
use std::path::{Path, PathBuf};
use train::{Dataset, Program};

fn cache_path(dir: &Path, root: &[u8; 32]) -> PathBuf {
    dir.join(format!("{}.vtds", hex::encode(root)))
}

/// The dataset of `program`, from the cache in `cache_dir` or its source.
pub async fn resolve(program: &Program, cache_dir: &Path) -> Result<Dataset, AgentError> {
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
    let bytes = if let Some(addr) = name.strip_prefix("grpc://") {
        fetch_grpc(&format!("http://{addr}"), &root).await?
    } else if name.starts_with("http://") || name.starts_with("https://") {
        fetch_http(name).await?
    } else {
        let p = Path::new(name.strip_prefix("file://").unwrap_or(name));
        std::fs::read(p).map_err(|e| AgentError::io(p, e))?
    };
    let d = Dataset::from_bytes(&bytes, Some(&root))
        .map_err(|e| AgentError::Dataset(format!("{name}: {e}")))?;
    std::fs::create_dir_all(cache_dir).map_err(|e| AgentError::io(cache_dir, e))?;
    crate::write_file_atomic(&cached, &bytes)?;
    tracing::info!(dataset = name, root = %hex::encode(root), bytes = bytes.len(), "dataset fetched and checked");
    Ok(d)
}

async fn fetch_grpc(url: &str, root: &[u8; 32]) -> Result<Vec<u8>, AgentError> {
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
    crate::collect_chunks(s, 1 << 30).await
}

async fn fetch_http(url: &str) -> Result<Vec<u8>, AgentError> {
    let r = reqwest::get(url)
        .await
        .map_err(|e| AgentError::Dataset(format!("GET {url}: {e}")))?;
    if !r.status().is_success() {
        return Err(AgentError::Dataset(format!("GET {url}: {}", r.status())));
    }
    Ok(r.bytes()
        .await
        .map_err(|e| AgentError::Dataset(format!("GET {url}: {e}")))?
        .to_vec())
}
