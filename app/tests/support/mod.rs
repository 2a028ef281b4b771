//! Helpers for driving the app directly through its ABCI methods.
#![allow(dead_code)]
use app::store::Store;
use app::App;
use prost::bytes::Bytes;
use tendermint_abci::Application;
use tendermint_proto::google::protobuf::Timestamp;
use tendermint_proto::v0_38::abci::{
    RequestFinalizeBlock, RequestInitChain, RequestPrepareProposal, RequestProcessProposal,
    ResponseFinalizeBlock,
};

pub const CHAIN: &str = "vt-test";

pub fn ts(ms: i64) -> Timestamp {
    Timestamp {
        seconds: ms / 1000,
        nanos: ((ms % 1000) * 1_000_000) as i32,
    }
}

pub fn new_app(dir: &std::path::Path, genesis: &app::genesis::AppState) -> App {
    let app = App::new(Store::open(dir).unwrap()).unwrap();
    let r = app.init_chain(RequestInitChain {
        time: Some(ts(0)),
        chain_id: CHAIN.into(),
        consensus_params: None,
        validators: vec![],
        app_state_bytes: Bytes::from(serde_json::to_vec(genesis).unwrap()),
        initial_height: 1,
    });
    assert_eq!(r.app_hash.len(), 32, "genesis refused");
    app
}

/// One block in CometBFT's order; returns FinalizeBlock's response.
pub fn block(app: &App, height: u64, time_ms: i64, txs: Vec<Vec<u8>>) -> ResponseFinalizeBlock {
    let txs: Vec<Bytes> = txs.into_iter().map(Bytes::from).collect();
    let p = app.prepare_proposal(RequestPrepareProposal {
        max_tx_bytes: 22_020_096,
        txs,
        height: height as i64,
        time: Some(ts(time_ms)),
        ..Default::default()
    });
    let pp = app.process_proposal(RequestProcessProposal {
        txs: p.txs.clone(),
        height: height as i64,
        time: Some(ts(time_ms)),
        ..Default::default()
    });
    assert_eq!(pp.status, 1, "proposal rejected");
    let r = app.finalize_block(RequestFinalizeBlock {
        txs: p.txs,
        height: height as i64,
        time: Some(ts(time_ms)),
        ..Default::default()
    });
    app.commit();
    r
}
