//! Genesis import and export (`app_state.swarm`).
use framework::{StateRead, StateWrite, StateWriteExt};
use proto::swarm::v1 as pb;

use crate::component::state::SwarmRead;
use crate::error::Result;
use crate::params::Params;
use crate::state_key;

pub fn init_genesis<S: StateWrite + ?Sized>(s: &mut S, g: &pb::GenesisState) -> Result<()> {
    let p = match &g.params {
        Some(p) => Params::from_proto(p),
        None => Params::default(),
    };
    s.put_proto(state_key::PARAMS.to_vec(), &p.to_proto());
    Ok(())
}

pub fn export_genesis<S: StateRead + ?Sized>(s: &S) -> Result<pb::GenesisState> {
    Ok(pb::GenesisState {
        params: Some(s.swarm_params()?.to_proto()),
    })
}
