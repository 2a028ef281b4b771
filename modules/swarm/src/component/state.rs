//! Reads of the swarm state (any module or query may use them) and the
//! crate-private writes.
use bank::BankWrite;
use framework::{Address, Amount, StateError, StateRead, StateReadExt, StateWrite, StateWriteExt};
use proto::swarm::v1 as pb;

use crate::error::{Result, SwarmError};
use crate::event::EventSwarmPayout;
use crate::params::Params;
use crate::state_key;
use crate::swarm::{Round, Swarm};

pub trait SwarmRead: StateRead {
    fn swarm_params(&self) -> Result<Params> {
        Ok(match self.get_proto::<pb::Params>(state_key::PARAMS)? {
            None => Params::default(),
            Some(p) => Params::from_proto(&p),
        })
    }

    fn swarm(&self, id: u64) -> Result<Swarm> {
        let p = self
            .get_proto::<pb::Swarm>(&state_key::swarm(id))?
            .ok_or(SwarmError::NotFound(id))?;
        Swarm::from_proto(&p)
    }

    fn round(&self, id: u64, r: u64) -> Result<Round> {
        let p = self
            .get_proto::<pb::Round>(&state_key::round(id, r))?
            .ok_or(SwarmError::NotFound(id))?;
        Round::from_proto(&p)
    }

    /// Swarms with ids > `after`, in id order (at most `limit`).
    fn swarms(&self, after: u64, limit: usize) -> Result<Vec<Swarm>> {
        let start = state_key::swarm(after.saturating_add(1));
        self.prefix_raw(state_key::SWARM_PREFIX, &start, limit)?
            .iter()
            .map(|(k, v)| {
                let p: pb::Swarm =
                    prost::Message::decode(v.as_slice()).map_err(|e| StateError::Corrupt {
                        key: String::from_utf8_lossy(k).into_owned(),
                        reason: e.to_string(),
                    })?;
                Swarm::from_proto(&p)
            })
            .collect()
    }

    /// A contributor's record in swarm `swarm` (0: over all swarms).
    fn score(&self, swarm: u64, a: &Address) -> Result<pb::ContributorScore> {
        Ok(self
            .get_proto::<pb::ContributorScore>(&state_key::score(swarm, a))?
            .unwrap_or_else(|| pb::ContributorScore {
                address: a.to_string(),
                swarm_id: swarm,
                quality: "0".into(),
                rewards: "0".into(),
                ..Default::default()
            }))
    }

    /// The best `limit` contributors of swarm `swarm` (0: over all), best first.
    fn leaderboard(&self, swarm: u64, limit: usize) -> Result<Vec<pb::ContributorScore>> {
        let prefix = state_key::rank_prefix(swarm);
        self.prefix_raw(&prefix, b"", limit)?
            .iter()
            .map(|(k, _)| {
                let addr = k
                    .get(prefix.len() + 17..)
                    .and_then(Address::from_slice)
                    .ok_or_else(|| StateError::Corrupt {
                        key: String::from_utf8_lossy(k).into_owned(),
                        reason: "not a rank key".into(),
                    })?;
                self.score(swarm, &addr)
            })
            .collect()
    }
}

impl<S: StateRead + ?Sized> SwarmRead for S {}

pub(crate) trait SwarmWrite: StateWrite {
    fn next_swarm_id(&mut self) -> Result<u64> {
        let id = self.get_u64(state_key::NEXT_ID)?.unwrap_or(1);
        self.put_u64(state_key::NEXT_ID.to_vec(), id.saturating_add(1));
        Ok(id)
    }

    fn put_swarm(&mut self, s: &Swarm) {
        self.put_proto(state_key::swarm(s.id), &s.to_proto());
    }

    fn put_round(&mut self, r: &Round) {
        self.put_proto(state_key::round(r.swarm_id, r.round), &r.to_proto());
    }

    /// Looks at swarm `id`'s round again at `height`.
    fn schedule_check(&mut self, height: u64, id: u64) {
        self.put_raw(state_key::check(height, id), Vec::new());
    }

    /// Records that swarm `swarm` created task `task_id`.
    fn own_task(&mut self, task_id: u64, swarm: u64) {
        self.put_u64(state_key::task(task_id), swarm);
    }

    /// Pays `amount` out of the swarm's escrow.
    fn pay(
        &mut self,
        sw: &mut Swarm,
        to: &Address,
        amount: Amount,
        reason: &'static str,
    ) -> Result<()> {
        if amount.is_zero() {
            return Ok(());
        }
        sw.escrow = sw.escrow.checked_sub(amount)?;
        self.transfer(&crate::module_address(), to, amount)?;
        self.emit_typed(&EventSwarmPayout {
            swarm_id: sw.id,
            recipient: *to,
            amount,
            reason,
        });
        Ok(())
    }

    /// Adds to a contributor's record in `swarm` and over all swarms, keeping
    /// both rankings in order.
    fn credit(
        &mut self,
        swarm: u64,
        a: &Address,
        quality: u64,
        rewards: Amount,
        improved: bool,
    ) -> Result<()> {
        for board in [swarm, 0] {
            let mut sc = self.score(board, a)?;
            let q0: u128 = sc.quality.parse().unwrap_or(0);
            let q1 = q0.saturating_add(quality as u128);
            let r: Amount = crate::error::amount(&sc.rewards)?;
            sc.quality = q1.to_string();
            sc.rewards = r.checked_add(rewards)?.0.to_string();
            sc.contributions = sc.contributions.saturating_add(1);
            sc.improvements = sc.improvements.saturating_add(improved as u64);
            if sc.contributions > 1 {
                self.delete(state_key::rank(board, q0, a));
            }
            self.put_raw(state_key::rank(board, q1, a), Vec::new());
            self.put_proto(state_key::score(board, a), &sc);
        }
        Ok(())
    }
}

impl<S: StateWrite + ?Sized> SwarmWrite for S {}
