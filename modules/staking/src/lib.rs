//! `staking`: operators bond uvtr for a role (`solver` or `verifier`), add
//! stake, unbond over a period counted in blocks, and are slashed by other
//! modules through [`StakingWrite::slash`].
//!
//! Bonded and unbonding stake both sit in the `staking` module account, and
//! both can be slashed until the unbonding completes (a misbehaving operator
//! cannot escape by unbonding). Unbondings complete in `end_block`.
//!
//! Depends on `auth` and `bank`; knows nothing of ABCI.

// Consensus code never panics: no unwrap/expect outside tests.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod state_key;

use bank::{BankError, BankRead, BankWrite};
use framework::{
    Address, Amount, AmountError, BlockCtx, ModuleError, StateError, StateRead, StateReadExt,
    StateWrite, StateWriteExt,
};
use proto::base::v1::Coin;
use proto::staking::v1 as pb;

pub const MODULE: &str = "staking";

/// The role an operator stakes for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub enum Role {
    Solver = 1,
    Verifier = 2,
}

impl Role {
    pub fn from_proto(r: i32) -> Option<Role> {
        match pb::Role::try_from(r).ok()? {
            pb::Role::Solver => Some(Role::Solver),
            pb::Role::Verifier => Some(Role::Verifier),
            pb::Role::Unspecified => None,
        }
    }
    pub fn to_proto(self) -> pb::Role {
        match self {
            Role::Solver => pb::Role::Solver,
            Role::Verifier => pb::Role::Verifier,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Solver => "solver",
            Role::Verifier => "verifier",
        }
    }
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "solver" => Some(Role::Solver),
            "verifier" => Some(Role::Verifier),
            _ => None,
        }
    }
}

/// Staking errors. Codes are stable: never renumber, only append.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StakingError {
    #[error("{0} is already registered")]
    AlreadyRegistered(String),
    #[error("{0} is not a registered operator")]
    NotRegistered(String),
    #[error("stake {got} is below the {role} minimum {min}")]
    BelowMinimum {
        role: &'static str,
        min: Amount,
        got: Amount,
    },
    #[error("cannot unbond {requested}: bonded stake is {bonded}")]
    UnbondTooLarge { requested: Amount, bonded: Amount },
    #[error("invalid role: expected solver or verifier")]
    InvalidRole,
    #[error("invalid amount: {0}")]
    InvalidAmount(#[from] AmountError),
    #[error("amount must be positive")]
    ZeroAmount,
    #[error("invalid address: {0}")]
    InvalidAddress(String),
    #[error("invalid genesis: {0}")]
    InvalidGenesis(String),
    #[error("{operator} cannot unbond while {obligations} claim(s), selection(s) or dispute(s) it is part of are open")]
    Locked { operator: String, obligations: u64 },
    #[error(transparent)]
    Bank(#[from] BankError),
    #[error(transparent)]
    State(#[from] StateError),
}

impl ModuleError for StakingError {
    fn codespace(&self) -> &'static str {
        match self {
            StakingError::Bank(e) => e.codespace(),
            StakingError::State(e) => e.codespace(),
            _ => MODULE,
        }
    }
    fn code(&self) -> u32 {
        match self {
            StakingError::AlreadyRegistered(_) => 2,
            StakingError::NotRegistered(_) => 3,
            StakingError::BelowMinimum { .. } => 4,
            StakingError::UnbondTooLarge { .. } => 5,
            StakingError::InvalidRole => 6,
            StakingError::InvalidAmount(_) => 7,
            StakingError::ZeroAmount => 8,
            StakingError::InvalidAddress(_) => 9,
            StakingError::InvalidGenesis(_) => 10,
            StakingError::Locked { .. } => 11,
            StakingError::Bank(e) => e.code(),
            StakingError::State(e) => e.code(),
        }
    }
}

/// Domain params.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    pub min_stake_solver: Amount,
    pub min_stake_verifier: Amount,
    pub unbonding_blocks: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            min_stake_solver: Amount(1_000_000),
            min_stake_verifier: Amount(100_000),
            unbonding_blocks: 20,
        }
    }
}

