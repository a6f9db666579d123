//! Per-host finalizers on a real API server, with two hosts under their own identities: the
//! Vino stays until every host has torn down, a failed teardown keeps it, a deselected host
//! lets go of a live Vino.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Mutex;

use common::kube_env::KubeEnv;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use vinod::api::bmh::BareMetalHost;
use vinod::api::pool_claim::VinoPoolClaim;
use vinod::api::{self, NodePhase, NodeStatus, Vino};
use vinod::config::Config;
use vinod::kube::claims::Holder;
use vinod::kube::finalizer::{self, FinalizeError, State};
use vinod::kube::{KubeError, claims, publish, status};
use vinod::plan::{self, NodeFacts, PlanInput};
use vinod::state::Owner;
use vinod::value::cpuset::CpuSet;

const NS: &str = "lab";
const HOSTS: [&str; 2] = ["node-a", "node-b"];

fn vino(name: &str) -> Vino {
    let text =
        std::fs::read_to_string(common::kube_env::repo().join("examples/vino.yaml")).unwrap();
    let mut v = api::parse_vino(&text).unwrap();
    v.metadata.name = Some(name.into());
    v.metadata.namespace = Some(NS.into());
    v
}

fn facts(node: &str) -> NodeFacts {
    NodeFacts {
        name: node.into(),
        labels: BTreeMap::from([("vino.airshipit.org/demo".into(), "true".into())]),
        addresses: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))],
        numa: vec![],
    }
}

async fn get(admin: &Client, name: &str) -> Option<Vino> {
    Api::<Vino>::namespaced(admin.clone(), NS)
        .get_opt(name)
        .await
        .unwrap()
}

/// What a host does for a Vino that selects it: finalizer, claims, publication, status.
async fn build(client: &Client, vino: &Vino, node: &str) {
    let state = finalizer::reconcile(client, vino, node, true, || async {
        Ok::<(), KubeError>(())
    })
    .await
    .unwrap();
    assert_eq!(state, State::Active);
    let (facts, config) = (facts(node), Config::default());
    let holder = Holder::read(client, node).await.unwrap();
    let plan = claims::reserve(client, vino, &holder, |all| {
        plan::plan(PlanInput {
            vino,
            node: &facts,
            config: &config,
            claims: all,
            credentials: None,
            taken_cpus: &CpuSet::default(),
            current_pins: &Default::default(),
            host_network: &Default::default(),
            retained: &[],
        })
        .map(|p| (p.claims.clone(), p))
    })
    .await
    .unwrap();
    let report = publish::publish(client, &plan).await.unwrap();
    assert!(report.is_complete(), "{report:?}");
    let entry = NodeStatus {
        name: node.into(),
        phase: NodePhase::Ready,
        vms_ready: 3,
        vms_total: 3,
        message: None,
        observed_generation: vino.metadata.generation,
    };
    let sel: BTreeSet<String> = HOSTS.iter().map(|h| h.to_string()).collect();
    status::report(client, NS, &vino.name_any(), &entry, &sel)
        .await
        .unwrap();
}

/// The Kubernetes part of a host's teardown: its objects, claims and status entry.
async fn teardown(
    client: &Client,
    vino: &Vino,
    node: &str,
    rest: &[&str],
) -> Result<(), KubeError> {
    let owner = Owner {
        namespace: NS.into(),
        name: vino.name_any(),
    };
    let report = publish::withdraw(client, &owner, node).await?;
    if let Some(e) = report.errors.into_iter().next() {
        return Err(e);
    }
    claims::release(client, NS, &vino.name_any(), node).await?;
    let rest = rest.iter().map(|h| h.to_string()).collect();
    status::remove_entry(client, NS, &vino.name_any(), node, &rest).await?;
    Ok(())
}

/// Two hosts, node-a and node-b (Nodes, identities, the shipped RBAC and policies), that have
/// built the Vino `demo`: the admin's client, theirs, and the Vino as created.
async fn two_built_hosts(env: &KubeEnv) -> (Client, Client, Client, Vino) {
    env.namespace(NS).await;
    env.install_rbac(&[NS]).await;
    let admin = env.admin();
    let a = env.node_client("node-a").await;
    let b = env.node_client("node-b").await;
    let selected = [("vino.airshipit.org/demo", "true")];
    env.host_node("node-a", "10.0.0.2", &selected).await;
    env.host_node("node-b", "10.0.0.2", &selected).await;
    let created = Api::<Vino>::namespaced(admin.clone(), NS)
        .create(&PostParams::default(), &vino("demo"))
        .await
        .unwrap();
    build(&a, &created, "node-a").await;
    build(&b, &created, "node-b").await;
    (admin, a, b, created)
}

