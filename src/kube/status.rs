//! What `Vino.status` says about the hosts' entries ([`summarize`]; written by one host, see
//! [`super::summary`]).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

use crate::api::status::{
    CONDITION_DEGRADED, CONDITION_PROGRESSING, CONDITION_READY, CONDITION_SPEC_WARNINGS,
};
use crate::api::{NodePhase, NodeStatus, VinoStatus};

/// Longest condition message; longer ones end with `…`.
const MAX_MESSAGE: usize = 1024;

/// The cluster-wide part of a Vino's status, derived from the hosts' entries.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// `Ready`, `Progressing`, `Degraded` and `SpecWarnings`.
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
/// this generation or reports `Pending`, `Progressing` or `Deleting`; `SpecWarnings` when the
/// spec's validation left `warnings`, which its message lists. A condition keeps its
/// `lastTransitionTime` from `previous` while its status stays the same, else gets `now`.
pub fn summarize(
    generation: i64,
    selected: &BTreeSet<String>,
    entries: &[NodeStatus],
    warnings: &[String],
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
        if warnings.is_empty() {
            condition(CONDITION_SPEC_WARNINGS, false, "NoWarnings", String::new())
        } else {
            let reason = "AcceptedWithWarnings";
            condition(CONDITION_SPEC_WARNINGS, true, reason, join(warnings))
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

/// `parts` joined with `; `, bounded to [`MAX_MESSAGE`] bytes.
pub(super) fn join(parts: &[impl AsRef<str>]) -> String {
    let text = parts
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join("; ");
    if text.len() <= MAX_MESSAGE {
        return text;
    }
    // The ellipsis counts too: an Event's note is refused past 1024 bytes.
    let mut end = MAX_MESSAGE - '…'.len_utf8();
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
        let s = summarize(2, &sel, &entries, &[], &[], at(10));
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
            get(&summarize(2, &sel, &entries, &[], &[], at(10)), "Ready").status,
            "False"
        );

        entries[2].observed_generation = Some(2);
        let s = summarize(2, &sel, &entries, &[], &[], at(10));
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
        let s = summarize(4, &sel, &entries, &[], &[], at(10));
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
        let s = summarize(1, &hosts(&["a"]), &entries, &[], &[], at(10));
        assert_eq!(get(&s, "Ready").status, "True");
        assert_eq!(get(&s, "Degraded").status, "False");
        assert_eq!(s.nodes_ready, "1/1");

        let none = summarize(1, &hosts(&[]), &entries, &[], &[], at(10));
        assert_eq!(get(&none, "Ready").reason, "NoHostSelected");
        assert_eq!(none.nodes_ready, "0/0");
    }

    #[test]
    fn transition_times_move_only_on_a_status_change() {
        let sel = hosts(&["a"]);
        let progressing = [entry("a", NodePhase::Progressing, 0, 1, 1)];
        let first = summarize(1, &sel, &progressing, &[], &[], at(10));
        let same = summarize(1, &sel, &progressing, &[], &first.conditions, at(20));
        assert_eq!(first, same);
        let ready = [entry("a", NodePhase::Ready, 1, 1, 1)];
        let next = summarize(1, &sel, &ready, &[], &same.conditions, at(30));
        assert_eq!(get(&next, "Ready").last_transition_time, Time(at(30)));
        assert_eq!(get(&next, "Progressing").last_transition_time, Time(at(30)));
        assert_eq!(get(&next, "Degraded").last_transition_time, Time(at(10)));
    }

    #[test]
    fn long_messages_are_bounded() {
        let sel: BTreeSet<String> = (0..200)
            .map(|i| format!("host-with-a-long-name-{i}"))
            .collect();
        let s = summarize(1, &sel, &[], &[], &[], at(1));
        let m = &get(&s, "Progressing").message;
        assert!(m.len() <= MAX_MESSAGE && m.ends_with('…'), "{}", m.len());
    }

    #[test]
    fn spec_warnings_are_a_condition_of_their_own() {
        let sel = hosts(&["a"]);
        let entries = vec![entry("a", NodePhase::Ready, 1, 1, 1)];
        let quiet = summarize(1, &sel, &entries, &[], &[], at(1));
        let c = get(&quiet, "SpecWarnings");
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("False", "NoWarnings")
        );
        let warned = [
            "spec.nodes[0].flavor (tiny): memoryMiB 900 is not a whole GiB".to_string(),
            "spec.nodes[1].networkDataTemplate: not rendered".to_string(),
        ];
        let s = summarize(1, &sel, &entries, &warned, &quiet.conditions, at(2));
        let c = get(&s, "SpecWarnings");
        assert_eq!(
            (c.status.as_str(), c.reason.as_str()),
            ("True", "AcceptedWithWarnings")
        );
        assert_eq!(c.message, warned.join("; "));
        assert_eq!(c.last_transition_time, Time(at(2)));
        // Warnings do not make a Vino less ready.
        assert_eq!(get(&s, "Ready").status, "True");
    }
}
