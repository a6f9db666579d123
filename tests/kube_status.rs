//! Vino status and Events on a real API server, written by three hosts with their own
//! identities (users vinod-node-a, -b, -c under the shipped RBAC and admission policy).

mod common;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::kube_env::KubeEnv;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, PostParams};
use kube::{Client, ResourceExt};
use vinod::api::{self, NodePhase, NodeStatus, Vino};
use vinod::kube::status::{self, Events};

const NS: &str = "lab";
const HOSTS: [&str; 3] = ["node-a", "node-b", "node-c"];

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

fn names(v: &Vino) -> Vec<String> {
    let mut n: Vec<String> = v
        .status
        .as_ref()
        .unwrap()
        .nodes
        .iter()
        .map(|e| e.name.clone())
        .collect();
    n.sort();
    n
}

async fn setup() -> Option<(KubeEnv, Client, Vec<Client>, Vino)> {
    let env = KubeEnv::start().await?;
    env.namespace(NS).await;
    env.install_rbac(&[NS]).await;
    let admin = env.admin();
    let created = Api::<Vino>::namespaced(admin.clone(), NS)
        .create(&PostParams::default(), &vino())
        .await
        .unwrap();
    let mut clients = Vec::new();
    for h in HOSTS {
        env.holder(h).await;
        clients.push(env.node_client(h).await);
    }
    Some((env, admin, clients, created))
}

#[tokio::test]
async fn three_hosts_keep_their_own_entries_and_ready_needs_all_of_them() {
    let Some((env, _admin, clients, created)) = setup().await else {
        return;
    };
    let sel = selected(&HOSTS);
    let g = created.metadata.generation.unwrap();
    let [a, b, c] = [&clients[0], &clients[1], &clients[2]];

    let v = status::report(
        a,
        NS,
        "demo",
        &entry("node-a", NodePhase::Progressing, 1, g),
        &sel,
    )
    .await
    .unwrap();
    assert_eq!(condition(&v, "Ready").0, "False");
    status::report(
        b,
        NS,
        "demo",
        &entry("node-b", NodePhase::Ready, 3, g),
        &sel,
    )
    .await
    .unwrap();
    let v = status::report(
        c,
        NS,
        "demo",
        &entry("node-c", NodePhase::Ready, 3, g),
        &sel,
    )
    .await
    .unwrap();
    assert_eq!(names(&v), HOSTS);
    let (st, reason, msg) = condition(&v, "Ready");
    assert_eq!(
        (st.as_str(), reason.as_str()),
        ("False", "HostsProgressing")
    );
    assert_eq!(msg, "2 of 3 hosts ready; node-a: Progressing (1/3 VMs)");
    // Each entry is owned by its host's field manager on the status subresource; the shared
    // summary by the summary managers of the hosts that wrote it.
    let managers: BTreeSet<String> = v
        .managed_fields()
        .iter()
        .filter(|m| m.subresource.as_deref() == Some("status"))
        .filter_map(|m| m.manager.clone())
        .collect();
    let (summaries, entries): (BTreeSet<String>, BTreeSet<String>) =
        managers.into_iter().partition(|m| m.ends_with("/summary"));
    assert_eq!(
        entries,
        selected(&["vinod/node-a", "vinod/node-b", "vinod/node-c"])
    );
    assert!(!summaries.is_empty());
    assert!(
        summaries
            .iter()
            .all(|m| entries.contains(m.trim_end_matches("/summary"))),
        "{summaries:?}"
    );

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
    let v = status::report(
        a,
        NS,
        "demo",
        &entry("node-a", NodePhase::Ready, 3, g),
        &sel,
    )
    .await
    .unwrap();
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

    // Reporting again without a change writes nothing.
    let rv = v.resource_version();
    let again = status::report(
        b,
        NS,
        "demo",
        &entry("node-b", NodePhase::Ready, 3, g),
        &sel,
    )
    .await
    .unwrap();
    assert_eq!(again.resource_version(), rv);
}

