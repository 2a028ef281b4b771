//! `veritraind start` driven over its real ABCI TCP socket, as CometBFT 0.38
//! drives it: handshake, InitChain, CheckTx (new and re-check), the proposal
//! calls, FinalizeBlock, Commit, Query with proofs, a `kill -9` and restart,
//! and four concurrent connections.
use app::testkit::*;
use auth::Signer;
use framework::Amount;
use prost::bytes::Bytes;
use prost::Message;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tendermint_abci::{Client, ClientBuilder};
use tendermint_proto::v0_38::abci::{
    request, response, response_process_proposal::ProposalStatus, CheckTxType, Request,
    RequestCheckTx, RequestFinalizeBlock, RequestInfo, RequestInitChain, RequestPrepareProposal,
    RequestProcessProposal, RequestQuery, Response,
};

const CHAIN: &str = "vt-abci";

struct Node {
    child: Child,
    abci: String,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(home: &std::path::Path) -> Node {
    let abci = format!("127.0.0.1:{}", free_port());
    let grpc = format!("127.0.0.1:{}", free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_veritraind"))
        .args(["start", "--home"])
        .arg(home)
        .args([
            "--abci-address",
            &abci,
            "--grpc-address",
            &grpc,
            "--comet-rpc",
            "http://127.0.0.1:9",
            "--log",
            "warn",
            "--no-explorer",
            "--no-metrics",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut node = Node { child, abci };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(&node.abci).is_err() {
        assert!(
            Instant::now() < deadline,
            "veritraind start did not listen on {}",
            node.abci
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // What answered is this node, not some other process on that port.
    assert!(
        matches!(node.child.try_wait(), Ok(None)),
        "veritraind start exited"
    );
    node
}

fn client(n: &Node) -> Client {
    ClientBuilder::default().connect(&n.abci).unwrap()
}

/// A raw ABCI connection, for the requests tendermint-abci's client lacks
/// (PrepareProposal, ProcessProposal): varint-length-prefixed protobuf, as
/// CometBFT's socket client writes it.
struct Raw(TcpStream);

impl Raw {
    fn connect(n: &Node) -> Raw {
        Raw(TcpStream::connect(&n.abci).unwrap())
    }
    fn call(&mut self, v: request::Value) -> response::Value {
        let req = Request { value: Some(v) };
        let mut buf = Vec::new();
        req.encode_length_delimited(&mut buf).unwrap();
        self.0.write_all(&buf).unwrap();
        // Read one varint length, then the message.
        let mut len: u64 = 0;
        let mut shift = 0;
        loop {
            let mut b = [0u8; 1];
            self.0.read_exact(&mut b).unwrap();
            len |= u64::from(b[0] & 0x7f) << shift;
            if b[0] & 0x80 == 0 {
                break;
            }
            shift += 7;
        }
        let mut msg = vec![0u8; len as usize];
        self.0.read_exact(&mut msg).unwrap();
        Response::decode(msg.as_slice()).unwrap().value.unwrap()
    }
}

fn genesis(alice: &Signer) -> Vec<u8> {
    serde_json::to_vec(&funded_genesis(&[alice], Amount(1_000_000))).unwrap()
}

fn send(alice: &Signer, to: &Signer, seq: u64, amount: u128) -> Vec<u8> {
    // Alice is the only genesis account: account number 0.
    alice.sign_tx(
        vec![send_msg(&alice.address(), &to.address(), Amount(amount))],
        "",
        CHAIN,
        0,
        seq,
        Amount(1),
    )
}

fn ts(s: i64) -> Option<tendermint_proto::google::protobuf::Timestamp> {
    Some(tendermint_proto::google::protobuf::Timestamp {
        seconds: s,
        nanos: 0,
    })
}

/// One height in CometBFT's order over the wire. Returns the app hash.
fn height(raw: &mut Raw, c: &mut Client, h: i64, txs: Vec<Vec<u8>>) -> (Vec<u8>, Vec<u32>) {
    let txs: Vec<Bytes> = txs.into_iter().map(Bytes::from).collect();
    let response::Value::PrepareProposal(p) =
        raw.call(request::Value::PrepareProposal(RequestPrepareProposal {
            max_tx_bytes: 1 << 20,
            txs,
            height: h,
            time: ts(h),
            ..Default::default()
        }))
    else {
        panic!("wrong response type")
    };
    let response::Value::ProcessProposal(pp) =
        raw.call(request::Value::ProcessProposal(RequestProcessProposal {
            txs: p.txs.clone(),
            height: h,
            time: ts(h),
            ..Default::default()
        }))
    else {
        panic!("wrong response type")
    };
    assert_eq!(pp.status, ProposalStatus::Accept as i32);
    let f = c
        .finalize_block(RequestFinalizeBlock {
            txs: p.txs,
            height: h,
            time: ts(h),
            ..Default::default()
        })
        .unwrap();
    c.commit().unwrap();
    (
        f.app_hash.to_vec(),
        f.tx_results.iter().map(|r| r.code).collect(),
    )
}

#[test]
fn veritraind_start_speaks_abci_over_tcp_and_resumes_after_kill_9() {
    let home = tempfile::tempdir().unwrap();
    let alice = Signer::from_seed("alice");
    let bob = Signer::from_seed("bob");
    let node = start(home.path());
    let mut c = client(&node);
    let mut raw = Raw::connect(&node);

    let info = c.info(RequestInfo::default()).unwrap();
    assert_eq!(info.last_block_height, 0);
    assert!(info.last_block_app_hash.is_empty());
    let ic = c
        .init_chain(RequestInitChain {
            time: ts(0),
            chain_id: CHAIN.into(),
            app_state_bytes: Bytes::from(genesis(&alice)),
            initial_height: 1,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(ic.app_hash.len(), 32);

    let tx1 = send(&alice, &bob, 0, 500);
    let ct = c
        .check_tx(RequestCheckTx {
            tx: Bytes::from(tx1.clone()),
            r#type: CheckTxType::New as i32,
        })
        .unwrap();
    assert_eq!(ct.code, 0, "{}", ct.log);
    let bad = c
        .check_tx(RequestCheckTx {
            tx: Bytes::from_static(b"junk"),
            r#type: CheckTxType::New as i32,
        })
        .unwrap();
    assert_eq!((bad.codespace.as_str(), bad.code), ("auth", 2));

    let (hash1, codes) = height(&mut raw, &mut c, 1, vec![tx1.clone()]);
    assert_eq!(codes, vec![0]);
    // Re-check after Commit: the included transaction is now a replay.
    let rc = c
        .check_tx(RequestCheckTx {
            tx: Bytes::from(tx1),
            r#type: CheckTxType::Recheck as i32,
        })
        .unwrap();
    assert_eq!((rc.codespace.as_str(), rc.code), ("auth", 5));

    // A proven query of bob's balance against the app hash.
    let key = bank::state_key::balance(&bob.address());
    let q = c
        .query(RequestQuery {
            data: Bytes::from(key.clone()),
            path: "/store".into(),
            height: 0,
            prove: true,
        })
        .unwrap();
    assert_eq!(q.code, 0, "{}", q.log);
    assert_eq!(q.height, 1);
    assert_eq!(Amount::from_be_slice(&q.value), Some(Amount(500)));
    let op = &q.proof_ops.as_ref().unwrap().ops[0];
    assert_eq!(op.r#type, app::query::PROOF_OP_TYPE);
    let h: [u8; 32] = hash1.clone().try_into().unwrap();
    app::query::verify_store_proof(h, &key, Some(&q.value), &op.data).unwrap();
    // The proof does not verify a different value.
    assert!(app::query::verify_store_proof(h, &key, Some(&[0u8; 16]), &op.data).is_err());
    // A non-existence proof for a key that is not there.
    let missing = b"bank/balance/nobody".to_vec();
    let q = c
        .query(RequestQuery {
            data: Bytes::from(missing.clone()),
            path: "/store".into(),
            height: 0,
            prove: true,
        })
        .unwrap();
    assert!(q.value.is_empty());
    app::query::verify_store_proof(h, &missing, None, &q.proof_ops.unwrap().ops[0].data).unwrap();

    // kill -9 in the middle of a chain, then the handshake from height 1.
    drop(c);
    drop(raw);
    let mut node = node;
    node.child.kill().unwrap();
    node.child.wait().unwrap();
    drop(node);
    let node = start(home.path());
    let mut c = client(&node);
    let mut raw = Raw::connect(&node);
    let info = c.info(RequestInfo::default()).unwrap();
    assert_eq!(info.last_block_height, 1);
    assert_eq!(info.last_block_app_hash.to_vec(), hash1);
    let (hash2, codes) = height(&mut raw, &mut c, 2, vec![send(&alice, &bob, 1, 1)]);
    assert_eq!(codes, vec![0]);
    assert_ne!(hash2, hash1);
}

#[test]
fn the_four_connections_cometbft_opens_work_concurrently() {
    let home = tempfile::tempdir().unwrap();
    let alice = Signer::from_seed("alice");
    let bob = Signer::from_seed("bob");
    let node = start(home.path());
    let mut consensus = client(&node);
    consensus
        .init_chain(RequestInitChain {
            time: ts(0),
            chain_id: CHAIN.into(),
            app_state_bytes: Bytes::from(genesis(&alice)),
            initial_height: 1,
            ..Default::default()
        })
        .unwrap();
    let addr = node.abci.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let spawn = |f: Box<dyn FnOnce(Client) -> u64 + Send>| {
        let c = ClientBuilder::default().connect(&addr).unwrap();
        std::thread::spawn(move || f(c))
    };
    let s1 = stop.clone();
    let mempool = spawn(Box::new(move |mut c| {
        let mut n = 0;
        while !s1.load(std::sync::atomic::Ordering::Relaxed) {
            let r = c
                .check_tx(RequestCheckTx {
                    tx: Bytes::from_static(b"x"),
                    r#type: 0,
                })
                .unwrap();
            assert_eq!(r.code, 2);
            n += 1;
        }
        n
    }));
    let s2 = stop.clone();
    let query = spawn(Box::new(move |mut c| {
        let mut n = 0;
        while !s2.load(std::sync::atomic::Ordering::Relaxed) {
            let r = c
                .query(RequestQuery {
                    data: Bytes::new(),
                    path: "/app/chain_id".into(),
                    height: 0,
                    prove: false,
                })
                .unwrap();
            assert_eq!(r.value.as_ref(), CHAIN.as_bytes());
            n += 1;
        }
        n
    }));
    let s3 = stop.clone();
    let snapshot = spawn(Box::new(move |mut c| {
        let mut n = 0;
        while !s3.load(std::sync::atomic::Ordering::Relaxed) {
            c.list_snapshots().unwrap();
            n += 1;
        }
        n
    }));
    let mut raw = Raw::connect(&node);
    for h in 1..=20 {
        let (hash, codes) = height(
            &mut raw,
            &mut consensus,
            h,
            vec![send(&alice, &bob, (h - 1) as u64, 1)],
        );
        assert_eq!(hash.len(), 32);
        assert_eq!(codes, vec![0]);
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in [mempool, query, snapshot] {
        assert!(t.join().unwrap() > 0);
    }
    let info = consensus.info(RequestInfo::default()).unwrap();
    assert_eq!(info.last_block_height, 20);
}
