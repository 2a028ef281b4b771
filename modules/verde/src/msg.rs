//! Domain messages: parsed from protobuf with `TryFrom` (hash lengths,
//! proof sizes and addresses checked here), built back with `to_proto`.
use framework::{Address, Amount, BlockCtx, StateWrite};
use proto::verde::v1 as pb;
use tasks::msg::{proof_from_proto, proof_to_proto, to_coin};
use train::merkle::Proof;
use train::Hash;

use crate::error::{h32, parse_addr, Result, VerdeError};

fn proof(p: &Option<pb::MerkleProof>) -> Result<Option<Proof>> {
    p.as_ref()
        .map(|p| proof_from_proto(p).map_err(|e| VerdeError::BadProof(e.to_string())))
        .transpose()
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgOpenDispute {
    pub challenger: Address,
    pub task_id: u64,
    pub bond: Amount,
    pub lo: u64,
    pub h_lo: Hash,
    /// Not needed for `lo = 0` with the program's `h_0`.
    pub proof_lo: Option<Proof>,
    pub hi: u64,
    pub h_hi: Hash,
    /// Not needed for `hi = T` with the committed final hash.
    pub proof_hi: Option<Proof>,
    /// Trace mode: the challenger's own root over h_0..h_T (then the
    /// interval, hashes and proofs are unused and must be empty).
    pub trace_root: Option<Hash>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgRevealMid {
    pub solver: Address,
    pub dispute_id: u64,
    pub h_mid: Hash,
    pub proof: Proof,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgRespond {
    pub challenger: Address,
    pub dispute_id: u64,
    pub agree: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgPostOpRoot {
    pub sender: Address,
    pub dispute_id: u64,
    pub op_root: Hash,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgRevealChildren {
    pub sender: Address,
    pub dispute_id: u64,
    pub left: Hash,
    /// None at a leaf (level 0), where `left` is the leaf value.
    pub right: Option<Hash>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StateEntry {
    pub name: String,
    pub tensor_hash: Hash,
    pub proof: Proof,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgProveAssembly {
    pub solver: Address,
    pub dispute_id: u64,
    pub entries: Vec<StateEntry>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgUploadInput {
    pub solver: Address,
    pub dispute_id: u64,
    pub input: u32,
    pub offset: u64,
    pub data: Vec<u8>,
    /// Required with the chunk that completes the input.
    pub proof: Option<Proof>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgUploadRows {
    pub solver: Address,
    pub dispute_id: u64,
    pub rows: Vec<train::RowProof>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgRevealOutput {
    pub sender: Address,
    pub dispute_id: u64,
    /// Above a leaf: the current subtree's children's chaining values.
    pub children: Option<(Hash, Hash)>,
    /// At a leaf: the elements of its chunk, proven against the sender's output hash.
    pub slice: Option<repops::slice::SliceProof>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgRevealPartial {
    pub solver: Address,
    pub dispute_id: u64,
    /// The fold's state at `fold_mid` (f32 bits).
    pub acc: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsgProveSlice {
    pub solver: Address,
    pub dispute_id: u64,
    pub input: u32,
    pub tensor_hash: Hash,
    pub proof: Proof,
    pub slice: repops::slice::SliceProof,
}

fn slice_proof(p: &Option<pb::SliceProof>) -> Result<repops::slice::SliceProof> {
    let p = p
        .as_ref()
        .ok_or_else(|| VerdeError::BadProof("slice proof: missing".into()))?;
    Ok(repops::slice::SliceProof {
        chunks: p.chunks.clone(),
        siblings: p
            .siblings
            .iter()
            .map(|s| h32(s, "slice sibling"))
            .collect::<Result<_>>()?,
    })
}

impl TryFrom<&pb::MsgRevealOutput> for MsgRevealOutput {
    type Error = VerdeError;
    fn try_from(m: &pb::MsgRevealOutput) -> Result<Self> {
        let children = match (m.left.is_empty(), m.right.is_empty(), &m.slice) {
            (false, false, None) => Some((h32(&m.left, "left")?, h32(&m.right, "right")?)),
            (true, true, Some(_)) => None,
            _ => {
                return Err(VerdeError::BadProof(
                    "send both children above a leaf, or the leaf's slice alone".into(),
                ))
            }
        };
        Ok(MsgRevealOutput {
            sender: parse_addr(&m.sender)?,
            dispute_id: m.dispute_id,
            children,
            slice: m
                .slice
                .as_ref()
                .map(|_| slice_proof(&m.slice))
                .transpose()?,
        })
    }
}

impl TryFrom<&pb::MsgRevealPartial> for MsgRevealPartial {
    type Error = VerdeError;
    fn try_from(m: &pb::MsgRevealPartial) -> Result<Self> {
        Ok(MsgRevealPartial {
            solver: parse_addr(&m.solver)?,
            dispute_id: m.dispute_id,
            acc: crate::dispute::bits_from_le(&m.acc)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| VerdeError::BadUpload("acc: whole f32s, at least one".into()))?,
        })
    }
}

impl TryFrom<&pb::MsgProveSlice> for MsgProveSlice {
    type Error = VerdeError;
    fn try_from(m: &pb::MsgProveSlice) -> Result<Self> {
        Ok(MsgProveSlice {
            solver: parse_addr(&m.solver)?,
            dispute_id: m.dispute_id,
            input: m.input,
            tensor_hash: h32(&m.tensor_hash, "tensor_hash")?,
            proof: proof(&m.proof)?
                .ok_or_else(|| VerdeError::BadProof("input proof: missing".into()))?,
            slice: slice_proof(&m.slice)?,
        })
    }
}

impl TryFrom<&pb::MsgOpenDispute> for MsgOpenDispute {
    type Error = VerdeError;
    fn try_from(m: &pb::MsgOpenDispute) -> Result<Self> {
        let challenger = parse_addr(&m.challenger)?;
        let bond = match &m.bond {
            Some(c) => Amount::from_coin(&c.denom, &c.amount)?,
            None => Amount::ZERO,
        };
        if !m.trace_root.is_empty() {
            if m.lo != 0
                || m.hi != 0
                || !m.h_lo.is_empty()
                || !m.h_hi.is_empty()
                || m.proof_lo.is_some()
                || m.proof_hi.is_some()
            {
                return Err(VerdeError::BadInterval(
                    "trace mode takes only trace_root: leave lo, hi, h_lo, h_hi and the proofs empty"
                        .into(),
                ));
            }
            return Ok(MsgOpenDispute::trace(
                challenger,
                m.task_id,
                bond,
                h32(&m.trace_root, "trace_root")?,
            ));
        }
        Ok(MsgOpenDispute {
            challenger,
            task_id: m.task_id,
            bond,
            lo: m.lo,
            h_lo: h32(&m.h_lo, "h_lo")?,
            proof_lo: proof(&m.proof_lo)?,
            hi: m.hi,
            h_hi: h32(&m.h_hi, "h_hi")?,
            proof_hi: proof(&m.proof_hi)?,
            trace_root: None,
        })
    }
}
impl MsgOpenDispute {
    /// A trace-mode opening: the challenger's own root over h_0..h_T.
    pub fn trace(challenger: Address, task_id: u64, bond: Amount, root: Hash) -> MsgOpenDispute {
        MsgOpenDispute {
            challenger,
            task_id,
            bond,
            lo: 0,
            h_lo: [0; 32],
            proof_lo: None,
            hi: 0,
            h_hi: [0; 32],
            proof_hi: None,
            trace_root: Some(root),
        }
    }

    pub fn to_proto(&self) -> pb::MsgOpenDispute {
        if let Some(r) = self.trace_root {
            return pb::MsgOpenDispute {
                challenger: self.challenger.to_string(),
                task_id: self.task_id,
                bond: to_coin(self.bond),
                trace_root: r.to_vec(),
                ..Default::default()
            };
        }
        pb::MsgOpenDispute {
            challenger: self.challenger.to_string(),
            task_id: self.task_id,
            bond: to_coin(self.bond),
            lo: self.lo,
            h_lo: self.h_lo.to_vec(),
            proof_lo: self.proof_lo.as_ref().map(proof_to_proto),
            hi: self.hi,
            h_hi: self.h_hi.to_vec(),
            proof_hi: self.proof_hi.as_ref().map(proof_to_proto),
            trace_root: vec![],
        }
    }
}

impl TryFrom<&pb::MsgRevealMid> for MsgRevealMid {
    type Error = VerdeError;
    fn try_from(m: &pb::MsgRevealMid) -> Result<Self> {
        Ok(MsgRevealMid {
            solver: parse_addr(&m.solver)?,
            dispute_id: m.dispute_id,
            h_mid: h32(&m.h_mid, "h_mid")?,
            proof: proof(&m.proof)?.ok_or_else(|| VerdeError::BadProof("proof: missing".into()))?,
        })
    }
}

impl TryFrom<&pb::MsgRespond> for MsgRespond {
    type Error = VerdeError;
    fn try_from(m: &pb::MsgRespond) -> Result<Self> {
        Ok(MsgRespond {
            challenger: parse_addr(&m.challenger)?,
            dispute_id: m.dispute_id,
            agree: m.agree,
        })
    }
}

impl TryFrom<&pb::MsgPostOpRoot> for MsgPostOpRoot {
    type Error = VerdeError;
    fn try_from(m: &pb::MsgPostOpRoot) -> Result<Self> {
        Ok(MsgPostOpRoot {
            sender: parse_addr(&m.sender)?,
            dispute_id: m.dispute_id,
            op_root: h32(&m.op_root, "op_root")?,
        })
    }
}

impl TryFrom<&pb::MsgRevealChildren> for MsgRevealChildren {
    type Error = VerdeError;
    fn try_from(m: &pb::MsgRevealChildren) -> Result<Self> {
        Ok(MsgRevealChildren {
            sender: parse_addr(&m.sender)?,
            dispute_id: m.dispute_id,
            left: h32(&m.left, "left")?,
            right: if m.right.is_empty() {
                None
            } else {
                Some(h32(&m.right, "right")?)
            },
        })
    }
}

impl TryFrom<&pb::MsgProveAssembly> for MsgProveAssembly {
    type Error = VerdeError;
    fn try_from(m: &pb::MsgProveAssembly) -> Result<Self> {
        Ok(MsgProveAssembly {
            solver: parse_addr(&m.solver)?,
            dispute_id: m.dispute_id,
            entries: m
                .entries
                .iter()
                .map(|e| {
                    Ok(StateEntry {
                        name: e.name.clone(),
                        tensor_hash: h32(&e.tensor_hash, "tensor_hash")?,
                        proof: proof(&e.proof)?
                            .ok_or_else(|| VerdeError::BadProof(format!("{}: missing", e.name)))?,
                    })
                })
                .collect::<Result<_>>()?,
        })
    }
}

impl TryFrom<&pb::MsgUploadInput> for MsgUploadInput {
    type Error = VerdeError;
    fn try_from(m: &pb::MsgUploadInput) -> Result<Self> {
        Ok(MsgUploadInput {
            solver: parse_addr(&m.solver)?,
            dispute_id: m.dispute_id,
            input: m.input,
            offset: m.offset,
            data: m.data.clone(),
            proof: proof(&m.proof)?,
        })
    }
}

impl TryFrom<&pb::MsgUploadRows> for MsgUploadRows {
    type Error = VerdeError;
    fn try_from(m: &pb::MsgUploadRows) -> Result<Self> {
        Ok(MsgUploadRows {
            solver: parse_addr(&m.solver)?,
            dispute_id: m.dispute_id,
            rows: m
                .rows
                .iter()
                .map(|r| {
                    Ok(train::RowProof {
                        row: r.row,
                        chunk: r.chunk.clone(),
                        proof: proof(&r.proof)?
                            .ok_or_else(|| VerdeError::BadProof("row proof: missing".into()))?,
                    })
                })
                .collect::<Result<_>>()?,
        })
    }
}

/// Every verde message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerdeMsg {
    Open(MsgOpenDispute),
    RevealMid(MsgRevealMid),
    Respond(MsgRespond),
    PostOpRoot(MsgPostOpRoot),
    RevealChildren(MsgRevealChildren),
    ProveAssembly(MsgProveAssembly),
    Upload(MsgUploadInput),
    UploadRows(MsgUploadRows),
    RevealOutput(MsgRevealOutput),
    RevealPartial(MsgRevealPartial),
    ProveSlice(MsgProveSlice),
}

impl VerdeMsg {
    pub fn signer(&self) -> Address {
        match self {
            VerdeMsg::Open(m) => m.challenger,
            VerdeMsg::RevealMid(m) => m.solver,
            VerdeMsg::Respond(m) => m.challenger,
            VerdeMsg::PostOpRoot(m) => m.sender,
            VerdeMsg::RevealChildren(m) => m.sender,
            VerdeMsg::ProveAssembly(m) => m.solver,
            VerdeMsg::Upload(m) => m.solver,
            VerdeMsg::UploadRows(m) => m.solver,
            VerdeMsg::RevealOutput(m) => m.sender,
            VerdeMsg::RevealPartial(m) => m.solver,
            VerdeMsg::ProveSlice(m) => m.solver,
        }
    }

    /// Checks and executes against the state being written.
    pub fn execute<S: StateWrite + ?Sized>(&self, s: &mut S, ctx: &BlockCtx) -> Result<()> {
        use crate::component::handler::*;
        match self {
            VerdeMsg::Open(m) => open::execute(s, ctx, m).map(|_| ()),
            VerdeMsg::RevealMid(m) => reveal_mid::execute(s, ctx, m),
            VerdeMsg::Respond(m) => respond::execute(s, ctx, m),
            VerdeMsg::PostOpRoot(m) => post_op_root::execute(s, ctx, m),
            VerdeMsg::RevealChildren(m) => reveal_children::execute(s, ctx, m),
            VerdeMsg::ProveAssembly(m) => prove_assembly::execute(s, ctx, m),
            VerdeMsg::Upload(m) => upload_input::execute(s, ctx, m),
            VerdeMsg::UploadRows(m) => upload_rows::execute(s, ctx, m),
            VerdeMsg::RevealOutput(m) => reveal_output::execute(s, ctx, m),
            VerdeMsg::RevealPartial(m) => reveal_partial::execute(s, ctx, m),
            VerdeMsg::ProveSlice(m) => prove_slice::execute(s, ctx, m),
        }
    }
}

macro_rules! from_proto {
    ($($pb:ident => $variant:ident($domain:ident)),* $(,)?) => {$(
        impl TryFrom<&pb::$pb> for VerdeMsg {
            type Error = VerdeError;
            fn try_from(m: &pb::$pb) -> Result<Self> {
                Ok(VerdeMsg::$variant($domain::try_from(m)?))
            }
        }
    )*};
}
from_proto!(
    MsgOpenDispute => Open(MsgOpenDispute),
    MsgRevealMid => RevealMid(MsgRevealMid),
    MsgRespond => Respond(MsgRespond),
    MsgPostOpRoot => PostOpRoot(MsgPostOpRoot),
    MsgRevealChildren => RevealChildren(MsgRevealChildren),
    MsgProveAssembly => ProveAssembly(MsgProveAssembly),
    MsgUploadInput => Upload(MsgUploadInput),
    MsgUploadRows => UploadRows(MsgUploadRows),
    MsgRevealOutput => RevealOutput(MsgRevealOutput),
    MsgRevealPartial => RevealPartial(MsgRevealPartial),
    MsgProveSlice => ProveSlice(MsgProveSlice),
);
