//! Two independent app instances fed the same random blocks of bank and
//! staking transactions agree on the app hash at every height, and the supply
//! is conserved after every block.
mod support;

use app::testkit::*;
use auth::{AuthRead, Signer};
use bank::BankRead;
use framework::Amount;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use support::*;

fn random_tx(rng: &mut ChaCha8Rng, signers: &[Signer], store: &app::store::Store) -> Vec<u8> {
    let i = rng.gen_range(0..signers.len());
    let s = &signers[i];
    let to = signers[rng.gen_range(0..signers.len())].address();
    let acct = store.account(&s.address()).unwrap().unwrap();
    let mut seq = acct.sequence;
    // Some transactions are wrong on purpose.
    match rng.gen_range(0..20) {
        0 => seq += 1,                              // future sequence
        1 if seq > 0 => seq -= 1,                   // replayed sequence
        2 => return rng.gen::<[u8; 24]>().to_vec(), // garbage
        _ => {}
    }
    let bal = store.balance(&s.address()).unwrap().0 as u64;
    let amount = |rng: &mut ChaCha8Rng| Amount(u128::from(rng.gen_range(1..=bal.max(2) + 10)));
    let msg = match rng.gen_range(0..10) {
        0..=5 => send_msg(&s.address(), &to, amount(rng)),
        6 => register_msg(
            &s.address(),
            if rng.gen() {
                staking::Role::Solver
            } else {
                staking::Role::Verifier
            },
            Amount(u128::from(rng.gen_range(50_000u64..3_000_000))),
        ),
        7 => add_stake_msg(
            &s.address(),
            Amount(u128::from(rng.gen_range(1u64..500_000))),
        ),
        _ => unbond_msg(
            &s.address(),
            Amount(u128::from(rng.gen_range(1u64..2_000_000))),
        ),
    };
    let fee = Amount(u128::from(rng.gen_range(0u64..5)));
    s.sign_tx(vec![msg], "", CHAIN, acct.account_number, seq, fee)
}

#[test]
fn two_nodes_agree_on_every_app_hash_over_a_thousand_random_blocks() {
    let signers: Vec<Signer> = (0..8)
        .map(|i| Signer::from_seed(&format!("det-{i}")))
        .collect();
    let refs: Vec<&Signer> = signers.iter().collect();
    let mut g = funded_genesis(&refs, Amount(20_000_000));
    g.staking.params = Some(proto::staking::v1::Params {
        min_stake_solver: "1000000".into(),
        min_stake_verifier: "100000".into(),
        unbonding_blocks: 5,
    });
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = new_app(da.path(), &g);
    let b = new_app(db.path(), &g);
    let mut rng = ChaCha8Rng::seed_from_u64(42);
    let supply = a.store().total_supply().unwrap();
    let mut ok_txs = 0;
    for h in 1..=1000u64 {
        let n = rng.gen_range(0..6);
        let txs: Vec<Vec<u8>> = (0..n)
            .map(|_| random_tx(&mut rng, &signers, a.store()))
            .collect();
        // Node A saw the transactions in its mempool first (its signature
        // cache is warm); node B did not. They must still agree.
        for tx in &txs {
            let _ = tendermint_abci::Application::check_tx(
                &a,
                tendermint_proto::v0_38::abci::RequestCheckTx {
                    tx: prost::bytes::Bytes::from(tx.clone()),
                    r#type: 0,
                },
            );
        }
        let ra = block(&a, h, h as i64 * 1000, txs.clone());
        let rb = block(&b, h, h as i64 * 1000, txs);
        assert_eq!(ra.app_hash, rb.app_hash, "app hashes diverge at height {h}");
        let codes_a: Vec<u32> = ra.tx_results.iter().map(|r| r.code).collect();
        let codes_b: Vec<u32> = rb.tx_results.iter().map(|r| r.code).collect();
        assert_eq!(codes_a, codes_b, "results diverge at height {h}");
        ok_txs += codes_a.iter().filter(|c| **c == 0).count();
        for app in [&a, &b] {
            assert_eq!(
                bank::check_supply(app.store()).unwrap(),
                supply,
                "supply changed at height {h}"
            );
        }
    }
    // The random mix must actually exercise successful paths.
    assert!(ok_txs > 500, "only {ok_txs} transactions succeeded");
}
