//! A solver's part in swarms: it takes slots of the rounds it follows
//! (`--swarm`), keeps the final state of each swarm task it commits where its
//! blob service serves it (the next round and the evaluations fetch it by
//! root), and reports the losses of its verified evaluations with their proofs.
use crate::{lock, Shared};
use agent::AgentError;
use proto::swarm::v1 as pb;
use std::sync::{Arc, Mutex};

pub(crate) async fn work(
    s: &Arc<Shared>,
    endpoint: &str,
    claimed: usize,
) -> Result<(), AgentError> {
    report_losses(s).await?;
    let me = s.chain.address;
    let mut q = s.chain.client.swarm();
    for &id in &s.cfg.swarm {
        if claimed >= s.cfg.capacity {
            break;
        }
        let Some(sw) = q
            .swarm(pb::QuerySwarmRequest { swarm_id: id })
            .await?
            .into_inner()
            .swarm
        else {
            continue;
        };
        if sw.status == pb::SwarmStatus::Done as i32 {
            continue;
        }
        let r = q
            .round(pb::QueryRoundRequest {
                swarm_id: id,
                round: sw.round,
            })
            .await?
            .into_inner()
            .round
            .unwrap_or_default();
        let full = r.contributions.len() as u64 >= sw.slots;
        let mine = r
            .contributions
            .iter()
            .any(|c| c.contributor == me.to_string());
        if r.phase != pb::RoundPhase::Joining as i32 || full || mine {
            continue;
        }
        let dataset = match &s.cfg.swarm_data {
            None => None,
            Some(name) => Some(own_source(s, endpoint, name).await?),
        };
        let m = pb::MsgJoinRound {
            contributor: me.to_string(),
            swarm_id: id,
            round: sw.round,
            endpoint: endpoint.to_string(),
            dataset,
        };
        match s
            .chain
            .send(vec![proto::to_any(&m)], "join a swarm round")
            .await
        {
            Ok(_) => {
                s.metrics.inc("swarm_slots_taken", 1);
                tracing::info!(swarm = id, round = sw.round, "joined a swarm round");
            }
            // Another contributor took the last slot first, or the round closed.
            Err(AgentError::TxFailed { log, .. })
            | Err(AgentError::Client(client::ClientError::Rejected { log, .. })) => {
                tracing::info!(swarm = id, reason = %log, "swarm join refused")
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// `--swarm-data` as the chain names it: fetched from this daemon's blob service.
async fn own_source(s: &Shared, endpoint: &str, name: &str) -> Result<pb::DataSource, AgentError> {
    let d = agent::datasets::load_own(name, &s.datasets_dir(), &s.cfg.datasets.policy()).await?;
    let h = d.header();
    Ok(pb::DataSource {
        name: ::swarm::component::round::state_source(endpoint),
        root: d.root().to_vec(),
        layout: Some(proto::tasks::v1::DatasetInfo {
            schema: h.schema.name().into(),
            rows: h.rows,
            row_bytes: h.row_bytes,
            chunk_rows: h.chunk_rows,
        }),
    })
}

/// Reports every verified (finalized) evaluation this solver computed whose
/// losses the round has not recorded yet.
async fn report_losses(s: &Arc<Shared>) -> Result<(), AgentError> {
    let me = s.chain.address.to_string();
    let mut q = s.chain.client.swarm();
    let swarms = q
        .swarms(pb::QuerySwarmsRequest {
            after: 0,
            limit: 200,
        })
        .await?
        .into_inner()
        .swarms;
    for sw in swarms
        .iter()
        .filter(|w| w.status == pb::SwarmStatus::Active as i32)
    {
        let r = q
            .round(pb::QueryRoundRequest {
                swarm_id: sw.id,
                round: sw.round,
            })
            .await?
            .into_inner()
            .round
            .unwrap_or_default();
        let pending = r
            .base
            .iter()
            .chain(r.contributions.iter().filter_map(|c| c.eval.as_ref()))
            .filter(|m| !m.reported)
            .map(|m| m.task_id)
            .collect::<Vec<_>>();
        for tid in pending {
            let Some(t) = s.chain.task(tid).await? else {
                continue;
            };
            if t.solver != me || t.status != proto::tasks::v1::TaskStatus::Finalized as i32 {
                continue;
            }
            let run = s.run_for(&t).await?;
            let (sid, r2, reporter) = (sw.id, run.clone(), s.chain.address);
            let msg = tokio::task::spawn_blocking(move || report_of(&r2, reporter, sid, tid))
                .await
                .map_err(|e| AgentError::Invalid(e.to_string()))??;
            s.chain
                .send(
                    vec![proto::to_any(&msg.to_proto())],
                    "report evaluation losses",
                )
                .await?;
            s.metrics.inc("swarm_losses_reported", 1);
            tracing::info!(swarm = sw.id, task = tid, "reported an evaluation's losses");
        }
    }
    Ok(())
}

fn report_of(
    run: &Mutex<agent::run::Run>,
    reporter: framework::Address,
    swarm_id: u64,
    task_id: u64,
) -> Result<::swarm::msg::MsgReportLoss, AgentError> {
    let mut r = lock(run);
    let steps = r.program.steps;
    let hashes = r.hashes().to_vec();
    let mut losses = Vec::with_capacity(steps as usize);
    for t in 1..=steps {
        let state = r.state_at(t)?;
        let l = ::swarm::msg::StepLoss::from_run(t, &hashes, &state)
            .ok_or_else(|| AgentError::Invalid(format!("task {task_id}: no loss at step {t}")))?;
        losses.push(l);
    }
    Ok(::swarm::msg::MsgReportLoss {
        reporter,
        swarm_id,
        task_id,
        losses,
    })
}

/// After committing a swarm task (its program records losses), keeps its final
/// state under the blob service's cache, by root: the next round's contributors
/// and the evaluators fetch it from here.
pub(crate) fn keep_final_state(
    s: &Shared,
    run: &Mutex<agent::run::Run>,
    root: &train::Hash,
) -> Result<(), AgentError> {
    let mut r = lock(run);
    if !r.program.record_loss {
        return Ok(());
    }
    let steps = r.program.steps;
    let bytes = r.checkpoint(steps)?;
    let dir = s.datasets_dir();
    std::fs::create_dir_all(&dir).map_err(|e| AgentError::io(&dir, e))?;
    agent::write_file_atomic(&agent::datasets::state_cache_path(&dir, root), &bytes)
}
