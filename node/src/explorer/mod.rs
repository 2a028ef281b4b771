//! The node's HTTP side: a block explorer (a few hand-written pages compiled
//! into the binary), the JSON API behind it (`/api/...`, documented in
//! `app/README.md`), live updates as server-sent events (`/api/events`) and
//! Prometheus metrics (`/metrics`, see [`metrics`]).
//!
//! Everything here reads the chain through the node's own gRPC API (the
//! protobuf types of `proto`), never through the modules' Rust traits: the
//! explorer is a client of the node like any other, and works the same in
//! front of `veritraind dev` and `veritraind start`. One block stream
//! (`Node/StreamBlocks`) feeds the recent-blocks list, the live events and the
//! metrics.
pub mod metrics;

use axum::extract::{Path, RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use client::NodeClient;
use metrics::NodeMetrics;
use prost::Message;
use proto::node::v1::Block;
use proto::{staking::v1 as staking_pb, tasks::v1 as tasks_pb, verde::v1 as verde_pb};
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;

const INDEX_HTML: &str = include_str!("assets/index.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// Blocks kept in memory for the network page and `/api/blocks`.
const RECENT_BLOCKS: usize = 100;
/// Most tasks or disputes one request scans.
const SCAN_LIMIT: u64 = 1000;

/// Where to serve something, and whether that address was asked for
/// explicitly (a flag) rather than configured (see [`Http::start`]); `None`: off.
pub type Serve = Option<(SocketAddr, bool)>;

/// The explorer and metrics servers of one node, stopped together.
pub struct Http {
    explorer: Option<SocketAddr>,
    metrics: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Http {
    /// Serves the explorer and/or metrics for the node at `grpc_url`. Each
    /// address comes with whether it was asked for explicitly: an explicit
    /// address that cannot be bound is an error; a configured default that is
    /// taken (another node on this machine) is a warning, and that server is off.
    pub async fn start(
        explorer: Serve,
        metrics: Serve,
        grpc_url: &str,
        comet_rpc: Option<String>,
    ) -> anyhow::Result<Http> {
        let (stop, rx) = watch::channel(false);
        let mut http = Http {
            explorer: None,
            metrics: None,
            stop,
            tasks: Vec::new(),
        };
        if explorer.is_none() && metrics.is_none() {
            return Ok(http);
        }
        let client = NodeClient::connect(grpc_url).await?;
        let (events, _) = broadcast::channel(256);
        let shared = Arc::new(Shared {
            client,
            comet_rpc,
            recent: Mutex::new(VecDeque::new()),
            events,
            metrics: NodeMetrics::new(),
        });
        http.tasks
            .push(tokio::spawn(feed(shared.clone(), rx.clone())));
        if let Some((addr, explicit)) = explorer {
            if let Some(l) = bind(addr, explicit, "explorer").await? {
                http.explorer = Some(l.local_addr()?);
                http.tasks
                    .push(spawn_server(l, explorer_router(shared.clone()), rx.clone()));
            }
        }
        if let Some((addr, explicit)) = metrics {
            if let Some(l) = bind(addr, explicit, "metrics").await? {
                http.metrics = Some(l.local_addr()?);
                let m = shared.clone();
                let r = Router::new().route(
                    "/metrics",
                    get(move || {
                        let m = m.clone();
                        async move { metrics_response(&m) }
                    }),
                );
                http.tasks.push(spawn_server(l, r, rx.clone()));
            }
        }
        Ok(http)
    }

    pub fn explorer_addr(&self) -> Option<SocketAddr> {
        self.explorer
    }
    pub fn explorer_url(&self) -> Option<String> {
        self.explorer.map(|a| format!("http://{a}/"))
    }
    pub fn metrics_url(&self) -> Option<String> {
        self.metrics.map(|a| format!("http://{a}/metrics"))
    }

    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
    }
}

async fn bind(
    addr: SocketAddr,
    explicit: bool,
    what: &str,
) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => Ok(Some(l)),
        Err(e) if explicit => Err(anyhow::anyhow!(
            "cannot listen for the {what} on {addr}: {e}"
        )),
        Err(e) => {
            tracing::warn!(%addr, error = %e, "{what} not served (set its address in app.toml or with a flag)");
            Ok(None)
        }
    }
}