async fn objects_of(admin: &Client, node: &str) -> usize {
    let lp = ListParams::default().labels(&format!("vino.airshipit.org/node={node}"));
    let hosts = Api::<BareMetalHost>::namespaced(admin.clone(), NS)
        .list(&lp)
        .await
        .unwrap();
    let secrets = Api::<Secret>::namespaced(admin.clone(), NS)
        .list(&lp)
        .await
        .unwrap();
    hosts.items.len() + secrets.items.len()
}

#[tokio::test]
async fn the_vino_goes_when_both_hosts_have_torn_down() {
    let Some(env) = KubeEnv::start().await else {
        return;
    };
    let (admin, a, b, _) = two_built_hosts(&env).await;
    let api = Api::<Vino>::namespaced(admin.clone(), NS);
    let v = get(&admin, "demo").await.unwrap();
    assert_eq!(
        v.finalizers(),
        ["vino.airshipit.org/node-a", "vino.airshipit.org/node-b"]
    );
    assert_eq!(
        (
            objects_of(&admin, "node-a").await,
            objects_of(&admin, "node-b").await
        ),
        (9, 9)
    );

    api.delete("demo", &DeleteParams::default()).await.unwrap();
    let deleting = get(&admin, "demo").await.expect("kept by the finalizers");
    assert!(deleting.metadata.deletion_timestamp.is_some());

    // node-a tears down (still selected: deletion alone triggers it).
    let calls = Mutex::new(Vec::new());
    let state = finalizer::reconcile(&a, &deleting, "node-a", true, || async {
        calls.lock().unwrap().push("node-a");
        teardown(&a, &deleting, "node-a", &["node-b"]).await
    })
    .await
    .unwrap();
    assert_eq!(state, State::Released);
    let v = get(&admin, "demo").await.expect("node-b still holds it");
    assert_eq!(v.finalizers(), ["vino.airshipit.org/node-b"]);
    assert_eq!(objects_of(&admin, "node-a").await, 0);
    assert_eq!(objects_of(&admin, "node-b").await, 9);
    let entries: Vec<&str> = v
        .status
        .as_ref()
        .unwrap()
        .nodes
        .iter()
        .map(|e| e.name.as_str())
        .collect();
    assert_eq!(entries, ["node-b"]);

    // node-b's first teardown fails: the finalizer and the Vino stay.
    let failed = finalizer::reconcile(&b, &v, "node-b", true, || async {
        Err::<(), _>(std::io::Error::other("libvirt is not answering"))
    })
    .await;
    match failed {
        Err(FinalizeError::Teardown { finalizer, source }) => {
            assert_eq!(finalizer, "vino.airshipit.org/node-b");
            assert_eq!(source.to_string(), "libvirt is not answering");
        }
        other => panic!("expected a teardown error, got {other:?}"),
    }
    let v = get(&admin, "demo")
        .await
        .expect("kept after a failed teardown");
    assert_eq!(v.finalizers(), ["vino.airshipit.org/node-b"]);

    // node-b succeeds: the Vino is gone, with everything the hosts made for it.
    let state = finalizer::reconcile(&b, &v, "node-b", true, || async {
        calls.lock().unwrap().push("node-b");
        teardown(&b, &v, "node-b", &[]).await
    })
    .await
    .unwrap();
    assert_eq!(state, State::Released);
    assert!(
        get(&admin, "demo").await.is_none(),
        "the Vino is still there"
    );
    assert_eq!(*calls.lock().unwrap(), ["node-a", "node-b"]);
    assert_eq!(objects_of(&admin, "node-b").await, 0);
    let left = Api::<VinoPoolClaim>::all(admin.clone())
        .list(&Default::default())
        .await
        .unwrap();
    assert!(left.items.is_empty(), "IP claims left: {:?}", left.items);
}

