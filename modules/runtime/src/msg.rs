//! Every message the chain accepts, decoded from `Any`, and their dispatch:
//! one exhaustive `match`.
use crate::error::TxFailure;
use framework::{Address, BlockCtx, StateWrite};
use prost::Message;
use proto::TypeUrl;

/// Work units of opening a dispute: the referee's one node and a possible
/// `h_0` are bounded by the tasks params; the bond pays for a wrong one.
pub const DISPUTE_UNITS: u64 = 1_000;

/// Work units of a program: one per node of its expansion bound and per KiB
/// of its state (what building the node list and `h_0` cost), from its
/// footprint. An unparsable program costs nothing more: it fails at once.
fn program_units(json: &[u8]) -> u64 {
    let Some(p) = std::str::from_utf8(json)
        .ok()
        .and_then(|t| train::Program::from_json(t).ok())
        .filter(|p| p.validate().is_ok())
    else {
        return 0;
    };
    let f = p.footprint();
    f.nodes.saturating_add(f.state_bytes / 1024)
}

#[derive(Clone, Debug, PartialEq)]
pub enum Msg {
    BankSend(bank::Send),
    Staking(staking::StakingMsg),
    Tasks(tasks::TasksMsg),
    Verde(Box<verde::VerdeMsg>),
    Swarm(swarm::SwarmMsg),
}

/// Work units of `MsgReportLoss` beyond its bytes: reading the swarm's program
/// for its state layout, and at most `max_eval_steps` pairs of proofs.
pub const REPORT_LOSS_UNITS: u64 = 100;

fn decode<M: Message + Default>(any: &prost_types::Any) -> Result<M, TxFailure> {
    M::decode(any.value.as_slice())
        .map_err(|e| TxFailure::from(&auth::AuthError::TxDecode(format!("{}: {e}", any.type_url))))
}

impl Msg {
    pub fn from_any(any: &prost_types::Any) -> Result<Msg, TxFailure> {
        use proto::{bank::v1 as bank_pb, staking::v1 as staking_pb};
        let t = any.type_url.as_str();
        let m = if t == bank_pb::MsgSend::TYPE_URL {
            Msg::BankSend(
                bank::Send::try_from(&decode::<bank_pb::MsgSend>(any)?)
                    .map_err(|e| TxFailure::from(&e))?,
            )
        } else if t == staking_pb::MsgRegisterOperator::TYPE_URL {
            Msg::Staking(
                staking::StakingMsg::try_from(&decode::<staking_pb::MsgRegisterOperator>(any)?)
                    .map_err(|e| TxFailure::from(&e))?,
            )
        } else if t == staking_pb::MsgAddStake::TYPE_URL {
            Msg::Staking(
                staking::StakingMsg::try_from(&decode::<staking_pb::MsgAddStake>(any)?)
                    .map_err(|e| TxFailure::from(&e))?,
            )
        } else if t == staking_pb::MsgUnbond::TYPE_URL {
            Msg::Staking(
                staking::StakingMsg::try_from(&decode::<staking_pb::MsgUnbond>(any)?)
                    .map_err(|e| TxFailure::from(&e))?,
            )
        } else if let Some(m) = tasks_msg(any)? {
            Msg::Tasks(m)
        } else if let Some(m) = verde_msg(any)? {
            Msg::Verde(Box::new(m))
        } else if let Some(m) = swarm_msg(any)? {
            Msg::Swarm(m)
        } else {
            return Err(TxFailure::from(&auth::AuthError::UnknownMessage(
                t.to_string(),
            )));
        };
        Ok(m)
    }

