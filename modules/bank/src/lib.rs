//! `bank`: balances in uvtr, transfers, module accounts and burning.
//!
//! Total supply is stored and kept equal to the sum of all balances: only
//! genesis mints and only [`BankWrite::burn`] destroys; [`check_supply`] is the
//! invariant that tests run after every block. Module accounts (escrow, stake,
//! fee collection) are ordinary addresses derived from the module's name.
//!
//! Depends on `auth` (a credited address gets an account) and nothing of ABCI.

// Consensus code never panics: no unwrap/expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod state_key;

use auth::{AuthError, AuthWrite};
use framework::{
    Address, Amount, AmountError, ModuleError, StateError, StateRead, StateReadExt, StateWrite,
    StateWriteExt,
};
use proto::bank::v1::{GenesisState, MsgSend};

pub const MODULE: &str = "bank";
/// Where transaction fees go.
pub const FEE_COLLECTOR: &str = "fee_collector";

/// Bank errors. Codes are stable: never renumber, only append.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BankError {
    #[error("insufficient funds: {address} has {balance}, needs {needed}")]
    InsufficientFunds {
        address: String,
        balance: Amount,
        needed: Amount,
    },
    #[error("invalid amount: {0}")]
    InvalidAmount(#[from] AmountError),
    #[error("invalid address: {0}")]
    InvalidAddress(String),
    #[error("amount must be positive")]
    ZeroAmount,
    #[error("invalid genesis: {0}")]
    InvalidGenesis(String),
    #[error("supply invariant broken: stored supply {stored}, sum of balances {sum}")]
    SupplyMismatch { stored: Amount, sum: Amount },
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    State(#[from] StateError),
}

impl ModuleError for BankError {
    fn codespace(&self) -> &'static str {
        match self {
            BankError::Auth(e) => e.codespace(),
            BankError::State(e) => e.codespace(),
            _ => MODULE,
        }
    }
    fn code(&self) -> u32 {
        match self {
            BankError::InsufficientFunds { .. } => 2,
            BankError::InvalidAmount(_) => 3,
            BankError::InvalidAddress(_) => 4,
            BankError::ZeroAmount => 5,
            BankError::InvalidGenesis(_) => 6,
            BankError::SupplyMismatch { .. } => 7,
            BankError::Auth(e) => e.code(),
            BankError::State(e) => e.code(),
        }
    }
}

framework::typed_event!(EventTransfer, "veritrain.bank.v1.EventTransfer", { sender: Address, recipient: Address, amount: Amount });
framework::typed_event!(EventBurn, "veritrain.bank.v1.EventBurn", { burner: Address, amount: Amount });

pub trait BankRead: StateRead {
    fn balance(&self, a: &Address) -> Result<Amount, BankError> {
        Ok(self
            .get_amount(&state_key::balance(a))?
            .unwrap_or(Amount::ZERO))
    }
    fn total_supply(&self) -> Result<Amount, BankError> {
        Ok(self.get_amount(state_key::SUPPLY)?.unwrap_or(Amount::ZERO))
    }
}
impl<S: StateRead + ?Sized> BankRead for S {}

/// Takes `amount` out of `from`'s balance, or fails with what it holds
/// (private: every caller moves or burns what it takes).
fn debit<S: BankWrite + ?Sized>(
    s: &mut S,
    from: &Address,
    amount: Amount,
) -> Result<(), BankError> {
    let fb = s.balance(from)?;
    let nf = fb
        .checked_sub(amount)
        .map_err(|_| BankError::InsufficientFunds {
            address: from.to_string(),
            balance: fb,
            needed: amount,
        })?;
    s.set_balance(from, nf);
    Ok(())
}

pub trait BankWrite: StateWrite {
    fn set_balance(&mut self, a: &Address, v: Amount) {
        if v.is_zero() {
            self.delete(state_key::balance(a));
        } else {
            self.put_amount(state_key::balance(a), v);
        }
    }

    /// Moves `amount` from `from` to `to` (creating `to`'s account if needed).
    fn transfer(&mut self, from: &Address, to: &Address, amount: Amount) -> Result<(), BankError> {
        debit(self, from, amount)?;
        let tb = self.balance(to)?;
        self.set_balance(to, tb.checked_add(amount)?);
        self.ensure_account(to)?;
        self.emit_typed(&EventTransfer {
            sender: *from,
            recipient: *to,
            amount,
        });
        Ok(())
    }