#[tokio::test]
async fn a_deselected_host_lets_go_and_a_deleting_vino_gets_no_new_finalizer() {
    let Some(env) = KubeEnv::start().await else {
        return;
    };
    let (admin, a, b, _) = two_built_hosts(&env).await;
    let api = Api::<Vino>::namespaced(admin.clone(), NS);

    // node-a's labels no longer match: it tears down and removes its finalizer; the Vino lives.
    let v = get(&admin, "demo").await.unwrap();
    let state = finalizer::reconcile(&a, &v, "node-a", false, || {
        teardown(&a, &v, "node-a", &["node-b"])
    })
    .await
    .unwrap();
    assert_eq!(state, State::Released);
    let v = get(&admin, "demo").await.unwrap();
    assert!(v.metadata.deletion_timestamp.is_none());
    assert_eq!(v.finalizers(), ["vino.airshipit.org/node-b"]);
    assert_eq!(objects_of(&admin, "node-a").await, 0);
    // Nothing more to do for it afterwards.
    let state = finalizer::reconcile(&a, &v, "node-a", false, || async {
        Err::<(), _>(std::io::Error::other("no second teardown"))
    })
    .await
    .unwrap();
    assert_eq!(state, State::Absent);

    // Once the Vino is being deleted, a host that is not on it does not join.
    api.delete("demo", &DeleteParams::default()).await.unwrap();
    let v = get(&admin, "demo").await.unwrap();
    let state = finalizer::reconcile(&a, &v, "node-a", true, || async {
        Err::<(), _>(std::io::Error::other("nothing to tear down"))
    })
    .await
    .unwrap();
    assert_eq!(state, State::Absent);
    assert_eq!(
        get(&admin, "demo").await.unwrap().finalizers(),
        ["vino.airshipit.org/node-b"]
    );

    let state = finalizer::reconcile(&b, &v, "node-b", true, || teardown(&b, &v, "node-b", &[]))
        .await
        .unwrap();
    assert_eq!(state, State::Released);
    assert!(get(&admin, "demo").await.is_none());
}

#[tokio::test]
async fn a_dead_hosts_finalizer_and_claims_go_with_its_node() {
    let Some(env) = KubeEnv::start().await else {
        return;
    };
    env.start_gc();
    let (admin, a, _, _) = two_built_hosts(&env).await;
    let api = Api::<Vino>::namespaced(admin.clone(), NS);

    // node-b dies. The Vino is deleted; node-a may not drop node-b's finalizer while its Node
    // exists.
    api.delete("demo", &DeleteParams::default()).await.unwrap();
    let deleting = get(&admin, "demo").await.unwrap();
    let both: BTreeSet<String> = HOSTS.iter().map(|h| h.to_string()).collect();
    assert!(
        finalizer::remove_departed(&a, &deleting, &both)
            .await
            .unwrap()
            .is_empty()
    );
    let only_a = BTreeSet::from(["node-a".to_string()]);
    match finalizer::remove_departed(&a, &deleting, &only_a).await {
        Err(KubeError::Api {
            source: kube::Error::Api(s),
            ..
        }) => assert!(
            s.code == 403 && s.message.contains("only once Node node-b is gone"),
            "{s:?}"
        ),
        other => panic!("expected the policy to refuse, got {other:?}"),
    }

    // node-b's Node is deleted: its claims go with it, and node-a lets go of it.
    Api::<k8s_openapi::api::core::v1::Node>::all(admin.clone())
        .delete("node-b", &DeleteParams::default())
        .await
        .unwrap();
    let began = std::time::Instant::now();
    let state = finalizer::reconcile(&a, &deleting, "node-a", true, || async {
        teardown(&a, &deleting, "node-a", &[]).await
    })
    .await
    .unwrap();
    assert_eq!(state, State::Released);
    let v = get(&admin, "demo")
        .await
        .expect("node-b's finalizer holds it");
    assert_eq!(v.finalizers(), ["vino.airshipit.org/node-b"]);
    let removed = finalizer::remove_departed(&a, &v, &only_a).await.unwrap();
    assert_eq!(removed, ["vino.airshipit.org/node-b"]);
    assert!(
        get(&admin, "demo").await.is_none(),
        "the Vino is still there"
    );
    loop {
        let left = Api::<VinoPoolClaim>::all(admin.clone())
            .list(&Default::default())
            .await
            .unwrap()
            .items;
        if left.is_empty() {
            break;
        }
        assert!(
            began.elapsed() < std::time::Duration::from_secs(60),
            "claims left 60 s after node-b's Node: {left:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    println!(
        "Vino and node-b's claims gone {:?} after its Node",
        began.elapsed()
    );
}
