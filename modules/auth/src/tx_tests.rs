use super::*;

fn any() -> prost_types::Any {
    proto::to_any(&proto::bank::v1::MsgSend::default())
}

#[test]
fn a_signed_transaction_verifies_only_for_its_chain_and_account_number() {
    let s = Signer::from_seed("alice");
    let bytes = s.sign_tx(vec![any()], "hi", "vt-1", 7, 3, Amount(10));
    let tx = SignedTx::decode(&bytes).unwrap();
    assert_eq!(tx.signer_address(), s.address());
    assert_eq!(tx.sequence, 3);
    assert_eq!(tx.fee, Amount(10));
    tx.verify_signature("vt-1", 7).unwrap();
    assert!(matches!(
        tx.verify_signature("vt-1", 8),
        Err(AuthError::InvalidSignature(_))
    ));
    assert!(matches!(
        tx.verify_signature("vt-2", 7),
        Err(AuthError::WrongChainId { .. })
    ));
}

#[test]
fn a_forged_signature_is_rejected() {
    let alice = Signer::from_seed("alice");
    let mallory = Signer::from_seed("mallory");
    let bytes = mallory.sign_tx(vec![any()], "", "vt-1", 0, 0, Amount(1));
    let mut raw = TxRaw::decode(bytes.as_slice()).unwrap();
    // Claim to be alice while keeping mallory's signature.
    let mut ai = AuthInfo::decode(raw.auth_info_bytes.as_slice()).unwrap();
    ai.public_key = alice.public_key().to_vec();
    raw.auth_info_bytes = ai.encode_to_vec();
    let tx = SignedTx::decode(&raw.encode_to_vec()).unwrap();
    assert!(matches!(
        tx.verify_signature("vt-1", 0),
        Err(AuthError::InvalidSignature(_))
    ));
}

#[test]
fn high_s_twins_of_valid_signatures_are_rejected() {
    let s = Signer::from_seed("bob");
    let bytes = s.sign_tx(vec![any()], "", "vt-1", 0, 0, Amount(1));
    let mut raw = TxRaw::decode(bytes.as_slice()).unwrap();
    let sig = Signature::from_slice(&raw.signature).unwrap();
    let (r, ss) = sig.split_scalars();
    let high = Signature::from_scalars(r, -*ss).unwrap();
    raw.signature = high.to_bytes().to_vec();
    let tx = SignedTx::decode(&raw.encode_to_vec()).unwrap();
    assert!(matches!(
        tx.verify_signature("vt-1", 0),
        Err(AuthError::InvalidSignature(_))
    ));
}

#[test]
fn garbage_bytes_give_decode_errors_not_panics() {
    for g in [&b""[..], b"\x00", b"\xff\xff\xff", b"\x0a\x05abc"] {
        assert!(SignedTx::decode(g).is_err());
    }
}

proptest::proptest! {
    #[test]
    fn decoding_arbitrary_bytes_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        let _ = SignedTx::decode(&bytes);
    }
}
