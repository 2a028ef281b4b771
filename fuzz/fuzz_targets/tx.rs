//! Transaction bytes through CheckTx and FinalizeBlock (decode, signature,
//! ante, dispatch) on a small genesis (alice and bob funded).
//!
//! Input: first byte even → the rest is a raw `TxRaw` (what a stranger
//! sends). Odd → the rest is a `TxBody` that the harness signs as alice or
//! bob with the right account number, so the fuzzer reaches the ante and
//! every message's handler (it cannot forge signatures).
//!
//! Invariants, all on the same committed state and block context:
//! - a transaction CheckTx rejects changes nothing (no writes, no events in
//!   the check state, nothing added to the signature cache);
//! - CheckTx and FinalizeBlock agree: accepted by one ⇔ code 0 in the
//!   other, and a rejection has the same (codespace, code) in both;
//! - a transaction that fails before its messages run (decode, signature,
//!   ante) leaves the block's writes exactly those of an empty block, i.e.
//!   the same app hash;
//! - after CheckTx and after the block, the supply and escrow invariants
//!   (`runtime::check_invariants`) hold.
#![no_main]
use auth::Signer;
use framework::{Amount, BlockCtx, Delta, Layered};
use libfuzzer_sys::fuzz_target;
use node::exec;
use node::store::Store;
use prost::Message;
use veritrain_fuzz::Reader;

const CHAIN: &str = "vt-fuzz";

struct World {
    store: Store,
    ctx: BlockCtx,
    signers: [(Signer, u64); 2],
    empty_block: std::collections::BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    _dir: tempfile::TempDir,
}

fn world() -> &'static World {
    static W: std::sync::OnceLock<World> = std::sync::OnceLock::new();
    W.get_or_init(|| {
        use auth::AuthRead;
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::open(dir.path()).expect("open store");
        let (alice, bob) = (Signer::from_seed("alice"), Signer::from_seed("bob"));
        let g = node::testkit::funded_genesis(&[&alice, &bob], Amount(1_000_000_000_000));
        let app_state = serde_json::to_vec(&g).expect("genesis json");
        let (commit, _) = exec::genesis(&store, CHAIN, &app_state, 0).expect("genesis");
        store.commit(commit).expect("commit genesis");
        let n = |s: &Signer| {
            store
                .account(&s.address())
                .expect("read account")
                .expect("funded account")
                .account_number
        };
        let signers = [(alice.clone(), n(&alice)), (bob.clone(), n(&bob))];
        let ctx = BlockCtx {
            height: 1,
            time_ms: 0,
            chain_id: CHAIN.into(),
            block_hash: [0; 32],
        };
        let empty_block = exec::finalize_block(&store, &ctx, &[], None).delta.writes;
        World {
            store,
            ctx,
            signers,
            empty_block,
            _dir: dir,
        }
    })
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    use node::testkit::*;
    let w = world();
    let (a, b) = (w.signers[0].0.address(), w.signers[1].0.address());
    let body = |msgs: Vec<prost_types::Any>| {
        let mut v = vec![1u8, 0, 0];
        v.extend_from_slice(&10_000u64.to_le_bytes());
        v.extend(
            proto::tx::v1::TxBody {
                messages: msgs,
                memo: String::new(),
                chain_id: CHAIN.into(),
                timeout_height: 0,
            }
            .encode_to_vec(),
        );
        v
    };
    let submit = tasks::msg::MsgSubmitTask {
        submitter: a,
        program_json: serde_json::to_vec(&train::Program::builtin("mlp-digits").expect("builtin"))
            .expect("json"),
        reward: Amount(1000),
        verification_fee: Amount(100),
        dataset: None,
        level: tasks::Level::Full,
        seed_commitment: None,
    };
    let signed = w.signers[0].0.sign_tx(
        vec![send_msg(&a, &b, Amount(5))],
        "",
        CHAIN,
        w.signers[0].1,
        0,
        Amount(10_000),
    );
    let mut raw = vec![0u8];
    raw.extend(signed);
    vec![
        ("raw-send", raw),
        ("body-send", body(vec![send_msg(&a, &b, Amount(5))])),
        (
            "body-register",
            body(vec![register_msg(&a, staking::Role::Solver, Amount(1000))]),
        ),
        ("body-add-stake", body(vec![add_stake_msg(&a, Amount(7))])),
        ("body-unbond", body(vec![unbond_msg(&a, Amount(7))])),
        ("body-submit", body(vec![proto::to_any(&submit.to_proto())])),
    ]
}

fn tx_bytes(data: &[u8]) -> Option<Vec<u8>> {
    let mut r = Reader::new(data);
    if r.u8() & 1 == 0 {
        return Some(r.rest().to_vec());
    }
    let (signer, account_number) = &world().signers[(r.u8() & 1) as usize];
    let sequence = u64::from(r.u8() % 4);
    let fee = Amount(u128::from(r.u64()));
    let body = proto::tx::v1::TxBody::decode(r.rest()).ok()?;
    Some(signer.sign_body(&body, CHAIN, *account_number, sequence, fee))
}

fuzz_target!(
    init: veritrain_fuzz::write_seeds_if_asked(seeds),
    |data: &[u8]| {
        let w = world();
        let Some(tx) = tx_bytes(data) else { return };
        let cache = exec::SigCache::default();
        let mut check = Delta::default();
        let checked = exec::check_tx(&w.store, &mut check, &w.ctx, &tx, &cache);
        match &checked {
            Err(_) => {
                assert!(check.is_empty() && check.events.is_empty(), "a rejected tx changed the check state");
                assert!(cache.is_empty(), "a rejected tx entered the signature cache");
            }
            Ok(_) => {
                let s = Layered::new(&w.store, &mut check);
                runtime::check_invariants(&s).expect("invariants after CheckTx");
            }
        }
        let mut out = exec::finalize_block(&w.store, &w.ctx, &[&tx], None);
        let res = &out.results[0];
        match &checked {
            Ok(_) => assert_eq!(res.code, 0, "CheckTx accepted, FinalizeBlock refused: {}", res.log),
            Err(f) => {
                assert_eq!(
                    (res.codespace, res.code),
                    (f.codespace, f.code),
                    "CheckTx and FinalizeBlock disagree: {} / {}",
                    f.log,
                    res.log
                );
                if !res.log.ends_with("(fee charged, sequence used)") {
                    assert!(
                        out.delta.writes == w.empty_block,
                        "a tx failing before its messages changed the block's writes: {}",
                        res.log
                    );
                }
            }
        }
        let s = Layered::new(&w.store, &mut out.delta);
        runtime::check_invariants(&s).expect("invariants after the block");
    }
);
