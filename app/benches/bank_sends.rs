//! Throughput of signed bank sends through FinalizeBlock + Commit on real sled
//! files, printed as transactions per second, next to a baseline measured in
//! the same run: verifying the same signatures one after another on one core.
//!
//! `cargo bench -p app --bench bank_sends` (env: BENCH_TXS per block, BENCH_BLOCKS).
use app::store::Store;
use app::testkit::*;
use app::App;
use auth::{SignedTx, Signer};
use framework::Amount;
use prost::bytes::Bytes;
use std::time::Instant;
use tendermint_abci::Application;
use tendermint_proto::google::protobuf::Timestamp;
use tendermint_proto::v0_38::abci::{RequestFinalizeBlock, RequestInitChain};

const CHAIN: &str = "vt-bench";

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let per_block = env("BENCH_TXS", 10_000);
    let blocks = env("BENCH_BLOCKS", 5);
    let senders = per_block;
    let signers: Vec<Signer> = (0..senders)
        .map(|i| Signer::from_seed(&format!("bench-{i}")))
        .collect();
    let refs: Vec<&Signer> = signers.iter().collect();
    let g = funded_genesis(&refs, Amount(1_000_000_000));
    let dir = tempfile::tempdir()?;
    let app = App::new(Store::open(dir.path())?)?;
    app.init_chain(RequestInitChain {
        chain_id: CHAIN.into(),
        app_state_bytes: Bytes::from(serde_json::to_vec(&g)?),
        initial_height: 1,
        ..Default::default()
    });
    eprintln!("signing {} transactions…", per_block * blocks);
    // Genesis account numbers follow the order of funding: signer i has number i.
    let mut all: Vec<Vec<Bytes>> = Vec::new();
    for b in 0..blocks {
        let txs = signers
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let to = signers[(i + 1) % senders].address();
                Bytes::from(s.sign_tx(
                    vec![send_msg(&s.address(), &to, Amount(1))],
                    "",
                    CHAIN,
                    i as u64,
                    b as u64,
                    Amount(1),
                ))
            })
            .collect();
        all.push(txs);
    }

    // Baseline: decode + verify every signature of one block, sequentially.
    let t = Instant::now();
    for (i, tx) in all[0].iter().enumerate() {
        let st = SignedTx::decode(tx)?;
        st.verify_signature(CHAIN, i as u64)?;
    }
    let verify_tps = per_block as f64 / t.elapsed().as_secs_f64();

    // Stage breakdown of the first block on a second, identical store.
    {
        let dir2 = tempfile::tempdir()?;
        let store = Store::open(dir2.path())?;
        let app2 = App::new(store.clone())?;
        app2.init_chain(RequestInitChain {
            chain_id: CHAIN.into(),
            app_state_bytes: Bytes::from(serde_json::to_vec(&g)?),
            initial_height: 1,
            ..Default::default()
        });
        let txs: Vec<&[u8]> = all[0].iter().map(|t| t.as_ref()).collect();
        let ctx = framework::BlockCtx {
            height: 1,
            time_ms: 1000,
            chain_id: CHAIN.into(),
            block_hash: [0; 32],
        };
        let t = Instant::now();
        {
            use rayon::prelude::*;
            let n = txs
                .par_iter()
                .filter(|b| app::exec::prepare(&store, CHAIN, b, None).is_ok())
                .count();
            assert_eq!(n, txs.len());
        }
        let prep = t.elapsed();
        let t = Instant::now();
        let o = app::exec::finalize_block(&store, &ctx, &txs, None);
        let exec = t.elapsed();
        let t = Instant::now();
        let (_root, tree) = store.compute_root(&o.delta.writes, 1)?;
        let root = t.elapsed();
        let t = Instant::now();
        let meta = app::store::Meta {
            height: 1,
            version: 1,
            app_hash: [0; 32],
            time_ms: 1000,
        };
        store.commit(app::store::Commit {
            meta,
            writes: o.delta.writes,
            tree,
            txs: vec![],
            block: vec![],
        })?;
        let commit = t.elapsed();
        println!(
            "stages of one block: parallel decode+signature checks alone {:.0} ms; execute (incl. those checks) {:.0} ms, state root {:.0} ms, sled commit {:.0} ms",
            prep.as_secs_f64() * 1e3,
            exec.as_secs_f64() * 1e3,
            root.as_secs_f64() * 1e3,
            commit.as_secs_f64() * 1e3
        );
    }

    // The node's normal path: every transaction first passed CheckTx (the
    // mempool), so FinalizeBlock finds its signature in the cache.
    let (mut check_total, mut warm_total) = (0.0, 0.0);
    {
        use tendermint_proto::v0_38::abci::RequestCheckTx;
        let dir3 = tempfile::tempdir()?;
        let app3 = App::new(Store::open(dir3.path())?)?;
        app3.init_chain(RequestInitChain {
            chain_id: CHAIN.into(),
            app_state_bytes: Bytes::from(serde_json::to_vec(&g)?),
            initial_height: 1,
            ..Default::default()
        });
        for (b, txs) in all.iter().enumerate() {
            let h = b as i64 + 1;
            let t = Instant::now();
            for tx in txs {
                let r = app3.check_tx(RequestCheckTx {
                    tx: tx.clone(),
                    r#type: 0,
                });
                assert_eq!(r.code, 0, "{}", r.log);
            }
            check_total += t.elapsed().as_secs_f64();
            let t = Instant::now();
            let r = app3.finalize_block(RequestFinalizeBlock {
                txs: txs.clone(),
                height: h,
                time: Some(Timestamp {
                    seconds: h,
                    nanos: 0,
                }),
                ..Default::default()
            });
            app3.commit();
            warm_total += t.elapsed().as_secs_f64();
            assert!(r.tx_results.iter().all(|r| r.code == 0));
        }
    }

    let mut total = 0.0;
    for (b, txs) in all.into_iter().enumerate() {
        let h = b as i64 + 1;
        let t = Instant::now();
        let r = app.finalize_block(RequestFinalizeBlock {
            txs,
            height: h,
            time: Some(Timestamp {
                seconds: h,
                nanos: 0,
            }),
            ..Default::default()
        });
        app.commit();
        let dt = t.elapsed().as_secs_f64();
        total += dt;
        let failed = r.tx_results.iter().filter(|r| r.code != 0).count();
        assert_eq!(failed, 0, "{:?}", r.tx_results.iter().find(|r| r.code != 0));
        println!(
            "block {h}: {per_block} sends in {:.1} ms = {:.0} tx/s",
            dt * 1e3,
            per_block as f64 / dt
        );
    }
    let tps = (per_block * blocks) as f64 / total;
    println!("threads (rayon): {}", rayon::current_num_threads());
    println!("FinalizeBlock+Commit: {tps:.0} tx/s over {blocks} blocks of {per_block}");
    let n = (per_block * blocks) as f64;
    println!(
        "FinalizeBlock+Commit after CheckTx (signatures cached): {:.0} tx/s",
        n / warm_total
    );
    println!(
        "CheckTx alone (sequential, one mempool connection): {:.0} tx/s",
        n / check_total
    );
    println!("baseline, sequential decode+verify only: {verify_tps:.0} tx/s");
    println!(
        "ratio (full pipeline / sequential signature checks): {:.2}",
        tps / verify_tps
    );
    Ok(())
}
