//! Prometheus metrics of a daemon (OpenMetrics text at `GET /metrics`).
//!
//! Times are exported in seconds, as Prometheus wants: a counter declared as
//! `NAME_us` is counted in microseconds in the daemon ([`Metrics::counter`])
//! and exported as `PREFIX_NAME_seconds_total`.
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
    /// The exported seconds of each `*_us` counter.
    seconds: BTreeMap<&'static str, Counter<f64, std::sync::atomic::AtomicU64>>,
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
        let mut secs = BTreeMap::new();
        for (name, help) in counters {
            let c = Counter::default();
            match name.strip_suffix("_us") {
                Some(base) => {
                    let s = Counter::<f64, std::sync::atomic::AtomicU64>::default();
                    registry.register(format!("{base}_seconds"), *help, s.clone());
                    secs.insert(*name, s);
                }
                None => registry.register(*name, *help, c.clone()),
            }
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
            seconds: secs,
            gauges: gs,
        }
    }

    pub fn inc(&self, name: &str, by: u64) {
        match self.counters.get(name) {
            Some(c) => {
                c.inc_by(by);
                if let Some(s) = self.seconds.get(name) {
                    s.inc_by(by as f64 / 1e6);
                }
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

#[cfg(test)]
mod tests {
    #[test]
    fn microsecond_counters_are_exported_in_seconds() {
        let m = super::Metrics::new("d", &[("compute_us", "Compute"), ("tasks", "Tasks")], &[]);
        m.inc("compute_us", 1_500_000);
        m.inc("tasks", 2);
        assert_eq!(m.counter("compute_us"), 1_500_000);
        let text = m.render();
        assert!(text.contains("d_compute_seconds_total 1.5"), "{text}");
        assert!(text.contains("d_tasks_total 2"), "{text}");
        assert!(!text.contains("_us"), "{text}");
    }
}
