//! What a pass says about each Vino on this host, and error text for those reports.

use serde::{Deserialize, Serialize};

use crate::api::{NodePhase, NodeStatus};
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

    /// The report of a planned Vino: ready when the host holds all it wants, else degraded
    /// with `error` or progressing.
    pub fn of_plan(
        p: &VinoPlan,
        desired: &HostState,
        now: &HostState,
        error: Option<String>,
    ) -> Self {
        let mine = desired.owned_by(&p.owner);
        let have = now.owned_by(&p.owner);
        let ready = mine
            .domains
            .values()
            .filter(|d| {
                have.domains
                    .get(&d.name)
                    .is_some_and(|o| o.spec_hash == d.spec_hash)
            })
            .count() as u32;
        let settled = diff(&mine, &have).is_empty();
        let (phase, message) = match (settled, error) {
            (true, _) => (NodePhase::Ready, None),
            (false, Some(e)) => (NodePhase::Degraded, Some(e)),
            (false, None) => (NodePhase::Progressing, None),
        };
        let mut r = Self::new(&p.owner, phase, message);
        r.status.vms_ready = ready;
        r.status.vms_total = p.vms.len() as u32;
        r.warnings = p.warnings.clone();
        r
    }
}