fn spawn_server(
    l: tokio::net::TcpListener,
    r: Router,
    stop: watch::Receiver<bool>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut s = stop;
        let r = axum::serve(l, r)
            .with_graceful_shutdown(async move {
                let _ = s.wait_for(|v| *v).await;
            })
            .await;
        if let Err(e) = r {
            tracing::error!(error = %e, "HTTP server failed");
        }
    })
}

struct Shared {
    client: NodeClient,
    comet_rpc: Option<String>,
    recent: Mutex<VecDeque<Value>>,
    /// Live events: `(event name, JSON data)`.
    events: broadcast::Sender<(&'static str, String)>,
    metrics: NodeMetrics,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Follows the node's blocks (reconnecting if the stream ends) and feeds the
/// recent-blocks list, the live events and the metrics.
async fn feed(s: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut next = 0u64;
    loop {
        if *stop.borrow() {
            return;
        }
        let from = if next == 0 {
            match s.client.status().await {
                Ok(st) => st.height.saturating_sub(RECENT_BLOCKS as u64 - 1).max(1),
                Err(_) => 1,
            }
        } else {
            next
        };
        let stream = s
            .client
            .node()
            .stream_blocks(proto::node::v1::StreamBlocksRequest { from_height: from })
            .await;
        if let Ok(stream) = stream {
            let mut stream = stream.into_inner();
            loop {
                let m = tokio::select! {
                    _ = stop.wait_for(|v| *v) => return,
                    m = stream.message() => m,
                };
                match m {
                    Ok(Some(b)) => {
                        next = b.height + 1;
                        on_block(&s, &b).await;
                    }
                    _ => break,
                }
            }
        }
        tokio::select! {
            _ = stop.wait_for(|v| *v) => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

async fn on_block(s: &Shared, b: &Block) {
    let summary = block_json(b, false);
    {
        let mut r = lock(&s.recent);
        r.push_front(summary.clone());
        r.truncate(RECENT_BLOCKS);
    }
    s.metrics.observe_block(b);
    if let Ok(st) = s.client.status().await {
        s.metrics.set_mempool(st.mempool_size);
    }
    let _ = s.events.send(("block", summary.to_string()));
    // Task changes: every event that names a task, once per task and block.
    let mut changed: BTreeMap<u64, Vec<String>> = BTreeMap::new();
    let all = b
        .txs
        .iter()
        .filter(|t| t.code == 0)
        .flat_map(|t| t.events.iter())
        .chain(b.events.iter());
    for e in all {
        if let Some(id) = attr(e, "task_id").and_then(|v| v.parse::<u64>().ok()) {
            changed
                .entry(id)
                .or_default()
                .push(short_type(&e.r#type).to_string());
        }
    }
    for (id, kinds) in &changed {
        let _ = s.events.send((
            "task",
            json!({"task_id": id, "height": b.height, "events": kinds}).to_string(),
        ));
    }
    if !changed.is_empty() || s.metrics.tasks_stale() {
        refresh_task_metrics(s).await;
    }
}

fn attr<'a>(e: &'a proto::node::v1::Event, key: &str) -> Option<&'a str> {
    e.attributes
        .iter()
        .find(|a| a.key == key)
        .map(|a| a.value.trim_matches('"'))
}

/// `veritrain.tasks.v1.EventTaskClaimed` → `EventTaskClaimed`.
fn short_type(t: &str) -> &str {
    t.rsplit('.').next().unwrap_or(t)
}

async fn refresh_task_metrics(s: &Shared) {
    let Ok(all) = all_tasks(&s.client, 0).await else {
        return;
    };
    let mut by_status: BTreeMap<&'static str, i64> = BTreeMap::new();
    let mut open_disputes = 0;
    for t in &all {
        *by_status.entry(status_name(t.status)).or_default() += 1;
        if t.open_dispute != 0 {
            open_disputes += 1;
        }
    }
    s.metrics.set_tasks(&by_status, open_disputes);
}

fn metrics_response(s: &Shared) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
        .into_response()
}

fn explorer_router(s: Arc<Shared>) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { page(INDEX_HTML, "text/html; charset=utf-8") }),
        )
        .route(
            "/app.js",
            get(|| async { page(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/style.css",
            get(|| async { page(STYLE_CSS, "text/css; charset=utf-8") }),
        )
        .route(
            "/metrics",
            get(|State(s): State<Arc<Shared>>| async move { metrics_response(&s) }),
        )
        .route("/api", get(|| async { json_ok(api_index()) }))
        .route("/api/status", get(api_status))
        .route("/api/blocks", get(api_blocks))
        .route("/api/blocks/{height}", get(api_block))
        .route("/api/txs/{hash}", get(api_tx))
        .route("/api/tasks", get(api_tasks))
        .route("/api/tasks/{id}", get(api_task))
        .route("/api/disputes", get(api_disputes))
        .route("/api/disputes/{id}", get(api_dispute))
        .route("/api/leaderboard", get(api_leaderboard))
        .route("/api/accounts/{address}", get(api_account))
        .route("/api/events", get(api_events))
        .fallback(|| async {
            json_err(
                StatusCode::NOT_FOUND,
                "no such page; GET /api lists the endpoints",
            )
        })
        .with_state(s)
}

fn page(body: &'static str, ctype: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, ctype),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

fn json_ok(v: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        serde_json::to_string_pretty(&v).unwrap_or_default(),
    )
        .into_response()
}

fn json_err(code: StatusCode, msg: impl std::fmt::Display) -> Response {
    (
        code,
        [(header::CONTENT_TYPE, "application/json")],
        json!({"error": msg.to_string()}).to_string(),
    )
        .into_response()
}

/// A gRPC error as HTTP: not found → 404, bad argument → 400, else 502.
fn grpc_err(e: tonic::Status) -> Response {
    let code = match e.code() {
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
        _ => StatusCode::BAD_GATEWAY,
    };
    json_err(code, e.message())
}

fn query_map(q: Option<String>) -> BTreeMap<String, String> {
    q.unwrap_or_default()
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            (k.to_string(), v.replace('+', " "))
        })
        .collect()
}

fn num_param(q: &BTreeMap<String, String>, key: &str, default: u64) -> Result<u64, String> {
    match q.get(key) {
        None => Ok(default),
        Some(v) if v.is_empty() => Ok(default),
        Some(v) => v
            .parse()
            .map_err(|_| format!("{key}={v:?} is not a whole number")),
    }
}

fn api_index() -> Value {
    json!({
        "endpoints": [
            "GET /api/status", "GET /api/blocks?limit=N", "GET /api/blocks/{height}",
            "GET /api/txs/{hash}", "GET /api/tasks?status=S&limit=N&after=ID",
            "GET /api/tasks/{id}", "GET /api/disputes", "GET /api/disputes/{id}",
            "GET /api/leaderboard?role=solver|verifier", "GET /api/accounts/{address}",
            "GET /api/events (text/event-stream: block, task)", "GET /metrics",
        ],
        "docs": "app/README.md, section \"Explorer\"",
    })
}

pub fn status_name(s: i32) -> &'static str {
    match tasks_pb::TaskStatus::try_from(s).unwrap_or(tasks_pb::TaskStatus::Unspecified) {
        tasks_pb::TaskStatus::Unspecified => "unspecified",
        tasks_pb::TaskStatus::Open => "open",
        tasks_pb::TaskStatus::Claimed => "claimed",
        tasks_pb::TaskStatus::Committed => "committed",
        tasks_pb::TaskStatus::Finalized => "finalized",
        tasks_pb::TaskStatus::Cancelled => "cancelled",
        tasks_pb::TaskStatus::Failed => "failed",
        tasks_pb::TaskStatus::Expired => "expired",
    }
}

fn status_from_name(s: &str) -> Option<i32> {
    (0..=7).find(|i| status_name(*i) == s)
}

fn phase_name(p: i32) -> String {
    verde_pb::Phase::try_from(p)
        .map(|p| {
            p.as_str_name()
                .trim_start_matches("PHASE_")
                .to_ascii_lowercase()
                .replace('_', "-")
        })
        .unwrap_or_else(|_| format!("phase {p}"))
}

/// Message types of a raw transaction (`/veritrain.bank.v1.MsgSend` → `MsgSend`).
fn msg_types(raw: &[u8]) -> Vec<String> {
    let Ok(tx) = proto::tx::v1::TxRaw::decode(raw) else {
        return vec![];
    };
    let Ok(body) = proto::tx::v1::TxBody::decode(tx.body_bytes.as_slice()) else {
        return vec![];
    };
    body.messages
        .iter()
        .map(|m| short_type(&m.type_url).to_string())
        .collect()
}

fn events_json(es: &[proto::node::v1::Event]) -> Value {
    Value::Array(
        es.iter()
            .map(|e| {
                json!({
                    "type": e.r#type,
                    "attributes": e.attributes.iter()
                        .map(|a| (a.key.clone(), Value::String(a.value.trim_matches('"').to_string())))
                        .collect::<serde_json::Map<_, _>>(),
                })
            })
            .collect(),
    )
}

fn block_json(b: &Block, detail: bool) -> Value {
    let txs: Vec<Value> = b
        .txs
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let types = b.raw_txs.get(i).map(|r| msg_types(r)).unwrap_or_default();
            let mut v = json!({
                "hash": hex::encode_upper(&t.hash), "index": t.index, "code": t.code,
                "codespace": t.codespace, "types": types,
            });
            if detail {
                v["log"] = json!(t.log);
                v["events"] = events_json(&t.events);
            }
            v
        })
        .collect();
    let failed = b.txs.iter().filter(|t| t.code != 0).count();
    let mut v = json!({
        "height": b.height, "time_ms": b.time_ms, "app_hash": hex::encode_upper(&b.app_hash),
        "block_hash": hex::encode_upper(&b.block_hash), "tx_count": b.txs.len(),
        "failed_txs": failed, "txs": txs,
    });
    if detail {
        v["events"] = events_json(&b.events);
    }
    v
}