    /// Destroys `amount` held by `from`, lowering the total supply.
    fn burn(&mut self, from: &Address, amount: Amount) -> Result<(), BankError> {
        debit(self, from, amount)?;
        let supply = self.total_supply()?.checked_sub(amount)?;
        self.put_amount(state_key::SUPPLY.to_vec(), supply);
        self.emit_typed(&EventBurn {
            burner: *from,
            amount,
        });
        Ok(())
    }
}
impl<S: StateWrite + ?Sized> BankWrite for S {}

/// `MsgSend`, validated into domain types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Send {
    pub from: Address,
    pub to: Address,
    pub amount: Amount,
}

impl TryFrom<&MsgSend> for Send {
    type Error = BankError;
    fn try_from(m: &MsgSend) -> Result<Self, BankError> {
        let from = m
            .from_address
            .parse()
            .map_err(|e: framework::AddressError| BankError::InvalidAddress(e.to_string()))?;
        let to = m
            .to_address
            .parse()
            .map_err(|e: framework::AddressError| BankError::InvalidAddress(e.to_string()))?;
        let c = m.amount.as_ref().ok_or(BankError::ZeroAmount)?;
        let amount = Amount::from_coin(&c.denom, &c.amount)?;
        if amount.is_zero() {
            return Err(BankError::ZeroAmount);
        }
        Ok(Send { from, to, amount })
    }
}

/// Executes a send (the signer check is the dispatcher's).
pub fn execute_send<S: StateWrite + ?Sized>(s: &mut S, m: &Send) -> Result<(), BankError> {
    s.transfer(&m.from, &m.to, m.amount)
}

pub fn init_genesis<S: StateWrite + ?Sized>(s: &mut S, g: &GenesisState) -> Result<(), BankError> {
    let mut supply = s.total_supply()?;
    for b in &g.balances {
        let a: Address = b
            .address
            .parse()
            .map_err(|e: framework::AddressError| BankError::InvalidGenesis(e.to_string()))?;
        let amt = Amount::parse_coin(&b.amount)?;
        let cur = s.balance(&a)?;
        s.set_balance(&a, cur.checked_add(amt)?);
        s.ensure_account(&a)?;
        supply = supply.checked_add(amt)?;
    }
    s.put_amount(state_key::SUPPLY.to_vec(), supply);
    Ok(())
}

/// Every balance, in key order, and the supply they sum to.
pub fn all_balances<S: StateRead + ?Sized>(s: &S) -> Result<Vec<(Address, Amount)>, BankError> {
    let mut out = Vec::new();
    let mut start = Vec::new();
    loop {
        let page = s.prefix_raw(state_key::BALANCE_PREFIX, &start, 1000)?;
        for (k, v) in &page {
            let corrupt = || StateError::Corrupt {
                key: String::from_utf8_lossy(k).into_owned(),
                reason: "bad balance entry".into(),
            };
            let a =
                Address::from_slice(&k[state_key::BALANCE_PREFIX.len()..]).ok_or_else(corrupt)?;
            let v = Amount::from_be_slice(v).ok_or_else(corrupt)?;
            out.push((a, v));
        }
        match page.last() {
            Some((k, _)) if page.len() == 1000 => {
                start = k.clone();
                start.push(0);
            }
            _ => return Ok(out),
        }
    }
}

pub fn export_genesis<S: StateRead + ?Sized>(s: &S) -> Result<GenesisState, BankError> {
    Ok(GenesisState {
        balances: all_balances(s)?
            .into_iter()
            .map(|(a, v)| proto::bank::v1::Balance {
                address: a.to_string(),
                amount: v.0.to_string(),
            })
            .collect(),
    })
}

/// The supply invariant: stored supply == sum of balances.
pub fn check_supply<S: StateRead + ?Sized>(s: &S) -> Result<Amount, BankError> {
    let mut sum = Amount::ZERO;
    for (_, v) in all_balances(s)? {
        sum = sum.checked_add(v)?;
    }
    let stored = s.total_supply()?;
    if stored != sum {
        return Err(BankError::SupplyMismatch { stored, sum });
    }
    Ok(sum)
}

#[cfg(test)]
#[path = "lib_tests.rs"]
mod tests;
