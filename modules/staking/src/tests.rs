use super::*;
use framework::{Delta, Layered, MemState};

fn ctx(h: u64) -> BlockCtx {
    BlockCtx {
        height: h,
        time_ms: 0,
        chain_id: "t".into(),
        block_hash: [0; 32],
    }
}

fn funded(base: &MemState, d: &mut Delta, who: &[Address]) {
    let mut s = Layered::new(base, d);
    bank::init_genesis(
        &mut s,
        &proto::bank::v1::GenesisState {
            balances: who
                .iter()
                .map(|a| proto::bank::v1::Balance {
                    address: a.to_string(),
                    amount: "10000000".into(),
                })
                .collect(),
        },
    )
    .unwrap();
}

#[test]
fn registration_below_the_role_minimum_is_rejected() {
    let base = MemState::default();
    let mut d = Delta::default();
    let a = Address::module("op");
    funded(&base, &mut d, &[a]);
    let mut s = Layered::new(&base, &mut d);
    assert!(matches!(
        s.register(&ctx(1), a, Role::Solver, Amount(999_999)),
        Err(StakingError::BelowMinimum { .. })
    ));
    s.register(&ctx(1), a, Role::Verifier, Amount(100_000))
        .unwrap();
    assert!(matches!(
        s.register(&ctx(1), a, Role::Verifier, Amount(100_000)),
        Err(StakingError::AlreadyRegistered(_))
    ));
    assert_eq!(
        s.operators(Some(Role::Verifier), None, 10).unwrap().len(),
        1
    );
    assert_eq!(s.operators(Some(Role::Solver), None, 10).unwrap().len(), 0);
}

#[test]
fn unbonded_stake_returns_after_the_period_and_is_slashable_until_then() {
    let base = MemState::default();
    let mut d = Delta::default();
    let a = Address::module("op");
    let sink = Address::module("sink");
    funded(&base, &mut d, &[a]);
    let mut s = Layered::new(&base, &mut d);
    s.register(&ctx(1), a, Role::Solver, Amount(2_000_000))
        .unwrap();
    assert!(matches!(
        s.unbond(&ctx(2), a, Amount(1_500_000)),
        Err(StakingError::BelowMinimum { .. })
    ));
    let done = s.unbond(&ctx(2), a, Amount(2_000_000)).unwrap();
    assert_eq!(done, 22);
    // Slashing reaches into the unbonding entry.
    assert_eq!(
        s.slash(&a, Amount(500_000), "test", &sink).unwrap(),
        Amount(500_000)
    );
    s.end_block(&ctx(21)).unwrap();
    assert_eq!(s.balance(&a).unwrap(), Amount(8_000_000));
    s.end_block(&ctx(22)).unwrap();
    assert_eq!(s.balance(&a).unwrap(), Amount(9_500_000));
    assert_eq!(s.balance(&sink).unwrap(), Amount(500_000));
    assert_eq!(s.balance(&module_address()).unwrap(), Amount::ZERO);
    let op = s.operator(&a).unwrap().unwrap();
    assert!(op.unbonding.is_empty());
    assert_eq!(op.slashed_total, Amount(500_000));
    bank::check_supply(&s).unwrap();
}

#[test]
fn slashing_more_than_the_stake_takes_everything_and_no_more() {
    let base = MemState::default();
    let mut d = Delta::default();
    let a = Address::module("op");
    let sink = Address::module("sink");
    funded(&base, &mut d, &[a]);
    let mut s = Layered::new(&base, &mut d);
    s.register(&ctx(1), a, Role::Verifier, Amount(300_000))
        .unwrap();
    assert_eq!(
        s.slash(&a, Amount(u128::MAX), "x", &sink).unwrap(),
        Amount(300_000)
    );
    assert_eq!(
        s.slash(&Address::module("nobody"), Amount(5), "x", &sink)
            .unwrap(),
        Amount::ZERO
    );
    bank::check_supply(&s).unwrap();
}