async fn api_status(State(s): State<Arc<Shared>>) -> Response {
    let st = match s.client.status().await {
        Ok(st) => st,
        Err(e) => return json_err(StatusCode::BAD_GATEWAY, e),
    };
    let validators = validators(&s, &st).await;
    let recent = lock(&s.recent).iter().take(20).cloned().collect::<Vec<_>>();
    // Mean block interval over the recent blocks.
    let times: Vec<i64> = recent
        .iter()
        .filter_map(|b| b["time_ms"].as_i64())
        .collect();
    let block_interval_s = match (times.first(), times.last()) {
        (Some(a), Some(b)) if times.len() > 1 => {
            Some((a - b) as f64 / 1000.0 / (times.len() - 1) as f64)
        }
        _ => None,
    };
    json_ok(json!({
        "chain_id": st.chain_id, "height": st.height, "app_hash": hex::encode_upper(&st.app_hash),
        "block_time_ms": st.block_time_ms, "block_interval_s": block_interval_s,
        "mode": st.mode, "mempool_size": st.mempool_size, "validators": validators,
        "recent_blocks": recent,
    }))
}

/// The validator set: CometBFT's (RPC `/validators`) under `start`; the
/// embedded dev chain is its own single proposer.
async fn validators(s: &Shared, st: &proto::node::v1::StatusResponse) -> Value {
    if let Some(rpc) = &s.comet_rpc {
        use tendermint_rpc::Client;
        if let Ok(c) = tendermint_rpc::HttpClient::new(rpc.as_str()) {
            let r = tokio::time::timeout(
                Duration::from_secs(2),
                c.validators(
                    tendermint::block::Height::default(),
                    tendermint_rpc::Paging::Default,
                ),
            )
            .await;
            if let Ok(Ok(v)) = r {
                return Value::Array(
                    v.validators
                        .iter()
                        .map(
                            |v| json!({"address": v.address.to_string(), "power": v.power.value()}),
                        )
                        .collect(),
                );
            }
        }
        return json!([]);
    }
    json!([{"address": format!("{} (embedded dev chain)", st.chain_id), "power": 1}])
}

