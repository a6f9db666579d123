//! What `Vino.status` says about the hosts' entries ([`summarize`]; written by one host, see
//! [`super::summary`]), and Events.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};
use tracing::warn;

use super::KubeError;
use crate::api::status::{CONDITION_DEGRADED, CONDITION_PROGRESSING, CONDITION_READY};
use crate::api::{NodePhase, NodeStatus, Vino, VinoStatus};

/// Longest condition message; longer ones end with `…`.
const MAX_MESSAGE: usize = 1024;

/// The cluster-wide part of a Vino's status, derived from the hosts' entries.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// `Ready`, `Progressing` and `Degraded`.
    pub conditions: Vec<Condition>,
    /// Hosts ready for the current generation / hosts selected.
    pub nodes_ready: String,
    /// VMs ready / VMs wanted, over the entries for the current generation.
    pub vms_ready: String,
}

/// Computes the conditions and summaries of a Vino at `generation` whose nodeSelector matches
/// the hosts in `selected`, from the hosts' `entries`.
///
/// Only entries of selected hosts for the current generation count; a selected host without
/// one is still converging. `Ready` is true when every selected host (at least one) reports
/// `Ready`; `Degraded` when any reports `Degraded`; `Progressing` when any has not reported for
/// this generation or reports `Pending`, `Progressing` or `Deleting`. A condition keeps its
/// `lastTransitionTime` from `previous` while its status stays the same, else gets `now`.
pub fn summarize(
    generation: i64,
    selected: &BTreeSet<String>,
    entries: &[NodeStatus],
    previous: &[Condition],
    now: Timestamp,
) -> Summary {
    let current: BTreeMap<&str, &NodeStatus> = entries
        .iter()
        .filter(|e| selected.contains(&e.name) && e.observed_generation == Some(generation))
        .map(|e| (e.name.as_str(), e))
        .collect();
    let mut ready = Vec::new();
    let mut degraded = Vec::new();
    let mut converging = Vec::new();
    for host in selected {
        match current.get(host.as_str()) {
            None => converging.push(format!("{host}: no report for generation {generation} yet")),
            Some(e) => match e.phase {
                NodePhase::Ready => ready.push(host.as_str()),
                NodePhase::Degraded => degraded.push(format!(
                    "{host}: {}",
                    e.message.as_deref().unwrap_or("degraded")
                )),
                phase => converging.push(format!(
                    "{host}: {phase:?} ({}/{} VMs)",
                    e.vms_ready, e.vms_total
                )),
            },
        }
    }
    let vms_ready: u32 = current.values().map(|e| e.vms_ready).sum();
    let vms_total: u32 = current.values().map(|e| e.vms_total).sum();

    let (ready_status, ready_reason, ready_message) = if selected.is_empty() {
        (
            false,
            "NoHostSelected",
            "the nodeSelector matches no host".to_string(),
        )
    } else if ready.len() == selected.len() {
        (
            true,
            "AllHostsReady",
            format!(
                "{} of {} hosts ready, {vms_ready} of {vms_total} VMs",
                ready.len(),
                selected.len()
            ),
        )
    } else {
        let reason = if degraded.is_empty() {
            "HostsProgressing"
        } else {
            "HostsDegraded"
        };
        let waiting: Vec<&String> = degraded.iter().chain(&converging).collect();
        (
            false,
            reason,
            format!(
                "{} of {} hosts ready; {}",
                ready.len(),
                selected.len(),
                join(&waiting)
            ),
        )
    };
    let conditions = vec![
        condition(CONDITION_READY, ready_status, ready_reason, ready_message),
        if converging.is_empty() {
            condition(CONDITION_PROGRESSING, false, "Converged", String::new())
        } else {
            condition(
                CONDITION_PROGRESSING,
                true,
                "HostsProgressing",
                join(&converging),
            )
        },
        if degraded.is_empty() {
            condition(CONDITION_DEGRADED, false, "NoHostDegraded", String::new())
        } else {
            condition(CONDITION_DEGRADED, true, "HostsDegraded", join(&degraded))
        },
    ]
    .into_iter()
    .map(|mut c| {
        c.observed_generation = Some(generation);
        c.last_transition_time = previous
            .iter()
            .find(|p| p.type_ == c.type_ && p.status == c.status)
            .map(|p| p.last_transition_time.clone())
            .unwrap_or(Time(now));
        c
    })
    .collect();
    Summary {
        conditions,
        nodes_ready: format!("{}/{}", ready.len(), selected.len()),
        vms_ready: format!("{vms_ready}/{vms_total}"),
    }
}

