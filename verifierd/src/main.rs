//! `verifierd`: see the library documentation.
use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = verifierd::Config::parse();
    agent::init_logging(cfg.log_json);
    let v = verifierd::start(cfg).await?;
    tokio::signal::ctrl_c().await.ok();
    tracing::info!("shutting down");
    v.shutdown().await;
    Ok(())
}
