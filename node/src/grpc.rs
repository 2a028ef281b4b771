//! The node's gRPC API: `veritrain.node.v1.Node` and every module's `Query`
//! service, plus server reflection and the standard health service.
//!
//! Queries read the last committed state. Broadcasting goes to the embedded
//! dev chain's mempool or to CometBFT's RPC, behind [`Broadcaster`].
use crate::abci::App;
use crate::devchain::DevChain;
use auth::AuthRead;
use bank::BankRead;
use framework::Address;
use prost::Message;
use proto::node::v1::{
    node_server::{Node, NodeServer},
    Block, BroadcastTxRequest, BroadcastTxResponse, GetTxRequest, GetTxResponse, StatusRequest,
    StatusResponse, StreamBlocksRequest, TxResult,
};
use proto::swarm::v1 as swarm_pb;
use proto::{
    auth::v1 as auth_pb, bank::v1 as bank_pb, staking::v1 as staking_pb, tasks::v1 as tasks_pb,
    verde::v1 as verde_pb,
};
use staking::StakingRead;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use swarm::SwarmRead;
use tasks::TasksRead;
use tokio_stream::Stream;
use tonic::{Request, Response, Status};
use verde::VerdeRead;

/// Where `BroadcastTx` sends transactions.
#[tonic::async_trait]
pub trait Broadcaster: Send + Sync + 'static {
    async fn broadcast(&self, tx: Vec<u8>) -> Result<BroadcastTxResponse, Status>;
    fn mempool_size(&self) -> u64;
    fn mode(&self) -> &'static str;
}

#[tonic::async_trait]
impl Broadcaster for Arc<DevChain> {
    async fn broadcast(&self, tx: Vec<u8>) -> Result<BroadcastTxResponse, Status> {
        let hash = auth::tx::tx_hash(&tx).to_vec();
        let me = self.clone();
        let r = tokio::task::spawn_blocking(move || me.submit(tx))
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        Ok(BroadcastTxResponse {
            hash,
            code: r.code,
            codespace: r.codespace,
            log: r.log,
        })
    }
    fn mempool_size(&self) -> u64 {
        DevChain::mempool_size(self) as u64
    }
    fn mode(&self) -> &'static str {
        "dev"
    }
}

/// Broadcasts through CometBFT's RPC (`broadcast_tx_sync`: CheckTx result).
pub struct CometBroadcaster {
    pub client: tendermint_rpc::HttpClient,
}

#[tonic::async_trait]
impl Broadcaster for CometBroadcaster {
    async fn broadcast(&self, tx: Vec<u8>) -> Result<BroadcastTxResponse, Status> {
        use tendermint_rpc::Client;
        let hash = auth::tx::tx_hash(&tx).to_vec();
        let r = self
            .client
            .broadcast_tx_sync(tx)
            .await
            .map_err(|e| Status::unavailable(format!("CometBFT RPC: {e}")))?;
        Ok(BroadcastTxResponse {
            hash,
            code: r.code.value(),
            codespace: r.codespace,
            log: r.log,
        })
    }
    fn mempool_size(&self) -> u64 {
        0
    }
    fn mode(&self) -> &'static str {
        "cometbft"
    }
}

fn internal(e: impl std::fmt::Display) -> Status {
    Status::internal(e.to_string())
}

fn parse_address(s: &str) -> Result<Address, Status> {
    if s.is_empty() {
        return Err(Status::invalid_argument("address is required"));
    }
    s.parse()
        .map_err(|e: framework::AddressError| Status::invalid_argument(e.to_string()))
}

#[derive(Clone)]
pub struct NodeService {
    app: App,
    broadcaster: Arc<dyn Broadcaster>,
    /// Ends open block streams when the node shuts down (graceful shutdown
    /// would otherwise wait for them forever).
    stop: tokio::sync::watch::Receiver<bool>,
}

type BlockStream = Pin<Box<dyn Stream<Item = Result<Block, Status>> + Send>>;

