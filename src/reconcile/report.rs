//! What a pass says about each Vino on this host, and error text for those reports.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::api::host_use::HostUse;
use crate::api::{NodePhase, NodeStatus, Power, VmState};
use crate::plan::VinoPlan;
use crate::plan::departure::{self, Departure};
use crate::plan::diff::diff;
use crate::state::{HostState, Owner};

/// Status of one Vino on this host (`status.yaml` in standalone mode, the Vino's
/// `status.nodes` entry in a cluster).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VinoReport {
    /// `namespace/name`.
    pub vino: String,
    /// This host's entry, as it would appear in `Vino.status.nodes`.
    pub status: NodeStatus,
    /// Accepted input worth reporting.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}

impl VinoReport {
    /// A report of `owner` with no VMs counted.
    pub fn new(owner: &Owner, phase: NodePhase, message: Option<String>) -> Self {
        VinoReport {
            vino: owner.to_string(),
            status: NodeStatus {
                name: String::new(),
                phase,
                vms_ready: 0,
                vms_total: 0,
                message,
                observed_generation: None,
                vms: Vec::new(),
            },
            warnings: vec![],
        }
    }

    /// A Vino that keeps what it has because of `why`.
    pub fn degraded(owner: &Owner, why: String) -> Self {
        Self::new(owner, NodePhase::Degraded, Some(why))
    }

    /// Marks the report degraded with `message`.
    pub fn degrade(&mut self, message: String) {
        self.status.phase = NodePhase::Degraded;
        self.status.message = Some(message);
    }

    /// Reports the VMs leaving this host that stay for now: Degraded naming the ones metal3
    /// holds, else Progressing naming the BareMetalHosts it is asked to release.
    pub fn note_departures(&mut self, departing: &[Departure]) {
        match departure::summary(departing) {
            Some((true, why)) if self.status.phase != NodePhase::Degraded => self.degrade(why),
            Some((false, why)) if self.status.phase == NodePhase::Ready => {
                self.status.phase = NodePhase::Progressing;
                self.status.message = Some(why);
            }
            _ => {}
        }
    }

    /// Adds what metal3 does with each VM's BareMetalHost, by name in `hosts` (those stored
    /// after this pass's publication): a VM is ready only when its host is stored and metal3
    /// reports no error for it. The Vino is Degraded naming the first host in error, or
    /// Progressing while a host is not stored yet.
    pub fn note_metal3(&mut self, hosts: &BTreeMap<String, HostUse>) {
        let mut trouble = None;
        let mut missing = false;
        for vm in &mut self.status.vms {
            let Some(host) = hosts.get(&vm.bare_metal_host) else {
                missing = true;
                vm.ready = false;
                vm.message = Some("its BareMetalHost is not published".to_string());
                continue;
            };
            vm.provisioning = Some(host.state.clone());
            if host.deleting {
                vm.ready = false;
                vm.message = Some("its BareMetalHost is being deleted".to_string());
            } else if let Some(e) = &host.error {
                vm.ready = false;
                vm.message = Some(format!("metal3: {e}"));
                trouble.get_or_insert_with(|| {
                    format!("metal3 reports BareMetalHost {}: {e}", vm.bare_metal_host)
                });
            }
        }
        self.status.vms_ready = self.status.vms.iter().filter(|v| v.ready).count() as u32;
        match (trouble, self.status.phase) {
            (Some(why), NodePhase::Ready | NodePhase::Progressing) => self.degrade(why),
            (None, NodePhase::Ready) if missing => self.status.phase = NodePhase::Progressing,
            _ => {}
        }
    }

