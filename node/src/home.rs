//! The node's home directory (Cosmos layout):
//!
//! ```text
//! HOME/config/genesis.json   CometBFT genesis; `app_state` is this app's genesis
//! HOME/config/app.toml       gRPC, ABCI and CometBFT RPC addresses, dev block time,
//!                            explorer and metrics addresses
//! HOME/config/client.toml    what the CLI talks to with `--home` (Cosmos's client.toml)
//! HOME/data/grpc.url         the gRPC URL of the node running on this home (while it runs)
//! HOME/data/app.db/          the sled store
//! HOME/keyring.json          keys (mode 0600)
//! ```
use crate::genesis::AppState;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum HomeError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid: {reason}")]
    Invalid { path: String, reason: String },
    #[error("{0} already exists; pass --overwrite to replace it")]
    Exists(String),
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AppConfig {
    /// Where the gRPC API listens.
    pub grpc_address: String,
    /// Where the ABCI server listens for CometBFT (`veritraind start`).
    pub abci_address: String,
    /// CometBFT's RPC, for broadcasting under `veritraind start`.
    pub comet_rpc: String,
    /// Block interval of the embedded dev chain, in milliseconds.
    pub dev_block_interval_ms: u64,
    /// Where the block explorer and its JSON API are served ("" = off).
    pub explorer_address: String,
    /// Where Prometheus metrics are served at `/metrics` ("" = off).
    pub metrics_address: String,
}

/// `config/client.toml`: what the CLI uses when given `--home` and no
/// `--node`. Every field is optional.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ClientConfig {
    /// The node's gRPC URL. Empty: the node running on this home
    /// (`data/grpc.url`), else `grpc_address` of this home's `app.toml`.
    pub node: String,
    /// The chain id transactions must be for (checked against the node).
    pub chain_id: String,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            grpc_address: "127.0.0.1:9090".into(),
            abci_address: "127.0.0.1:26658".into(),
            comet_rpc: "http://127.0.0.1:26657".into(),
            dev_block_interval_ms: 500,
            explorer_address: "127.0.0.1:8080".into(),
            metrics_address: "127.0.0.1:26660".into(),
        }
    }
}

/// CometBFT's `genesis.json`, with this app's `app_state`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GenesisDoc {
    pub genesis_time: String,
    pub chain_id: String,
    pub initial_height: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consensus_params: Option<serde_json::Value>,
    #[serde(default)]
    pub validators: Vec<serde_json::Value>,
    #[serde(default)]
    pub app_hash: String,
    pub app_state: AppState,
}

impl GenesisDoc {
    pub fn new(chain_id: &str, app_state: AppState) -> GenesisDoc {
        GenesisDoc {
            genesis_time: tendermint::Time::now().to_rfc3339(),
            chain_id: chain_id.to_string(),
            initial_height: "1".into(),
            consensus_params: None,
            validators: vec![],
            app_hash: String::new(),
            app_state,
        }
    }

    pub fn genesis_time_ms(&self) -> i64 {
        tendermint::Time::parse_from_rfc3339(&self.genesis_time)
            .map(|t| i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
            .unwrap_or(0)
    }
}

#[derive(Clone, Debug)]
pub struct Home {
    pub root: PathBuf,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> HomeError + '_ {
    move |source| HomeError::Io {
        path: path.display().to_string(),
        source,
    }
}

impl Home {
    pub fn new(root: impl Into<PathBuf>) -> Home {
        Home { root: root.into() }
    }
    pub fn genesis_path(&self) -> PathBuf {
        self.root.join("config/genesis.json")
    }
    pub fn config_path(&self) -> PathBuf {
        self.root.join("config/app.toml")
    }
    /// Where `tx tasks submit` keeps each task's seed secret until it is
    /// revealed (`seeds/<task id>.secret`, hex).
    pub fn seed_path(&self, task_id: u64) -> PathBuf {
        self.root.join("seeds").join(format!("{task_id}.secret"))
    }

    /// Where `tx swarm create` keeps the secret of a swarm's seed chain, by the
    /// chain's head (`seeds/swarm-<head hex>.secret`, hex).
    pub fn swarm_seed_path(&self, head: &[u8; 32]) -> PathBuf {
        self.root
            .join("seeds")
            .join(format!("swarm-{}.secret", hex::encode(head)))
    }

    /// Every kept swarm seed-chain secret.
    pub fn swarm_seeds(&self) -> Vec<[u8; 32]> {
        let Ok(dir) = std::fs::read_dir(self.root.join("seeds")) else {
            return Vec::new();
        };
        dir.flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("swarm-"))
            .filter_map(|e| std::fs::read_to_string(e.path()).ok())
            .filter_map(|t| hex::decode(t.trim()).ok())
            .filter_map(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
            .collect()
    }

    pub fn db_path(&self) -> PathBuf {
        self.root.join("data/app.db")
    }
    pub fn client_config_path(&self) -> PathBuf {
        self.root.join("config/client.toml")
    }
    /// Written by a running node: its gRPC URL, for the CLI's `--home`.
    pub fn grpc_url_path(&self) -> PathBuf {
        self.root.join("data/grpc.url")
    }

