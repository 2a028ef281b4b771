//! Submitting a job and following it to the end: claim, training steps (from
//! the solver's own status service), commit, verification, finalisation or
//! dispute. An indicatif bar on a terminal, periodic log lines otherwise.
use crate::client::NodeClient;
use anyhow::{bail, Context};
use auth::Signer;
use framework::Amount;
use indicatif::{ProgressBar, ProgressStyle};
use proto::node::v1::TxResult;
use proto::solver::v1::StatusRequest;
use proto::tasks::v1::{self as pb, Task, TaskStatus};
use std::io::IsTerminal;
use std::time::{Duration, Instant};

/// The task id in a `MsgSubmitTask` result.
pub fn task_id_from(res: &TxResult) -> Option<u64> {
    res.events
        .iter()
        .filter(|e| e.r#type == "veritrain.tasks.v1.EventTaskSubmitted")
        .flat_map(|e| e.attributes.iter())
        .find(|a| a.key == "task_id")
        .and_then(|a| a.value.parse().ok())
}

/// Signs and sends one message, waits for its block, and fails on a
/// non-zero code (`what` names it in the error).
async fn send_one(
    client: &NodeClient,
    signer: &Signer,
    msg: prost_types::Any,
    what: &str,
) -> anyhow::Result<TxResult> {
    let (_, res) = client
        .sign_and_send(signer, vec![msg], "", None, Some(Duration::from_secs(60)))
        .await?;
    let res = res.context("no result")?;
    if res.code != 0 {
        bail!(
            "{what} failed: {} code {}: {}",
            res.codespace,
            res.code,
            res.log
        );
    }
    Ok(res)
}

/// Submits `program` at the default verification level (full
/// re-execution) and waits for inclusion; returns the task id.
pub async fn submit(
    client: &NodeClient,
    signer: &Signer,
    program: &train::Program,
    dataset: Option<pb::DatasetInfo>,
    reward: Amount,
    fee: Amount,
) -> anyhow::Result<u64> {
    submit_at(client, signer, program, dataset, reward, fee, None, None).await
}

/// [`submit`] at a verification level: `Some(bps)` samples `bps` basis
/// points of the steps per drawn verifier, `None` is full re-execution.
/// `seed_secret`: commit to its SHA-256 for the verifier draw (the caller
/// then reveals it with [`reveal_seed`] after the commit).
#[allow(clippy::too_many_arguments)]
pub async fn submit_at(
    client: &NodeClient,
    signer: &Signer,
    program: &train::Program,
    dataset: Option<pb::DatasetInfo>,
    reward: Amount,
    fee: Amount,
    sample_bps: Option<u32>,
    seed_secret: Option<[u8; 32]>,
) -> anyhow::Result<u64> {
    let msg = proto::to_any(&pb::MsgSubmitTask {
        submitter: signer.address().to_string(),
        program_json: serde_json::to_vec(program)?,
        reward: Some(crate::testkit::coin(reward)),
        verification_fee: Some(crate::testkit::coin(fee)),
        dataset,
        verification_level: match sample_bps {
            Some(_) => pb::VerificationLevel::Sampled as i32,
            None => pb::VerificationLevel::Full as i32,
        },
        sample_bps: sample_bps.unwrap_or(0),
        seed_commitment: seed_secret
            .map(|x| <sha2::Sha256 as sha2::Digest>::digest(x).to_vec())
            .unwrap_or_default(),
    });
    let res = send_one(client, signer, msg, "submit").await?;
    task_id_from(&res).context("the submit result carries no task id")
}

pub async fn task(client: &NodeClient, id: u64) -> anyhow::Result<Task> {
    proto::tasks::v1::query_client::QueryClient::new(client.channel())
        .max_decoding_message_size(64 << 20)
        .task(pb::QueryTaskRequest { task_id: id })
        .await
        .with_context(|| format!("task {id}"))?
        .into_inner()
        .task
        .with_context(|| format!("task {id} not found"))
}

fn ended(t: &Task) -> bool {
    matches!(
        TaskStatus::try_from(t.status).unwrap_or(TaskStatus::Unspecified),
        TaskStatus::Finalized | TaskStatus::Failed | TaskStatus::Cancelled | TaskStatus::Expired
    )
}

/// Training progress `(steps_done, steps, loss)` as the task's solver reports it.
async fn solver_progress(t: &Task) -> Option<(u64, u64, String)> {
    let mut c = tokio::time::timeout(Duration::from_secs(2), agent::solver_client(t))
        .await
        .ok()?
        .ok()?;
    let st = c.status(StatusRequest {}).await.ok()?.into_inner();
    st.tasks
        .into_iter()
        .find(|p| p.task_id == t.id)
        .map(|p| (p.steps_done, p.steps, p.last_loss))
}

/// One line of what the task is doing.
fn stage(t: &Task, steps_done: Option<(u64, u64, String)>) -> String {
    match TaskStatus::try_from(t.status).unwrap_or(TaskStatus::Unspecified) {
        TaskStatus::Open => "waiting for a solver".into(),
        TaskStatus::Claimed => match steps_done {
            Some((d, n, loss)) if d < n => format!("training step {d}/{n} (loss {loss})"),
            Some((_, n, _)) => format!("trained {n} steps; committing"),
            None => "claimed; training".into(),
        },
        TaskStatus::Committed if t.open_dispute != 0 => {
            format!("committed; DISPUTE {} in progress", t.open_dispute)
        }
        TaskStatus::Committed => format!(
            "committed; verification ({}/{} verifiers attested, window ends at height {})",
            t.attestations.len(),
            t.verifiers.len(),
            t.challenge_end
        ),
        s => format!("{}: {}", s.as_str_name(), t.note),
    }
}

/// Polls task `id` until it ends (or `timeout`), showing progress unless `quiet`.
pub async fn follow(
    client: &NodeClient,
    id: u64,
    timeout: Duration,
    quiet: bool,
) -> anyhow::Result<Task> {
    let tty = std::io::stderr().is_terminal() && !quiet;
    let bar = if tty {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template("{spinner} task {prefix} [{bar:30}] {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b.set_prefix(id.to_string());
        b.enable_steady_tick(Duration::from_millis(120));
        Some(b)
    } else {
        None
    };
    let start = Instant::now();
    let mut last_line = String::new();
    let mut last_log = Instant::now() - Duration::from_secs(60);
    loop {
        let t = task(client, id).await?;
        let progress = if t.status == TaskStatus::Claimed as i32 {
            solver_progress(&t).await
        } else {
            None
        };
        if let Some(b) = &bar {
            b.set_length(t.steps);
            let pos = match (&progress, TaskStatus::try_from(t.status)) {
                (Some((d, _, _)), _) => *d,
                (None, Ok(TaskStatus::Open | TaskStatus::Claimed)) => 0,
                _ => t.steps,
            };
            b.set_position(pos);
        }
        let line = stage(&t, progress);
        if let Some(b) = &bar {
            b.set_message(line.clone());
        } else if !quiet && (line != last_line || last_log.elapsed() > Duration::from_secs(10)) {
            tracing::info!(task = id, "{line}");
            last_log = Instant::now();
        }
        last_line = line;
        if ended(&t) {
            if let Some(b) = bar {
                b.finish_with_message(last_line);
            }
            return Ok(t);
        }
        if start.elapsed() > timeout {
            if let Some(b) = bar {
                b.abandon_with_message(format!("timed out: {last_line}"));
            }
            bail!("task {id} did not end within {timeout:?}: {last_line}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Fetches the trained model of task `t` from its solver and checks it
/// against the chain (`final_state_hash`). Returns the checkpoint bytes.
pub async fn fetch_model(t: &Task) -> anyhow::Result<Vec<u8>> {
    if t.final_state_hash.is_empty() {
        bail!("task {} has no committed result yet", t.id);
    }
    let s = agent::solver_client(t)
        .await?
        .model(proto::solver::v1::ModelRequest { task_id: t.id })
        .await?
        .into_inner();
    let program: train::Program = serde_json::from_slice(&t.program_json)?;
    let shapes = program.graph()?.state_shapes;
    let bytes = agent::collect_chunks(s, train::checkpoint::max_file_bytes(&shapes)).await?;
    let (step, _, h) = train::checkpoint::decode_hashed(&program, &shapes, &bytes)
        .context("the solver's model file")?;
    if step != program.steps || h.as_slice() != t.final_state_hash.as_slice() {
        bail!(
            "the model served by {} hashes to {} at step {step}, but the chain has {} at step {}",
            t.solver_endpoint,
            hex::encode(h),
            hex::encode(&t.final_state_hash),
            program.steps
        );
    }
    Ok(bytes)
}

/// The dispute about task `task_id` (open or resolved; the last one if several).
pub async fn dispute_of(
    client: &NodeClient,
    task_id: u64,
) -> anyhow::Result<Option<proto::verde::v1::Dispute>> {
    let mut q = proto::verde::v1::query_client::QueryClient::new(client.channel());
    let mut found = None;
    for id in 1.. {
        match q
            .dispute(proto::verde::v1::QueryDisputeRequest { dispute_id: id })
            .await
        {
            Ok(r) => {
                if let Some(d) = r.into_inner().dispute {
                    if d.task_id == task_id {
                        found = Some(d);
                    }
                }
            }
            Err(s) if s.code() == tonic::Code::NotFound => break,
            Err(s) => return Err(s.into()),
        }
    }
    Ok(found)
}

/// Waits (up to `timeout`) for task `id` to be committed, then reveals the
/// secret behind its seed commitment (`MsgRevealSeed`), which draws its
/// verifiers. Returns early if the task ends or is drawn without it.
pub async fn reveal_seed(
    client: &NodeClient,
    signer: &Signer,
    id: u64,
    secret: [u8; 32],
    timeout: Duration,
) -> anyhow::Result<()> {
    let end = std::time::Instant::now() + timeout;
    loop {
        let t = task(client, id).await?;
        if t.status == TaskStatus::Committed as i32 {
            if !t.selection_seed.is_empty() {
                return Ok(());
            }
            let msg = proto::to_any(&pb::MsgRevealSeed {
                submitter: signer.address().to_string(),
                task_id: id,
                secret: secret.to_vec(),
            });
            send_one(client, signer, msg, "reveal").await?;
            return Ok(());
        }
        if t.status != TaskStatus::Open as i32 && t.status != TaskStatus::Claimed as i32 {
            return Ok(());
        }
        if std::time::Instant::now() > end {
            bail!("task {id} was not committed within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