#[tonic::async_trait]
impl Node for NodeService {
    async fn broadcast_tx(
        &self,
        req: Request<BroadcastTxRequest>,
    ) -> Result<Response<BroadcastTxResponse>, Status> {
        let tx = req.into_inner().tx;
        if tx.is_empty() {
            return Err(Status::invalid_argument("tx is empty"));
        }
        self.broadcaster.broadcast(tx).await.map(Response::new)
    }

    async fn get_tx(&self, req: Request<GetTxRequest>) -> Result<Response<GetTxResponse>, Status> {
        let h = req.into_inner().hash;
        if h.len() != 32 {
            return Err(Status::invalid_argument(format!(
                "hash is {} bytes, expected 32",
                h.len()
            )));
        }
        match self.app.store().tx_result(&h).map_err(internal)? {
            None => Err(Status::not_found(format!(
                "transaction {} is not in a committed block",
                hex::encode_upper(&h)
            ))),
            Some(b) => Ok(Response::new(GetTxResponse {
                result: Some(TxResult::decode(b.as_slice()).map_err(internal)?),
            })),
        }
    }

    async fn status(
        &self,
        _req: Request<StatusRequest>,
    ) -> Result<Response<StatusResponse>, Status> {
        let m = self.app.last_commit().unwrap_or_default();
        Ok(Response::new(StatusResponse {
            chain_id: self.app.chain_id(),
            height: m.height,
            app_hash: m.app_hash.to_vec(),
            block_time_ms: m.time_ms,
            mode: self.broadcaster.mode().into(),
            mempool_size: self.broadcaster.mempool_size(),
        }))
    }

    async fn estimate_fee(
        &self,
        req: Request<proto::node::v1::EstimateFeeRequest>,
    ) -> Result<Response<proto::node::v1::EstimateFeeResponse>, Status> {
        let r = req.into_inner();
        let msgs = r
            .messages
            .iter()
            .map(|bytes| {
                let any = prost_types::Any::decode(bytes.as_slice()).map_err(|e| {
                    Status::invalid_argument(format!("a message is not an Any: {e}"))
                })?;
                runtime::Msg::from_any(&any).map_err(|e| Status::invalid_argument(e.to_string()))
            })
            .collect::<Result<Vec<_>, Status>>()?;
        let units = runtime::Msg::total_work_units(&msgs);
        let params = self.app.store().auth_params().map_err(internal)?;
        let len = usize::try_from(r.tx_bytes).unwrap_or(usize::MAX);
        let fee = auth::required_fee(&params, len, units).map_err(internal)?;
        Ok(Response::new(proto::node::v1::EstimateFeeResponse {
            fee: fee.0.to_string(),
            work_units: units,
        }))
    }

    type StreamBlocksStream = BlockStream;

    async fn stream_blocks(
        &self,
        req: Request<StreamBlocksRequest>,
    ) -> Result<Response<BlockStream>, Status> {
        let from = req.into_inner().from_height;
        // Subscribe first, then replay history, then skip what was replayed.
        let mut live = self.app.subscribe();
        let store = self.app.store().clone();
        let last = self.app.last_commit().map(|m| m.height).unwrap_or(0);
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Block, Status>>(64);
        let mut stop = self.stop.clone();
        tokio::spawn(async move {
            let mut next = if from == 0 { last + 1 } else { from };
            while next <= last {
                let b = match store.block(next) {
                    Ok(Some(b)) => Block::decode(b.as_slice()).map_err(internal),
                    Ok(None) => Err(Status::not_found(format!("block {next} is not stored"))),
                    Err(e) => Err(internal(e)),
                };
                let stop = b.is_err();
                if tx.send(b).await.is_err() || stop {
                    return;
                }
                next += 1;
            }
            loop {
                let next_block = tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    b = live.recv() => b,
                };
                match next_block {
                    Ok(b) if b.height < next => continue,
                    Ok(b) => {
                        next = b.height + 1;
                        if tx.send(Ok((*b).clone())).await.is_err() {
                            return;
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                        // Catch up from the store.
                        let last = store.meta().ok().flatten().map(|m| m.height).unwrap_or(0);
                        while next <= last {
                            let Ok(Some(b)) = store.block(next) else {
                                return;
                            };
                            let Ok(b) = Block::decode(b.as_slice()) else {
                                return;
                            };
                            if tx.send(Ok(b)).await.is_err() {
                                return;
                            }
                            next += 1;
                        }
                    }
                    Err(_) => return,
                }
            }
        });
        Ok(Response::new(Box::pin(
            tokio_stream::wrappers::ReceiverStream::new(rx),
        )))
    }
}

