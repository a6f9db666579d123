//! The end of a Vino on this host: once its host objects are gone (the pass's reconcile
//! removed them), the host withdraws its BareMetalHosts and Secrets, releases its IP claims,
//! removes its status entry and, last, its finalizer.

use tracing::{debug, info, warn};

use super::{Cluster, ReadError, active, chain, is_gone, selected_hosts};
use crate::api::Vino;
use crate::daemon::inputs::owner_of;
use crate::host::{Bridges, DhcpServers, Hypervisor};
use crate::kube::finalizer::{self, State, has_finalizer};
use crate::kube::{KubeError, claims, publish, status};
use crate::plan::NodeFacts;
use crate::plan::diff::diff;
use crate::state::HostState;

impl<B: Bridges + Sync, D: DhcpServers + Sync, H: Hypervisor + Sync> Cluster<B, D, H> {
    /// Finishes the Vinos in `vinos` that no longer select `node` (deleted or deselected)
    /// and still carry this host's finalizer, given the host as the pass left it (`now`).
    /// What cannot be finished yet is added to `errors` and retried by the next pass.
    pub(super) async fn release_departed(
        &self,
        vinos: &[Vino],
        node: &NodeFacts,
        all_nodes: &[NodeFacts],
        now: &HostState,
        errors: &mut Vec<String>,
    ) {
        for vino in vinos.iter().filter(|v| !active(v, node)) {
            if !has_finalizer(vino, &node.name) {
                continue;
            }
            let owner = owner_of(vino);
            if !diff(&HostState::default(), &now.owned_by(&owner)).is_empty() {
                debug!(vino = %owner, "host objects still there; teardown waits");
                continue;
            }
            let selected = selected_hosts(vino, all_nodes, &node.name);
            let client = &self.client;
            let name = node.name.as_str();
            let done = finalizer::reconcile(client, vino, name, false, || async {
                let rep = publish::withdraw(client, &owner, name)
                    .await
                    .map_err(|e| ReadError(chain(&e)))?;
                if !rep.is_complete() {
                    return Err(ReadError(format!(
                        "objects not withdrawn yet: pending {:?}, errors {:?}",
                        rep.pending, rep.errors
                    )));
                }
                claims::release(client, &owner.namespace, &owner.name, name)
                    .await
                    .map_err(|e| ReadError(chain(&e)))?;
                match status::remove_entry(client, &owner.namespace, &owner.name, name, &selected)
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(KubeError::Api { source, .. }) if is_gone(&source) => Ok(()),
                    Err(e) => Err(ReadError(chain(&e))),
                }
            })
            .await;
            match done {
                Ok(State::Released) => info!(vino = %owner, "torn down; finalizer removed"),
                Ok(_) => {}
                Err(e) => {
                    warn!(vino = %owner, error = %chain(&e), "teardown not finished");
                    errors.push(chain(&e));
                }
            }
        }
    }
}
