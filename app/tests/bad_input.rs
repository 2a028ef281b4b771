//! Bad transactions get stable numbered codes and readable logs in CheckTx,
//! fail cleanly inside blocks, and never panic the app.
mod support;

use app::testkit::*;
use app::App;
use auth::{AuthRead, Signer};
use bank::BankRead;
use framework::Amount;
use prost::bytes::Bytes;
use prost::Message;
use support::*;
use tendermint_abci::Application;
use tendermint_proto::v0_38::abci::{CheckTxType, RequestCheckTx, ResponseCheckTx};

fn check(app: &App, tx: &[u8]) -> ResponseCheckTx {
    app.check_tx(RequestCheckTx {
        tx: Bytes::copy_from_slice(tx),
        r#type: CheckTxType::New as i32,
    })
}

struct World {
    _dir: tempfile::TempDir,
    app: App,
    alice: Signer,
    bob: Signer,
}

fn world() -> World {
    let dir = tempfile::tempdir().unwrap();
    let alice = Signer::from_seed("alice");
    let bob = Signer::from_seed("bob");
    let app = new_app(dir.path(), &funded_genesis(&[&alice], Amount(1_000_000)));
    World {
        _dir: dir,
        app,
        alice,
        bob,
    }
}

fn acct_no(app: &App, s: &Signer) -> u64 {
    app.store()
        .account(&s.address())
        .unwrap()
        .unwrap()
        .account_number
}

#[track_caller]
fn assert_code(r: &ResponseCheckTx, codespace: &str, code: u32, log_has: &str) {
    assert_eq!(
        (r.codespace.as_str(), r.code),
        (codespace, code),
        "log: {}",
        r.log
    );
    assert!(
        r.log.contains(log_has),
        "log {:?} lacks {:?}",
        r.log,
        log_has
    );
}

#[test]
fn each_kind_of_bad_transaction_gets_its_own_stable_code() {
    let w = world();
    let (a, b) = (w.alice.address(), w.bob.address());
    let n = acct_no(&w.app, &w.alice);
    let send = |amt: u128| send_msg(&a, &b, Amount(amt));

    // Garbage bytes.
    assert_code(
        &check(&w.app, b"\x01\x02garbage"),
        "auth",
        2,
        "does not decode",
    );
    // Forged signature: bob signs, claims alice's key.
    let forged = {
        let bytes = w.bob.sign_tx(vec![send(5)], "", CHAIN, n, 0, Amount(1));
        let mut raw = proto::tx::v1::TxRaw::decode(bytes.as_slice()).unwrap();
        let mut ai = proto::tx::v1::AuthInfo::decode(raw.auth_info_bytes.as_slice()).unwrap();
        ai.public_key = w.alice.public_key().to_vec();
        raw.auth_info_bytes = ai.encode_to_vec();
        raw.encode_to_vec()
    };
    assert_code(&check(&w.app, &forged), "auth", 3, "signature");
    // Wrong chain id.
    let other = w
        .alice
        .sign_tx(vec![send(5)], "", "other-chain", n, 0, Amount(1));
    assert_code(&check(&w.app, &other), "auth", 4, "other-chain");
    // Future sequence.
    let future = w.alice.sign_tx(vec![send(5)], "", CHAIN, n, 7, Amount(1));
    assert_code(&check(&w.app, &future), "auth", 5, "sequence");
    // Insufficient funds.
    let poor = w
        .alice
        .sign_tx(vec![send(5_000_000)], "", CHAIN, n, 0, Amount(1));
    assert_code(&check(&w.app, &poor), "bank", 2, "insufficient funds");
    // Amount overflow (2^128 does not parse into an amount).
    let huge = {
        let mut m = proto::bank::v1::MsgSend {
            from_address: a.to_string(),
            to_address: b.to_string(),
            amount: Some(coin(Amount(1))),
        };
        m.amount.as_mut().unwrap().amount = "340282366920938463463374607431768211456".into();
        w.alice
            .sign_tx(vec![proto::to_any(&m)], "", CHAIN, n, 0, Amount(1))
    };
    assert_code(&check(&w.app, &huge), "bank", 3, "invalid amount");
    // Unknown message type.
    let unknown = w.alice.sign_tx(
        vec![prost_types::Any {
            type_url: "/cosmos.bank.v1beta1.MsgSend".into(),
            value: vec![],
        }],
        "",
        CHAIN,
        n,
        0,
        Amount(1),
    );
    assert_code(&check(&w.app, &unknown), "auth", 20, "unknown message");
    // Fee below the minimum.
    let cheap = w.alice.sign_tx(vec![send(5)], "", CHAIN, n, 0, Amount(0));
    assert_code(&check(&w.app, &cheap), "auth", 6, "fee too low");
    // A message signed by someone else than its sender.
    let bob_msg = w.alice.sign_tx(
        vec![send_msg(&b, &a, Amount(1))],
        "",
        CHAIN,
        n,
        0,
        Amount(1),
    );
    assert_code(&check(&w.app, &bob_msg), "auth", 13, "signer");
    // An account that never received funds cannot sign.
    let nobody = w.bob.sign_tx(
        vec![send_msg(&b, &a, Amount(1))],
        "",
        CHAIN,
        0,
        0,
        Amount(1),
    );
    assert_code(&check(&w.app, &nobody), "auth", 7, "unknown account");

    // A valid one passes, and its replay is then refused by sequence.
    let good = w.alice.sign_tx(vec![send(5)], "", CHAIN, n, 0, Amount(1));
    assert_eq!(check(&w.app, &good).code, 0);
    let replay = w.alice.sign_tx(vec![send(6)], "", CHAIN, n, 0, Amount(1));
    assert_code(&check(&w.app, &replay), "auth", 5, "sequence");
}

