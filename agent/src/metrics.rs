//! Prometheus metrics of a daemon (OpenMetrics text at `GET /metrics`).
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

pub struct Metrics {
    registry: Registry,
    counters: BTreeMap<&'static str, Counter>,
    gauges: BTreeMap<&'static str, Gauge>,
}

impl Metrics {
    /// Counters and gauges by `(name, help)`, all under `prefix_`.
    pub fn new(
        prefix: &str,
        counters: &[(&'static str, &'static str)],
        gauges: &[(&'static str, &'static str)],
    ) -> Metrics {
        let mut registry = Registry::with_prefix(prefix);
        let mut cs = BTreeMap::new();
        for (name, help) in counters {
            let c = Counter::default();
            registry.register(*name, *help, c.clone());
            cs.insert(*name, c);
        }
        let mut gs = BTreeMap::new();
        for (name, help) in gauges {
            let g = Gauge::default();
            registry.register(*name, *help, g.clone());
            gs.insert(*name, g);
        }
        Metrics {
            registry,
            counters: cs,
            gauges: gs,
        }
    }

    pub fn inc(&self, name: &str, by: u64) {
        match self.counters.get(name) {
            Some(c) => {
                c.inc_by(by);
            }
            None => tracing::warn!(metric = name, "unknown counter"),
        }
    }

    pub fn set(&self, name: &str, v: i64) {
        match self.gauges.get(name) {
            Some(g) => {
                g.set(v);
            }
            None => tracing::warn!(metric = name, "unknown gauge"),
        }
    }

    /// Adds the compute a run spent between two snapshots of its stats to
    /// `compute_us` and `hash_us`.
    pub fn add_compute(&self, before: crate::run::RunStats, after: crate::run::RunStats) {
        self.inc(
            "compute_us",
            after.compute_ns.saturating_sub(before.compute_ns) / 1000,
        );
        self.inc(
            "hash_us",
            after.hash_ns.saturating_sub(before.hash_ns) / 1000,
        );
    }

    pub fn counter(&self, name: &str) -> u64 {
        self.counters.get(name).map(|c| c.get()).unwrap_or(0)
    }

    pub fn render(&self) -> String {
        let mut s = String::new();
        if encode(&mut s, &self.registry).is_err() {
            s.clear();
        }
        s
    }
}

/// Serves `GET /metrics` on `addr` until `shutdown` resolves. Returns the bound address.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let m = metrics.clone();
            async move {
                (
                    [(
                        "content-type",
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    m.render(),
                )
            }
        }),
    );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await
        {
            tracing::error!(error = %e, "metrics server failed");
        }
    });
    Ok(bound)
}