    /// Units of validator work this message may cause beyond decoding and
    /// its bytes (charged as `fee_per_unit` each, see `auth::required_fee`),
    /// computed from the message alone so that clients compute the same.
    /// A submission pays for expanding its program and for `h_0` (bounded by
    /// its footprint); a dispute for the referee and a possible `h_0`.
    pub fn work_units(&self) -> u64 {
        match self {
            Msg::Tasks(m) => match (m.as_ref_submit(), m) {
                (Some(program_json), _) => program_units(program_json),
                // Expands the task's program and decodes and hashes the
                // checkpoint: as much as opening a dispute (h_0).
                (None, tasks::TasksMsg::PostCheckpoint(_)) => tasks::POST_CHECKPOINT_UNITS,
                (None, _) => 0,
            },
            Msg::Verde(m) if matches!(**m, verde::VerdeMsg::Open(_)) => DISPUTE_UNITS,
            // A swarm's creation pays for validating its base and derived programs
            // and for every evaluation task its rounds may submit in end blocks
            // (rounds x (slots + 1) measurements, each up to MAX_EVAL_ATTEMPTS
            // tasks) and, when it averages, every merge task (rounds x up to
            // MAX_EVAL_ATTEMPTS, plus the one validated now), each expanding at most
            // 2 x slots + 2 times a training step's nodes; a join for its
            // contribution task.
            Msg::Swarm(swarm::SwarmMsg::Create(c)) => {
                let attempts = swarm::component::round::MAX_EVAL_ATTEMPTS as u64;
                let evals = c
                    .rounds
                    .saturating_mul(c.slots.saturating_add(1))
                    .saturating_mul(attempts);
                let merges = if c.outer_lr_bits == 0 {
                    0
                } else {
                    c.rounds
                        .saturating_mul(attempts)
                        .saturating_add(1)
                        .saturating_mul(c.slots.saturating_mul(2).saturating_add(2))
                };
                program_units(&c.program_json)
                    .saturating_mul(3u64.saturating_add(evals).saturating_add(merges))
            }
            Msg::Swarm(swarm::SwarmMsg::Join(_)) => DISPUTE_UNITS,
            // Its evaluation tasks were paid for at creation.
            Msg::Swarm(swarm::SwarmMsg::RevealEvalSeed(_)) => 0,
            Msg::Swarm(swarm::SwarmMsg::ReportLoss(_)) => REPORT_LOSS_UNITS,
            _ => 0,
        }
    }

    /// Work units of a transaction's messages (what `auth::required_fee`
    /// charges for): the one sum the ante, the node's `EstimateFee` and the
    /// test kit share.
    pub fn total_work_units<'a>(msgs: impl IntoIterator<Item = &'a Msg>) -> u64 {
        msgs.into_iter()
            .fold(0u64, |a, m| a.saturating_add(m.work_units()))
    }

    /// The address that must have signed the transaction carrying this message.
    pub fn signer(&self) -> Address {
        match self {
            Msg::BankSend(m) => m.from,
            Msg::Staking(m) => m.signer(),
            Msg::Tasks(m) => m.signer(),
            Msg::Verde(m) => m.signer(),
            Msg::Swarm(m) => m.signer(),
        }
    }

    pub fn execute<S: StateWrite + ?Sized>(
        &self,
        s: &mut S,
        ctx: &BlockCtx,
    ) -> Result<(), TxFailure> {
        match self {
            Msg::BankSend(m) => bank::execute_send(s, m).map_err(|e| TxFailure::from(&e)),
            Msg::Staking(m) => staking::execute(s, ctx, m).map_err(|e| TxFailure::from(&e)),
            Msg::Tasks(m) => m.execute(s, ctx).map_err(|e| TxFailure::from(&e)),
            Msg::Verde(m) => m.execute(s, ctx).map_err(|e| TxFailure::from(&e)),
            Msg::Swarm(m) => m.execute(s, ctx).map_err(|e| TxFailure::from(&e)),
        }
    }
}

fn tasks_msg(any: &prost_types::Any) -> Result<Option<tasks::TasksMsg>, TxFailure> {
    use proto::tasks::v1 as pb;
    use tasks::TasksMsg;
    let conv =
        |r: Result<TasksMsg, tasks::TasksError>| r.map(Some).map_err(|e| TxFailure::from(&e));
    let t = any.type_url.as_str();
    if t == pb::MsgSubmitTask::TYPE_URL {
        conv(TasksMsg::try_from(&decode::<pb::MsgSubmitTask>(any)?))
    } else if t == pb::MsgCancelTask::TYPE_URL {
        conv(TasksMsg::try_from(&decode::<pb::MsgCancelTask>(any)?))
    } else if t == pb::MsgClaimTask::TYPE_URL {
        conv(TasksMsg::try_from(&decode::<pb::MsgClaimTask>(any)?))
    } else if t == pb::MsgCommitResult::TYPE_URL {
        conv(TasksMsg::try_from(&decode::<pb::MsgCommitResult>(any)?))
    } else if t == pb::MsgAttest::TYPE_URL {
        conv(TasksMsg::try_from(&decode::<pb::MsgAttest>(any)?))
    } else if t == pb::MsgRevealSeed::TYPE_URL {
        conv(TasksMsg::try_from(&decode::<pb::MsgRevealSeed>(any)?))
    } else if t == pb::MsgRequestCheckpoint::TYPE_URL {
        conv(TasksMsg::try_from(&decode::<pb::MsgRequestCheckpoint>(
            any,
        )?))
    } else if t == pb::MsgPostCheckpoint::TYPE_URL {
        conv(TasksMsg::try_from(&decode::<pb::MsgPostCheckpoint>(any)?))
    } else {
        Ok(None)
    }
}