#[derive(Clone)]
pub struct AuthQuery(App);

#[tonic::async_trait]
impl auth_pb::query_server::Query for AuthQuery {
    async fn account(
        &self,
        req: Request<auth_pb::QueryAccountRequest>,
    ) -> Result<Response<auth_pb::QueryAccountResponse>, Status> {
        let a = parse_address(&req.into_inner().address)?;
        match self.0.store().account(&a).map_err(internal)? {
            None => Err(Status::not_found(format!(
                "account {a} does not exist: it has never received funds"
            ))),
            Some(acct) => Ok(Response::new(auth_pb::QueryAccountResponse {
                account: Some(auth_pb::BaseAccount {
                    address: acct.address.to_string(),
                    public_key: acct.public_key.map(|k| k.to_vec()).unwrap_or_default(),
                    account_number: acct.account_number,
                    sequence: acct.sequence,
                }),
            })),
        }
    }

    async fn params(
        &self,
        _req: Request<auth_pb::QueryParamsRequest>,
    ) -> Result<Response<auth_pb::QueryParamsResponse>, Status> {
        Ok(Response::new(auth_pb::QueryParamsResponse {
            params: Some(self.0.store().auth_params().map_err(internal)?),
        }))
    }
}

#[derive(Clone)]
pub struct BankQuery(App);

#[tonic::async_trait]
impl bank_pb::query_server::Query for BankQuery {
    async fn balance(
        &self,
        req: Request<bank_pb::QueryBalanceRequest>,
    ) -> Result<Response<bank_pb::QueryBalanceResponse>, Status> {
        let a = parse_address(&req.into_inner().address)?;
        let b = self.0.store().balance(&a).map_err(internal)?;
        Ok(Response::new(bank_pb::QueryBalanceResponse {
            balance: Some(crate::testkit::coin(b)),
        }))
    }

    async fn total_supply(
        &self,
        _req: Request<bank_pb::QueryTotalSupplyRequest>,
    ) -> Result<Response<bank_pb::QueryTotalSupplyResponse>, Status> {
        let s = self.0.store().total_supply().map_err(internal)?;
        Ok(Response::new(bank_pb::QueryTotalSupplyResponse {
            supply: Some(crate::testkit::coin(s)),
        }))
    }
}

#[derive(Clone)]
pub struct StakingQuery(App);

const MAX_PAGE: u64 = 1000;

#[tonic::async_trait]
impl staking_pb::query_server::Query for StakingQuery {
    async fn operator(
        &self,
        req: Request<staking_pb::QueryOperatorRequest>,
    ) -> Result<Response<staking_pb::QueryOperatorResponse>, Status> {
        let a = parse_address(&req.into_inner().address)?;
        match self.0.store().operator(&a).map_err(internal)? {
            None => Err(Status::not_found(format!(
                "{a} is not a registered operator"
            ))),
            Some(op) => Ok(Response::new(staking_pb::QueryOperatorResponse {
                operator: Some(op.to_proto()),
            })),
        }
    }

