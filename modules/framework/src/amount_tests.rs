use super::*;

#[test]
fn coins_parse_with_and_without_denom() {
    assert_eq!(Amount::parse_coin("1000uvtr"), Ok(Amount(1000)));
    assert_eq!(Amount::parse_coin("7"), Ok(Amount(7)));
    assert!(matches!(
        Amount::parse_coin("5atom"),
        Err(AmountError::Denom(_))
    ));
    assert!(Amount::parse_coin("uvtr").is_err());
    assert!(Amount::parse_coin("340282366920938463463374607431768211456").is_err());
    assert!(Amount::from_coin("uvtr", "-1").is_err());
    assert!(Amount::from_coin("uvtr", "+1").is_err());
}

#[test]
fn arithmetic_is_checked() {
    assert!(Amount(u128::MAX).checked_add(Amount(1)).is_err());
    assert!(Amount(0).checked_sub(Amount(1)).is_err());
}

#[test]
fn mul_ratio_rounds_down_and_never_overflows() {
    assert_eq!(Amount(10).mul_ratio(1, 3), Amount(3));
    assert_eq!(Amount(u128::MAX).mul_ratio(1, 2), Amount(u128::MAX / 2));
    assert_eq!(Amount(u128::MAX).mul_ratio(7, 7), Amount(u128::MAX));
    assert_eq!(Amount(5).mul_ratio(1, 0), Amount::ZERO);
}
