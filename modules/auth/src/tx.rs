//! The transaction envelope: decoding, signing and signature checks.
//!
//! Wire format: `TxRaw { body_bytes, auth_info_bytes, signature }`. The signer
//! signs `SHA-256(SignDoc { body_bytes, auth_info_bytes, chain_id,
//! account_number })` with secp256k1 ECDSA; the signature is 64 bytes `r || s`
//! with low `s` (a high-`s` twin is rejected, so signatures are not malleable).
use crate::AuthError;
use framework::{Address, Amount};
use k256::ecdsa::{
    signature::{Signer as _, Verifier as _},
    Signature, SigningKey, VerifyingKey,
};
use prost::Message;
use proto::tx::v1::{AuthInfo, Fee, SignDoc, TxBody, TxRaw};
use sha2::{Digest, Sha256};

/// A decoded transaction whose envelope is well formed. The signature is not
/// yet verified: that needs the account number from state.
#[derive(Clone, Debug)]
pub struct SignedTx {
    /// SHA-256 of the raw bytes (the CometBFT transaction hash).
    pub hash: [u8; 32],
    pub body: TxBody,
    pub public_key: [u8; 33],
    pub sequence: u64,
    pub fee: Amount,
    body_bytes: Vec<u8>,
    auth_info_bytes: Vec<u8>,
    signature: [u8; 64],
    pub len: usize,
}

pub fn tx_hash(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

impl SignedTx {
    pub fn decode(bytes: &[u8]) -> Result<SignedTx, AuthError> {
        let raw = TxRaw::decode(bytes).map_err(|e| AuthError::TxDecode(format!("TxRaw: {e}")))?;
        let body = TxBody::decode(raw.body_bytes.as_slice())
            .map_err(|e| AuthError::TxDecode(format!("TxBody: {e}")))?;
        let ai = AuthInfo::decode(raw.auth_info_bytes.as_slice())
            .map_err(|e| AuthError::TxDecode(format!("AuthInfo: {e}")))?;
        let public_key = <[u8; 33]>::try_from(ai.public_key.as_slice()).map_err(|_| {
            AuthError::InvalidPublicKey(format!(
                "{} bytes, expected a 33-byte compressed key",
                ai.public_key.len()
            ))
        })?;
        let signature = <[u8; 64]>::try_from(raw.signature.as_slice()).map_err(|_| {
            AuthError::InvalidSignature(format!("{} bytes, expected 64", raw.signature.len()))
        })?;
        let fee = match ai.fee.and_then(|f| f.amount) {
            None => Amount::ZERO,
            Some(c) => Amount::from_coin(&c.denom, &c.amount)
                .map_err(|e| AuthError::TxDecode(format!("fee: {e}")))?,
        };
        if body.messages.is_empty() {
            return Err(AuthError::NoMessages);
        }
        Ok(SignedTx {
            hash: tx_hash(bytes),
            body,
            public_key,
            sequence: ai.sequence,
            fee,
            body_bytes: raw.body_bytes,
            auth_info_bytes: raw.auth_info_bytes,
            signature,
            len: bytes.len(),
        })
    }

    pub fn signer_address(&self) -> Address {
        Address::from_pubkey(&self.public_key)
    }

    pub fn sign_bytes(&self, chain_id: &str, account_number: u64) -> Vec<u8> {
        sign_doc(
            &self.body_bytes,
            &self.auth_info_bytes,
            chain_id,
            account_number,
        )
    }

    /// Checks the chain id in the body and the signature over the sign doc.
    pub fn verify_signature(&self, chain_id: &str, account_number: u64) -> Result<(), AuthError> {
        if self.body.chain_id != chain_id {
            return Err(AuthError::WrongChainId {
                expected: chain_id.to_string(),
                got: self.body.chain_id.clone(),
            });
        }
        let vk = VerifyingKey::from_sec1_bytes(&self.public_key)
            .map_err(|_| AuthError::InvalidPublicKey("not a point on secp256k1".into()))?;
        let sig = Signature::from_slice(&self.signature)
            .map_err(|_| AuthError::InvalidSignature("r or s out of range".into()))?;
        if sig.normalize_s().is_some() {
            return Err(AuthError::InvalidSignature("high-s signature".into()));
        }
        vk.verify(&self.sign_bytes(chain_id, account_number), &sig)
            .map_err(|_| AuthError::InvalidSignature("does not match the sign doc".into()))
    }
}

fn sign_doc(
    body_bytes: &[u8],
    auth_info_bytes: &[u8],
    chain_id: &str,
    account_number: u64,
) -> Vec<u8> {
    SignDoc {
        body_bytes: body_bytes.to_vec(),
        auth_info_bytes: auth_info_bytes.to_vec(),
        chain_id: chain_id.to_string(),
        account_number,
    }
    .encode_to_vec()
}

/// A private key that signs transactions (clients, daemons, tests).
#[derive(Clone)]
pub struct Signer {
    key: SigningKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.address())
    }
}

