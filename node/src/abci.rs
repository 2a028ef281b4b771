//! The ABCI 2.0 application (CometBFT 0.38). The same [`App`] runs under
//! CometBFT (through tendermint-abci's TCP server) and under the embedded dev
//! chain ([`crate::devchain`]), which calls these methods in CometBFT's order.
//!
//! Consensus logic lives in [`crate::exec`]; this file maps ABCI requests to it
//! and keeps the three states apart: committed (sled), the block being
//! finalized (a [`Delta`] held until Commit), and the mempool's check state.
use crate::exec::{self, BlockOutcome};
use crate::store::{Commit, Meta, Store};
use framework::{Delta, StateRead};
use prost::bytes::Bytes;
use prost::Message;
use std::sync::{Arc, Mutex, MutexGuard};
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci::{
    self as pb, response_process_proposal::ProposalStatus, CheckTxType, RequestCheckTx,
    RequestFinalizeBlock, RequestInfo, RequestInitChain, RequestPrepareProposal,
    RequestProcessProposal, RequestQuery, ResponseCheckTx, ResponseCommit, ResponseFinalizeBlock,
    ResponseInfo, ResponseInitChain, ResponsePrepareProposal, ResponseProcessProposal,
    ResponseQuery,
};
use tokio::sync::broadcast;

pub const APP_VERSION: u64 = 1;

/// A committed block as the node's clients see it.
pub type BlockRecord = proto::node::v1::Block;

struct Pending {
    height: u64,
    time_ms: i64,
    outcome: BlockOutcome,
    tree: jmt::storage::TreeUpdateBatch,
    app_hash: [u8; 32],
}

struct Inner {
    store: Store,
    chain_id: String,
    meta: Option<Meta>,
    check: Delta,
    pending: Option<Pending>,
}

/// The application handle. Cheap to clone: CometBFT opens four connections and
/// each gets a clone; all of them share one state behind a mutex, so requests
/// are applied one at a time in arrival order.
#[derive(Clone)]
pub struct App {
    inner: Arc<Mutex<Inner>>,
    store: Store,
    blocks: broadcast::Sender<Arc<BlockRecord>>,
    sigs: Arc<exec::SigCache>,
}