    async fn operators(
        &self,
        req: Request<staking_pb::QueryOperatorsRequest>,
    ) -> Result<Response<staking_pb::QueryOperatorsResponse>, Status> {
        let r = req.into_inner();
        let role = role_filter(r.role)?;
        let (limit, after) = address_page(r.pagination)?;
        // One more than asked tells whether there is a next page.
        let mut ops = self
            .0
            .store()
            .operators(role, after.as_ref(), limit + 1)
            .map_err(internal)?;
        let next_key = if ops.len() > limit {
            ops.truncate(limit);
            ops.last().map(|o| o.address.0.to_vec()).unwrap_or_default()
        } else {
            vec![]
        };
        Ok(Response::new(staking_pb::QueryOperatorsResponse {
            operators: ops.iter().map(staking::Operator::to_proto).collect(),
            pagination: Some(proto::base::v1::PageResponse { next_key }),
        }))
    }

    async fn params(
        &self,
        _req: Request<staking_pb::QueryParamsRequest>,
    ) -> Result<Response<staking_pb::QueryParamsResponse>, Status> {
        Ok(Response::new(staking_pb::QueryParamsResponse {
            params: Some(
                self.0
                    .store()
                    .staking_params()
                    .map_err(internal)?
                    .to_proto(),
            ),
        }))
    }
}

#[derive(Clone)]
pub struct TasksQuery(App);

fn page_limit(limit: u64) -> Result<usize, Status> {
    match limit {
        0 => Ok(100),
        n if n > MAX_PAGE => Err(Status::invalid_argument(format!(
            "limit {n} exceeds {MAX_PAGE}"
        ))),
        n => Ok(n as usize),
    }
}

/// A role filter from a query (unspecified: every role).
fn role_filter(role: i32) -> Result<Option<staking::Role>, Status> {
    match staking_pb::Role::try_from(role) {
        Ok(staking_pb::Role::Unspecified) => Ok(None),
        Ok(_) => Ok(staking::Role::from_proto(role)),
        Err(_) => Err(Status::invalid_argument(format!("unknown role {role}"))),
    }
}

/// The limit and the address to continue after, of a page keyed by address.
fn address_page(
    p: Option<proto::base::v1::PageRequest>,
) -> Result<(usize, Option<Address>), Status> {
    let page = p.unwrap_or_default();
    let limit = page_limit(page.limit)?;
    if page.key.is_empty() {
        return Ok((limit, None));
    }
    let after = Address::from_slice(&page.key)
        .ok_or_else(|| Status::invalid_argument("pagination key is not an address (20 bytes)"))?;
    Ok((limit, Some(after)))
}

fn after_id(key: &[u8]) -> Result<u64, Status> {
    if key.is_empty() {
        return Ok(0);
    }
    <[u8; 8]>::try_from(key)
        .map(u64::from_be_bytes)
        .map_err(|_| Status::invalid_argument("pagination key is not a task id (8 bytes)"))
}

fn tasks_status(e: tasks::TasksError) -> Status {
    match e {
        tasks::TasksError::NotFound(_) => Status::not_found(e.to_string()),
        e => internal(e),
    }
}

#[tonic::async_trait]
impl tasks_pb::query_server::Query for TasksQuery {
    async fn posted_checkpoint(
        &self,
        req: Request<tasks_pb::QueryPostedCheckpointRequest>,
    ) -> Result<Response<tasks_pb::QueryPostedCheckpointResponse>, Status> {
        let r = req.into_inner();
        let store = self.0.store();
        match tasks::query::posted_checkpoint(store, r.task_id, r.step).map_err(tasks_status)? {
            Some(checkpoint) => Ok(Response::new(tasks_pb::QueryPostedCheckpointResponse {
                checkpoint,
            })),
            None => Err(Status::not_found(format!(
                "task {} has no posted checkpoint of step {}",
                r.task_id, r.step
            ))),
        }
    }

