//! systemd notifications: READY/STATUS/RELOADING/STOPPING, and a watchdog that pings only
//! while the main loop is alive. Without `NOTIFY_SOCKET` every call is a no-op.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sd_notify::NotifyState;
use tracing::warn;

/// Notifier for the service manager.
#[derive(Clone, Debug, Default)]
pub struct Notifier {
    heartbeat: Arc<AtomicU64>,
}

impl Notifier {
    /// A notifier; call [`Notifier::start_watchdog`] to ping the watchdog.
    pub fn new() -> Self {
        let n = Self::default();
        n.beat();
        n
    }

    /// Records that the main loop is alive.
    pub fn beat(&self) {
        self.heartbeat.store(now_ms(), Ordering::Relaxed);
    }

    /// Startup finished: serving.
    pub fn ready(&self, status: &str) {
        send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// A status line for `systemctl status`.
    pub fn status(&self, status: &str) {
        send(&[NotifyState::Status(status)]);
    }

    /// Reloading the configuration (follow with [`Notifier::ready`]).
    pub fn reloading(&self) {
        let usec = NotifyState::monotonic_usec_now();
        match usec {
            Ok(ts) => send(&[NotifyState::Reloading, ts]),
            Err(_) => send(&[NotifyState::Reloading]),
        }
    }

    /// Shutting down.
    pub fn stopping(&self) {
        send(&[NotifyState::Stopping]);
    }

    /// Pings the watchdog at half its interval while the heartbeat is fresher than the
    /// interval; a stuck main loop stops the pings and systemd restarts vinod.
    pub fn start_watchdog(&self) -> Option<tokio::task::JoinHandle<()>> {
        let interval = sd_notify::watchdog_enabled()?;
        let heartbeat = self.heartbeat.clone();
        Some(tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval / 2);
            loop {
                tick.tick().await;
                let age = Duration::from_millis(
                    now_ms().saturating_sub(heartbeat.load(Ordering::Relaxed)),
                );
                if age < interval {
                    send(&[NotifyState::Watchdog]);
                } else {
                    warn!(stalled_for = ?age, "main loop stalled: not pinging the watchdog");
                }
            }
        }))
    }
}

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(states) {
        warn!(error = %e, "cannot notify the service manager");
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
