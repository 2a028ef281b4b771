//! `verde`: the dispute game over a committed training result.
//!
//! 1. **Open** on steps `(lo, hi]`: the challenger posts a bond and the
//!    solver's `h_lo` (agreed) and `h_hi` (disputed), both proven against the
//!    task's `trace_root`. `hi = 0` disputes `h_0` itself.
//! 2. **Step bisection** while `hi - lo > 1`: the solver reveals `h_mid` with a
//!    proof against `trace_root`; the challenger agrees (`lo = mid`) or not
//!    (`hi = mid`).
//! 3. **Op roots** of step `hi`: both post theirs. Equal roots mean both agree
//!    on every node output, so the solver must prove that `h_hi` assembles from
//!    them (**assembly**). Different roots start the **descent**: at each tree
//!    node both reveal the two children (checked against the parent), and the
//!    game goes to the leftmost child that differs, down to one leaf `j`.
//! 4. **Reveal**: the solver uploads node `j`'s inputs in chunks; each is
//!    checked when complete (state tensors against `h_lo`, earlier node outputs
//!    against its op root); batch inputs are rebuilt by the referee from the
//!    dataset: the chain's copy of a builtin one, or rows the solver uploads
//!    with proofs against the dataset root.
//! 5. **Adjudicate**: the referee runs node `j` with the CPU RepOps reference
//!    (`train::execute_node`) — the only floating point in consensus — and
//!    compares output hashes.
//! 6. **Clocks**: every move has a deadline `move_blocks` ahead; whoever owes a
//!    move and misses it loses. Silence never wins.
//!
//! The loser pays: a wrong challenger's bond goes to the solver; a wrong
//! solver loses its claim bond and `solver_slash` of stake, of which
//! `challenger_reward_percent` goes to the challenger and the rest is burned,
//! and the submitter is refunded. One open dispute per task.

pub mod state_key;

use bank::{BankError, BankRead, BankWrite};
use framework::{
    Address, Amount, AmountError, BlockCtx, ModuleError, StateError, StateRead, StateReadExt,
    StateWrite, StateWriteExt,
};
use proto::verde::v1::{self as pb, Phase};
use staking::{StakingError, StakingWrite};
use tasks::{TasksError, TasksRead};
use train::merkle::{self, Hash};

pub const MODULE: &str = "verde";

pub fn module_address() -> Address {
    Address::module(MODULE)
}

/// Verde errors. Codes are stable: never renumber, only append.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerdeError {
    #[error("dispute {0} does not exist")]
    NotFound(u64),
    #[error("dispute {id} is in phase {phase}; this move belongs to another phase")]
    WrongPhase { id: u64, phase: &'static str },
    #[error("not your move: {0}")]
    NotYourMove(String),
    #[error("move deadline passed at height {deadline} (now {height})")]
    TooLate { deadline: u64, height: u64 },
    #[error("proof does not verify: {0}")]
    BadProof(String),
    #[error("invalid interval: {0}")]
    BadInterval(String),
    #[error("bond {got} is below the minimum {min}")]
    BondTooLow { got: Amount, min: Amount },
    #[error("invalid hash: {0}")]
    InvalidHash(String),
    #[error("upload rejected: {0}")]
    BadUpload(String),
    #[error("the solver cannot challenge its own task")]
    SelfChallenge,
    #[error("the referee cannot run this program: {0}")]
    Referee(String),
    #[error("invalid address: {0}")]
    InvalidAddress(String),
    #[error("invalid amount: {0}")]
    InvalidAmount(#[from] AmountError),
    #[error("escrow invariant broken: module holds {held}, open bonds are {owed}")]
    EscrowMismatch { held: Amount, owed: Amount },
    #[error(transparent)]
    Tasks(#[from] TasksError),
    #[error(transparent)]
    Bank(#[from] BankError),
    #[error(transparent)]
    Staking(#[from] StakingError),
    #[error(transparent)]
    State(#[from] StateError),
}

impl ModuleError for VerdeError {
    fn codespace(&self) -> &'static str {
        match self {
            VerdeError::Tasks(e) => e.codespace(),
            VerdeError::Bank(e) => e.codespace(),
            VerdeError::Staking(e) => e.codespace(),
            VerdeError::State(e) => e.codespace(),
            _ => MODULE,
        }
    }
    fn code(&self) -> u32 {
        match self {
            VerdeError::NotFound(_) => 2,
            VerdeError::WrongPhase { .. } => 3,
            VerdeError::NotYourMove(_) => 4,
            VerdeError::TooLate { .. } => 5,
            VerdeError::BadProof(_) => 6,
            VerdeError::BadInterval(_) => 7,
            VerdeError::BondTooLow { .. } => 8,
            VerdeError::InvalidHash(_) => 9,
            VerdeError::BadUpload(_) => 10,
            VerdeError::SelfChallenge => 11,
            VerdeError::Referee(_) => 12,
            VerdeError::InvalidAddress(_) => 13,
            VerdeError::InvalidAmount(_) => 14,
            VerdeError::EscrowMismatch { .. } => 15,
            VerdeError::Tasks(e) => e.code(),
            VerdeError::Bank(e) => e.code(),
            VerdeError::Staking(e) => e.code(),
            VerdeError::State(e) => e.code(),
        }
    }
}

type Result<T> = std::result::Result<T, VerdeError>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    pub min_bond: Amount,
    pub move_blocks: u64,
    pub solver_slash: Amount,
    pub challenger_reward_percent: u32,
    pub max_chunk_bytes: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            min_bond: Amount(100_000),
            move_blocks: 10,
            solver_slash: Amount(500_000),
            challenger_reward_percent: 50,
            max_chunk_bytes: 256 << 10,
        }
    }
}

impl Params {
    pub fn to_proto(&self) -> pb::Params {
        pb::Params {
            min_bond: self.min_bond.0.to_string(),
            move_blocks: self.move_blocks,
            solver_slash: self.solver_slash.0.to_string(),
            challenger_reward_percent: self.challenger_reward_percent,
            max_chunk_bytes: self.max_chunk_bytes,
        }
    }
    pub fn from_proto(p: &pb::Params) -> Result<Params> {
        Ok(Params {
            min_bond: Amount::parse_coin(&p.min_bond)?,
            move_blocks: p.move_blocks.max(1),
            solver_slash: Amount::parse_coin(&p.solver_slash)?,
            challenger_reward_percent: p.challenger_reward_percent.min(100),
            max_chunk_bytes: p.max_chunk_bytes.max(1),
        })
    }
}

pub fn phase_name(p: i32) -> &'static str {
    match Phase::try_from(p).unwrap_or(Phase::Unspecified) {
        Phase::Unspecified => "unspecified",
        Phase::BisectReveal => "bisect-reveal",
        Phase::BisectRespond => "bisect-respond",
        Phase::OpRoots => "op-roots",
        Phase::Descent => "descent",
        Phase::Assembly => "assembly",
        Phase::Reveal => "reveal",
        Phase::Resolved => "resolved",
    }
}

