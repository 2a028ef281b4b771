//! `veritraind testnet init-files`: the files for a local multi-validator
//! network under CometBFT 0.38 (the Cosmos SDK's `testnet init-files`).
//!
//! For each validator `i` it writes one directory `DIR/node{i}` that is both
//! a `veritraind start --home` home and a `cometbft start --home` home:
//!
//! ```text
//! DIR/keyring.json                          solver, verifier, submitter
//! DIR/node{i}/config/genesis.json           shared by CometBFT and the app (identical in every node)
//! DIR/node{i}/config/app.toml               veritraind: ABCI, gRPC, CometBFT RPC addresses
//! DIR/node{i}/config/config.toml            CometBFT 0.38
//! DIR/node{i}/config/node_key.json          p2p identity (ed25519)
//! DIR/node{i}/config/priv_validator_key.json consensus key (ed25519)
//! DIR/node{i}/data/priv_validator_state.json last signed height/round/step
//! DIR/node{i}/keyring.json                  the same three keys
//! ```
//!
//! Ports: node `i` uses `P + 10 i + k` with `P = --starting-port` (26656):
//! `k = 0` p2p, `1` CometBFT RPC, `2` ABCI, `4` Prometheus, so node0 has
//! CometBFT's usual ports (26656, 26657, 26658, 26660). gRPC is
//! `--grpc-starting-port + i` (9090, 9091, …).
use crate::home::{write_atomic, AppConfig, GenesisDoc, Home, HomeError};
use crate::keyring::{Keyring, KeyringError};
use clap::{Args, Subcommand};
use framework::Amount;
use rand::RngCore;
use serde::Serialize;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// The chain id of a new localnet.
pub const DEFAULT_CHAIN_ID: &str = "veritrain-localnet";
/// The genesis accounts, funded with [`ACCOUNT_FUNDS`] each.
pub const ACCOUNTS: [&str; 3] = ["solver", "verifier", "submitter"];
/// 10^15 uvtr, like the dev chain's `dev` key.
pub const ACCOUNT_FUNDS: Amount = Amount(1_000_000_000_000_000);
/// Every validator's voting power.
pub const VALIDATOR_POWER: u64 = 10;
/// The CometBFT release the generated `config.toml` is written for.
pub const COMETBFT_VERSION: &str = "0.38.17";

#[derive(Subcommand, Debug)]
pub enum TestnetCmd {
    /// Write the homes of a local N-validator network (CometBFT 0.38 + veritraind).
    InitFiles(InitFiles),
}

