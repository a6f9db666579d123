//! Membership of Vinos on a real API server, with two hosts under their own identities: one
//! `VinoNode` per host and Vino, one shared finalizer on the Vino, which stays until no host
//! serves it; a deselected host lets go of a live Vino; a dead host's `VinoNode` and claims go
//! with its Node, and the Vino with them.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use common::kube_env::KubeEnv;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use vinod::api::bmh::BareMetalHost;
use vinod::api::pool_claim::VinoPoolClaim;
use vinod::api::{self, NodePhase, NodeStatus, Vino};
use vinod::config::Config;
use vinod::kube::claims::Holder;
use vinod::kube::membership::{self, FINALIZER};
use vinod::kube::{KubeError, claims, publish};
use vinod::plan::{self, NodeFacts, PlanInput};
use vinod::state::Owner;
use vinod::value::cpuset::CpuSet;

const NS: &str = "lab";

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
        down: false,
    }
}

async fn get(admin: &Client, name: &str) -> Option<Vino> {
    Api::<Vino>::namespaced(admin.clone(), NS)
        .get_opt(name)
        .await
        .unwrap()
}

fn entry(node: &str, phase: NodePhase, vino: &Vino) -> NodeStatus {
    NodeStatus {
        name: node.into(),
        phase,
        vms_ready: 3,
        vms_total: 3,
        message: None,
        observed_generation: vino.metadata.generation,
        vms: Vec::new(),
    }
}

/// What a host does for a Vino that selects it: the shared finalizer, its VinoNode, claims,
/// publication, its VinoNode again with its status.
async fn build(client: &Client, vino: &Vino, node: &str) {
    let (facts, config) = (facts(node), Config::default());
    let holder = Holder::read(client, node).await.unwrap();
    membership::ensure_finalizer(client, vino).await.unwrap();
    membership::write(
        client,
        vino,
        &holder,
        &facts.labels,
        &entry(node, NodePhase::Pending, vino),
    )
    .await
    .unwrap();
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
    membership::write(
        client,
        vino,
        &holder,
        &facts.labels,
        &entry(node, NodePhase::Ready, vino),
    )
    .await
    .unwrap();
}

/// The Kubernetes part of a host's teardown: its objects, claims and VinoNode.
async fn teardown(client: &Client, vino: &Vino, node: &str) -> Result<(), KubeError> {
    let owner = Owner::of(vino);
    let report = publish::withdraw(client, &owner, node).await?;
    if let Some(e) = report.errors.into_iter().next() {
        return Err(e);
    }
    claims::release(client, NS, &vino.name_any(), node).await?;
    membership::delete(client, &owner, node).await
}

/// What a host does last for a Vino being deleted: removes the shared finalizer if no
/// VinoNode is left. Returns whether it did.
async fn let_go(client: &Client, admin: &Client, name: &str) -> bool {
    let Some(v) = get(admin, name).await else {
        return false;
    };
    if !membership::list_of(client, &Owner::of(&v))
        .await
        .unwrap()
        .is_empty()
    {
        return false;
    }
    membership::remove_finalizer(client, &v).await.unwrap()
}