impl Signer {
    pub fn from_bytes(secret: &[u8]) -> Result<Signer, AuthError> {
        SigningKey::from_slice(secret)
            .map(|key| Signer { key })
            .map_err(|_| {
                AuthError::InvalidPublicKey("secret key is not a valid secp256k1 scalar".into())
            })
    }

    /// A deterministic key from a seed phrase: SHA-256 of the phrase, rehashed
    /// until it is a valid scalar. For dev chains and tests only.
    pub fn from_seed(seed: &str) -> Signer {
        let mut h: [u8; 32] = Sha256::digest(seed.as_bytes()).into();
        loop {
            if let Ok(key) = SigningKey::from_slice(&h) {
                return Signer { key };
            }
            h = Sha256::digest(h).into();
        }
    }

    pub fn generate<R: k256::elliptic_curve::rand_core::CryptoRngCore>(rng: &mut R) -> Signer {
        Signer {
            key: SigningKey::random(rng),
        }
    }

    pub fn secret_bytes(&self) -> [u8; 32] {
        self.key.to_bytes().into()
    }

    pub fn public_key(&self) -> [u8; 33] {
        let p = self.key.verifying_key().to_encoded_point(true);
        let mut out = [0u8; 33];
        out.copy_from_slice(p.as_bytes());
        out
    }

    pub fn address(&self) -> Address {
        Address::from_pubkey(&self.public_key())
    }

    /// Builds and signs a transaction; returns the wire bytes.
    pub fn sign_tx(
        &self,
        messages: Vec<prost_types::Any>,
        memo: &str,
        chain_id: &str,
        account_number: u64,
        sequence: u64,
        fee: Amount,
    ) -> Vec<u8> {
        let body = TxBody {
            messages,
            memo: memo.to_string(),
            timeout_height: 0,
            chain_id: chain_id.to_string(),
        };
        self.sign_body(&body, chain_id, account_number, sequence, fee)
    }

    pub fn sign_body(
        &self,
        body: &TxBody,
        chain_id: &str,
        account_number: u64,
        sequence: u64,
        fee: Amount,
    ) -> Vec<u8> {
        let body_bytes = body.encode_to_vec();
        let auth_info_bytes = AuthInfo {
            public_key: self.public_key().to_vec(),
            sequence,
            fee: Some(Fee {
                amount: Some(proto::base::v1::Coin {
                    denom: framework::DENOM.into(),
                    amount: fee.0.to_string(),
                }),
            }),
        }
        .encode_to_vec();
        let doc = sign_doc(&body_bytes, &auth_info_bytes, chain_id, account_number);
        let sig: Signature = self.key.sign(&doc);
        TxRaw {
            body_bytes,
            auth_info_bytes,
            signature: sig.to_bytes().to_vec(),
        }
        .encode_to_vec()
    }
}

#[cfg(test)]
#[path = "tx_tests.rs"]
mod tests;
