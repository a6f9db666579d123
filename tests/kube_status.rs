//! Vino status and Events on a real API server, with three hosts under their own identities
//! (users vinod-node-a, -b, -c under the shipped RBAC and admission policies): each host writes
//! only its own `VinoNode`, the coordinator (node-a, the first selected Node by name) writes the
//! Vino's summary from them, and only when it changes.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::kube_env::KubeEnv;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use vinod::api::vino_node::VinoNode;
use vinod::api::{self, NodePhase, NodeStatus, Vino};
use vinod::kube::claims::Holder;
use vinod::kube::vm_events::Events;
use vinod::kube::{KubeError, membership, summary};
use vinod::state::Owner;

const NS: &str = "lab";
const HOSTS: [&str; 3] = ["node-a", "node-b", "node-c"];
const SELECTED: [(&str, &str); 1] = [("vino.airshipit.org/demo", "true")];

/// What `vinod plan` warns about `examples/vino.yaml` (its tiny flavor).
const EXAMPLE_WARNINGS: [&str; 4] = [
    "spec.nodes[0].flavor (small): memoryMiB 256 is under 1 GiB: Ironic's Redfish inspection finds no memory and fails",
    "spec.nodes[0].flavor (small): rootDiskGiB 1 is under 4 GiB: Ironic's Redfish inspection takes the VM for disk-less (local_gb 0)",
    "spec.nodes[1].flavor (small): memoryMiB 256 is under 1 GiB: Ironic's Redfish inspection finds no memory and fails",
    "spec.nodes[1].flavor (small): rootDiskGiB 1 is under 4 GiB: Ironic's Redfish inspection takes the VM for disk-less (local_gb 0)",
];

fn vino() -> Vino {
    let mut v = api::parse_vino(
        &std::fs::read_to_string(common::kube_env::repo().join("examples/vino.yaml")).unwrap(),
    )
    .unwrap();
    v.metadata.namespace = Some(NS.into());
    v
}

fn entry(node: &str, phase: NodePhase, ready: u32, generation: i64) -> NodeStatus {
    NodeStatus {
        name: node.into(),
        phase,
        vms_ready: ready,
        vms_total: 3,
        message: (phase == NodePhase::Degraded).then(|| "CPUs exhausted".into()),
        observed_generation: Some(generation),
        vms: Vec::new(),
    }
}

fn selected(hosts: &[&str]) -> BTreeSet<String> {
    hosts.iter().map(|h| h.to_string()).collect()
}

