//! `veritraind testnet init-files` and the `localnet/` scripts. CometBFT is
//! not run here: the files are checked against CometBFT 0.38's formats (key
//! JSON, node IDs, config.toml keys, genesis parsed by tendermint-rs), and
//! node0's home is shown to run: its genesis goes through InitChain and a
//! block in-process, and `veritraind start --home node0` serves its ports.
use app::store::Store;
use app::testkit::free_ports;
use app::App;
use auth::{AuthRead, Signer};
use bank::BankRead;
use framework::{Address, Amount};
use prost::bytes::Bytes;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use tendermint_abci::Application;
use tendermint_proto::google::protobuf::Timestamp;
use tendermint_proto::v0_38::abci::{
    RequestFinalizeBlock, RequestInitChain, RequestPrepareProposal, RequestProcessProposal,
};

const BIN: &str = env!("CARGO_BIN_EXE_veritraind");
const ACCOUNTS: [&str; 3] = ["solver", "verifier", "submitter"];

/// Every key of the `config.toml` that CometBFT 0.38's `cometbft init`
/// writes (its config template), by section ("" is the top level).
const COMETBFT_038_KEYS: &[(&str, &[&str])] = &[
    (
        "",
        &[
            "version",
            "proxy_app",
            "moniker",
            "db_backend",
            "db_dir",
            "log_level",
            "log_format",
            "genesis_file",
            "priv_validator_key_file",
            "priv_validator_state_file",
            "priv_validator_laddr",
            "node_key_file",
            "abci",
            "filter_peers",
        ],
    ),
    (
        "rpc",
        &[
            "laddr",
            "cors_allowed_origins",
            "cors_allowed_methods",
            "cors_allowed_headers",
            "grpc_laddr",
            "grpc_max_open_connections",
            "unsafe",
            "max_open_connections",
            "max_subscription_clients",
            "max_subscriptions_per_client",
            "experimental_subscription_buffer_size",
            "experimental_websocket_write_buffer_size",
            "experimental_close_on_slow_client",
            "timeout_broadcast_tx_commit",
            "max_request_batch_size",
            "max_body_bytes",
            "max_header_bytes",
            "tls_cert_file",
            "tls_key_file",
            "pprof_laddr",
        ],
    ),
    (
        "p2p",
        &[
            "laddr",
            "external_address",
            "seeds",
            "persistent_peers",
            "addr_book_file",
            "addr_book_strict",
            "max_num_inbound_peers",
            "max_num_outbound_peers",
            "unconditional_peer_ids",
            "persistent_peers_max_dial_period",
            "flush_throttle_timeout",
            "max_packet_msg_payload_size",
            "send_rate",
            "recv_rate",
            "pex",
            "seed_mode",
            "private_peer_ids",
            "allow_duplicate_ip",
            "handshake_timeout",
            "dial_timeout",
        ],
    ),
    (
        "mempool",
        &[
            "type",
            "recheck",
            "broadcast",
            "wal_dir",
            "size",
            "max_txs_bytes",
            "cache_size",
            "keep-invalid-txs-in-cache",
            "max_tx_bytes",
            "max_batch_bytes",
            "experimental_max_gossip_connections_to_persistent_peers",
            "experimental_max_gossip_connections_to_non_persistent_peers",
        ],
    ),
    (
        "statesync",
        &[
            "enable",
            "rpc_servers",
            "trust_height",
            "trust_hash",
            "trust_period",
            "discovery_time",
            "temp_dir",
            "chunk_request_timeout",
            "chunk_fetchers",
        ],
    ),
    ("blocksync", &["version"]),
    (
        "consensus",
        &[
            "wal_file",
            "timeout_propose",
            "timeout_propose_delta",
            "timeout_prevote",
            "timeout_prevote_delta",
            "timeout_precommit",
            "timeout_precommit_delta",
            "timeout_commit",
            "double_sign_check_height",
            "skip_timeout_commit",
            "create_empty_blocks",
            "create_empty_blocks_interval",
            "peer_gossip_sleep_duration",
            "peer_query_maj23_sleep_duration",
        ],
    ),
    ("storage", &["discard_abci_responses"]),
    ("tx_index", &["indexer", "psql-conn"]),
    (
        "instrumentation",
        &[
            "prometheus",
            "prometheus_listen_addr",
            "max_open_connections",
            "namespace",
        ],
    ),
];

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn init_files(dir: &Path, extra: &[&str]) -> serde_json::Value {
    let out = Command::new(BIN)
        .args(["testnet", "init-files", "--output-dir"])
        .arg(dir)
        .args(extra)
        .args(["--output", "json"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "init-files failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Standard base64 (RFC 4648, with padding), decoded here rather than with
/// the code under test.
fn b64(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let s = s.trim_end_matches('=');
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in s.bytes() {
        let v = A.iter().position(|&a| a == c).expect("base64 digit") as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
}

fn read_toml(p: &Path) -> toml::Value {
    toml::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn s<'a>(v: &'a toml::Value, section: &str, key: &str) -> &'a toml::Value {
    let t = if section.is_empty() {
        v
    } else {
        v.get(section).unwrap_or_else(|| panic!("no [{section}]"))
    };
    t.get(key)
        .unwrap_or_else(|| panic!("no {key} in [{section}]"))
}

fn str_of<'a>(v: &'a toml::Value, section: &str, key: &str) -> &'a str {
    s(v, section, key).as_str().unwrap()
}

fn port(addr: &str) -> u16 {
    addr.rsplit(':').next().unwrap().parse().unwrap()
}

/// An ed25519 key file entry: checks CometBFT's shape and returns the
/// 32-byte public key (from the 64-byte seed || pubkey form for private keys).
fn ed25519_pub(v: &serde_json::Value, private: bool) -> [u8; 32] {
    let want = if private {
        "tendermint/PrivKeyEd25519"
    } else {
        "tendermint/PubKeyEd25519"
    };
    assert_eq!(v["type"], want);
    let bytes = b64(v["value"].as_str().unwrap());
    let pk: [u8; 32] = if private {
        assert_eq!(bytes.len(), 64, "seed || pubkey");
        let derived = tendermint::private_key::Ed25519::try_from(&bytes[..32])
            .unwrap()
            .verification_key();
        assert_eq!(derived.as_bytes(), &bytes[32..], "pubkey half matches seed");
        bytes[32..].try_into().unwrap()
    } else {
        bytes.as_slice().try_into().unwrap()
    };
    pk
}

fn sha20(pk: &[u8]) -> Vec<u8> {
    Sha256::digest(pk)[..20].to_vec()
}

fn ts(s: i64) -> Option<Timestamp> {
    Some(Timestamp {
        seconds: s,
        nanos: 0,
    })
}

#[test]
fn init_files_writes_four_cometbft_038_homes_that_share_one_genesis() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let summary = init_files(&dir, &["--validators", "4"]);
    assert_eq!(summary["chain_id"], "veritrain-localnet");
    assert_eq!(summary["nodes"].as_array().unwrap().len(), 4);

    let homes: Vec<PathBuf> = (0..4).map(|i| dir.join(format!("node{i}"))).collect();
    for h in &homes {
        for f in [
            "config/config.toml",
            "config/app.toml",
            "config/genesis.json",
            "config/node_key.json",
            "config/priv_validator_key.json",
            "data/priv_validator_state.json",
            "keyring.json",
        ] {
            assert!(h.join(f).is_file(), "{} lacks {f}", h.display());
        }
        let st = read_json(&h.join("data/priv_validator_state.json"));
        assert_eq!(
            st,
            serde_json::json!({"height": "0", "round": 0, "step": 0})
        );
    }

    // Node IDs from node_key.json, p2p ports from config.toml.
    let mut ids = Vec::new();
    let mut p2p_ports = Vec::new();
    for h in &homes {
        let nk = read_json(&h.join("config/node_key.json"));
        ids.push(hex::encode(sha20(&ed25519_pub(&nk["priv_key"], true))));
        let c = read_toml(&h.join("config/config.toml"));
        let laddr = str_of(&c, "p2p", "laddr");
        assert!(laddr.starts_with("tcp://127.0.0.1:"), "{laddr}");
        p2p_ports.push(port(laddr));
    }
    for (i, n) in summary["nodes"].as_array().unwrap().iter().enumerate() {
        assert_eq!(n["node_id"], ids[i]);
    }

    let mut every_port = BTreeSet::new();
    let mut prometheus = BTreeSet::new();
    for (i, h) in homes.iter().enumerate() {
        let c = read_toml(&h.join("config/config.toml"));
        let app: app::home::AppConfig =
            toml::from_str(&std::fs::read_to_string(h.join("config/app.toml")).unwrap()).unwrap();
        // Every section `cometbft init` (0.38) writes.
        for section in [
            "rpc",
            "p2p",
            "mempool",
            "statesync",
            "blocksync",
            "consensus",
            "storage",
            "tx_index",
            "instrumentation",
        ] {
            assert!(
                c.get(section).is_some_and(toml::Value::is_table),
                "[{section}]"
            );
        }
        for (section, keys) in COMETBFT_038_KEYS {
            for key in *keys {
                s(&c, section, key);
            }
        }
        assert_eq!(str_of(&c, "", "moniker"), format!("node{i}"));
        assert_eq!(str_of(&c, "", "abci"), "socket");
        assert_eq!(str_of(&c, "", "genesis_file"), "config/genesis.json");
        assert_eq!(
            str_of(&c, "", "priv_validator_key_file"),
            "config/priv_validator_key.json"
        );
        assert_eq!(
            str_of(&c, "", "priv_validator_state_file"),
            "data/priv_validator_state.json"
        );
        assert_eq!(str_of(&c, "", "node_key_file"), "config/node_key.json");
        assert_eq!(
            str_of(&c, "", "proxy_app"),
            format!("tcp://{}", app.abci_address),
            "CometBFT dials the app's ABCI address"
        );
        let rpc = str_of(&c, "rpc", "laddr");
        assert_eq!(
            rpc.replace("tcp://", "http://"),
            app.comet_rpc,
            "the app broadcasts through its own CometBFT"
        );
        assert_eq!(s(&c, "p2p", "addr_book_strict").as_bool(), Some(false));
        assert_eq!(s(&c, "p2p", "allow_duplicate_ip").as_bool(), Some(true));
        assert_eq!(str_of(&c, "blocksync", "version"), "v0");
        // broadcast_tx_sync sends the tx base64-encoded in a JSON body: the
        // RPC must take the largest tx the mempool (and the app) accepts.
        let max_tx = s(&c, "mempool", "max_tx_bytes").as_integer().unwrap();
        assert!(max_tx >= 1 << 20, "the app's max_tx_bytes is 1 MiB");
        let max_body = s(&c, "rpc", "max_body_bytes").as_integer().unwrap();
        assert!(max_body > max_tx * 4 / 3 + 4096, "{max_body} vs {max_tx}");
        assert_eq!(str_of(&c, "consensus", "timeout_commit"), "1s");
        assert_eq!(str_of(&c, "tx_index", "indexer"), "kv");
        assert_eq!(s(&c, "instrumentation", "prometheus").as_bool(), Some(true));
        let prom = str_of(&c, "instrumentation", "prometheus_listen_addr");
        prometheus.insert(prom.to_string());

        let peers: BTreeSet<String> = str_of(&c, "p2p", "persistent_peers")
            .split(',')
            .map(str::to_string)
            .collect();
        let want: BTreeSet<String> = (0..4)
            .filter(|&j| j != i)
            .map(|j| format!("{}@127.0.0.1:{}", ids[j], p2p_ports[j]))
            .collect();
        assert_eq!(peers, want, "node{i}'s persistent_peers are the 3 others");

        for p in [
            port(&app.abci_address),
            port(&app.grpc_address),
            port(rpc),
            p2p_ports[i],
            port(prom),
        ] {
            assert!(every_port.insert(p), "port {p} used twice");
        }
        for a in [&app.abci_address, &app.grpc_address] {
            assert!(a.starts_with("127.0.0.1:"), "{a}");
        }
    }
    assert_eq!(every_port.len(), 20);
    assert_eq!(prometheus.len(), 4);

    // One genesis, byte for byte, in every home.
    let bytes = std::fs::read(homes[0].join("config/genesis.json")).unwrap();
    for h in &homes[1..] {
        assert_eq!(std::fs::read(h.join("config/genesis.json")).unwrap(), bytes);
    }
    // tendermint-rs parses it as a CometBFT genesis (consensus params included).
    let tm: tendermint::Genesis<serde_json::Value> = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(tm.chain_id.as_str(), "veritrain-localnet");
    assert_eq!(tm.initial_height, 1);
    assert_eq!(tm.consensus_params.block.max_bytes, 22_020_096);
    assert_eq!(tm.validators.len(), 4);
    let g = read_json(&homes[0].join("config/genesis.json"));
    assert_eq!(
        g["consensus_params"]["validator"]["pub_key_types"][0],
        "ed25519"
    );
    for (i, h) in homes.iter().enumerate() {
        let pv = read_json(&h.join("config/priv_validator_key.json"));
        let pk = ed25519_pub(&pv["priv_key"], true);
        assert_eq!(ed25519_pub(&pv["pub_key"], false), pk);
        let addr = hex::encode_upper(sha20(&pk));
        assert_eq!(pv["address"], addr);
        let v = &g["validators"][i];
        assert_eq!(v["address"], addr, "genesis validator {i}");
        assert_eq!(v["pub_key"], pv["pub_key"]);
        assert_eq!(v["power"], "10");
        assert_eq!(tm.validators[i].address.to_string(), addr);
    }

    // The three accounts: in DIR/keyring.json and every node's keyring,
    // funded in app_state.
    let doc: app::home::GenesisDoc = serde_json::from_slice(&bytes).unwrap();
    let funded: BTreeMap<String, String> = doc
        .app_state
        .bank
        .balances
        .iter()
        .map(|b| (b.address.clone(), b.amount.clone()))
        .collect();
    let keyring = app::keyring::Keyring::open(&dir);
    let mut signers = BTreeMap::new();
    for name in ACCOUNTS {
        let e = keyring.get(name).unwrap();
        assert_eq!(
            funded.get(&e.address).map(String::as_str),
            Some("1000000000000000"),
            "{name} is funded"
        );
        for h in &homes {
            let k = app::keyring::Keyring::open(h).get(name).unwrap();
            assert_eq!(k.address, e.address);
        }
        signers.insert(name, keyring.signer(name).unwrap());
    }

    the_genesis_runs_in_the_app(&homes[0], &g, &signers);
}

