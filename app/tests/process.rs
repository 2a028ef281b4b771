//! `veritraind` as a user runs it: the CLI against `veritraind dev`, `kill -9`
//! and restart on the same home, and a crash loop that kills the node at
//! random points during block production and then replays every block.
use app::client::NodeClient;
use app::testkit::free_port;
use auth::Signer;
use framework::Amount;
use rand::{Rng, SeedableRng};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_veritraind"))
}

struct Dev {
    child: Child,
    url: String,
}

impl Drop for Dev {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dev {
    fn kill9(mut self) {
        // Child::kill sends SIGKILL on Unix.
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

fn dev(home: &Path, port: u16, block_ms: u64) -> Dev {
    let child = bin()
        .args(["dev", "--home"])
        .arg(home)
        .args([
            "--grpc-address",
            &format!("127.0.0.1:{port}"),
            "--block-ms",
            &block_ms.to_string(),
            "--log",
            "warn",
            "--no-explorer",
            "--no-metrics",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "veritraind dev did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Dev {
        child,
        url: format!("http://127.0.0.1:{port}"),
    }
}

fn run(home: &Path, node: &str, args: &[&str]) -> Output {
    bin()
        .arg("--home")
        .arg(home)
        .env("VERITRAIND_NODE", node)
        .args(args)
        .output()
        .unwrap()
}

fn ok(home: &Path, node: &str, args: &[&str]) -> String {
    let o = run(home, node, args);
    assert!(
        o.status.success(),
        "veritraind {args:?} failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout).unwrap()
}

fn height(url: &str) -> u64 {
    let o = bin()
        .args(["status", "--node", url, "--output", "json"])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["height"].as_u64().unwrap()
}

#[test]
fn a_send_from_the_cli_survives_kill_9_and_the_chain_continues() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let port = free_port();
    let node = dev(h, port, 100);
    let url = node.url.clone();
    let alice = ok(h, &url, &["keys", "add", "alice", "--output", "json"]);
    let alice: serde_json::Value = serde_json::from_str(&alice).unwrap();
    let alice = alice["address"].as_str().unwrap().to_string();
    // The keyring is private.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(h.join("keyring.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let sent = ok(
        h,
        &url,
        &[
            "tx", "bank", "send", "dev", &alice, "1000uvtr", "--yes", "--output", "json",
        ],
    );
    let sent: serde_json::Value = serde_json::from_str(&sent).unwrap();
    assert_eq!(sent["code"], 0);
    let bal = ok(
        h,
        &url,
        &["query", "bank", "balances", &alice, "--output", "json"],
    );
    let bal: serde_json::Value = serde_json::from_str(&bal).unwrap();
    assert_eq!(bal["balances"][0]["amount"], "1000");
    assert_eq!(bal["balances"][0]["denom"], "uvtr");

    // A wrong flag and a bad address are clear errors.
    let o = run(
        h,
        &url,
        &["tx", "bank", "send", "dev", "vt1notanaddress", "5", "--yes"],
    );
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("neither a vt1"));
    let o = run(
        h,
        &url,
        &["query", "bank", "balances", &alice, "--bogus-flag"],
    );
    assert!(!o.status.success());

    let before = height(&url);
    node.kill9();
    let node = dev(h, port, 100);
    let after = height(&node.url);
    assert!(after >= before, "height went back from {before} to {after}");
    let bal = ok(
        h,
        &node.url,
        &["query", "bank", "balances", &alice, "--output", "json"],
    );
    assert!(bal.contains("\"1000\""), "{bal}");
    // The chain continues.
    let deadline = Instant::now() + Duration::from_secs(20);
    while height(&node.url) <= after {
        assert!(Instant::now() < deadline, "no new blocks after restart");
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(node);
    // Re-executing every block, the last one included, gives the same app hashes.
    let r = bin()
        .arg("--home")
        .arg(h)
        .args(["debug", "replay", "--output", "json", "--log", "error"])
        .output()
        .unwrap();
    assert!(r.status.success(), "{}", String::from_utf8_lossy(&r.stderr));
}

#[test]
fn killing_the_node_at_random_points_never_corrupts_or_diverges() {
    let home = tempfile::tempdir().unwrap();
    let h = home.path();
    let port = free_port();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut last_height = 0;
    let kills = 20;
    for round in 0..kills {
        let node = dev(h, port, 15);
        let url = node.url.clone();
        let dev_key = app::keyring::Keyring::open(h).signer("dev").unwrap();
        let run_for = Duration::from_millis(rng.gen_range(150..700));
        let observed = rt.block_on(async {
            let c = NodeClient::connect(&url).await.unwrap();
            let s = c.status().await.unwrap();
            assert!(
                s.height >= last_height,
                "round {round}: height went back from {last_height} to {}",
                s.height
            );
            let end = Instant::now() + run_for;
            let mut i = 0u64;
            while Instant::now() < end {
                let to = Signer::from_seed(&format!("r{round}-{i}")).address();
                // Errors (duplicate in cache, stale sequence) are expected under load.
                let _ = c
                    .sign_and_send(
                        &dev_key,
                        vec![app::testkit::send_msg(&dev_key.address(), &to, Amount(1))],
                        "",
                        None,
                        None,
                    )
                    .await;
                i += 1;
                tokio::time::sleep(Duration::from_millis(3)).await;
            }
            c.status().await.unwrap().height
        });
        last_height = observed;
        node.kill9();
    }
    assert!(
        last_height > 20,
        "too few blocks were produced ({last_height})"
    );
    // Restart once more: the store opens and the chain continues.
    let node = dev(h, port, 15);
    assert!(height(&node.url) >= last_height);
    drop(node);
    let r = bin()
        .arg("--home")
        .arg(h)
        .args(["debug", "replay", "--output", "json", "--log", "error"])
        .output()
        .unwrap();
    assert!(
        r.status.success(),
        "replay after {kills} kills: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert!(v["blocks"].as_u64().unwrap() >= last_height);
}