#[derive(Args, Debug, Clone)]
pub struct InitFiles {
    /// Number of validators.
    #[arg(
        long,
        short = 'v',
        env = "VERITRAIND_TESTNET_VALIDATORS",
        default_value_t = 4
    )]
    pub validators: usize,
    /// Directory for the node homes (`DIR/node0`, `DIR/node1`, …) and the keyring.
    /// (`--output` is the global output format, as everywhere in veritraind.)
    #[arg(
        long,
        env = "VERITRAIND_TESTNET_OUTPUT_DIR",
        default_value = "./.testnets"
    )]
    pub output_dir: PathBuf,
    #[arg(long, env = "VERITRAIND_TESTNET_CHAIN_ID", default_value = DEFAULT_CHAIN_ID)]
    pub chain_id: String,
    /// First port of node0's block: p2p, +1 RPC, +2 ABCI, +4 Prometheus; node i adds 10 i.
    #[arg(
        long,
        env = "VERITRAIND_TESTNET_STARTING_PORT",
        default_value_t = 26656
    )]
    pub starting_port: u16,
    /// node0's gRPC port; node i listens on this + i.
    #[arg(
        long,
        env = "VERITRAIND_TESTNET_GRPC_STARTING_PORT",
        default_value_t = 9090
    )]
    pub grpc_starting_port: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum TestnetError {
    #[error("--validators must be 1 to 100, not {0}")]
    Validators(usize),
    #[error("ports do not fit: {0}")]
    Ports(String),
    #[error(
        "{0} already holds a testnet; remove it (localnet/reset) or choose another --output-dir"
    )]
    Exists(String),
    #[error(transparent)]
    Home(#[from] HomeError),
    #[error(transparent)]
    Keyring(#[from] KeyringError),
    #[error("ed25519 key: {0}")]
    Key(String),
    #[error("encoding {0}: {1}")]
    Json(String, serde_json::Error),
}

/// The ports of one node, all on 127.0.0.1.
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct NodePorts {
    pub p2p: u16,
    pub rpc: u16,
    pub abci: u16,
    pub grpc: u16,
    pub prometheus: u16,
}

impl NodePorts {
    fn all(&self) -> [u16; 5] {
        [self.p2p, self.rpc, self.abci, self.grpc, self.prometheus]
    }
}

/// The ports of node `i` (see the module docs).
pub fn ports(i: usize, starting_port: u16, grpc_starting_port: u16) -> Option<NodePorts> {
    let at = |base: u16, off: usize| u16::try_from(usize::from(base).checked_add(off)?).ok();
    let block = i.checked_mul(10)?;
    Some(NodePorts {
        p2p: at(starting_port, block)?,
        rpc: at(starting_port, block + 1)?,
        abci: at(starting_port, block + 2)?,
        prometheus: at(starting_port, block + 4)?,
        grpc: at(grpc_starting_port, i)?,
    })
}

/// An ed25519 key in CometBFT's JSON forms.
pub struct Ed25519Key {
    sk: tendermint::private_key::Ed25519,
}

impl Ed25519Key {
    /// The key whose 32-byte seed (RFC 8032 secret) is `seed`.
    pub fn from_seed(seed: &[u8; 32]) -> Result<Ed25519Key, TestnetError> {
        tendermint::private_key::Ed25519::try_from(&seed[..])
            .map(|sk| Ed25519Key { sk })
            .map_err(|e| TestnetError::Key(e.to_string()))
    }

    pub fn generate() -> Result<Ed25519Key, TestnetError> {
        let mut seed = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut seed);
        Self::from_seed(&seed)
    }

    pub fn public_key(&self) -> tendermint::PublicKey {
        tendermint::PublicKey::from(self.sk.verification_key())
    }

    /// `{"type":"tendermint/PubKeyEd25519","value":base64}`.
    pub fn pub_key_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(self.public_key())
    }

    /// `{"type":"tendermint/PrivKeyEd25519","value":base64(seed || pubkey)}`.
    pub fn priv_key_json(&self) -> Result<serde_json::Value, serde_json::Error> {
        serde_json::to_value(tendermint::PrivateKey::Ed25519(self.sk.clone()))
    }

    fn pubkey_digest(&self) -> [u8; 32] {
        Sha256::digest(self.public_key().to_bytes()).into()
    }

    /// Validator address: upper hex of the first 20 bytes of SHA-256(pubkey).
    pub fn address(&self) -> String {
        hex::encode_upper(&self.pubkey_digest()[..20])
    }

    /// Node ID: lower hex of the first 20 bytes of SHA-256(pubkey).
    pub fn node_id(&self) -> String {
        hex::encode(&self.pubkey_digest()[..20])
    }
}

/// One node of the summary.
#[derive(Clone, Debug, Serialize)]
pub struct NodeSummary {
    pub name: String,
    pub home: PathBuf,
    pub node_id: String,
    pub validator_address: String,
    pub ports: NodePorts,
    pub grpc_url: String,
    pub rpc_url: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct AccountSummary {
    pub name: String,
    pub address: String,
    pub funds: String,
}

/// What `init-files` wrote.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub chain_id: String,
    pub output_dir: PathBuf,
    pub keyring: PathBuf,
    pub nodes: Vec<NodeSummary>,
    pub accounts: Vec<AccountSummary>,
}

impl Summary {
    pub fn to_text(&self) -> String {
        let mut s = format!(
            "wrote a {}-validator testnet for chain {} in {}\n",
            self.nodes.len(),
            self.chain_id,
            self.output_dir.display()
        );
        for n in &self.nodes {
            s.push_str(&format!(
                "{}: id {} p2p {} rpc {} abci {} grpc {} prometheus {}\n",
                n.name,
                n.node_id,
                n.ports.p2p,
                n.ports.rpc,
                n.ports.abci,
                n.ports.grpc,
                n.ports.prometheus
            ));
        }
        for a in &self.accounts {
            s.push_str(&format!("{}: {} ({})\n", a.name, a.address, a.funds));
        }
        s.push_str(&format!("keyring: {}", self.keyring.display()));
        s
    }
}

