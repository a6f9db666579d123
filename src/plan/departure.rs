//! VMs leaving a host: beyond their set's `count`, in a set the Vino no longer has, or of a
//! Vino that no longer selects the host or is being deleted. metal3 may still hold such a VM
//! through its BareMetalHost, so a VM goes only in this order: its BareMetalHost is withdrawn,
//! BMO deprovisions and releases it, then the VM is destroyed. A VM metal3 holds (provisioned,
//! or consumed) is not withdrawn at all unless its Vino says `spec.metal3.releaseProvisioned`.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use super::names;
use crate::api::VinoSpec;
use crate::api::host_use::HostUse;
use crate::state::{HostState, Owner};

/// A VM of this host that its Vino no longer wants.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LeavingVm {
    /// Its domain.
    pub domain: String,
    /// The BareMetalHost it was published as.
    pub bare_metal_host: String,
    /// Its set and index, when the Vino still has that set (the VM can be planned again).
    pub slot: Option<(String, u32)>,
}

/// What happens to a leaving VM in this pass.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Fate {
    /// No BareMetalHost of it exists: the VM is destroyed.
    Destroy,
    /// Its BareMetalHost is deleted now; the VM stays until BMO lets it go.
    Withdraw,
    /// Its BareMetalHost is being deleted; the VM stays until it is gone.
    AwaitRelease,
    /// metal3 holds it (the reason): VM and BareMetalHost stay as they are.
    Keep(String),
}

/// A leaving VM and its fate.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Departure {
    /// The VM.
    pub vm: LeavingVm,
    /// What happens to it.
    pub fate: Fate,
}

/// The VMs of `owner` on `node` (from `observed`) that `spec` does not want; with no spec (the
/// Vino is gone, deleted or deselected) every one of them.
pub fn leaving(
    owner: &Owner,
    spec: Option<&VinoSpec>,
    node: &str,
    observed: &HostState,
) -> Vec<LeavingVm> {
    let prefix = format!("{}.{}.", owner.namespace, owner.name);
    observed
        .domains
        .values()
        .filter(|d| &d.owner == owner)
        .filter_map(|d| {
            let (set, index) = d.name.strip_prefix(&prefix)?.rsplit_once('-')?;
            let index: u32 = index.parse().ok()?;
            let in_spec = spec.and_then(|s| s.nodes.iter().find(|n| n.name == set));
            if in_spec.is_some_and(|n| index < n.count) {
                return None;
            }
            let names = names::vm_names(&owner.namespace, &owner.name, node, set, index);
            Some(LeavingVm {
                domain: d.name.clone(),
                bare_metal_host: names.bmh,
                slot: in_spec.map(|_| (set.to_string(), index)),
            })
        })
        .collect()
}

/// The fate of each `leaving` VM given how metal3 uses their BareMetalHosts (`uses`, by name;
/// an absent one does not exist) and whether the Vino lets held VMs go.
pub fn decide(
    leaving: Vec<LeavingVm>,
    uses: &BTreeMap<String, HostUse>,
    release_provisioned: bool,
) -> Vec<Departure> {
    leaving
        .into_iter()
        .map(|vm| {
            let fate = match uses.get(&vm.bare_metal_host) {
                None => Fate::Destroy,
                Some(u) if u.deleting => Fate::AwaitRelease,
                Some(u) => match u.held() {
                    Some(why) if !release_provisioned => Fate::Keep(why),
                    _ => Fate::Withdraw,
                },
            };
            Departure { vm, fate }
        })
        .collect()
}

/// Whether `spec` lets held VMs go.
pub fn releases_provisioned(spec: Option<&VinoSpec>) -> bool {
    spec.and_then(|s| s.metal3.as_ref())
        .and_then(|m| m.release_provisioned)
        .unwrap_or(false)
}

/// One line for the Vino's status: the VMs kept for metal3 (Degraded), or else those waiting
/// for their BareMetalHost to go (Progressing); `None` when nothing waits.
pub fn summary(departures: &[Departure]) -> Option<(bool, String)> {
    let kept: Vec<String> = departures
        .iter()
        .filter_map(|d| match &d.fate {
            Fate::Keep(why) => Some(format!(
                "VM {} stays: metal3 holds BareMetalHost {} ({why})",
                d.vm.domain, d.vm.bare_metal_host
            )),
            _ => None,
        })
        .collect();
    if !kept.is_empty() {
        return Some((
            true,
            format!(
                "{}; deprovision it, or set spec.metal3.releaseProvisioned: true to let vinod do so",
                kept.join("; ")
            ),
        ));
    }
    let waiting: Vec<&str> = departures
        .iter()
        .filter(|d| matches!(d.fate, Fate::Withdraw | Fate::AwaitRelease))
        .map(|d| d.vm.bare_metal_host.as_str())
        .collect();
    (!waiting.is_empty()).then(|| {
        (
            false,
            format!(
                "waiting for metal3 to release BareMetalHost {} before destroying its VM",
                waiting.join(", ")
            ),
        )
    })
}

/// The BareMetalHosts among `departures` that stay published as they are.
pub fn kept_hosts(departures: &[Departure]) -> BTreeSet<String> {
    departures
        .iter()
        .filter(|d| matches!(d.fate, Fate::Keep(_)))
        .map(|d| d.vm.bare_metal_host.clone())
        .collect()
}

/// The domain `domain` of `observed` with its volumes (those named after it, and after no
/// longer domain name of the same owner), as they are.
pub fn observed_vm(observed: &HostState, domain: &str) -> HostState {
    let mut out = HostState::default();
    let Some(d) = observed.domains.get(domain) else {
        return out;
    };
    out.domains.insert(domain.to_string(), d.clone());
    let siblings: Vec<&str> = observed
        .domains
        .values()
        .filter(|o| o.owner == d.owner && o.name.len() > domain.len())
        .map(|o| o.name.as_str())
        .collect();
    let mine = |volume: &str| {
        volume
            .strip_prefix(domain)
            .is_some_and(|r| r.starts_with('-'))
            && !siblings
                .iter()
                .any(|s| volume.strip_prefix(*s).is_some_and(|r| r.starts_with('-')))
    };
    out.volumes = observed
        .volumes
        .iter()
        .filter(|(name, v)| v.owner == d.owner && mine(name))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    out
}

impl super::VinoPlan {
    /// Leaves the BareMetalHosts `hosts` (and their Secrets and HardwareData) out of what is
    /// published.
    pub fn withhold(&mut self, hosts: &BTreeSet<String>) {
        if hosts.is_empty() {
            return;
        }
        let theirs = |secret: &str| {
            hosts.iter().any(|h| {
                secret == names::credentials_secret(h) || secret == names::network_data_secret(h)
            })
        };
        self.bare_metal_hosts
            .retain(|h| !hosts.contains(h.metadata.name.as_deref().unwrap_or_default()));
        self.secrets
            .retain(|s| !theirs(s.metadata.name.as_deref().unwrap_or_default()));
        self.hardware
            .retain(|h| !hosts.contains(h.metadata.name.as_deref().unwrap_or_default()));
    }
}

#[cfg(test)]
mod tests;
