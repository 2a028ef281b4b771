//! A whole Veritrain network in one process: the embedded dev chain with its
//! gRPC API, and any number of `solverd` and `verifierd` instances talking to
//! it over real gRPC (each with its own home and key file). Used by
//! `veritraind demo` and by the end-to-end tests.
use crate::client::NodeClient;
use crate::home::Home;
use crate::node::{self, RunningNode};
use anyhow::Context;
use auth::Signer;
use framework::Amount;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Protocol timing for a fast local network (blocks every `block_ms`).
#[derive(Clone, Debug)]
pub struct Timing {
    pub block_ms: u64,
    pub challenge_window_blocks: u64,
    pub move_blocks: u64,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            block_ms: 100,
            challenge_window_blocks: 100,
            move_blocks: 60,
        }
    }
}

pub struct Cluster {
    pub root: PathBuf,
    pub node: RunningNode,
    pub client: NodeClient,
    pub keys: BTreeMap<String, Signer>,
}

/// What each account gets in genesis.
pub const ACCOUNT_FUNDS: Amount = Amount(1_000_000_000_000);

impl Cluster {
    /// A fresh chain in `root` with a funded key per name in `accounts`.
    pub async fn start(root: &Path, accounts: &[&str], timing: &Timing) -> anyhow::Result<Cluster> {
        Cluster::start_with(root, accounts, timing, |_| {}).await
    }

    /// [`Cluster::start`] with the tasks params of genesis changed by `tasks` (e.g.
    /// lowered referee bounds).
    pub async fn start_with(
        root: &Path,
        accounts: &[&str],
        timing: &Timing,
        tasks: impl FnOnce(&mut tasks::Params),
    ) -> anyhow::Result<Cluster> {
        let home = Home::new(root.join("node"));
        node::prepare_dev_home(&home)?;
        let mut g = home.read_genesis()?;
        let mut keys = BTreeMap::new();
        std::fs::create_dir_all(root.join("keys"))?;
        for name in accounts {
            // Deterministic per name and root: reruns in the same home reuse keys.
            let s = Signer::from_seed(&format!("{}/{name}", root.display()));
            std::fs::write(
                root.join("keys").join(format!("{name}.key")),
                hex::encode(s.secret_bytes()),
            )?;
            if !home.db_path().exists() {
                g.app_state.fund(&s.address(), ACCOUNT_FUNDS);
            }
            keys.insert(name.to_string(), s);
        }
        if !home.db_path().exists() {
            let mut tp = tasks::Params {
                challenge_window_blocks: timing.challenge_window_blocks,
                // A submitter reacts to the commit as fast as a
                // disputant to a move.
                reveal_blocks: timing.move_blocks,
                ..Default::default()
            };
            tasks(&mut tp);
            g.app_state.tasks.params = Some(tp.to_proto());
            // Rounds move on every other block and wait for late parties as
            // long as for a dispute move.
            g.app_state.swarm.params = Some(
                swarm::Params {
                    join_blocks: timing.move_blocks,
                    report_blocks: timing.move_blocks,
                    check_blocks: 2,
                    ..Default::default()
                }
                .to_proto(),
            );
            g.app_state.verde.params = Some(
                verde::Params {
                    move_blocks: timing.move_blocks,
                    ..Default::default()
                }
                .to_proto(),
            );
            home.write_genesis(&g)?;
        }
        let node = node::start_dev(
            &home,
            ([127, 0, 0, 1], 0).into(),
            Duration::from_millis(timing.block_ms),
        )
        .await?;
        let client = NodeClient::connect(&node.grpc_url()).await?;
        Ok(Cluster {
            root: root.to_path_buf(),
            node,
            client,
            keys,
        })
    }

    pub fn key_file(&self, name: &str) -> PathBuf {
        self.root.join("keys").join(format!("{name}.key"))
    }

    pub fn signer(&self, name: &str) -> anyhow::Result<&Signer> {
        self.keys
            .get(name)
            .with_context(|| format!("no account {name:?} in this cluster"))
    }

    /// A solver config for account `name` (home under the cluster root).
    pub fn solver_config(&self, name: &str) -> solverd::Config {
        let mut c = solverd::Config::new(
            &self.node.grpc_url(),
            &self.key_file(name).display().to_string(),
            self.root.join("solvers").join(name),
        );
        c.stake = Some("5000000uvtr".into());
        c
    }

    pub fn verifier_config(&self, name: &str) -> verifierd::Config {
        let mut c = verifierd::Config::new(
            &self.node.grpc_url(),
            &self.key_file(name).display().to_string(),
            self.root.join("verifiers").join(name),
        );
        c.stake = Some("1000000uvtr".into());
        c
    }

    /// Submits `program` from account `from`; returns the task id.
    pub async fn submit(
        &self,
        from: &str,
        program: &train::Program,
        reward: Amount,
        fee: Amount,
    ) -> anyhow::Result<u64> {
        let s = self.signer(from)?;
        crate::follow::submit(&self.client, s, program, None, reward, fee).await
    }

    pub async fn shutdown(self) {
        self.node.shutdown().await;
    }
}
