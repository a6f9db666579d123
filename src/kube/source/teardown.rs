//! The end of a Vino on this host: once its host objects are gone (the pass's reconcile
//! removed them), the host withdraws its BareMetalHosts and Secrets, releases its IP claims,
//! removes its status entry and, last, its finalizer. From a Vino being deleted it also
//! removes the finalizers of hosts whose Node no longer exists.

use std::collections::{BTreeMap, BTreeSet};

use kube::ResourceExt;
use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;

use tracing::{debug, info, warn};

use super::{KubeSource, active, selected_hosts};
use crate::api::bmh::BareMetalHost;
use crate::api::host_use::HostUse;
use crate::error_chain;
use crate::kube::finalizer::{self, FinalizeError, State, has_finalizer};
use crate::kube::{KubeError, claims, is_status, publish, status};
use crate::plan::diff::diff;
use crate::plan::ownership;
use crate::reconcile::source::Departing;
use crate::state::{HostState, Owner};

impl KubeSource {
    /// Finishes the Vinos of the last read that no longer select this host (deleted or
    /// deselected) and still carry its finalizer, given the host as the pass left it (`now`),
    /// and lets every Vino being deleted go of hosts whose Node is gone. Returns what cannot be
    /// finished yet; the next pass retries it.
    pub(super) async fn release_departed(
        &self,
        now: &HostState,
        departing: &Departing,
    ) -> Vec<KubeError> {
        let node = &self.node;
        let mut errors = Vec::new();
        let nodes: BTreeSet<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
        for vino in &self.vinos {
            if let Err(e) = finalizer::remove_departed(&self.client, vino, &nodes).await {
                warn!(vino = %Owner::of(vino), error = %error_chain(&e), "cannot let go of gone hosts");
                errors.push(e);
            }
        }
        for vino in self.vinos.iter().filter(|v| !active(v, node)) {
            if !has_finalizer(vino, &node.name) {
                continue;
            }
            let owner = Owner::of(vino);
            if let Some(keep) = departing.get(&owner) {
                // Its VMs stay until metal3 lets their hosts go: withdraw the others first.
                if let Some(keep) = keep
                    && let Err(e) =
                        publish::withdraw_except(&self.client, &owner, &node.name, keep).await
                {
                    warn!(vino = %owner, error = %error_chain(&e), "cannot withdraw BareMetalHosts");
                    errors.push(e);
                }
                continue;
            }
            if !diff(&HostState::default(), &now.owned_by(&owner)).is_empty() {
                debug!(vino = %owner, "host objects still there; teardown waits");
                continue;
            }
            let selected = selected_hosts(vino, &self.nodes, &node.name);
            let client = &self.client;
            let name = node.name.as_str();
            let done = finalizer::reconcile(client, vino, name, false, || async {
                let rep = publish::withdraw(client, &owner, name).await?;
                if !rep.is_complete() {
                    return Err(KubeError::NotWithdrawn {
                        owner: owner.to_string(),
                        pending: rep.pending,
                        errors: rep.errors,
                    });
                }
                claims::release(client, &owner.namespace, &owner.name, name).await?;
                match status::remove_entry(client, &owner.namespace, &owner.name, name, &selected)
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(KubeError::Api { source, .. }) if is_status(&source, 404) => Ok(()),
                    Err(e) => Err(e),
                }
            })
            .await;
            match done {
                Ok(State::Released) => info!(vino = %owner, "torn down; finalizer removed"),
                Ok(_) => {}
                Err(e) => {
                    warn!(vino = %owner, error = %error_chain(&e), "teardown not finished");
                    errors.push(match e {
                        FinalizeError::Kube(e) | FinalizeError::Teardown { source: e, .. } => e,
                    });
                }
            }
        }
        errors
    }

    /// How metal3 uses the BareMetalHosts `names` of `owner` that this host published (one
    /// GET each: only leaving VMs are asked about). A host of that name without this host's
    /// ownership labels is not vinod's and counts as absent.
    pub(super) async fn uses_of(
        &self,
        owner: &Owner,
        names: &[String],
    ) -> Result<BTreeMap<String, HostUse>, KubeError> {
        let resource = ApiResource::erase::<BareMetalHost>(&());
        let api: Api<DynamicObject> =
            Api::namespaced_with(self.client.clone(), &owner.namespace, &resource);
        let labels = ownership(owner, &self.node_name);
        let mut out = BTreeMap::new();
        for name in names {
            let found = api.get_opt(name).await.map_err(|e| {
                KubeError::api(format!("read BareMetalHost {}/{name}", owner.namespace), e)
            })?;
            let Some(found) = found else { continue };
            if !labels.iter().all(|(k, v)| found.labels().get(k) == Some(v)) {
                continue;
            }
            let value = serde_json::to_value(&found).unwrap_or_default();
            out.insert(name.clone(), HostUse::of_object(&value));
        }
        Ok(out)
    }
}
