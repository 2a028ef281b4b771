//! Typed events of the tasks module (`veritrain.tasks.v1.Event*`).
use framework::{Address, Amount};

framework::typed_event!(EventTaskSubmitted, "veritrain.tasks.v1.EventTaskSubmitted", { task_id: u64, submitter: Address, reward: Amount, verification_fee: Amount });
framework::typed_event!(EventTaskClaimed, "veritrain.tasks.v1.EventTaskClaimed", { task_id: u64, solver: Address, bond: Amount, commit_deadline: u64 });
framework::typed_event!(EventResultCommitted, "veritrain.tasks.v1.EventResultCommitted", { task_id: u64, trace_root: String, final_state_hash: String, challenge_end: u64 });
framework::typed_event!(EventVerifiersSelected, "veritrain.tasks.v1.EventVerifiersSelected", { task_id: u64, verifiers: String });
framework::typed_event!(EventAttested, "veritrain.tasks.v1.EventAttested", { task_id: u64, verifier: Address });
framework::typed_event!(EventTaskFinalized, "veritrain.tasks.v1.EventTaskFinalized", { task_id: u64, solver: String, reward: Amount });
framework::typed_event!(EventTaskEnded, "veritrain.tasks.v1.EventTaskEnded", { task_id: u64, status: &'static str, note: String });
framework::typed_event!(EventCheckpointRequested, "veritrain.tasks.v1.EventCheckpointRequested", { task_id: u64, requester: Address, step: u64, deadline: u64 });
framework::typed_event!(EventCheckpointPosted, "veritrain.tasks.v1.EventCheckpointPosted", { task_id: u64, step: u64, bytes: u64 });
framework::typed_event!(EventPayout, "veritrain.tasks.v1.EventPayout", { task_id: u64, recipient: Address, amount: Amount, reason: &'static str });