impl Params {
    pub fn min_stake(&self, r: Role) -> Amount {
        match r {
            Role::Solver => self.min_stake_solver,
            Role::Verifier => self.min_stake_verifier,
        }
    }
    pub fn to_proto(&self) -> pb::Params {
        pb::Params {
            min_stake_solver: self.min_stake_solver.0.to_string(),
            min_stake_verifier: self.min_stake_verifier.0.to_string(),
            unbonding_blocks: self.unbonding_blocks,
        }
    }
    pub fn from_proto(p: &pb::Params) -> Result<Params, StakingError> {
        Ok(Params {
            min_stake_solver: Amount::parse_coin(&p.min_stake_solver)?,
            min_stake_verifier: Amount::parse_coin(&p.min_stake_verifier)?,
            unbonding_blocks: p.unbonding_blocks,
        })
    }
}

/// Domain view of an operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    pub address: Address,
    pub role: Role,
    pub stake: Amount,
    /// `(amount, completion height)`, oldest first.
    pub unbonding: Vec<(Amount, u64)>,
    pub slashed_total: Amount,
    pub registered_height: u64,
}

impl Operator {
    pub fn to_proto(&self) -> pb::Operator {
        pb::Operator {
            address: self.address.to_string(),
            role: self.role.to_proto() as i32,
            stake: self.stake.0.to_string(),
            unbonding: self
                .unbonding
                .iter()
                .map(|(a, h)| pb::UnbondingEntry {
                    amount: a.0.to_string(),
                    completion_height: *h,
                })
                .collect(),
            slashed_total: self.slashed_total.0.to_string(),
            registered_height: self.registered_height,
        }
    }

    pub fn from_proto(p: &pb::Operator) -> Result<Operator, StakingError> {
        Ok(Operator {
            address: parse_addr(&p.address)?,
            role: Role::from_proto(p.role).ok_or(StakingError::InvalidRole)?,
            stake: Amount::parse_coin(&p.stake)?,
            unbonding: p
                .unbonding
                .iter()
                .map(|u| Ok((Amount::parse_coin(&u.amount)?, u.completion_height)))
                .collect::<Result<_, StakingError>>()?,
            slashed_total: Amount::parse_coin(&p.slashed_total)?,
            registered_height: p.registered_height,
        })
    }

    /// Stake still slashable: bonded plus unbonding.
    pub fn slashable(&self) -> Result<Amount, StakingError> {
        let mut t = self.stake;
        for (a, _) in &self.unbonding {
            t = t.checked_add(*a)?;
        }
        Ok(t)
    }
}

