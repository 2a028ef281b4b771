//! Persistent state: one sled tree, a Jellyfish Merkle Tree over it, and the
//! node's own (non-consensus) indexes.
//!
//! Layout of the single sled tree, by first byte:
//! - `0x01 key` → value: the consensus state (the modules' keys).
//! - `0x02 borsh(NodeKey)` → `borsh(Node)`: JMT nodes.
//! - `0x03 sha256(key) version:u64be` → `0x01 value` | `0x00` (deleted): JMT values.
//! - `0x04 "last"` → [`Meta`]: last committed height, JMT version, app hash, time.
//! - `0x05 tx hash` → `TxResult` (protobuf): the transaction index.
//! - `0x06 height:u64be` → `Block` (protobuf): committed blocks and their events.
//! - `0x07 stale_since:u64be borsh(NodeKey)` → empty: JMT nodes replaced at
//!   `stale_since`; each is deleted [`KEEP_VERSIONS`] versions later, so the
//!   tree's nodes stay bounded by the live state plus a recent window. The
//!   value history (`0x03`) keeps one entry per write: bounded by the bytes
//!   written, which every transaction pays for per KiB.
//!
//! A block's writes of all kinds go into one `sled::Batch`, applied atomically
//! and flushed at Commit: after a crash the store is at the last committed
//! block or the one before it, never in between.
//!
//! The app hash is the JMT root (SHA-256, Diem/Penumbra's jellyfish-merkle):
//! an authenticated commitment over every consensus key/value, with
//! existence and non-existence proofs for queries.
use framework::{StateError, StateRead};
use jmt::storage::{LeafNode, Node, NodeKey, TreeReader, TreeUpdateBatch};
use jmt::{KeyHash, OwnedValue, RootHash, Sha256Jmt, Version};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::Path;

const STATE: u8 = 0x01;
const NODE: u8 = 0x02;
const VALUE: u8 = 0x03;
const META: u8 = 0x04;
const TX: u8 = 0x05;
const BLOCK: u8 = 0x06;
const STALE: u8 = 0x07;

/// JMT versions whose nodes are kept (proofs at older versions fail).
pub const KEEP_VERSIONS: u64 = 1_000;

/// What is known about the last commit.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Meta {
    pub height: u64,
    pub version: u64,
    pub app_hash: [u8; 32],
    pub time_ms: i64,
}

impl Meta {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(56);
        v.extend_from_slice(&self.height.to_be_bytes());
        v.extend_from_slice(&self.version.to_be_bytes());
        v.extend_from_slice(&self.app_hash);
        v.extend_from_slice(&self.time_ms.to_be_bytes());
        v
    }
    fn decode(b: &[u8]) -> Option<Meta> {
        if b.len() != 56 {
            return None;
        }
        Some(Meta {
            height: u64::from_be_bytes(b[0..8].try_into().ok()?),
            version: u64::from_be_bytes(b[8..16].try_into().ok()?),
            app_hash: b[16..48].try_into().ok()?,
            time_ms: i64::from_be_bytes(b[48..56].try_into().ok()?),
        })
    }
}

/// Everything one Commit writes.
pub struct Commit {
    pub meta: Meta,
    pub writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
    pub tree: TreeUpdateBatch,
    /// Non-consensus index entries: (tx hash, encoded TxResult).
    pub txs: Vec<([u8; 32], Vec<u8>)>,
    /// Encoded `Block` record.
    pub block: Vec<u8>,
}

#[derive(Clone)]
pub struct Store {
    db: sled::Db,
}

fn storage(e: impl std::fmt::Display) -> StateError {
    StateError::Storage(e.to_string())
}

fn pk(tag: u8, key: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(key.len() + 1);
    v.push(tag);
    v.extend_from_slice(key);
    v
}

pub fn key_hash(key: &[u8]) -> KeyHash {
    KeyHash(Sha256::digest(key).into())
}

impl Store {
    pub fn open(path: &Path) -> Result<Store, StateError> {
        let db = sled::Config::new()
            .path(path)
            .mode(sled::Mode::HighThroughput)
            .open()
            .map_err(storage)?;
        Ok(Store { db })
    }

    pub fn meta(&self) -> Result<Option<Meta>, StateError> {
        match self.db.get(pk(META, b"last")).map_err(storage)? {
            None => Ok(None),
            Some(b) => Meta::decode(&b)
                .map(Some)
                .ok_or_else(|| StateError::Corrupt {
                    key: "meta/last".into(),
                    reason: format!("{} bytes", b.len()),
                }),
        }
    }

    /// The JMT root after applying `writes` at `version` on top of the
    /// committed tree (version - 1), and the nodes to write.
    pub fn compute_root(
        &self,
        writes: &BTreeMap<Vec<u8>, Option<Vec<u8>>>,
        version: Version,
    ) -> Result<(RootHash, TreeUpdateBatch), StateError> {
        let mut set: Vec<(KeyHash, Option<OwnedValue>)> = Vec::with_capacity(writes.len());
        for (k, v) in writes {
            // Deleting a key the tree never had is a no-op; skip it so the
            // tree sees only real changes.
            if v.is_none() && self.get_raw(k)?.is_none() {
                continue;
            }
            set.push((key_hash(k), v.clone()));
        }
        let reader = JmtReader(&self.db);
        let tree = Sha256Jmt::new(&reader);
        tree.put_value_set(set, version)
            .map_err(|e| StateError::Storage(format!("jmt: {e}")))
    }