fn condition(type_: &str, status: bool, reason: &str, message: String) -> Condition {
    Condition {
        type_: type_.into(),
        status: if status { "True" } else { "False" }.into(),
        reason: reason.into(),
        message,
        observed_generation: None,
        last_transition_time: Time(Timestamp::UNIX_EPOCH),
    }
}

fn join(parts: &[impl AsRef<str>]) -> String {
    let text = parts
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join("; ");
    if text.len() <= MAX_MESSAGE {
        return text;
    }
    let mut end = MAX_MESSAGE;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// Whether `status` already holds `summary`.
pub(crate) fn unchanged(status: &VinoStatus, summary: &Summary) -> bool {
    let by_type = |c: &[Condition]| -> BTreeMap<String, Condition> {
        c.iter().map(|c| (c.type_.clone(), c.clone())).collect()
    };
    by_type(&status.conditions) == by_type(&summary.conditions)
        && status.nodes_ready.as_deref() == Some(summary.nodes_ready.as_str())
        && status.vms_ready.as_deref() == Some(summary.vms_ready.as_str())
}

/// Events about a Vino's VMs on this host (`events.k8s.io/v1`, reporting controller `vinod`,
/// instance the node name). Each event is about the Vino, related to the VM's BareMetalHost,
/// so repeats of one event for one VM are counted in a series rather than duplicated.
#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
    node: String,
}

impl Events {
    /// Events published as host `node`.
    pub fn new(client: Client, node: &str) -> Self {
        let reporter = Reporter {
            controller: "vinod".into(),
            instance: Some(node.to_string()),
        };
        Events {
            recorder: Recorder::new(client, reporter),
            node: node.to_string(),
        }
    }

    /// VM `vm` (domain name) was defined (`bmh`: the BareMetalHost it is published as, when
    /// known).
    pub async fn vm_created(
        &self,
        vino: &Vino,
        vm: &str,
        bmh: Option<&str>,
    ) -> Result<(), KubeError> {
        let note = match bmh {
            Some(bmh) => format!(
                "{}: VM {vm} defined, published as BareMetalHost {bmh}",
                self.node
            ),
            None => format!("{}: VM {vm} defined", self.node),
        };
        self.publish(vino, EventType::Normal, "VmCreated", "Create", note, bmh)
            .await
    }

    /// The VMs `vms` (domain name, BareMetalHost when known) were defined in one pass: one
    /// Event for all of them (one VM: as [`Events::vm_created`]).
    pub async fn vms_created(
        &self,
        vino: &Vino,
        vms: &[(String, Option<String>)],
    ) -> Result<(), KubeError> {
        match vms {
            [] => Ok(()),
            [(vm, bmh)] => self.vm_created(vino, vm, bmh.as_deref()).await,
            _ => {
                let note = format!("{}: {} VMs defined: {}", self.node, vms.len(), listed(vms));
                self.publish(vino, EventType::Normal, "VmCreated", "Create", note, None)
                    .await
            }
        }
    }

    /// The VMs `vms` were removed in one pass: one Event for all of them.
    pub async fn vms_deleted(
        &self,
        vino: &Vino,
        vms: &[(String, Option<String>)],
    ) -> Result<(), KubeError> {
        match vms {
            [] => Ok(()),
            [(vm, bmh)] => self.vm_deleted(vino, vm, bmh.as_deref()).await,
            _ => {
                let note = format!("{}: {} VMs deleted: {}", self.node, vms.len(), listed(vms));
                self.publish(vino, EventType::Normal, "VmDeleted", "Delete", note, None)
                    .await
            }
        }
    }