fn hex_of(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn parse_addr(s: &str) -> Result<Address, StakingError> {
    s.parse()
        .map_err(|e: framework::AddressError| StakingError::InvalidAddress(e.to_string()))
}

fn coin_amount(c: &Option<Coin>) -> Result<Amount, StakingError> {
    let c = c.as_ref().ok_or(StakingError::ZeroAmount)?;
    let a = Amount::from_coin(&c.denom, &c.amount)?;
    if a.is_zero() {
        return Err(StakingError::ZeroAmount);
    }
    Ok(a)
}

pub fn module_address() -> Address {
    Address::module(MODULE)
}

framework::typed_event!(EventRegisterOperator, "veritrain.staking.v1.EventRegisterOperator", { operator: Address, role: &'static str, stake: Amount });
framework::typed_event!(EventAddStake, "veritrain.staking.v1.EventAddStake", { operator: Address, amount: Amount, stake: Amount });
framework::typed_event!(EventUnbond, "veritrain.staking.v1.EventUnbond", { operator: Address, amount: Amount, completion_height: u64 });
framework::typed_event!(EventUnbondComplete, "veritrain.staking.v1.EventUnbondComplete", { operator: Address, amount: Amount });
framework::typed_event!(EventSlash, "veritrain.staking.v1.EventSlash", { operator: Address, amount: Amount, reason: String });

pub trait StakingRead: StateRead {
    fn staking_params(&self) -> Result<Params, StakingError> {
        match self.get_proto::<pb::Params>(state_key::PARAMS)? {
            None => Ok(Params::default()),
            Some(p) => Params::from_proto(&p),
        }
    }

    fn operator(&self, a: &Address) -> Result<Option<Operator>, StakingError> {
        match self.get_proto::<pb::Operator>(&state_key::operator(a))? {
            None => Ok(None),
            Some(p) => Operator::from_proto(&p).map(Some),
        }
    }

    /// Operators of a role (or all roles), in address order, starting at
    /// `start` (exclusive cursor = last address of the previous page).
    fn operators(
        &self,
        role: Option<Role>,
        after: Option<&Address>,
        limit: usize,
    ) -> Result<Vec<Operator>, StakingError> {
        let prefix = match role {
            Some(r) => state_key::role_prefix(r),
            None => state_key::OPERATOR_PREFIX.to_vec(),
        };
        let start = match after {
            Some(a) => {
                let mut k = [prefix.as_slice(), a.as_bytes()].concat();
                k.push(0);
                k
            }
            None => Vec::new(),
        };
        let page = self.prefix_raw(&prefix, &start, limit)?;
        let mut out = Vec::with_capacity(page.len());
        for (k, _) in page {
            let addr =
                Address::from_slice(&k[prefix.len()..]).ok_or_else(|| StateError::Corrupt {
                    key: String::from_utf8_lossy(&k).into_owned(),
                    reason: "bad operator index key".into(),
                })?;
            if let Some(op) = self.operator(&addr)? {
                out.push(op);
            }
        }
        Ok(out)
    }

    /// Open obligations holding `a`'s stake (see [`StakingLocks`]).
    fn locks(&self, a: &Address) -> Result<u64, StakingError> {
        Ok(self.get_u64(&state_key::lock(a))?.unwrap_or(0))
    }

    /// Bonded stake of `a` in `role`, zero if it is not such an operator.
    fn bonded_stake(&self, a: &Address, role: Role) -> Result<Amount, StakingError> {
        Ok(match self.operator(a)? {
            Some(op) if op.role == role => op.stake,
            _ => Amount::ZERO,
        })
    }
}
impl<S: StateRead + ?Sized> StakingRead for S {}

/// Pending obligations that keep an operator's stake bonded: other modules
/// take a lock for each claim, verifier selection or dispute an operator is
/// part of and release it when that resolves (after any slash).
pub trait StakingLocks: StateWrite {
    fn lock(&mut self, a: &Address) -> Result<(), StakingError> {
        let n = self.locks(a)?;
        self.put_u64(state_key::lock(a), n.saturating_add(1));
        Ok(())
    }
    fn unlock(&mut self, a: &Address) -> Result<(), StakingError> {
        match self.locks(a)? {
            0 | 1 => self.delete(state_key::lock(a)),
            n => self.put_u64(state_key::lock(a), n - 1),
        }
        Ok(())
    }
}
impl<S: StateWrite + ?Sized> StakingLocks for S {}

pub trait StakingWrite: StateWrite {
    fn put_operator(&mut self, op: &Operator) {
        self.put_proto(state_key::operator(&op.address), &op.to_proto());
    }

    fn register(
        &mut self,
        ctx: &BlockCtx,
        addr: Address,
        role: Role,
        stake: Amount,
    ) -> Result<(), StakingError> {
        if self.operator(&addr)?.is_some() {
            return Err(StakingError::AlreadyRegistered(addr.to_string()));
        }
        let min = self.staking_params()?.min_stake(role);
        if stake < min {
            return Err(StakingError::BelowMinimum {
                role: role.as_str(),
                min,
                got: stake,
            });
        }
        self.transfer(&addr, &module_address(), stake)?;
        let op = Operator {
            address: addr,
            role,
            stake,
            unbonding: vec![],
            slashed_total: Amount::ZERO,
            registered_height: ctx.height,
        };
        self.put_operator(&op);
        self.put_raw(state_key::role_index(role, &addr), vec![]);
        self.emit_typed(&EventRegisterOperator {
            operator: addr,
            role: role.as_str(),
            stake,
        });
        Ok(())
    }

    fn add_stake(&mut self, addr: Address, amount: Amount) -> Result<(), StakingError> {
        let mut op = self
            .operator(&addr)?
            .ok_or_else(|| StakingError::NotRegistered(addr.to_string()))?;
        self.transfer(&addr, &module_address(), amount)?;
        op.stake = op.stake.checked_add(amount)?;
        self.put_operator(&op);
        self.emit_typed(&EventAddStake {
            operator: addr,
            amount,
            stake: op.stake,
        });
        Ok(())
    }

    /// Starts unbonding `amount`; it is paid back at `completion_height`.
    /// What stays bonded must be zero (leaving) or at least the role's minimum.
    fn unbond(
        &mut self,
        ctx: &BlockCtx,
        addr: Address,
        amount: Amount,
    ) -> Result<u64, StakingError> {
        let mut op = self
            .operator(&addr)?
            .ok_or_else(|| StakingError::NotRegistered(addr.to_string()))?;
        // Stake a pending claim, selection or dispute may need stays bonded
        // until it resolves (slashing an unbonding entry is not enough: it
        // completes in `unbonding_blocks`, sooner than a dispute may end).
        let obligations = self.locks(&addr)?;
        if obligations > 0 {
            return Err(StakingError::Locked {
                operator: addr.to_string(),
                obligations,
            });
        }
        let rest = op
            .stake
            .checked_sub(amount)
            .map_err(|_| StakingError::UnbondTooLarge {
                requested: amount,
                bonded: op.stake,
            })?;
        let params = self.staking_params()?;
        let min = params.min_stake(op.role);
        if !rest.is_zero() && rest < min {
            return Err(StakingError::BelowMinimum {
                role: op.role.as_str(),
                min,
                got: rest,
            });
        }
        let completion = ctx.height.saturating_add(params.unbonding_blocks.max(1));
        op.stake = rest;
        op.unbonding.push((amount, completion));
        self.put_operator(&op);
        let key = state_key::unbonding(completion, &addr);
        let queued = self.get_amount(&key)?.unwrap_or(Amount::ZERO);
        self.put_amount(key, queued.checked_add(amount)?);
        self.emit_typed(&EventUnbond {
            operator: addr,
            amount,
            completion_height: completion,
        });
        Ok(completion)
    }

    /// Takes up to `amount` from `addr`'s bonded stake, then from its unbonding
    /// entries (newest first), and moves it to `to`. Returns what was taken
    /// (less than `amount` only when the operator has less). Not an error when
    /// the operator does not exist: nothing is taken.
    fn slash(
        &mut self,
        addr: &Address,
        amount: Amount,
        reason: &str,
        to: &Address,
    ) -> Result<Amount, StakingError> {
        let Some(mut op) = self.operator(addr)? else {
            return Ok(Amount::ZERO);
        };
        let from_stake = op.stake.min(amount);
        op.stake = op.stake.checked_sub(from_stake)?;
        let mut taken = from_stake;
        let mut i = op.unbonding.len();
        while taken < amount && i > 0 {
            i -= 1;
            let (entry, h) = op.unbonding[i];
            let need = amount.checked_sub(taken)?;
            let cut = entry.min(need);
            op.unbonding[i].0 = entry.checked_sub(cut)?;
            taken = taken.checked_add(cut)?;
            let key = state_key::unbonding(h, addr);
            let queued = self.get_amount(&key)?.unwrap_or(Amount::ZERO);
            let left = queued.checked_sub(cut)?;
            if left.is_zero() {
                self.delete(key);
            } else {
                self.put_amount(key, left);
            }
        }
        op.unbonding.retain(|(a, _)| !a.is_zero());
        op.slashed_total = op.slashed_total.checked_add(taken)?;
        self.put_operator(&op);
        if !taken.is_zero() {
            self.transfer(&module_address(), to, taken)?;
            self.emit_typed(&EventSlash {
                operator: *addr,
                amount: taken,
                reason: reason.to_string(),
            });
        }
        Ok(taken)
    }

    /// End-block hook: pays out every unbonding that completes at or before
    /// this height, in key order (height, then address).
    fn end_block(&mut self, ctx: &BlockCtx) -> Result<(), StakingError> {
        loop {
            let due = framework::take_due(self, state_key::UNBONDING_PREFIX, ctx.height, 256)?;
            if due.is_empty() {
                return Ok(());
            }
            for e in due {
                let corrupt = || StateError::Corrupt {
                    key: format!("staking/unbonding/{}/{}", e.height, hex_of(&e.rest)),
                    reason: "bad unbonding entry".into(),
                };
                let addr = Address::from_slice(&e.rest).ok_or_else(corrupt)?;
                let amount = Amount::from_be_slice(&e.value).ok_or_else(corrupt)?;
                if let Some(mut op) = self.operator(&addr)? {
                    op.unbonding.retain(|(_, ch)| *ch != e.height);
                    self.put_operator(&op);
                }
                self.transfer(&module_address(), &addr, amount)?;
                self.emit_typed(&EventUnbondComplete {
                    operator: addr,
                    amount,
                });
            }
        }
    }
}
impl<S: StateWrite + ?Sized> StakingWrite for S {}

/// Validated staking messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StakingMsg {
    Register {
        operator: Address,
        role: Role,
        stake: Amount,
    },
    AddStake {
        operator: Address,
        amount: Amount,
    },
    Unbond {
        operator: Address,
        amount: Amount,
    },
}

impl StakingMsg {
    pub fn signer(&self) -> Address {
        match self {
            StakingMsg::Register { operator, .. }
            | StakingMsg::AddStake { operator, .. }
            | StakingMsg::Unbond { operator, .. } => *operator,
        }
    }
}

impl TryFrom<&pb::MsgRegisterOperator> for StakingMsg {
    type Error = StakingError;
    fn try_from(m: &pb::MsgRegisterOperator) -> Result<Self, StakingError> {
        Ok(StakingMsg::Register {
            operator: parse_addr(&m.operator)?,
            role: Role::from_proto(m.role).ok_or(StakingError::InvalidRole)?,
            stake: coin_amount(&m.stake)?,
        })
    }
}
impl TryFrom<&pb::MsgAddStake> for StakingMsg {
    type Error = StakingError;
    fn try_from(m: &pb::MsgAddStake) -> Result<Self, StakingError> {
        Ok(StakingMsg::AddStake {
            operator: parse_addr(&m.operator)?,
            amount: coin_amount(&m.amount)?,
        })
    }
}
impl TryFrom<&pb::MsgUnbond> for StakingMsg {
    type Error = StakingError;
    fn try_from(m: &pb::MsgUnbond) -> Result<Self, StakingError> {
        Ok(StakingMsg::Unbond {
            operator: parse_addr(&m.operator)?,
            amount: coin_amount(&m.amount)?,
        })
    }
}

pub fn execute<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    m: &StakingMsg,
) -> Result<(), StakingError> {
    match *m {
        StakingMsg::Register {
            operator,
            role,
            stake,
        } => s.register(ctx, operator, role, stake),
        StakingMsg::AddStake { operator, amount } => s.add_stake(operator, amount),
        StakingMsg::Unbond { operator, amount } => s.unbond(ctx, operator, amount).map(|_| ()),
    }
}

/// Genesis: params and pre-registered operators, whose stake must already be
/// held by the staking module account (bank genesis funds it).
pub fn init_genesis<S: StateWrite + ?Sized>(
    s: &mut S,
    g: &pb::GenesisState,
) -> Result<(), StakingError> {
    let params = match &g.params {
        Some(p) => Params::from_proto(p)?,
        None => Params::default(),
    };
    s.put_proto(state_key::PARAMS.to_vec(), &params.to_proto());
    let mut bonded = Amount::ZERO;
    for p in &g.operators {
        let op = Operator::from_proto(p)?;
        bonded = bonded.checked_add(op.slashable()?)?;
        for (a, h) in &op.unbonding {
            let key = state_key::unbonding(*h, &op.address);
            let q = s.get_amount(&key)?.unwrap_or(Amount::ZERO);
            s.put_amount(key, q.checked_add(*a)?);
        }
        s.put_raw(state_key::role_index(op.role, &op.address), vec![]);
        s.put_operator(&op);
    }
    let held = s.balance(&module_address())?;
    if held != bonded {
        return Err(StakingError::InvalidGenesis(format!(
            "operators hold {bonded} of stake but the staking module account {} has {held}",
            module_address()
        )));
    }
    Ok(())
}

pub fn export_genesis<S: StateRead + ?Sized>(s: &S) -> Result<pb::GenesisState, StakingError> {
    let mut ops = Vec::new();
    let mut after = None;
    loop {
        let page = s.operators(None, after.as_ref(), 500)?;
        let done = page.len() < 500;
        after = page.last().map(|o| o.address);
        ops.extend(page.iter().map(Operator::to_proto));
        if done {
            break;
        }
    }
    Ok(pb::GenesisState {
        params: Some(s.staking_params()?.to_proto()),
        operators: ops,
    })
}

#[cfg(test)]
mod tests;