impl App {
    pub fn new(store: Store) -> Result<App, framework::StateError> {
        let meta = store.meta()?;
        let chain_id = match store.get_raw(exec::CHAIN_ID_KEY)? {
            Some(b) => String::from_utf8_lossy(&b).into_owned(),
            None => String::new(),
        };
        let (blocks, _) = broadcast::channel(1024);
        Ok(App {
            inner: Arc::new(Mutex::new(Inner {
                store: store.clone(),
                chain_id,
                meta,
                check: Delta::default(),
                pending: None,
            })),
            store,
            blocks,
            sigs: Arc::new(exec::SigCache::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding the lock cannot leave a half-applied block
        // (writes are only in the pending delta), so recover the guard.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The committed store (read-only use: queries, gRPC).
    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn chain_id(&self) -> String {
        self.lock().chain_id.clone()
    }

    pub fn last_commit(&self) -> Option<Meta> {
        self.lock().meta.clone()
    }

    /// New committed blocks, as they commit.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<BlockRecord>> {
        self.blocks.subscribe()
    }
}

fn time_ms(t: &Option<tendermint_proto::google::protobuf::Timestamp>) -> i64 {
    t.as_ref()
        .map(|t| {
            t.seconds
                .saturating_mul(1000)
                .saturating_add(i64::from(t.nanos / 1_000_000))
        })
        .unwrap_or(0)
}

fn to_abci_events(events: &[framework::Event]) -> Vec<pb::Event> {
    events
        .iter()
        .map(|e| pb::Event {
            r#type: e.kind.clone(),
            attributes: e
                .attributes
                .iter()
                .map(|(k, v)| pb::EventAttribute {
                    key: k.clone(),
                    value: v.clone(),
                    index: true,
                })
                .collect(),
        })
        .collect()
}

impl Application for App {
    fn info(&self, _req: RequestInfo) -> ResponseInfo {
        let inner = self.lock();
        let (h, hash) = match &inner.meta {
            Some(m) => (m.height, m.app_hash.to_vec()),
            None => (0, vec![]),
        };
        ResponseInfo {
            data: "veritrain".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            app_version: APP_VERSION,
            last_block_height: i64::try_from(h).unwrap_or(i64::MAX),
            last_block_app_hash: Bytes::from(hash),
        }
    }

    fn init_chain(&self, req: RequestInitChain) -> ResponseInitChain {
        let mut inner = self.lock();
        if let Some(m) = &inner.meta {
            // Already initialised (CometBFT replays InitChain when no block
            // was committed yet): keep what we have if it is the same chain.
            if inner.chain_id != req.chain_id {
                tracing::error!(stored = %inner.chain_id, requested = %req.chain_id, "InitChain for a different chain on an initialised store");
            }
            return ResponseInitChain {
                consensus_params: None,
                validators: vec![],
                app_hash: Bytes::from(m.app_hash.to_vec()),
            };
        }
        match exec::genesis(
            &inner.store,
            &req.chain_id,
            &req.app_state_bytes,
            time_ms(&req.time),
        ) {
            Ok((commit, _)) => {
                let meta = commit.meta.clone();
                if let Err(e) = inner.store.commit(commit) {
                    tracing::error!(error = %e, "cannot persist genesis");
                    return ResponseInitChain::default();
                }
                inner.chain_id = req.chain_id.clone();
                tracing::info!(chain_id = %req.chain_id, app_hash = %hex::encode(meta.app_hash), "genesis committed");
                let hash = meta.app_hash.to_vec();
                inner.meta = Some(meta);
                ResponseInitChain {
                    consensus_params: None,
                    validators: vec![],
                    app_hash: Bytes::from(hash),
                }
            }
            Err(e) => {
                // CometBFT stops on an InitChain whose app hash it cannot use;
                // an empty response with this log line is the clearest signal.
                tracing::error!(error = %e, "invalid genesis app_state");
                ResponseInitChain::default()
            }
        }
    }

    fn check_tx(&self, req: RequestCheckTx) -> ResponseCheckTx {
        let mut guard = self.lock();
        let inner = &mut *guard;
        if req.r#type == CheckTxType::New as i32 && inner.meta.is_none() {
            return ResponseCheckTx {
                code: 1,
                codespace: "app".into(),
                log: "chain not initialised".into(),
                ..Default::default()
            };
        }
        let height = inner.meta.as_ref().map(|m| m.height + 1).unwrap_or(1);
        let time = inner.meta.as_ref().map(|m| m.time_ms).unwrap_or(0);
        let ctx = framework::BlockCtx {
            height,
            time_ms: time,
            chain_id: inner.chain_id.clone(),
            block_hash: [0; 32],
        };
        match exec::check_tx(&inner.store, &mut inner.check, &ctx, &req.tx, &self.sigs) {
            Ok(events) => ResponseCheckTx {
                code: 0,
                events: to_abci_events(&events),
                ..Default::default()
            },
            Err(f) => ResponseCheckTx {
                code: f.code,
                codespace: f.codespace.into(),
                log: f.log,
                ..Default::default()
            },
        }
    }

    fn prepare_proposal(&self, req: RequestPrepareProposal) -> ResponsePrepareProposal {
        let inner = self.lock();
        let max_tx = exec::max_tx_bytes(&inner.store);
        let budget = usize::try_from(req.max_tx_bytes).unwrap_or(0);
        let mut used = 0usize;
        let mut txs = Vec::with_capacity(req.txs.len());
        for tx in req.txs {
            if tx.len() > max_tx || auth::SignedTx::decode(&tx).is_err() {
                continue;
            }
            match used.checked_add(tx.len()) {
                Some(n) if n <= budget => {
                    used = n;
                    txs.push(tx);
                }
                _ => break,
            }
        }
        ResponsePrepareProposal { txs }
    }

    fn process_proposal(&self, req: RequestProcessProposal) -> ResponseProcessProposal {
        let inner = self.lock();
        let max_tx = exec::max_tx_bytes(&inner.store);
        let ok = req
            .txs
            .iter()
            .all(|tx| tx.len() <= max_tx && auth::SignedTx::decode(tx).is_ok());
        let status = if ok {
            ProposalStatus::Accept
        } else {
            ProposalStatus::Reject
        };
        ResponseProcessProposal {
            status: status as i32,
        }
    }

    fn finalize_block(&self, req: RequestFinalizeBlock) -> ResponseFinalizeBlock {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let height = u64::try_from(req.height).unwrap_or(0);
        let ctx = framework::BlockCtx {
            height,
            time_ms: time_ms(&req.time),
            chain_id: inner.chain_id.clone(),
            block_hash: exec::block_hash32(&req.hash),
        };
        let txs: Vec<&[u8]> = req.txs.iter().map(|t| t.as_ref()).collect();
        let mut outcome = exec::finalize_block(&inner.store, &ctx, &txs, Some(&self.sigs));
        outcome.block_hash = req.hash.to_vec();
        let version = inner.meta.as_ref().map(|m| m.version + 1).unwrap_or(1);
        let (root, tree) = match inner.store.compute_root(&outcome.delta.writes, version) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!(error = %e, height, "cannot compute the app hash; this node must stop");
                return ResponseFinalizeBlock::default();
            }
        };
        let resp = ResponseFinalizeBlock {
            events: to_abci_events(&outcome.block_events),
            tx_results: outcome
                .results
                .iter()
                .map(|r| pb::ExecTxResult {
                    code: r.code,
                    codespace: r.codespace.to_string(),
                    log: r.log.clone(),
                    events: to_abci_events(&r.events),
                    ..Default::default()
                })
                .collect(),
            validator_updates: vec![],
            consensus_param_updates: None,
            app_hash: Bytes::from(root.0.to_vec()),
        };
        inner.pending = Some(Pending {
            height,
            time_ms: ctx.time_ms,
            outcome,
            tree,
            app_hash: root.0,
        });
        resp
    }

