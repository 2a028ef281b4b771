//! Consensus execution: genesis, the ante checks, transactions and blocks.
//! Pure functions of (committed state, block header, transactions): no I/O
//! beyond reading the committed store, no clocks, no floats.
use crate::error::TxFailure;
use crate::genesis;
use crate::msg::Msg;
use crate::store::{Commit, Meta, Store};
use auth::{AuthError, AuthRead, AuthWrite, SignedTx};
use bank::BankWrite;
use framework::{Address, BlockCtx, Delta, Event, Layered, StateRead, StateWrite};
use rayon::prelude::*;
use sha2::Digest;

/// `app/chain_id` → the chain id, written at genesis.
pub const CHAIN_ID_KEY: &[u8] = b"app/chain_id";
/// `app/block` → height (8 bytes BE) and time (8 bytes BE) of the last block.
/// Written every block, so every block changes the state tree.
pub const BLOCK_KEY: &[u8] = b"app/block";

/// One transaction's result.
#[derive(Clone, Debug)]
pub struct TxOutcome {
    pub hash: [u8; 32],
    pub code: u32,
    pub codespace: &'static str,
    pub log: String,
    pub events: Vec<Event>,
}

/// A finalized but not yet committed block.
#[derive(Clone, Debug, Default)]
pub struct BlockOutcome {
    /// State writes (its `events` are empty: they live in results and block_events).
    pub delta: Delta,
    pub results: Vec<TxOutcome>,
    pub block_events: Vec<Event>,
    /// The transactions as executed, and the header's block hash.
    pub raw_txs: Vec<Vec<u8>>,
    pub block_hash: Vec<u8>,
}

/// A transaction decoded and, where its account already existed, with its
/// signature checked: the parallel part of execution.
pub struct Prepared {
    pub tx: SignedTx,
    pub msgs: Vec<Msg>,
    pub verified_for: Option<u64>,
}

fn fail(e: &AuthError) -> TxFailure {
    TxFailure::from(e)
}

/// Signatures this node has already verified (in CheckTx): tx hash → the
/// account number they verified against. Not consensus state: it only decides
/// whether FinalizeBlock repeats a check whose result is a pure function of
/// (tx bytes, chain id, account number), so every node reaches the same
/// result with or without it. Bounded; included transactions leave it.
#[derive(Default)]
pub struct SigCache {
    map: std::sync::Mutex<std::collections::HashMap<[u8; 32], u64>>,
}

impl SigCache {
    const MAX: usize = 200_000;

    fn get(&self, h: &[u8; 32]) -> Option<u64> {
        self.map.lock().ok()?.get(h).copied()
    }

    fn insert(&self, h: [u8; 32], account_number: u64) {
        if let Ok(mut m) = self.map.lock() {
            if m.len() >= Self::MAX {
                m.clear();
            }
            m.insert(h, account_number);
        }
    }

    fn forget(&self, hashes: impl Iterator<Item = [u8; 32]>) {
        if let Ok(mut m) = self.map.lock() {
            for h in hashes {
                m.remove(&h);
            }
        }
    }

