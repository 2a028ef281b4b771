//! `auth`: accounts, the transaction format and its signatures.
//!
//! An account is created from a compressed secp256k1 public key (its address is
//! derived from it, see [`framework::Address`]) the first time it receives funds
//! or appears in genesis, and gets the next account number. Its sequence must
//! equal the `sequence` of every transaction it signs and then increments, so a
//! transaction can never be replayed.
//!
//! [`tx`] decodes and signs transactions (usable by clients without the state
//! machine); the rest is the module's state logic. Nothing here knows about
//! ABCI, tonic or storage engines.

// Consensus code never panics: no unwrap/expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod error;
pub mod state_key;
pub mod tx;

pub use error::AuthError;
pub use tx::{SignedTx, Signer};

use framework::{Address, Amount, StateRead, StateReadExt, StateWrite, StateWriteExt};
use proto::auth::v1::{BaseAccount, GenesisState, Params};

pub const MODULE: &str = "auth";

/// Default params: 1 uvtr minimum fee, 256-char memo, 1 MiB tx, 64 msgs.
pub fn default_params() -> Params {
    Params {
        min_fee: "1".into(),
        max_memo_chars: 256,
        max_tx_bytes: 1 << 20,
        max_msgs_per_tx: 64,
        fee_per_kib: "10".into(),
        fee_per_unit: "1".into(),
    }
}

/// The fee a transaction of `tx_len` bytes whose messages cause `units` of
/// validator work must pay: `min_fee + fee_per_kib × (⌈tx_len / 1024⌉ − 1) +
/// fee_per_unit × units`. Clients compute it the same way.
pub fn required_fee(p: &Params, tx_len: usize, units: u64) -> Result<Amount, AuthError> {
    let bad = |e: framework::AmountError| AuthError::InvalidParams(e.to_string());
    let amount = |s: &str, default: u128| -> Result<Amount, AuthError> {
        if s.is_empty() {
            Ok(Amount(default))
        } else {
            Amount::parse_coin(s).map_err(bad)
        }
    };
    let kib = (tx_len as u64).div_ceil(1024).saturating_sub(1);
    let bytes = amount(&p.fee_per_kib, 10)?
        .checked_mul_u64(kib)
        .map_err(bad)?;
    let work = amount(&p.fee_per_unit, 1)?
        .checked_mul_u64(units)
        .map_err(bad)?;
    amount(&p.min_fee, 1)?
        .checked_add(bytes)
        .and_then(|a| a.checked_add(work))
        .map_err(bad)
}

/// Domain view of an account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub address: Address,
    pub public_key: Option<[u8; 33]>,
    pub account_number: u64,
    pub sequence: u64,
}

impl Account {
    fn to_proto(&self) -> BaseAccount {
        BaseAccount {
            address: self.address.to_string(),
            public_key: self.public_key.map(|k| k.to_vec()).unwrap_or_default(),
            account_number: self.account_number,
            sequence: self.sequence,
        }
    }

    fn from_proto(p: &BaseAccount) -> Result<Account, AuthError> {
        let address = p
            .address
            .parse()
            .map_err(|e: framework::AddressError| AuthError::InvalidAddress(e.to_string()))?;
        let public_key = if p.public_key.is_empty() {
            None
        } else {
            Some(
                <[u8; 33]>::try_from(p.public_key.as_slice())
                    .map_err(|_| AuthError::InvalidPublicKey("not 33 bytes".into()))?,
            )
        };
        Ok(Account {
            address,
            public_key,
            account_number: p.account_number,
            sequence: p.sequence,
        })
    }
}

/// Reads of the auth module's state.
pub trait AuthRead: StateRead {
    fn account(&self, addr: &Address) -> Result<Option<Account>, AuthError> {
        match self.get_proto::<BaseAccount>(&state_key::account(addr))? {
            None => Ok(None),
            Some(p) => Account::from_proto(&p).map(Some),
        }
    }

    fn auth_params(&self) -> Result<Params, AuthError> {
        Ok(self
            .get_proto::<Params>(state_key::PARAMS)?
            .unwrap_or_else(default_params))
    }

    fn min_fee(&self) -> Result<Amount, AuthError> {
        let p = self.auth_params()?;
        Amount::parse_coin(&p.min_fee).map_err(|e| AuthError::InvalidParams(e.to_string()))
    }
}
impl<S: StateRead + ?Sized> AuthRead for S {}