    fn commit(&self) -> ResponseCommit {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(p) = inner.pending.take() else {
            tracing::warn!("Commit without FinalizeBlock");
            return ResponseCommit::default();
        };
        let version = inner.meta.as_ref().map(|m| m.version + 1).unwrap_or(1);
        let meta = Meta {
            height: p.height,
            version,
            app_hash: p.app_hash,
            time_ms: p.time_ms,
        };
        let record = exec::block_record(&meta, &p.outcome);
        let commit = Commit {
            meta: meta.clone(),
            writes: p.outcome.delta.writes,
            tree: p.tree,
            txs: record
                .txs
                .iter()
                .filter_map(|r| {
                    Some((
                        <[u8; 32]>::try_from(r.hash.as_slice()).ok()?,
                        r.encode_to_vec(),
                    ))
                })
                .collect(),
            block: record.encode_to_vec(),
        };
        if let Err(e) = inner.store.commit(commit) {
            tracing::error!(error = %e, height = p.height, "commit failed; this node must stop");
            return ResponseCommit::default();
        }
        inner.meta = Some(meta);
        inner.check = Delta::default();
        // Nobody listening is fine.
        let _ = self.blocks.send(Arc::new(record));
        ResponseCommit { retain_height: 0 }
    }

    fn query(&self, req: RequestQuery) -> ResponseQuery {
        let inner = self.lock();
        crate::query::abci_query(&inner.store, inner.meta.as_ref(), &req)
    }
}
