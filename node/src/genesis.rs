//! The `app_state` of CometBFT's `genesis.json`: one section per module.
use framework::{Address, Amount, Delta, Layered, StateRead};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AppState {
    pub auth: proto::auth::v1::GenesisState,
    pub bank: proto::bank::v1::GenesisState,
    pub staking: proto::staking::v1::GenesisState,
    pub tasks: proto::tasks::v1::GenesisState,
    pub verde: proto::verde::v1::GenesisState,
    pub swarm: proto::swarm::v1::GenesisState,
}

#[derive(Debug, thiserror::Error)]
pub enum GenesisError {
    #[error("app_state is not valid JSON for this app: {0}")]
    Json(#[from] serde_json::Error),
    #[error("auth genesis: {0}")]
    Auth(#[from] auth::AuthError),
    #[error("bank genesis: {0}")]
    Bank(#[from] bank::BankError),
    #[error("staking genesis: {0}")]
    Staking(#[from] staking::StakingError),
    #[error("tasks genesis: {0}")]
    Tasks(#[from] tasks::TasksError),
    #[error("verde genesis: {0}")]
    Verde(#[from] verde::VerdeError),
    #[error("swarm genesis: {0}")]
    Swarm(#[from] swarm::SwarmError),
}

/// Imports `app_state` into `delta` in module order auth, bank, staking, then
/// checks the supply invariant.
pub fn init<B: StateRead>(
    base: &B,
    delta: &mut Delta,
    app_state: &[u8],
) -> Result<(), GenesisError> {
    let g: AppState = if app_state.iter().all(u8::is_ascii_whitespace) {
        AppState::default()
    } else {
        serde_json::from_slice(app_state)?
    };
    let mut s = Layered::new(base, delta);
    auth::init_genesis(&mut s, &g.auth)?;
    bank::init_genesis(&mut s, &g.bank)?;
    staking::init_genesis(&mut s, &g.staking)?;
    tasks::init_genesis(&mut s, &g.tasks)?;
    verde::init_genesis(&mut s, &g.verde)?;
    swarm::init_genesis(&mut s, &g.swarm)?;
    bank::check_supply(&s)?;
    Ok(())
}

pub fn export<S: StateRead>(s: &S) -> Result<AppState, GenesisError> {
    Ok(AppState {
        auth: auth::export_genesis(s)?,
        bank: bank::export_genesis(s)?,
        staking: staking::export_genesis(s)?,
        tasks: tasks::export_genesis(s)?,
        verde: verde::export_genesis(s)?,
        swarm: swarm::export_genesis(s)?,
    })
}

impl AppState {
    /// Adds a funded account.
    pub fn fund(&mut self, addr: &Address, amount: Amount) {
        self.bank.balances.push(proto::bank::v1::Balance {
            address: addr.to_string(),
            amount: amount.0.to_string(),
        });
    }
}
