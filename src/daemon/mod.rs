//! The daemon: the reconcile loop with its triggers (manifest changes, SIGHUP, a periodic
//! resync) and a clean stop on SIGTERM that leaves every VM running.

pub mod bmc;
pub mod cluster;
pub mod inputs;
pub mod metrics;
pub mod notify;
pub mod standalone;
pub mod status;
pub mod watches;

use std::path::Path;
use std::time::{Duration, SystemTime};

use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::host::{Bridges, DhcpServers, Hypervisor};
use crate::reconcile::{AfterOp, ReconcileError};
pub use cluster::Cluster;
pub use notify::Notifier;
pub use standalone::{PassReport, Standalone};

/// One kind of daemon pass (standalone: a manifest; cluster: the API server) driven by
/// [`run_loop`].
#[allow(async_fn_in_trait)]
pub trait Pass {
    /// Reads, plans, applies and publishes once.
    async fn pass(&mut self, after_op: AfterOp<'_>) -> Result<PassReport, ReconcileError>;
    /// The configuration in use.
    fn config(&self) -> &Config;
    /// Replaces the configuration (SIGHUP).
    fn set_config(&mut self, config: Config);
    /// What the last pass saw and did.
    fn snapshot(&self) -> &status::Snapshot;
    /// Returns when something changed that calls for a pass before the resync (a manifest
    /// edit, a watch event). May never return.
    async fn changed(&mut self);
}

/// How often the manifest's modification time is checked.
const POLL: Duration = Duration::from_secs(1);
/// Pause before retrying a pass that did not converge.
const RETRY: Duration = Duration::from_secs(2);

/// Errors of the daemon loop.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A signal handler could not be installed.
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
}

/// How the loop runs.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Stop after one pass.
    pub once: bool,
    /// Configuration file re-read on SIGHUP (an invalid file keeps the current configuration).
    pub config_path: Option<std::path::PathBuf>,
    /// The Redfish BMC's request counter, reported in the metrics.
    pub redfish_requests: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
}

/// Runs standalone passes until SIGTERM or SIGINT (or after one pass with `once`). Returns
/// whether the last pass converged.
pub async fn run_standalone<B, D, H>(
    daemon: &mut Standalone<B, D, H>,
    opts: &RunOptions,
    notifier: &Notifier,
    after_op: AfterOp<'_>,
) -> Result<bool, DaemonError>
where
    B: Bridges + Sync,
    D: DhcpServers + Sync,
    H: Hypervisor + Sync,
{
    run_loop(daemon, opts, notifier, after_op).await
}

