//! Typed events of the verde module (`veritrain.verde.v1.Event*`).
use framework::{Address, Amount};

framework::typed_event!(EventDisputeOpened, "veritrain.verde.v1.EventDisputeOpened", { dispute_id: u64, task_id: u64, challenger: Address, lo: u64, hi: u64 });
framework::typed_event!(EventDisputeMove, "veritrain.verde.v1.EventDisputeMove", { dispute_id: u64, actor: String, action: String, deadline: u64 });
framework::typed_event!(EventDisputeResolved, "veritrain.verde.v1.EventDisputeResolved", { dispute_id: u64, task_id: u64, winner: &'static str, step: u64, node: u64, op_kind: String, rounds: u32, slashed: Amount, reason: String });
framework::typed_event!(EventPayout, "veritrain.verde.v1.EventPayout", { dispute_id: u64, recipient: Address, amount: Amount, reason: &'static str });