#[tokio::test]
async fn concurrent_reports_leave_conditions_that_match_the_entries() {
    let Some((_env, admin, clients, created)) = setup().await else {
        return;
    };
    let sel = selected(&HOSTS);
    let g = created.metadata.generation.unwrap();
    // Stored times have whole seconds.
    let began = k8s_openapi::jiff::Timestamp::now() - Duration::from_secs(1);
    // Each host goes through 1/3, 2/3, 3/3 VMs at the same time as the others.
    let tasks: Vec<_> = HOSTS
        .iter()
        .zip(&clients)
        .map(|(h, client)| {
            let (h, client, sel) = (h.to_string(), client.clone(), sel.clone());
            tokio::spawn(async move {
                for ready in 1..=3 {
                    let phase = if ready == 3 {
                        NodePhase::Ready
                    } else {
                        NodePhase::Progressing
                    };
                    status::report(&client, NS, "demo", &entry(&h, phase, ready, g), &sel)
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let v = Api::<Vino>::namespaced(admin.clone(), NS)
        .get("demo")
        .await
        .unwrap();
    let st = v.status.clone().unwrap();
    assert_eq!(names(&v), HOSTS);
    assert!(
        st.nodes
            .iter()
            .all(|e| e.phase == NodePhase::Ready && e.vms_ready == 3)
    );
    // Whichever host wrote last, the conditions describe all three final entries.
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
    let Some((env, admin, clients, created)) = setup().await else {
        return;
    };
    let sel = selected(&HOSTS);
    let g = created.metadata.generation.unwrap();
    for (h, client) in HOSTS.iter().zip(&clients) {
        status::report(client, NS, "demo", &entry(h, NodePhase::Ready, 3, g), &sel)
            .await
            .unwrap();
    }
    // A spec change: the old reports no longer count once anyone reports.
    let api = Api::<Vino>::namespaced(admin.clone(), NS);
    let mut v = api.get("demo").await.unwrap();
    v.spec.nodes[1].count = 3;
    let v = api
        .replace("demo", &PostParams::default(), &v)
        .await
        .unwrap();
    let g2 = v.metadata.generation.unwrap();
    assert_eq!(g2, g + 1);
    let v = status::report(
        &clients[2],
        NS,
        "demo",
        &entry("node-c", NodePhase::Progressing, 3, g2),
        &sel,
    )
    .await
    .unwrap();
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
    let v = status::report(
        &clients[1],
        NS,
        "demo",
        &entry("node-b", NodePhase::Degraded, 3, g2),
        &sel,
    )
    .await
    .unwrap();
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
        ]
    );
    let st = v.status.as_ref().unwrap();
    // node-a's report is for the old generation: it counts neither as ready nor its VMs.
    assert_eq!(st.nodes_ready.as_deref(), Some("0/3"));
    assert_eq!(st.vms_ready.as_deref(), Some("6/6"));

    // node-b is deselected and leaves: its entry goes, the others stay.
    let rest = selected(&["node-a", "node-c"]);
    let v = status::remove_entry(&clients[1], NS, "demo", "node-b", &rest)
        .await
        .unwrap();
    assert_eq!(names(&v), ["node-a", "node-c"]);
    assert_eq!(condition(&v, "Degraded").0, "False");
    for (h, client) in [("node-a", &clients[0]), ("node-c", &clients[2])] {
        status::report(
            client,
            NS,
            "demo",
            &entry(h, NodePhase::Ready, 3, g2),
            &rest,
        )
        .await
        .unwrap();
    }
    let v = api.get("demo").await.unwrap();
    assert_eq!(condition(&v, "Ready").0, "True");
    assert_eq!(v.status.unwrap().nodes_ready.as_deref(), Some("2/2"));
}

#[tokio::test]
async fn vm_events_name_the_host_and_the_bare_metal_host() {
    let Some((_env, admin, clients, created)) = setup().await else {
        return;
    };
    let events = Events::new(clients[0].clone(), "node-a");
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

    let list = Api::<Event>::namespaced(admin, NS)
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
}