/// What `veritraind start --home node0` does when CometBFT connects: the
/// store in the node's home, InitChain with genesis.json's `app_state`, then
/// a block with a transfer signed by the `solver` key.
fn the_genesis_runs_in_the_app(
    home: &Path,
    g: &serde_json::Value,
    signers: &BTreeMap<&str, Signer>,
) {
    let chain = g["chain_id"].as_str().unwrap();
    let app = App::new(Store::open(&app::home::Home::new(home).db_path()).unwrap()).unwrap();
    let r = app.init_chain(RequestInitChain {
        time: ts(1_700_000_000),
        chain_id: chain.into(),
        consensus_params: None,
        validators: vec![],
        app_state_bytes: Bytes::from(serde_json::to_vec(&g["app_state"]).unwrap()),
        initial_height: 1,
    });
    assert_eq!(
        r.app_hash.len(),
        32,
        "the app refused the genesis app_state"
    );

    let solver = &signers["solver"];
    let submitter: Address = signers["submitter"].address();
    let acc = app
        .store()
        .account(&solver.address())
        .unwrap()
        .expect("solver's account exists at genesis");
    let fee = app.store().min_fee().unwrap();
    let tx = solver.sign_tx(
        vec![app::testkit::send_msg(
            &solver.address(),
            &submitter,
            Amount(1234),
        )],
        "",
        chain,
        acc.account_number,
        acc.sequence,
        fee,
    );
    let txs = vec![Bytes::from(tx)];
    let p = app.prepare_proposal(RequestPrepareProposal {
        max_tx_bytes: 22_020_096,
        txs,
        height: 1,
        time: ts(1_700_000_001),
        ..Default::default()
    });
    let pp = app.process_proposal(RequestProcessProposal {
        txs: p.txs.clone(),
        height: 1,
        time: ts(1_700_000_001),
        ..Default::default()
    });
    assert_eq!(pp.status, 1, "proposal accepted");
    let f = app.finalize_block(RequestFinalizeBlock {
        txs: p.txs,
        height: 1,
        time: ts(1_700_000_001),
        ..Default::default()
    });
    assert_eq!(f.tx_results.len(), 1);
    assert_eq!(f.tx_results[0].code, 0, "{}", f.tx_results[0].log);
    app.commit();
    assert_eq!(
        app.store().balance(&submitter).unwrap(),
        Amount(1_000_000_000_001_234)
    );
}