    /// The VMs `vms` (domain, BareMetalHost) could not be built or changed in one pass.
    pub async fn vms_failed(
        &self,
        vino: &Vino,
        vms: &[(String, String)],
        error: &str,
    ) -> Result<(), KubeError> {
        match vms {
            [] => Ok(()),
            [(vm, bmh)] => self.vm_failed(vino, vm, bmh, error).await,
            _ => {
                let names: Vec<&str> = vms.iter().map(|(vm, _)| vm.as_str()).collect();
                let note = format!(
                    "{}: {} VMs: {error}: {}",
                    self.node,
                    vms.len(),
                    join(&names)
                );
                self.publish(
                    vino,
                    EventType::Warning,
                    "VmFailed",
                    "Reconcile",
                    note,
                    None,
                )
                .await
            }
        }
    }

    /// VM `vm` was removed (`bmh`: the BareMetalHost it was published as, when known; not
    /// after a restart that came between its plan and its removal).
    pub async fn vm_deleted(
        &self,
        vino: &Vino,
        vm: &str,
        bmh: Option<&str>,
    ) -> Result<(), KubeError> {
        let note = match bmh {
            Some(bmh) => format!("{}: VM {vm} and BareMetalHost {bmh} deleted", self.node),
            None => format!("{}: VM {vm} deleted", self.node),
        };
        self.publish(vino, EventType::Normal, "VmDeleted", "Delete", note, bmh)
            .await
    }

    /// VM `vm` could not be built or changed.
    pub async fn vm_failed(
        &self,
        vino: &Vino,
        vm: &str,
        bmh: &str,
        error: &str,
    ) -> Result<(), KubeError> {
        let note = format!("{}: VM {vm}: {error}", self.node);
        self.publish(
            vino,
            EventType::Warning,
            "VmFailed",
            "Reconcile",
            note,
            Some(bmh),
        )
        .await
    }

    /// BareMetalHost `bmh` was deleted to be created again (its boot MAC changed).
    pub async fn host_recreated(&self, vino: &Vino, bmh: &str) -> Result<(), KubeError> {
        let note = format!(
            "{}: BareMetalHost {bmh} deleted and created again: bootMACAddress cannot change",
            self.node
        );
        self.publish(
            vino,
            EventType::Warning,
            "BareMetalHostRecreated",
            "Recreate",
            note,
            Some(bmh),
        )
        .await
    }

    async fn publish(
        &self,
        vino: &Vino,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
        bmh: Option<&str>,
    ) -> Result<(), KubeError> {
        let related = bmh.map(|bmh| k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("metal3.io/v1alpha1".into()),
            kind: Some("BareMetalHost".into()),
            name: Some(bmh.to_string()),
            namespace: vino.namespace(),
            ..Default::default()
        });
        let event = Event {
            type_,
            reason: reason.into(),
            note: Some(join(&[note])),
            action: action.into(),
            secondary: related,
        };
        self.recorder
            .publish(&event, &vino.object_ref(&()))
            .await
            .map_err(|e| {
                warn!(reason, error = %e, "cannot publish an event");
                KubeError::api(format!("publish event {reason} for {}", vino.name_any()), e)
            })
    }
}

