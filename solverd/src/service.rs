//! The `veritrain.solver.v1.Solver` gRPC service, with gRPC health and reflection.
use crate::Shared;
use agent::lock;
use agent::{chunk_stream, AgentError, ChunkStream};
use proto::solver::v1::{
    solver_server::{Solver, SolverServer},
    CheckpointRequest, DatasetRequest, ModelRequest, OpTraceRequest, OpTraceResponse,
    StatusRequest, StatusResponse, StepHashRequest, StepHashResponse, StepHashesRequest,
    StepHashesResponse, WithheldLeaf,
};
use proto::tasks::v1::{Task, TaskStatus, VerificationLevel};
use std::collections::BTreeSet;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tonic::{Request, Response, Status};

pub(crate) struct SolverService {
    s: Arc<Shared>,
    /// Two replays at a time for outside callers: a checkpoint or op trace
    /// replays up to `--checkpoint-every` steps while holding the task's
    /// run, which the solver's own dispute moves also need. A caller that
    /// finds both busy gets RESOURCE_EXHAUSTED and retries (verifiers replay
    /// from their own states meanwhile), so no caller can starve the solver.
    replays: tokio::sync::Semaphore,
}

fn to_status(e: AgentError) -> Status {
    match e {
        AgentError::Invalid(m) => Status::invalid_argument(m),
        AgentError::Rpc(s) => s,
        other => Status::internal(other.to_string()),
    }
}

impl SolverService {
    /// The task, if this solver holds it (claimed by this key).
    async fn my_task(&self, id: u64) -> Result<Task, Status> {
        if id == 0 {
            return Err(Status::invalid_argument("task_id must be set"));
        }
        let t = self
            .s
            .chain
            .task(id)
            .await
            .map_err(to_status)?
            .ok_or_else(|| Status::not_found(format!("task {id} does not exist")))?;
        if t.solver != self.s.chain.address.to_string() {
            return Err(Status::not_found(format!(
                "task {id} is not held by this solver ({})",
                self.s.chain.address
            )));
        }
        if self.s.fault.silent && !t.trace_root.is_empty() {
            return Err(Status::unavailable(
                "this solver stopped answering (fault injection)",
            ));
        }
        Ok(t)
    }

    /// The task, if its trace (step hashes, op traces, checkpoints) may be
    /// served now, and the steps withheld from it. A drawn verifier's
    /// evidence must come from its own re-execution, not from this service
    /// (see `modules/tasks/README.md`): at the full level nothing of the
    /// trace is served until the task has ended; at the sampled level
    /// nothing before the draw, then everything but the steps the drawn
    /// verifiers must prove (`tasks::level::withheld_steps`).
    async fn traced_task(&self, id: u64) -> Result<(Task, BTreeSet<u64>), Status> {
        let t = self.my_task(id).await?;
        let open =
            t.status == TaskStatus::Claimed as i32 || t.status == TaskStatus::Committed as i32;
        if !open {
            return Ok((t, BTreeSet::new()));
        }
        if t.verification_level != VerificationLevel::Sampled as i32 {
            return Err(Status::permission_denied(format!(
                "task {id} is verified by full re-execution: its trace is served once the task has ended"
            )));
        }
        let seed: Option<tasks::task::Hash> = t.selection_seed.as_slice().try_into().ok();
        let (Some(seed), Ok(level)) = (
            seed,
            tasks::Level::from_proto(t.verification_level, t.sample_bps),
        ) else {
            return Err(Status::permission_denied(format!(
                "task {id}: its verifiers are not drawn yet; the trace is served after the draw"
            )));
        };
        let verifiers: Vec<framework::Address> =
            t.verifiers.iter().filter_map(|v| v.parse().ok()).collect();
        let withheld = tasks::level::withheld_steps(level, &seed, &verifiers, t.steps);
        Ok((t, withheld))
    }

