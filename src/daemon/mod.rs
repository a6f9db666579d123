//! The daemon: the reconcile loop with its triggers (manifest changes, SIGHUP, a periodic
//! resync) and a clean stop on SIGTERM that leaves every VM running.

pub mod bmc;
pub mod inputs;
pub mod notify;
pub mod standalone;

use std::path::Path;
use std::time::{Duration, SystemTime};

use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::host::{Bridges, DhcpServers, Hypervisor};
use crate::reconcile::AfterOp;
pub use notify::Notifier;
pub use standalone::{PassReport, Standalone};

/// How often the host is re-checked even when nothing changed.
pub const RESYNC: Duration = Duration::from_secs(30);
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
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    let _watchdog = notifier.start_watchdog();
    let mut seen = mtime(&daemon.manifest_path);
    let mut first = true;
    loop {
        notifier.beat();
        let converged = match daemon.pass(after_op).await {
            Ok(report) => {
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
                if first {
                    notifier.ready(&line)
                } else {
                    notifier.status(&line)
                }
                report.converged && report.manifest_error.is_none()
            }
            Err(e) => {
                error!(error = %e, "pass failed; nothing was changed");
                if first {
                    notifier.ready("first pass failed; retrying (see log)")
                }
                false
            }
        };
        first = false;
        notifier.beat();
        if opts.once {
            return Ok(converged);
        }
        let wait = if converged { RESYNC } else { RETRY };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            notifier.beat();
            tokio::select! {
                _ = term.recv() => { return Ok(stop(notifier, "SIGTERM", converged)) }
                _ = int.recv() => { return Ok(stop(notifier, "SIGINT", converged)) }
                _ = hup.recv() => {
                    notifier.reloading();
                    reload(daemon, opts);
                    notifier.ready("configuration reloaded");
                    break;
                }
                _ = tokio::time::sleep_until(deadline) => break,
                _ = tokio::time::sleep(POLL) => {
                    let now = mtime(&daemon.manifest_path);
                    if now != seen {
                        seen = now;
                        info!("manifest changed");
                        break;
                    }
                }
            }
        }
    }
}

fn stop(notifier: &Notifier, signal: &str, converged: bool) -> bool {
    info!("{signal}: stopping; VMs keep running");
    notifier.stopping();
    converged
}

fn reload<B, D, H>(daemon: &mut Standalone<B, D, H>, opts: &RunOptions) {
    let Some(path) = &opts.config_path else {
        return;
    };
    let parsed = std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|t| Config::parse(&t, &path.display().to_string()).map_err(|e| e.to_string()));
    match parsed {
        Ok(c) => {
            info!(path = %path.display(), "configuration reloaded (adapter settings apply after a restart)");
            daemon.config = c;
        }
        Err(e) => warn!(error = %e, "invalid configuration; keeping the current one"),
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
