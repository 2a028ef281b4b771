//! The CLI's amount, address and coin parsers: `client::parse_amount`
//! (every amount flag of `veritraind` and the daemons), `Address`'s
//! `FromStr` (bech32 `vt1…`), and the chain's own `Amount::parse_coin` and
//! `Amount::from_coin` (protobuf `Coin`s in messages).
//!
//! Invariants:
//! - the CLI's parser and the chain's agree: `parse_amount` and
//!   `parse_coin` accept the same strings with the same value, and a coin
//!   the chain accepts (`from_coin`) is accepted by both with that value;
//! - parse → format → parse is the identity for amounts (with and without
//!   the denomination) and addresses; a parsed address formats to the
//!   lower-case form of its input.
#![no_main]
use framework::{Address, Amount, DENOM};
use libfuzzer_sys::fuzz_target;

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let a = Address::from_pubkey(&[2; 33]).to_string();
    vec![
        ("amount", b"1000uvtr".to_vec()),
        ("bare", b" 42 ".to_vec()),
        ("decimal", b"1.5uvtr".to_vec()),
        ("max", u128::MAX.to_string().into_bytes()),
        ("address", a.into_bytes()),
    ]
}

fuzz_target!(
    init: veritrain_fuzz::write_seeds_if_asked(seeds),
    |data: &[u8]| {
        let Ok(s) = std::str::from_utf8(data) else { return };
        let cli = client::parse_amount(s);
        let chain = Amount::parse_coin(s);
        match (&cli, &chain) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "{s:?}"),
            (Err(_), Err(_)) => {}
            _ => panic!("{s:?}: CLI says {cli:?}, chain says {chain:?}"),
        }
        if let Ok(a) = cli {
            for f in [a.0.to_string(), a.to_string()] {
                assert_eq!(client::parse_amount(&f), Ok(a), "{f:?}");
                assert_eq!(Amount::parse_coin(&f).ok(), Some(a), "{f:?}");
            }
        }
        if let Ok(a) = Amount::from_coin(DENOM, s) {
            assert_eq!(client::parse_amount(s), Ok(a), "coin {s:?}");
            assert_eq!(Amount::from_coin(DENOM, &a.0.to_string()).ok(), Some(a));
        }
        if let Ok(addr) = s.parse::<Address>() {
            let f = addr.to_string();
            assert_eq!(f, s.to_lowercase(), "address formats differently from its input");
            assert_eq!(f.parse::<Address>().ok(), Some(addr));
        }
    }
);