#[test]
fn veritraind_start_serves_the_ports_of_a_testnet_home() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    let base = free_ports(6);
    let summary = init_files(
        &dir,
        &[
            "--validators",
            "1",
            "--starting-port",
            &base.to_string(),
            "--grpc-starting-port",
            &(base + 5).to_string(),
            "--chain-id",
            "vt-one",
        ],
    );
    let node = &summary["nodes"][0];
    let abci = node["ports"]["abci"].as_u64().unwrap() as u16;
    let grpc = node["ports"]["grpc"].as_u64().unwrap() as u16;
    assert_eq!(node["ports"]["p2p"].as_u64().unwrap() as u16, base);
    assert_eq!(abci, base + 2);
    assert_eq!(grpc, base + 5);
    // One validator: no peers.
    let c = read_toml(&dir.join("node0/config/config.toml"));
    assert_eq!(str_of(&c, "p2p", "persistent_peers"), "");

    let mut child = Command::new(BIN)
        .args(["start", "--log", "warn", "--home"])
        .arg(dir.join("node0"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let up = |p: u16| std::net::TcpStream::connect(("127.0.0.1", p)).is_ok();
    while !(up(abci) && up(grpc)) {
        if let Some(st) = child.try_wait().unwrap() {
            panic!("veritraind start exited: {st}");
        }
        assert!(Instant::now() < deadline, "ABCI/gRPC ports never opened");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn init_files_refuses_to_overwrite_an_existing_testnet() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("net");
    init_files(&dir, &["--validators", "2"]);
    let before = std::fs::read(dir.join("node0/config/genesis.json")).unwrap();
    let out = Command::new(BIN)
        .args(["testnet", "init-files", "--validators", "2", "--output-dir"])
        .arg(&dir)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds a testnet"));
    assert_eq!(
        std::fs::read(dir.join("node0/config/genesis.json")).unwrap(),
        before
    );
}

#[test]
fn localnet_start_without_cometbft_fails_at_once_with_the_install_command() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    // An empty bin dir plus the basics; no cometbft anywhere on PATH.
    let out = Command::new("bash")
        .arg(repo_root().join("localnet/start"))
        .env("PATH", "/usr/bin:/bin")
        .env_remove("COMETBFT")
        .env("LOCALNET_DATA", &data)
        .env("VERITRAIND", BIN)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "start succeeded: {err}");
    assert!(
        err.contains("go install github.com/cometbft/cometbft/cmd/cometbft@v0.38"),
        "{err}"
    );
    assert!(err.contains("1.22.11"), "{err}");
    assert!(!data.exists(), "nothing is written before the check");
}

