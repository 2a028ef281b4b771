//! Swarm parameters (genesis `swarm.params`).
use proto::swarm::v1 as pb;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Params {
    /// Most contributor slots per round (each is a task, and an evaluation).
    pub max_slots: u64,
    /// Most rounds per swarm.
    pub max_rounds: u64,
    /// Most evaluation steps per measurement (what one `MsgReportLoss` proves).
    pub max_eval_steps: u64,
    /// Blocks a round stays open for joining.
    pub join_blocks: u64,
    /// Blocks after the evaluations end in which losses may be reported.
    pub report_blocks: u64,
    /// Blocks the creator has to reveal a round's evaluation seed.
    pub reveal_blocks: u64,
    /// How often (blocks) a swarm's round looks at its tasks: bounds the
    /// end-block work to one swarm's tasks per due check.
    pub check_blocks: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            max_slots: 16,
            max_rounds: 1_000,
            max_eval_steps: 64,
            join_blocks: 50,
            report_blocks: 50,
            reveal_blocks: 20,
            check_blocks: 5,
        }
    }
}

fn or(v: u64, default: u64) -> u64 {
    if v == 0 {
        default
    } else {
        v
    }
}

impl Params {
    pub fn to_proto(&self) -> pb::Params {
        pb::Params {
            max_slots: self.max_slots,
            max_rounds: self.max_rounds,
            max_eval_steps: self.max_eval_steps,
            join_blocks: self.join_blocks,
            report_blocks: self.report_blocks,
            reveal_blocks: self.reveal_blocks,
            check_blocks: self.check_blocks,
        }
    }

    pub fn from_proto(p: &pb::Params) -> Params {
        let d = Params::default();
        Params {
            max_slots: or(p.max_slots, d.max_slots),
            max_rounds: or(p.max_rounds, d.max_rounds),
            max_eval_steps: or(p.max_eval_steps, d.max_eval_steps),
            join_blocks: or(p.join_blocks, d.join_blocks),
            report_blocks: or(p.report_blocks, d.report_blocks),
            reveal_blocks: or(p.reveal_blocks, d.reveal_blocks),
            check_blocks: or(p.check_blocks, d.check_blocks),
        }
    }
}
