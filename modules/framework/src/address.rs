use bech32::{Bech32, Hrp};
use sha2::{Digest, Sha256};
use std::{fmt, str::FromStr};

/// Human-readable prefix of every account address.
pub const ADDRESS_PREFIX: &str = "vt";

/// A 20-byte account address: the first 20 bytes of SHA-256 of the 33-byte
/// compressed secp256k1 public key, shown as bech32 with prefix `vt`.
/// Module accounts use SHA-256 of `"module/" || name` instead.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Address(pub [u8; 20]);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("invalid address {0:?}: {1}")]
    Invalid(String, String),
}

fn first20(digest: &[u8]) -> [u8; 20] {
    let mut a = [0u8; 20];
    a.copy_from_slice(&digest[..20]);
    a
}

impl Address {
    pub fn from_pubkey(compressed: &[u8]) -> Address {
        Address(first20(&Sha256::digest(compressed)))
    }

    pub fn module(name: &str) -> Address {
        let mut h = Sha256::new();
        h.update(b"module/");
        h.update(name.as_bytes());
        Address(first20(&h.finalize()))
    }

    pub fn as_bytes(&self) -> &[u8; 20] {
        &self.0
    }

    pub fn from_slice(b: &[u8]) -> Option<Address> {
        <[u8; 20]>::try_from(b).ok().map(Address)
    }
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hrp = Hrp::parse_unchecked(ADDRESS_PREFIX);
        match bech32::encode::<Bech32>(hrp, &self.0) {
            Ok(s) => f.write_str(&s),
            Err(_) => write!(f, "0x{}", hex::encode(self.0)),
        }
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Address {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |m: String| AddressError::Invalid(s.to_string(), m);
        let (hrp, data) = bech32::decode(s).map_err(|e| err(e.to_string()))?;
        if hrp.as_str() != ADDRESS_PREFIX {
            return Err(err(format!(
                "prefix is {:?}, expected {ADDRESS_PREFIX:?}",
                hrp.as_str()
            )));
        }
        Address::from_slice(&data).ok_or_else(|| err(format!("{} bytes, expected 20", data.len())))
    }
}

impl serde::Serialize for Address {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
#[path = "address_tests.rs"]
mod tests;
