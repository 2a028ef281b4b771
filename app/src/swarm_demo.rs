//! `veritraind demo swarm`: a swarm of four contributors training the digits
//! MLP together for several rounds, in one process over real gRPC: the dev
//! chain, a solverd per contributor (`--swarm`), a verifier that re-executes
//! every task, one contributor (`dave`) training honestly on its own data with
//! shuffled labels, and one (`mallory`) that corrupts its contributions. Each
//! round is measured on its own evaluation pool (a slice of the held-out rows).
//! Each round prints the held-out loss of the global model and what every
//! contribution earned; at the end, the leaderboard.
use crate::cluster::{Cluster, Timing};
use anyhow::{bail, Context};
use framework::Amount;
use proto::swarm::v1 as pb;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Contributors of the demo: `dave` trains on shuffled labels, `mallory` cheats.
pub const CONTRIBUTORS: [&str; 4] = ["alice", "bob", "dave", "mallory"];

/// The digits training rows with their labels shuffled by a fixed permutation
/// (every digit labelled as the next one): honest work on wrong data, which
/// makes a model worse on correctly labelled rows from the first step.
fn shuffled_labels() -> anyhow::Result<train::Dataset> {
    let d = train::Dataset::builtin("digits")?;
    let n = 1500usize;
    let rb = d.header().row_bytes as usize;
    let mut data = d.data()[..n * rb].to_vec();
    for i in 0..n {
        data[i * rb + 64] = (data[i * rb + 64] + 1) % 10;
    }
    Ok(train::Dataset::build(
        "digits-shuffled-labels",
        train::dataset::Schema::Digits8x8,
        rb as u64,
        d.header().chunk_rows,
        data,
        "digits training rows with shuffled labels",
        "see train/data/README.md",
    )?)
}

/// One evaluation pool per round: the held-out digits rows `1500..1797` in slices.
fn pools(rounds: u64) -> anyhow::Result<Vec<train::Dataset>> {
    let d = train::Dataset::builtin("digits")?;
    let rb = d.header().row_bytes as usize;
    let held = &d.data()[1500 * rb..];
    let per = (held.len() / rb) / rounds as usize;
    if per < 2 {
        bail!(
            "too many rounds for the held-out rows: at most {}",
            held.len() / rb / 2
        );
    }
    (0..rounds as usize)
        .map(|r| {
            Ok(train::Dataset::build(
                &format!("digits-pool-{r}"),
                train::dataset::Schema::Digits8x8,
                rb as u64,
                8,
                held[r * per * rb..(r + 1) * per * rb].to_vec(),
                "held-out digits rows: one round's evaluation pool",
                "see train/data/README.md",
            )?)
        })
        .collect()
}

/// What the demo's swarm runs.
pub struct SwarmDemo {
    pub rounds: u64,
    pub inner_steps: u64,
    pub block_ms: u64,
    pub dir: Option<std::path::PathBuf>,
    /// Above 0: each round merges by averaging the improving contributions (a
    /// merge task any solver may do); 0: by selection.
    pub outer_lr: f32,
}

/// The loss a measurement reports, per step, in nats.
fn mean_loss(m: &Option<pb::Measurement>) -> Option<f64> {
    m.as_ref()
        .filter(|m| m.reported)
        .map(|m| m.loss_fixed as f64 / 4_294_967_296.0 / m.loss_bits.len().max(1) as f64)
}

/// The held-out loss and accuracy (all rows after `train_rows`) of the global
/// state `g`, read from whichever demo solver keeps it (by root).
fn heldout_of(
    root: &std::path::Path,
    program: &train::Program,
    g: &pb::GlobalState,
) -> Option<(f32, f64)> {
    let head: [u8; 32] = g.root.as_slice().try_into().ok()?;
    let file = CONTRIBUTORS.iter().find_map(|n| {
        let dir = root.join("solvers").join(n).join("datasets");
        std::fs::read(agent::datasets::state_cache_path(&dir, &head)).ok()
    })?;
    let mut p = program.clone();
    p.init_state = Some(train::StateRef {
        name: "observer".into(),
        root: head,
        step: g.step,
    });
    let shapes = p.graph().ok()?.state_shapes;
    let state = train::checkpoint::decode_initial(&p, &shapes, &file).ok()?;
    let cpu: std::sync::Arc<dyn repops::Backend> = std::sync::Arc::new(repops::CpuBackend);
    let ds = train::Dataset::builtin("digits").ok()?;
    let e = train::Trainer::from_initial(p, ds, cpu, state)
        .ok()?
        .evaluate()
        .ok()?;
    Some((e.loss, e.accuracy.unwrap_or(0.0)))
}

