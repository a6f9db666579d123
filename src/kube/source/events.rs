//! Kubernetes Events about a pass's VMs: created, deleted, failed to build.

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
        for vino in &self.vinos {
            let owner = Owner::of(vino);
            let before = observed.owned_by(&owner).domains;
            let after = now.owned_by(&owner).domains;
            let plan = plans.iter().find(|p| p.owner == owner);
            for name in after.keys().filter(|n| !before.contains_key(*n)) {
                let bmh = self.published_as.get(name).map(String::as_str);
                sent.push(self.events.vm_created(vino, name, bmh).await);
            }
            for name in before.keys().filter(|n| !after.contains_key(*n)) {
                let bmh = self.published_as.get(name).map(String::as_str);
                sent.push(self.events.vm_deleted(vino, name, bmh).await);
            }
            if let (Some(p), Some(e)) = (plan, error) {
                for vm in &p.vms {
                    let built = after.get(&vm.name).is_some_and(|d| {
                        p.host
                            .domains
                            .get(&vm.name)
                            .is_some_and(|w| w.spec_hash == d.spec_hash)
                    });
                    if !built {
                        sent.push(
                            self.events
                                .vm_failed(vino, &vm.name, &vm.bare_metal_host, e)
                                .await,
                        );
                    }
                }
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