/// Runs passes of `daemon` until SIGTERM or SIGINT (or after one pass with `once`): after each
/// pass it waits for the resync period (a short retry if the pass did not converge), SIGHUP
/// (reloads the configuration) or [`Pass::changed`]. Returns whether the last pass converged.
pub async fn run_loop<P: Pass>(
    daemon: &mut P,
    opts: &RunOptions,
    notifier: &Notifier,
    after_op: AfterOp<'_>,
) -> Result<bool, DaemonError> {
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    let _watchdog = notifier.start_watchdog();
    let metrics = match &opts.redfish_requests {
        Some(counter) => metrics::Metrics::with_redfish(counter.clone()),
        None => metrics::Metrics::new(),
    };
    let _metrics = match daemon
        .config()
        .metrics
        .listen
        .parse::<std::net::SocketAddr>()
    {
        Ok(addr) => {
            let m = metrics.clone();
            Some(AbortOnDrop(tokio::spawn(async move {
                if let Err(e) = metrics::serve(addr, m).await {
                    warn!(error = %e, "metrics will not be served");
                }
            })))
        }
        Err(_) => None,
    };
    let (snapshots, rx) = tokio::sync::watch::channel(status::Snapshot::default());
    let socket = daemon.config().run_dir.join(status::SOCKET);
    let _status = AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = status::serve(socket, rx).await {
            warn!(error = %e, "vinod status will not answer");
        }
    }));
    let mut first = true;
    loop {
        notifier.beat();
        let began = std::time::Instant::now();
        // Each applied operation is progress: a long pass keeps the watchdog fed.
        let beat_then_hook = |n: usize| {
            notifier.beat();
            after_op(n);
        };
        let converged = match daemon.pass(&beat_then_hook).await {
            Ok(report) => {
                let ready: u64 = report
                    .reports
                    .iter()
                    .map(|r| u64::from(r.status.vms_ready))
                    .sum();
                let total: u64 = report
                    .reports
                    .iter()
                    .map(|r| u64::from(r.status.vms_total))
                    .sum();
                let degraded = report
                    .reports
                    .iter()
                    .filter(|r| r.status.phase == crate::api::NodePhase::Degraded)
                    .count() as u64;
                metrics.pass(
                    began.elapsed(),
                    report.outcome.applied.len(),
                    report.outcome.errors.len(),
                );
                metrics.set_state(ready, total, degraded);
                for r in &report.reports {
                    info!(vino = %r.vino, phase = ?r.status.phase, ready = r.status.vms_ready, total = r.status.vms_total, message = r.status.message.as_deref().unwrap_or(""), "status");
                }
                let ready: u32 = report.reports.iter().map(|r| r.status.vms_ready).sum();
                let total: u32 = report.reports.iter().map(|r| r.status.vms_total).sum();
                let line = format!(
                    "{} Vinos, {ready}/{total} VMs ready{}",
                    report.reports.len(),
                    if report.outcome.errors.is_empty() {
                        ""
                    } else {
                        ", errors (see log)"
                    }
                );
                info!(
                    applied = report.outcome.applied.len(),
                    errors = report.outcome.errors.len(),
                    objects_written = report.objects_written,
                    converged = report.converged,
                    "pass done"
                );
                if first {
                    notifier.ready(&line)
                } else {
                    notifier.status(&line)
                }
                report.converged && report.manifest_error.is_none()
            }
            Err(e) => {
                metrics.failed_pass();
                error!(error = %standalone::error_chain(&e), "pass failed; nothing was changed");
                if first {
                    notifier.ready("first pass failed; retrying (see log)")
                }
                false
            }
        };
        first = false;
        snapshots.send_replace(daemon.snapshot().clone());
        notifier.beat();
        if opts.once {
            return Ok(converged);
        }
        let resync = Duration::from_millis(daemon.config().resync_ms);
        let wait = if converged { resync } else { RETRY.min(resync) };
        let deadline = tokio::time::Instant::now() + wait;
        let mut reload_now = false;
        {
            let changed = daemon.changed();
            tokio::pin!(changed);
            loop {
                notifier.beat();
                tokio::select! {
                    _ = term.recv() => { return Ok(stop(notifier, "SIGTERM")) }
                    _ = int.recv() => { return Ok(stop(notifier, "SIGINT")) }
                    _ = hup.recv() => { reload_now = true; break }
                    _ = tokio::time::sleep_until(deadline) => break,
                    _ = &mut changed => break,
                    _ = tokio::time::sleep(POLL) => {}
                }
            }
        }
        if reload_now {
            notifier.reloading();
            reload(daemon, opts);
            notifier.ready("configuration reloaded");
        }
    }
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A stop asked for by a signal is a clean stop (exit 0), whatever the last pass did:
/// `systemctl stop` must not leave the unit failed.
fn stop(notifier: &Notifier, signal: &str) -> bool {
    info!("{signal}: stopping; VMs keep running");
    notifier.stopping();
    true
}

fn reload<P: Pass>(daemon: &mut P, opts: &RunOptions) {
    let Some(path) = &opts.config_path else {
        return;
    };
    let parsed = std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|t| Config::parse(&t, &path.display().to_string()).map_err(|e| e.to_string()));
    match parsed {
        Ok(c) => {
            info!(path = %path.display(), "configuration reloaded (adapter settings apply after a restart)");
            daemon.set_config(c);
        }
        Err(e) => warn!(error = %e, "invalid configuration; keeping the current one"),
    }
}

impl<B, D, H> Pass for Standalone<B, D, H>
where
    B: Bridges + Sync,
    D: DhcpServers + Sync,
    H: Hypervisor + Sync,
{
    async fn pass(&mut self, after_op: AfterOp<'_>) -> Result<PassReport, ReconcileError> {
        Standalone::pass(self, after_op).await
    }
    fn config(&self) -> &Config {
        &self.config
    }
    fn set_config(&mut self, config: Config) {
        self.config = config;
    }
    fn snapshot(&self) -> &status::Snapshot {
        &self.snapshot
    }
    async fn changed(&mut self) {
        let seen = mtime(&self.manifest_path);
        loop {
            tokio::time::sleep(POLL).await;
            if mtime(&self.manifest_path) != seen {
                info!("manifest changed");
                return;
            }
        }
    }
}

fn mtime(path: &Path) -> Option<SystemTime> {
    match std::fs::metadata(path) {
        Ok(m) => m.modified().ok(),
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot stat the manifest");
            None
        }
    }
}
