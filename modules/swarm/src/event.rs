//! Typed events of the swarm module (`veritrain.swarm.v1.Event*`).
use framework::{Address, Amount};

framework::typed_event!(EventSwarmCreated, "veritrain.swarm.v1.EventSwarmCreated", { swarm_id: u64, creator: Address, escrow: Amount });
framework::typed_event!(EventRoundJoined, "veritrain.swarm.v1.EventRoundJoined", { swarm_id: u64, round: u64, slot: u64, contributor: Address, task_id: u64 });
framework::typed_event!(EventEvaluationStarted, "veritrain.swarm.v1.EventEvaluationStarted", { swarm_id: u64, round: u64, eval_seed: String, tasks: u64 });
framework::typed_event!(EventLossReported, "veritrain.swarm.v1.EventLossReported", { swarm_id: u64, round: u64, task_id: u64, loss_fixed: u64 });
framework::typed_event!(EventRoundSettled, "veritrain.swarm.v1.EventRoundSettled", { swarm_id: u64, round: u64, quality_paid: Amount, merged_slot: u64 });
framework::typed_event!(EventSwarmPayout, "veritrain.swarm.v1.EventSwarmPayout", { swarm_id: u64, recipient: Address, amount: Amount, reason: &'static str });
framework::typed_event!(EventSwarmStalled, "veritrain.swarm.v1.EventSwarmStalled", { swarm_id: u64, error: String });
