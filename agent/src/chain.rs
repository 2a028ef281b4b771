//! The daemons' view of the chain: typed queries, one signed transaction at a
//! time (so account sequences never collide), and a block ticker that
//! follows the node's `StreamBlocks` and reconnects when the node restarts.
use crate::AgentError;
use auth::Signer;
use client::NodeClient;
use framework::{Address, Amount};
use prost_types::Any;
use proto::base::v1::{Coin, PageRequest};
use proto::node::v1::{Block, StreamBlocksRequest, TxResult};
use proto::staking::v1 as staking_pb;
use proto::tasks::v1::{self as tasks_pb, TaskStatus};
use proto::verde::v1 as verde_pb;
use std::time::Duration;
use tonic::Code;

/// Largest total message size put into one transaction by [`Chain::send_all`].
const MAX_TX_PAYLOAD: usize = 512 << 10;

pub struct Chain {
    pub client: NodeClient,
    pub signer: Signer,
    pub address: Address,
    send_lock: tokio::sync::Mutex<()>,
    /// How long to wait for a transaction to be included.
    pub tx_timeout: Duration,
}

impl Chain {
    pub async fn connect(url: &str, signer: Signer) -> Result<Chain, AgentError> {
        let client = NodeClient::connect(url).await?;
        Ok(Chain {
            client,
            address: signer.address(),
            signer,
            send_lock: tokio::sync::Mutex::new(()),
            tx_timeout: Duration::from_secs(60),
        })
    }

    /// Signs, broadcasts and waits for one transaction; a failed execution is an error.
    pub async fn send(&self, msgs: Vec<Any>, what: &str) -> Result<TxResult, AgentError> {
        let _g = self.send_lock.lock().await;
        let (_, res) = self
            .client
            .sign_and_send(&self.signer, msgs, what, None, Some(self.tx_timeout))
            .await?;
        let res = res.ok_or_else(|| AgentError::Invalid("no transaction result".into()))?;
        if res.code != 0 {
            return Err(AgentError::TxFailed {
                what: what.to_string(),
                codespace: res.codespace.clone(),
                code: res.code,
                log: res.log.clone(),
            });
        }
        tracing::debug!(what, height = res.height, "transaction included");
        Ok(res)
    }

    /// Sends `msgs` in order, as few transactions as fit [`MAX_TX_PAYLOAD`].
    pub async fn send_all(&self, msgs: Vec<Any>, what: &str) -> Result<(), AgentError> {
        let mut batch: Vec<Any> = Vec::new();
        let mut size = 0;
        for m in msgs {
            let n = m.value.len() + m.type_url.len();
            if !batch.is_empty() && size + n > MAX_TX_PAYLOAD {
                self.send(std::mem::take(&mut batch), what).await?;
                size = 0;
            }
            size += n;
            batch.push(m);
        }
        if !batch.is_empty() {
            self.send(batch, what).await?;
        }
        Ok(())
    }

    pub fn tasks_query(&self) -> tasks_pb::query_client::QueryClient<tonic::transport::Channel> {
        // A page of tasks can hold many 64 KiB programs.
        tasks_pb::query_client::QueryClient::new(self.client.channel())
            .max_decoding_message_size(crate::MAX_MESSAGE)
    }

    fn verde_query(&self) -> verde_pb::query_client::QueryClient<tonic::transport::Channel> {
        verde_pb::query_client::QueryClient::new(self.client.channel())
            .max_decoding_message_size(crate::MAX_MESSAGE)
    }

    /// Every task with `status`.
    pub async fn tasks(&self, status: TaskStatus) -> Result<Vec<tasks_pb::Task>, AgentError> {
        let mut out = Vec::new();
        let mut key = Vec::new();
        loop {
            let r = self
                .tasks_query()
                .tasks(tasks_pb::QueryTasksRequest {
                    status: status as i32,
                    // 64 pages of at most 64 KiB programs stay far below MAX_MESSAGE.
                    pagination: Some(PageRequest { key, limit: 64 }),
                })
                .await?
                .into_inner();
            out.extend(r.tasks);
            match r.pagination {
                Some(p) if !p.next_key.is_empty() => key = p.next_key,
                _ => return Ok(out),
            }
        }
    }