/// CometBFT 0.38's consensus parameters as `cometbft init` writes them,
/// except `version.app`, which is this app's [`crate::abci::APP_VERSION`]
/// (what `Info` reports) so that the two never disagree.
pub fn default_consensus_params() -> serde_json::Value {
    json!({
        "block": { "max_bytes": "22020096", "max_gas": "-1" },
        "evidence": {
            "max_age_num_blocks": "100000",
            "max_age_duration": "172800000000000",
            "max_bytes": "1048576"
        },
        "validator": { "pub_key_types": ["ed25519"] },
        "version": { "app": crate::abci::APP_VERSION.to_string() },
        "abci": { "vote_extensions_enable_height": "0" }
    })
}

/// What differs between the nodes' `config.toml`s.
pub struct CometConfig<'a> {
    pub moniker: &'a str,
    pub ports: &'a NodePorts,
    /// `id@host:port,…` of every other node.
    pub persistent_peers: &'a str,
}

/// A complete CometBFT 0.38 `config.toml` (every section `cometbft init`
/// writes, with its defaults) for a node of a loopback network.
pub fn comet_config_toml(c: &CometConfig<'_>) -> String {
    let CometConfig {
        moniker,
        ports,
        persistent_peers,
    } = c;
    let (abci, rpc, p2p, prom) = (ports.abci, ports.rpc, ports.p2p, ports.prometheus);
    format!(
        r#"# CometBFT {COMETBFT_VERSION} configuration, written by `veritraind testnet init-files`
# for a local network on 127.0.0.1. Paths are relative to this node's home.

# The CometBFT version this file was written for.
version = "{COMETBFT_VERSION}"

#######################################################################
###                   Main Base Config Options                      ###
#######################################################################

# The ABCI application: veritraind start (abci_address in app.toml).
proxy_app = "tcp://127.0.0.1:{abci}"
moniker = "{moniker}"
# goleveldb | cleveldb | boltdb | rocksdb | badgerdb | pebbledb
db_backend = "goleveldb"
db_dir = "data"
log_level = "info"
# plain | json
log_format = "plain"

genesis_file = "config/genesis.json"
priv_validator_key_file = "config/priv_validator_key.json"
priv_validator_state_file = "data/priv_validator_state.json"
# Empty: sign with priv_validator_key_file instead of a remote signer.
priv_validator_laddr = ""
node_key_file = "config/node_key.json"
# socket | grpc
abci = "socket"
filter_peers = false

#######################################################################
###                 Advanced Configuration Options                  ###
#######################################################################

[rpc]
laddr = "tcp://127.0.0.1:{rpc}"
cors_allowed_origins = []
cors_allowed_methods = ["HEAD", "GET", "POST", ]
cors_allowed_headers = ["Origin", "Accept", "Content-Type", "X-Requested-With", "X-Server-Time", ]
grpc_laddr = ""
grpc_max_open_connections = 900
unsafe = false
max_open_connections = 900
max_subscription_clients = 100
max_subscriptions_per_client = 5
experimental_subscription_buffer_size = 200
experimental_websocket_write_buffer_size = 200
experimental_close_on_slow_client = false
timeout_broadcast_tx_commit = "10s"
max_request_batch_size = 10
# Above the default (1000000) so that broadcast_tx_sync carries the largest
# transaction the app accepts (1 MiB, base64 in JSON: about 1.4 MB).
max_body_bytes = 2000000
max_header_bytes = 1048576
tls_cert_file = ""
tls_key_file = ""
pprof_laddr = ""

[p2p]
laddr = "tcp://127.0.0.1:{p2p}"
external_address = ""
seeds = ""
persistent_peers = "{persistent_peers}"
addr_book_file = "config/addrbook.json"
# Every peer is on 127.0.0.1: loopback addresses must be accepted.
addr_book_strict = false
max_num_inbound_peers = 40
max_num_outbound_peers = 10
unconditional_peer_ids = ""
persistent_peers_max_dial_period = "0s"
flush_throttle_timeout = "100ms"
max_packet_msg_payload_size = 1024
send_rate = 5120000
recv_rate = 5120000
pex = true
seed_mode = false
private_peer_ids = ""
# Every peer has the same IP here.
allow_duplicate_ip = true
handshake_timeout = "20s"
dial_timeout = "3s"

[mempool]
# flood | nop
type = "flood"
recheck = true
recheck_timeout = "1s"
broadcast = true
wal_dir = ""
size = 5000
max_txs_bytes = 1073741824
cache_size = 10000
keep-invalid-txs-in-cache = false
max_tx_bytes = 1048576
max_batch_bytes = 0
experimental_max_gossip_connections_to_persistent_peers = 0
experimental_max_gossip_connections_to_non_persistent_peers = 0

[statesync]
enable = false
rpc_servers = ""
trust_height = 0
trust_hash = ""
trust_period = "168h0m0s"
discovery_time = "15s"
temp_dir = ""
chunk_request_timeout = "10s"
chunk_fetchers = "4"
max_snapshot_chunks = 100000

[blocksync]
version = "v0"

[consensus]
wal_file = "data/cs.wal/wal"
# Block timing: about one block per second once all four are up.
timeout_propose = "3s"
timeout_propose_delta = "500ms"
timeout_prevote = "1s"
timeout_prevote_delta = "500ms"
timeout_precommit = "1s"
timeout_precommit_delta = "500ms"
timeout_commit = "1s"
double_sign_check_height = 0
skip_timeout_commit = false
create_empty_blocks = true
create_empty_blocks_interval = "0s"
peer_gossip_sleep_duration = "100ms"
peer_query_maj23_sleep_duration = "2s"

[storage]
discard_abci_responses = false

[tx_index]
# null | kv | psql
indexer = "kv"
psql-conn = ""

[instrumentation]
prometheus = true
prometheus_listen_addr = "127.0.0.1:{prom}"
max_open_connections = 3
namespace = "cometbft"
"#
    )
}

