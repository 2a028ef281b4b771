//! What `solverd` and `verifierd` share: following the chain and sending
//! transactions ([`chain`]), one training step with its node outputs and the
//! fault injector ([`exec`]), a party's knowledge of a run with checkpoints
//! and crash recovery ([`run`]), the moves of either side of a Verde dispute
//! ([`dispute`]), datasets by content ([`datasets`]) and Prometheus
//! [`metrics`].
//!
//! It talks to the chain only through the node's public gRPC API (the
//! `client` crate) and never depends on the state machine (`app`).

pub mod chain;
pub mod datasets;
pub mod dispute;
pub mod exec;
pub mod metrics;
pub mod run;

use std::path::Path;

/// Largest gRPC message the daemons send or accept (checkpoint chunks are smaller).
pub const MAX_MESSAGE: usize = 64 << 20;
/// Size of one streamed chunk of a checkpoint, model or dataset.
pub const CHUNK_BYTES: usize = 1 << 20;

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error(transparent)]
    Client(#[from] client::ClientError),
    #[error("{0}")]
    Rpc(#[from] tonic::Status),
    #[error("{what}: transaction failed: {codespace} code {code}: {log}")]
    TxFailed {
        what: String,
        codespace: String,
        code: u32,
        log: String,
    },
    #[error("training: {0}")]
    Train(#[from] train::TrainError),
    #[error("dataset: {0}")]
    Dataset(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Invalid(String),
}

impl AgentError {
    pub fn io(path: &Path, source: std::io::Error) -> AgentError {
        AgentError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// Writes `body` to `path` through a temporary file and a rename, so a crash
/// leaves either the old file or the new one.
pub fn write_file_atomic(path: &Path, body: &[u8]) -> Result<(), AgentError> {
    use std::io::Write;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).map_err(|e| AgentError::io(&tmp, e))?;
    f.write_all(body)
        .and_then(|_| f.sync_data())
        .map_err(|e| AgentError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| AgentError::io(path, e))
}

/// Reads a stream of `veritrain.solver.v1.Chunk`s into one buffer of at most `limit`
/// bytes. The buffer is allocated once, at the declared size, after that size is
/// checked against `limit` (so a sender that announces a huge file costs nothing,
/// and an honest large one is not copied as it grows); every chunk must agree with
/// the declared size.
pub async fn collect_chunks<S>(mut s: S, limit: u64) -> Result<Vec<u8>, AgentError>
where
    S: futures::Stream<Item = Result<proto::solver::v1::Chunk, tonic::Status>> + Unpin,
{
    use futures::StreamExt;
    let mut out = Vec::new();
    let mut total = None;
    while let Some(c) = s.next().await {
        let c = c?;
        if c.total > limit {
            return Err(AgentError::Invalid(format!(
                "a {}-byte stream is over the {limit}-byte limit",
                c.total
            )));
        }
        if total.is_none() {
            let n = usize::try_from(c.total).map_err(|_| {
                AgentError::Invalid(format!("a {}-byte stream does not fit in memory", c.total))
            })?;
            out.try_reserve_exact(n).map_err(|_| {
                AgentError::Invalid(format!("cannot allocate {} bytes for a stream", c.total))
            })?;
        }
        if *total.get_or_insert(c.total) != c.total
            || out.len() as u64 + c.data.len() as u64 > c.total
        {
            return Err(AgentError::Invalid(
                "stream chunks disagree with its declared size".into(),
            ));
        }
        out.extend_from_slice(&c.data);
    }
    if total.is_some_and(|t| t != out.len() as u64) {
        return Err(AgentError::Invalid(format!(
            "stream ended after {} of {} bytes",
            out.len(),
            total.unwrap_or(0)
        )));
    }
    Ok(out)
}

/// A stream of chunks, as the Solver service's streaming methods return.
pub type ChunkStream = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<proto::solver::v1::Chunk, tonic::Status>> + Send>,
>;

/// `body` as a stream of chunks (the server side of [`collect_chunks`]), each made
/// when the transport asks for it: serving a file holds it once, not twice.
pub fn chunk_stream(body: Vec<u8>) -> ChunkStream {
    use futures::StreamExt;
    let body = std::sync::Arc::new(body);
    let total = body.len() as u64;
    // An empty body is one empty chunk (it still carries `total`).
    let chunks = body.len().div_ceil(CHUNK_BYTES).max(1);
    Box::pin(futures::stream::iter(0..chunks).map(move |i| {
        let from = (i * CHUNK_BYTES).min(body.len());
        let to = (from + CHUNK_BYTES).min(body.len());
        Ok(proto::solver::v1::Chunk {
            data: body[from..to].to_vec(),
            total,
        })
    }))
}

/// The file at `path` as a stream of chunks, read from disk as they are sent: a file
/// of any size is served in `CHUNK_BYTES` of memory. A file that changes size while
/// it is served ends the stream with an error (the receiver's size check fails too).
pub fn file_chunk_stream(path: &Path) -> Result<ChunkStream, AgentError> {
    use tokio::io::AsyncReadExt;
    let f = std::fs::File::open(path).map_err(|e| AgentError::io(path, e))?;
    let total = f.metadata().map_err(|e| AgentError::io(path, e))?.len();
    let file = tokio::fs::File::from_std(f);
    let state = (file, 0u64, false);
    let stream = futures::stream::unfold(state, move |(mut f, sent, done)| async move {
        if done {
            return None;
        }
        let want = (total - sent).min(CHUNK_BYTES as u64) as usize;
        let mut data = vec![0u8; want];
        match f.read_exact(&mut data).await {
            Ok(_) => {
                let chunk = proto::solver::v1::Chunk { data, total };
                let sent = sent + want as u64;
                // An empty file is one empty chunk, as `chunk_stream` sends it.
                Some((Ok(chunk), (f, sent, sent == total)))
            }
            Err(e) => Some((
                Err(tonic::Status::internal(format!("reading the file: {e}"))),
                (f, sent, true),
            )),
        }
    });
    Ok(Box::pin(stream))
}

/// A client of the solver that holds `t` (the endpoint published with its claim).
pub async fn solver_client(
    t: &proto::tasks::v1::Task,
) -> Result<proto::solver::v1::solver_client::SolverClient<tonic::transport::Channel>, AgentError> {
    if t.solver_endpoint.is_empty() {
        return Err(AgentError::Invalid(format!(
            "task {}: the solver published no endpoint",
            t.id
        )));
    }
    let ep = tonic::transport::Endpoint::from_shared(t.solver_endpoint.clone())
        .map_err(|e| {
            AgentError::Invalid(format!("bad solver endpoint {:?}: {e}", t.solver_endpoint))
        })?
        .connect_timeout(std::time::Duration::from_secs(5));
    let ch = ep.connect().await.map_err(|e| {
        AgentError::Invalid(format!(
            "cannot reach the solver at {}: {e}",
            t.solver_endpoint
        ))
    })?;
    Ok(proto::solver::v1::solver_client::SolverClient::new(ch)
        .max_decoding_message_size(MAX_MESSAGE))
}

/// Loads the signing key: a file holding the hex secret, or a key name (or
/// address) in the keyring of `home`.
pub fn load_signer(home: &Path, from: &str) -> Result<auth::Signer, AgentError> {
    let p = Path::new(from);
    if p.is_file() {
        let s = std::fs::read_to_string(p).map_err(|e| AgentError::io(p, e))?;
        if s.trim().is_empty() {
            return Err(AgentError::Invalid(format!(
                "key file {} is empty: it should hold a 64-hex-digit secp256k1 secret",
                p.display()
            )));
        }
        let bytes = hex::decode(s.trim())
            .map_err(|e| AgentError::Invalid(format!("{}: not a hex secret: {e}", p.display())))?;
        if bytes.len() != 32 {
            return Err(AgentError::Invalid(format!(
                "key file {}: the secret is {} bytes, expected 32 (64 hex digits)",
                p.display(),
                bytes.len()
            )));
        }
        return auth::Signer::from_bytes(&bytes)
            .map_err(|e| AgentError::Invalid(format!("{}: {e}", p.display())));
    }
    client::keyring::Keyring::open(home)
        .signer(from)
        .map_err(|e| AgentError::Invalid(e.to_string()))
}

/// Locks `m`, recovering the data if a thread panicked while holding it.
pub fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Resolves once `rx` says stop.
pub fn stopped(
    rx: &tokio::sync::watch::Receiver<bool>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// A daemon's main loop: on every new block (or every 2 s without one) runs
/// `tick`, until `stop`. Errors are counted in `errors` and logged; the next
/// block retries.
pub async fn block_loop<F, Fut>(
    chain: &chain::Chain,
    mut stop: tokio::sync::watch::Receiver<bool>,
    metrics: &metrics::Metrics,
    mut tick: F,
) where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), AgentError>>,
{
    let mut blocks = chain.blocks();
    loop {
        if *stop.borrow() {
            return;
        }
        if let Some(b) = tokio::select! {
            b = blocks.next(std::time::Duration::from_secs(2)) => b,
            _ = stop.wait_for(|v| *v) => return,
        } {
            metrics.set("height", b.height as i64);
        }
        if let Err(e) = tick().await {
            metrics.inc("errors", 1);
            tracing::warn!(error = %e, "step failed; retrying next block");
        }
    }
}

/// Logs through `tracing` (`RUST_LOG`, default `info`), as JSON when asked;
/// colour codes only when stderr is a terminal.
pub fn init_logging(json: bool) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let b = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if json {
        b.json().try_init()
    } else {
        b.try_init()
    };
}
