//! The test world every module test uses: an in-memory state driven block by
//! block through the real dispatch and the real end-block order, with the
//! conservation invariants checked after every block.
use framework::{Address, BlockCtx, Delta, Layered, MemState, StateWrite};

use crate::{check_invariants, end_block, Msg, TxFailure};

pub struct World {
    pub state: MemState,
    /// Height of the next block.
    pub height: u64,
    /// Check the invariants after every this many blocks (1: every block;
    /// long simulations raise it, since the escrow check walks every task).
    pub check_every: u64,
}

impl Default for World {
    fn default() -> Self {
        World::new()
    }
}

/// The block context of height `h` (its hash derived from `h`).
pub fn ctx(h: u64) -> BlockCtx {
    let mut block_hash = [0u8; 32];
    block_hash[..8].copy_from_slice(&h.to_be_bytes());
    block_hash[8..16].copy_from_slice(&h.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_be_bytes());
    BlockCtx {
        height: h,
        time_ms: h as i64 * 1000,
        chain_id: "test".into(),
        block_hash,
    }
}

impl From<tasks::TasksMsg> for Msg {
    fn from(m: tasks::TasksMsg) -> Msg {
        Msg::Tasks(m)
    }
}
impl From<verde::VerdeMsg> for Msg {
    fn from(m: verde::VerdeMsg) -> Msg {
        Msg::Verde(Box::new(m))
    }
}
impl From<swarm::SwarmMsg> for Msg {
    fn from(m: swarm::SwarmMsg) -> Msg {
        Msg::Swarm(m)
    }
}

impl World {
    pub fn new() -> World {
        World {
            state: MemState::default(),
            height: 1,
            check_every: 1,
        }
    }

    pub fn ctx(&self) -> BlockCtx {
        ctx(self.height)
    }

    /// Writes outside any message (genesis, setup) in the current block;
    /// kept only if `f` succeeds. Does not end the block.
    pub fn setup<R, E: std::fmt::Display>(
        &mut self,
        f: impl FnOnce(&mut Layered<'_, MemState>, &BlockCtx) -> Result<R, E>,
    ) -> R {
        let c = self.ctx();
        let mut d = Delta::default();
        let r = f(&mut Layered::new(&self.state, &mut d), &c);
        match r {
            Ok(r) => {
                self.state.apply(d);
                r
            }
            Err(e) => panic!("setup failed: {e}"),
        }
    }

    /// One block holding `msgs` (each atomic: a failing one changes nothing),
    /// then the end-block hooks; the invariants must hold after it.
    pub fn block(&mut self, msgs: Vec<Msg>) -> Vec<Result<(), TxFailure>> {
        let c = self.ctx();
        let mut block = Delta::default();
        let mut out = Vec::with_capacity(msgs.len());
        for m in msgs {
            let mut d = Delta::default();
            let r = {
                let below = Layered::new(&self.state, &mut block);
                let mut s = Layered::new(&below, &mut d);
                m.execute(&mut s, &c)
            };
            if r.is_ok() {
                block.merge(d);
            }
            out.push(r);
        }
        let (_, failures) = end_block(&self.state, &mut block, &c);
        assert!(failures.is_empty(), "end-block hooks failed: {failures:?}");
        self.state.apply(block);
        self.height += 1;
        if !c.height.is_multiple_of(self.check_every.max(1)) {
            return out;
        }
        if let Err(e) = check_invariants(&self.state) {
            panic!("invariant broken after block {}: {e}", c.height);
        }
        out
    }

    /// One message in its own block.
    pub fn tx(&mut self, m: impl Into<Msg>) -> Result<(), TxFailure> {
        self.block(vec![m.into()]).remove(0)
    }

    /// `n` empty blocks.
    pub fn advance(&mut self, n: u64) {
        for _ in 0..n {
            self.block(vec![]);
        }
    }

    /// Funds `accounts` with `amount` each through the bank genesis.
    pub fn fund(&mut self, accounts: &[Address], amount: u128) {
        self.setup(|s, _| {
            let g = proto::bank::v1::GenesisState {
                balances: accounts
                    .iter()
                    .map(|a| proto::bank::v1::Balance {
                        address: a.to_string(),
                        amount: amount.to_string(),
                    })
                    .collect(),
            };
            bank::init_genesis(s, &g)
        });
    }

    /// Applies `f` with write access, outside any block (test setup only).
    pub fn write<R>(&mut self, f: impl FnOnce(&mut dyn StateWrite) -> R) -> R {
        let mut d = Delta::default();
        let r = f(&mut Layered::new(&self.state, &mut d));
        self.state.apply(d);
        r
    }
}
