//! The daemon: the reconcile loop with its triggers (manifest changes, SIGHUP, a periodic
//! resync) and a clean stop on SIGTERM that leaves every VM running.

pub mod inputs;
pub mod standalone;

use std::path::Path;
use std::time::{Duration, SystemTime};

use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use crate::host::{Bridges, DhcpServers, Hypervisor};
use crate::reconcile::AfterOp;
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

/// Runs standalone passes until SIGTERM or SIGINT (or after one pass with `once`). Returns
/// whether the last pass converged.
pub async fn run_standalone<B, D, H>(
    daemon: &mut Standalone<B, D, H>,
    once: bool,
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
    let mut seen = mtime(&daemon.manifest_path);
    loop {
        let converged = match daemon.pass(after_op).await {
            Ok(report) => {
                for r in &report.reports {
                    info!(vino = %r.vino, phase = ?r.status.phase, ready = r.status.vms_ready, total = r.status.vms_total, message = r.status.message.as_deref().unwrap_or(""), "status");
                }
                report.converged && report.manifest_error.is_none()
            }
            Err(e) => {
                error!(error = %e, "pass failed; nothing was changed");
                false
            }
        };
        if once {
            return Ok(converged);
        }
        let wait = if converged { RESYNC } else { RETRY };
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                _ = term.recv() => { info!("SIGTERM: stopping; VMs keep running"); return Ok(converged) }
                _ = int.recv() => { info!("SIGINT: stopping; VMs keep running"); return Ok(converged) }
                _ = hup.recv() => { info!("SIGHUP: re-reading the manifest"); break }
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

fn mtime(path: &Path) -> Option<SystemTime> {
    match std::fs::metadata(path) {
        Ok(m) => m.modified().ok(),
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot stat the manifest");
            None
        }
    }
}