    pub async fn task(&self, id: u64) -> Result<Option<tasks_pb::Task>, AgentError> {
        match self
            .tasks_query()
            .task(tasks_pb::QueryTaskRequest { task_id: id })
            .await
        {
            Ok(r) => Ok(r.into_inner().task),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(s.into()),
        }
    }

    /// The checkpoint of `step` the solver of task `id` posted on chain.
    pub async fn posted_checkpoint(
        &self,
        id: u64,
        step: u64,
    ) -> Result<Option<Vec<u8>>, AgentError> {
        match self
            .tasks_query()
            .posted_checkpoint(tasks_pb::QueryPostedCheckpointRequest { task_id: id, step })
            .await
        {
            Ok(r) => Ok(Some(r.into_inner().checkpoint)),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(s.into()),
        }
    }

    pub async fn dispute(&self, id: u64) -> Result<Option<verde_pb::Dispute>, AgentError> {
        match self
            .verde_query()
            .dispute(verde_pb::QueryDisputeRequest { dispute_id: id })
            .await
        {
            Ok(r) => Ok(r.into_inner().dispute),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(s.into()),
        }
    }

    pub async fn verde_params(&self) -> Result<verde_pb::Params, AgentError> {
        Ok(self
            .verde_query()
            .params(verde_pb::QueryParamsRequest {})
            .await?
            .into_inner()
            .params
            .unwrap_or_default())
    }

    pub async fn tasks_params(&self) -> Result<tasks_pb::Params, AgentError> {
        Ok(self
            .tasks_query()
            .params(tasks_pb::QueryParamsRequest {})
            .await?
            .into_inner()
            .params
            .unwrap_or_default())
    }

    /// Registers this key as an operator of `role` with `stake`, unless it is
    /// registered already. Returns the bonded stake.
    pub async fn ensure_registered(
        &self,
        role: staking_pb::Role,
        stake: Amount,
    ) -> Result<String, AgentError> {
        let mut q = self.client.staking();
        match q
            .operator(staking_pb::QueryOperatorRequest {
                address: self.address.to_string(),
            })
            .await
        {
            Ok(r) => {
                if let Some(op) = r.into_inner().operator {
                    if op.role != role as i32 {
                        return Err(AgentError::Invalid(format!(
                            "{} is registered with another role ({:?})",
                            self.address,
                            staking_pb::Role::try_from(op.role).unwrap_or_default()
                        )));
                    }
                    return Ok(op.stake);
                }
            }
            Err(s) if s.code() == Code::NotFound => {}
            Err(s) => return Err(s.into()),
        }
        let msg = staking_pb::MsgRegisterOperator {
            operator: self.address.to_string(),
            role: role as i32,
            stake: Some(Coin {
                denom: framework::DENOM.into(),
                amount: stake.0.to_string(),
            }),
        };
        self.send(vec![proto::to_any(&msg)], "register operator")
            .await?;
        tracing::info!(address = %self.address, ?role, %stake, "registered");
        Ok(stake.0.to_string())
    }

    /// Follows new blocks.
    pub fn blocks(&self) -> BlockTicker {
        BlockTicker {
            client: self.client.clone(),
            stream: None,
        }
    }
}

/// New committed blocks, one at a time; survives node restarts.
pub struct BlockTicker {
    client: NodeClient,
    stream: Option<tonic::Streaming<Block>>,
}

impl BlockTicker {
    /// The next block. Waits at most `idle` (then returns `None`, so callers
    /// also make progress when blocks stall).
    pub async fn next(&mut self, idle: Duration) -> Option<Block> {
        if self.stream.is_none() {
            match self
                .client
                .node()
                .stream_blocks(StreamBlocksRequest { from_height: 0 })
                .await
            {
                Ok(s) => self.stream = Some(s.into_inner()),
                Err(e) => {
                    tracing::warn!(error = %e, "block stream unavailable; retrying");
                    tokio::time::sleep(idle.min(Duration::from_secs(1))).await;
                    return None;
                }
            }
        }
        let s = self.stream.as_mut()?;
        match tokio::time::timeout(idle, s.message()).await {
            Ok(Ok(Some(b))) => Some(b),
            Ok(Ok(None)) | Ok(Err(_)) => {
                self.stream = None;
                None
            }
            Err(_) => None,
        }
    }
}