pub async fn run(d: &SwarmDemo, quiet: bool) -> anyhow::Result<Value> {
    if d.rounds == 0 || d.inner_steps < 2 {
        bail!("a swarm demo needs at least 1 round and 2 inner steps");
    }
    let say = |m: String| {
        if !quiet {
            eprintln!("{m}");
        }
    };
    let started = Instant::now();
    let (root, temp) = match &d.dir {
        Some(p) => (p.clone(), false),
        None => (
            std::env::temp_dir().join(format!("veritrain-swarm-demo-{}", std::process::id())),
            true,
        ),
    };
    if temp {
        let _ = std::fs::remove_dir_all(&root);
    }
    let timing = Timing {
        block_ms: d.block_ms,
        challenge_window_blocks: 20,
        move_blocks: 40,
    };
    let mut accounts = vec!["creator", "verifier"];
    accounts.extend(CONTRIBUTORS);
    let c = Cluster::start(&root, &accounts, &timing).await?;
    say(format!(
        "dev chain at {} ({} ms blocks); network files in {}",
        c.node.grpc_url(),
        d.block_ms,
        root.display()
    ));
    // Files the daemons may read: the evaluation pools (a real creator publishes
    // each only when its round evaluates) and dave's own data.
    let data_dir = root.join("data");
    std::fs::create_dir_all(&data_dir)?;
    let mut pool_sources = Vec::new();
    for (r, p) in pools(d.rounds)?.iter().enumerate() {
        let path = data_dir.join(format!("pool-{r}.vtds"));
        std::fs::write(&path, p.to_bytes())?;
        let h = p.header();
        pool_sources.push(pb::DataSource {
            name: path.display().to_string(),
            root: p.root().to_vec(),
            layout: Some(proto::tasks::v1::DatasetInfo {
                schema: h.schema.name().into(),
                rows: h.rows,
                row_bytes: h.row_bytes,
                chunk_rows: h.chunk_rows,
            }),
        });
    }
    let dave_data = data_dir.join("dave.vtds");
    std::fs::write(&dave_data, shuffled_labels()?.to_bytes())?;
    let allow = |a: &mut agent::datasets::DatasetArgs| a.allow_dataset_dir = Some(data_dir.clone());
    let mut vcfg = c.verifier_config("verifier");
    vcfg.whistleblower = true;
    allow(&mut vcfg.datasets);
    let verifier = verifierd::start(vcfg).await?;

    // The swarm: mlp-digits recording its loss; rows after train_rows are the pool.
    let mut program = train::Program::builtin("mlp-digits")?;
    program.record_loss = true;
    // The creator commits to a seed chain and reveals a link each round once the
    // contributions have ended: no block proposer can steer the evaluation rows.
    let secret = rand::random::<[u8; 32]>();
    let create = pb::MsgCreateSwarm {
        creator: c.signer("creator")?.address().to_string(),
        program_json: serde_json::to_vec(&program)?,
        rounds: d.rounds,
        slots: CONTRIBUTORS.len() as u64,
        inner_steps: d.inner_steps,
        eval_steps: 2,
        eval_batch: 128,
        budget_per_round: "3000000".into(),
        contribution_reward: "200000".into(),
        evaluation_reward: "50000".into(),
        verification_fee: "20000".into(),
        min_stake: "1000000".into(),
        dataset: None,
        seed_commitment: swarm::msg::seed_chain(&secret, d.rounds).to_vec(),
        pools: pool_sources,
        outer_lr: d.outer_lr,
    };
    let (_, res) = c
        .client
        .sign_and_send(
            c.signer("creator")?,
            vec![proto::to_any(&create)],
            "",
            None,
            Some(Duration::from_secs(30)),
        )
        .await?;
    let res = res.context("the swarm's creation was not included")?;
    if res.code != 0 {
        bail!("creating the swarm failed: {}", res.log);
    }
    let mut q = c.client.swarm();
    let id = q
        .swarms(pb::QuerySwarmsRequest { after: 0, limit: 1 })
        .await?
        .into_inner()
        .swarms
        .first()
        .map(|s| s.id)
        .context("no swarm after its creation")?;
    say(format!(
        "swarm {id}: {} rounds of {} contributions x {} steps of {}; budget 3000000uvtr per round",
        d.rounds,
        CONTRIBUTORS.len(),
        d.inner_steps,
        program.name
    ));

    // Mallory corrupts an optimizer update of every contribution it trains
    // (an update node's output is a state tensor, so the result is wrong).
    let graph = program.graph()?;
    let node = *graph.updates.get("l0.w").context("no update of l0.w")?;
    let mut solvers = Vec::new();
    for name in CONTRIBUTORS {
        let mut cfg = c.solver_config(name);
        cfg.swarm = vec![id];
        allow(&mut cfg.datasets);
        if name == "dave" {
            cfg.swarm_data = Some(dave_data.display().to_string());
        }
        if name == "mallory" {
            cfg.inject_fault = vec![agent::exec::Fault::Corrupt {
                step: d.inner_steps.min(3),
                node,
            }];
        }
        solvers.push(solverd::start(cfg).await?);
    }
    let revealer = {
        let (client, signer, rounds) = (c.client.clone(), c.signer("creator")?.clone(), d.rounds);
        let block_ms = d.block_ms;
        tokio::spawn(async move {
            let mut q = client.swarm();
            loop {
                tokio::time::sleep(Duration::from_millis(block_ms * 2)).await;
                let Ok(sw) = q.swarm(pb::QuerySwarmRequest { swarm_id: id }).await else {
                    continue;
                };
                let Some(sw) = sw.into_inner().swarm else {
                    continue;
                };
                if sw.status == pb::SwarmStatus::Done as i32 {
                    return;
                }
                let Ok(r) = q
                    .round(pb::QueryRoundRequest {
                        swarm_id: id,
                        round: sw.round,
                    })
                    .await
                else {
                    continue;
                };
                let r = r.into_inner().round.unwrap_or_default();
                if r.phase != pb::RoundPhase::Seeding as i32 {
                    continue;
                }
                let Some(link) = <[u8; 32]>::try_from(sw.seed_chain.as_slice())
                    .ok()
                    .and_then(|head| swarm::msg::link_for(&secret, rounds, &head))
                else {
                    return;
                };
                let m = pb::MsgRevealEvalSeed {
                    creator: signer.address().to_string(),
                    swarm_id: id,
                    round: sw.round,
                    secret: link.to_vec(),
                };
                let _ = client
                    .sign_and_send(
                        &signer,
                        vec![proto::to_any(&m)],
                        "",
                        None,
                        Some(Duration::from_secs(30)),
                    )
                    .await;
            }
        })
    };
    let stake_of = |name: &'static str| {
        let (client, addr) = (c.client.clone(), c.keys[name].address().to_string());
        async move {
            let op = client
                .staking()
                .operator(proto::staking::v1::QueryOperatorRequest { address: addr })
                .await?
                .into_inner()
                .operator
                .unwrap_or_default();
            anyhow::Ok(op.slashed_total)
        }
    };

    // An account's name in this demo (its address if it is none of ours).
    let name_of = |addr: &str| {
        c.keys
            .iter()
            .find(|(_, k)| k.address().to_string() == addr)
            .map_or(addr.to_string(), |(n, _)| n.clone())
    };
    let mut rounds = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(600);
    for r in 0..d.rounds {
        let round = loop {
            if Instant::now() > deadline {
                bail!("round {r} did not settle within 10 minutes");
            }
            let got = q
                .round(pb::QueryRoundRequest {
                    swarm_id: id,
                    round: r,
                })
                .await;
            if let Ok(resp) = got {
                let round = resp.into_inner().round.unwrap_or_default();
                if round.phase == pb::RoundPhase::Settled as i32 {
                    break round;
                }
            }
            tokio::time::sleep(Duration::from_millis(d.block_ms * 2)).await;
        };
        let base = mean_loss(&round.base);
        say(format!(
            "round {r}: held-out loss of the global model {} (evaluation rows drawn from {})",
            base.map_or("unmeasured".into(), |l| format!("{l:.4}")),
            if round.seed_revealed {
                "the creator's revealed seed link"
            } else {
                "a block hash"
            }
        ));
        let mut contributions = Vec::new();
        for k in &round.contributions {
            let loss = mean_loss(&k.eval);
            say(format!(
                "  {:8} task {:3} {:10} loss {:>10} improvement {:>8.4} quality share {}uvtr",
                name_of(&k.contributor),
                k.task_id,
                k.task_status,
                loss.map_or("-".into(), |l| format!("{l:.4}")),
                k.improvement as f64 / 4_294_967_296.0,
                k.quality_paid
            ));
            contributions.push(json!({
                "contributor": name_of(&k.contributor),
                "task_id": k.task_id,
                "status": k.task_status,
                "loss": loss,
                "improvement": k.improvement,
                "quality_paid": k.quality_paid,
            }));
        }
        if round.merged {
            say(format!(
                "  merged: {}'s state is the next global model",
                name_of(&round.contributions[round.merged_slot as usize].contributor)
            ));
        }
        let merge = round
            .merge
            .as_ref()
            .filter(|m| m.task_status == "finalized");
        if let Some(m) = merge {
            let of: Vec<String> = round
                .merge_slots
                .iter()
                .filter_map(|s| round.contributions.iter().find(|k| k.slot == *s))
                .map(|k| name_of(&k.contributor))
                .collect();
            say(format!(
                "  merged: the verified average of {} (merge task {}, attempt {}) is the next global model",
                of.join(", "),
                m.task_id,
                m.attempts
            ));
        }
        // An observer's check, off chain: the new global model on all held-out rows.
        let sw = q
            .swarm(pb::QuerySwarmRequest { swarm_id: id })
            .await?
            .into_inner()
            .swarm
            .unwrap_or_default();
        let whole = heldout_of(&root, &program, &sw.global.unwrap_or_default());
        if let Some((loss, acc)) = whole {
            say(format!(
                "  global model now: loss {loss:.4} and accuracy {:.1}% on all 297 held-out rows",
                acc * 100.0
            ));
        }
        rounds.push(json!({
            "round": r,
            "global_heldout_loss_after": whole.map(|w| w.0),
            "global_heldout_accuracy_after": whole.map(|w| w.1),
            "seed_revealed": round.seed_revealed,
            "heldout_loss": base,
            "contributions": contributions,
            "merged": round.merged.then_some(round.merged_slot),
            "merge_task": merge.map(|m| m.task_id),
            "merge_slots": round.merge_slots,
            "quality_paid": round.quality_paid,
            "note": round.note,
        }));
    }
    let board = q
        .leaderboard(pb::QueryLeaderboardRequest {
            swarm_id: id,
            limit: 10,
        })
        .await?
        .into_inner()
        .entries;
    say("leaderboard (verified quality):".into());
    let mut leaderboard = Vec::new();
    for (i, e) in board.iter().enumerate() {
        let name = name_of(&e.address);
        let quality = e.quality.parse::<u128>().unwrap_or(0) as f64 / 4_294_967_296.0;
        say(format!(
            "  {}. {name:8} quality {quality:.4} nats  rewards {}uvtr  contributions {} ({} improved)",
            i + 1,
            e.rewards,
            e.contributions,
            e.improvements
        ));
        leaderboard.push(json!({
            "contributor": name,
            "quality": e.quality,
            "rewards": e.rewards,
            "contributions": e.contributions,
            "improvements": e.improvements,
        }));
    }
    revealer.abort();
    let mallory_slashed = stake_of("mallory").await?;
    say(format!(
        "mallory (corrupting its contributions) was slashed {mallory_slashed}uvtr"
    ));
    let dave_quality: u64 = rounds
        .iter()
        .flat_map(|r| r["contributions"].as_array().cloned().unwrap_or_default())
        .filter(|k| k["contributor"] == "dave")
        .map(|k| {
            k["quality_paid"]
                .as_str()
                .and_then(|q| q.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum();
    say(format!(
        "dave (own data, shuffled labels) did verified work but earned {dave_quality}uvtr of quality shares"
    ));
    for s in solvers {
        s.shutdown().await;
    }
    verifier.shutdown().await;
    c.shutdown().await;
    if temp {
        let _ = std::fs::remove_dir_all(&root);
    }
    let losses: Vec<Option<f64>> = rounds.iter().map(|r| r["heldout_loss"].as_f64()).collect();
    Ok(json!({
        "swarm_id": id,
        "rounds": rounds,
        "heldout_loss_by_round": losses,
        "leaderboard": leaderboard,
        "mallory_slashed": mallory_slashed,
        "dave_quality_paid": dave_quality,
        "seconds": started.elapsed().as_secs_f64(),
        "funds_per_round": Amount(3_000_000).0,
    }))
}