framework::typed_event!(EventDisputeOpened, "veritrain.verde.v1.EventDisputeOpened", { dispute_id: u64, task_id: u64, challenger: Address, lo: u64, hi: u64 });
framework::typed_event!(EventDisputeMove, "veritrain.verde.v1.EventDisputeMove", { dispute_id: u64, actor: String, action: String, deadline: u64 });
framework::typed_event!(EventDisputeResolved, "veritrain.verde.v1.EventDisputeResolved", { dispute_id: u64, task_id: u64, winner: &'static str, step: u64, node: u64, op_kind: String, rounds: u32, slashed: Amount, reason: String });
framework::typed_event!(EventPayout, "veritrain.verde.v1.EventPayout", { dispute_id: u64, recipient: Address, amount: Amount, reason: &'static str });

fn parse_addr(s: &str) -> Result<Address> {
    s.parse()
        .map_err(|e: framework::AddressError| VerdeError::InvalidAddress(e.to_string()))
}

fn h32(b: &[u8], what: &str) -> Result<Hash> {
    <[u8; 32]>::try_from(b)
        .map_err(|_| VerdeError::InvalidHash(format!("{what} is {} bytes, expected 32", b.len())))
}

fn to_proof(p: &Option<pb::MerkleProof>, what: &str) -> Result<merkle::Proof> {
    let p = p
        .as_ref()
        .ok_or_else(|| VerdeError::BadProof(format!("{what}: missing")))?;
    if p.siblings.len() > 64 {
        return Err(VerdeError::BadProof(format!(
            "{what}: {} siblings",
            p.siblings.len()
        )));
    }
    Ok(merkle::Proof {
        index: p.index,
        leaf_count: p.leaf_count,
        siblings: p
            .siblings
            .iter()
            .map(|s| h32(s, "sibling"))
            .collect::<Result<_>>()?,
    })
}

/// Checks that `leaf` is leaf `index` of `leaf_count` under `root`.
fn check_proof(
    root: &Hash,
    leaf: &Hash,
    p: &merkle::Proof,
    index: u64,
    leaf_count: u64,
    what: &str,
) -> Result<()> {
    if p.index != index || p.leaf_count != leaf_count {
        return Err(VerdeError::BadProof(format!(
            "{what}: proof is for leaf {} of {}, expected leaf {index} of {leaf_count}",
            p.index, p.leaf_count
        )));
    }
    if !merkle::verify(root, leaf, p) {
        return Err(VerdeError::BadProof(format!(
            "{what}: does not hash to the committed root"
        )));
    }
    Ok(())
}

/// Number of nodes at each level of train::merkle's tree over `n` leaves.
fn level_sizes(n: u64) -> Vec<u64> {
    let mut v = vec![n.max(1)];
    while let Some(&last) = v.last() {
        if last <= 1 {
            break;
        }
        v.push(last.div_ceil(2));
    }
    v
}

/// The task, its program and the program's node `j` (the disputed operator).
fn disputed_node<S: StateRead + ?Sized>(
    s: &S,
    task_id: u64,
    j: u64,
) -> Result<(proto::tasks::v1::Task, train::Program, train::Node)> {
    let t = s.task(task_id)?;
    let prog = program_of(&t)?;
    let node = prog
        .nodes()
        .map_err(|e| VerdeError::Referee(e.to_string()))?
        .into_iter()
        .nth(j as usize)
        .ok_or_else(|| VerdeError::Referee(format!("node {j} out of range")))?;
    Ok((t, prog, node))
}

/// The program a task runs, parsed.
fn program_of(t: &proto::tasks::v1::Task) -> Result<train::Program> {
    let s = std::str::from_utf8(&t.program_json).map_err(|e| VerdeError::Referee(e.to_string()))?;
    train::Program::from_json(s).map_err(|e| VerdeError::Referee(e.to_string()))
}

pub trait VerdeRead: StateRead {
    fn verde_params(&self) -> Result<Params> {
        match self.get_proto::<pb::Params>(state_key::PARAMS)? {
            None => Ok(Params::default()),
            Some(p) => Params::from_proto(&p),
        }
    }

    fn dispute(&self, id: u64) -> Result<pb::Dispute> {
        self.get_proto::<pb::Dispute>(&state_key::dispute(id))?
            .ok_or(VerdeError::NotFound(id))
    }
}
impl<S: StateRead + ?Sized> VerdeRead for S {}

/// Who must move in a two-party phase and has not yet.
const BOTH: &str = "both";

fn record(d: &mut pb::Dispute, h: u64, actor: &str, action: String) {
    d.transcript.push(pb::Move {
        height: h,
        actor: actor.to_string(),
        action,
    });
}

pub trait VerdeWrite: StateWrite {
    fn put_dispute(&mut self, d: &pb::Dispute) {
        self.put_proto(state_key::dispute(d.id), d);
    }

    /// Sets the next deadline and whose move it is, and queues the timeout.
    fn next_move(
        &mut self,
        ctx: &BlockCtx,
        d: &mut pb::Dispute,
        phase: Phase,
        turn: String,
    ) -> Result<()> {
        let p = self.verde_params()?;
        d.phase = phase as i32;
        d.turn = turn;
        d.deadline = ctx.height.saturating_add(p.move_blocks);
        self.put_raw(
            state_key::deadline(d.deadline.saturating_add(1), d.id),
            vec![],
        );
        self.put_dispute(d);
        self.emit_typed(&EventDisputeMove {
            dispute_id: d.id,
            actor: d.turn.clone(),
            action: phase_name(d.phase).into(),
            deadline: d.deadline,
        });
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn open(
        &mut self,
        ctx: &BlockCtx,
        challenger: Address,
        task_id: u64,
        bond: Amount,
        (lo, h_lo, proof_lo): (u64, &[u8], &Option<pb::MerkleProof>),
        (hi, h_hi, proof_hi): (u64, &[u8], &Option<pb::MerkleProof>),
    ) -> Result<u64> {
        let p = self.verde_params()?;
        if bond < p.min_bond {
            return Err(VerdeError::BondTooLow {
                got: bond,
                min: p.min_bond,
            });
        }
        let t = self.task(task_id)?;
        if t.solver == challenger.to_string() {
            return Err(VerdeError::SelfChallenge);
        }
        // Status, window and "one dispute at a time" first, for a clear error
        // (the whole transaction's writes are dropped if anything below fails).
        let id = self.get_u64(state_key::NEXT_ID)?.unwrap_or(1);
        tasks::dispute_opened(self, ctx, task_id, id)?;
        let initial = lo == 0 && hi == 0;
        if !initial && (lo >= hi || hi > t.steps) {
            return Err(VerdeError::BadInterval(format!(
                "need 0 <= lo < hi <= {} (or lo = hi = 0 for h_0), got ({lo}, {hi}]",
                t.steps
            )));
        }
        let root = h32(&t.trace_root, "trace_root")?;
        let n = t.steps.saturating_add(1);
        let h_lo = h32(h_lo, "h_lo")?;
        let h_hi = h32(h_hi, "h_hi")?;
        // Two ends need no proof, so that a challenger needs nothing from a
        // solver that serves nothing: h_0 follows from the program (the chain
        // recomputes it) and h_T is the committed final_state_hash.
        if lo == 0 && proof_lo.is_none() {
            let h0 = initial_hash(&t)?;
            if h_lo != h0 {
                return Err(VerdeError::BadProof(format!(
                    "h_lo without a proof must be the program's h_0 {}",
                    hex::encode(h0)
                )));
            }
        } else {
            check_proof(
                &root,
                &h_lo,
                &to_proof(proof_lo, "proof_lo")?,
                lo,
                n,
                "h_lo",
            )?;
        }
        if hi == t.steps && hi > 0 && proof_hi.is_none() {
            if h_hi.as_slice() != t.final_state_hash.as_slice() {
                return Err(VerdeError::BadProof(
                    "h_hi without a proof must be the committed final_state_hash".into(),
                ));
            }
        } else {
            check_proof(
                &root,
                &h_hi,
                &to_proof(proof_hi, "proof_hi")?,
                hi,
                n,
                "h_hi",
            )?;
        }
        self.put_u64(state_key::NEXT_ID.to_vec(), id.saturating_add(1));
        self.transfer(&challenger, &module_address(), bond)?;
        let mut d = pb::Dispute {
            id,
            task_id,
            challenger: challenger.to_string(),
            solver: t.solver.clone(),
            bond: bond.0.to_string(),
            lo,
            h_lo: h_lo.to_vec(),
            hi,
            h_hi: h_hi.to_vec(),
            rounds: 1,
            opened_height: ctx.height,
            slashed: "0".into(),
            ..Default::default()
        };
        {
            let m = format!("open on steps ({lo}, {hi}] with bond {bond}");
            record(&mut d, ctx.height, "challenger", m);
        }
        self.emit_typed(&EventDisputeOpened {
            dispute_id: id,
            task_id,
            challenger,
            lo,
            hi,
        });
        if initial {
            // h_0 follows from the program alone: the referee recomputes it now.
            let h0 = initial_hash(&t)?;
            d.referee_output = hex::encode(h0);
            d.op_kind = "init".into();
            let solver_right = h0 == h_hi;
            self.resolve(
                ctx,
                &mut d,
                solver_right,
                if solver_right {
                    "the solver's h_0 is the program's initial state"
                } else {
                    "the solver's h_0 is not the program's initial state"
                },
            )?;
        } else {
            self.after_interval(ctx, &mut d)?;
        }
        Ok(id)
    }

    /// Next phase once the interval changed: bisect more or go to the op roots.
    fn after_interval(&mut self, ctx: &BlockCtx, d: &mut pb::Dispute) -> Result<()> {
        if d.hi - d.lo > 1 {
            d.mid = d.lo + (d.hi - d.lo) / 2;
            d.h_mid.clear();
            let solver = d.solver.clone();
            self.next_move(ctx, d, Phase::BisectReveal, solver)
        } else {
            d.solver_op_root.clear();
            d.challenger_op_root.clear();
            self.next_move(ctx, d, Phase::OpRoots, BOTH.into())
        }
    }

    fn reveal_mid(
        &mut self,
        ctx: &BlockCtx,
        solver: Address,
        id: u64,
        h_mid: &[u8],
        proof: &Option<pb::MerkleProof>,
    ) -> Result<()> {
        let mut d = self.active(ctx, id, Phase::BisectReveal, &solver)?;
        let t = self.task(d.task_id)?;
        let h = h32(h_mid, "h_mid")?;
        check_proof(
            &h32(&t.trace_root, "trace_root")?,
            &h,
            &to_proof(proof, "proof")?,
            d.mid,
            t.steps.saturating_add(1),
            "h_mid",
        )?;
        d.h_mid = h.to_vec();
        {
            let m = format!("reveal h_{} = {}", d.mid, hex::encode(&h[..8]));
            record(&mut d, ctx.height, "solver", m);
        }
        let ch = d.challenger.clone();
        self.next_move(ctx, &mut d, Phase::BisectRespond, ch)
    }

    fn respond(&mut self, ctx: &BlockCtx, challenger: Address, id: u64, agree: bool) -> Result<()> {
        let mut d = self.active(ctx, id, Phase::BisectRespond, &challenger)?;
        if agree {
            d.lo = d.mid;
            d.h_lo = d.h_mid.clone();
        } else {
            d.hi = d.mid;
            d.h_hi = d.h_mid.clone();
        }
        d.rounds += 1;
        {
            let m = format!(
                "{} with h_{}: interval ({}, {}]",
                if agree { "agree" } else { "disagree" },
                d.mid,
                d.lo,
                d.hi
            );
            record(&mut d, ctx.height, "challenger", m);
        }
        self.after_interval(ctx, &mut d)
    }

    fn post_op_root(
        &mut self,
        ctx: &BlockCtx,
        sender: Address,
        id: u64,
        root: &[u8],
    ) -> Result<()> {
        let mut d = self.dispute(id)?;
        self.check_phase(ctx, &d, Phase::OpRoots)?;
        let r = h32(root, "op_root")?;
        let s = sender.to_string();
        let slot = if s == d.solver {
            &mut d.solver_op_root
        } else if s == d.challenger {
            &mut d.challenger_op_root
        } else {
            return Err(VerdeError::NotYourMove(format!(
                "{s} is not a party of dispute {id}"
            )));
        };
        if !slot.is_empty() {
            return Err(VerdeError::NotYourMove(format!(
                "{s} already posted its op root"
            )));
        }
        *slot = r.to_vec();
        let who = if s == d.solver {
            "solver"
        } else {
            "challenger"
        };
        {
            let m = format!("op root of step {} = {}", d.hi, hex::encode(&r[..8]));
            record(&mut d, ctx.height, who, m);
        }
        if d.solver_op_root.is_empty() || d.challenger_op_root.is_empty() {
            d.turn = if d.solver_op_root.is_empty() {
                d.solver.clone()
            } else {
                d.challenger.clone()
            };
            self.put_dispute(&d);
            return Ok(());
        }
        d.rounds += 1;
        if d.solver_op_root == d.challenger_op_root {
            let solver = d.solver.clone();
            return self.next_move(ctx, &mut d, Phase::Assembly, solver);
        }
        let t = self.task(d.task_id)?;
        let sizes = level_sizes(t.node_count);
        d.level = (sizes.len() - 1) as u32;
        d.index = 0;
        d.solver_node = d.solver_op_root.clone();
        d.challenger_node = d.challenger_op_root.clone();
        self.descend_promoted(&mut d, &sizes);
        self.next_move(ctx, &mut d, Phase::Descent, BOTH.into())
    }

    /// Skips levels where the current node has a single (promoted) child.
    fn descend_promoted(&mut self, d: &mut pb::Dispute, sizes: &[u64]) {
        while d.level > 0 {
            let below = sizes[d.level as usize - 1];
            if 2 * d.index + 1 < below {
                break;
            }
            d.level -= 1;
            d.index *= 2;
        }
        d.solver_children.clear();
        d.challenger_children.clear();
    }

    fn reveal_children(
        &mut self,
        ctx: &BlockCtx,
        sender: Address,
        id: u64,
        left: &[u8],
        right: &[u8],
    ) -> Result<()> {
        let mut d = self.dispute(id)?;
        self.check_phase(ctx, &d, Phase::Descent)?;
        let s = sender.to_string();
        let is_solver = s == d.solver;
        if !is_solver && s != d.challenger {
            return Err(VerdeError::NotYourMove(format!(
                "{s} is not a party of dispute {id}"
            )));
        }
        let (node, slot) = if is_solver {
            (d.solver_node.clone(), &mut d.solver_children)
        } else {
            (d.challenger_node.clone(), &mut d.challenger_children)
        };
        if !slot.is_empty() {
            return Err(VerdeError::NotYourMove(format!(
                "{s} already revealed at this level"
            )));
        }
        let node = h32(&node, "node")?;
        let l = h32(left, "left")?;
        if d.level == 0 {
            if !right.is_empty() || merkle::leaf_node(&l) != node {
                return Err(VerdeError::BadProof(
                    "the leaf value does not hash to your tree node".into(),
                ));
            }
            *slot = l.to_vec();
        } else {
            let r = h32(right, "right")?;
            if merkle::internal_node(&l, &r) != node {
                return Err(VerdeError::BadProof(
                    "the children do not hash to your tree node".into(),
                ));
            }
            *slot = [l, r].concat();
        }
        let who = if is_solver { "solver" } else { "challenger" };
        {
            let m = format!("reveal level {} node {}", d.level, d.index);
            record(&mut d, ctx.height, who, m);
        }
        if d.solver_children.is_empty() || d.challenger_children.is_empty() {
            d.turn = if d.solver_children.is_empty() {
                d.solver.clone()
            } else {
                d.challenger.clone()
            };
            self.put_dispute(&d);
            return Ok(());
        }
        d.rounds += 1;
        if d.level == 0 {
            return self.start_reveal(ctx, d);
        }
        let (sl, sr) = d.solver_children.split_at(32);
        let (cl, cr) = d.challenger_children.split_at(32);
        let (sn, cn, idx) = if sl != cl {
            (sl.to_vec(), cl.to_vec(), 2 * d.index)
        } else {
            (sr.to_vec(), cr.to_vec(), 2 * d.index + 1)
        };
        d.solver_node = sn;
        d.challenger_node = cn;
        d.index = idx;
        d.level -= 1;
        let t = self.task(d.task_id)?;
        self.descend_promoted(&mut d, &level_sizes(t.node_count));
        self.next_move(ctx, &mut d, Phase::Descent, BOTH.into())
    }

    /// Leaf `j` found: set up the uploads of node `j`'s inputs.
    fn start_reveal(&mut self, ctx: &BlockCtx, mut d: pb::Dispute) -> Result<()> {
        d.node = d.index;
        d.solver_output = d.solver_children.clone();
        d.challenger_output = d.challenger_children.clone();
        let (_, prog, node) = disputed_node(self, d.task_id, d.node)?;
        let node = &node;
        d.op_kind = node.op.name().to_string();
        // Builtin datasets are held by the chain; rows of any other dataset
        // must be uploaded with their proofs against the dataset root.
        let on_chain_data = builtin_dataset(&prog).is_ok();
        d.inputs = node
            .inputs
            .iter()
            .zip(&node.input_shapes)
            .enumerate()
            .map(|(i, (inp, shape))| {
                let bytes = 4 * shape.iter().map(|&x| x as u64).product::<u64>();
                let (source, complete) = match inp {
                    train::Input::State(n) => (format!("state:{n}"), false),
                    train::Input::Batch(n) => (format!("batch:{n}"), on_chain_data),
                    train::Input::Node(k) => (format!("node:{k}"), false),
                };
                pb::InputUpload {
                    input: i as u32,
                    source,
                    expected_bytes: if complete { 0 } else { bytes },
                    complete,
                    ..Default::default()
                }
            })
            .collect();
        if d.inputs
            .iter()
            .any(|u| !u.complete && u.source.starts_with("batch:"))
        {
            let mut need = train::batch_rows(&prog, d.hi);
            need.sort_unstable();
            need.dedup();
            d.rows_needed = need;
        }
        {
            let m = format!("step {} node {} ({}) differs", d.hi, d.node, d.op_kind);
            record(&mut d, ctx.height, "chain", m);
        }
        if d.inputs.iter().all(|u| u.complete) {
            return self.adjudicate(ctx, &mut d);
        }
        let solver = d.solver.clone();
        self.next_move(ctx, &mut d, Phase::Reveal, solver)
    }

    fn prove_assembly(
        &mut self,
        ctx: &BlockCtx,
        solver: Address,
        id: u64,
        entries: &[pb::StateEntry],
    ) -> Result<()> {
        let mut d = self.active(ctx, id, Phase::Assembly, &solver)?;
        let t = self.task(d.task_id)?;
        let prog = program_of(&t)?;
        let graph = prog
            .graph()
            .map_err(|e| VerdeError::Referee(e.to_string()))?;
        if entries.len() != graph.updates.len() {
            return Err(VerdeError::BadProof(format!(
                "{} entries, the state has {} tensors",
                entries.len(),
                graph.updates.len()
            )));
        }
        let root = h32(&d.solver_op_root, "op root")?;
        let mut leaves = Vec::with_capacity(entries.len());
        for (e, (name, &node)) in entries.iter().zip(&graph.updates) {
            if &e.name != name {
                return Err(VerdeError::BadProof(format!(
                    "entry {:?} out of order, expected {name:?}",
                    e.name
                )));
            }
            let th = h32(&e.tensor_hash, "tensor_hash")?;
            check_proof(
                &root,
                &th,
                &to_proof(&e.proof, name)?,
                node as u64,
                t.node_count,
                name,
            )?;
            leaves.push(train::exec::state_leaf(name, &th));
        }
        let assembled = merkle::root(&leaves);
        d.op_kind = "assembly".into();
        d.referee_output = hex::encode(assembled);
        record(
            &mut d,
            ctx.height,
            "solver",
            "prove the state assembles from the agreed op root".into(),
        );
        let ok = assembled.as_slice() == d.h_hi.as_slice();
        self.resolve(
            ctx,
            &mut d,
            ok,
            if ok {
                "both op roots agree and h_hi assembles from them"
            } else {
                "h_hi does not assemble from the solver's own op root"
            },
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn upload_input(
        &mut self,
        ctx: &BlockCtx,
        solver: Address,
        id: u64,
        input: u32,
        offset: u64,
        data: &[u8],
        proof: &Option<pb::MerkleProof>,
    ) -> Result<()> {
        let mut d = self.active(ctx, id, Phase::Reveal, &solver)?;
        let p = self.verde_params()?;
        if data.len() as u64 > p.max_chunk_bytes {
            return Err(VerdeError::BadUpload(format!(
                "chunk is {} bytes, the limit is {}",
                data.len(),
                p.max_chunk_bytes
            )));
        }
        let u = d
            .inputs
            .get_mut(input as usize)
            .ok_or_else(|| VerdeError::BadUpload(format!("node has no input {input}")))?;
        if u.complete {
            return Err(VerdeError::BadUpload(format!(
                "input {input} is already complete"
            )));
        }
        if offset != u.data.len() as u64 {
            return Err(VerdeError::BadUpload(format!(
                "offset {offset}, expected {}",
                u.data.len()
            )));
        }
        // Every chunk but the last is full-size, so the number of moves (each
        // of which restarts the clock) is bounded by the input size.
        let remaining = u.expected_bytes.saturating_sub(u.data.len() as u64);
        if (data.len() as u64) < remaining.min(p.max_chunk_bytes) {
            return Err(VerdeError::BadUpload(format!(
                "chunk is {} bytes; it must be {} (full-size chunks except the last)",
                data.len(),
                remaining.min(p.max_chunk_bytes)
            )));
        }
        if u.data.len() as u64 + data.len() as u64 > u.expected_bytes {
            return Err(VerdeError::BadUpload(format!(
                "input {input} is {} bytes; this chunk overflows it",
                u.expected_bytes
            )));
        }
        u.data.extend_from_slice(data);
        let complete = u.data.len() as u64 == u.expected_bytes;
        if complete {
            self.check_input(&mut d, input as usize, proof)?;
        }
        {
            let m = format!(
                "upload input {input} at {offset} ({} bytes){}",
                data.len(),
                if complete { ", proven" } else { "" }
            );
            record(&mut d, ctx.height, "solver", m);
        }
        if d.inputs.iter().all(|u| u.complete) {
            return self.adjudicate(ctx, &mut d);
        }
        // Progress restarts the clock.
        let solver = d.solver.clone();
        self.next_move(ctx, &mut d, Phase::Reveal, solver)
    }

    /// Batch rows of node j's step, each proven against the dataset root.
    fn upload_rows(
        &mut self,
        ctx: &BlockCtx,
        solver: Address,
        id: u64,
        rows: &[pb::RowProof],
    ) -> Result<()> {
        let mut d = self.active(ctx, id, Phase::Reveal, &solver)?;
        if d.rows_needed.is_empty() {
            return Err(VerdeError::BadUpload(
                "this node needs no dataset rows".into(),
            ));
        }
        if rows.is_empty() {
            return Err(VerdeError::BadUpload("no rows".into()));
        }
        let t = self.task(d.task_id)?;
        let info = t.dataset.clone().unwrap_or_default();
        let root = h32(&t.dataset_root, "dataset_root")?;
        let chunks = info.rows.div_ceil(info.chunk_rows.max(1));
        for r in rows {
            if d.rows_needed.binary_search(&r.row).is_err() {
                return Err(VerdeError::BadUpload(format!(
                    "row {} is not in step {}'s batch",
                    r.row, d.hi
                )));
            }
            let proof = to_proof(&r.proof, "row proof")?;
            if proof.leaf_count != chunks {
                return Err(VerdeError::BadProof(format!(
                    "row proof over {} chunks, the dataset has {chunks}",
                    proof.leaf_count
                )));
            }
            let rp = train::RowProof {
                row: r.row,
                chunk: r.chunk.clone(),
                proof,
            };
            let data = train::dataset::verify_row(&root, info.row_bytes, info.chunk_rows, &rp)
                .ok_or_else(|| {
                    VerdeError::BadProof(format!("row {} does not hash to the dataset root", r.row))
                })?;
            match d.rows.binary_search_by_key(&r.row, |x| x.row) {
                Ok(_) => {}
                Err(pos) => d.rows.insert(pos, pb::RowData { row: r.row, data }),
            }
        }
        {
            let m = format!(
                "upload {} dataset rows ({} of {} proven)",
                rows.len(),
                d.rows.len(),
                d.rows_needed.len()
            );
            record(&mut d, ctx.height, "solver", m);
        }
        if d.rows.len() == d.rows_needed.len() {
            for u in &mut d.inputs {
                if u.source.starts_with("batch:") {
                    u.complete = true;
                }
            }
        }
        if d.inputs.iter().all(|u| u.complete) {
            return self.adjudicate(ctx, &mut d);
        }
        let solver = d.solver.clone();
        self.next_move(ctx, &mut d, Phase::Reveal, solver)
    }

    /// A completed upload must hash to its commitment.
    fn check_input(
        &mut self,
        d: &mut pb::Dispute,
        i: usize,
        proof: &Option<pb::MerkleProof>,
    ) -> Result<()> {
        let (t, prog, node) = disputed_node(self, d.task_id, d.node)?;
        let node = &node;
        let tensor = tensor_from(&node.input_shapes[i], &d.inputs[i].data)?;
        let th = repops::tensor_hash(&tensor);
        let pr = to_proof(proof, "input proof")?;
        match &node.inputs[i] {
            train::Input::State(name) => {
                let names: Vec<String> = prog
                    .state_spec()
                    .map_err(|e| VerdeError::Referee(e.to_string()))?
                    .into_keys()
                    .collect();
                let pos = names
                    .iter()
                    .position(|n| n == name)
                    .ok_or_else(|| VerdeError::Referee(format!("no state tensor {name}")))?;
                let leaf = train::exec::state_leaf(name, &th);
                check_proof(
                    &h32(&d.h_lo, "h_lo")?,
                    &leaf,
                    &pr,
                    pos as u64,
                    names.len() as u64,
                    &format!("state {name}"),
                )?;
            }
            train::Input::Node(k) => {
                check_proof(
                    &h32(&d.solver_op_root, "op root")?,
                    &th,
                    &pr,
                    *k as u64,
                    t.node_count,
                    &format!("output of node {k}"),
                )?;
            }
            train::Input::Batch(_) => {
                return Err(VerdeError::BadUpload(
                    "batch inputs are rebuilt by the referee".into(),
                ))
            }
        }
        d.inputs[i].tensor_hash = th.to_vec();
        d.inputs[i].complete = true;
        Ok(())
    }

    /// Runs node `j` with the CPU reference and settles the dispute.
    fn adjudicate(&mut self, ctx: &BlockCtx, d: &mut pb::Dispute) -> Result<()> {
        let (t, prog, node) = disputed_node(self, d.task_id, d.node)?;
        let node = &node;
        let mut tensors = Vec::with_capacity(node.inputs.len());
        let mut batch = None;
        for (i, inp) in node.inputs.iter().enumerate() {
            let tensor = match inp {
                train::Input::Batch(name) => {
                    if batch.is_none() {
                        let b = match builtin_dataset(&prog) {
                            Ok(ds) => train::batch_for_step(&prog, &ds, d.hi),
                            Err(_) => {
                                let info = t.dataset.clone().unwrap_or_default();
                                let schema =
                                    tasks::parse_schema(&info.schema).ok_or_else(|| {
                                        VerdeError::Referee(format!(
                                            "unknown schema {:?}",
                                            info.schema
                                        ))
                                    })?;
                                let rows: std::collections::BTreeMap<u64, &[u8]> =
                                    d.rows.iter().map(|r| (r.row, r.data.as_slice())).collect();
                                train::batch_from_rows(&prog, schema, info.row_bytes, d.hi, |r| {
                                    rows.get(&r).copied()
                                })
                            }
                        };
                        batch = Some(b.map_err(|e| VerdeError::Referee(e.to_string()))?);
                    }
                    batch
                        .as_ref()
                        .and_then(|b| b.get(name))
                        .cloned()
                        .ok_or_else(|| VerdeError::Referee(format!("no batch tensor {name}")))?
                }
                _ => tensor_from(&node.input_shapes[i], &d.inputs[i].data)?,
            };
            tensors.push(tensor);
        }
        let refs: Vec<&repops::Tensor> = tensors.iter().collect();
        let (solver_right, reason) = match train::execute_node(node, &refs) {
            Ok(out) => {
                let h = repops::tensor_hash(&out);
                d.referee_output = hex::encode(h);
                if h.as_slice() == d.solver_output.as_slice() {
                    (
                        true,
                        format!(
                            "the referee's output of node {} matches the solver's",
                            d.node
                        ),
                    )
                } else {
                    (
                        false,
                        format!(
                            "the referee's output of node {} differs from the solver's",
                            d.node
                        ),
                    )
                }
            }
            Err(e) => (
                false,
                format!(
                    "node {} cannot be computed from the proven inputs: {e}",
                    d.node
                ),
            ),
        };
        // Uploaded bytes are no longer needed once adjudicated; keep the hashes.
        for u in &mut d.inputs {
            u.data.clear();
        }
        d.rows.clear();
        self.resolve(ctx, d, solver_right, &reason)
    }

    /// Pays out and ends the dispute.
    fn resolve(
        &mut self,
        ctx: &BlockCtx,
        d: &mut pb::Dispute,
        solver_right: bool,
        reason: &str,
    ) -> Result<()> {
        let p = self.verde_params()?;
        let bond = Amount::parse_coin(&d.bond)?;
        let challenger = parse_addr(&d.challenger)?;
        let solver = parse_addr(&d.solver)?;
        let me = module_address();
        let mut slashed = Amount::ZERO;
        let pay = |s: &mut Self, to: &Address, amount: Amount, why: &'static str| -> Result<()> {
            if !amount.is_zero() {
                s.transfer(&me, to, amount)?;
                s.emit_typed(&EventPayout {
                    dispute_id: d.id,
                    recipient: *to,
                    amount,
                    reason: why,
                });
            }
            Ok(())
        };
        if solver_right {
            pay(
                self,
                &solver,
                bond,
                "challenger's bond forfeited to the solver",
            )?;
            tasks::dispute_resolved(self, ctx, d.task_id, true, &me)?;
            tasks::record_challenger(self, ctx, &challenger, false, Amount::ZERO, bond)?;
        } else {
            let forfeit = tasks::dispute_resolved(self, ctx, d.task_id, false, &me)?;
            let bond_lost = forfeit.map(|f| f.claim_bond).unwrap_or(Amount::ZERO);
            let stake_lost = self.slash(&solver, p.solver_slash, "lost a Verde dispute", &me)?;
            slashed = bond_lost.checked_add(stake_lost)?;
            let to_challenger = slashed.mul_ratio(u64::from(p.challenger_reward_percent), 100);
            pay(self, &challenger, bond, "challenger's bond returned")?;
            pay(self, &challenger, to_challenger, "challenger's reward")?;
            let burn = slashed.checked_sub(to_challenger)?;
            if !burn.is_zero() {
                self.burn(&me, burn)?;
            }
            tasks::record_slash(self, ctx, &solver, slashed)?;
            tasks::record_challenger(self, ctx, &challenger, true, to_challenger, Amount::ZERO)?;
        }
        d.phase = Phase::Resolved as i32;
        d.turn.clear();
        d.outcome = format!(
            "{} wins: {reason}",
            if solver_right { "solver" } else { "challenger" }
        );
        d.slashed = slashed.0.to_string();
        d.resolved_height = ctx.height;
        let outcome = d.outcome.clone();
        record(d, ctx.height, "chain", outcome);
        self.put_dispute(d);
        self.emit_typed(&EventDisputeResolved {
            dispute_id: d.id,
            task_id: d.task_id,
            winner: if solver_right { "solver" } else { "challenger" },
            step: d.hi,
            node: d.node,
            op_kind: d.op_kind.clone(),
            rounds: d.rounds,
            slashed,
            reason: reason.to_string(),
        });
        Ok(())
    }

    fn check_phase(&self, ctx: &BlockCtx, d: &pb::Dispute, phase: Phase) -> Result<()> {
        if d.phase != phase as i32 {
            return Err(VerdeError::WrongPhase {
                id: d.id,
                phase: phase_name(d.phase),
            });
        }
        if ctx.height > d.deadline {
            return Err(VerdeError::TooLate {
                deadline: d.deadline,
                height: ctx.height,
            });
        }
        Ok(())
    }

    /// The dispute, if it is in `phase`, before its deadline, and `who`'s move.
    fn active(&self, ctx: &BlockCtx, id: u64, phase: Phase, who: &Address) -> Result<pb::Dispute> {
        let d = self.dispute(id)?;
        self.check_phase(ctx, &d, phase)?;
        if d.turn != who.to_string() {
            return Err(VerdeError::NotYourMove(format!(
                "{} must move, not {who}",
                d.turn
            )));
        }
        Ok(d)
    }

    /// End-block hook: whoever owes a move past its deadline loses.
    fn end_block(&mut self, ctx: &BlockCtx) -> Result<()> {
        loop {
            let due = framework::take_due(self, state_key::DEADLINE_PREFIX, ctx.height, 64)?;
            if due.is_empty() {
                return Ok(());
            }
            for e in due {
                let id = <[u8; 8]>::try_from(e.rest.as_slice())
                    .map(u64::from_be_bytes)
                    .map_err(|_| StateError::Corrupt {
                        key: format!("verde/deadline/{}/{:?}", e.height, e.rest),
                        reason: "bad deadline entry".into(),
                    })?;
                let h = e.height;
                let mut d = self.dispute(id)?;
                if d.phase == Phase::Resolved as i32 || d.deadline.saturating_add(1) != h {
                    continue; // a later move reset the clock
                }
                let solver_moved = match Phase::try_from(d.phase).unwrap_or(Phase::Unspecified) {
                    Phase::OpRoots => !d.solver_op_root.is_empty(),
                    Phase::Descent => !d.solver_children.is_empty(),
                    Phase::BisectRespond => true,
                    _ => false,
                };
                let challenger_moved = match Phase::try_from(d.phase).unwrap_or(Phase::Unspecified)
                {
                    Phase::OpRoots => !d.challenger_op_root.is_empty(),
                    Phase::Descent => !d.challenger_children.is_empty(),
                    Phase::BisectRespond => false,
                    _ => true,
                };
                // The solver wins only if it moved and the challenger did not.
                let solver_right = solver_moved && !challenger_moved;
                let who = if solver_right { "challenger" } else { "solver" };
                let reason = format!(
                    "the {who} missed its {} deadline at height {}",
                    phase_name(d.phase),
                    d.deadline
                );
                self.resolve(ctx, &mut d, solver_right, &reason)?;
            }
        }
    }
}
impl<S: StateWrite + ?Sized> VerdeWrite for S {}

fn tensor_from(shape: &[usize], bytes: &[u8]) -> Result<repops::Tensor> {
    if !bytes.len().is_multiple_of(4) {
        return Err(VerdeError::BadUpload(
            "length is not a multiple of 4".into(),
        ));
    }
    let data: Vec<f32> = bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    repops::Tensor::new(shape.to_vec(), data).map_err(|e| VerdeError::BadUpload(e.to_string()))
}

/// The program's dataset from the builtin registry, checked against its root.
/// `h_0` of the task's program (initialisation reads no dataset).
fn initial_hash(t: &proto::tasks::v1::Task) -> Result<Hash> {
    let prog = program_of(t)?;
    let s = train::trainer::initial_state(&prog).map_err(|e| VerdeError::Referee(e.to_string()))?;
    Ok(train::state_hash(&s))
}

fn builtin_dataset(prog: &train::Program) -> Result<train::Dataset> {
    let ds = train::Dataset::builtin(&prog.dataset.name)
        .map_err(|e| VerdeError::Referee(format!("dataset {:?}: {e}", prog.dataset.name)))?;
    if ds.root() != prog.dataset.root {
        return Err(VerdeError::Referee(
            "the builtin dataset's root differs from the program's".into(),
        ));
    }
    Ok(ds)
}

/// The verde escrow invariant: the module account holds the bonds of open disputes.
pub fn check_escrow<S: StateRead + ?Sized>(s: &S) -> Result<Amount> {
    let mut owed = Amount::ZERO;
    let mut start = Vec::new();
    loop {
        let page = s.prefix_raw(state_key::DISPUTE_PREFIX, &start, 256)?;
        for (k, v) in &page {
            let d: pb::Dispute =
                prost::Message::decode(v.as_slice()).map_err(|e| StateError::Corrupt {
                    key: String::from_utf8_lossy(k).into_owned(),
                    reason: e.to_string(),
                })?;
            if d.phase != Phase::Resolved as i32 {
                owed = owed.checked_add(Amount::parse_coin(&d.bond)?)?;
            }
        }
        match page.last() {
            Some((k, _)) if page.len() == 256 => {
                start = k.clone();
                start.push(0);
            }
            _ => break,
        }
    }
    let held = s.balance(&module_address())?;
    if held != owed {
        return Err(VerdeError::EscrowMismatch { held, owed });
    }
    Ok(owed)
}

/// Validated verde messages.
#[derive(Clone, Debug, PartialEq)]
pub enum VerdeMsg {
    Open(pb::MsgOpenDispute),
    RevealMid(pb::MsgRevealMid),
    Respond(pb::MsgRespond),
    PostOpRoot(pb::MsgPostOpRoot),
    RevealChildren(pb::MsgRevealChildren),
    ProveAssembly(pb::MsgProveAssembly),
    Upload(pb::MsgUploadInput),
    UploadRows(pb::MsgUploadRows),
}

impl VerdeMsg {
    pub fn signer_str(&self) -> &str {
        match self {
            VerdeMsg::Open(m) => &m.challenger,
            VerdeMsg::RevealMid(m) => &m.solver,
            VerdeMsg::Respond(m) => &m.challenger,
            VerdeMsg::PostOpRoot(m) => &m.sender,
            VerdeMsg::RevealChildren(m) => &m.sender,
            VerdeMsg::ProveAssembly(m) => &m.solver,
            VerdeMsg::Upload(m) => &m.solver,
            VerdeMsg::UploadRows(m) => &m.solver,
        }
    }

    pub fn signer(&self) -> Result<Address> {
        parse_addr(self.signer_str())
    }

    pub fn execute<S: StateWrite + ?Sized>(&self, s: &mut S, ctx: &BlockCtx) -> Result<()> {
        let who = self.signer()?;
        match self {
            VerdeMsg::Open(m) => {
                let bond = match &m.bond {
                    Some(c) => Amount::from_coin(&c.denom, &c.amount)?,
                    None => Amount::ZERO,
                };
                s.open(
                    ctx,
                    who,
                    m.task_id,
                    bond,
                    (m.lo, &m.h_lo, &m.proof_lo),
                    (m.hi, &m.h_hi, &m.proof_hi),
                )
                .map(|_| ())
            }
            VerdeMsg::RevealMid(m) => s.reveal_mid(ctx, who, m.dispute_id, &m.h_mid, &m.proof),
            VerdeMsg::Respond(m) => s.respond(ctx, who, m.dispute_id, m.agree),
            VerdeMsg::PostOpRoot(m) => s.post_op_root(ctx, who, m.dispute_id, &m.op_root),
            VerdeMsg::RevealChildren(m) => {
                s.reveal_children(ctx, who, m.dispute_id, &m.left, &m.right)
            }
            VerdeMsg::ProveAssembly(m) => s.prove_assembly(ctx, who, m.dispute_id, &m.entries),
            VerdeMsg::Upload(m) => {
                s.upload_input(ctx, who, m.dispute_id, m.input, m.offset, &m.data, &m.proof)
            }
            VerdeMsg::UploadRows(m) => s.upload_rows(ctx, who, m.dispute_id, &m.rows),
        }
    }
}

pub fn init_genesis<S: StateWrite + ?Sized>(s: &mut S, g: &pb::GenesisState) -> Result<()> {
    let p = match &g.params {
        Some(p) => Params::from_proto(p)?,
        None => Params::default(),
    };
    s.put_proto(state_key::PARAMS.to_vec(), &p.to_proto());
    Ok(())
}

pub fn export_genesis<S: StateRead + ?Sized>(s: &S) -> Result<pb::GenesisState> {
    Ok(pb::GenesisState {
        params: Some(s.verde_params()?.to_proto()),
    })
}

#[cfg(test)]
mod tests;
