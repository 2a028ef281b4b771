//! Running a node: `veritraind dev` (embedded chain) and `veritraind start`
//! (ABCI server for CometBFT), each with the gRPC API.
use crate::abci::App;
use crate::devchain::DevChain;
use crate::grpc::{self, Broadcaster, CometBroadcaster};
use crate::home::{GenesisDoc, Home};
use crate::store::Store;
use anyhow::Context;
use client::keyring::Keyring;
use framework::Amount;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub const DEV_CHAIN_ID: &str = "veritrain-dev";
pub const DEV_KEY: &str = "dev";
/// What the `dev` key gets in a new dev genesis: 10^15 uvtr.
pub const DEV_FUNDS: Amount = Amount(1_000_000_000_000_000);

/// A node running in this process.
pub struct RunningNode {
    pub app: App,
    pub grpc_addr: SocketAddr,
    pub chain: Option<Arc<DevChain>>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl RunningNode {
    /// Stops block production and the gRPC server, and waits for them.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }

    pub fn grpc_url(&self) -> String {
        format!("http://{}", self.grpc_addr)
    }
}

fn stopper(rx: &watch::Receiver<bool>) -> impl std::future::Future<Output = ()> + Send + 'static {
    let mut rx = rx.clone();
    async move {
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// Makes `home` ready for `veritraind dev`: initialises it if needed, makes
/// sure a `dev` key exists, and funds it in genesis while the chain has not
/// started yet. Returns the genesis.
pub fn prepare_dev_home(home: &Home) -> anyhow::Result<GenesisDoc> {
    if !home.is_initialised() {
        home.init(DEV_CHAIN_ID, "dev", false)?;
    }
    let keys = Keyring::open(&home.root);
    let dev = match keys.signer(DEV_KEY) {
        Ok(s) => s,
        Err(client::keyring::KeyringError::Missing(..)) => {
            let s = auth::Signer::generate(&mut rand::rngs::OsRng);
            keys.add(DEV_KEY, &s)?;
            s
        }
        Err(e) => return Err(e.into()),
    };
    let mut g = home.read_genesis()?;
    let chain_started = home.db_path().exists();
    let addr = dev.address().to_string();
    if !chain_started && !g.app_state.bank.balances.iter().any(|b| b.address == addr) {
        g.app_state.fund(&dev.address(), DEV_FUNDS);
        home.write_genesis(&g)?;
    }
    Ok(g)
}

/// `veritraind dev`: the embedded chain and the gRPC API.
pub async fn start_dev(
    home: &Home,
    grpc_addr: SocketAddr,
    block_interval: Duration,
) -> anyhow::Result<RunningNode> {
    let g = prepare_dev_home(home)?;
    let store = Store::open(&home.db_path())
        .with_context(|| format!("opening {}", home.db_path().display()))?;
    let app = App::new(store)?;
    let app_state = serde_json::to_vec(&g.app_state)?;
    let chain_id = g.chain_id.clone();
    let genesis_ms = g.genesis_time_ms();
    let app2 = app.clone();
    let chain = tokio::task::spawn_blocking(move || {
        DevChain::start(app2, &chain_id, &app_state, genesis_ms)
    })
    .await??;
    let chain = Arc::new(chain);
    let listener = grpc::bind(grpc_addr).await.with_context(|| {
        format!(
            "cannot listen for gRPC on {grpc_addr} (is another node running? use --grpc-address)"
        )
    })?;
    let bound = listener.local_addr()?;
    let (stop, rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let b: Arc<dyn Broadcaster> = Arc::new(chain.clone());
    let app3 = app.clone();
    let s1 = rx.clone();
    tasks.push(tokio::spawn(async move {
        if let Err(e) = grpc::serve(app3, b, listener, s1).await {
            tracing::error!(error = %e, "gRPC server failed");
        }
    }));
    let c = chain.clone();
    let s2 = stopper(&rx);
    tasks.push(tokio::spawn(async move { c.run(block_interval, s2).await }));
    tracing::info!(grpc = %bound, chain_id = %app.chain_id(), "dev chain running");
    Ok(RunningNode {
        app,
        grpc_addr: bound,
        chain: Some(chain),
        stop,
        tasks,
    })
}

/// `veritraind start`: the ABCI server for CometBFT (TCP), and the gRPC API
/// broadcasting through CometBFT's RPC.
pub async fn start_comet(
    home: &Home,
    abci_addr: SocketAddr,
    grpc_addr: SocketAddr,
    comet_rpc: &str,
) -> anyhow::Result<RunningNode> {
    let store = Store::open(&home.db_path())
        .with_context(|| format!("opening {}", home.db_path().display()))?;
    let app = App::new(store)?;
    let server = tendermint_abci::ServerBuilder::default()
        .bind(abci_addr, app.clone())
        .map_err(|e| anyhow::anyhow!("cannot listen for ABCI on {abci_addr}: {e}"))?;
    let abci_bound = server.local_addr();
    std::thread::Builder::new()
        .name("abci".into())
        .spawn(move || {
            if let Err(e) = server.listen() {
                tracing::error!(error = %e, "ABCI server stopped");
            }
        })?;
    let client = tendermint_rpc::HttpClient::new(comet_rpc)
        .map_err(|e| anyhow::anyhow!("bad CometBFT RPC URL {comet_rpc:?}: {e}"))?;
    let listener = grpc::bind(grpc_addr)
        .await
        .with_context(|| format!("cannot listen for gRPC on {grpc_addr}"))?;
    let bound = listener.local_addr()?;
    let (stop, rx) = watch::channel(false);
    let b: Arc<dyn Broadcaster> = Arc::new(CometBroadcaster { client });
    let app2 = app.clone();
    let s1 = rx.clone();
    let task = tokio::spawn(async move {
        if let Err(e) = grpc::serve(app2, b, listener, s1).await {
            tracing::error!(error = %e, "gRPC server failed");
        }
    });
    tracing::info!(abci = %abci_bound, grpc = %bound, comet_rpc, "waiting for CometBFT");
    Ok(RunningNode {
        app,
        grpc_addr: bound,
        chain: None,
        stop,
        tasks: vec![task],
    })
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                    return;
                }
            };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