    /// Applies one commit atomically and flushes it to disk.
    pub fn commit(&self, c: Commit) -> Result<(), StateError> {
        let mut b = sled::Batch::default();
        for (k, v) in &c.writes {
            match v {
                Some(v) => b.insert(pk(STATE, k), v.as_slice()),
                None => b.remove(pk(STATE, k)),
            }
        }
        for (nk, node) in c.tree.node_batch.nodes() {
            let k = borsh::to_vec(nk).map_err(storage)?;
            let n = borsh::to_vec(node).map_err(storage)?;
            b.insert(pk(NODE, &k), n);
        }
        for ((version, kh), v) in c.tree.node_batch.values() {
            let mut k = pk(VALUE, &kh.0);
            k.extend_from_slice(&version.to_be_bytes());
            let val = match v {
                Some(v) => pk(1, v),
                None => vec![0],
            };
            b.insert(k, val);
        }
        for st in &c.tree.stale_node_index_batch {
            let mut k = vec![STALE];
            k.extend_from_slice(&st.stale_since_version.to_be_bytes());
            k.extend_from_slice(&borsh::to_vec(&st.node_key).map_err(storage)?);
            b.insert(k, &[][..]);
        }
        // Nodes replaced KEEP_VERSIONS ago or earlier are unreachable from
        // every root still kept: delete them and their index entries.
        if let Some(bound) = c.meta.version.checked_sub(KEEP_VERSIONS) {
            let end = [&[STALE][..], &bound.saturating_add(1).to_be_bytes()].concat();
            for kv in self.db.range(vec![STALE]..end) {
                let (k, _) = kv.map_err(storage)?;
                b.remove(pk(NODE, &k[9..]));
                b.remove(k);
            }
        }
        for (h, r) in &c.txs {
            b.insert(pk(TX, h), r.as_slice());
        }
        b.insert(pk(BLOCK, &c.meta.height.to_be_bytes()), c.block);
        b.insert(pk(META, b"last"), c.meta.encode());
        self.db.apply_batch(b).map_err(storage)?;
        self.db.flush().map_err(storage)?;
        Ok(())
    }

    /// Stored JMT nodes (for tests and operators watching growth).
    pub fn jmt_node_count(&self) -> usize {
        self.db.scan_prefix([NODE]).count()
    }

    pub fn tx_result(&self, hash: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self
            .db
            .get(pk(TX, hash))
            .map_err(storage)?
            .map(|v| v.to_vec()))
    }

    pub fn block(&self, height: u64) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self
            .db
            .get(pk(BLOCK, &height.to_be_bytes()))
            .map_err(storage)?
            .map(|v| v.to_vec()))
    }

    /// Value and JMT proof of `key` at the committed version.
    pub fn get_with_proof(
        &self,
        key: &[u8],
        version: Version,
    ) -> Result<(Option<Vec<u8>>, jmt::proof::SparseMerkleProof<Sha256>), StateError> {
        let reader = JmtReader(&self.db);
        Sha256Jmt::new(&reader)
            .get_with_proof(key_hash(key), version)
            .map_err(|e| StateError::Storage(format!("jmt: {e}")))
    }
}

impl StateRead for Store {
    fn get_raw(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self
            .db
            .get(pk(STATE, key))
            .map_err(storage)?
            .map(|v| v.to_vec()))
    }

    fn prefix_raw(
        &self,
        prefix: &[u8],
        start: &[u8],
        limit: usize,
    ) -> Result<framework::KvPairs, StateError> {
        let from = if start > prefix { start } else { prefix };
        let mut out = Vec::new();
        for kv in self.db.range(pk(STATE, from)..) {
            if out.len() >= limit {
                break;
            }
            let (k, v) = kv.map_err(storage)?;
            let k = &k[1..];
            if !k.starts_with(prefix) || k.is_empty() {
                break;
            }
            out.push((k.to_vec(), v.to_vec()));
        }
        Ok(out)
    }
}

struct JmtReader<'a>(&'a sled::Db);

impl TreeReader for JmtReader<'_> {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        let k = pk(NODE, &borsh::to_vec(node_key)?);
        match self.0.get(k)? {
            None => Ok(None),
            Some(b) => Ok(Some(borsh::from_slice(&b)?)),
        }
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        let lo = {
            let mut k = pk(VALUE, &key_hash.0);
            k.extend_from_slice(&0u64.to_be_bytes());
            k
        };
        let hi = {
            let mut k = pk(VALUE, &key_hash.0);
            k.extend_from_slice(&max_version.to_be_bytes());
            k
        };
        match self.0.range(lo..=hi).next_back() {
            None => Ok(None),
            Some(kv) => {
                let (_, v) = kv?;
                Ok(match v.first() {
                    Some(1) => Some(v[1..].to_vec()),
                    _ => None,
                })
            }
        }
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        anyhow::bail!("state-sync restore is not supported by this store")
    }
}
