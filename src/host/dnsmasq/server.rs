//! The adapter's operations. They run on the adapter's own thread and one at a time.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::PathBuf;

use nix::sys::signal::Signal;
use tokio::process::Command;
use tokio::sync::Mutex;
use tracing::info;

use super::DnsmasqError;
use super::files::{self, Layout, Named};
use super::supervisor::{self, Launch, Supervisor};
use crate::state::DhcpServer;

/// The servers of one adapter instance.
#[derive(Debug)]
pub(super) struct Servers {
    program: PathBuf,
    run_dir: PathBuf,
    /// Supervised servers by bridge; the lock also serialises the operations.
    supervised: Mutex<BTreeMap<String, Supervisor>>,
}

impl Servers {
    pub fn new(program: PathBuf, run_dir: PathBuf) -> Servers {
        Servers {
            program,
            run_dir,
            supervised: Mutex::new(BTreeMap::new()),
        }
    }

    /// Start and reconfigure: test, replace the running server (the lease file stays), start.
    pub async fn install(&self, server: &DhcpServer) -> Result<(), DnsmasqError> {
        let layout = Layout::new(&self.run_dir, &server.bridge)?;
        let mut supervised = self.supervised.lock().await;
        self.check_owner(&layout, server, supervised.get(&server.bridge))?;
        files::ensure_dir(&layout, &files::servers_dir(&self.run_dir))?;
        let created = files::ensure_dir(&layout, &layout.dir)?;
        if let Err(e) = self.test(&layout, server).await {
            let _ = fs::remove_file(&layout.conf_new);
            if created {
                let _ = fs::remove_dir(&layout.dir);
            }
            return Err(e);
        }

        if let Some(old) = supervised.remove(&server.bridge) {
            old.stop().await;
        }
        if let Some(pid) = supervisor::live_pid(&layout) {
            supervisor::terminate_stale(&layout, pid).await?;
        }
        fs::rename(&layout.conf_new, &layout.conf)
            .map_err(layout.io("rename", &layout.conf_new))?;
        files::write_marker(&layout, server)?;
        if let Some(parent) = server.leasefile.parent() {
            files::ensure_dir(&layout, parent)?;
        }
        files::sync_hosts(&layout, &server.hostsdir, &server.hosts)?;

        let launch = Launch {
            program: self.program.clone(),
            layout,
            network: server.network.clone(),
        };
        let child = launch.launch().await?;
        supervised.insert(server.bridge.clone(), Supervisor::spawn(launch, child));
        Ok(())
    }

    /// Rejects a directory that is not vinod's, or one whose live server another Vino owns.
    fn check_owner(
        &self,
        layout: &Layout,
        server: &DhcpServer,
        ours: Option<&Supervisor>,
    ) -> Result<(), DnsmasqError> {
        let is_empty = fs::read_dir(&layout.dir).map_or(true, |mut d| d.next().is_none());
        match files::read_marker(layout)? {
            None if is_empty => Ok(()),
            None => Err(DnsmasqError::NotOwned {
                bridge: layout.bridge.clone(),
                dir: layout.dir.clone(),
            }),
            Some((owner, _)) if owner == server.owner => Ok(()),
            Some((owner, _)) => {
                let alive = ours.and_then(Supervisor::pid).is_some()
                    || supervisor::live_pid(layout).is_some();
                if alive {
                    Err(DnsmasqError::Clash {
                        bridge: layout.bridge.clone(),
                        other: owner.to_string(),
                        owner: server.owner.to_string(),
                    })
                } else {
                    Ok(())
                }
            }
        }
    }

    /// Writes the configuration to `conf_new` and has dnsmasq check it.
    async fn test(&self, layout: &Layout, server: &DhcpServer) -> Result<(), DnsmasqError> {
        files::write_atomic(layout, &layout.conf_new, &server.config)?;
        let out = Command::new(&self.program)
            .arg("--test")
            .arg(format!("--conf-file={}", layout.conf_new.display()))
            .env_remove("NOTIFY_SOCKET")
            .output()
            .await
            .map_err(|source| DnsmasqError::Spawn {
                bridge: layout.bridge.clone(),
                program: self.program.clone(),
                source,
            })?;
        if out.status.success() {
            return Ok(());
        }
        let text = [out.stderr, out.stdout].concat();
        let message = String::from_utf8_lossy(&text)
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        Err(DnsmasqError::Rejected {
            bridge: layout.bridge.clone(),
            network: server.network.clone(),
            message,
        })
    }