async fn api_blocks(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let q = query_map(q);
    let limit = match num_param(&q, "limit", 20) {
        Ok(l) => l.clamp(1, RECENT_BLOCKS as u64) as usize,
        Err(e) => return json_err(StatusCode::BAD_REQUEST, e),
    };
    let blocks: Vec<Value> = lock(&s.recent).iter().take(limit).cloned().collect();
    json_ok(json!({ "blocks": blocks }))
}

async fn api_block(State(s): State<Arc<Shared>>, Path(height): Path<String>) -> Response {
    let Ok(h) = height.parse::<u64>() else {
        return json_err(
            StatusCode::BAD_REQUEST,
            format!("{height:?} is not a block height"),
        );
    };
    if h == 0 {
        return json_err(StatusCode::BAD_REQUEST, "heights start at 1");
    }
    match s.client.status().await {
        Ok(st) if st.height < h => {
            return json_err(
                StatusCode::NOT_FOUND,
                format!("block {h} is not committed yet (height {})", st.height),
            )
        }
        Err(e) => return json_err(StatusCode::BAD_GATEWAY, e),
        Ok(_) => {}
    }
    let r = s
        .client
        .node()
        .stream_blocks(proto::node::v1::StreamBlocksRequest { from_height: h })
        .await;
    let mut stream = match r {
        Ok(r) => r.into_inner(),
        Err(e) => return grpc_err(e),
    };
    match stream.message().await {
        Ok(Some(b)) if b.height == h => json_ok(block_json(&b, true)),
        Ok(_) => json_err(StatusCode::NOT_FOUND, format!("block {h} is not stored")),
        Err(e) => grpc_err(e),
    }
}

