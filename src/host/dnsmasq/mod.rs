//! Supervised per-bridge dnsmasq instances ([`DhcpServers`]).
//!
//! Each server's files live in `<run_dir>/dnsmasq/<bridge>/`: `dnsmasq.conf`, `dnsmasq.pid` and
//! the ownership marker `owner` (`owner=<namespace>/<name>`, `network=<name>`); only
//! directories holding the marker are vinod's. The reservation directory and the lease file
//! come typed with the desired server (`hostsdir`, `leasefile`, the paths its configuration
//! names); for a server found on disk they are read from the configuration it runs with.
//!
//! dnsmasq runs in the foreground as a child of vinod, logging to stderr, which is forwarded
//! to `tracing`. A task per server reaps the child and restarts it with backoff when it dies.
//! All children are spawned from one thread owned by [`Dnsmasq`], which inherits the network
//! namespace of the thread that called [`Dnsmasq::new`].

mod files;
mod log_lines;
mod server;
mod supervisor;

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::thread;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

use super::DhcpServers;
use crate::state::DhcpServer;
use server::Servers;

/// Errors of the dnsmasq adapter.
#[derive(Debug, thiserror::Error)]
pub enum DnsmasqError {
    /// A bridge or reservation file name that cannot be used as a file name.
    #[error("bridge {bridge}: {name:?} cannot be used as a file name")]
    BadName {
        /// Bridge.
        bridge: String,
        /// The offending name.
        name: String,
    },
    /// The configuration does not name an absolute reservation directory or lease file.
    #[error(
        "bridge {bridge}, network {network}: the configuration needs an absolute {directive}= path"
    )]
    MissingPath {
        /// Bridge.
        bridge: String,
        /// Network.
        network: String,
        /// The missing directive.
        directive: &'static str,
    },
    /// `dnsmasq --test` rejected the configuration; nothing was changed.
    #[error("bridge {bridge}, network {network}: dnsmasq rejects the configuration: {message}")]
    Rejected {
        /// Bridge.
        bridge: String,
        /// Network.
        network: String,
        /// dnsmasq's message.
        message: String,
    },
    /// dnsmasq exited (or never became ready) while starting.
    #[error("bridge {bridge}, network {network}: dnsmasq failed to start ({status}): {message}")]
    Exited {
        /// Bridge.
        bridge: String,
        /// Network.
        network: String,
        /// Exit status.
        status: String,
        /// dnsmasq's last log lines.
        message: String,
    },
    /// The server directory exists but lacks vinod's marker.
    #[error("bridge {bridge}: {} is not vinod's (no owner marker)", dir.display())]
    NotOwned {
        /// Bridge.
        bridge: String,
        /// The directory.
        dir: PathBuf,
    },
    /// A live server on the bridge belongs to another Vino.
    #[error("bridge {bridge}: served for Vino {other}, not {owner}")]
    Clash {
        /// Bridge.
        bridge: String,
        /// The owner of the running server.
        other: String,
        /// The owner asking.
        owner: String,
    },
    /// The server has never been started (no configuration on disk).
    #[error("bridge {bridge}: no dnsmasq configured")]
    NotStarted {
        /// Bridge.
        bridge: String,
    },
    /// The ownership marker cannot be parsed.
    #[error("bridge {bridge}: unreadable owner marker {}", path.display())]
    BadMarker {
        /// Bridge.
        bridge: String,
        /// The marker file.
        path: PathBuf,
    },
    /// A file operation failed.
    #[error("bridge {bridge}: cannot {action} {}", path.display())]
    Io {
        /// Bridge.
        bridge: String,
        /// What was attempted.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The dnsmasq binary could not be run.
    #[error("bridge {bridge}: cannot run {}", program.display())]
    Spawn {
        /// Bridge.
        bridge: String,
        /// The binary.
        program: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// A process could not be signalled.
    #[error("bridge {bridge}: cannot signal dnsmasq {pid}")]
    Signal {
        /// Bridge.
        bridge: String,
        /// Process id.
        pid: u32,
        /// The cause.
        #[source]
        source: nix::Error,
    },
    /// A stale dnsmasq survived SIGKILL.
    #[error("bridge {bridge}: stale dnsmasq {pid} does not exit")]
    Unkillable {
        /// Bridge.
        bridge: String,
        /// Process id.
        pid: u32,
    },
    /// The adapter's thread could not be started.
    #[error("cannot start the dnsmasq supervisor thread")]
    Thread(#[source] io::Error),
    /// The adapter's thread has stopped.
    #[error("the dnsmasq supervisor thread has stopped")]
    Stopped,
}

/// The dnsmasq adapter.
///
/// It owns a thread running a single-threaded tokio runtime; every dnsmasq (first start and
/// restarts) is spawned from that thread, so all servers run in the network namespace of the
/// thread that called [`Dnsmasq::new`], whatever runtime the caller uses. Dropping it ends
/// supervision but leaves the processes running; a later instance stops them before starting
/// its own (see [`DhcpServers::start`]).
#[derive(Debug)]
pub struct Dnsmasq {
    servers: Arc<Servers>,
    runtime: Handle,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl Dnsmasq {
    /// An adapter running `dnsmasq` (the binary) with files under `run_dir` (absolute).
    ///
    /// Call it on a thread that is in the network namespace the servers must run in (in vinod,
    /// the host's): the adapter's thread inherits that namespace, and the adapter may then be
    /// used from any thread or runtime.
    pub fn new(
        dnsmasq: impl Into<PathBuf>,
        run_dir: impl Into<PathBuf>,
    ) -> Result<Dnsmasq, DnsmasqError> {
        let servers = Arc::new(Servers::new(dnsmasq.into(), run_dir.into()));
        let (shutdown, stopped) = oneshot::channel::<()>();
        let (ready_tx, ready) = std::sync::mpsc::channel();
        let thread = thread::Builder::new()
            .name("vinod-dnsmasq".into())
            .spawn(
                move || match Builder::new_current_thread().enable_all().build() {
                    Ok(rt) => {
                        let _ = ready_tx.send(Ok(rt.handle().clone()));
                        rt.block_on(async {
                            let _ = stopped.await;
                        });
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                    }
                },
            )
            .map_err(DnsmasqError::Thread)?;
        let runtime = ready
            .recv()
            .map_err(|_| DnsmasqError::Stopped)?
            .map_err(DnsmasqError::Thread)?;
        Ok(Dnsmasq {
            servers,
            runtime,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// Runs `op` on the adapter's thread.
    fn run<T, F, O>(
        &self,
        op: O,
    ) -> impl Future<Output = Result<T, DnsmasqError>> + Send + use<T, F, O>
    where
        O: FnOnce(Arc<Servers>) -> F,
        T: Send + 'static,
        F: Future<Output = Result<T, DnsmasqError>> + Send + 'static,
    {
        let (runtime, task) = (self.runtime.clone(), op(self.servers.clone()));
        async move {
            match runtime.spawn(task).await {
                Ok(result) => result,
                Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                Err(_) => Err(DnsmasqError::Stopped),
            }
        }
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl DhcpServers for Dnsmasq {
    type Error = DnsmasqError;

    fn observe(
        &self,
    ) -> impl Future<Output = Result<BTreeMap<String, DhcpServer>, DnsmasqError>> + Send {
        self.run(|s| async move { s.observe().await })
    }

    /// Tests the configuration, then stops whatever serves the bridge now (a server this
    /// instance supervises, or a stale dnsmasq whose pid file and command line match), writes
    /// the files and starts a supervised dnsmasq. Returns once dnsmasq has bound its sockets.
    fn start(&self, server: &DhcpServer) -> impl Future<Output = Result<(), DnsmasqError>> + Send {
        let server = server.clone();
        self.run(|s| async move { s.install(&server).await })
    }

    fn reconfigure(
        &self,
        server: &DhcpServer,
    ) -> impl Future<Output = Result<(), DnsmasqError>> + Send {
        let server = server.clone();
        self.run(|s| async move { s.install(&server).await })
    }

    /// Additions are picked up by dnsmasq's directory watch; removed or rewritten files are
    /// followed by a SIGHUP, because the watch only ever adds records.
    fn set_hosts(
        &self,
        server: &DhcpServer,
    ) -> impl Future<Output = Result<(), DnsmasqError>> + Send {
        let server = server.clone();
        self.run(|s| async move { s.set_hosts(&server).await })
    }

    fn stop(&self, bridge: &str) -> impl Future<Output = Result<(), DnsmasqError>> + Send {
        let bridge = bridge.to_string();
        self.run(|s| async move { s.stop(&bridge).await })
    }
}
