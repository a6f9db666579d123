//! One dnsmasq process: launching it, forwarding its log to `tracing`, restarting it with
//! backoff when it dies, and terminating it (ours, or a stale one left by an earlier vinod).

use std::collections::VecDeque;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::io::BufReader;
use tokio::process::{Child, ChildStderr, Command};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, timeout};
use tracing::{info, warn};

use super::DnsmasqError;
use super::files::{self, Layout};
use super::log_lines::LogLines;

/// Delay before the first restart; doubled after each further crash.
const FIRST_DELAY: Duration = Duration::from_millis(100);
/// Upper bound of the restart delay.
const MAX_DELAY: Duration = Duration::from_secs(30);
/// A process that ran this long counts as stable: the next restart is quick again.
const STABLE_AFTER: Duration = Duration::from_secs(60);
/// How long a started dnsmasq may take to write its pid file.
const READY_WITHIN: Duration = Duration::from_secs(5);
/// How long a process gets between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);
const POLL: Duration = Duration::from_millis(20);
/// stderr lines kept to explain a failed start.
const TAIL_LINES: usize = 8;

/// How to run dnsmasq for one server.
#[derive(Clone, Debug)]
pub(super) struct Launch {
    /// dnsmasq binary.
    pub program: PathBuf,
    /// The server's files.
    pub layout: Layout,
    /// Network name, for log fields and errors.
    pub network: String,
}

impl Launch {
    /// Starts dnsmasq and waits until it has written its pid file (its sockets are bound by then).
    pub async fn launch(&self) -> Result<Child, DnsmasqError> {
        let layout = &self.layout;
        files::remove_file(layout, &layout.pid)?;
        let mut child = Command::new(&self.program)
            .arg(format!("--conf-file={}", layout.conf.display()))
            .arg("--keep-in-foreground")
            .arg("--log-facility=-")
            .arg(format!("--pid-file={}", layout.pid.display()))
            // dnsmasq must not answer vinod's systemd watchdog/readiness socket.
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| DnsmasqError::Spawn {
                bridge: layout.bridge.clone(),
                program: self.program.clone(),
                source,
            })?;
        let tail = Arc::new(Mutex::new(VecDeque::new()));
        let reader = child
            .stderr
            .take()
            .map(|e| tokio::spawn(forward(e, self.clone(), tail.clone())));
        let deadline = Instant::now() + READY_WITHIN;
        loop {
            if let Some(status) = child
                .try_wait()
                .map_err(layout.io("wait for", &self.program))?
            {
                if let Some(reader) = reader {
                    let _ = timeout(Duration::from_secs(1), reader).await;
                }
                let lines: Vec<String> = tail
                    .lock()
                    .map(|t| t.iter().cloned().collect())
                    .unwrap_or_default();
                return Err(self.failed(status.to_string(), lines.join("; ")));
            }
            if child
                .id()
                .is_some_and(|pid| read_pid(&layout.pid) == Some(pid))
            {
                info!(network = %self.network, bridge = %layout.bridge, pid = child.id(), "dnsmasq started");
                return Ok(child);
            }
            if Instant::now() >= deadline {
                terminate(self, &mut child).await;
                return Err(self.failed(
                    "no pid file".into(),
                    format!("not ready within {READY_WITHIN:?}"),
                ));
            }
            sleep(POLL).await;
        }
    }

    fn failed(&self, status: String, message: String) -> DnsmasqError {
        DnsmasqError::Exited {
            bridge: self.layout.bridge.clone(),
            network: self.network.clone(),
            status,
            message,
        }
    }
}

/// Forwards dnsmasq's log lines to `tracing`, keeping the last few for error messages.
async fn forward(stderr: ChildStderr, launch: Launch, tail: Arc<Mutex<VecDeque<String>>>) {
    let mut lines = LogLines::new(BufReader::new(stderr));
    while let Some(line) = lines.next_line().await {
        if line.trim().is_empty() {
            continue;
        }
        info!(network = %launch.network, bridge = %launch.layout.bridge, "{line}");
        if let Ok(mut t) = tail.lock() {
            if t.len() == TAIL_LINES {
                t.pop_front();
            }
            t.push_back(line);
        }
    }
}

/// SIGTERM, a bounded wait, then SIGKILL; always reaps the child.
pub(super) async fn terminate(launch: &Launch, child: &mut Child) {
    // `id()` is `None` once the child was reaped, so a recycled pid is never signalled.
    if let Some(pid) = child.id() {
        let _ = signal(&launch.layout, pid, Signal::SIGTERM);
    }
    if timeout(STOP_GRACE, child.wait()).await.is_err() {
        warn!(network = %launch.network, bridge = %launch.layout.bridge, "dnsmasq ignored SIGTERM; killing it");
        let _ = child.kill().await;
    }
}

/// The pid recorded in a pid file.
pub(super) fn read_pid(path: &Path) -> Option<u32> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Whether `pid` is a live dnsmasq running with configuration file `conf`. A zombie has an
/// empty command line, so it does not count.
pub(super) fn runs_conf(pid: u32, conf: &Path) -> bool {
    let wanted = format!("--conf-file={}", conf.display());
    fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| c.split(|b| *b == 0).any(|arg| arg == wanted.as_bytes()))
}

