//! `vinod status`: the daemon keeps a snapshot of its last pass and serves it as JSON on a
//! root-only unix socket (`run_dir/vinod.sock`); the CLI reads it from there.

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use tokio::net::UnixListener;
use tokio::sync::watch;
use tracing::warn;

use crate::api::{Power, VmState};
use crate::plan::VinoPlan;
use crate::reconcile::report::VinoReport;
use crate::state::HostState;

/// File name of the socket in `run_dir`.
pub const SOCKET: &str = "vinod.sock";

/// Errors of the status socket.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    /// The socket could not be created or reached.
    #[error("status socket {path}")]
    Socket {
        /// Its path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The daemon's answer was not a status document.
    #[error("status socket {path}: unreadable answer: {reason}")]
    Decode {
        /// Its path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
}

/// What the daemon last saw and did.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Snapshot {
    /// This host.
    pub node: String,
    /// When the last pass ended (seconds since the Unix epoch); 0 before the first.
    pub last_pass_unix: u64,
    /// Whether the host matched every plannable Vino after it.
    pub converged: bool,
    /// Per-Vino status.
    pub vinos: Vec<VinoReport>,
    /// VMs vinod wants, with what libvirt has.
    pub vms: Vec<VmStatus>,
    /// DHCP servers vinod runs.
    pub dhcp: Vec<DhcpStatus>,
    /// Errors of the last pass.
    pub errors: Vec<String>,
}

/// One VM.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VmStatus {
    /// Domain name.
    pub name: String,
    /// Owning Vino.
    pub vino: String,
    /// Reserved addresses, one per NIC.
    pub ips: Vec<String>,
    /// Whether libvirt has the domain as planned.
    pub defined: bool,
    /// Whether it runs (absent when libvirt does not have it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<Power>,
    /// metal3's provisioning state of its BareMetalHost (cluster mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provisioning: Option<String>,
    /// Whether it counts as ready (see `VmState`).
    #[serde(default)]
    pub ready: bool,
    /// Why it is not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One DHCP server.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DhcpStatus {
    /// Bridge.
    pub bridge: String,
    /// Network.
    pub network: String,
    /// Whether its process is alive.
    pub running: bool,
    /// Number of reservations it serves.
    pub reservations: usize,
}

impl Snapshot {
    /// The snapshot after a pass that planned `plans`, left the host at `now`, and reported
    /// `vinos` and `errors`.
    pub fn after_pass(
        node: &str,
        plans: &[VinoPlan],
        now: &HostState,
        vinos: Vec<VinoReport>,
        errors: Vec<String>,
        converged: bool,
    ) -> Snapshot {
        let states: std::collections::BTreeMap<&str, &VmState> = vinos
            .iter()
            .flat_map(|r| &r.status.vms)
            .map(|s| (s.name.as_str(), s))
            .collect();
        let mut vms: Vec<VmStatus> = plans
            .iter()
            .flat_map(|p| p.vms.iter().map(move |vm| (p, vm)))
            .map(|(p, vm)| {
                let defined = now.domains.get(&vm.name).is_some_and(|d| {
                    p.host
                        .domains
                        .get(&vm.name)
                        .is_some_and(|w| w.spec_hash == d.spec_hash)
                });
                let state = states.get(vm.name.as_str());
                VmStatus {
                    name: vm.name.clone(),
                    vino: p.owner.to_string(),
                    ips: vm.nics.iter().map(|n| n.ip.to_string()).collect(),
                    defined,
                    power: power_of(now, &vm.name),
                    provisioning: state.and_then(|s| s.provisioning.clone()),
                    ready: state.map_or(defined, |s| s.ready),
                    message: state.and_then(|s| s.message.clone()),
                }
            })
            .collect();
        // Domains of Vinos this pass could not plan stay as they are: still list them.
        let planned: std::collections::BTreeSet<String> =
            vms.iter().map(|v| v.name.clone()).collect();
        let kept: Vec<VmStatus> = now
            .domains
            .values()
            .filter(|d| !planned.contains(&d.name))
            .map(|d| VmStatus {
                name: d.name.clone(),
                vino: d.owner.to_string(),
                ips: Vec::new(),
                defined: true,
                power: power_of(now, &d.name),
                provisioning: None,
                ready: false,
                message: Some("its Vino is not planned on this host".to_string()),
            })
            .collect();
        vms.extend(kept);
        let dhcp = plans
            .iter()
            .flat_map(|p| p.host.dhcp.values())
            .map(|s| DhcpStatus {
                bridge: s.bridge.clone(),
                network: s.network.clone(),
                running: now.dhcp.contains_key(&s.bridge),
                reservations: s.hosts.len(),
            })
            .collect();
        let last_pass_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Snapshot {
            node: node.to_string(),
            last_pass_unix,
            converged,
            vinos,
            vms,
            dhcp,
            errors,
        }
    }
}

/// The power of domain `name` in `now`, if libvirt has it.
fn power_of(now: &HostState, name: &str) -> Option<Power> {
    now.domains.get(name).map(|d| Power::of(d.running))
}

/// Serves the latest snapshot on `path` (mode 0600) until the task is dropped.
pub async fn serve(path: PathBuf, snapshots: watch::Receiver<Snapshot>) -> Result<(), StatusError> {
    let err = |source| StatusError::Socket {
        path: path.clone(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    // A socket file left by an earlier vinod would make bind fail.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).map_err(err)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    loop {
        let (mut conn, _) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                warn!(error = %e, "status socket: accept failed");
                continue;
            }
        };
        let body = serde_json::to_vec(&*snapshots.borrow()).unwrap_or_default();
        tokio::spawn(async move {
            let _ = tokio::time::timeout(Duration::from_secs(5), conn.write_all(&body)).await;
        });
    }
}

/// Reads the daemon's snapshot from `path`.
pub fn fetch(path: &Path) -> Result<Snapshot, StatusError> {
    let err = |source| StatusError::Socket {
        path: path.to_path_buf(),
        source,
    };
    let mut conn = UnixStream::connect(path).map_err(err)?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(err)?;
    let mut body = Vec::new();
    conn.read_to_end(&mut body).map_err(err)?;
    serde_json::from_slice(&body).map_err(|e| StatusError::Decode {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Domain, Owner};

    #[test]
    fn domains_of_unplanned_vinos_are_still_listed() {
        let owner = Owner {
            namespace: "lab".into(),
            name: "x".into(),
        };
        let mut now = HostState::default();
        now.domains.insert(
            "lab.x.worker-0".into(),
            Domain {
                name: "lab.x.worker-0".into(),
                uuid: "u".into(),
                owner,
                spec_hash: "h".into(),
                xml: String::new(),
                pinned_cpus: Default::default(),
                running: true,
            },
        );
        let snap = Snapshot::after_pass("host-a", &[], &now, Vec::new(), Vec::new(), false);
        assert_eq!(snap.vms.len(), 1);
        assert_eq!(snap.vms[0].name, "lab.x.worker-0");
        assert_eq!(snap.vms[0].vino, "lab/x");
        assert!(snap.vms[0].defined);
        assert_eq!(snap.vms[0].power, Some(Power::On));
        assert!(!snap.vms[0].ready);
    }
}