fn verde_msg(any: &prost_types::Any) -> Result<Option<verde::VerdeMsg>, TxFailure> {
    use proto::verde::v1 as pb;
    use verde::VerdeMsg;
    let conv =
        |r: Result<VerdeMsg, verde::VerdeError>| r.map(Some).map_err(|e| TxFailure::from(&e));
    let t = any.type_url.as_str();
    if t == pb::MsgOpenDispute::TYPE_URL {
        conv(VerdeMsg::try_from(&decode::<pb::MsgOpenDispute>(any)?))
    } else if t == pb::MsgRevealMid::TYPE_URL {
        conv(VerdeMsg::try_from(&decode::<pb::MsgRevealMid>(any)?))
    } else if t == pb::MsgRespond::TYPE_URL {
        conv(VerdeMsg::try_from(&decode::<pb::MsgRespond>(any)?))
    } else if t == pb::MsgPostOpRoot::TYPE_URL {
        conv(VerdeMsg::try_from(&decode::<pb::MsgPostOpRoot>(any)?))
    } else if t == pb::MsgRevealChildren::TYPE_URL {
        conv(VerdeMsg::try_from(&decode::<pb::MsgRevealChildren>(any)?))
    } else if t == pb::MsgProveAssembly::TYPE_URL {
        conv(VerdeMsg::try_from(&decode::<pb::MsgProveAssembly>(any)?))
    } else if t == pb::MsgUploadInput::TYPE_URL {
        conv(VerdeMsg::try_from(&decode::<pb::MsgUploadInput>(any)?))
    } else if t == pb::MsgUploadRows::TYPE_URL {
        conv(VerdeMsg::try_from(&decode::<pb::MsgUploadRows>(any)?))
    } else if t == pb::MsgRevealOutput::TYPE_URL {
        conv(VerdeMsg::try_from(&decode::<pb::MsgRevealOutput>(any)?))
    } else if t == pb::MsgRevealPartial::TYPE_URL {
        conv(VerdeMsg::try_from(&decode::<pb::MsgRevealPartial>(any)?))
    } else if t == pb::MsgProveSlice::TYPE_URL {
        conv(VerdeMsg::try_from(&decode::<pb::MsgProveSlice>(any)?))
    } else {
        Ok(None)
    }
}

fn swarm_msg(any: &prost_types::Any) -> Result<Option<swarm::SwarmMsg>, TxFailure> {
    use proto::swarm::v1 as pb;
    use swarm::SwarmMsg;
    let conv =
        |r: Result<SwarmMsg, swarm::SwarmError>| r.map(Some).map_err(|e| TxFailure::from(&e));
    let t = any.type_url.as_str();
    if t == pb::MsgCreateSwarm::TYPE_URL {
        conv(SwarmMsg::try_from(&decode::<pb::MsgCreateSwarm>(any)?))
    } else if t == pb::MsgJoinRound::TYPE_URL {
        conv(SwarmMsg::try_from(&decode::<pb::MsgJoinRound>(any)?))
    } else if t == pb::MsgReportLoss::TYPE_URL {
        conv(SwarmMsg::try_from(&decode::<pb::MsgReportLoss>(any)?))
    } else if t == pb::MsgRevealEvalSeed::TYPE_URL {
        conv(SwarmMsg::try_from(&decode::<pb::MsgRevealEvalSeed>(any)?))
    } else {
        Ok(None)
    }
}
