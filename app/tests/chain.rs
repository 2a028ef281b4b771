//! The app driven by the embedded dev chain, on real sled files.
use app::devchain::DevChain;
use app::store::Store;
use app::testkit::*;
use app::App;
use auth::{AuthRead, Signer};
use bank::BankRead;
use framework::Amount;

const CHAIN: &str = "vt-test";

fn open(dir: &std::path::Path, g: &app::genesis::AppState) -> DevChain {
    let app = App::new(Store::open(dir).unwrap()).unwrap();
    DevChain::start(app, CHAIN, &serde_json::to_vec(g).unwrap(), 1_000).unwrap()
}

#[test]
fn a_send_moves_funds_and_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let alice = Signer::from_seed("alice");
    let bob = Signer::from_seed("bob");
    let g = funded_genesis(&[&alice], Amount(1_000_000));
    let chain = open(dir.path(), &g);
    let acct = chain
        .app()
        .store()
        .account(&alice.address())
        .unwrap()
        .unwrap();
    let tx = alice.sign_tx(
        vec![send_msg(&alice.address(), &bob.address(), Amount(1000))],
        "",
        CHAIN,
        acct.account_number,
        0,
        Amount(10),
    );
    let r = chain.submit(tx.clone());
    assert_eq!(r.code, 0, "{}", r.log);
    // The same bytes again: refused by the mempool cache.
    assert_ne!(chain.submit(tx.clone()).code, 0);
    let h = chain.produce_block().unwrap();
    assert_eq!(h, 1);
    let store = chain.app().store().clone();
    assert_eq!(store.balance(&bob.address()).unwrap(), Amount(1000));
    assert_eq!(
        store.balance(&alice.address()).unwrap(),
        Amount(1_000_000 - 1010)
    );
    bank::check_supply(&store).unwrap();
    // Replay after inclusion: wrong sequence.
    let r = chain.submit(tx);
    assert_eq!((r.codespace.as_str(), r.code), ("auth", 5), "{}", r.log);
    chain.produce_block().unwrap();
    let hash = chain.app().last_commit().unwrap().app_hash;
    drop(chain);
    drop(store);
    let chain = open(dir.path(), &g);
    let meta = chain.app().last_commit().unwrap();
    assert_eq!(meta.height, 2);
    assert_eq!(meta.app_hash, hash);
    assert_eq!(
        chain.app().store().balance(&bob.address()).unwrap(),
        Amount(1000)
    );
    assert_eq!(chain.produce_block().unwrap(), 3);
}