async fn api_tx(State(s): State<Arc<Shared>>, Path(hash): Path<String>) -> Response {
    let Ok(h) = hex::decode(hash.trim()) else {
        return json_err(StatusCode::BAD_REQUEST, format!("{hash:?} is not hex"));
    };
    match s
        .client
        .node()
        .get_tx(proto::node::v1::GetTxRequest { hash: h })
        .await
    {
        Ok(r) => {
            let t = r.into_inner().result.unwrap_or_default();
            json_ok(json!({
                "hash": hex::encode_upper(&t.hash), "height": t.height, "index": t.index,
                "code": t.code, "codespace": t.codespace, "log": t.log, "events": events_json(&t.events),
            }))
        }
        Err(e) => grpc_err(e),
    }
}

/// Every task (up to [`SCAN_LIMIT`]) of one status (0 = all).
async fn all_tasks(c: &NodeClient, status: i32) -> Result<Vec<tasks_pb::Task>, tonic::Status> {
    let mut q = tasks_pb::query_client::QueryClient::new(c.channel());
    let mut out = Vec::new();
    let mut key = vec![];
    loop {
        let r = q
            .tasks(tasks_pb::QueryTasksRequest {
                status,
                pagination: Some(proto::base::v1::PageRequest {
                    key: key.clone(),
                    limit: 500,
                }),
            })
            .await?
            .into_inner();
        out.extend(r.tasks);
        key = r.pagination.map(|p| p.next_key).unwrap_or_default();
        if key.is_empty() || out.len() as u64 >= SCAN_LIMIT {
            return Ok(out);
        }
    }
}

