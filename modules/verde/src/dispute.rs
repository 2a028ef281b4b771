//! The domain `Dispute`: converted to and from protobuf only at storage and
//! at the query edge.
use framework::{Address, Amount};
use proto::verde::v1 as pb;
use train::Hash;

use crate::error::{h32, parse_addr, Result, VerdeError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    BisectReveal,
    BisectRespond,
    OpRoots,
    Descent,
    Assembly,
    Reveal,
    Resolved,
    TraceDescent,
    OutputDescent,
    FoldReveal,
    FoldRespond,
    TileInputs,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::BisectReveal => "bisect-reveal",
            Phase::BisectRespond => "bisect-respond",
            Phase::OpRoots => "op-roots",
            Phase::Descent => "descent",
            Phase::Assembly => "assembly",
            Phase::Reveal => "reveal",
            Phase::Resolved => "resolved",
            Phase::TraceDescent => "trace-descent",
            Phase::OutputDescent => "output-descent",
            Phase::FoldReveal => "fold-reveal",
            Phase::FoldRespond => "fold-respond",
            Phase::TileInputs => "tile-inputs",
        }
    }
    fn to_proto(self) -> pb::Phase {
        match self {
            Phase::BisectReveal => pb::Phase::BisectReveal,
            Phase::BisectRespond => pb::Phase::BisectRespond,
            Phase::OpRoots => pb::Phase::OpRoots,
            Phase::Descent => pb::Phase::Descent,
            Phase::Assembly => pb::Phase::Assembly,
            Phase::Reveal => pb::Phase::Reveal,
            Phase::Resolved => pb::Phase::Resolved,
            Phase::TraceDescent => pb::Phase::TraceDescent,
            Phase::OutputDescent => pb::Phase::OutputDescent,
            Phase::FoldReveal => pb::Phase::FoldReveal,
            Phase::FoldRespond => pb::Phase::FoldRespond,
            Phase::TileInputs => pb::Phase::TileInputs,
        }
    }
    fn from_proto(p: i32) -> Option<Phase> {
        Some(match pb::Phase::try_from(p).ok()? {
            pb::Phase::Unspecified => return None,
            pb::Phase::BisectReveal => Phase::BisectReveal,
            pb::Phase::BisectRespond => Phase::BisectRespond,
            pb::Phase::OpRoots => Phase::OpRoots,
            pb::Phase::Descent => Phase::Descent,
            pb::Phase::Assembly => Phase::Assembly,
            pb::Phase::Reveal => Phase::Reveal,
            pb::Phase::Resolved => Phase::Resolved,
            pb::Phase::TraceDescent => Phase::TraceDescent,
            pb::Phase::OutputDescent => Phase::OutputDescent,
            pb::Phase::FoldReveal => Phase::FoldReveal,
            pb::Phase::FoldRespond => Phase::FoldRespond,
            pb::Phase::TileInputs => Phase::TileInputs,
        })
    }
}

/// A phase number's name ("unspecified" for unknown numbers).
pub fn phase_name(p: i32) -> &'static str {
    Phase::from_proto(p).map_or("unspecified", Phase::name)
}

/// Whose move it is. In protobuf: the party's address, "both" or empty.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Turn {
    Nobody,
    Solver,
    Challenger,
    Both,
}

/// Where an input of the disputed node comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    State(String),
    Batch(String),
    Node(u64),
}

