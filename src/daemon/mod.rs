//! The daemon: the reconcile loop with its triggers (manifest changes, SIGHUP, a periodic
//! resync) and a clean stop on SIGTERM that leaves every VM running.

pub mod metrics;
pub mod notify;
mod reconnect;
pub mod status_socket;
pub mod watches;

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use kube::Client;
use tokio::signal::unix::{SignalKind, signal};
use tracing::{error, info, warn};

use crate::config::Config;
use crate::error_chain;
use crate::host::{Bridges, DhcpServers, Hypervisor};
use crate::kube::source::KubeSource;
use crate::plan::NodeFacts;
use crate::reconcile::pass::{Host, PassError, PassReport};
use crate::reconcile::source::{FailureKind, VinoSource};
use crate::reconcile::standalone::FileSource;
use crate::reconcile::{Adapters, AfterOp};
use crate::redfish::BmcCredentials;
pub use notify::Notifier;
use watches::Watches;

/// What wakes the loop before the resync, besides signals.
enum Trigger {
    /// A change of the manifest file's modification time.
    Manifest(PathBuf),
    /// Watch events (once [`Cluster::watch`] started them).
    Watches(Option<Watches>),
}

/// A host's daemon: its reconcile, what wakes it, and its last pass for `vinod status`.
pub struct Daemon<S, B, D, H> {
    /// The host's reconcile.
    pub host: Host<S, B, D, H>,
    /// What the last pass saw and did, for `vinod status`.
    pub snapshot: status_socket::Snapshot,
    trigger: Trigger,
    /// Work between passes (the summaries of the Vinos a cluster host coordinates).
    background: Option<AbortOnDrop>,
}

/// The daemon without a cluster: a manifest file in, files out.
pub type Standalone<B, D, H> = Daemon<FileSource, B, D, H>;
/// The daemon in a cluster: the API server in and out.
pub type Cluster<B, D, H> = Daemon<KubeSource, B, D, H>;

impl<B, D, H> Daemon<FileSource, B, D, H> {
    /// A daemon for `manifest_path` on `node`.
    pub fn new(
        adapters: Adapters<B, D, H>,
        config: Config,
        node: NodeFacts,
        manifest_path: PathBuf,
    ) -> Self {
        let source = FileSource::new(node, manifest_path.clone(), config.state_dir.clone());
        Self::with_source(source, adapters, config, Trigger::Manifest(manifest_path))
    }
}

impl<B, D, H> Daemon<KubeSource, B, D, H> {
    /// A daemon for Node `node_name` talking to the API server through `client`.
    pub fn new(
        adapters: Adapters<B, D, H>,
        config: Config,
        client: Client,
        node_name: String,
    ) -> Self {
        let source = KubeSource::new(client, node_name);
        Self::with_source(source, adapters, config, Trigger::Watches(None))
    }

    /// Starts watches of the Vinos, of this host's Node and (from the next pass on) of the
    /// credentials Secrets of its Vinos; each event wakes the loop.
    /// The passes read the Vinos and Nodes from the watches' caches, and the summaries of the
    /// Vinos this host coordinates are kept current between passes.
    pub fn watch(&mut self) {
        let source = &mut self.host.source;
        let (w, nodes, vinos) = Watches::start(source.client.clone(), &source.node_name);
        source.use_caches(nodes, vinos);
        let summaries = source.summaries();
        self.background = Some(AbortOnDrop(tokio::spawn(summaries.run())));
        self.trigger = Trigger::Watches(Some(w));
    }
}

impl<S, B, D, H> Daemon<S, B, D, H> {
    fn with_source(
        source: S,
        adapters: Adapters<B, D, H>,
        config: Config,
        trigger: Trigger,
    ) -> Self {
        Self {
            host: Host::new(source, adapters, config),
            snapshot: status_socket::Snapshot::default(),
            trigger,
            background: None,
        }
    }

    /// Keeps `table` (the Redfish server's) set to the BMC credentials of this host's Vinos.
    pub fn with_bmc_credentials(mut self, table: BmcCredentials) -> Self {
        self.host = self.host.with_bmc_credentials(table);
        self
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.host.config
    }
}

impl<S, B, D, H> Daemon<S, B, D, H>
where
    S: VinoSource,
    B: Bridges + Sync,
    D: DhcpServers + Sync,
    H: Hypervisor + Sync,
{
    /// One pass; keeps its snapshot and follows the Secrets it used.
    pub async fn pass(&mut self, after_op: AfterOp<'_>) -> Result<PassReport, PassError<S::Error>> {
        let report = self.host.pass(after_op).await?;
        self.snapshot = status_socket::Snapshot::after_pass(
            &report.node,
            &report.plans,
            &report.now,
            report.reports.clone(),
            report.errors.clone(),
            report.host_converged,
        );
        if let Trigger::Watches(Some(w)) = &mut self.trigger {
            w.follow_secrets(&report.secrets_used);
            w.follow_hosts(&report.namespaces_used);
        }
        Ok(report)
    }

    /// Returns when something changed that calls for a pass before the resync. May never
    /// return.
    async fn changed(&mut self) {
        match &mut self.trigger {
            Trigger::Watches(Some(w)) => w.changed().await,
            Trigger::Watches(None) => std::future::pending().await,
            Trigger::Manifest(path) => {
                let seen = mtime(path);
                loop {
                    tokio::time::sleep(POLL).await;
                    if mtime(path) != seen {
                        info!("manifest changed");
                        return;
                    }
                }
            }
        }
    }
}

