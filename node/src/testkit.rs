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

/// Signs `msgs` paying exactly the fee the chain requires of them
/// (`auth::required_fee` over the signed size and the messages' work units).
pub fn sign_paying_fee<S: framework::StateRead + ?Sized>(
    state: &S,
    signer: &Signer,
    msgs: Vec<prost_types::Any>,
    chain_id: &str,
    account_number: u64,
    sequence: u64,
) -> Vec<u8> {
    use auth::AuthRead;
    let decoded: Vec<runtime::Msg> = msgs
        .iter()
        .filter_map(|m| runtime::Msg::from_any(m).ok())
        .collect();
    let units = runtime::Msg::total_work_units(&decoded);
    let draft = signer.sign_tx(
        msgs.clone(),
        "",
        chain_id,
        account_number,
        sequence,
        Amount(u128::from(u64::MAX)),
    );
    let fee = state
        .auth_params()
        .ok()
        .and_then(|p| auth::required_fee(&p, draft.len() + 64, units).ok())
        .unwrap_or(Amount(1));
    signer.sign_tx(msgs, "", chain_id, account_number, sequence, fee)
}

/// The first of `len` consecutive ports that were free a moment ago, for a
/// test to hand to a child process. They lie below the kernel's ephemeral
/// range, so no client socket takes them meanwhile, and no two calls in one
/// process return overlapping ranges: tests running in parallel threads
/// (each binding `127.0.0.1:0`, then releasing it) could otherwise hand the
/// same port to two daemons, and one would speak to the other's socket.
pub fn free_ports(len: u16) -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    // Different test binaries start from different places (cargo runs them
    // one after another, but a developer may run two at once).
    let seed = (std::process::id() % 100) as u16 * 100;
    let len = len.clamp(1, 100);
    loop {
        let base = 20_000 + (seed + NEXT.fetch_add(100, Ordering::Relaxed) % 10_000) % 10_000;
        let held: Vec<_> = (base..base + len)
            .map_while(|p| std::net::TcpListener::bind(("127.0.0.1", p)).ok())
            .collect();
        if held.len() == usize::from(len) {
            return base;
        }
    }
}

/// One port, as [`free_ports`] gives them.
pub fn free_port() -> u16 {
    free_ports(1)
}