#[test]
fn bad_transactions_inside_a_block_fail_without_touching_state() {
    let w = world();
    let (a, b) = (w.alice.address(), w.bob.address());
    let n = acct_no(&w.app, &w.alice);
    let before = w.app.store().balance(&a).unwrap();
    let txs = vec![
        b"garbage".to_vec(),
        w.alice.sign_tx(
            vec![send_msg(&a, &b, Amount(5))],
            "",
            "other",
            n,
            0,
            Amount(1),
        ),
        w.alice.sign_tx(
            vec![send_msg(&a, &b, Amount(5))],
            "",
            CHAIN,
            n,
            3,
            Amount(1),
        ),
    ];
    // Garbage is dropped by PrepareProposal; force it through FinalizeBlock.
    let r = w
        .app
        .finalize_block(tendermint_proto::v0_38::abci::RequestFinalizeBlock {
            txs: txs.into_iter().map(Bytes::from).collect(),
            height: 1,
            time: Some(ts(1000)),
            ..Default::default()
        });
    w.app.commit();
    let codes: Vec<(String, u32)> = r
        .tx_results
        .iter()
        .map(|t| (t.codespace.clone(), t.code))
        .collect();
    assert_eq!(
        codes,
        vec![("auth".into(), 2), ("auth".into(), 4), ("auth".into(), 5)]
    );
    assert_eq!(w.app.store().balance(&a).unwrap(), before);
    assert_eq!(w.app.store().account(&a).unwrap().unwrap().sequence, 0);

    // A message that fails after the ante: fee and sequence are used, the send is not.
    let r = block(
        &w.app,
        2,
        2000,
        vec![w.alice.sign_tx(
            vec![send_msg(&a, &b, Amount(9_999_999))],
            "",
            CHAIN,
            n,
            0,
            Amount(3),
        )],
    );
    assert_eq!(
        (r.tx_results[0].codespace.as_str(), r.tx_results[0].code),
        ("bank", 2)
    );
    assert!(r.tx_results[0].log.contains("fee charged"));
    assert_eq!(w.app.store().balance(&a).unwrap(), Amount(before.0 - 3));
    assert_eq!(w.app.store().balance(&b).unwrap(), Amount::ZERO);
    assert_eq!(w.app.store().account(&a).unwrap().unwrap().sequence, 1);
    bank::check_supply(w.app.store()).unwrap();
}

#[test]
fn process_proposal_rejects_blocks_with_undecodable_transactions() {
    let w = world();
    let r = w
        .app
        .process_proposal(tendermint_proto::v0_38::abci::RequestProcessProposal {
            txs: vec![Bytes::from_static(b"\xff\xfe")],
            height: 1,
            ..Default::default()
        });
    assert_eq!(r.status, 2, "expected REJECT");
    let p = w
        .app
        .prepare_proposal(tendermint_proto::v0_38::abci::RequestPrepareProposal {
            max_tx_bytes: 1 << 20,
            txs: vec![Bytes::from_static(b"\xff\xfe")],
            height: 1,
            ..Default::default()
        });
    assert!(p.txs.is_empty());
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Random corruption of valid transactions, executed in blocks: no panic,
    /// supply conserved, both nodes agree.
    #[test]
    fn corrupted_transactions_never_panic_or_break_supply(
        flips in proptest::collection::vec((0usize..400, proptest::prelude::any::<u8>()), 1..6),
        truncate in proptest::option::of(0usize..300),
    ) {
        let w = world();
        let (a, b) = (w.alice.address(), w.bob.address());
        let n = acct_no(&w.app, &w.alice);
        let mut tx = w.alice.sign_tx(vec![send_msg(&a, &b, Amount(77))], "memo", CHAIN, n, 0, Amount(2));
        for (i, v) in flips {
            let len = tx.len();
            tx[i % len] ^= v;
        }
        if let Some(t) = truncate {
            tx.truncate(t);
        }
        let _ = check(&w.app, &tx);
        let r = w.app.finalize_block(tendermint_proto::v0_38::abci::RequestFinalizeBlock {
            txs: vec![Bytes::from(tx)],
            height: 1,
            time: Some(ts(1000)),
            ..Default::default()
        });
        w.app.commit();
        proptest::prop_assert_eq!(r.tx_results.len(), 1);
        proptest::prop_assert_eq!(r.app_hash.len(), 32);
        bank::check_supply(w.app.store()).unwrap();
    }
}