#[test]
fn localnet_scripts_parse_and_pass_shellcheck_when_it_is_installed() {
    let dir = repo_root().join("localnet");
    let scripts = ["start", "stop", "status", "logs", "reset", "lib.sh"];
    for s in scripts {
        let st = Command::new("bash")
            .arg("-n")
            .arg(dir.join(s))
            .status()
            .unwrap();
        assert!(st.success(), "bash -n localnet/{s}");
    }
    match Command::new("shellcheck")
        .arg("-x")
        .current_dir(&dir)
        .args(scripts)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "shellcheck:\n{}",
            String::from_utf8_lossy(&out.stdout)
        ),
        Err(_) => eprintln!("shellcheck is not installed; skipped"),
    }
}

/// A stand-in for `cometbft` that behaves like it where the scripts can
/// tell: `version` prints a 0.38 version; `start --home H` exits with an
/// error unless H has a config.toml and the app listens on its `proxy_app`
/// port (real CometBFT gives up when it cannot reach the app), then runs
/// until it is killed.
const FAKE_COMETBFT: &str = r#"#!/usr/bin/env bash
set -euo pipefail
case "${1:-}" in
  version) echo 0.38.17 ;;
  start)
    [[ "${2:-}" == --home ]] || exit 2
    cfg="$3/config/config.toml"
    [[ -f "$cfg" ]] || { echo "no $cfg" >&2; exit 1; }
    port="$(sed -n 's#^proxy_app = "tcp://127.0.0.1:\([0-9]*\)"$#\1#p' "$cfg")"
    (exec 3<>"/dev/tcp/127.0.0.1/$port") || { echo "app not listening on $port" >&2; exit 1; }
    echo "fake cometbft running for $3"
    exec sleep 600 ;;
  *) exit 2 ;;
