//! Helpers shared by tests, benchmarks and the dev chain: deterministic keys,
//! a funded genesis and signed messages.
use crate::genesis::AppState;
use auth::Signer;
use framework::{Address, Amount};

/// A genesis that funds each signer with `amount`.
pub fn funded_genesis(signers: &[&Signer], amount: Amount) -> AppState {
    let mut g = AppState::default();
    for s in signers {
        g.fund(&s.address(), amount);
    }
    g
}

pub fn coin(a: Amount) -> proto::base::v1::Coin {
    proto::base::v1::Coin {
        denom: framework::DENOM.into(),
        amount: a.0.to_string(),
    }
}

pub fn send_msg(from: &Address, to: &Address, amount: Amount) -> prost_types::Any {
    proto::to_any(&proto::bank::v1::MsgSend {
        from_address: from.to_string(),
        to_address: to.to_string(),
        amount: Some(coin(amount)),
    })
}

pub fn register_msg(op: &Address, role: staking::Role, stake: Amount) -> prost_types::Any {
    proto::to_any(&proto::staking::v1::MsgRegisterOperator {
        operator: op.to_string(),
        role: role.to_proto() as i32,
        stake: Some(coin(stake)),
    })
}

pub fn add_stake_msg(op: &Address, amount: Amount) -> prost_types::Any {
    proto::to_any(&proto::staking::v1::MsgAddStake {
        operator: op.to_string(),
        amount: Some(coin(amount)),
    })
}

pub fn unbond_msg(op: &Address, amount: Amount) -> prost_types::Any {
    proto::to_any(&proto::staking::v1::MsgUnbond {
        operator: op.to_string(),
        amount: Some(coin(amount)),
    })
}
