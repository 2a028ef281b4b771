//! `solverd`: see the library documentation.
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = solverd::Config::parse();
    agent::init_logging(cfg.log_json);
    let s = solverd::start(cfg).await?;
    tokio::signal::ctrl_c().await.ok();
    tracing::info!("shutting down");
    s.shutdown().await;
    Ok(())
}