    pub fn len(&self) -> usize {
        self.map.lock().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Decodes a transaction and its messages; verifies its signature against the
/// committed account number when the account already exists (unless `cache`
/// says this node verified exactly that already). Reads only committed state,
/// so it can run in parallel for a whole block.
pub fn prepare<S: StateRead + ?Sized>(
    committed: &S,
    chain_id: &str,
    bytes: &[u8],
    cache: Option<&SigCache>,
) -> Result<Prepared, TxFailure> {
    let tx = SignedTx::decode(bytes).map_err(|e| fail(&e))?;
    let msgs = tx
        .body
        .messages
        .iter()
        .map(Msg::from_any)
        .collect::<Result<Vec<_>, _>>()?;
    let verified_for = match committed
        .account(&tx.signer_address())
        .map_err(|e| fail(&e))?
    {
        Some(a) => {
            if cache.and_then(|c| c.get(&tx.hash)) != Some(a.account_number) {
                tx.verify_signature(chain_id, a.account_number)
                    .map_err(|e| fail(&e))?;
            }
            Some(a.account_number)
        }
        None => None,
    };
    Ok(Prepared {
        tx,
        msgs,
        verified_for,
    })
}

/// The ante checks: limits, signature and sequence, then the fee is paid to
/// the fee collector.
fn ante<S: StateWrite + ?Sized>(s: &mut S, ctx: &BlockCtx, p: &Prepared) -> Result<(), TxFailure> {
    let params = s.auth_params().map_err(|e| fail(&e))?;
    let tx = &p.tx;
    if tx.len as u64 > params.max_tx_bytes {
        return Err(fail(&AuthError::TxTooLarge {
            max: params.max_tx_bytes,
            got: tx.len as u64,
        }));
    }
    let memo = tx.body.memo.chars().count() as u64;
    if memo > params.max_memo_chars {
        return Err(fail(&AuthError::MemoTooLong {
            max: params.max_memo_chars,
            got: memo,
        }));
    }
    let n = p.msgs.len() as u64;
    if n > params.max_msgs_per_tx {
        return Err(fail(&AuthError::TooManyMessages {
            max: params.max_msgs_per_tx,
            got: n,
        }));
    }
    if tx.body.timeout_height != 0 && ctx.height > tx.body.timeout_height {
        return Err(fail(&AuthError::TimedOut {
            timeout: tx.body.timeout_height,
            height: ctx.height,
        }));
    }
    let signer = tx.signer_address();
    for m in &p.msgs {
        if m.signer() != signer {
            return Err(fail(&AuthError::SignerMismatch {
                msg_signer: m.signer().to_string(),
                tx_signer: signer.to_string(),
            }));
        }
    }
    let units = Msg::total_work_units(&p.msgs);
    let min = auth::required_fee(&params, tx.len, units).map_err(|e| fail(&e))?;
    if tx.fee < min {
        return Err(fail(&AuthError::InsufficientFee {
            min: min.to_string(),
            got: tx.fee.to_string(),
        }));
    }
    s.authenticate(tx, &ctx.chain_id, p.verified_for)
        .map_err(|e| fail(&e))?;
    if !tx.fee.is_zero() {
        s.transfer(&signer, &Address::module(bank::FEE_COLLECTOR), tx.fee)
            .map_err(|e| TxFailure::from(&e))?;
    }
    Ok(())
}

fn run_msgs<S: StateWrite + ?Sized>(
    s: &mut S,
    ctx: &BlockCtx,
    p: &Prepared,
) -> Result<(), TxFailure> {
    for m in &p.msgs {
        m.execute(s, ctx)?;
    }
    Ok(())
}

/// CheckTx: the whole transaction must succeed against the check state (the
/// committed state plus the mempool's earlier transactions); if it does, its
/// effects join the check state so that the sender's next sequence is accepted.
pub fn check_tx(
    store: &Store,
    check: &mut Delta,
    ctx: &BlockCtx,
    bytes: &[u8],
    cache: &SigCache,
) -> Result<Vec<Event>, TxFailure> {
    let mut txd = Delta::default();
    {
        let base = Layered::new(store, check);
        let p = prepare(&base, &ctx.chain_id, bytes, Some(cache))?;
        let mut s = Layered::new(&base, &mut txd);
        ante(&mut s, ctx, &p)?;
        run_msgs(&mut s, ctx, &p)?;
        if let Some(n) = p.verified_for {
            cache.insert(p.tx.hash, n);
        }
    }
    let events = std::mem::take(&mut txd.events);
    check.merge(txd);
    Ok(events)
}

/// One transaction inside a block. The ante's effects (fee, sequence) stay
/// even if a message then fails; a failing ante changes nothing.
fn deliver(
    store: &Store,
    block: &mut Delta,
    ctx: &BlockCtx,
    hash: [u8; 32],
    pre: Result<Prepared, TxFailure>,
) -> TxOutcome {
    let outcome = |f: Result<Vec<Event>, TxFailure>| match f {
        Ok(events) => TxOutcome {
            hash,
            code: 0,
            codespace: "",
            log: String::new(),
            events,
        },
        Err(f) => TxOutcome {
            hash,
            code: f.code,
            codespace: f.codespace,
            log: f.log,
            events: vec![],
        },
    };
    let p = match pre {
        Ok(p) => p,
        Err(f) => return outcome(Err(f)),
    };
    let mut ante_d = Delta::default();
    {
        let base = Layered::new(store, block);
        let mut s = Layered::new(&base, &mut ante_d);
        if let Err(f) = ante(&mut s, ctx, &p) {
            return outcome(Err(f));
        }
    }
    let mut msg_d = Delta::default();
    let r = {
        let base = Layered::new(store, block);
        let mid = Layered::new(&base, &mut ante_d);
        let mut s = Layered::new(&mid, &mut msg_d);
        run_msgs(&mut s, ctx, &p)
    };
    let mut events = std::mem::take(&mut ante_d.events);
    block.writes.extend(ante_d.writes);
    match r {
        Ok(()) => {
            events.append(&mut msg_d.events);
            block.writes.extend(msg_d.writes);
            outcome(Ok(events))
        }
        Err(mut f) => {
            // The fee was charged: say so in the log, keep the ante's events.
            f.log = format!("{} (fee charged, sequence used)", f.log);
            let mut o = outcome(Err(f));
            o.events = events;
            o
        }
    }
}

/// FinalizeBlock: decode and verify signatures in parallel, then execute in
/// block order, then the end-block hooks (in this order: staking).
pub fn finalize_block(
    store: &Store,
    ctx: &BlockCtx,
    txs: &[&[u8]],
    cache: Option<&SigCache>,
) -> BlockOutcome {
    let prepared: Vec<(Result<Prepared, TxFailure>, [u8; 32])> = txs
        .par_iter()
        .map(|b| {
            let p = prepare(store, &ctx.chain_id, b, cache);
            // A decoded transaction carries its hash; hash only the rest.
            let hash = match &p {
                Ok(p) => p.tx.hash,
                Err(_) => auth::tx::tx_hash(b),
            };
            (p, hash)
        })
        .collect();
    if let Some(c) = cache {
        c.forget(prepared.iter().map(|(_, h)| *h));
    }
    let mut block = Delta::default();
    let mut results = Vec::with_capacity(txs.len());
    for (pre, hash) in prepared {
        results.push(deliver(store, &mut block, ctx, hash, pre));
    }
    let (block_events, failures) = runtime::end_block(store, &mut block, ctx);
    for f in failures {
        tracing::error!(error = %f.error, height = ctx.height, hook = f.hook, "end_block failed; its changes are dropped");
    }
    {
        let mut s = Layered::new(store, &mut block);
        let mut v = ctx.height.to_be_bytes().to_vec();
        v.extend_from_slice(&ctx.time_ms.to_be_bytes());
        s.put_raw(BLOCK_KEY.to_vec(), v);
    }
    block.events.clear();
    BlockOutcome {
        delta: block,
        results,
        block_events,
        raw_txs: txs.iter().map(|t| t.to_vec()).collect(),
        block_hash: Vec::new(),
    }
}

/// The header's block hash as 32 bytes (CometBFT's is SHA-256 already; any
/// other length is hashed).
pub fn block_hash32(h: &[u8]) -> [u8; 32] {
    match <[u8; 32]>::try_from(h) {
        Ok(a) => a,
        Err(_) => sha2::Sha256::digest(h).into(),
    }
}

pub fn max_tx_bytes(store: &Store) -> usize {
    store
        .auth_params()
        .map(|p| usize::try_from(p.max_tx_bytes).unwrap_or(usize::MAX))
        .unwrap_or(1 << 20)
}

/// Genesis: imports `app_state`, records the chain id, and returns the commit
/// of JMT version 0 (height 0).
pub fn genesis(
    store: &Store,
    chain_id: &str,
    app_state: &[u8],
    time_ms: i64,
) -> Result<(Commit, [u8; 32]), String> {
    let mut d = Delta::default();
    genesis::init(store, &mut d, app_state).map_err(|e| e.to_string())?;
    {
        let mut s = Layered::new(store, &mut d);
        s.put_raw(CHAIN_ID_KEY.to_vec(), chain_id.as_bytes().to_vec());
        let mut v = 0u64.to_be_bytes().to_vec();
        v.extend_from_slice(&time_ms.to_be_bytes());
        s.put_raw(BLOCK_KEY.to_vec(), v);
    }
    let (root, tree) = store
        .compute_root(&d.writes, 0)
        .map_err(|e| e.to_string())?;
    let meta = Meta {
        height: 0,
        version: 0,
        app_hash: root.0,
        time_ms,
    };
    let block = block_record(&meta, &BlockOutcome::default());
    Ok((
        Commit {
            meta,
            writes: d.writes,
            tree,
            txs: vec![],
            block: prost::Message::encode_to_vec(&block),
        },
        root.0,
    ))
}

fn node_events(events: &[Event]) -> Vec<proto::node::v1::Event> {
    events
        .iter()
        .map(|e| proto::node::v1::Event {
            r#type: e.kind.clone(),
            attributes: e
                .attributes
                .iter()
                .map(|(k, v)| proto::node::v1::Attribute {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
        })
        .collect()
}

pub fn block_record(meta: &Meta, o: &BlockOutcome) -> proto::node::v1::Block {
    proto::node::v1::Block {
        height: meta.height,
        time_ms: meta.time_ms,
        app_hash: meta.app_hash.to_vec(),
        txs: o
            .results
            .iter()
            .enumerate()
            .map(|(i, r)| proto::node::v1::TxResult {
                hash: r.hash.to_vec(),
                height: meta.height,
                index: u32::try_from(i).unwrap_or(u32::MAX),
                code: r.code,
                codespace: r.codespace.to_string(),
                log: r.log.clone(),
                events: node_events(&r.events),
            })
            .collect(),
        events: node_events(&o.block_events),
        raw_txs: o.raw_txs.clone(),
        block_hash: o.block_hash.clone(),
    }
}