async fn members(admin: &Client) -> Vec<String> {
    common::cluster::members(admin, NS, "demo").await
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

async fn claims_left(admin: &Client) -> Vec<VinoPoolClaim> {
    Api::<VinoPoolClaim>::all(admin.clone())
        .list(&Default::default())
        .await
        .unwrap()
        .items
}

#[tokio::test]
async fn the_vino_goes_when_both_hosts_have_torn_down() {
    let Some(env) = KubeEnv::start().await else {
        return;
    };
    let (admin, a, b, _) = two_built_hosts(&env).await;
    let api = Api::<Vino>::namespaced(admin.clone(), NS);
    let v = get(&admin, "demo").await.unwrap();
    // One finalizer for both hosts, added once.
    assert_eq!(v.finalizers(), [FINALIZER]);
    assert_eq!(members(&admin).await, ["node-a", "node-b"]);
    assert_eq!(
        (
            objects_of(&admin, "node-a").await,
            objects_of(&admin, "node-b").await
        ),
        // Each: three hosts, their network data and the credentials Secret they share.
        (7, 7)
    );

    api.delete("demo", &DeleteParams::default()).await.unwrap();
    let deleting = get(&admin, "demo").await.expect("kept by the finalizer");
    assert!(deleting.metadata.deletion_timestamp.is_some());

    // node-a tears down: node-b still serves the Vino, so it stays.
    teardown(&a, &deleting, "node-a").await.unwrap();
    assert!(!let_go(&a, &admin, "demo").await);
    let v = get(&admin, "demo").await.expect("node-b still serves it");
    assert_eq!(v.finalizers(), [FINALIZER]);
    assert_eq!(objects_of(&admin, "node-a").await, 0);
    assert_eq!(objects_of(&admin, "node-b").await, 7);
    assert_eq!(members(&admin).await, ["node-b"]);

    // node-b tears down: no VinoNode is left, the finalizer goes and the Vino with it.
    teardown(&b, &v, "node-b").await.unwrap();
    assert!(let_go(&b, &admin, "demo").await);
    assert!(
        get(&admin, "demo").await.is_none(),
        "the Vino is still there"
    );
    assert_eq!(objects_of(&admin, "node-b").await, 0);
    let left = claims_left(&admin).await;
    assert!(left.is_empty(), "IP claims left: {left:?}");
}

#[tokio::test]
async fn a_deselected_host_lets_go_of_a_live_vino() {
    let Some(env) = KubeEnv::start().await else {
        return;
    };
    let (admin, a, b, _) = two_built_hosts(&env).await;
    let api = Api::<Vino>::namespaced(admin.clone(), NS);

    // node-a's labels no longer match: it tears down; the Vino lives with its finalizer.
    let v = get(&admin, "demo").await.unwrap();
    teardown(&a, &v, "node-a").await.unwrap();
    let v = get(&admin, "demo").await.unwrap();
    assert!(v.metadata.deletion_timestamp.is_none());
    assert_eq!(v.finalizers(), [FINALIZER]);
    assert_eq!(members(&admin).await, ["node-b"]);
    assert_eq!(objects_of(&admin, "node-a").await, 0);

    api.delete("demo", &DeleteParams::default()).await.unwrap();
    let v = get(&admin, "demo").await.unwrap();
    teardown(&b, &v, "node-b").await.unwrap();
    assert!(let_go(&b, &admin, "demo").await);
    assert!(get(&admin, "demo").await.is_none());
}

#[tokio::test]
async fn a_dead_hosts_vino_node_and_claims_go_with_its_node() {
    let Some(env) = KubeEnv::start().await else {
        return;
    };
    env.start_gc();
    let (admin, a, _, _) = two_built_hosts(&env).await;
    let api = Api::<Vino>::namespaced(admin.clone(), NS);

    // node-b dies. The Vino is deleted; node-a tears down, and node-b's VinoNode holds it.
    api.delete("demo", &DeleteParams::default()).await.unwrap();
    let deleting = get(&admin, "demo").await.unwrap();
    teardown(&a, &deleting, "node-a").await.unwrap();
    assert!(!let_go(&a, &admin, "demo").await);
    assert_eq!(members(&admin).await, ["node-b"]);
    // node-a may not delete node-b's VinoNode.
    match membership::delete(&a, &Owner::of(&deleting), "node-b").await {
        Err(KubeError::Api {
            source: kube::Error::Api(s),
            ..
        }) => assert_eq!(s.code, 403, "{s:?}"),
        other => panic!("expected the policy to refuse, got {other:?}"),
    }

    // node-b's Node is deleted: its VinoNode and claims go with it, and the Vino can go.
    Api::<k8s_openapi::api::core::v1::Node>::all(admin.clone())
        .delete("node-b", &DeleteParams::default())
        .await
        .unwrap();
    let began = Instant::now();
    loop {
        let (m, c) = (members(&admin).await, claims_left(&admin).await);
        if m.is_empty() && c.is_empty() {
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "60 s after node-b's Node: VinoNodes of {m:?}, claims {c:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(let_go(&a, &admin, "demo").await);
    assert!(
        get(&admin, "demo").await.is_none(),
        "the Vino is still there"
    );
    println!(
        "node-b's VinoNode and claims gone, and the Vino, {:?} after its Node",
        began.elapsed()
    );
}
