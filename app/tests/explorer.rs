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
    let mut buf = [0u8; 8192];
    // Until the server closes, or the body reaches its Content-Length (some
    // servers, like Chromium's DevTools, keep the connection open).
    loop {
        let n = s.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&raw);
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())
                    .flatten()
            });
            if len.is_some_and(|len| body.len() >= len) {
                break;
            }
        }
    }
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
    let port = app::testkit::free_port();
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

    // The node's metrics saw the same: tasks by status, a slash, transactions by type.
    let (code, m) = get(addr, "/metrics");
    assert_eq!(code, 200);
    for want in [
        "veritrain_tasks{status=\"finalized\"} 1",
        "veritrain_tasks{status=\"failed\"} 1",
        "veritrain_open_disputes 0",
        "veritrain_txs_total{type=\"MsgSubmitTask\"} 2",
        "veritrain_txs_total{type=\"MsgOpenDispute\"} 1",
    ] {
        assert!(m.contains(want), "{want} missing:\n{m}");
    }
    let slashes = m
        .lines()
        .find_map(|l| l.strip_prefix("veritrain_slashes_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(slashes >= 1.0, "no slash counted:\n{m}");

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
                "full re-execution".into(),
                "Guarantee".into(),
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

/// A minimal WebSocket client (RFC 6455: masked text frames out, unmasked
/// frames in), enough to speak the Chrome DevTools Protocol to headless Chromium.
struct Ws {
    s: TcpStream,
    next_id: u64,
}

impl Ws {
    fn connect(url: &str) -> Ws {
        let rest = url.strip_prefix("ws://").unwrap();
        let (host, path) = rest.split_once('/').unwrap();
        let mut s = TcpStream::connect(host).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        write!(
            s,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        let mut head = Vec::new();
        let mut b = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            s.read_exact(&mut b).unwrap();
            head.push(b[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        Ws { s, next_id: 1 }
    }

    fn send_text(&mut self, text: &str) {
        let p = text.as_bytes();
        let mask = [0x37u8, 0xfa, 0x21, 0x3d];
        let mut f = vec![0x81u8];
        match p.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n < 65536 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(p.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.s.write_all(&f).unwrap();
    }

    fn read_message(&mut self) -> String {
        let mut msg = Vec::new();
        loop {
            let mut h = [0u8; 2];
            self.s.read_exact(&mut h).unwrap();
            let (fin, op) = (h[0] & 0x80 != 0, h[0] & 0x0f);
            let mut len = u64::from(h[1] & 0x7f);
            if len == 126 {
                let mut l = [0u8; 2];
                self.s.read_exact(&mut l).unwrap();
                len = u64::from(u16::from_be_bytes(l));
            } else if len == 127 {
                let mut l = [0u8; 8];
                self.s.read_exact(&mut l).unwrap();
                len = u64::from_be_bytes(l);
            }
            let mut p = vec![0u8; len as usize];
            self.s.read_exact(&mut p).unwrap();
            if op == 0x8 {
                panic!("the browser closed the DevTools connection");
            }
            if matches!(op, 0x0..=0x2) {
                msg.extend_from_slice(&p);
                if fin {
                    return String::from_utf8_lossy(&msg).into_owned();
                }
            }
        }
    }

    /// Sends a CDP command and returns its result (events in between are skipped).
    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        self.send_text(
            &serde_json::json!({"id": id, "method": method, "params": params}).to_string(),
        );
        loop {
            let v: Value = serde_json::from_str(&self.read_message()).unwrap();
            if v["id"] == id {
                assert!(v.get("error").is_none(), "{method}: {v}");
                return v["result"].clone();
            }
        }
    }

    fn eval(&mut self, expr: &str) -> Value {
        self.call(
            "Runtime.evaluate",
            serde_json::json!({"expression": expr, "returnByValue": true}),
        )["result"]["value"]
            .clone()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_blocks_and_tasks_appear_in_an_open_page_without_reloading() {
    let Some(browser) = chromium() else {
        if std::env::var("VT_REQUIRE_CHROMIUM").as_deref() == Ok("1") {
            panic!("VT_REQUIRE_CHROMIUM=1 but no chromium is installed");
        }
        eprintln!("skipping: no chromium");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let timing = app::cluster::Timing {
        block_ms: 200,
        ..Default::default()
    };
    let c = std::sync::Arc::new(
        app::cluster::Cluster::start(&dir.path().join("net"), &["submitter"], &timing)
            .await
            .unwrap(),
    );
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let web = app::explorer::Http::start(Some((any, true)), None, &c.node.grpc_url(), None)
        .await
        .unwrap();
    let addr = web.explorer_addr().unwrap();
    let profile = dir.path().join("profile");
    let (c2, rt) = (c.clone(), tokio::runtime::Handle::current());
    tokio::task::spawn_blocking(move || {
        let child = Command::new(&browser)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--no-first-run",
                "--disable-dev-shm-usage",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        struct Browser(std::process::Child);
        impl Drop for Browser {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let mut b = Browser(child);
        // "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/…"
        let mut lines = BufReader::new(b.0.stderr.take().unwrap()).lines();
        let devtools = loop {
            let l = lines.next().expect("chromium exited").unwrap();
            if let Some(u) = l.split("DevTools listening on ").nth(1) {
                break u.trim().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        let port: u16 = devtools
            .trim_start_matches("ws://127.0.0.1:")
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let list = get_json(format!("127.0.0.1:{port}").parse().unwrap(), "/json/list");
        let page = list
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["type"] == "page")
            .expect("a page target");
        let mut ws = Ws::connect(page["webSocketDebuggerUrl"].as_str().unwrap());
        ws.call(
            "Page.navigate",
            serde_json::json!({"url": format!("http://{addr}/#/")}),
        );
        let read = "JSON.stringify({live: document.getElementById('live').className, \
                    events: Number(document.body.dataset.blockEvents || 0), \
                    nav: performance.getEntriesByType('navigation').length, \
                    height: (document.querySelector('#main .card .v a') || {}).textContent || ''})";
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut first: Option<u64> = None;
        loop {
            let v: Value = ws
                .eval(read)
                .as_str()
                .and_then(|s| serde_json::from_str(s).ok())
                .unwrap_or(Value::Null);
            let h = v["height"].as_str().and_then(|h| h.parse::<u64>().ok());
            if let (Some(h), None) = (h, first) {
                first = Some(h);
            }
            // The height shown grew, the events came over the open stream, and
            // the page was never reloaded.
            if v["live"] == "on"
                && v["events"].as_u64().unwrap_or(0) >= 2
                && v["nav"] == 1
                && h.zip(first).is_some_and(|(h, f)| h > f)
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the page did not update live: {v}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        // The tasks page (a fragment change, not a load), then a task is submitted.
        ws.eval("location.hash = '#/tasks'");
        let main = "JSON.stringify({text: document.getElementById('main').textContent, \
                    nav: performance.getEntriesByType('navigation').length})";
        let mut state = |want: &str| {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let v: Value = ws
                    .eval(main)
                    .as_str()
                    .and_then(|s| serde_json::from_str(s).ok())
                    .unwrap_or(Value::Null);
                if v["text"].as_str().is_some_and(|t| t.contains(want)) {
                    assert_eq!(v["nav"], 1, "the page was reloaded");
                    return;
                }
                assert!(Instant::now() < deadline, "{want:?} never appeared: {v}");
                std::thread::sleep(Duration::from_millis(250));
            }
        };
        state("no tasks match");
        let mut program = train::Program::builtin("mlp-digits").unwrap();
        program.steps = 5;
        let id = rt
            .block_on(c2.submit(
                "submitter",
                &program,
                framework::Amount(1000),
                framework::Amount(100),
            ))
            .unwrap();
        state(&format!("Task {id}"));
        drop(b);
    })
    .await
    .unwrap();
    web.shutdown().await;
    if let Ok(c) = std::sync::Arc::try_unwrap(c) {
        c.shutdown().await;
    }
}