/// Every dispute (ids are consecutive from 1), up to [`SCAN_LIMIT`].
async fn all_disputes(c: &NodeClient) -> Result<Vec<verde_pb::Dispute>, tonic::Status> {
    let mut q = verde_pb::query_client::QueryClient::new(c.channel());
    let mut out = Vec::new();
    for id in 1..=SCAN_LIMIT {
        match q
            .dispute(verde_pb::QueryDisputeRequest { dispute_id: id })
            .await
        {
            Ok(r) => out.extend(r.into_inner().dispute),
            Err(e) if e.code() == tonic::Code::NotFound => break,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

fn program_name(t: &tasks_pb::Task) -> String {
    serde_json::from_slice::<Value>(&t.program_json)
        .ok()
        .and_then(|v| v["name"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// The task's verification level in words ("full", "sampled 200 bps").
fn level_name(t: &tasks_pb::Task) -> String {
    if t.verification_level == tasks_pb::VerificationLevel::Sampled as i32 {
        format!("sampled ({} bps of the steps)", t.sample_bps)
    } else {
        "full re-execution".into()
    }
}

fn task_row(t: &tasks_pb::Task) -> Value {
    json!({
        "id": t.id, "status": status_name(t.status), "program": program_name(t),
        "steps": t.steps, "submitter": t.submitter, "solver": t.solver, "reward": t.reward,
        "verification_fee": t.verification_fee, "submitted_height": t.submitted_height,
        "open_dispute": t.open_dispute, "open_disputes": t.open_disputes, "note": t.note,
        "verification_level": level_name(t), "guarantee": t.guarantee,
    })
}

async fn api_tasks(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let q = query_map(q);
    let status = match q.get("status").map(String::as_str) {
        None | Some("") | Some("all") => 0,
        Some(name) => match status_from_name(name) {
            Some(st) => st,
            None => {
                return json_err(
                    StatusCode::BAD_REQUEST,
                    format!("unknown status {name:?}: open, claimed, committed, finalized, cancelled, failed or expired"),
                )
            }
        },
    };
    let (limit, after) = match (num_param(&q, "limit", 100), num_param(&q, "after", 0)) {
        (Ok(l), Ok(a)) => (l.clamp(1, 1000), a),
        (Err(e), _) | (_, Err(e)) => return json_err(StatusCode::BAD_REQUEST, e),
    };
    let role_filter = q.get("address").cloned().filter(|a| !a.is_empty());
    let mut tq = tasks_pb::query_client::QueryClient::new(s.client.channel());
    let r = tq.tasks(client::tasks_page(status, after, limit)).await;
    match r {
        Ok(r) => {
            let r = r.into_inner();
            let next = r
                .pagination
                .and_then(|p| <[u8; 8]>::try_from(p.next_key.as_slice()).ok())
                .map(u64::from_be_bytes);
            let tasks: Vec<Value> = r
                .tasks
                .iter()
                .filter(|t| match &role_filter {
                    None => true,
                    Some(a) => involves(t, a),
                })
                .map(task_row)
                .collect();
            json_ok(json!({"tasks": tasks, "next_after": next}))
        }
        Err(e) => grpc_err(e),
    }
}

fn involves(t: &tasks_pb::Task, a: &str) -> bool {
    t.submitter == a || t.solver == a || t.verifiers.iter().any(|v| v == a)
}

/// Bytes fields as hex; a heavy or private field dropped.
fn hexify(v: &mut Value, bytes_fields: &[&str], drop: &[&str]) {
    if let Some(o) = v.as_object_mut() {
        for k in drop {
            o.remove(*k);
        }
        for k in bytes_fields {
            if let Some(Value::Array(a)) = o.get(*k) {
                let b: Vec<u8> = a
                    .iter()
                    .filter_map(|x| x.as_u64().and_then(|n| u8::try_from(n).ok()))
                    .collect();
                o.insert((*k).to_string(), Value::String(hex::encode(b)));
            }
        }
    }
}

const TASK_BYTES: &[&str] = &[
    "program_hash",
    "dataset_root",
    "trace_root",
    "final_state_hash",
];
const DISPUTE_BYTES: &[&str] = &[
    "h_lo",
    "h_hi",
    "h_mid",
    "solver_op_root",
    "challenger_op_root",
    "solver_node",
    "challenger_node",
    "solver_children",
    "challenger_children",
    "solver_output",
    "challenger_output",
];

/// The stages a task went through, with their heights (0: not reached).
fn timeline(t: &tasks_pb::Task, disputes: &[verde_pb::Dispute]) -> Value {
    let st = status_name(t.status);
    let mut stages =
        vec![json!({"stage": "submitted", "height": t.submitted_height, "who": t.submitter})];
    if t.claimed_height > 0 {
        stages.push(json!({"stage": "claimed", "height": t.claimed_height, "who": t.solver}));
    }
    if t.committed_height > 0 {
        stages.push(json!({"stage": "committed", "height": t.committed_height, "who": t.solver}));
    }
    for a in &t.attestations {
        stages.push(json!({"stage": "verified", "height": a.height, "who": a.verifier}));
    }
    for d in disputes {
        stages.push(json!({"stage": "disputed", "height": d.opened_height, "who": d.challenger, "dispute_id": d.id}));
        if d.resolved_height > 0 {
            stages.push(json!({"stage": "dispute resolved", "height": d.resolved_height, "dispute_id": d.id, "outcome": d.outcome}));
        }
    }
    match st {
        "finalized" | "failed" | "cancelled" | "expired" => {
            stages.push(json!({"stage": st, "height": Value::Null, "note": t.note}))
        }
        _ => {}
    }
    Value::Array(stages)
}

async fn api_task(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return json_err(StatusCode::BAD_REQUEST, format!("{id:?} is not a task id"));
    };
    let mut q = tasks_pb::query_client::QueryClient::new(s.client.channel());
    let r = match q.task(tasks_pb::QueryTaskRequest { task_id: id }).await {
        Ok(r) => r.into_inner(),
        Err(e) => return grpc_err(e),
    };
    let t = r.task.unwrap_or_default();
    let disputes: Vec<verde_pb::Dispute> = match all_disputes(&s.client).await {
        Ok(ds) => ds.into_iter().filter(|d| d.task_id == id).collect(),
        Err(e) => return grpc_err(e),
    };
    let mut v = serde_json::to_value(&t).unwrap_or_default();
    hexify(&mut v, TASK_BYTES, &["program_json"]);
    v["status"] = json!(status_name(t.status));
    v["program"] = json!(program_name(&t));
    v["verification_level"] = json!(level_name(&t));
    // Why the solver's reward is zero: the chain's note, unless it was paid.
    let zero_reward_why = if t.status != tasks_pb::TaskStatus::Finalized as i32
        || !t.payouts.iter().any(|p| p.recipient == t.solver)
    {
        t.note.clone()
    } else {
        String::new()
    };
    v["reward_note"] = json!(zero_reward_why);
    json_ok(json!({
        "task": v,
        "summary": r.summary,
        "timeline": timeline(&t, &disputes),
        "disputes": disputes.iter().map(dispute_row).collect::<Vec<_>>(),
    }))
}

fn dispute_row(d: &verde_pb::Dispute) -> Value {
    json!({
        "id": d.id, "task_id": d.task_id, "challenger": d.challenger, "solver": d.solver,
        "phase": phase_name(d.phase), "lo": d.lo, "hi": d.hi, "node": d.node, "op_kind": d.op_kind,
        "rounds": d.rounds, "outcome": d.outcome, "slashed": d.slashed,
        "opened_height": d.opened_height, "resolved_height": d.resolved_height,
    })
}

/// `(lo, hi]` in a transcript line (`open on steps (0, 300]`, `…: interval (150, 300]`).
fn interval_in(action: &str) -> Option<(u64, u64)> {
    let open = action.rfind('(')?;
    let rest = &action[open + 1..];
    let close = rest.find(']')?;
    let (lo, hi) = rest[..close].split_once(',')?;
    Some((lo.trim().parse().ok()?, hi.trim().parse().ok()?))
}

/// `reveal level L node I` in a transcript line.
fn descent_in(action: &str) -> Option<(u64, u64)> {
    let rest = action.strip_prefix("reveal level ")?;
    let (l, n) = rest.split_once(" node ")?;
    Some((l.trim().parse().ok()?, n.trim().parse().ok()?))
}

async fn api_disputes(State(s): State<Arc<Shared>>) -> Response {
    match all_disputes(&s.client).await {
        Ok(ds) => {
            json_ok(json!({"disputes": ds.iter().rev().map(dispute_row).collect::<Vec<_>>()}))
        }
        Err(e) => grpc_err(e),
    }
}

async fn api_dispute(State(s): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<u64>() else {
        return json_err(
            StatusCode::BAD_REQUEST,
            format!("{id:?} is not a dispute id"),
        );
    };
    let mut q = verde_pb::query_client::QueryClient::new(s.client.channel());
    let d = match q
        .dispute(verde_pb::QueryDisputeRequest { dispute_id: id })
        .await
    {
        Ok(r) => r.into_inner().dispute.unwrap_or_default(),
        Err(e) => return grpc_err(e),
    };
    let intervals: Vec<Value> = d
        .transcript
        .iter()
        .filter_map(|m| {
            interval_in(&m.action).map(|(lo, hi)| {
                json!({"height": m.height, "actor": m.actor, "lo": lo, "hi": hi, "width": hi.saturating_sub(lo)})
            })
        })
        .collect();
    let descent: Vec<Value> = d
        .transcript
        .iter()
        .filter_map(|m| {
            descent_in(&m.action)
                .map(|(l, i)| json!({"height": m.height, "actor": m.actor, "level": l, "index": i}))
        })
        .collect();
    let mut v = serde_json::to_value(&d).unwrap_or_default();
    hexify(&mut v, DISPUTE_BYTES, &["inputs", "rows"]);
    v["phase"] = json!(phase_name(d.phase));
    // The outcome reads "solver wins: …" or "challenger wins: …"; the loser pays.
    let (winner, loser) = if d.outcome.starts_with("solver wins") {
        ("solver", Some(&d.challenger))
    } else if d.outcome.starts_with("challenger wins") {
        ("challenger", Some(&d.solver))
    } else {
        ("", None)
    };
    json_ok(json!({
        "dispute": v,
        "intervals": intervals,
        "descent": descent,
        "found": (d.node > 0 || !d.op_kind.is_empty()).then(|| json!({"step": d.hi, "node": d.node, "op_kind": d.op_kind})),
        "verdict": {"outcome": d.outcome, "winner": winner, "referee_output": d.referee_output,
                    "slashed": d.slashed, "slashed_party": loser},
    }))
}

async fn api_leaderboard(State(s): State<Arc<Shared>>, RawQuery(q): RawQuery) -> Response {
    let q = query_map(q);
    let role = match q.get("role").map(String::as_str) {
        None | Some("") | Some("all") => staking_pb::Role::Unspecified,
        Some("solver") => staking_pb::Role::Solver,
        Some("verifier") => staking_pb::Role::Verifier,
        Some(r) => {
            return json_err(
                StatusCode::BAD_REQUEST,
                format!("unknown role {r:?}: solver, verifier or all"),
            )
        }
    };
    let mut tq = tasks_pb::query_client::QueryClient::new(s.client.channel());
    match tq
        .leaderboard(tasks_pb::QueryLeaderboardRequest {
            pagination: Some(proto::base::v1::PageRequest {
                key: vec![],
                limit: 1000,
            }),
            role: role as i32,
        })
        .await
    {
        Ok(r) => {
            let mut ops = r.into_inner().operators;
            ops.sort_by(|a, b| {
                let (x, y) = (
                    a.rewards.parse::<u128>().unwrap_or(0),
                    b.rewards.parse::<u128>().unwrap_or(0),
                );
                y.cmp(&x).then(a.operator.cmp(&b.operator))
            });
            json_ok(json!({
                "role": q.get("role").cloned().unwrap_or_else(|| "all".into()),
                "operators": ops,
                // Swarms do not exist yet; per-swarm boards come with them.
                "swarms": [],
            }))
        }
        Err(e) => grpc_err(e),
    }
}

async fn api_account(State(s): State<Arc<Shared>>, Path(address): Path<String>) -> Response {
    let a: framework::Address = match address.parse() {
        Ok(a) => a,
        Err(e) => {
            return json_err(
                StatusCode::BAD_REQUEST,
                format!("{address:?} is not an address: {e}"),
            )
        }
    };
    let balance = match s.client.balance(&a).await {
        Ok(b) => b.0.to_string(),
        Err(e) => return json_err(StatusCode::BAD_GATEWAY, e),
    };
    let account = s.client.account(&a).await.ok().flatten();
    let operator = s
        .client
        .staking()
        .operator(staking_pb::QueryOperatorRequest {
            address: address.clone(),
        })
        .await
        .ok()
        .and_then(|r| r.into_inner().operator);
    let tasks = match all_tasks(&s.client, 0).await {
        Ok(ts) => ts,
        Err(e) => return grpc_err(e),
    };
    let disputes = match all_disputes(&s.client).await {
        Ok(ds) => ds,
        Err(e) => return grpc_err(e),
    };
    json_ok(json!({
        "address": address,
        "balance": balance,
        "account": account.map(|acc| json!({"account_number": acc.account_number, "sequence": acc.sequence})),
        "operator": operator.map(|op| json!({
            "role": staking_pb::Role::try_from(op.role).map(|r| r.as_str_name().trim_start_matches("ROLE_").to_ascii_lowercase()).unwrap_or_default(),
            "stake": op.stake, "slashed_total": op.slashed_total, "registered_height": op.registered_height,
            "unbonding": op.unbonding.iter().map(|u| json!({"amount": u.amount, "completion_height": u.completion_height})).collect::<Vec<_>>(),
        })),
        "tasks": tasks.iter().filter(|t| involves(t, &address)).map(task_row).collect::<Vec<_>>(),
        "disputes": disputes.iter().filter(|d| d.challenger == address || d.solver == address).map(dispute_row).collect::<Vec<_>>(),
    }))
}

async fn api_events(
    State(s): State<Arc<Shared>>,
) -> Sse<impl futures::Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = s.events.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        loop {
            match rx.recv().await {
                Ok((name, data)) => {
                    return Some((Ok(SseEvent::default().event(name).data(data)), rx));
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_and_descent_are_read_from_transcript_lines() {
        assert_eq!(
            interval_in("open on steps (0, 300] with bond 5uvtr"),
            Some((0, 300))
        );
        assert_eq!(
            interval_in("disagree with h_150: interval (0, 150]"),
            Some((0, 150))
        );
        assert_eq!(interval_in("op root of step 3 = abcd"), None);
        assert_eq!(descent_in("reveal level 2 node 5"), Some((2, 5)));
        assert_eq!(descent_in("reveal h_5 = 00"), None);
    }

    #[test]
    fn query_strings_parse_and_bad_numbers_are_refused() {
        let q = query_map(Some("status=open&limit=5&x".into()));
        assert_eq!(q["status"], "open");
        assert_eq!(num_param(&q, "limit", 1).ok(), Some(5));
        assert_eq!(num_param(&q, "after", 7).ok(), Some(7));
        let q = query_map(Some("limit=lots".into()));
        assert!(num_param(&q, "limit", 1).is_err());
    }

    #[test]
    fn every_status_name_round_trips() {
        for i in 1..=7 {
            assert_eq!(status_from_name(status_name(i)), Some(i));
        }
    }
}