fn condition(v: &Vino, t: &str) -> (String, String, String) {
    let c = v
        .status
        .as_ref()
        .unwrap()
        .conditions
        .iter()
        .find(|c| c.type_ == t)
        .unwrap_or_else(|| panic!("no {t} condition"));
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

/// The stored conditions in order, as `[type, status, reason, message]`; each must be for
/// `generation`.
fn conditions(v: &Vino, generation: i64) -> Vec<[String; 4]> {
    let stored = &v.status.as_ref().unwrap().conditions;
    for c in stored {
        assert_eq!(c.observed_generation, Some(generation), "{c:?}");
    }
    stored
        .iter()
        .map(|c| {
            [
                c.type_.clone(),
                c.status.clone(),
                c.reason.clone(),
                c.message.clone(),
            ]
        })
        .collect()
}

/// A host: its client and its Node as the holder of its objects.
struct Host {
    client: Client,
    holder: Holder,
}

impl Host {
    /// Writes this host's `VinoNode` of `vino` with `e`.
    async fn report(&self, vino: &Vino, e: &NodeStatus) -> VinoNode {
        let labels = BTreeMap::from([(SELECTED[0].0.to_string(), SELECTED[0].1.to_string())]);
        membership::write(&self.client, vino, &self.holder, &labels, e)
            .await
            .unwrap()
    }

    /// Writes the summary of `vino` over `sel` from the `VinoNode`s, as the coordinator does.
    async fn summarize(
        &self,
        vino: &Vino,
        sel: &BTreeSet<String>,
    ) -> Result<Option<Vino>, KubeError> {
        let entries: Vec<NodeStatus> = membership::list_of(&self.client, &Owner::of(vino))
            .await?
            .into_iter()
            .map(|m| m.spec.entry())
            .collect();
        summary::write(&self.client, vino, &entries, sel).await
    }
}

async fn members(admin: &Client) -> Vec<String> {
    common::cluster::members(admin, NS, "demo").await
}

async fn get(admin: &Client) -> Vino {
    Api::<Vino>::namespaced(admin.clone(), NS)
        .get("demo")
        .await
        .unwrap()
}

async fn setup() -> Option<(KubeEnv, Client, Vec<Host>, Vino)> {
    let env = KubeEnv::start().await?;
    env.namespace(NS).await;
    env.install_rbac(&[NS]).await;
    let admin = env.admin();
    let created = Api::<Vino>::namespaced(admin.clone(), NS)
        .create(&PostParams::default(), &vino())
        .await
        .unwrap();
    let mut hosts = Vec::new();
    for h in HOSTS {
        let holder = env.host_node(h, "10.0.0.2", &SELECTED).await;
        hosts.push(Host {
            client: env.node_client(h).await,
            holder,
        });
    }
    Some((env, admin, hosts, created))
}

#[tokio::test]
async fn three_hosts_keep_their_own_objects_and_ready_needs_all_of_them() {
    let Some((env, admin, hosts, created)) = setup().await else {
        return;
    };
    let sel = selected(&HOSTS);
    let g = created.metadata.generation.unwrap();
    let [a, b, c] = [&hosts[0], &hosts[1], &hosts[2]];

    a.report(&created, &entry("node-a", NodePhase::Progressing, 1, g))
        .await;
    b.report(&created, &entry("node-b", NodePhase::Ready, 3, g))
        .await;
    c.report(&created, &entry("node-c", NodePhase::Ready, 3, g))
        .await;
    assert_eq!(members(&admin).await, HOSTS);
    let v = a.summarize(&created, &sel).await.unwrap().expect("written");
    let (st, reason, msg) = condition(&v, "Ready");
    assert_eq!(
        (st.as_str(), reason.as_str()),
        ("False", "HostsProgressing")
    );
    assert_eq!(msg, "2 of 3 hosts ready; node-a: Progressing (1/3 VMs)");
    // Each VinoNode is its host's alone; the Vino's status has one writer.
    for h in HOSTS {
        let m = common::cluster::member(&admin, NS, "demo", h)
            .await
            .unwrap();
        let managers: Vec<String> = m
            .managed_fields()
            .iter()
            .filter_map(|f| f.manager.clone())
            .collect();
        assert_eq!(managers, [format!("vinod/{h}")]);
        assert_eq!(m.owner_references()[0].name, h);
    }
    let managers: BTreeSet<String> = v
        .managed_fields()
        .iter()
        .filter(|m| m.subresource.as_deref() == Some("status"))
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(managers, selected(&["vinod"]));
    assert!(
        v.status.as_ref().unwrap().nodes.is_empty(),
        "no copy of the entries"
    );
    // Only the coordinator writes the summary.
    match b.summarize(&v, &sel).await {
        Ok(None) => {}
        other => panic!("node-b found something to write: {other:?}"),
    }
    let forged: Vec<NodeStatus> = HOSTS
        .iter()
        .map(|h| entry(h, NodePhase::Ready, 3, g))
        .collect();
    match summary::write(&b.client, &v, &forged, &sel).await {
        Err(KubeError::Api {
            source: kube::Error::Api(s),
            ..
        }) => assert!(s.code == 403 && s.message.contains("coordinates"), "{s:?}"),
        other => panic!("node-b wrote the summary: {other:?}"),
    }

    // kubectl waits until the last host is ready.
    let mut wait = env
        .kubectl()
        .args([
            "wait",
            "--for=condition=Ready",
            "vino/demo",
            "-n",
            NS,
            "--timeout=60s",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        wait.try_wait().unwrap().is_none(),
        "kubectl wait returned before Ready"
    );
    a.report(&created, &entry("node-a", NodePhase::Ready, 3, g))
        .await;
    let v = a.summarize(&v, &sel).await.unwrap().expect("written");
    assert_eq!(condition(&v, "Ready").0, "True");
    let started = Instant::now();
    let out = wait.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("condition met"));
    println!(
        "kubectl wait returned {:?} after the last report",
        started.elapsed()
    );

    let table = env.kubectl_ok(&["get", "vino", "demo", "-n", NS]);
    let row: Vec<&str> = table.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(&row[..4], ["demo", "True", "3/3", "9/9"], "{table}");
    let table = env.kubectl_ok(&["get", "vinonodes", "-n", NS]);
    assert_eq!(table.lines().count(), 4, "{table}");
    assert!(table.contains("demo.node-b"), "{table}");

    // Summarising again without a change writes nothing.
    let rv = get(&admin).await.resource_version();
    assert!(a.summarize(&v, &sel).await.unwrap().is_none());
    assert_eq!(get(&admin).await.resource_version(), rv);

    // node-a dies: once its Node is no longer Ready, node-b coordinates, and node-c still
    // may not write the summary.
    set_ready(&admin, "node-a", "Unknown").await;
    set_ready(&admin, "node-b", "True").await;
    b.report(&created, &entry("node-b", NodePhase::Degraded, 3, g))
        .await;
    let began = Instant::now();
    let v = loop {
        match b.summarize(&get(&admin).await, &sel).await {
            Ok(written) => break written.expect("a change to write"),
            // The policy sees the Node's new condition a moment later.
            Err(e) if began.elapsed() < Duration::from_secs(10) => {
                println!("node-b not yet coordinator: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("node-b cannot take over from a dead node-a: {e}"),
        }
    };
    assert_eq!(condition(&v, "Degraded").2, "node-b: CPUs exhausted");
    match summary::write(&c.client, &v, &forged, &sel).await {
        Err(KubeError::Api {
            source: kube::Error::Api(s),
            ..
        }) => assert!(
            s.code == 403 && s.message.contains("Node node-b comes first"),
            "{s:?}"
        ),
        other => panic!("node-c wrote the summary: {other:?}"),
    }
}

/// Sets Node `node`'s `Ready` condition to `status`, as its kubelet (or the node lifecycle
/// controller, for a host that stopped reporting) would.
async fn set_ready(admin: &Client, node: &str, status: &str) {
    let body = serde_json::json!({"status": {"conditions": [
        {"type": "Ready", "status": status, "reason": "Test", "message": "set by the test"}
    ]}});
    Api::<k8s_openapi::api::core::v1::Node>::all(admin.clone())
        .patch_status(node, &PatchParams::default(), &Patch::Merge(body))
        .await
        .unwrap();
}

#[tokio::test]
async fn concurrent_reports_never_conflict_and_the_summary_matches_them() {
    let Some((_env, admin, hosts, created)) = setup().await else {
        return;
    };
    let sel = selected(&HOSTS);
    let g = created.metadata.generation.unwrap();
    // Stored times have whole seconds.
    let began = k8s_openapi::jiff::Timestamp::now() - Duration::from_secs(1);
    // Each host goes through 1/3, 2/3, 3/3 VMs at the same time as the others.
    let tasks: Vec<_> = HOSTS
        .iter()
        .zip(&hosts)
        .map(|(h, host)| {
            let (h, client, holder, vino) = (
                h.to_string(),
                host.client.clone(),
                host.holder.clone(),
                created.clone(),
            );
            tokio::spawn(async move {
                let host = Host { client, holder };
                for ready in 1..=3 {
                    let phase = if ready == 3 {
                        NodePhase::Ready
                    } else {
                        NodePhase::Progressing
                    };
                    host.report(&vino, &entry(&h, phase, ready, g)).await;
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let v = hosts[0]
        .summarize(&get(&admin).await, &sel)
        .await
        .unwrap()
        .unwrap();
    let st = v.status.clone().unwrap();
    assert_eq!(
        conditions(&v, g),
        [
            [
                "Ready",
                "True",
                "AllHostsReady",
                "3 of 3 hosts ready, 9 of 9 VMs"
            ],
            ["Progressing", "False", "Converged", ""],
            ["Degraded", "False", "NoHostDegraded", ""],
            [
                "SpecWarnings",
                "True",
                "AcceptedWithWarnings",
                &EXAMPLE_WARNINGS.join("; ")
            ],
        ]
    );
    let now = k8s_openapi::jiff::Timestamp::now();
    for c in &st.conditions {
        assert!(
            (began..=now).contains(&c.last_transition_time.0),
            "{c:?} not set during the test ({began} to {now})"
        );
    }
    assert_eq!(st.nodes_ready.as_deref(), Some("3/3"));
    assert_eq!(st.vms_ready.as_deref(), Some("9/9"));
}

#[tokio::test]
async fn a_new_generation_degraded_hosts_and_leaving_hosts() {
    let Some((env, admin, hosts, created)) = setup().await else {
        return;
    };
    let sel = selected(&HOSTS);
    let g = created.metadata.generation.unwrap();
    for (h, host) in HOSTS.iter().zip(&hosts) {
        host.report(&created, &entry(h, NodePhase::Ready, 3, g))
            .await;
    }
    let v = hosts[0].summarize(&created, &sel).await.unwrap().unwrap();
    assert_eq!(condition(&v, "Ready").0, "True");
    // A spec change: the old reports no longer count.
    let api = Api::<Vino>::namespaced(admin.clone(), NS);
    let mut v = api.get("demo").await.unwrap();
    v.spec.nodes[1].count = 3;
    // A flavor Ironic can inspect: no warnings any more.
    let small = v.spec.flavors.get_mut("small").unwrap();
    (small.memory_mib, small.root_disk_gib) = (1024, 4);
    let v = api
        .replace("demo", &PostParams::default(), &v)
        .await
        .unwrap();
    let g2 = v.metadata.generation.unwrap();
    assert_eq!(g2, g + 1);
    hosts[2]
        .report(&v, &entry("node-c", NodePhase::Progressing, 3, g2))
        .await;
    let v = hosts[0].summarize(&v, &sel).await.unwrap().unwrap();
    let ready = &v.status.as_ref().unwrap().conditions[0];
    assert_eq!(
        (ready.status.as_str(), ready.observed_generation),
        ("False", Some(g2))
    );
    let out = env
        .kubectl()
        .args([
            "wait",
            "--for=condition=Ready",
            "vino/demo",
            "-n",
            NS,
            "--timeout=2s",
        ])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "kubectl wait succeeded on a stale generation"
    );

    // node-b cannot apply the new generation.
    hosts[1]
        .report(&v, &entry("node-b", NodePhase::Degraded, 3, g2))
        .await;
    let v = hosts[0].summarize(&v, &sel).await.unwrap().unwrap();
    let no_report = format!("node-a: no report for generation {g2} yet");
    assert_eq!(
        conditions(&v, g2),
        [
            [
                "Ready",
                "False",
                "HostsDegraded",
                &format!(
                    "0 of 3 hosts ready; node-b: CPUs exhausted; {no_report}; node-c: Progressing (3/3 VMs)"
                )
            ],
            [
                "Progressing",
                "True",
                "HostsProgressing",
                &format!("{no_report}; node-c: Progressing (3/3 VMs)")
            ],
            [
                "Degraded",
                "True",
                "HostsDegraded",
                "node-b: CPUs exhausted"
            ],
            ["SpecWarnings", "False", "NoWarnings", ""],
        ]
    );
    let st = v.status.as_ref().unwrap();
    // node-a's report is for the old generation: it counts neither as ready nor its VMs.
    assert_eq!(st.nodes_ready.as_deref(), Some("0/3"));
    assert_eq!(st.vms_ready.as_deref(), Some("6/6"));

    // node-b is deselected and leaves: its VinoNode goes, the others stay.
    membership::delete(&hosts[1].client, &Owner::of(&v), "node-b")
        .await
        .unwrap();
    assert_eq!(members(&admin).await, ["node-a", "node-c"]);
    let rest = selected(&["node-a", "node-c"]);
    for (h, host) in [("node-a", &hosts[0]), ("node-c", &hosts[2])] {
        host.report(&v, &entry(h, NodePhase::Ready, 3, g2)).await;
    }
    let v = hosts[0].summarize(&v, &rest).await.unwrap().unwrap();
    assert_eq!(condition(&v, "Ready").0, "True");
    assert_eq!(condition(&v, "Degraded").0, "False");
    assert_eq!(v.status.unwrap().nodes_ready.as_deref(), Some("2/2"));
}

#[tokio::test]
async fn vm_events_name_the_host_and_the_bare_metal_host() {
    let Some((_env, admin, hosts, created)) = setup().await else {
        return;
    };
    let events = Events::new(hosts[0].client.clone(), "node-a");
    events
        .vm_created(&created, "lab.demo.worker-0", Some("demo-node-a-worker-0"))
        .await
        .unwrap();
    events
        .vm_created(&created, "lab.demo.worker-1", Some("demo-node-a-worker-1"))
        .await
        .unwrap();
    events
        .vm_failed(
            &created,
            "lab.demo.master-0",
            "demo-node-a-master-0",
            "volume pool is full",
        )
        .await
        .unwrap();
    events
        .vm_deleted(&created, "lab.demo.worker-1", Some("demo-node-a-worker-1"))
        .await
        .unwrap();
    events
        .host_recreated(&created, "demo-node-a-worker-0")
        .await
        .unwrap();

    let list = Api::<Event>::namespaced(admin.clone(), NS)
        .list(&Default::default())
        .await
        .unwrap();
    let mut seen: Vec<(String, String, String)> = list
        .items
        .iter()
        .map(|e| {
            assert_eq!(e.regarding.as_ref().unwrap().name.as_deref(), Some("demo"));
            assert_eq!(e.regarding.as_ref().unwrap().uid, created.metadata.uid);
            assert_eq!(e.reporting_controller.as_deref(), Some("vinod"));
            assert_eq!(e.reporting_instance.as_deref(), Some("node-a"));
            (
                e.reason.clone().unwrap(),
                e.type_.clone().unwrap(),
                e.related.as_ref().unwrap().name.clone().unwrap(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            (
                "BareMetalHostRecreated".into(),
                "Warning".into(),
                "demo-node-a-worker-0".into()
            ),
            (
                "VmCreated".into(),
                "Normal".into(),
                "demo-node-a-worker-0".into()
            ),
            (
                "VmCreated".into(),
                "Normal".into(),
                "demo-node-a-worker-1".into()
            ),
            (
                "VmDeleted".into(),
                "Normal".into(),
                "demo-node-a-worker-1".into()
            ),
            (
                "VmFailed".into(),
                "Warning".into(),
                "demo-node-a-master-0".into()
            ),
        ]
    );
    let failed = list
        .items
        .iter()
        .find(|e| e.reason.as_deref() == Some("VmFailed"))
        .unwrap();
    assert_eq!(
        failed.note.as_deref(),
        Some("node-a: VM lab.demo.master-0: volume pool is full")
    );

    // Several VMs in one pass: one Event each way, naming them all.
    let two = [
        (
            "lab.demo.worker-2".to_string(),
            Some("demo-node-a-worker-2".to_string()),
        ),
        ("lab.demo.worker-3".to_string(), None),
    ];
    events.vms_created(&created, &two).await.unwrap();
    events.vms_deleted(&created, &two).await.unwrap();
    let batches: BTreeSet<(String, String)> = Api::<Event>::namespaced(admin.clone(), NS)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.related.is_none())
        .map(|e| (e.reason.unwrap_or_default(), e.note.unwrap_or_default()))
        .collect();
    let named = "lab.demo.worker-2 (BareMetalHost demo-node-a-worker-2), lab.demo.worker-3";
    assert_eq!(
        batches,
        BTreeSet::from([
            (
                "VmCreated".into(),
                format!("node-a: 2 VMs defined: {named}")
            ),
            (
                "VmDeleted".into(),
                format!("node-a: 2 VMs deleted: {named}")
            ),
        ])
    );

    // Another batch soon after is an Event of its own (not a repeat of the first, whose
    // note names other VMs); the same batch again is counted as a repeat.
    let next = [
        ("lab.demo.worker-4".to_string(), None),
        ("lab.demo.worker-5".to_string(), None),
    ];
    events.vms_created(&created, &next).await.unwrap();
    events.vms_created(&created, &next).await.unwrap();
    let found: Vec<Event> = Api::<Event>::namespaced(admin.clone(), NS)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("VmCreated") && e.related.is_none())
        .collect();
    let notes: BTreeMap<String, i32> = found
        .iter()
        .map(|e| {
            (
                e.note.clone().unwrap_or_default(),
                e.series.as_ref().map_or(1, |s| s.count),
            )
        })
        .collect();
    assert_eq!(
        notes,
        BTreeMap::from([
            (format!("node-a: 2 VMs defined: {named}"), 1),
            (
                "node-a: 2 VMs defined: lab.demo.worker-4, lab.demo.worker-5".to_string(),
                2
            ),
        ])
    );

    // A batch whose note would pass the API's 1024 bytes is cut short, and still accepted.
    let many: Vec<(String, Option<String>)> = (0..64)
        .map(|i| {
            (
                format!("lab.demo.worker-{i}"),
                Some(format!("demo-node-a-worker-{i}")),
            )
        })
        .collect();
    // A recorder of its own: the one above would count this as a repeat of its VmCreated.
    let fresh = Events::new(hosts[0].client.clone(), "node-a");
    fresh.vms_created(&created, &many).await.unwrap();
    let notes: Vec<String> = Api::<Event>::namespaced(admin, NS)
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|e| e.note)
        .filter(|n| n.starts_with("node-a: 64 VMs defined: lab.demo.worker-0 "))
        .collect();
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert!(
        notes[0].len() <= 1024 && notes[0].ends_with('…'),
        "{} bytes: {}",
        notes[0].len(),
        notes[0]
    );
}
