//! The embedded dev chain: a single-validator block driver that calls the
//! [`App`] exactly as CometBFT 0.38 does, in-process.
//!
//! - Start-up handshake: `Info`; if the app has no state, `InitChain` with the
//!   genesis `app_state`.
//! - Mempool: every new transaction goes through `CheckTx(New)`; duplicates
//!   are refused as CometBFT's mempool cache does.
//! - Each block: `PrepareProposal` (mempool transactions up to the block byte
//!   limit) → `ProcessProposal` (must accept) → `FinalizeBlock` → `Commit`,
//!   then the included transactions leave the mempool and the rest are
//!   re-checked with `CheckTx(Recheck)`.
//! - Block time: the wall clock at proposal, strictly increasing, produced
//!   every `interval`.
//!
//! It is not a second implementation of anything the app does: it only
//! orders calls, as a consensus engine would.
use crate::abci::App;
use prost::bytes::Bytes;
use sha2::{Digest, Sha256};
use std::collections::{HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tendermint_abci::Application;
use tendermint_proto::google::protobuf::Timestamp;
use tendermint_proto::v0_38::abci::{
    response_process_proposal::ProposalStatus, CheckTxType, RequestCheckTx, RequestFinalizeBlock,
    RequestInfo, RequestInitChain, RequestPrepareProposal, RequestProcessProposal, ResponseCheckTx,
};

/// CometBFT's default `max_bytes` for a block (consensus params).
pub const MAX_BLOCK_BYTES: i64 = 22_020_096;
const MEMPOOL_MAX_TXS: usize = 50_000;

#[derive(Debug, thiserror::Error)]
pub enum DevChainError {
    #[error("InitChain failed: {0}")]
    InitChain(String),
    #[error("the proposal was rejected by ProcessProposal at height {0}")]
    Rejected(u64),
}

#[derive(Default)]
struct Mempool {
    txs: VecDeque<(Bytes, [u8; 32])>,
    hashes: HashSet<[u8; 32]>,
}

/// The driver. Share it as `Arc<DevChain>`.
pub struct DevChain {
    app: App,
    mempool: Mutex<Mempool>,
    last_time_ms: Mutex<i64>,
    proposer: [u8; 20],
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn timestamp(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

impl DevChain {
    /// Performs the handshake (Info, then InitChain if the app is empty).
    pub fn start(
        app: App,
        chain_id: &str,
        app_state: &[u8],
        genesis_time_ms: i64,
    ) -> Result<DevChain, DevChainError> {
        let info = app.info(RequestInfo::default());
        if info.last_block_app_hash.is_empty() && info.last_block_height == 0 {
            let r = app.init_chain(RequestInitChain {
                time: Some(timestamp(genesis_time_ms)),
                chain_id: chain_id.to_string(),
                consensus_params: None,
                validators: vec![],
                app_state_bytes: Bytes::copy_from_slice(app_state),
                initial_height: 1,
            });
            if r.app_hash.is_empty() {
                return Err(DevChainError::InitChain(
                    "the app refused the genesis app_state (see the log above)".into(),
                ));
            }
        }
        let last = app
            .last_commit()
            .map(|m| m.time_ms)
            .unwrap_or(genesis_time_ms);
        let mut proposer = [0u8; 20];
        proposer.copy_from_slice(&Sha256::digest(b"veritrain-dev-validator")[..20]);
        Ok(DevChain {
            app,
            mempool: Mutex::new(Mempool::default()),
            last_time_ms: Mutex::new(last),
            proposer,
        })
    }

    pub fn app(&self) -> &App {
        &self.app
    }

    pub fn mempool_size(&self) -> usize {
        self.mempool.lock().map(|m| m.txs.len()).unwrap_or(0)
    }

    /// CheckTx(New); on success the transaction waits in the mempool.
    pub fn submit(&self, tx: Vec<u8>) -> ResponseCheckTx {
        let hash: [u8; 32] = Sha256::digest(&tx).into();
        let Ok(mut mp) = self.mempool.lock() else {
            return ResponseCheckTx {
                code: 1,
                codespace: "mempool".into(),
                log: "mempool unavailable".into(),
                ..Default::default()
            };
        };
        if mp.hashes.contains(&hash) {
            return ResponseCheckTx {
                code: 2,
                codespace: "mempool".into(),
                log: "tx already exists in cache".into(),
                ..Default::default()
            };
        }
        if mp.txs.len() >= MEMPOOL_MAX_TXS {
            return ResponseCheckTx {
                code: 3,
                codespace: "mempool".into(),
                log: format!("mempool is full ({MEMPOOL_MAX_TXS} transactions)"),
                ..Default::default()
            };
        }
        let tx = Bytes::from(tx);
        let r = self.app.check_tx(RequestCheckTx {
            tx: tx.clone(),
            r#type: CheckTxType::New as i32,
        });
        if r.code == 0 {
            mp.txs.push_back((tx, hash));
            mp.hashes.insert(hash);
        }
        r
    }

    /// Produces one block from the mempool. Returns its height.
    pub fn produce_block(&self) -> Result<u64, DevChainError> {
        let height = self.app.last_commit().map(|m| m.height + 1).unwrap_or(1);
        let time_ms = {
            let mut last = self.last_time_ms.lock().unwrap_or_else(|p| p.into_inner());
            let t = now_ms().max(last.saturating_add(1));
            *last = t;
            t
        };
        let candidates: Vec<Bytes> = {
            let mp = self.mempool.lock().unwrap_or_else(|p| p.into_inner());
            let mut total = 0i64;
            mp.txs
                .iter()
                .take_while(|(t, _)| {
                    total += t.len() as i64;
                    total <= MAX_BLOCK_BYTES
                })
                .map(|(t, _)| t.clone())
                .collect()
        };
        let prepared = self.app.prepare_proposal(RequestPrepareProposal {
            max_tx_bytes: MAX_BLOCK_BYTES,
            txs: candidates,
            local_last_commit: None,
            misbehavior: vec![],
            height: height as i64,
            time: Some(timestamp(time_ms)),
            next_validators_hash: Bytes::new(),
            proposer_address: Bytes::copy_from_slice(&self.proposer),
        });
        let txs = prepared.txs;
        let mut h = Sha256::new();
        h.update(height.to_be_bytes());
        h.update(time_ms.to_be_bytes());
        for t in &txs {
            h.update(Sha256::digest(t));
        }
        let block_hash = Bytes::copy_from_slice(&h.finalize());
        let pp = self.app.process_proposal(RequestProcessProposal {
            txs: txs.clone(),
            proposed_last_commit: None,
            misbehavior: vec![],
            hash: block_hash.clone(),
            height: height as i64,
            time: Some(timestamp(time_ms)),
            next_validators_hash: Bytes::new(),
            proposer_address: Bytes::copy_from_slice(&self.proposer),
        });
        if pp.status != ProposalStatus::Accept as i32 {
            return Err(DevChainError::Rejected(height));
        }
        self.app.finalize_block(RequestFinalizeBlock {
            txs: txs.clone(),
            decided_last_commit: None,
            misbehavior: vec![],
            hash: block_hash,
            height: height as i64,
            time: Some(timestamp(time_ms)),
            next_validators_hash: Bytes::new(),
            proposer_address: Bytes::copy_from_slice(&self.proposer),
        });
        // CometBFT holds the mempool lock across Commit and the re-check.
        let mut mp = self.mempool.lock().unwrap_or_else(|p| p.into_inner());
        self.app.commit();
        let included: HashSet<[u8; 32]> = txs.iter().map(|t| Sha256::digest(t).into()).collect();
        let old = std::mem::take(&mut mp.txs);
        mp.hashes.clear();
        for (tx, hash) in old {
            if included.contains(&hash) {
                continue;
            }
            let r = self.app.check_tx(RequestCheckTx {
                tx: tx.clone(),
                r#type: CheckTxType::Recheck as i32,
            });
            if r.code == 0 {
                mp.txs.push_back((tx, hash));
                mp.hashes.insert(hash);
            }
        }
        Ok(height)
    }

    /// Produces a block every `interval` until `stop` resolves.
    pub async fn run(
        self: Arc<Self>,
        interval: Duration,
        stop: impl std::future::Future<Output = ()>,
    ) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tick.tick() => {
                    let me = self.clone();
                    match tokio::task::spawn_blocking(move || me.produce_block()).await {
                        Ok(Ok(h)) => tracing::debug!(height = h, "block committed"),
                        Ok(Err(e)) => tracing::error!(error = %e, "block production failed"),
                        Err(e) => tracing::error!(error = %e, "block task failed"),
                    }
                }
            }
        }
    }
}