/// A submission pays for the validator work its program may cause: a huge
/// program with the minimum fee is refused by the ante, and from a poor
/// account CheckTx refuses it in milliseconds without building anything.
#[test]
fn an_oversized_program_is_refused_by_its_fee_before_anything_is_built() {
    let w = world();
    let a = w.alice.address();
    let n = acct_no(&w.app, &w.alice);
    let mut lm = train::Program::builtin("tiny-lm").unwrap();
    if let train::program::Model::Transformer { layers, .. } = &mut lm.model {
        *layers = 16_384;
    }
    let submit = |p: &train::Program| {
        proto::to_any(&proto::tasks::v1::MsgSubmitTask {
            submitter: a.to_string(),
            program_json: serde_json::to_vec(p).unwrap(),
            reward: Some(coin(Amount(1_000))),
            ..Default::default()
        })
    };
    let units = runtime::Msg::from_any(&submit(&lm)).unwrap().work_units();
    assert!(units > 1_000_000, "{units} units");
    let tx = w
        .alice
        .sign_tx(vec![submit(&lm)], "", CHAIN, n, 0, Amount(1));
    let t0 = std::time::Instant::now();
    let r = check(&w.app, &tx);
    let took = t0.elapsed();
    assert_code(&r, "auth", 6, "fee too low");
    assert!(took.as_millis() < 100, "CheckTx took {took:?}");
    // Paying the fee it asks for but holding less: refused by the fee transfer.
    let fee =
        auth::required_fee(&w.app.store().auth_params().unwrap(), tx.len() + 64, units).unwrap();
    let tx = w.alice.sign_tx(vec![submit(&lm)], "", CHAIN, n, 0, fee);
    let t0 = std::time::Instant::now();
    let r = check(&w.app, &tx);
    assert!(
        t0.elapsed().as_millis() < 100,
        "CheckTx took {:?}",
        t0.elapsed()
    );
    assert_code(&r, "bank", 2, "insufficient funds");
    // An ordinary program pays a modest fee.
    let mut small = train::Program::builtin("mlp-digits").unwrap();
    small.steps = 10;
    let units = runtime::Msg::from_any(&submit(&small))
        .unwrap()
        .work_units();
    assert!((100..10_000).contains(&units), "{units} units");
}

/// Old JMT versions are pruned: after many blocks that keep rewriting the
/// same keys, the stored tree nodes stay bounded (the live tree plus the
/// last `KEEP_VERSIONS` versions' replaced nodes), and the state still
/// proves against the app hash.
#[test]
fn replaced_tree_nodes_are_pruned_after_the_kept_versions() {
    let w = world();
    let (a, b) = (w.alice.address(), w.bob.address());
    let n = acct_no(&w.app, &w.alice);
    let blocks = app::store::KEEP_VERSIONS + 300;
    let mut counts = Vec::new();
    for h in 1..=blocks {
        let tx = w.alice.sign_tx(
            vec![send_msg(&a, &b, Amount(1))],
            "",
            CHAIN,
            n,
            h - 1,
            Amount(1),
        );
        let r = block(&w.app, h, h as i64 * 1000, vec![tx]);
        assert_eq!(r.tx_results[0].code, 0, "{}", r.tx_results[0].log);
        if h % 100 == 0 {
            counts.push(w.app.store().jmt_node_count());
        }
    }
    // Growth stops once pruning starts (each block replaces about as many
    // nodes as it writes).
    let at_keep = counts[(app::store::KEEP_VERSIONS / 100) as usize - 1];
    let end = *counts.last().unwrap();
    assert!(
        end <= at_keep + at_keep / 50,
        "nodes kept growing: {counts:?}"
    );
    assert!(
        counts[1] > counts[0],
        "nodes grow until pruning starts: {counts:?}"
    );
    let meta = w.app.last_commit().unwrap();
    let (v, _proof) = w
        .app
        .store()
        .get_with_proof(&bank::state_key::balance(&b), meta.version)
        .unwrap();
    assert!(v.is_some());
    assert_eq!(w.app.store().balance(&b).unwrap(), Amount(blocks as u128));
}
