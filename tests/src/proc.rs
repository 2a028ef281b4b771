//! Daemons as separate processes, for `kill -9` tests.
use std::path::Path;
use std::process::{Child, Command, Stdio};

pub use app::testkit::free_port;

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
