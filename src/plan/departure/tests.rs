//! Which VMs leave, what happens to each, and what the Vino's status says.

use super::*;
use crate::api::parse_vino;
use crate::state::{Domain, Volume};

fn owner() -> Owner {
    Owner {
        namespace: "ns".into(),
        name: "rack".into(),
    }
}

fn host(domains: &[&str], volumes: &[&str]) -> HostState {
    let mut h = HostState::default();
    for d in domains {
        h.domains.insert(
            d.to_string(),
            Domain {
                name: d.to_string(),
                uuid: "u".into(),
                owner: owner(),
                spec_hash: "h".into(),
                xml: String::new(),
                pinned_cpus: Default::default(),
                running: false,
            },
        );
    }
    for v in volumes {
        h.volumes.insert(
            v.to_string(),
            Volume {
                name: v.to_string(),
                capacity_bytes: 1,
                sparse: true,
                owner: owner(),
            },
        );
    }
    h
}

/// The shipped example: one `master`, two `worker`s.
fn spec(workers: u32) -> VinoSpec {
    let mut v = parse_vino(include_str!("../../../examples/vino.yaml")).unwrap();
    v.spec.nodes[1].count = workers;
    v.spec
}

fn used(state: &str, consumer: bool) -> HostUse {
    HostUse {
        state: state.into(),
        consumer: consumer.then(|| "Metal3Machine/m".to_string()),
        has_image: false,
        deleting: false,
        error: None,
    }
}

#[test]
fn count_down_leaves_the_highest_indexes() {
    let h = host(
        &["ns.rack.master-0", "ns.rack.worker-0", "ns.rack.worker-1"],
        &[],
    );
    let out = leaving(&owner(), Some(&spec(1)), "node-a", &h);
    assert_eq!(
        out,
        vec![LeavingVm {
            domain: "ns.rack.worker-1".into(),
            bare_metal_host: "rack-node-a-worker-1".into(),
            slot: Some(("worker".into(), 1)),
        }]
    );
    assert!(leaving(&owner(), Some(&spec(2)), "node-a", &h).is_empty());
    // The Vino gone: every VM leaves, none can be planned again.
    let all = leaving(&owner(), None, "node-a", &h);
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|l| l.slot.is_none()));
    // Another Vino's domains are never counted.
    let other = Owner {
        namespace: "ns".into(),
        name: "other".into(),
    };
    assert!(leaving(&other, None, "node-a", &h).is_empty());
}

#[test]
fn a_held_vm_stays_unless_released_and_a_withdrawn_one_waits() {
    let h = host(
        &[
            "ns.rack.worker-0",
            "ns.rack.worker-1",
            "ns.rack.worker-2",
            "ns.rack.worker-3",
        ],
        &[],
    );
    let l = leaving(&owner(), Some(&spec(0)), "node-a", &h);
    let uses = BTreeMap::from([
        (
            "rack-node-a-worker-0".to_string(),
            used("provisioned", true),
        ),
        ("rack-node-a-worker-1".to_string(), used("available", false)),
        (
            "rack-node-a-worker-2".to_string(),
            HostUse {
                deleting: true,
                ..used("deprovisioning", false)
            },
        ),
    ]);
    let fates: Vec<Fate> = decide(l.clone(), &uses, false)
        .into_iter()
        .map(|d| d.fate)
        .collect();
    assert_eq!(
        fates,
        vec![
            Fate::Keep("provisioned, consumed by Metal3Machine/m".into()),
            Fate::Withdraw,
            Fate::AwaitRelease,
            Fate::Destroy,
        ]
    );
    let released = decide(l, &uses, true);
    assert_eq!(released[0].fate, Fate::Withdraw);
    assert_eq!(kept_hosts(&released), BTreeSet::new());
}

#[test]
fn the_summary_names_what_stays_and_what_waits() {
    let h = host(&["ns.rack.worker-0", "ns.rack.worker-1"], &[]);
    let l = leaving(&owner(), Some(&spec(0)), "node-a", &h);
    let uses = BTreeMap::from([
        (
            "rack-node-a-worker-0".to_string(),
            used("provisioned", false),
        ),
        ("rack-node-a-worker-1".to_string(), used("ready", false)),
    ]);
    let d = decide(l.clone(), &uses, false);
    let (degraded, why) = summary(&d).unwrap();
    assert!(degraded);
    assert!(why.contains("ns.rack.worker-0"), "{why}");
    assert!(why.contains("rack-node-a-worker-0 (provisioned)"), "{why}");
    assert!(why.contains("spec.metal3.releaseProvisioned"), "{why}");
    assert_eq!(
        kept_hosts(&d),
        BTreeSet::from(["rack-node-a-worker-0".to_string()])
    );
    let (degraded, why) = summary(&decide(l.clone(), &uses, true)).unwrap();
    assert!(!degraded);
    assert!(
        why.contains("rack-node-a-worker-0, rack-node-a-worker-1"),
        "{why}"
    );
    assert_eq!(summary(&decide(l, &BTreeMap::new(), false)), None);
}

#[test]
fn an_observed_vm_keeps_its_own_volumes_only() {
    let h = host(
        &["ns.rack.vm-1", "ns.rack.vm-1-0"],
        &[
            "ns.rack.vm-1-root.qcow2",
            "ns.rack.vm-1-data.qcow2",
            "ns.rack.vm-1-0-root.qcow2",
            "ns.rack.vm-10-root.qcow2",
        ],
    );
    let vm = observed_vm(&h, "ns.rack.vm-1");
    assert_eq!(vm.domains.keys().collect::<Vec<_>>(), vec!["ns.rack.vm-1"]);
    assert_eq!(
        vm.volumes.keys().collect::<Vec<_>>(),
        vec!["ns.rack.vm-1-data.qcow2", "ns.rack.vm-1-root.qcow2"]
    );
    assert!(observed_vm(&h, "ns.rack.missing").domains.is_empty());
}

#[test]
fn release_is_off_unless_the_vino_says_so() {
    assert!(!releases_provisioned(None));
    let mut s = spec(1);
    assert!(!releases_provisioned(Some(&s)));
    s.metal3 =
        Some(serde_json::from_value(serde_json::json!({"releaseProvisioned": true})).unwrap());
    assert!(releases_provisioned(Some(&s)));
}
