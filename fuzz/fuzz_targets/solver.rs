//! The Solver gRPC service's handlers (`solverd/src/service.rs`) with
//! arbitrary requests: a dev chain, a solver and a verifier run in this
//! process (the `tests` crate's network, real gRPC over loopback), the solver
//! trains and serves one finished 4-step task, and each input is one request
//! (step hashes, one step hash, an op trace, a checkpoint, the model, a
//! dataset, status) for that task, another or none, at any step.
//!
//! Invariants:
//! - a refusal is one of the service's documented statuses (invalid
//!   argument, not found, permission denied, resource exhausted), never an
//!   internal error or a dropped connection;
//! - every answer is checkable against the chain: the step hashes' Merkle
//!   root is the task's `trace_root`, a step hash's proof verifies against
//!   it at that step, an op trace's hashes give its op root, a checkpoint
//!   decodes for the task's program to that step with that step's hash, the
//!   model decodes to the final state hash, a dataset has the root asked for.
#![no_main]
use libfuzzer_sys::fuzz_target;
use proto::solver::v1::{solver_client::SolverClient, *};
use std::time::Duration;
use tonic::transport::Channel;
use veritrain_fuzz::Reader;

const STEPS: u64 = 4;

struct World {
    rt: tokio::runtime::Runtime,
    client: SolverClient<Channel>,
    id: u64,
    task: proto::tasks::v1::Task,
    program: train::Program,
    hashes: Vec<Vec<u8>>,
}

fn world() -> &'static World {
    static W: std::sync::OnceLock<World> = std::sync::OnceLock::new();
    W.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let (client, id, task, program) = rt.block_on(async {
            let n = tests::net().await.expect("network");
            let v = verifierd::start(n.c.verifier_config("verifier"))
                .await
                .expect("verifier");
            let s = solverd::start(n.c.solver_config("solver"))
                .await
                .expect("solver");
            let (id, program) = n.submit(STEPS).await.expect("submit");
            let task = n.finish(id, 300).await.expect("the task ends");
            assert_eq!(
                tests::status_name(&task),
                "TASK_STATUS_FINALIZED",
                "{}",
                task.note
            );
            let client = SolverClient::connect(s.endpoint()).await.expect("connect");
            // Kept running for the life of the process.
            std::mem::forget((n, v, s));
            (client, id, task, program)
        });
        let hashes = rt
            .block_on(
                client
                    .clone()
                    .step_hashes(StepHashesRequest { task_id: id }),
            )
            .expect("step hashes")
            .into_inner()
            .hashes;
        World {
            rt,
            client,
            id,
            task,
            program,
            hashes,
        }
    })
}

async fn collect(
    r: Result<tonic::Response<tonic::Streaming<Chunk>>, tonic::Status>,
) -> Result<Vec<u8>, tonic::Status> {
    let mut s = r?.into_inner();
    let mut out = Vec::new();
    while let Some(c) = s.message().await? {
        out.extend(c.data);
    }
    Ok(out)
}

fn allowed(s: &tonic::Status) {
    use tonic::Code::*;
    assert!(
        matches!(
            s.code(),
            InvalidArgument | NotFound | PermissionDenied | ResourceExhausted
        ),
        "refused with {:?}: {}",
        s.code(),
        s.message()
    );
}

fn hash32(b: &[u8]) -> [u8; 32] {
    b.try_into().expect("a 32-byte hash")
}

fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        ("step-hashes", vec![0, 1]),
        ("step-hash", vec![1, 1, 0, 2]),
        ("op-trace", vec![2, 1, 0, 1]),
        ("checkpoint", vec![3, 1, 0, 2]),
        ("model", vec![4, 1]),
        ("dataset", vec![5, 0, 0, 1]),
        ("status", vec![6]),
    ]
}

fuzz_target!(
    // The network starts before fuzzing, outside the per-input timeout.
    init: {
        veritrain_fuzz::write_seeds_if_asked(seeds);
        world();
    },
    |data: &[u8]| {
    let w = world();
    let mut r = Reader::new(data);
    let kind = r.u8() % 7;
    let task_id = match r.u8() % 4 {
        0 => 0,
        1 | 2 => w.id,
        _ => r.u64(),
    };
    let step = match r.u8() % 3 {
        0 => r.u64() % (STEPS + 3),
        1 => r.u64(),
        _ => STEPS,
    };
    let root: Vec<u8> = if r.bool() { w.program.dataset.root.to_vec() } else { r.bytes(40).to_vec() };
    let trace_root = hash32(&w.task.trace_root);
    let mut c = w.client.clone();
    w.rt.block_on(async {
        let t = Duration::from_secs(60);
        match kind {
            0 => match c.step_hashes(StepHashesRequest { task_id }).await {
                Ok(h) => {
                    let h = h.into_inner();
                    let leaves: Vec<[u8; 32]> = h.hashes.iter().map(|x| hash32(x)).collect();
                    assert_eq!(train::merkle::root(&leaves), trace_root);
                }
                Err(s) => allowed(&s),
            },
            1 => match c.step_hash(StepHashRequest { task_id, step }).await {
                Ok(h) => {
                    let h = h.into_inner();
                    let p = tasks::msg::proof_from_proto(&h.proof.expect("a proof")).expect("proof");
                    assert_eq!(p.index, step);
                    assert!(train::merkle::verify(&trace_root, &hash32(&h.hash), &p));
                }
                Err(s) => allowed(&s),
            },
            2 => match c.op_trace(OpTraceRequest { task_id, step }).await {
                Ok(o) => {
                    let o = o.into_inner();
                    let nh: Vec<[u8; 32]> = o.node_hashes.iter().map(|x| hash32(x)).collect();
                    assert_eq!(train::merkle::root(&nh).to_vec(), o.op_root);
                    assert_eq!(nh.len(), w.program.nodes().expect("nodes").len());
                }
                Err(s) => allowed(&s),
            },
            3 => match tokio::time::timeout(t, collect(c.checkpoint(CheckpointRequest { task_id, step }).await)).await.expect("in time") {
                Ok(bytes) => {
                    let shapes = w.program.graph().expect("graph").state_shapes;
                    let (s, _, h) = train::checkpoint::decode_hashed(&w.program, &shapes, &bytes).expect("checkpoint decodes");
                    assert_eq!(s, step);
                    assert_eq!(h.to_vec(), w.hashes[step as usize]);
                }
                Err(s) => allowed(&s),
            },
            4 => match tokio::time::timeout(t, collect(c.model(ModelRequest { task_id }).await)).await.expect("in time") {
                Ok(bytes) => {
                    let shapes = w.program.graph().expect("graph").state_shapes;
                    let (s, _, h) = train::checkpoint::decode_hashed(&w.program, &shapes, &bytes).expect("model decodes");
                    assert_eq!(s, STEPS);
                    assert_eq!(h.to_vec(), w.task.final_state_hash);
                }
                Err(s) => allowed(&s),
            },
            5 => match tokio::time::timeout(t, collect(c.dataset(DatasetRequest { root: root.clone() }).await)).await.expect("in time") {
                Ok(bytes) => {
                    let want: [u8; 32] = root.as_slice().try_into().expect("served only for a 32-byte root");
                    train::Dataset::from_bytes(&bytes, Some(&want)).expect("the dataset asked for");
                }
                Err(s) => allowed(&s),
            },
            _ => {
                c.status(StatusRequest {}).await.expect("status");
            }
        }
    });
}
);