/// `vm (BareMetalHost bmh), …`, bounded like every message.
fn listed(vms: &[(String, Option<String>)]) -> String {
    let parts: Vec<String> = vms
        .iter()
        .map(|(vm, bmh)| match bmh {
            Some(b) => format!("{vm} (BareMetalHost {b})"),
            None => vm.clone(),
        })
        .collect();
    join(&parts).replace("; ", ", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &str, phase: NodePhase, ready: u32, total: u32, generation: i64) -> NodeStatus {
        NodeStatus {
            name: name.into(),
            phase,
            vms_ready: ready,
            vms_total: total,
            message: (phase == NodePhase::Degraded).then(|| "CPUs exhausted".into()),
            observed_generation: Some(generation),
            vms: Vec::new(),
        }
    }

    fn hosts(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn get<'a>(s: &'a Summary, t: &str) -> &'a Condition {
        s.conditions.iter().find(|c| c.type_ == t).unwrap()
    }

    fn at(secs: i64) -> Timestamp {
        Timestamp::from_second(secs).unwrap()
    }

    #[test]
    fn ready_only_when_every_selected_host_is_ready_for_this_generation() {
        let sel = hosts(&["a", "b", "c"]);
        let mut entries = vec![
            entry("a", NodePhase::Ready, 3, 3, 2),
            entry("b", NodePhase::Ready, 3, 3, 2),
        ];
        let s = summarize(2, &sel, &entries, &[], at(10));
        assert_eq!(get(&s, "Ready").status, "False");
        assert_eq!(get(&s, "Ready").reason, "HostsProgressing");
        assert!(
            get(&s, "Ready")
                .message
                .contains("c: no report for generation 2")
        );
        assert_eq!(get(&s, "Progressing").status, "True");
        assert_eq!(get(&s, "Degraded").status, "False");
        assert_eq!(
            (s.nodes_ready.as_str(), s.vms_ready.as_str()),
            ("2/3", "6/6")
        );

        // c reports for an older generation: still not counted.
        entries.push(entry("c", NodePhase::Ready, 3, 3, 1));
        assert_eq!(
            get(&summarize(2, &sel, &entries, &[], at(10)), "Ready").status,
            "False"
        );

        entries[2].observed_generation = Some(2);
        let s = summarize(2, &sel, &entries, &[], at(10));
        let ready = get(&s, "Ready");
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("True", "AllHostsReady")
        );
        assert_eq!(ready.message, "3 of 3 hosts ready, 9 of 9 VMs");
        assert_eq!(ready.observed_generation, Some(2));
        assert_eq!(get(&s, "Progressing").status, "False");
        assert_eq!(
            (s.nodes_ready.as_str(), s.vms_ready.as_str()),
            ("3/3", "9/9")
        );
    }

    #[test]
    fn degraded_and_progressing_hosts_are_named() {
        let sel = hosts(&["a", "b", "c"]);
        let entries = vec![
            entry("a", NodePhase::Ready, 3, 3, 4),
            entry("b", NodePhase::Degraded, 0, 3, 4),
            entry("c", NodePhase::Progressing, 1, 3, 4),
        ];
        let s = summarize(4, &sel, &entries, &[], at(10));
        assert_eq!(get(&s, "Ready").reason, "HostsDegraded");
        assert_eq!(
            get(&s, "Ready").message,
            "1 of 3 hosts ready; b: CPUs exhausted; c: Progressing (1/3 VMs)"
        );
        assert_eq!(get(&s, "Degraded").status, "True");
        assert_eq!(get(&s, "Degraded").message, "b: CPUs exhausted");
        assert_eq!(get(&s, "Progressing").message, "c: Progressing (1/3 VMs)");
        assert_eq!(s.vms_ready, "4/9");
    }

    #[test]
    fn hosts_that_are_not_selected_do_not_count() {
        let entries = vec![
            entry("a", NodePhase::Ready, 1, 1, 1),
            entry("gone", NodePhase::Degraded, 0, 1, 1),
        ];
        let s = summarize(1, &hosts(&["a"]), &entries, &[], at(10));
        assert_eq!(get(&s, "Ready").status, "True");
        assert_eq!(get(&s, "Degraded").status, "False");
        assert_eq!(s.nodes_ready, "1/1");

        let none = summarize(1, &hosts(&[]), &entries, &[], at(10));
        assert_eq!(get(&none, "Ready").reason, "NoHostSelected");
        assert_eq!(none.nodes_ready, "0/0");
    }

    #[test]
    fn transition_times_move_only_on_a_status_change() {
        let sel = hosts(&["a"]);
        let progressing = [entry("a", NodePhase::Progressing, 0, 1, 1)];
        let first = summarize(1, &sel, &progressing, &[], at(10));
        let same = summarize(1, &sel, &progressing, &first.conditions, at(20));
        assert_eq!(first, same);
        let ready = [entry("a", NodePhase::Ready, 1, 1, 1)];
        let next = summarize(1, &sel, &ready, &same.conditions, at(30));
        assert_eq!(get(&next, "Ready").last_transition_time, Time(at(30)));
        assert_eq!(get(&next, "Progressing").last_transition_time, Time(at(30)));
        assert_eq!(get(&next, "Degraded").last_transition_time, Time(at(10)));
    }

    #[test]
    fn long_messages_are_bounded() {
        let sel: BTreeSet<String> = (0..200)
            .map(|i| format!("host-with-a-long-name-{i}"))
            .collect();
        let s = summarize(1, &sel, &[], &[], at(1));
        let m = &get(&s, "Progressing").message;
        assert!(
            m.len() <= MAX_MESSAGE + '…'.len_utf8() && m.ends_with('…'),
            "{}",
            m.len()
        );
    }
}