fn json_bytes(what: &str, v: &impl Serialize) -> Result<Vec<u8>, TestnetError> {
    let mut b = serde_json::to_vec_pretty(v).map_err(|e| TestnetError::Json(what.into(), e))?;
    b.push(b'\n');
    Ok(b)
}

/// Writes a file readable only by its owner (key material).
fn write_secret(p: &Path, body: &[u8]) -> Result<(), TestnetError> {
    write_atomic(p, body)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o600)).map_err(|e| {
            HomeError::Io {
                path: p.display().to_string(),
                source: e,
            }
        })?;
    }
    Ok(())
}

/// Writes every file of the testnet (see the module docs).
pub fn init_files(o: &InitFiles) -> Result<Summary, TestnetError> {
    let n = o.validators;
    if n == 0 || n > 100 {
        return Err(TestnetError::Validators(n));
    }
    let mut all_ports = Vec::with_capacity(n);
    let mut seen = std::collections::BTreeSet::new();
    for i in 0..n {
        let p = ports(i, o.starting_port, o.grpc_starting_port)
            .ok_or_else(|| TestnetError::Ports(format!("node{i}'s ports go past 65535")))?;
        for port in p.all() {
            if port == 0 || !seen.insert(port) {
                return Err(TestnetError::Ports(format!(
                    "port {port} would be used twice; move --grpc-starting-port or --starting-port"
                )));
            }
        }
        all_ports.push(p);
    }
    let dir = &o.output_dir;
    let homes: Vec<Home> = (0..n)
        .map(|i| Home::new(dir.join(format!("node{i}"))))
        .collect();
    if let Some(h) = homes.iter().find(|h| h.is_initialised()) {
        return Err(TestnetError::Exists(h.root.display().to_string()));
    }
    if dir.join("keyring.json").exists() {
        return Err(TestnetError::Exists(dir.display().to_string()));
    }

    let validator_keys = (0..n)
        .map(|_| Ed25519Key::generate())
        .collect::<Result<Vec<_>, _>>()?;
    let node_keys = (0..n)
        .map(|_| Ed25519Key::generate())
        .collect::<Result<Vec<_>, _>>()?;

    // Genesis: the app's defaults (as `veritraind init` writes them), then
    // the validators, CometBFT's consensus parameters and funded accounts.
    let mut g = homes[0].init(&o.chain_id, "node0", false)?;
    g.consensus_params = Some(default_consensus_params());
    g.validators = validator_keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            Ok(json!({
                "address": k.address(),
                "pub_key": k.pub_key_json()?,
                "power": VALIDATOR_POWER.to_string(),
                "name": format!("node{i}"),
            }))
        })
        .collect::<Result<_, serde_json::Error>>()
        .map_err(|e| TestnetError::Json("validators".into(), e))?;
    let keyring = Keyring::open(dir);
    let mut accounts = Vec::new();
    let mut signers = Vec::new();
    for name in ACCOUNTS {
        let s = auth::Signer::generate(&mut rand::rngs::OsRng);
        let e = keyring.add(name, &s)?;
        g.app_state.fund(&s.address(), ACCOUNT_FUNDS);
        accounts.push(AccountSummary {
            name: e.name,
            address: e.address,
            funds: format!("{ACCOUNT_FUNDS}"),
        });
        signers.push((name, s));
    }

    let mut nodes = Vec::with_capacity(n);
    for (i, home) in homes.iter().enumerate() {
        let name = format!("node{i}");
        let p = &all_ports[i];
        write_node(home, &g, &name, p, &validator_keys[i], &node_keys[i])?;
        let peers = (0..n)
            .filter(|&j| j != i)
            .map(|j| format!("{}@127.0.0.1:{}", node_keys[j].node_id(), all_ports[j].p2p))
            .collect::<Vec<_>>()
            .join(",");
        let toml = comet_config_toml(&CometConfig {
            moniker: &name,
            ports: p,
            persistent_peers: &peers,
        });
        write_atomic(&home.root.join("config/config.toml"), toml.as_bytes())?;
        let node_keyring = Keyring::open(&home.root);
        for (key_name, s) in &signers {
            node_keyring.add(key_name, s)?;
        }
        nodes.push(NodeSummary {
            name,
            home: home.root.clone(),
            node_id: node_keys[i].node_id(),
            validator_address: validator_keys[i].address(),
            ports: p.clone(),
            grpc_url: format!("http://127.0.0.1:{}", p.grpc),
            rpc_url: format!("http://127.0.0.1:{}", p.rpc),
        });
    }
    Ok(Summary {
        chain_id: g.chain_id,
        output_dir: dir.clone(),
        keyring: dir.join("keyring.json"),
        nodes,
        accounts,
    })
}