    async fn task(
        &self,
        req: Request<tasks_pb::QueryTaskRequest>,
    ) -> Result<Response<tasks_pb::QueryTaskResponse>, Status> {
        let id = req.into_inner().task_id;
        if id == 0 {
            return Err(Status::invalid_argument(
                "task_id is required (ids start at 1)",
            ));
        }
        let store = self.0.store();
        let t = store.task(id).map_err(tasks_status)?;
        let h = self.0.last_commit().map(|m| m.height).unwrap_or(0);
        let mut summary = tasks::summary(&t, h);
        for &did in &t.open_disputes {
            if let Ok(d) = store.dispute(did) {
                summary.push_str(&format!(
                    "; dispute {} on steps ({}, {}], phase {}, move of {} by height {}",
                    d.id,
                    d.lo,
                    d.hi,
                    d.phase.name(),
                    match d.turn {
                        verde::Turn::Nobody => "nobody",
                        verde::Turn::Solver => "the solver",
                        verde::Turn::Challenger => "the challenger",
                        verde::Turn::Both => "both",
                    },
                    d.deadline
                ));
            }
        }
        Ok(Response::new(tasks_pb::QueryTaskResponse {
            task: Some(tasks::query::task_view(store, &t).map_err(tasks_status)?),
            summary,
        }))
    }

    async fn tasks(
        &self,
        req: Request<tasks_pb::QueryTasksRequest>,
    ) -> Result<Response<tasks_pb::QueryTasksResponse>, Status> {
        let r = req.into_inner();
        let status = match tasks_pb::TaskStatus::try_from(r.status) {
            Ok(tasks_pb::TaskStatus::Unspecified) => None,
            Ok(_) => tasks::Status::from_proto(r.status),
            Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "unknown status {}",
                    r.status
                )))
            }
        };
        let page = r.pagination.unwrap_or_default();
        let limit = page_limit(page.limit)?;
        let store = self.0.store();
        let mut ts = store
            .tasks(status, after_id(&page.key)?, limit + 1)
            .map_err(tasks_status)?;
        let next_key = if ts.len() > limit {
            ts.truncate(limit);
            ts.last()
                .map(|t| t.id.to_be_bytes().to_vec())
                .unwrap_or_default()
        } else {
            vec![]
        };
        let tasks = ts
            .iter()
            .map(|t| tasks::query::task_view(store, t))
            .collect::<Result<Vec<_>, _>>()
            .map_err(tasks_status)?;
        Ok(Response::new(tasks_pb::QueryTasksResponse {
            tasks,
            pagination: Some(proto::base::v1::PageResponse { next_key }),
        }))
    }

    async fn leaderboard(
        &self,
        req: Request<tasks_pb::QueryLeaderboardRequest>,
    ) -> Result<Response<tasks_pb::QueryLeaderboardResponse>, Status> {
        let r = req.into_inner();
        let role = role_filter(r.role)?;
        let (limit, after) = address_page(r.pagination)?;
        let (stats, next) = tasks::query::leaderboard(self.0.store(), role, after.as_ref(), limit)
            .map_err(tasks_status)?;
        let ops: Vec<tasks_pb::OperatorStats> = stats.iter().map(|s| s.to_proto()).collect();
        let next_key = next.map(|a| a.0.to_vec()).unwrap_or_default();
        Ok(Response::new(tasks_pb::QueryLeaderboardResponse {
            operators: ops,
            pagination: Some(proto::base::v1::PageResponse { next_key }),
        }))
    }

    async fn params(
        &self,
        _req: Request<tasks_pb::QueryParamsRequest>,
    ) -> Result<Response<tasks_pb::QueryParamsResponse>, Status> {
        Ok(Response::new(tasks_pb::QueryParamsResponse {
            params: Some(
                self.0
                    .store()
                    .tasks_params()
                    .map_err(tasks_status)?
                    .to_proto(),
            ),
        }))
    }
}

#[derive(Clone)]
pub struct VerdeQuery(App);

