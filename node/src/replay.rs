//! Re-executes a node's committed blocks on a fresh store and checks that
//! every height gives the same app hash: the determinism and crash-safety
//! check behind `veritraind debug replay`.
use crate::abci::App;
use crate::home::GenesisDoc;
use crate::store::Store;
use prost::bytes::Bytes;
use prost::Message;
use std::path::Path;
use tendermint_abci::Application;
use tendermint_proto::google::protobuf::Timestamp;
use tendermint_proto::v0_38::abci::{RequestFinalizeBlock, RequestInitChain};

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("store: {0}")]
    Store(#[from] framework::StateError),
    #[error("the source node has no committed state")]
    Empty,
    #[error("block {0} is missing from the source store")]
    Missing(u64),
    #[error("block {0} does not decode: {1}")]
    Corrupt(u64, String),
    #[error("genesis app hash differs: stored {stored}, replayed {replayed}")]
    GenesisDiverged { stored: String, replayed: String },
    #[error("height {height}: stored app hash {stored}, replayed {replayed}")]
    Diverged {
        height: u64,
        stored: String,
        replayed: String,
    },
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ReplayReport {
    pub blocks: u64,
    pub last_height: u64,
    pub app_hash: String,
}

fn ts(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms.div_euclid(1000),
        nanos: i32::try_from(ms.rem_euclid(1000) * 1_000_000).unwrap_or(0),
    }
}

/// Replays `src`'s blocks `1..=upto` (default: all) into a new store at `dst`.
pub fn replay(
    src: &Store,
    genesis: &GenesisDoc,
    dst: &Path,
    upto: Option<u64>,
) -> Result<ReplayReport, ReplayError> {
    let last = src.meta()?.ok_or(ReplayError::Empty)?.height;
    let upto = upto.unwrap_or(last).min(last);
    let app = App::new(Store::open(dst)?)?;
    let app_state = serde_json::to_vec(&genesis.app_state)
        .map_err(|e| ReplayError::Corrupt(0, e.to_string()))?;
    let g = app.init_chain(RequestInitChain {
        time: Some(ts(genesis.genesis_time_ms())),
        chain_id: genesis.chain_id.clone(),
        consensus_params: None,
        validators: vec![],
        app_state_bytes: Bytes::from(app_state),
        initial_height: 1,
    });
    let rec0 = src.block(0)?.ok_or(ReplayError::Missing(0))?;
    let b0 = proto::node::v1::Block::decode(rec0.as_slice())
        .map_err(|e| ReplayError::Corrupt(0, e.to_string()))?;
    if g.app_hash.as_ref() != b0.app_hash.as_slice() {
        return Err(ReplayError::GenesisDiverged {
            stored: hex::encode_upper(&b0.app_hash),
            replayed: hex::encode_upper(&g.app_hash),
        });
    }
    let mut hash = b0.app_hash;
    for h in 1..=upto {
        let raw = src.block(h)?.ok_or(ReplayError::Missing(h))?;
        let b = proto::node::v1::Block::decode(raw.as_slice())
            .map_err(|e| ReplayError::Corrupt(h, e.to_string()))?;
        let r = app.finalize_block(RequestFinalizeBlock {
            txs: b
                .raw_txs
                .iter()
                .map(|t| Bytes::copy_from_slice(t))
                .collect(),
            decided_last_commit: None,
            misbehavior: vec![],
            hash: Bytes::from(b.block_hash.clone()),
            height: h as i64,
            time: Some(ts(b.time_ms)),
            next_validators_hash: Bytes::new(),
            proposer_address: Bytes::new(),
        });
        app.commit();
        if r.app_hash.as_ref() != b.app_hash.as_slice() {
            return Err(ReplayError::Diverged {
                height: h,
                stored: hex::encode_upper(&b.app_hash),
                replayed: hex::encode_upper(&r.app_hash),
            });
        }
        hash = b.app_hash;
    }
    Ok(ReplayReport {
        blocks: upto,
        last_height: upto,
        app_hash: hex::encode_upper(hash),
    })
}