    /// Makes the reservation files equal `server.hosts` in `server.hostsdir` (the directory
    /// of the configuration dnsmasq runs with: a changed configuration is installed, not this);
    /// SIGHUP if a record went away.
    pub async fn set_hosts(&self, server: &DhcpServer) -> Result<(), DnsmasqError> {
        let layout = Layout::new(&self.run_dir, &server.bridge)?;
        let supervised = self.supervised.lock().await;
        if files::read_marker(&layout)?.is_none() {
            return Err(self.absent(&layout));
        }
        if !layout.conf.is_file() {
            return Err(self.absent(&layout));
        }
        if !files::sync_hosts(&layout, &server.hostsdir, &server.hosts)? {
            return Ok(());
        }
        let pid = supervised
            .get(&server.bridge)
            .and_then(Supervisor::pid)
            .or_else(|| supervisor::live_pid(&layout));
        // A server that is not running reads every file when it starts again.
        let Some(pid) = pid else { return Ok(()) };
        info!(network = %server.network, bridge = %server.bridge, pid, "reservations removed or changed; reloading dnsmasq");
        supervisor::signal(&layout, pid, Signal::SIGHUP).map(drop)
    }

    fn absent(&self, layout: &Layout) -> DnsmasqError {
        if layout.dir.exists() {
            DnsmasqError::NotOwned {
                bridge: layout.bridge.clone(),
                dir: layout.dir.clone(),
            }
        } else {
            DnsmasqError::NotStarted {
                bridge: layout.bridge.clone(),
            }
        }
    }

    /// Stops the server and removes its directory, reservations and lease file. Stopping a
    /// bridge without a server is not an error.
    pub async fn stop(&self, bridge: &str) -> Result<(), DnsmasqError> {
        let layout = Layout::new(&self.run_dir, bridge)?;
        let mut supervised = self.supervised.lock().await;
        if let Some(old) = supervised.remove(bridge) {
            old.stop().await;
        }
        if !layout.dir.exists() {
            return Ok(());
        }
        let Some((_, network)) = files::read_marker(&layout)? else {
            return Err(self.absent(&layout));
        };
        if let Some(pid) = supervisor::live_pid(&layout) {
            supervisor::terminate_stale(&layout, pid).await?;
        }
        match fs::read_to_string(&layout.conf) {
            Ok(config) => {
                let named = Named::from_config(bridge, &network, &config)?;
                files::remove_file(&layout, &named.leasefile)?;
                files::remove_dir(&layout, &named.hostsdir)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(layout.io("read", &layout.conf)(e)),
        }
        files::remove_dir(&layout, &layout.dir)?;
        info!(network = %network, bridge = %bridge, "dnsmasq stopped and removed");
        Ok(())
    }

    /// Every marked server whose process is alive.
    pub async fn observe(&self) -> Result<BTreeMap<String, DhcpServer>, DnsmasqError> {
        let supervised = self.supervised.lock().await;
        let root = files::servers_dir(&self.run_dir);
        let mut found = BTreeMap::new();
        let entries = match fs::read_dir(&root) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(found),
            other => other.map_err(|source| DnsmasqError::Io {
                bridge: "*".into(),
                action: "list",
                path: root.clone(),
                source,
            })?,
        };
        for entry in entries.flatten() {
            let bridge = entry.file_name().to_string_lossy().into_owned();
            let Ok(layout) = Layout::new(&self.run_dir, &bridge) else {
                continue;
            };
            if !layout.dir.is_dir() {
                continue;
            }
            let Some((owner, network)) = files::read_marker(&layout)? else {
                continue;
            };
            let alive = supervised.get(&bridge).and_then(Supervisor::pid).is_some()
                || supervisor::live_pid(&layout).is_some();
            if !alive {
                continue;
            }
            let config =
                fs::read_to_string(&layout.conf).map_err(layout.io("read", &layout.conf))?;
            let named = Named::from_config(&bridge, &network, &config)?;
            let hosts = files::read_hosts(&layout, &named.hostsdir)?;
            found.insert(
                bridge.clone(),
                DhcpServer {
                    bridge,
                    network,
                    owner,
                    config,
                    hostsdir: named.hostsdir,
                    leasefile: named.leasefile,
                    hosts,
                },
            );
        }
        Ok(found)
    }
}