/// How often the manifest's modification time is checked.
const POLL: Duration = Duration::from_secs(1);
/// Pause before retrying a pass that failed on the host or has work left.
const RETRY_HOST: Duration = Duration::from_secs(2);
/// Pause before retrying a pass the API server failed; it may be down for a while.
const RETRY_API: Duration = Duration::from_secs(5);

/// How long to wait before the next pass: the resync when the pass converged or only the
/// input is wrong (a change of it wakes the loop), a short retry otherwise.
fn next_pass_in(converged: bool, failure: Option<FailureKind>, resync: Duration) -> Duration {
    let wait = match failure {
        None if converged => resync,
        Some(FailureKind::InvalidInput) => resync,
        Some(FailureKind::ApiUnreachable) => RETRY_API,
        None | Some(FailureKind::Host) => RETRY_HOST,
    };
    wait.min(resync)
}

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

/// Runs passes of `daemon` until SIGTERM or SIGINT (or after one pass with `once`): after each
/// pass it waits for the resync period (shorter after a failure, by its kind), SIGHUP (reloads
/// the configuration) or a change of its input. Returns whether the last pass converged.
pub async fn run_loop<S, B, D, H>(
    daemon: &mut Daemon<S, B, D, H>,
    opts: &RunOptions,
    notifier: &Notifier,
    after_op: AfterOp<'_>,
) -> Result<bool, DaemonError>
where
    S: VinoSource,
    B: Bridges + Sync,
    D: DhcpServers + Sync,
    H: Hypervisor + Sync,
{
    let mut term = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut hup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    let _watchdog = notifier.start_watchdog();
    let metrics = match &opts.redfish_requests {
        Some(counter) => metrics::Metrics::with_redfish(counter.clone()),
        None => metrics::Metrics::new(),
    };
    let _metrics = match daemon.config().metrics.listen {
        Some(addr) => {
            let m = metrics.clone();
            Some(AbortOnDrop(tokio::spawn(async move {
                if let Err(e) = metrics::serve(addr, m).await {
                    warn!(error = %e, "metrics will not be served");
                }
            })))
        }
        None => None,
    };
    let (snapshots, rx) = tokio::sync::watch::channel(status_socket::Snapshot::default());
    let socket = daemon.config().run_dir.join(status_socket::SOCKET);
    let _status = AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = status_socket::serve(socket, rx).await {
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
        let (converged, failure) = match daemon.pass(&beat_then_hook).await {
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
                (report.converged, report.failure)
            }
            Err(e) => {
                metrics.failed_pass();
                error!(error = %error_chain(&e), "pass failed; nothing was changed");
                if first {
                    notifier.ready("first pass failed; retrying (see log)")
                }
                (false, Some(e.kind()))
            }
        };
        first = false;
        snapshots.send_replace(daemon.snapshot.clone());
        notifier.beat();
        if opts.once {
            return Ok(converged);
        }
        let resync = Duration::from_millis(daemon.config().resync_ms);
        let wait = next_pass_in(converged, failure, resync);
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

fn reload<S, B, D, H>(daemon: &mut Daemon<S, B, D, H>, opts: &RunOptions) {
    let Some(path) = &opts.config_path else {
        return;
    };
    let parsed = std::fs::read_to_string(path)
        .map_err(|e| e.to_string())
        .and_then(|t| Config::parse(&t, &path.display().to_string()).map_err(|e| e.to_string()));
    match parsed {
        Ok(c) => {
            info!(path = %path.display(), "configuration reloaded (adapter settings apply after a restart)");
            daemon.host.config = c;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pause_follows_the_kind_of_failure() {
        let resync = Duration::from_secs(30);
        assert_eq!(next_pass_in(true, None, resync), resync);
        assert_eq!(next_pass_in(false, None, resync), RETRY_HOST);
        let invalid = Some(FailureKind::InvalidInput);
        assert_eq!(next_pass_in(true, invalid, resync), resync);
        assert_eq!(
            next_pass_in(false, Some(FailureKind::Host), resync),
            RETRY_HOST
        );
        let api = Some(FailureKind::ApiUnreachable);
        assert_eq!(next_pass_in(false, api, resync), RETRY_API);
        // Never longer than the resync.
        assert_eq!(
            next_pass_in(false, api, Duration::from_secs(1)),
            Duration::from_secs(1)
        );
    }
}
