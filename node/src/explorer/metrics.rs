//! The node's Prometheus metrics (OpenMetrics text at `/metrics`), all under
//! `veritrain_`, times in seconds:
//!
//! | metric | kind | what |
//! |---|---|---|
//! | `veritrain_height` | gauge | last committed height |
//! | `veritrain_block_time_seconds` | gauge | the last block's time (Unix seconds) |
//! | `veritrain_block_interval_seconds` | gauge | time between the last two blocks |
//! | `veritrain_blocks_total` | counter | blocks seen since the node started |
//! | `veritrain_txs_total{type}` | counter | transactions by message type |
//! | `veritrain_tx_failures_total{type}` | counter | failed transactions by message type |
//! | `veritrain_mempool_size` | gauge | transactions waiting (dev chain) |
//! | `veritrain_tasks{status}` | gauge | tasks by status |
//! | `veritrain_open_disputes` | gauge | tasks with a dispute open |
//! | `veritrain_slashes_total` | counter | slash events |
//! | `veritrain_slashed_uvtr_total` | counter | uvtr slashed |
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use proto::node::v1::Block;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::Instant;

type Labels = Vec<(String, String)>;

pub struct NodeMetrics {
    registry: Registry,
    height: Gauge,
    block_time: Gauge<f64, AtomicU64>,
    block_interval: Gauge<f64, AtomicU64>,
    blocks: Counter,
    txs: Family<Labels, Counter>,
    failures: Family<Labels, Counter>,
    mempool: Gauge,
    tasks: Family<Labels, Gauge>,
    open_disputes: Gauge,
    slashes: Counter,
    slashed: Counter<f64, AtomicU64>,
    last_block_ms: Mutex<Option<i64>>,
    tasks_refreshed: Mutex<Option<Instant>>,
}

impl Default for NodeMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl NodeMetrics {
    pub fn new() -> NodeMetrics {
        let mut registry = Registry::with_prefix("veritrain");
        let m = NodeMetrics {
            height: Gauge::default(),
            block_time: Gauge::default(),
            block_interval: Gauge::default(),
            blocks: Counter::default(),
            txs: Family::default(),
            failures: Family::default(),
            mempool: Gauge::default(),
            tasks: Family::default(),
            open_disputes: Gauge::default(),
            slashes: Counter::default(),
            slashed: Counter::default(),
            last_block_ms: Mutex::new(None),
            tasks_refreshed: Mutex::new(None),
            registry: Registry::default(),
        };
        registry.register("height", "Last committed height", m.height.clone());
        registry.register(
            "block_time_seconds",
            "Time of the last block, Unix seconds",
            m.block_time.clone(),
        );
        registry.register(
            "block_interval_seconds",
            "Seconds between the last two blocks",
            m.block_interval.clone(),
        );
        registry.register("blocks", "Blocks seen", m.blocks.clone());
        registry.register("txs", "Transactions by message type", m.txs.clone());
        registry.register(
            "tx_failures",
            "Failed transactions by message type",
            m.failures.clone(),
        );
        registry.register(
            "mempool_size",
            "Transactions waiting for a block",
            m.mempool.clone(),
        );
        registry.register("tasks", "Tasks by status", m.tasks.clone());
        registry.register(
            "open_disputes",
            "Tasks with a dispute open",
            m.open_disputes.clone(),
        );
        registry.register("slashes", "Slash events", m.slashes.clone());
        registry.register("slashed_uvtr", "uvtr slashed", m.slashed.clone());
        NodeMetrics { registry, ..m }
    }

    /// Counts a committed block: height, times, transactions by type and result, slashes.
    pub fn observe_block(&self, b: &Block) {
        self.height.set(i64::try_from(b.height).unwrap_or(i64::MAX));
        self.block_time.set(b.time_ms as f64 / 1000.0);
        {
            let mut last = self.last_block_ms.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(prev) = *last {
                self.block_interval
                    .set((b.time_ms - prev).max(0) as f64 / 1000.0);
            }
            *last = Some(b.time_ms);
        }
        self.blocks.inc();
        for (i, t) in b.txs.iter().enumerate() {
            let types = b
                .raw_txs
                .get(i)
                .map(|r| super::msg_types(r))
                .unwrap_or_default();
            let label = if types.is_empty() {
                "unknown".to_string()
            } else {
                types.join("+")
            };
            let l = vec![("type".to_string(), label)];
            self.txs.get_or_create(&l).inc();
            if t.code != 0 {
                self.failures.get_or_create(&l).inc();
            }
        }
        let events = b
            .txs
            .iter()
            .filter(|t| t.code == 0)
            .flat_map(|t| t.events.iter())
            .chain(b.events.iter());
        for e in events {
            if super::short_type(&e.r#type) == "EventSlash" {
                self.slashes.inc();
                if let Some(a) = super::attr(e, "amount") {
                    let n = a
                        .trim_end_matches(framework::DENOM)
                        .parse::<f64>()
                        .unwrap_or(0.0);
                    self.slashed.inc_by(n);
                }
            }
        }
    }

    pub fn set_mempool(&self, n: u64) {
        self.mempool.set(i64::try_from(n).unwrap_or(i64::MAX));
    }

    /// Whether the task gauges are more than a few seconds old.
    pub fn tasks_stale(&self) -> bool {
        let t = self
            .tasks_refreshed
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        t.is_none_or(|t| t.elapsed().as_secs() >= 5)
    }

    pub fn set_tasks(&self, by_status: &BTreeMap<&'static str, i64>, open_disputes: i64) {
        for s in [
            "open",
            "claimed",
            "committed",
            "finalized",
            "cancelled",
            "failed",
            "expired",
        ] {
            self.tasks
                .get_or_create(&vec![("status".to_string(), s.to_string())])
                .set(by_status.get(s).copied().unwrap_or(0));
        }
        self.open_disputes.set(open_disputes);
        *self
            .tasks_refreshed
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Instant::now());
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        if encode(&mut s, &self.registry).is_err() {
            s.clear();
        }
        s
    }

    /// A counter's value (tests).
    pub fn blocks_seen(&self) -> u64 {
        self.blocks.get()
    }
}