impl Source {
    fn label(&self) -> String {
        match self {
            Source::State(n) => format!("state:{n}"),
            Source::Batch(n) => format!("batch:{n}"),
            Source::Node(k) => format!("node:{k}"),
        }
    }
    fn parse(s: &str) -> Result<Source> {
        let bad = || VerdeError::BadUpload(format!("bad input source {s:?}"));
        let (kind, rest) = s.split_once(':').ok_or_else(bad)?;
        Ok(match kind {
            "state" => Source::State(rest.into()),
            "batch" => Source::Batch(rest.into()),
            "node" => Source::Node(rest.parse().map_err(|_| bad())?),
            _ => return Err(bad()),
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Upload {
    pub input: u32,
    pub source: Source,
    /// Zero for inputs the referee rebuilds itself.
    pub expected_bytes: u64,
    /// Bytes stored so far under `state_key::upload_input`.
    pub uploaded_bytes: u64,
    pub tensor_hash: Option<Hash>,
    pub complete: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Move {
    pub height: u64,
    pub actor: String,
    pub action: String,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dispute {
    pub id: u64,
    pub task_id: u64,
    pub challenger: Address,
    pub solver: Address,
    pub bond: Amount,
    pub phase: Phase,
    pub turn: Turn,
    pub deadline: u64,
    pub lo: u64,
    pub h_lo: Hash,
    pub hi: u64,
    pub h_hi: Hash,
    pub mid: u64,
    pub h_mid: Option<Hash>,
    pub solver_op_root: Option<Hash>,
    pub challenger_op_root: Option<Hash>,
    /// Descent: current tree level and index, each party's node there and
    /// the children each revealed (32 bytes at a leaf, 64 above).
    pub level: u32,
    pub index: u64,
    pub solver_node: Option<Hash>,
    pub challenger_node: Option<Hash>,
    pub solver_children: Vec<u8>,
    pub challenger_children: Vec<u8>,
    /// The disputed node `j` and both parties' claimed output hashes.
    pub node: u64,
    pub solver_output: Vec<u8>,
    pub challenger_output: Vec<u8>,
    pub inputs: Vec<Upload>,
    pub rows_needed: Vec<u64>,
    pub rows_proven: u64,
    pub rounds: u32,
    pub outcome: String,
    pub slashed: Amount,
    pub referee_output: String,
    pub op_kind: String,
    pub transcript: Vec<Move>,
    pub opened_height: u64,
    pub resolved_height: u64,
    /// Inside node `j` (the phases from `OutputDescent`): see [`Inner`].
    pub inner: Inner,
}

/// The game inside one node too costly to recompute whole. The output descent
/// uses `Dispute::{solver,challenger}_{node,children}` for the parties' chaining
/// values and reveals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inner {
    /// The BLAKE3 subtree of node `j`'s output message being descended.
    pub out_offset: u64,
    pub out_len: u64,
    /// The first output element whose bits differ, and the solver's bits of it.
    pub element: u64,
    pub solver_value: Option<u32>,
    /// Fold bisection over `(fold_lo, fold_hi]` (fold states as f32 bits).
    pub fold_lo: u64,
    pub fold_mid: u64,
    pub fold_hi: u64,
    pub acc_lo: Vec<u32>,
    pub acc_mid: Vec<u32>,
    pub acc_hi: Vec<u32>,
}

/// f32 bits from little-endian bytes (`None` unless whole floats).
pub fn bits_from_le(b: &[u8]) -> Option<Vec<u32>> {
    b.len().is_multiple_of(4).then(|| {
        b.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect()
    })
}

/// Little-endian bytes of f32 bits.
pub fn bits_to_le(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

impl Dispute {
    pub fn record(&mut self, height: u64, actor: &str, action: String) {
        self.transcript.push(Move {
            height,
            actor: actor.to_string(),
            action,
        });
    }

    /// Which party `a` is, if any.
    pub fn party(&self, a: &Address) -> Option<Turn> {
        if *a == self.solver {
            Some(Turn::Solver)
        } else if *a == self.challenger {
            Some(Turn::Challenger)
        } else {
            None
        }
    }

    fn turn_string(&self) -> String {
        match self.turn {
            Turn::Nobody => String::new(),
            Turn::Solver => self.solver.to_string(),
            Turn::Challenger => self.challenger.to_string(),
            Turn::Both => "both".into(),
        }
    }

    pub fn to_proto(&self) -> pb::Dispute {
        let v = |h: &Option<Hash>| h.map(|h| h.to_vec()).unwrap_or_default();
        pb::Dispute {
            id: self.id,
            task_id: self.task_id,
            challenger: self.challenger.to_string(),
            solver: self.solver.to_string(),
            bond: self.bond.0.to_string(),
            phase: self.phase.to_proto() as i32,
            lo: self.lo,
            h_lo: self.h_lo.to_vec(),
            hi: self.hi,
            h_hi: self.h_hi.to_vec(),
            mid: self.mid,
            h_mid: v(&self.h_mid),
            solver_op_root: v(&self.solver_op_root),
            challenger_op_root: v(&self.challenger_op_root),
            level: self.level,
            index: self.index,
            solver_node: v(&self.solver_node),
            challenger_node: v(&self.challenger_node),
            solver_children: self.solver_children.clone(),
            challenger_children: self.challenger_children.clone(),
            node: self.node,
            solver_output: self.solver_output.clone(),
            challenger_output: self.challenger_output.clone(),
            inputs: self
                .inputs
                .iter()
                .map(|u| pb::InputUpload {
                    input: u.input,
                    source: u.source.label(),
                    expected_bytes: u.expected_bytes,
                    data: vec![],
                    tensor_hash: v(&u.tensor_hash),
                    complete: u.complete,
                    uploaded_bytes: u.uploaded_bytes,
                })
                .collect(),
            deadline: self.deadline,
            turn: self.turn_string(),
            rounds: self.rounds,
            outcome: self.outcome.clone(),
            slashed: self.slashed.0.to_string(),
            referee_output: self.referee_output.clone(),
            transcript: self
                .transcript
                .iter()
                .map(|m| pb::Move {
                    height: m.height,
                    actor: m.actor.clone(),
                    action: m.action.clone(),
                })
                .collect(),
            opened_height: self.opened_height,
            resolved_height: self.resolved_height,
            op_kind: self.op_kind.clone(),
            rows_needed: self.rows_needed.clone(),
            rows_proven: self.rows_proven,
            rows: vec![],
            out_offset: self.inner.out_offset,
            out_len: self.inner.out_len,
            element: self.inner.element,
            solver_value: self
                .inner
                .solver_value
                .map(|v| v.to_le_bytes().to_vec())
                .unwrap_or_default(),
            fold_lo: self.inner.fold_lo,
            fold_mid: self.inner.fold_mid,
            fold_hi: self.inner.fold_hi,
            acc_lo: bits_to_le(&self.inner.acc_lo),
            acc_mid: bits_to_le(&self.inner.acc_mid),
            acc_hi: bits_to_le(&self.inner.acc_hi),
        }
    }
}

impl TryFrom<&pb::Dispute> for Dispute {
    type Error = VerdeError;
    fn try_from(d: &pb::Dispute) -> Result<Dispute> {
        let opt = |b: &[u8], what: &str| -> Result<Option<Hash>> {
            if b.is_empty() {
                Ok(None)
            } else {
                h32(b, what).map(Some)
            }
        };
        let challenger = parse_addr(&d.challenger)?;
        let solver = parse_addr(&d.solver)?;
        let turn = if d.turn.is_empty() {
            Turn::Nobody
        } else if d.turn == "both" {
            Turn::Both
        } else if d.turn == d.solver {
            Turn::Solver
        } else if d.turn == d.challenger {
            Turn::Challenger
        } else {
            return Err(VerdeError::InvalidAddress(format!("bad turn {:?}", d.turn)));
        };
        Ok(Dispute {
            id: d.id,
            task_id: d.task_id,
            challenger,
            solver,
            bond: Amount::parse_coin(&d.bond)?,
            phase: Phase::from_proto(d.phase).ok_or(VerdeError::WrongPhase {
                id: d.id,
                phase: "unspecified",
            })?,
            turn,
            deadline: d.deadline,
            lo: d.lo,
            h_lo: h32(&d.h_lo, "h_lo")?,
            hi: d.hi,
            h_hi: h32(&d.h_hi, "h_hi")?,
            mid: d.mid,
            h_mid: opt(&d.h_mid, "h_mid")?,
            solver_op_root: opt(&d.solver_op_root, "solver_op_root")?,
            challenger_op_root: opt(&d.challenger_op_root, "challenger_op_root")?,
            level: d.level,
            index: d.index,
            solver_node: opt(&d.solver_node, "solver_node")?,
            challenger_node: opt(&d.challenger_node, "challenger_node")?,
            solver_children: d.solver_children.clone(),
            challenger_children: d.challenger_children.clone(),
            node: d.node,
            solver_output: d.solver_output.clone(),
            challenger_output: d.challenger_output.clone(),
            inputs: d
                .inputs
                .iter()
                .map(|u| {
                    Ok(Upload {
                        input: u.input,
                        source: Source::parse(&u.source)?,
                        expected_bytes: u.expected_bytes,
                        uploaded_bytes: u.uploaded_bytes,
                        tensor_hash: opt(&u.tensor_hash, "tensor_hash")?,
                        complete: u.complete,
                    })
                })
                .collect::<Result<_>>()?,
            rows_needed: d.rows_needed.clone(),
            rows_proven: d.rows_proven,
            rounds: d.rounds,
            outcome: d.outcome.clone(),
            slashed: if d.slashed.is_empty() {
                Amount::ZERO
            } else {
                Amount::parse_coin(&d.slashed)?
            },
            referee_output: d.referee_output.clone(),
            op_kind: d.op_kind.clone(),
            transcript: d
                .transcript
                .iter()
                .map(|m| Move {
                    height: m.height,
                    actor: m.actor.clone(),
                    action: m.action.clone(),
                })
                .collect(),
            opened_height: d.opened_height,
            resolved_height: d.resolved_height,
            inner: {
                let bits = |b: &[u8], what: &str| {
                    bits_from_le(b)
                        .ok_or_else(|| VerdeError::InvalidHash(format!("{what}: not whole floats")))
                };
                Inner {
                    out_offset: d.out_offset,
                    out_len: d.out_len,
                    element: d.element,
                    solver_value: match bits(&d.solver_value, "solver_value")?.as_slice() {
                        [] => None,
                        [v] => Some(*v),
                        _ => return Err(VerdeError::InvalidHash("solver_value: one float".into())),
                    },
                    fold_lo: d.fold_lo,
                    fold_mid: d.fold_mid,
                    fold_hi: d.fold_hi,
                    acc_lo: bits(&d.acc_lo, "acc_lo")?,
                    acc_mid: bits(&d.acc_mid, "acc_mid")?,
                    acc_hi: bits(&d.acc_hi, "acc_hi")?,
                }
            },
        })
    }
}
