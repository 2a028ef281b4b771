//! The explorer served by the node: its JSON API, live events and metrics over
//! real HTTP, and its pages in a real browser (Debian's headless Chromium)
//! after `veritraind demo --serve` has run a job and a dispute. The browser
//! test saves a screenshot of each page under `<target dir>/explorer-screenshots/`
//! (or `$VT_SCREENSHOT_DIR`). Without Chromium it says so and passes, unless
//! `VT_REQUIRE_CHROMIUM=1`, which CI sets (`.ci/run` installs it).
use app::home::Home;
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `GET path` over HTTP/1.1; returns the status code and the body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        unchunk(body)
    } else {
        body.to_string()
    };
    (code, body)
}

fn unchunk(mut b: &str) -> String {
    let mut out = String::new();
    while let Some((len, rest)) = b.split_once("\r\n") {
        let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        b = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn get_json(addr: SocketAddr, path: &str) -> Value {
    let (code, body) = get(addr, path);
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_json_api_live_events_and_metrics_answer_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let n = app::node::start_dev(
        &Home::new(dir.path()),
        "127.0.0.1:0".parse().unwrap(),
        Duration::from_millis(50),
    )
    .await
    .unwrap();
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let web = app::explorer::Http::start(Some((any, true)), Some((any, true)), &n.grpc_url(), None)
        .await
        .unwrap();
    let addr = web.explorer_addr().unwrap();
    let metrics_url = web.metrics_url().unwrap();
    let dev_addr = app::keyring::Keyring::open(dir.path())
        .get(app::node::DEV_KEY)
        .unwrap()
        .address;
    let r = tokio::task::spawn_blocking(move || {
        let (code, html) = get(addr, "/");
        assert_eq!(code, 200);
        assert!(html.contains("<script src=\"/app.js\">"), "{html}");
        assert_eq!(get(addr, "/app.js").0, 200);
        let s = get_json(addr, "/api/status");
        assert_eq!(s["chain_id"], app::node::DEV_CHAIN_ID);
        assert_eq!(s["app_hash"].as_str().unwrap().len(), 64);
        // Blocks arrive through the stream that also feeds the live events.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let b = get_json(addr, "/api/blocks?limit=5");
            if b["blocks"].as_array().unwrap().len() >= 2 {
                let h = b["blocks"][0]["height"].as_u64().unwrap();
                let one = get_json(addr, &format!("/api/blocks/{h}"));
                assert_eq!(one["height"], h);
                break;
            }
            assert!(Instant::now() < deadline, "no blocks: {b}");
            std::thread::sleep(Duration::from_millis(100));
        }
        assert_eq!(get_json(addr, "/api/tasks")["tasks"], serde_json::json!([]));
        assert_eq!(
            get_json(addr, "/api/disputes")["disputes"],
            serde_json::json!([])
        );
        // Bad requests are JSON errors with the right code.
        for (path, code, want) in [
            ("/api/tasks/7", 404, "does not exist"),
            ("/api/tasks/x", 400, "not a task id"),
            ("/api/tasks?status=lost", 400, "unknown status"),
            ("/api/tasks?limit=many", 400, "not a whole number"),
            ("/api/disputes/3", 404, "does not exist"),
            ("/api/leaderboard?role=judge", 400, "unknown role"),
            ("/api/accounts/vt1nope", 400, "not an address"),
            ("/api/blocks/999999", 404, "not committed"),
            ("/api/nothing", 404, "GET /api"),
        ] {
            let (c, body) = get(addr, path);
            assert_eq!(c, code, "{path}: {body}");
            let v: Value = serde_json::from_str(&body).unwrap();
            assert!(
                v["error"].as_str().unwrap().contains(want),
                "{path}: {body}"
            );
        }
        // The dev key's account.
        let a = get_json(addr, &format!("/api/accounts/{dev_addr}"));
        assert_ne!(a["balance"], "0", "{a}");
        // Server-sent events: a `block` event comes without asking again.
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        write!(s, "GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut lines = BufReader::new(s).lines();
        let head = lines.next().unwrap().unwrap();
        assert!(head.contains("200"), "{head}");
        let mut saw = false;
        for l in lines.take(40) {
            if l.unwrap().starts_with("event: block") {
                saw = true;
                break;
            }
        }
        assert!(saw, "no block event");
    });
    r.await.unwrap();
    // Metrics: OpenMetrics text with the node's gauges, in seconds.
    let m_addr: SocketAddr = metrics_url
        .trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .parse()
        .unwrap();
    let body = tokio::task::spawn_blocking(move || get(m_addr, "/metrics"))
        .await
        .unwrap()
        .1;
    for want in [
        "veritrain_height ",
        "veritrain_block_interval_seconds",
        "veritrain_mempool_size",
        "veritrain_blocks_total",
    ] {
        assert!(body.contains(want), "{want} missing:\n{body}");
    }
    assert!(!body.contains("_us"), "times are in seconds:\n{body}");
    web.shutdown().await;
    n.shutdown().await;
}

fn chromium() -> Option<String> {
    for c in ["chromium", "chromium-browser", "google-chrome"] {
        if Command::new(c)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(c.to_string());
        }
    }
    None
}

fn screenshot_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("VT_SCREENSHOT_DIR") {
        return PathBuf::from(d);
    }
    // <target>/debug/deps/explorer-… → <target>/explorer-screenshots
    let exe = std::env::current_exe().unwrap();
    let target = exe
        .ancestors()
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n == "debug" || n == "release")
        })
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("target"));
    target.join("explorer-screenshots")
}

