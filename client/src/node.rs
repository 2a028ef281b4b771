//! A gRPC client of a Veritrain node: queries, signing, broadcasting and
//! waiting for inclusion. Used by the CLI, the daemons and the tests.
use auth::Signer;
use framework::Amount;
use proto::node::v1::{
    node_client::NodeClient as NodeGrpc, BroadcastTxRequest, GetTxRequest, StatusRequest,
    StatusResponse, TxResult,
};
use proto::{auth::v1 as auth_pb, bank::v1 as bank_pb, staking::v1 as staking_pb};
use std::time::Duration;
use tonic::transport::Channel;
use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot connect to the node at {url}: {source}. Is `veritraind dev` (or `start`) running there? Set --node or VERITRAIND_NODE.")]
    Connect {
        url: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("{0}")]
    Rpc(#[from] tonic::Status),
    #[error("transaction rejected by CheckTx: {codespace} code {code}: {log}")]
    Rejected {
        codespace: String,
        code: u32,
        log: String,
    },
    #[error("transaction {0} was not included within {1:?}")]
    Timeout(String, Duration),
    #[error("account {0} does not exist on chain yet: fund it first")]
    NoAccount(String),
    #[error("{0}")]
    Invalid(String),
}

#[derive(Clone)]
pub struct NodeClient {
    channel: Channel,
}

impl NodeClient {
    pub async fn connect(url: &str) -> Result<NodeClient, ClientError> {
        let endpoint = Channel::from_shared(url.to_string())
            .map_err(|e| ClientError::Invalid(format!("bad node URL {url:?}: {e}")))?;
        let channel = endpoint
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|source| ClientError::Connect {
                url: url.to_string(),
                source,
            })?;
        Ok(NodeClient { channel })
    }

    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    pub fn node(&self) -> NodeGrpc<Channel> {
        NodeGrpc::new(self.channel.clone())
    }

    pub async fn status(&self) -> Result<StatusResponse, ClientError> {
        Ok(self.node().status(StatusRequest {}).await?.into_inner())
    }

    pub async fn account(
        &self,
        addr: &framework::Address,
    ) -> Result<Option<auth_pb::BaseAccount>, ClientError> {
        let mut c = auth_pb::query_client::QueryClient::new(self.channel.clone());
        match c
            .account(auth_pb::QueryAccountRequest {
                address: addr.to_string(),
            })
            .await
        {
            Ok(r) => Ok(r.into_inner().account),
            Err(s) if s.code() == Code::NotFound => Ok(None),
            Err(s) => Err(s.into()),
        }
    }

    pub async fn auth_params(&self) -> Result<auth_pb::Params, ClientError> {
        let mut c = auth_pb::query_client::QueryClient::new(self.channel.clone());
        Ok(c.params(auth_pb::QueryParamsRequest {})
            .await?
            .into_inner()
            .params
            .unwrap_or_default())
    }

    pub async fn min_fee(&self) -> Result<Amount, ClientError> {
        let p = self.auth_params().await?;
        Amount::parse_coin(&p.min_fee).map_err(|e| ClientError::Invalid(e.to_string()))
    }

    /// The fee the chain requires for `msgs` in a transaction of about
    /// `tx_len` bytes (the node's `EstimateFee`).
    pub async fn required_fee(
        &self,
        msgs: &[prost_types::Any],
        tx_len: usize,
    ) -> Result<Amount, ClientError> {
        let mut c = proto::node::v1::node_client::NodeClient::new(self.channel.clone());
        let r = c
            .estimate_fee(proto::node::v1::EstimateFeeRequest {
                messages: msgs.iter().map(prost::Message::encode_to_vec).collect(),
                tx_bytes: tx_len as u64,
            })
            .await?
            .into_inner();
        Amount::parse_coin(&r.fee).map_err(|e| ClientError::Invalid(e.to_string()))
    }

    pub async fn balance(&self, addr: &framework::Address) -> Result<Amount, ClientError> {
        let mut c = bank_pb::query_client::QueryClient::new(self.channel.clone());
        let b = c
            .balance(bank_pb::QueryBalanceRequest {
                address: addr.to_string(),
            })
            .await?
            .into_inner()
            .balance
            .unwrap_or_default();
        Amount::from_coin(&b.denom, &b.amount).map_err(|e| ClientError::Invalid(e.to_string()))
    }

    pub fn staking(&self) -> staking_pb::query_client::QueryClient<Channel> {
        staking_pb::query_client::QueryClient::new(self.channel.clone())
    }

    pub fn swarm(&self) -> proto::swarm::v1::query_client::QueryClient<Channel> {
        proto::swarm::v1::query_client::QueryClient::new(self.channel.clone())
    }

    pub fn bank(&self) -> bank_pb::query_client::QueryClient<Channel> {
        bank_pb::query_client::QueryClient::new(self.channel.clone())
    }

    /// Broadcasts raw tx bytes; CheckTx failures are errors. Returns the hash.
    pub async fn broadcast(&self, tx: Vec<u8>) -> Result<Vec<u8>, ClientError> {
        let r = self
            .node()
            .broadcast_tx(BroadcastTxRequest { tx })
            .await?
            .into_inner();
        if r.code != 0 {
            return Err(ClientError::Rejected {
                codespace: r.codespace,
                code: r.code,
                log: r.log,
            });
        }
        Ok(r.hash)
    }

    /// Polls until the transaction is in a committed block.
    pub async fn wait_tx(&self, hash: &[u8], timeout: Duration) -> Result<TxResult, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match self
                .node()
                .get_tx(GetTxRequest {
                    hash: hash.to_vec(),
                })
                .await
            {
                Ok(r) => {
                    if let Some(res) = r.into_inner().result {
                        return Ok(res);
                    }
                }
                Err(s) if s.code() == Code::NotFound => {}
                Err(s) => return Err(s.into()),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(ClientError::Timeout(hex::encode_upper(hash), timeout));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Signs `msgs` with the account's current number and sequence, broadcasts,
    /// and (if `wait`) waits for the result.
    pub async fn sign_and_send(
        &self,
        signer: &Signer,
        msgs: Vec<prost_types::Any>,
        memo: &str,
        fee: Option<Amount>,
        wait: Option<Duration>,
    ) -> Result<(Vec<u8>, Option<TxResult>), ClientError> {
        let addr = signer.address();
        let acct = self
            .account(&addr)
            .await?
            .ok_or_else(|| ClientError::NoAccount(addr.to_string()))?;
        let status = self.status().await?;
        let fee = match fee {
            Some(f) => f,
            None => {
                // The fee depends on the signed size: measure a draft, with a
                // margin for the fee's own digits.
                let draft = signer.sign_tx(
                    msgs.clone(),
                    memo,
                    &status.chain_id,
                    acct.account_number,
                    acct.sequence,
                    Amount(u128::from(u64::MAX)),
                );
                self.required_fee(&msgs, draft.len() + 64).await?
            }
        };
        let tx = signer.sign_tx(
            msgs,
            memo,
            &status.chain_id,
            acct.account_number,
            acct.sequence,
            fee,
        );
        let hash = self.broadcast(tx).await?;
        let res = match wait {
            Some(t) => Some(self.wait_tx(&hash, t).await?),
            None => None,
        };
        Ok((hash, res))
    }
}