/// Writes of the auth module's state.
pub trait AuthWrite: StateWrite {
    fn put_account(&mut self, a: &Account) {
        self.put_proto(state_key::account(&a.address), &a.to_proto());
    }

    /// Returns the account, creating it with the next account number if it does
    /// not exist yet.
    fn ensure_account(&mut self, addr: &Address) -> Result<Account, AuthError> {
        if let Some(a) = self.account(addr)? {
            return Ok(a);
        }
        let n = self.get_u64(state_key::NEXT_ACCOUNT_NUMBER)?.unwrap_or(0);
        let next = n.checked_add(1).ok_or(AuthError::AccountNumbersExhausted)?;
        self.put_u64(state_key::NEXT_ACCOUNT_NUMBER.to_vec(), next);
        let a = Account {
            address: *addr,
            public_key: None,
            account_number: n,
            sequence: 0,
        };
        self.put_account(&a);
        Ok(a)
    }

    /// The ante checks of `auth` against the state being written: the signer's
    /// account exists, its key matches, the signature verifies over the sign
    /// doc with this chain id and account number (skipped when the caller has
    /// already verified it, in parallel, for this very account number), the
    /// sequence is exactly the account's. Then the sequence increments (and the public key is recorded
    /// on first use).
    fn authenticate(
        &mut self,
        tx: &SignedTx,
        chain_id: &str,
        verified_for_account_number: Option<u64>,
    ) -> Result<Account, AuthError> {
        let signer = tx.signer_address();
        let mut acct = self
            .account(&signer)?
            .ok_or_else(|| AuthError::UnknownAccount(signer.to_string()))?;
        if let Some(pk) = acct.public_key {
            if pk != tx.public_key {
                return Err(AuthError::InvalidPublicKey(
                    "does not match the account's key".into(),
                ));
            }
        }
        if verified_for_account_number != Some(acct.account_number) {
            tx.verify_signature(chain_id, acct.account_number)?;
        }
        if tx.sequence != acct.sequence {
            return Err(AuthError::WrongSequence {
                expected: acct.sequence,
                got: tx.sequence,
            });
        }
        acct.sequence = acct
            .sequence
            .checked_add(1)
            .ok_or(AuthError::SequenceExhausted)?;
        acct.public_key = Some(tx.public_key);
        self.put_account(&acct);
        Ok(acct)
    }
}
impl<S: StateWrite + ?Sized> AuthWrite for S {}

/// Imports genesis: params and accounts (numbers must be unique).
pub fn init_genesis<S: StateWrite + ?Sized>(s: &mut S, g: &GenesisState) -> Result<(), AuthError> {
    let params = g.params.clone().unwrap_or_else(default_params);
    Amount::parse_coin(&params.min_fee).map_err(|e| AuthError::InvalidParams(e.to_string()))?;
    s.put_proto(state_key::PARAMS.to_vec(), &params);
    let mut next = 0u64;
    for p in &g.accounts {
        let a = Account::from_proto(p)?;
        if s.account(&a.address)?.is_some() {
            return Err(AuthError::InvalidGenesis(format!(
                "account {} listed twice",
                a.address
            )));
        }
        next = next.max(a.account_number.saturating_add(1));
        s.put_account(&a);
    }
    let cur = s.get_u64(state_key::NEXT_ACCOUNT_NUMBER)?.unwrap_or(0);
    s.put_u64(state_key::NEXT_ACCOUNT_NUMBER.to_vec(), cur.max(next));
    Ok(())
}

/// Exports genesis (every account, in key order).
pub fn export_genesis<S: StateRead + ?Sized>(s: &S) -> Result<GenesisState, AuthError> {
    let mut accounts = Vec::new();
    let mut start = Vec::new();
    loop {
        let page = s.prefix_raw(state_key::ACCOUNT_PREFIX, &start, 1000)?;
        let done = page.len() < 1000;
        for (k, v) in &page {
            let a: BaseAccount = prost::Message::decode(v.as_slice()).map_err(|e| {
                AuthError::State(framework::StateError::Corrupt {
                    key: String::from_utf8_lossy(k).into_owned(),
                    reason: e.to_string(),
                })
            })?;
            accounts.push(a);
        }
        match page.last() {
            Some((k, _)) if !done => {
                start = k.clone();
                start.push(0);
            }
            _ => break,
        }
    }
    Ok(GenesisState {
        params: Some(s.auth_params()?),
        accounts,
    })
}