    /// The replay permit, or RESOURCE_EXHAUSTED while another caller holds it.
    fn replay_permit(&self) -> Result<tokio::sync::SemaphorePermit<'_>, Status> {
        self.replays.try_acquire().map_err(|_| {
            Status::resource_exhausted("this solver is replaying for another caller; retry shortly")
        })
    }

    /// Runs `f` on the task's run in a blocking thread.
    async fn with_run<T: Send + 'static>(
        &self,
        t: &Task,
        f: impl FnOnce(&mut agent::run::Run) -> Result<T, AgentError> + Send + 'static,
    ) -> Result<T, Status> {
        let run = self.s.run_for(t).await.map_err(to_status)?;
        tokio::task::spawn_blocking(move || f(&mut lock(&run)))
            .await
            .map_err(|e| Status::internal(e.to_string()))?
            .map_err(to_status)
    }
}

/// PERMISSION_DENIED if any of `steps` is withheld.
fn deny_withheld(withheld: &BTreeSet<u64>, steps: &[u64]) -> Result<(), Status> {
    match steps.iter().find(|s| withheld.contains(s)) {
        Some(s) => Err(Status::permission_denied(format!(
            "step {s} is a drawn verifier's evidence step: it is served once the task has ended"
        ))),
        None => Ok(()),
    }
}

fn check_step(step: u64, max: u64, what: &str) -> Result<(), Status> {
    if step > max {
        return Err(Status::invalid_argument(format!(
            "{what} {step} is out of range: this run has steps 0..={max}"
        )));
    }
    Ok(())
}

