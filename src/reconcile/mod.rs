//! Observe, diff, apply over the host adapters, and the whole pass around it ([`pass`]) with
//! the one mode-specific part behind [`source::VinoSource`]. The adapters only ever see what
//! vinod owns; the ordering and the policy (what to do when a step fails) live here.

mod departures;
pub mod files;
pub mod pass;
pub mod report;
pub mod source;
pub mod standalone;

use tracing::{info, warn};

use crate::host::{Bridges, DhcpServers, Hypervisor};
use crate::plan::HostNetwork;
use crate::plan::diff::{Op, diff};
use crate::state::HostState;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors of a reconcile pass.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The host could not be read; nothing was changed.
    #[error("cannot observe {what}")]
    Observe {
        /// Which adapter failed.
        what: &'static str,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// An operation failed.
    #[error("cannot {op}")]
    Apply {
        /// The operation, e.g. `define domain x`.
        op: String,
        /// Why.
        #[source]
        source: BoxError,
    },
}

/// The host adapters vinod drives.
pub struct Adapters<B, D, H> {
    /// Linux bridges.
    pub bridges: B,
    /// DHCP servers.
    pub dhcp: D,
    /// libvirt.
    pub hypervisor: H,
}

/// What a pass did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Operations applied, in order.
    pub applied: Vec<String>,
    /// Operations that failed (deletes are all attempted; creates stop at the first failure).
    pub errors: Vec<ReconcileError>,
    /// Changes that take effect only when a VM is next powered on.
    pub pending_restart: Vec<String>,
}

/// Called after each applied operation with the count so far; lets tests stop the process at
/// a chosen point of a pass.
pub type AfterOp<'a> = &'a (dyn Fn(usize) + Sync);

impl<B: Bridges + Sync, D: DhcpServers + Sync, H: Hypervisor + Sync> Adapters<B, D, H> {
    /// Reads the host's own network (what no Vino may take over).
    pub async fn host_network(&self) -> Result<HostNetwork, ReconcileError> {
        self.bridges
            .host_network()
            .await
            .map_err(|e| ReconcileError::Observe {
                what: "the host's network",
                source: Box::new(e),
            })
    }

    /// Reads the owned state of the host.
    pub async fn observe(&self) -> Result<HostState, ReconcileError> {
        let bridges = self
            .bridges
            .observe()
            .await
            .map_err(|e| ReconcileError::Observe {
                what: "bridges",
                source: Box::new(e),
            })?;
        let dhcp = self
            .dhcp
            .observe()
            .await
            .map_err(|e| ReconcileError::Observe {
                what: "DHCP servers",
                source: Box::new(e),
            })?;
        let (volumes, domains) =
            self.hypervisor
                .observe()
                .await
                .map_err(|e| ReconcileError::Observe {
                    what: "libvirt",
                    source: Box::new(e),
                })?;
        Ok(HostState {
            bridges,
            dhcp,
            volumes,
            domains,
        })
    }

    /// Observes, diffs against `desired` and applies the difference.
    pub async fn reconcile(
        &self,
        desired: &HostState,
        after_op: AfterOp<'_>,
    ) -> Result<Outcome, ReconcileError> {
        let observed = self.observe().await?;
        let ops = diff(desired, &observed);
        Ok(self.apply(ops, after_op).await)
    }

    /// Applies `ops` in order.
    pub async fn apply(&self, ops: Vec<Op>, after_op: AfterOp<'_>) -> Outcome {
        let mut out = Outcome::default();
        for op in ops {
            let label = op.to_string();
            let delete = op.is_delete();
            match self.apply_one(&op).await {
                Ok(()) => {
                    info!(op = %label, "applied");
                    if let Op::RedefineDomain(d) = &op {
                        out.pending_restart.push(d.name.clone());
                    }
                    out.applied.push(label);
                    after_op(out.applied.len());
                }
                Err(source) => {
                    warn!(op = %label, error = %source, "failed");
                    out.errors.push(ReconcileError::Apply { op: label, source });
                    // Later creates may depend on this one; the next pass retries from scratch.
                    if !delete {
                        break;
                    }
                }
            }
        }
        out
    }

    async fn apply_one(&self, op: &Op) -> Result<(), BoxError> {
        fn boxed<E: std::error::Error + Send + Sync + 'static>(e: E) -> BoxError {
            Box::new(e)
        }
        match op {
            Op::DeleteDomain(d) => self.hypervisor.undefine(d).await.map_err(boxed),
            Op::DeleteVolume(v) => self.hypervisor.delete_volume(v).await.map_err(boxed),
            Op::StopDhcp(s) => self.dhcp.stop(&s.bridge).await.map_err(boxed),
            Op::DeleteBridge(b) => self.bridges.delete(b).await.map_err(boxed),
            Op::CreateBridge(b) => self.bridges.create(b).await.map_err(boxed),
            Op::UpdateBridge { desired, observed } => {
                self.bridges.update(desired, observed).await.map_err(boxed)
            }
            Op::StartDhcp(s) => self.dhcp.start(s).await.map_err(boxed),
            Op::ReconfigureDhcp(s) => self.dhcp.reconfigure(s).await.map_err(boxed),
            Op::SetDhcpHosts(s) => self.dhcp.set_hosts(s).await.map_err(boxed),
            Op::CreateVolume(v) => self.hypervisor.create_volume(v).await.map_err(boxed),
            Op::DefineDomain(d) => self.hypervisor.define(d).await.map_err(boxed),
            Op::RedefineDomain(d) => self.hypervisor.redefine(d).await.map_err(boxed),
        }
    }
}