#[tonic::async_trait]
impl verde_pb::query_server::Query for VerdeQuery {
    async fn dispute(
        &self,
        req: Request<verde_pb::QueryDisputeRequest>,
    ) -> Result<Response<verde_pb::QueryDisputeResponse>, Status> {
        let id = req.into_inner().dispute_id;
        if id == 0 {
            return Err(Status::invalid_argument(
                "dispute_id is required (ids start at 1)",
            ));
        }
        match self.0.store().dispute(id) {
            Ok(d) => Ok(Response::new(verde_pb::QueryDisputeResponse {
                dispute: Some(d.to_proto()),
            })),
            Err(verde::VerdeError::NotFound(_)) => {
                Err(Status::not_found(format!("dispute {id} does not exist")))
            }
            Err(e) => Err(internal(e)),
        }
    }

    async fn params(
        &self,
        _req: Request<verde_pb::QueryParamsRequest>,
    ) -> Result<Response<verde_pb::QueryParamsResponse>, Status> {
        Ok(Response::new(verde_pb::QueryParamsResponse {
            params: Some(self.0.store().verde_params().map_err(internal)?.to_proto()),
        }))
    }
}

/// The Veritrain services this node serves; reflection lists only these (with
/// health and reflection itself). The `Msg` services only define transaction
/// messages, which go through `Node/BroadcastTx`; `veritrain.solver.v1` is
/// solverd's, and its file is left out entirely.
const SERVED: &[&str] = &[
    "veritrain.node.v1.Node",
    "veritrain.auth.v1.Query",
    "veritrain.bank.v1.Query",
    "veritrain.staking.v1.Query",
    "veritrain.tasks.v1.Query",
    "veritrain.verde.v1.Query",
];
const NOT_SERVED_PACKAGES: &[&str] = &["veritrain.solver.v1"];

/// The descriptors reflection answers from: every Veritrain file (messages
/// included, so clients can decode transactions) with only the services this
/// node serves, and gRPC health. Reflection's own is added by the builder.
pub fn reflection_descriptors() -> Result<Vec<prost_types::FileDescriptorSet>, prost::DecodeError> {
    let mut ours = prost_types::FileDescriptorSet::decode(proto::FILE_DESCRIPTOR_SET)?;
    ours.file
        .retain(|f| !NOT_SERVED_PACKAGES.contains(&f.package.as_deref().unwrap_or_default()));
    for f in &mut ours.file {
        let pkg = f.package.clone().unwrap_or_default();
        f.service
            .retain(|s| SERVED.contains(&format!("{pkg}.{}", s.name()).as_str()));
    }
    let health = prost_types::FileDescriptorSet::decode(tonic_health::pb::FILE_DESCRIPTOR_SET)?;
    Ok(vec![ours, health])
}

fn reflection_builder(
) -> Result<tonic_reflection::server::Builder<'static>, tonic_reflection::server::Error> {
    let sets = reflection_descriptors().map_err(tonic_reflection::server::Error::DecodeError)?;
    let mut b = tonic_reflection::server::Builder::configure();
    for s in sets {
        b = b.register_file_descriptor_set(s);
    }
    Ok(b)
}

