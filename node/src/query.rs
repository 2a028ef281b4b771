//! ABCI `Query`: raw state reads with JMT proofs.
//!
//! Paths:
//! - `/store` with `data` = a state key: the value at the last committed
//!   height; with `prove`, a `ProofOp` of type `jmt:sha256:v1` whose data is
//!   the borsh-encoded `SparseMerkleProof` against the app hash.
//! - `/app/chain_id`: the chain id.
use crate::store::{Meta, Store};
use framework::StateRead;
use prost::bytes::Bytes;
use tendermint_proto::v0_38::abci::{RequestQuery, ResponseQuery};
use tendermint_proto::v0_38::crypto::{ProofOp, ProofOps};

pub const PROOF_OP_TYPE: &str = "jmt:sha256:v1";

fn err(code: u32, log: impl Into<String>) -> ResponseQuery {
    ResponseQuery {
        code,
        codespace: "query".into(),
        log: log.into(),
        ..Default::default()
    }
}

pub fn abci_query(store: &Store, meta: Option<&Meta>, req: &RequestQuery) -> ResponseQuery {
    let Some(meta) = meta else {
        return err(2, "chain not initialised");
    };
    let height = i64::try_from(meta.height).unwrap_or(i64::MAX);
    if req.height != 0 && req.height != height {
        return err(
            3,
            format!(
                "only the last committed height {height} is served, not {}",
                req.height
            ),
        );
    }
    match req.path.as_str() {
        "/store" | "store" => {
            if req.prove {
                match store.get_with_proof(&req.data, meta.version) {
                    Ok((value, proof)) => {
                        let data = match borsh::to_vec(&proof) {
                            Ok(d) => d,
                            Err(e) => return err(4, e.to_string()),
                        };
                        ResponseQuery {
                            key: req.data.clone(),
                            value: Bytes::from(value.unwrap_or_default()),
                            proof_ops: Some(ProofOps {
                                ops: vec![ProofOp {
                                    r#type: PROOF_OP_TYPE.into(),
                                    key: req.data.to_vec(),
                                    data,
                                }],
                            }),
                            height,
                            ..Default::default()
                        }
                    }
                    Err(e) => err(4, e.to_string()),
                }
            } else {
                match store.get_raw(&req.data) {
                    Ok(v) => ResponseQuery {
                        key: req.data.clone(),
                        value: Bytes::from(v.unwrap_or_default()),
                        height,
                        ..Default::default()
                    },
                    Err(e) => err(4, e.to_string()),
                }
            }
        }
        "/app/chain_id" => match store.get_raw(crate::exec::CHAIN_ID_KEY) {
            Ok(v) => ResponseQuery {
                value: Bytes::from(v.unwrap_or_default()),
                height,
                ..Default::default()
            },
            Err(e) => err(4, e.to_string()),
        },
        p => err(
            1,
            format!("unknown query path {p:?}; known: /store, /app/chain_id"),
        ),
    }
}

/// Verifies a `/store` proof against an app hash.
pub fn verify_store_proof(
    app_hash: [u8; 32],
    key: &[u8],
    value: Option<&[u8]>,
    proof: &[u8],
) -> Result<(), String> {
    let p: jmt::proof::SparseMerkleProof<sha2::Sha256> =
        borsh::from_slice(proof).map_err(|e| e.to_string())?;
    p.verify(jmt::RootHash(app_hash), crate::store::key_hash(key), value)
        .map_err(|e| e.to_string())
}