esac
"#;

struct Localnet {
    data: PathBuf,
    env: Vec<(String, String)>,
}

impl Localnet {
    fn run(&self, script: &str, args: &[&str]) -> std::process::Output {
        let mut c = Command::new("bash");
        c.arg(repo_root().join("localnet").join(script)).args(args);
        c.env_remove("COMETBFT");
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    fn pid(&self, name: &str) -> Option<u32> {
        std::fs::read_to_string(self.data.join("pids").join(format!("{name}.pid")))
            .ok()
            .map(|s| s.trim().parse().unwrap())
    }
}

impl Drop for Localnet {
    fn drop(&mut self) {
        let _ = self.run("stop", &[]);
    }
}

fn alive(pid: u32) -> bool {
    // A killed child of the script may linger as a zombie until reaped.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state is the first field after "(comm)".
        Ok(s) => s
            .rsplit(')')
            .next()
            .and_then(|rest| rest.split_whitespace().next())
            .is_some_and(|st| st != "Z"),
        Err(_) => false,
    }
}

#[test]
fn localnet_scripts_start_report_stop_and_reset_a_two_node_network() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    // A fake solverd that shows how it was started; no verifierd.
    let fake_solverd = "#!/usr/bin/env bash\necho \"solverd $*\"\nexec sleep 600\n";
    for (name, body) in [("cometbft", FAKE_COMETBFT), ("solverd", fake_solverd)] {
        let fake = bin.join(name);
        std::fs::write(&fake, body).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }
    // Node blocks at base and base + 10, gRPC at base + 30 and base + 31.
    let base = free_ports(32);
    let data = tmp.path().join("data");
    let net = Localnet {
        data: data.clone(),
        env: vec![
            ("PATH".into(), format!("{}:/usr/bin:/bin", bin.display())),
            ("LOCALNET_DATA".into(), data.display().to_string()),
            ("VERITRAIND".into(), BIN.into()),
            (
                "CARGO_TARGET_DIR".into(),
                tmp.path().join("no-target").display().to_string(),
            ),
            ("LOCALNET_STARTING_PORT".into(), base.to_string()),
            (
                "LOCALNET_GRPC_STARTING_PORT".into(),
                (base + 30).to_string(),
            ),
        ],
    };

    // A port already taken (here node0's gRPC) stops start before it
    // launches anything on it.
    // (If something else grabbed it since `free_ports`, it is busy all the same.)
    let busy = std::net::TcpListener::bind(("127.0.0.1", base + 30)).ok();
    let out = net.run("start", &["2"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(!out.status.success(), "start ignored a busy port:\n{err}");
    assert!(err.contains("already in use"), "{err}");
    assert!(net.pid("node0.app").is_none());
    drop(busy);

    let out = net.run("start", &["2"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success(), "start failed:\n{err}");
    assert!(err.contains("no verifierd binary"), "{err}");
    assert!(err.contains("solverd started"), "{err}");
    let solverd = std::fs::read_to_string(data.join("logs/solverd.log")).unwrap();
    assert_eq!(
        solverd.trim(),
        format!(
            "solverd --home {} --node http://127.0.0.1:{} --from solver --stake 5000000uvtr --listen 127.0.0.1:9190 --metrics-address 127.0.0.1:9464",
            data.display(),
            base + 30
        )
    );
    let summary = read_json(&data.join("testnet.json"));
    assert_eq!(summary["nodes"].as_array().unwrap().len(), 2);
    let mut pids = vec![net.pid("solverd").expect("solverd's pid file")];
    for node in ["node0", "node1"] {
        for what in ["app", "cometbft"] {
            let pid = net
                .pid(&format!("{node}.{what}"))
                .unwrap_or_else(|| panic!("no pid file for {node}.{what}"));
            assert!(alive(pid), "{node}.{what} is not running:\n{err}");
            pids.push(pid);
        }
    }
    // CometBFT (the fake) reached its app: it checks before it runs.
    let deadline = Instant::now() + Duration::from_secs(10);
    for node in ["node0", "node1"] {
        let log = data.join(format!("logs/{node}.cometbft.log"));
        while !std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("fake cometbft running")
        {
            assert!(Instant::now() < deadline, "{node}'s cometbft did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // A second start leaves the running nodes alone.
    let again = net.run("start", &["2"]);
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already running"));
    assert_eq!(net.pid("node0.app"), Some(pids[1]));

    let st = net.run("status", &[]);
    let text = String::from_utf8_lossy(&st.stdout).to_string();
    assert!(st.status.success(), "{text}");
    for node in ["node0", "node1"] {
        assert!(
            text.contains(&format!("== {node}: veritraind up")),
            "{text}"
        );
    }
    assert!(text.contains(&format!("127.0.0.1:{}", base + 30)), "{text}");

    let stop = net.run("stop", &[]);
    assert!(stop.status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&p| alive(p)) {
        assert!(Instant::now() < deadline, "processes survived stop");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(net.pid("node0.app").is_none(), "pid files removed");

    let reset = net.run("reset", &[]);
    assert!(reset.status.success());
    assert!(!data.exists(), "reset deletes the data");
}
