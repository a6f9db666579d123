//! Kubernetes Events about a pass's VMs: created, deleted, failed to build; one Event per kind
//! and Vino per pass, naming every VM it is about.

use tracing::warn;

use std::collections::BTreeSet;

use super::KubeSource;
use crate::error_chain;
use crate::reconcile::source::Finished;
use crate::state::Owner;

impl KubeSource {
    /// Events on each Vino for the VMs this pass created, deleted or failed to build. A
    /// failed Event is only logged.
    pub(super) async fn send_events(&mut self, pass: &Finished<'_>) {
        let (plans, observed, now, error) = (pass.plans, pass.observed, pass.now, pass.first_error);
        for vm in plans.iter().flat_map(|p| &p.vms) {
            self.published_as
                .insert(vm.name.clone(), vm.bare_metal_host.clone());
        }
        let mut sent = Vec::new();
        // One Event per kind and Vino per pass, however many VMs it is about.
        for vino in &self.vinos {
            let owner = Owner::of(vino);
            let before = observed.owned_by(&owner).domains;
            let after = now.owned_by(&owner).domains;
            let plan = plans.iter().find(|p| p.owner == owner);
            let with_host = |name: &String| (name.clone(), self.published_as.get(name).cloned());
            let created: Vec<_> = after
                .keys()
                .filter(|n| !before.contains_key(*n))
                .map(with_host)
                .collect();
            let deleted: Vec<_> = before
                .keys()
                .filter(|n| !after.contains_key(*n))
                .map(with_host)
                .collect();
            sent.push(self.events.vms_created(vino, &created).await);
            sent.push(self.events.vms_deleted(vino, &deleted).await);
            if let (Some(p), Some(e)) = (plan, error) {
                let failed: Vec<(String, String)> = p
                    .vms
                    .iter()
                    .filter(|vm| {
                        !after.get(&vm.name).is_some_and(|d| {
                            p.host
                                .domains
                                .get(&vm.name)
                                .is_some_and(|w| w.spec_hash == d.spec_hash)
                        })
                    })
                    .map(|vm| (vm.name.clone(), vm.bare_metal_host.clone()))
                    .collect();
                sent.push(self.events.vms_failed(vino, &failed, e).await);
            }
        }
        // Deleted VMs' names are no longer needed; planned ones stay for their deletion.
        let planned: BTreeSet<&String> =
            plans.iter().flat_map(|p| &p.vms).map(|v| &v.name).collect();
        let on_host: BTreeSet<String> = now.domains.keys().cloned().collect();
        self.published_as
            .retain(|domain, _| planned.contains(domain) || on_host.contains(domain));
        for e in sent.into_iter().filter_map(Result::err) {
            warn!(error = %error_chain(&e), "cannot send an Event");
        }
    }
}
