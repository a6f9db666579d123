//! The pass's side of VMs leaving the host ([`crate::plan::departure`]): it asks the source how
//! metal3 uses their BareMetalHosts, keeps in the plans the VMs that may not go yet, and
//! freezes the Vinos that left the host while any of their VMs stays.

use std::collections::BTreeSet;

use tracing::{info, warn};

use super::pass::Host;
use super::report::VinoReport;
use super::source::{Departing, Failure, FailureKind, Inputs, VinoSource};
use crate::api::{NodePhase, Vino, VinoSpec};
use crate::error_chain;
use crate::plan::VinoPlan;
use crate::plan::departure::{self, Departure, Fate};
use crate::state::{HostState, Owner};

impl<S: VinoSource, B, D, H> Host<S, B, D, H> {
    /// What happens to the VMs of `owner` that `spec` (`None`: the Vino left the host) does
    /// not want, given how metal3 uses their BareMetalHosts.
    pub(super) async fn departures(
        &mut self,
        owner: &Owner,
        spec: Option<&VinoSpec>,
        release_provisioned: bool,
        node: &str,
        observed: &HostState,
    ) -> Result<Vec<Departure>, S::Error> {
        let leaving = departure::leaving(owner, spec, node, observed);
        if leaving.is_empty() {
            return Ok(Vec::new());
        }
        let names: Vec<String> = leaving.iter().map(|l| l.bare_metal_host.clone()).collect();
        let uses = self.source.host_uses(owner, &names).await?;
        Ok(departure::decide(leaving, &uses, release_provisioned))
    }

    /// Freezes every owner of a domain in `observed` that is not among `inputs.vinos` while
    /// one of its VMs may not go yet (adding it to `frozen` and a report to `reports`), and
    /// returns those owners with the BareMetalHosts they keep.
    pub(super) async fn hold_departed(
        &mut self,
        inputs: &Inputs,
        observed: &HostState,
        frozen: &mut Vec<Owner>,
        reports: &mut Vec<VinoReport>,
    ) -> (Departing, Option<FailureKind>) {
        let present: BTreeSet<Owner> = inputs.vinos.iter().map(Owner::of).collect();
        let gone: BTreeSet<Owner> = observed
            .domains
            .values()
            .map(|d| d.owner.clone())
            .filter(|o| !present.contains(o) && !frozen.contains(o))
            .collect();
        let mut out = Departing::new();
        let mut failure = None;
        for owner in gone {
            let vino: Option<&Vino> = inputs.leaving.iter().find(|v| Owner::of(v) == owner);
            let release = departure::releases_provisioned(vino.map(|v| &v.spec));
            let node = inputs.node.name.clone();
            match self
                .departures(&owner, None, release, &node, observed)
                .await
            {
                Ok(d) => {
                    let Some((degraded, why)) = departure::summary(&d) else {
                        continue;
                    };
                    info!(vino = %owner, "{why}");
                    let phase = if degraded {
                        NodePhase::Degraded
                    } else {
                        NodePhase::Progressing
                    };
                    reports.push(VinoReport::new(&owner, phase, Some(why)));
                    out.insert(owner.clone(), Some(departure::kept_hosts(&d)));
                }
                Err(e) => {
                    let why = format!(
                        "its VMs stay: cannot read how metal3 uses their BareMetalHosts: {}",
                        error_chain(&e)
                    );
                    warn!(vino = %owner, "{why}");
                    failure = failure.max(Some(e.kind()));
                    reports.push(VinoReport::degraded(&owner, why));
                    out.insert(owner.clone(), None);
                }
            }
            frozen.push(owner);
        }
        (out, failure)
    }
}

/// The VMs of `departures` beyond their set's count that stay planned (every fate but
/// [`Fate::Destroy`]); the caller plans them with the rest.
pub(super) fn retained(departures: &[Departure]) -> Vec<(String, u32)> {
    departures
        .iter()
        .filter(|d| d.fate != Fate::Destroy)
        .filter_map(|d| d.vm.slot.clone())
        .collect()
}

/// Why `vino` cannot be planned while `departures` hold it: a VM metal3 holds in a set the
/// Vino no longer has (it cannot be planned again, so the whole Vino keeps what it has).
pub(super) fn unplannable(departures: &[Departure]) -> Option<String> {
    let held: Vec<&Departure> = departures
        .iter()
        .filter(|d| d.vm.slot.is_none() && matches!(d.fate, Fate::Keep(_)))
        .collect();
    if held.is_empty() {
        return None;
    }
    departure::summary(&held.into_iter().cloned().collect::<Vec<_>>())
        .map(|(_, why)| format!("a node set was removed, but {why}"))
}

/// Records `departures` in `plan`: the BareMetalHosts of VMs being released are no longer
/// published (so they are withdrawn), and VMs of removed sets that wait stay as observed.
pub(super) fn settle(plan: &mut VinoPlan, departures: Vec<Departure>, observed: &HostState) {
    let waiting: Vec<Departure> = departures
        .into_iter()
        .filter(|d| d.fate != Fate::Destroy)
        .collect();
    let released: BTreeSet<String> = waiting
        .iter()
        .filter(|d| matches!(d.fate, Fate::Withdraw | Fate::AwaitRelease))
        .map(|d| d.vm.bare_metal_host.clone())
        .collect();
    plan.withhold(&released);
    plan.vms
        .retain(|vm| !released.contains(&vm.bare_metal_host));
    for d in waiting.iter().filter(|d| d.vm.slot.is_none()) {
        let vm = departure::observed_vm(observed, &d.vm.domain);
        plan.host.domains.extend(vm.domains);
        plan.host.volumes.extend(vm.volumes);
    }
    plan.departing = waiting;
}