#[tonic::async_trait]
impl Solver for SolverService {
    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        Ok(Response::new(StatusResponse {
            address: self.s.chain.address.to_string(),
            backend: self.s.backend.name().to_string(),
            tasks: lock(&self.s.progress).values().cloned().collect(),
        }))
    }

    async fn step_hashes(
        &self,
        r: Request<StepHashesRequest>,
    ) -> Result<Response<StepHashesResponse>, Status> {
        let (t, withheld) = self.traced_task(r.get_ref().task_id).await?;
        let all = self.with_run(&t, |run| Ok(run.hashes().to_vec())).await?;
        let mut out = StepHashesResponse::default();
        for (k, h) in all.iter().enumerate() {
            if withheld.contains(&(k as u64)) {
                out.hashes.push(vec![]);
                out.withheld.push(WithheldLeaf {
                    step: k as u64,
                    leaf_node: train::merkle::leaf_node(h).to_vec(),
                });
            } else {
                out.hashes.push(h.to_vec());
            }
        }
        Ok(Response::new(out))
    }

    async fn step_hash(
        &self,
        r: Request<StepHashRequest>,
    ) -> Result<Response<StepHashResponse>, Status> {
        let step = r.get_ref().step;
        let (t, withheld) = self.traced_task(r.get_ref().task_id).await?;
        deny_withheld(&withheld, &[step])?;
        let (hash, proof) = self
            .with_run(&t, move |run| {
                if run.steps_done() < run.program.steps {
                    return Err(AgentError::Rpc(Status::failed_precondition(format!(
                        "training is at step {} of {}: proofs exist once it is done",
                        run.steps_done(),
                        run.program.steps
                    ))));
                }
                check_step(step, run.program.steps, "step")
                    .map_err(|s| AgentError::Invalid(s.message().to_string()))?;
                let hs = run.hashes();
                Ok((
                    hs[step as usize].to_vec(),
                    agent::dispute::pb_proof(hs, step as usize)?,
                ))
            })
            .await?;
        Ok(Response::new(StepHashResponse {
            hash,
            proof: Some(proof),
        }))
    }

    async fn op_trace(
        &self,
        r: Request<OpTraceRequest>,
    ) -> Result<Response<OpTraceResponse>, Status> {
        let step = r.get_ref().step;
        let (t, withheld) = self.traced_task(r.get_ref().task_id).await?;
        deny_withheld(&withheld, &[step, step.saturating_sub(1)])?;
        if step == 0 {
            return Err(Status::invalid_argument(
                "step 0 has no operators; steps start at 1",
            ));
        }
        let _permit = self.replay_permit()?;
        let nh = self
            .with_run(&t, move |run| {
                check_step(step, run.steps_done(), "step")
                    .map_err(|s| AgentError::Invalid(s.message().to_string()))?;
                Ok(run.step_out(step)?.node_hashes())
            })
            .await?;
        Ok(Response::new(OpTraceResponse {
            op_root: train::merkle::root(&nh).to_vec(),
            node_hashes: nh.iter().map(|h| h.to_vec()).collect(),
        }))
    }

    type CheckpointStream = ChunkStream;
    async fn checkpoint(
        &self,
        r: Request<CheckpointRequest>,
    ) -> Result<Response<ChunkStream>, Status> {
        let step = r.get_ref().step;
        let (t, withheld) = self.traced_task(r.get_ref().task_id).await?;
        deny_withheld(&withheld, &[step])?;
        if self.s.fault.withhold_checkpoints {
            return Err(Status::unavailable(
                "checkpoints are withheld (fault injection)",
            ));
        }
        let _permit = self.replay_permit()?;
        let bytes = self
            .with_run(&t, move |run| {
                check_step(step, run.steps_done(), "step")
                    .map_err(|s| AgentError::Invalid(s.message().to_string()))?;
                run.checkpoint(step)
            })
            .await?;
        Ok(Response::new(chunk_stream(bytes)))
    }

    type ModelStream = ChunkStream;
    async fn model(&self, r: Request<ModelRequest>) -> Result<Response<ChunkStream>, Status> {
        let t = self.my_task(r.get_ref().task_id).await?;
        // The submitter paid for the model; nobody gets it before it is final.
        if t.status != TaskStatus::Finalized as i32 {
            return Err(Status::failed_precondition(format!(
                "task {} is not finalized: the model is served once it is",
                t.id
            )));
        }
        let bytes = self
            .with_run(&t, |run| {
                if run.steps_done() < run.program.steps {
                    return Err(AgentError::Rpc(Status::failed_precondition(format!(
                        "training is at step {} of {}",
                        run.steps_done(),
                        run.program.steps
                    ))));
                }
                run.checkpoint(run.program.steps)
            })
            .await?;
        Ok(Response::new(chunk_stream(bytes)))
    }

    type DatasetStream = ChunkStream;
    async fn dataset(&self, r: Request<DatasetRequest>) -> Result<Response<ChunkStream>, Status> {
        let root: [u8; 32] = r
            .get_ref()
            .root
            .as_slice()
            .try_into()
            .map_err(|_| Status::invalid_argument("root must be 32 bytes"))?;
        for name in ["digits", "corpus"] {
            if let Ok(d) = train::Dataset::builtin(name) {
                if d.root() == root {
                    return Ok(Response::new(chunk_stream(d.to_bytes())));
                }
            }
        }
        // Datasets and fine-tunes' initial states this solver fetched, both by content.
        let dir = self.s.datasets_dir();
        let files = [
            dir.join(format!("{}.vtds", hex::encode(root))),
            agent::datasets::state_cache_path(&dir, &root),
        ];
        // Streamed from disk: a large state or dataset is never held whole.
        match files.iter().find_map(|p| agent::file_chunk_stream(p).ok()) {
            Some(s) => Ok(Response::new(s)),
            None => Err(Status::not_found(format!(
                "no dataset or state with root {}",
                hex::encode(root)
            ))),
        }
    }
}

pub(crate) async fn spawn(
    s: Arc<Shared>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> JoinHandle<()> {
    let (health, health_svc) = tonic_health::server::health_reporter();
    health.set_serving::<SolverServer<SolverService>>().await;
    let svc = SolverServer::new(SolverService {
        s,
        replays: tokio::sync::Semaphore::new(2),
    })
    .max_decoding_message_size(agent::MAX_MESSAGE)
    .max_encoding_message_size(agent::MAX_MESSAGE);
    // TCP_NODELAY: small HTTP/2 frames must not wait for delayed ACKs (40 ms stalls).
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tokio::spawn(async move {
        if let Err(e) = tonic::transport::Server::builder()
            .add_service(health_svc)
            .add_service(svc)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await
        {
            tracing::error!(error = %e, "solver gRPC server failed");
        }
    })
}