fn write_node(
    home: &Home,
    g: &GenesisDoc,
    moniker: &str,
    p: &NodePorts,
    validator: &Ed25519Key,
    node: &Ed25519Key,
) -> Result<(), TestnetError> {
    home.write_genesis(g)?;
    home.write_config(&AppConfig {
        grpc_address: format!("127.0.0.1:{}", p.grpc),
        abci_address: format!("127.0.0.1:{}", p.abci),
        comet_rpc: format!("http://127.0.0.1:{}", p.rpc),
        // Several nodes share the machine: no fixed HTTP ports.
        explorer_address: String::new(),
        metrics_address: String::new(),
        ..AppConfig::default()
    })?;
    write_atomic(&home.root.join("config/moniker"), moniker.as_bytes())?;
    let json_err = |what: &str| {
        let what = what.to_string();
        move |e| TestnetError::Json(what, e)
    };
    let pv = json!({
        "address": validator.address(),
        "pub_key": validator.pub_key_json().map_err(json_err("priv_validator_key"))?,
        "priv_key": validator.priv_key_json().map_err(json_err("priv_validator_key"))?,
    });
    write_secret(
        &home.root.join("config/priv_validator_key.json"),
        &json_bytes("priv_validator_key", &pv)?,
    )?;
    let nk = json!({ "priv_key": node.priv_key_json().map_err(json_err("node_key"))? });
    write_secret(
        &home.root.join("config/node_key.json"),
        &json_bytes("node_key", &nk)?,
    )?;
    let state = json!({ "height": "0", "round": 0, "step": 0 });
    write_atomic(
        &home.root.join("data/priv_validator_state.json"),
        &json_bytes("priv_validator_state", &state)?,
    )?;
    Ok(())
}
