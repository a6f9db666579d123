//! Prometheus metrics: counters kept by the daemon loop, served as text on `GET /metrics`
//! when `metrics.listen` is set (off by default).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tracing::warn;

/// The daemon's counters and gauges.
#[derive(Debug, Default)]
pub struct Metrics {
    passes: AtomicU64,
    failed_passes: AtomicU64,
    pass_micros: AtomicU64,
    applied: AtomicU64,
    errors: AtomicU64,
    vms_ready: AtomicU64,
    vms_total: AtomicU64,
    vinos_degraded: AtomicU64,
    /// Redfish requests received (the BMC's counter).
    redfish_requests: Arc<AtomicU64>,
}

impl Metrics {
    /// A new, shared set of metrics.
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics::default())
    }

    /// A new set of metrics reporting the BMC's request counter `redfish_requests`.
    pub fn with_redfish(redfish_requests: Arc<AtomicU64>) -> Arc<Metrics> {
        Arc::new(Metrics {
            redfish_requests,
            ..Metrics::default()
        })
    }

    /// Records a pass that took `took`, applied `applied` operations and had `errors`.
    pub fn pass(&self, took: Duration, applied: usize, errors: usize) {
        self.passes.fetch_add(1, Ordering::Relaxed);
        self.pass_micros
            .fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        self.applied.fetch_add(applied as u64, Ordering::Relaxed);
        self.errors.fetch_add(errors as u64, Ordering::Relaxed);
    }

    /// Records a pass that could not read the host or its inputs.
    pub fn failed_pass(&self) {
        self.failed_passes.fetch_add(1, Ordering::Relaxed);
    }

    /// Sets the VM and Vino gauges.
    pub fn set_state(&self, vms_ready: u64, vms_total: u64, vinos_degraded: u64) {
        self.vms_ready.store(vms_ready, Ordering::Relaxed);
        self.vms_total.store(vms_total, Ordering::Relaxed);
        self.vinos_degraded.store(vinos_degraded, Ordering::Relaxed);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let passes = g(&self.passes);
        let lines = [
            (
                "vinod_reconcile_passes_total",
                "counter",
                "Reconcile passes that ran.",
                passes.to_string(),
            ),
            (
                "vinod_reconcile_failed_passes_total",
                "counter",
                "Passes that could not observe the host or read their inputs (nothing changed).",
                g(&self.failed_passes).to_string(),
            ),
            (
                "vinod_reconcile_duration_seconds_sum",
                "counter",
                "Total time spent in passes.",
                format!("{:.6}", g(&self.pass_micros) as f64 / 1e6),
            ),
            (
                "vinod_reconcile_duration_seconds_count",
                "counter",
                "Passes timed.",
                passes.to_string(),
            ),
            (
                "vinod_operations_applied_total",
                "counter",
                "Host operations applied (bridges, DHCP, volumes, domains).",
                g(&self.applied).to_string(),
            ),
            (
                "vinod_operation_errors_total",
                "counter",
                "Host operations that failed.",
                g(&self.errors).to_string(),
            ),
            (
                "vinod_vms_ready",
                "gauge",
                "VMs ready (defined as planned; with metal3, published and not in error).",
                g(&self.vms_ready).to_string(),
            ),
            (
                "vinod_vms_desired",
                "gauge",
                "VMs the selected Vinos want on this host.",
                g(&self.vms_total).to_string(),
            ),
            (
                "vinod_vinos_degraded",
                "gauge",
                "Vinos that cannot be applied on this host.",
                g(&self.vinos_degraded).to_string(),
            ),
            (
                "vinod_redfish_requests_total",
                "counter",
                "Redfish requests served.",
                g(&self.redfish_requests).to_string(),
            ),
        ];
        let mut out = String::new();
        for (name, kind, help, value) in lines {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        }
        out
    }
}

/// Errors of the metrics endpoint.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The listen address is not usable.
    #[error("cannot listen on {addr} for metrics")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Serves `GET /metrics` on `addr` until the task is dropped.
pub async fn serve(addr: SocketAddr, metrics: Arc<Metrics>) -> Result<(), MetricsError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| MetricsError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    loop {
        let Ok((mut conn, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 2048];
            let read = tokio::time::timeout(Duration::from_secs(5), conn.read(&mut buf)).await;
            let n = match read {
                Ok(Ok(n)) => n,
                _ => return,
            };
            let request = String::from_utf8_lossy(&buf[..n]);
            let line = request.lines().next().unwrap_or("");
            let response = if line.starts_with("GET /metrics ") || line == "GET /metrics" {
                let body = metrics.render();
                format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
            } else {
                "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string()
            };
            if let Err(e) = conn.write_all(response.as_bytes()).await {
                warn!(error = %e, "metrics: write failed");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.pass(Duration::from_millis(1500), 3, 1);
        m.pass(Duration::from_millis(500), 0, 0);
        m.set_state(4, 5, 1);
        let text = m.render();
        assert!(text.contains(
            "# TYPE vinod_reconcile_passes_total counter\nvinod_reconcile_passes_total 2\n"
        ));
        assert!(text.contains("vinod_reconcile_duration_seconds_sum 2.000000\n"));
        assert!(text.contains("vinod_operations_applied_total 3\n"));
        assert!(
            text.contains("vinod_vms_ready 4\nvinod_vms_desired")
                || text.contains("vinod_vms_ready 4\n")
        );
        assert!(
            text.lines()
                .filter(|l| !l.starts_with('#'))
                .all(|l| l.split(' ').count() == 2)
        );
    }
}