/// Serves every service on `addr` until `stop` resolves. `bound` receives the
/// actual address (useful with port 0).
pub async fn serve(
    app: App,
    broadcaster: Arc<dyn Broadcaster>,
    listener: tokio::net::TcpListener,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<(), tonic::transport::Error> {
    // v1 and v1alpha: grpcurl speaks v1, Python's grpcio-reflection v1alpha.
    let reflection = reflection_builder()
        .and_then(|b| b.build_v1())
        .and_then(|v1| Ok((v1, reflection_builder()?.build_v1alpha()?)));
    let (health, health_svc) = tonic_health::server::health_reporter();
    health.set_serving::<NodeServer<NodeService>>().await;
    let node = NodeService {
        app: app.clone(),
        broadcaster,
        stop: stop.clone(),
    };
    // TCP_NODELAY: small HTTP/2 frames must not wait for delayed ACKs (40 ms stalls).
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    let mut builder = tonic::transport::Server::builder();
    let router = builder
        .add_service(health_svc)
        .add_service(NodeServer::new(node))
        .add_service(auth_pb::query_server::QueryServer::new(AuthQuery(
            app.clone(),
        )))
        .add_service(bank_pb::query_server::QueryServer::new(BankQuery(
            app.clone(),
        )))
        .add_service(staking_pb::query_server::QueryServer::new(StakingQuery(
            app.clone(),
        )))
        .add_service(tasks_pb::query_server::QueryServer::new(TasksQuery(
            app.clone(),
        )))
        .add_service(verde_pb::query_server::QueryServer::new(VerdeQuery(
            app.clone(),
        )))
        .add_service(swarm_pb::query_server::QueryServer::new(SwarmQuery(
            app.clone(),
        )));
    let router = match reflection {
        Ok((v1, v1alpha)) => router.add_service(v1).add_service(v1alpha),
        Err(e) => {
            tracing::warn!(error = %e, "gRPC reflection unavailable");
            router
        }
    };
    let mut stop = stop;
    router
        .serve_with_incoming_shutdown(incoming, async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await
}

#[derive(Clone)]
pub struct SwarmQuery(App);

fn swarm_status(e: swarm::SwarmError) -> Status {
    match e {
        swarm::SwarmError::NotFound(_) => Status::not_found(e.to_string()),
        e => Status::internal(e.to_string()),
    }
}

/// Most entries one swarm query returns.
const MAX_SWARM_PAGE: u32 = 200;

#[tonic::async_trait]
impl swarm_pb::query_server::Query for SwarmQuery {
    async fn swarm(
        &self,
        req: Request<swarm_pb::QuerySwarmRequest>,
    ) -> Result<Response<swarm_pb::QuerySwarmResponse>, Status> {
        let sw = self
            .0
            .store()
            .swarm(req.get_ref().swarm_id)
            .map_err(swarm_status)?;
        Ok(Response::new(swarm_pb::QuerySwarmResponse {
            swarm: Some(sw.to_proto()),
        }))
    }

    async fn swarms(
        &self,
        req: Request<swarm_pb::QuerySwarmsRequest>,
    ) -> Result<Response<swarm_pb::QuerySwarmsResponse>, Status> {
        let r = req.get_ref();
        let limit = r.limit.clamp(1, MAX_SWARM_PAGE) as usize;
        let swarms = self
            .0
            .store()
            .swarms(r.after, limit)
            .map_err(swarm_status)?;
        Ok(Response::new(swarm_pb::QuerySwarmsResponse {
            swarms: swarms.iter().map(|s| s.to_proto()).collect(),
        }))
    }

    async fn round(
        &self,
        req: Request<swarm_pb::QueryRoundRequest>,
    ) -> Result<Response<swarm_pb::QueryRoundResponse>, Status> {
        let r = req.get_ref();
        let round = self
            .0
            .store()
            .round(r.swarm_id, r.round)
            .map_err(swarm_status)?;
        Ok(Response::new(swarm_pb::QueryRoundResponse {
            round: Some(round.to_proto()),
        }))
    }

    async fn leaderboard(
        &self,
        req: Request<swarm_pb::QueryLeaderboardRequest>,
    ) -> Result<Response<swarm_pb::QueryLeaderboardResponse>, Status> {
        let r = req.get_ref();
        let limit = r.limit.clamp(1, MAX_SWARM_PAGE) as usize;
        let entries = self
            .0
            .store()
            .leaderboard(r.swarm_id, limit)
            .map_err(swarm_status)?;
        Ok(Response::new(swarm_pb::QueryLeaderboardResponse {
            entries,
        }))
    }

    async fn params(
        &self,
        _req: Request<swarm_pb::QueryParamsRequest>,
    ) -> Result<Response<swarm_pb::QueryParamsResponse>, Status> {
        Ok(Response::new(swarm_pb::QueryParamsResponse {
            params: Some(
                self.0
                    .store()
                    .swarm_params()
                    .map_err(swarm_status)?
                    .to_proto(),
            ),
        }))
    }
}

/// Binds a listener, with a clear error.
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}