    pub fn read_client_config(&self) -> Result<ClientConfig, HomeError> {
        let p = self.client_config_path();
        match std::fs::read_to_string(&p) {
            Ok(s) => toml::from_str(&s).map_err(|e| HomeError::Invalid {
                path: p.display().to_string(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ClientConfig::default()),
            Err(e) => Err(io(&p)(e)),
        }
    }

    pub fn write_client_config(&self, c: &ClientConfig) -> Result<(), HomeError> {
        let p = self.client_config_path();
        let body = toml::to_string_pretty(c).map_err(|e| HomeError::Invalid {
            path: p.display().to_string(),
            reason: e.to_string(),
        })?;
        let doc = format!(
            "# The CLI's settings for this home (`veritraind --home {}`).\n\
             # node: the node's gRPC URL; empty means the node running on this home,\n\
             # else grpc_address in app.toml.\n{body}",
            self.root.display()
        );
        write_atomic(&p, doc.as_bytes())
    }

    /// The gRPC URL the CLI dials with `--home` and no `--node`: client.toml's
    /// `node`, else the URL the node running on this home recorded, else
    /// `app.toml`'s `grpc_address`, else the default.
    pub fn client_node_url(&self) -> Result<String, HomeError> {
        let c = self.read_client_config()?;
        if !c.node.trim().is_empty() {
            return Ok(c.node.trim().to_string());
        }
        // A node killed without cleaning up leaves the file: use it only if
        // something listens there.
        if let Ok(s) = std::fs::read_to_string(self.grpc_url_path()) {
            if listening(s.trim()) {
                return Ok(s.trim().to_string());
            }
        }
        let a = self.read_config()?.grpc_address;
        Ok(grpc_url_of(&a))
    }
}

/// Whether something accepts TCP connections at `http://host:port`.
fn listening(url: &str) -> bool {
    use std::net::ToSocketAddrs;
    let hostport = url.split("://").nth(1).unwrap_or(url).trim_end_matches('/');
    hostport
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .is_some_and(|a| {
            std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_millis(300)).is_ok()
        })
}

/// `http://host:port` for a listen address; a wildcard host becomes 127.0.0.1.
pub fn grpc_url_of(listen: &str) -> String {
    if listen.contains("://") {
        return listen.to_string();
    }
    let a = listen
        .strip_prefix("0.0.0.0:")
        .map(|p| format!("127.0.0.1:{p}"))
        .or_else(|| listen.strip_prefix("[::]:").map(|p| format!("[::1]:{p}")))
        .unwrap_or_else(|| listen.to_string());
    format!("http://{a}")
}

impl Home {
    pub fn is_initialised(&self) -> bool {
        self.genesis_path().exists()
    }

    pub fn read_genesis(&self) -> Result<GenesisDoc, HomeError> {
        let p = self.genesis_path();
        let b = std::fs::read(&p).map_err(io(&p))?;
        serde_json::from_slice(&b).map_err(|e| HomeError::Invalid {
            path: p.display().to_string(),
            reason: e.to_string(),
        })
    }

    pub fn write_genesis(&self, g: &GenesisDoc) -> Result<(), HomeError> {
        let p = self.genesis_path();
        let body = serde_json::to_vec_pretty(g).map_err(|e| HomeError::Invalid {
            path: p.display().to_string(),
            reason: e.to_string(),
        })?;
        write_atomic(&p, &body)
    }

    pub fn read_config(&self) -> Result<AppConfig, HomeError> {
        let p = self.config_path();
        match std::fs::read_to_string(&p) {
            Ok(s) => toml::from_str(&s).map_err(|e| HomeError::Invalid {
                path: p.display().to_string(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(AppConfig::default()),
            Err(e) => Err(io(&p)(e)),
        }
    }

    pub fn write_config(&self, c: &AppConfig) -> Result<(), HomeError> {
        let p = self.config_path();
        let body = toml::to_string_pretty(c).map_err(|e| HomeError::Invalid {
            path: p.display().to_string(),
            reason: e.to_string(),
        })?;
        write_atomic(&p, body.as_bytes())
    }

    /// Creates the home with a genesis for `chain_id` and default config.
    pub fn init(
        &self,
        chain_id: &str,
        moniker: &str,
        overwrite: bool,
    ) -> Result<GenesisDoc, HomeError> {
        if self.is_initialised() && !overwrite {
            return Err(HomeError::Exists(self.genesis_path().display().to_string()));
        }
        if chain_id.is_empty() || chain_id.len() > 50 {
            return Err(HomeError::Invalid {
                path: "--chain-id".into(),
                reason: "must be 1 to 50 characters (CometBFT's limit)".into(),
            });
        }
        let mut app_state = AppState::default();
        app_state.auth.params = Some(auth::default_params());
        app_state.staking.params = Some(staking::Params::default().to_proto());
        let g = GenesisDoc::new(chain_id, app_state);
        self.write_genesis(&g)?;
        self.write_config(&AppConfig::default())?;
        self.write_client_config(&ClientConfig {
            node: String::new(),
            chain_id: chain_id.to_string(),
        })?;
        let m = self.root.join("config/moniker");
        write_atomic(&m, moniker.as_bytes())?;
        Ok(g)
    }
}

pub fn write_atomic(p: &Path, body: &[u8]) -> Result<(), HomeError> {
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).map_err(io(d))?;
    }
    let tmp = p.with_extension("tmp");
    std::fs::write(&tmp, body).map_err(io(&tmp))?;
    std::fs::rename(&tmp, p).map_err(io(p))
}