/// Runs headless Chromium on `url` with `args`; gives up after 90 s.
fn browse(browser: &str, profile: &Path, args: &[&str], url: &str) -> String {
    let out = Command::new("timeout")
        .arg("90")
        .arg(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--virtual-time-budget=8000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{browser} {args:?} {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn the_pages_show_a_job_and_a_dispute_in_a_real_browser() {
    let Some(browser) = chromium() else {
        if std::env::var("VT_REQUIRE_CHROMIUM").as_deref() == Ok("1") {
            panic!("VT_REQUIRE_CHROMIUM=1 but no chromium is installed");
        }
        eprintln!("skipping: no chromium (apt-get install chromium; .ci/run does)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(env!("CARGO_BIN_EXE_veritraind"))
        .args(["demo", "--serve", "--steps", "24", "--output", "json"])
        .args(["--explorer-address", &format!("127.0.0.1:{port}")])
        .arg("--dir")
        .arg(dir.path().join("net"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    /// Stops the demo however the test ends.
    struct Demo(std::process::Child);
    impl Drop for Demo {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut demo = Demo(child);
    // The demo prints its report, then "explorer at … (Ctrl-C to stop)".
    let stderr = demo.0.stderr.take().unwrap();
    let mut log = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line.unwrap();
        log.push_str(&line);
        log.push('\n');
        if line.contains("Ctrl-C to stop") {
            break;
        }
    }
    assert!(
        log.contains("Ctrl-C to stop"),
        "the demo ended early:\n{log}"
    );
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let tasks = get_json(addr, "/api/tasks");
    let tasks = tasks["tasks"].as_array().unwrap().clone();
    let honest = tasks
        .iter()
        .find(|t| t["status"] == "finalized")
        .expect("a finalized job");
    let cheat = tasks
        .iter()
        .find(|t| t["status"] == "failed")
        .expect("a failed job");
    let disputes = get_json(addr, "/api/disputes");
    let d = &disputes["disputes"][0];
    let (h_id, c_id, d_id) = (honest["id"].clone(), cheat["id"].clone(), d["id"].clone());
    let solver = honest["solver"].as_str().unwrap().to_string();

    let shots = screenshot_dir();
    std::fs::create_dir_all(&shots).unwrap();
    let base = format!("http://{addr}/?live=0");
    let pages: Vec<(&str, String, Vec<String>)> = vec![
        (
            "network",
            "#/".into(),
            vec![
                "Recent blocks".into(),
                "veritrain-dev".into(),
                "Validators".into(),
            ],
        ),
        (
            "tasks",
            "#/tasks".into(),
            vec![
                format!("Task {h_id}"),
                format!("Task {c_id}"),
                "finalized".into(),
                "failed".into(),
            ],
        ),
        (
            "task-honest",
            format!("#/task/{h_id}"),
            vec![
                format!("Task {h_id}"),
                "Timeline".into(),
                "verified".into(),
                "Payouts".into(),
            ],
        ),
        (
            "task-disputed",
            format!("#/task/{c_id}"),
            vec!["disputed".into(), format!("Dispute {d_id}")],
        ),
        (
            "dispute",
            format!("#/dispute/{d_id}"),
            vec![
                "Bisection".into(),
                "opened · h".into(),
                "Node found".into(),
                "challenger wins".into(),
                "Slashed".into(),
            ],
        ),
        (
            "leaderboard",
            "#/leaderboard".into(),
            vec!["Leaderboard".into(), solver[..12].to_string()],
        ),
        (
            "account",
            format!("#/account/{solver}"),
            vec!["Balance".into(), "Stake".into(), format!("Task {h_id}")],
        ),
    ];
    for (name, frag, wants) in &pages {
        let url = format!("{base}{frag}");
        let profile = dir.path().join(format!("profile-{name}"));
        let dom = browse(&browser, &profile, &["--dump-dom"], &url);
        assert!(
            dom.contains("data-ready=\"1\""),
            "{name}: the page did not render:\n{dom}"
        );
        assert!(
            !dom.contains("class=\"error\""),
            "{name}: an error is shown:\n{dom}"
        );
        for w in wants {
            assert!(
                dom.contains(w.as_str()),
                "{name}: {w:?} not on the page:\n{dom}"
            );
        }
        let png = shots.join(format!("{name}.png"));
        let _ = std::fs::remove_file(&png);
        browse(
            &browser,
            &profile,
            &[
                &format!("--screenshot={}", png.display()),
                "--window-size=1280,1400",
            ],
            &url,
        );
        let meta = std::fs::metadata(&png).unwrap_or_else(|e| panic!("{name}: no screenshot: {e}"));
        assert!(
            meta.len() > 10_000,
            "{name}: screenshot is {} bytes",
            meta.len()
        );
    }
    eprintln!("screenshots in {}", shots.display());
    // Ctrl-C (SIGTERM here) ends the serving demo cleanly.
    let pid = demo.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(st) = demo.0.try_wait().unwrap() {
            assert!(st.success(), "the demo exited with {st}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}