/// The pid of a live dnsmasq that runs this server's configuration according to its pid file.
pub(super) fn live_pid(layout: &Layout) -> Option<u32> {
    read_pid(&layout.pid).filter(|pid| runs_conf(*pid, &layout.conf))
}

/// Sends `signal` to `pid`; `Ok(false)` if there is no such process.
pub(super) fn signal(layout: &Layout, pid: u32, signal: Signal) -> Result<bool, DnsmasqError> {
    let target = i32::try_from(pid)
        .map(Pid::from_raw)
        .map_err(|_| nix::errno::Errno::ESRCH);
    match target.and_then(|p| kill(p, signal)) {
        Ok(()) => Ok(true),
        Err(nix::errno::Errno::ESRCH) => Ok(false),
        Err(source) => Err(DnsmasqError::Signal {
            bridge: layout.bridge.clone(),
            pid,
            source,
        }),
    }
}

/// Terminates a process that is not our child (a stale server from an earlier vinod): SIGTERM,
/// wait until it is gone, SIGKILL after the grace period.
pub(super) async fn terminate_stale(layout: &Layout, pid: u32) -> Result<(), DnsmasqError> {
    warn!(bridge = %layout.bridge, pid, "stopping stale dnsmasq left by an earlier vinod");
    for (sig, wait) in [
        (Signal::SIGTERM, STOP_GRACE),
        (Signal::SIGKILL, Duration::from_secs(1)),
    ] {
        if !signal(layout, pid, sig)? {
            return Ok(());
        }
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if !runs_conf(pid, &layout.conf) {
                return Ok(());
            }
            sleep(POLL).await;
        }
    }
    Err(DnsmasqError::Unkillable {
        bridge: layout.bridge.clone(),
        pid,
    })
}

/// A supervised server: a task that owns the child and restarts it when it dies.
#[derive(Debug)]
pub(super) struct Supervisor {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    pid: watch::Receiver<Option<u32>>,
}

impl Supervisor {
    /// Takes over a launched child.
    pub fn spawn(launch: Launch, child: Child) -> Supervisor {
        let (stop, stop_rx) = oneshot::channel();
        let (pid_tx, pid) = watch::channel(child.id());
        let task = tokio::spawn(supervise(launch, child, stop_rx, pid_tx));
        Supervisor { stop, task, pid }
    }

    /// The pid of the running process, `None` while it waits to be restarted.
    pub fn pid(&self) -> Option<u32> {
        *self.pid.borrow()
    }

    /// Ends supervision and terminates the process (reaped before this returns).
    pub async fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
    }
}

/// Restart delays: 100 ms, doubling up to 30 s, and 100 ms again once a process has run for a
/// minute.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff { next: FIRST_DELAY }
    }

    /// How long to wait before replacing a process that ran for `ran`.
    fn after(&mut self, ran: Duration) -> Duration {
        if ran >= STABLE_AFTER {
            self.next = FIRST_DELAY;
        }
        let wait = self.next;
        self.next = (self.next * 2).min(MAX_DELAY);
        wait
    }
}

enum Event {
    Exited(io::Result<ExitStatus>),
    Due,
    Stop,
}

async fn supervise(
    launch: Launch,
    first: Child,
    mut stop: oneshot::Receiver<()>,
    pid: watch::Sender<Option<u32>>,
) {
    let (bridge, network) = (&launch.layout.bridge, &launch.network);
    let mut child = Some(first);
    let mut started = Instant::now();
    let mut backoff = Backoff::new();
    let mut delay = Duration::ZERO;
    loop {
        pid.send_replace(child.as_ref().and_then(Child::id));
        let event = match child.as_mut() {
            Some(running) => tokio::select! {
                status = running.wait() => Event::Exited(status),
                _ = &mut stop => Event::Stop,
            },
            None => tokio::select! {
                () = sleep(delay) => Event::Due,
                _ = &mut stop => Event::Stop,
            },
        };
        match event {
            Event::Exited(status) => {
                if let Some(mut gone) = child.take().filter(|_| status.is_err()) {
                    // Waiting failed, so the process may still run: make sure it is gone.
                    terminate(&launch, &mut gone).await;
                }
                delay = backoff.after(started.elapsed());
                let status = status.map_or_else(|e| e.to_string(), |s| s.to_string());
                warn!(network = %network, bridge = %bridge, %status, ?delay, "dnsmasq exited; restarting");
            }
            Event::Due => {
                started = Instant::now();
                match launch.launch().await {
                    Ok(c) => child = Some(c),
                    Err(e) => {
                        delay = backoff.after(Duration::ZERO);
                        warn!(network = %network, bridge = %bridge, error = %e, ?delay, "dnsmasq restart failed");
                    }
                }
            }
            Event::Stop => {
                if let Some(mut running) = child.take() {
                    terminate(&launch, &mut running).await;
                }
                pid.send_replace(None);
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap_and_resets_after_stable_running() {
        let mut b = Backoff::new();
        let quick: Vec<u64> = (0..12)
            .map(|_| b.after(Duration::from_secs(1)).as_millis() as u64)
            .collect();
        assert_eq!(&quick[..4], &[100, 200, 400, 800]);
        assert_eq!(quick[11], 30_000);
        assert_eq!(b.after(STABLE_AFTER), FIRST_DELAY);
        assert_eq!(b.after(Duration::ZERO), FIRST_DELAY * 2);
    }
}