    /// The report of a planned Vino: ready when the host holds all it wants, else degraded
    /// with `error` or progressing. Each VM is ready when defined as planned.
    pub fn of_plan(
        p: &VinoPlan,
        desired: &HostState,
        now: &HostState,
        error: Option<String>,
    ) -> Self {
        let mine = desired.owned_by(&p.owner);
        let have = now.owned_by(&p.owner);
        let vms: Vec<VmState> = p
            .vms
            .iter()
            .map(|vm| {
                let live = have.domains.get(&vm.name);
                let defined = live
                    .zip(mine.domains.get(&vm.name))
                    .is_some_and(|(live, want)| live.spec_hash == want.spec_hash);
                VmState {
                    name: vm.name.clone(),
                    bare_metal_host: vm.bare_metal_host.clone(),
                    power: live.map(|d| Power::of(d.running)),
                    provisioning: None,
                    ready: defined,
                    message: (!defined).then(|| "not defined as planned yet".to_string()),
                }
            })
            .collect();
        let ready = vms.iter().filter(|v| v.ready).count() as u32;
        let settled = diff(&mine, &have).is_empty();
        let (phase, message) = match (settled, error) {
            (true, _) => (NodePhase::Ready, None),
            (false, Some(e)) => (NodePhase::Degraded, Some(e)),
            (false, None) => (NodePhase::Progressing, None),
        };
        let mut r = Self::new(&p.owner, phase, message);
        r.status.vms_ready = ready;
        r.status.vms_total = p.vms.len() as u32;
        r.status.vms = vms;
        r.warnings = p.warnings.clone();
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(vms: &[(&str, bool)]) -> VinoReport {
        let owner = Owner {
            namespace: "lab".into(),
            name: "rack".into(),
        };
        let mut r = VinoReport::new(&owner, NodePhase::Ready, None);
        r.status.vms = vms
            .iter()
            .map(|(host, defined)| VmState {
                name: format!("lab.rack.{host}"),
                bare_metal_host: format!("rack-node-a-{host}"),
                power: Some(Power::Off),
                provisioning: None,
                ready: *defined,
                message: None,
            })
            .collect();
        r.status.vms_total = vms.len() as u32;
        r.status.vms_ready = vms.iter().filter(|v| v.1).count() as u32;
        r
    }

    fn used(state: &str, error: Option<&str>) -> HostUse {
        HostUse {
            state: state.into(),
            error: error.map(Into::into),
            ..Default::default()
        }
    }

    #[test]
    fn metal3_states_and_errors_count() {
        let mut r = report(&[("worker-0", true), ("worker-1", true)]);
        let hosts = BTreeMap::from([
            (
                "rack-node-a-worker-0".to_string(),
                used("provisioned", None),
            ),
            ("rack-node-a-worker-1".to_string(), used("", None)),
        ]);
        r.note_metal3(&hosts);
        assert_eq!(r.status.phase, NodePhase::Ready);
        assert_eq!(r.status.vms_ready, 2);
        assert_eq!(r.status.vms[0].provisioning.as_deref(), Some("provisioned"));
        assert_eq!(r.status.vms[1].provisioning.as_deref(), Some(""));

        let mut r = report(&[("worker-0", true), ("worker-1", true)]);
        let hosts = BTreeMap::from([
            ("rack-node-a-worker-0".to_string(), used("available", None)),
            (
                "rack-node-a-worker-1".to_string(),
                used("registering", Some("registration error: no BMC")),
            ),
        ]);
        r.note_metal3(&hosts);
        assert_eq!(r.status.phase, NodePhase::Degraded);
        assert_eq!(r.status.vms_ready, 1);
        assert_eq!(
            r.status.message.as_deref(),
            Some("metal3 reports BareMetalHost rack-node-a-worker-1: registration error: no BMC")
        );
        assert_eq!(
            r.status.vms[1].message.as_deref(),
            Some("metal3: registration error: no BMC")
        );
    }

    #[test]
    fn hosts_missing_or_being_deleted_are_not_ready() {
        let mut r = report(&[("worker-0", true), ("worker-1", false)]);
        let deleting = HostUse {
            deleting: true,
            ..used("deprovisioning", None)
        };
        r.note_metal3(&BTreeMap::from([(
            "rack-node-a-worker-0".to_string(),
            deleting,
        )]));
        assert_eq!(r.status.vms_ready, 0);
        assert_eq!(r.status.phase, NodePhase::Progressing);
        assert_eq!(
            r.status.vms[1].message.as_deref(),
            Some("its BareMetalHost is not published")
        );
        // A Vino already degraded by vinod's own trouble keeps that message.
        let mut r = report(&[("worker-0", true)]);
        r.degrade("define failed".into());
        r.note_metal3(&BTreeMap::from([(
            "rack-node-a-worker-0".to_string(),
            used("", Some("x")),
        )]));
        assert_eq!(r.status.message.as_deref(), Some("define failed"));
    }
}
