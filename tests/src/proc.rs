//! Daemons as separate processes, for `kill -9` tests.
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

/// Starts `bin` with `args`, logging to `log` (appended).
pub fn spawn(bin: &str, args: &[String], log: &Path) -> std::io::Result<Child> {
    let f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    Command::new(bin)
        .args(args)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(f)
        .spawn()
}

/// `kill -9`.
pub fn kill9(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}
