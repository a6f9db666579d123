//! Kubernetes Events about a pass's VMs: created, deleted, failed to build.

use tracing::warn;

use super::KubeSource;
use crate::error_chain;
use crate::plan::names::vm_names;
use crate::reconcile::source::Finished;
use crate::state::Owner;

impl KubeSource {
    /// Events on each Vino for the VMs this pass created, deleted or failed to build. A
    /// failed Event is only logged.
    pub(super) async fn send_events(&self, pass: &Finished<'_>) {
        let (plans, observed, now, error) = (pass.plans, pass.observed, pass.now, pass.first_error);
        let mut sent = Vec::new();
        for vino in &self.vinos {
            let owner = Owner::of(vino);
            let before = observed.owned_by(&owner).domains;
            let after = now.owned_by(&owner).domains;
            let plan = plans.iter().find(|p| p.owner == owner);
            for (name, d) in &after {
                if before.contains_key(name) {
                    continue;
                }
                let bmh = plan
                    .and_then(|p| p.vms.iter().find(|v| &v.name == name))
                    .map(|v| v.bare_metal_host.clone())
                    .unwrap_or_else(|| bmh_of(&owner, &self.node_name, &d.name));
                sent.push(self.events.vm_created(vino, name, &bmh).await);
            }
            for name in before.keys().filter(|n| !after.contains_key(*n)) {
                let bmh = bmh_of(&owner, &self.node_name, name);
                sent.push(self.events.vm_deleted(vino, name, &bmh).await);
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
        for e in sent.into_iter().filter_map(Result::err) {
            warn!(error = %error_chain(&e), "cannot send an Event");
        }
    }
}

/// The BareMetalHost name of domain `domain` (`<namespace>.<vino>.<set>-<index>`) of `owner`.
fn bmh_of(owner: &Owner, node: &str, domain: &str) -> String {
    let prefix = format!("{}.{}.", owner.namespace, owner.name);
    let host = domain.strip_prefix(&prefix).unwrap_or(domain);
    match host
        .rsplit_once('-')
        .and_then(|(set, i)| Some((set, i.parse().ok()?)))
    {
        Some((set, index)) => vm_names(&owner.namespace, &owner.name, node, set, index).bmh,
        None => host.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bare_metal_host_of_a_domain() {
        let owner = Owner {
            namespace: "lab".into(),
            name: "x".into(),
        };
        assert_eq!(
            bmh_of(&owner, "host-a", "lab.x.worker-3"),
            vm_names("lab", "x", "host-a", "worker", 3).bmh
        );
        assert_eq!(bmh_of(&owner, "host-a", "odd"), "odd");
    }
}
