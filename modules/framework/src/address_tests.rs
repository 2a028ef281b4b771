use super::*;

#[test]
fn addresses_round_trip_through_bech32() {
    let a = Address::from_pubkey(&[2u8; 33]);
    let s = a.to_string();
    assert!(s.starts_with("vt1"));
    assert_eq!(s.parse::<Address>(), Ok(a));
}

#[test]
fn foreign_prefixes_and_bad_checksums_are_rejected() {
    let a = Address::module("bank").to_string();
    let mut bad = a.clone();
    bad.pop();
    bad.push(if a.ends_with('q') { 'p' } else { 'q' });
    assert!(bad.parse::<Address>().is_err());
    let cosmos = bech32::encode::<Bech32>(Hrp::parse_unchecked("cosmos"), &[0u8; 20]).unwrap();
    assert!(cosmos.parse::<Address>().is_err());
    assert!("garbage".parse::<Address>().is_err());
}
