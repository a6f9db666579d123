//! The end of a Vino on this host: once its host objects are gone (the pass's reconcile
//! removed them), the host withdraws its BareMetalHosts and Secrets, releases its IP claims
//! and deletes its `VinoNode` (and what an earlier version wrote into the Vino). From a Vino
//! being deleted, the host that finds no `VinoNode` left removes the shared finalizer.

use std::collections::{BTreeMap, BTreeSet};

use kube::ResourceExt;
use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;

use tracing::{debug, info, warn};

use super::{KubeSource, active};
use crate::api::Vino;
use crate::api::bmh::BareMetalHost;
use crate::api::host_use::HostUse;
use crate::error_chain;
use crate::kube::summary::coordinator;
use crate::kube::{KubeError, claims, finalizer, membership, publish};
use crate::plan::diff::diff;
use crate::plan::ownership;
use crate::reconcile::source::Departing;
use crate::state::{HostState, Owner};

impl KubeSource {
    /// Finishes the Vinos of the last read that no longer select this host (deleted or
    /// deselected) and that it still serves, given the host as the pass left it (`now`), and
    /// lets a Vino being deleted go once no host serves it. Returns what cannot be finished
    /// yet; the next pass retries it.
    pub(super) async fn release_departed(
        &mut self,
        now: &HostState,
        departing: &Departing,
    ) -> Vec<KubeError> {
        let mut errors = Vec::new();
        let nodes: BTreeSet<String> = self.nodes.iter().map(|n| n.name.clone()).collect();
        let vinos: Vec<Vino> = self
            .vinos
            .iter()
            .filter(|v| !active(v, &self.node))
            .cloned()
            .collect();
        for vino in &vinos {
            // Finalizers of earlier versions' hosts whose Node is gone.
            if let Err(e) = finalizer::remove_departed(&self.client, vino, &nodes).await {
                warn!(vino = %Owner::of(vino), error = %error_chain(&e), "cannot let go of gone hosts");
                errors.push(e);
            }
            let mut released = false;
            if self.serves(vino) {
                match self.release(vino, now, departing).await {
                    Ok(done) => released = done,
                    Err(e) => {
                        warn!(vino = %Owner::of(vino), error = %error_chain(&e), "teardown not finished");
                        errors.push(e);
                        continue;
                    }
                }
                if !released {
                    continue;
                }
            }
            if let Err(e) = self.let_go(vino, released, &nodes).await {
                errors.push(e);
            }
        }
        errors
    }

    /// Tears down what this host published for `vino` and deletes its `VinoNode`, once the
    /// host objects are gone. Returns whether it did.
    async fn release(
        &mut self,
        vino: &Vino,
        now: &HostState,
        departing: &Departing,
    ) -> Result<bool, KubeError> {
        let owner = Owner::of(vino);
        let name = self.node_name.clone();
        if let Some(keep) = departing.get(&owner) {
            // Its VMs stay until metal3 lets their hosts go: withdraw the others first.
            if let Some(keep) = keep {
                publish::withdraw_except(&self.client, &owner, &name, keep).await?;
            }
            return Ok(false);
        }
        if !diff(&HostState::default(), &now.owned_by(&owner)).is_empty() {
            debug!(vino = %owner, "host objects still there; teardown waits");
            return Ok(false);
        }
        let rep = publish::withdraw(&self.client, &owner, &name).await?;
        if !rep.is_complete() {
            return Err(KubeError::NotWithdrawn {
                owner: owner.to_string(),
                pending: rep.pending,
                errors: rep.errors,
            });
        }
        claims::release(&self.client, &owner.namespace, &owner.name, &name).await?;
        membership::delete(&self.client, &owner, &name).await?;
        if let Some(m) = self.members.as_mut() {
            m.remove(&owner);
        }
        membership::migrate(&self.client, vino, &name).await?;
        info!(vino = %owner, "torn down; VinoNode deleted");
        Ok(true)
    }

    /// For `vino` being deleted: removes the shared finalizer when no `VinoNode` is left.
    /// Asked by the host that just `released` it, and by the Vino's coordinator (every host
    /// when the Vino selects no Node), which waits for the others: [`KubeError::Waiting`].
    async fn let_go(
        &self,
        vino: &Vino,
        released: bool,
        nodes: &BTreeSet<String>,
    ) -> Result<(), KubeError> {
        if vino.metadata.deletion_timestamp.is_none() || !membership::has_finalizer(vino) {
            return Ok(());
        }
        let watcher = match coordinator(vino, &self.nodes) {
            Some(c) => c == self.node_name,
            None => true,
        };
        if !(released || watcher) {
            return Ok(());
        }
        let owner = Owner::of(vino);
        let left = membership::list_of(&self.client, &owner).await?;
        if left.is_empty() {
            membership::remove_finalizer(&self.client, vino).await?;
            return Ok(());
        }
        let hosts: Vec<String> = left.iter().map(|o| o.spec.node.clone()).collect();
        let gone = hosts.iter().all(|h| !nodes.contains(h));
        if watcher || gone {
            debug!(vino = %owner, ?hosts, "deletion waits for hosts");
            return Err(KubeError::Waiting {
                owner: owner.to_string(),
                hosts,
            });
        }
        Ok(())
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
