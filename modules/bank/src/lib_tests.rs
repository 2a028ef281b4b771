use super::*;
use framework::{Delta, Layered, MemState};

#[test]
fn transfers_conserve_supply_and_reject_overdrafts() {
    let base = MemState::default();
    let mut d = Delta::default();
    let mut s = Layered::new(&base, &mut d);
    let a = Address::module("a");
    let b = Address::module("b");
    init_genesis(
        &mut s,
        &GenesisState {
            balances: vec![proto::bank::v1::Balance {
                address: a.to_string(),
                amount: "100".into(),
            }],
        },
    )
    .unwrap();
    s.transfer(&a, &b, Amount(40)).unwrap();
    assert_eq!(s.balance(&a).unwrap(), Amount(60));
    assert_eq!(s.balance(&b).unwrap(), Amount(40));
    assert!(matches!(
        s.transfer(&b, &a, Amount(41)),
        Err(BankError::InsufficientFunds { .. })
    ));
    s.burn(&b, Amount(10)).unwrap();
    assert_eq!(check_supply(&s).unwrap(), Amount(90));
}

#[test]
fn sends_with_bad_fields_fail_validation() {
    let a = Address::module("a").to_string();
    let coin = |amt: &str, d: &str| {
        Some(proto::base::v1::Coin {
            denom: d.into(),
            amount: amt.into(),
        })
    };
    let m = |to: &str, c| MsgSend {
        from_address: a.clone(),
        to_address: to.into(),
        amount: c,
    };
    assert!(matches!(
        Send::try_from(&m(&a, coin("0", "uvtr"))),
        Err(BankError::ZeroAmount)
    ));
    assert!(matches!(
        Send::try_from(&m(&a, coin("1", "atom"))),
        Err(BankError::InvalidAmount(_))
    ));
    assert!(matches!(
        Send::try_from(&m(
            &a,
            coin("99999999999999999999999999999999999999999", "uvtr")
        )),
        Err(BankError::InvalidAmount(_))
    ));
    assert!(matches!(
        Send::try_from(&m("nope", coin("1", "uvtr"))),
        Err(BankError::InvalidAddress(_))
    ));
    assert!(Send::try_from(&m(&a, coin("1", "uvtr"))).is_ok());
}
