//! Least privilege on a real API server: `packaging/rbac/` applied as shipped, then each host
//! identity may write only its own BareMetalHosts, Secrets, claims and `VinoNode`s (for Vinos
//! that select it), the shared finalizer on Vinos that select it, and a Vino's summary only as
//! its coordinator. Another host's are refused by the admission policies (403), RBAC refuses the
//! rest.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Debug;
use std::net::{IpAddr, Ipv4Addr};

use common::kube_env::KubeEnv;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{
    Api, DeleteParams, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use kube::discovery::ApiResource;
use kube::{Client, ResourceExt};
use serde_json::json;
use vinod::api::bmh::BareMetalHost;
use vinod::api::pool_claim::VinoPoolClaim;
use vinod::api::{self, NodePhase, NodeStatus, Vino};
use vinod::config::Config;
use vinod::kube::claims::Holder;
use vinod::kube::membership::{self, FINALIZER};
use vinod::kube::{claims, finalizer, hardware, publish, summary};
use vinod::plan::{self, NodeFacts, PlanInput};
use vinod::value::cpuset::CpuSet;

const NS: &str = "lab";
const POLICY: &str =
    "ValidatingAdmissionPolicy 'vinod-node-scope' with binding 'vinod-node-scope' denied request";
const FACTS_POLICY: &str =
    "ValidatingAdmissionPolicy 'vinod-node-facts' with binding 'vinod-node-facts' denied request";
const RELEASE_POLICY: &str = "ValidatingAdmissionPolicy 'vinod-vino-release' with binding 'vinod-vino-release' denied request";
/// The address of every test Node, where the hosts' BMCs are published.
const NODE_IP: &str = "10.0.0.2";
const SELECTED: (&str, &str) = ("vino.airshipit.org/demo", "true");

#[track_caller]
fn denied_by_policy<T: Debug>(r: Result<T, kube::Error>, what: &str) -> String {
    denied_by(POLICY, r, what)
}

/// The message of a 403 from `policy`.
#[track_caller]
fn denied_by<T: Debug>(policy: &str, r: Result<T, kube::Error>, what: &str) -> String {
    match r {
        Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains(policy) => s.message,
        other => panic!("{what}: expected {policy}, got {other:?}"),
    }
}

/// The message of a refusal by the policy that checks writes against the host's Node.
#[track_caller]
fn denied_by_node_facts<T: Debug>(r: Result<T, kube::Error>, what: &str) -> String {
    denied_by(FACTS_POLICY, r, what)
}

#[track_caller]
fn denied_by_rbac<T: Debug>(r: Result<T, kube::Error>, what: &str) {
    match r {
        Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains("cannot") => {}
        other => panic!("{what}: expected RBAC to refuse, got {other:?}"),
    }
}

fn demo() -> Vino {
    let text =
        std::fs::read_to_string(common::kube_env::repo().join("examples/vino.yaml")).unwrap();
    let mut v = api::parse_vino(&text).unwrap();
    v.metadata.namespace = Some(NS.into());
    v
}

/// Claims, publishes and reports as `node` with its own client; returns its BareMetalHost names.
async fn publish_as(client: &Client, vino: &Vino, node: &str) -> Vec<String> {
    let facts = NodeFacts {
        name: node.into(),
        labels: BTreeMap::from([("vino.airshipit.org/demo".into(), "true".into())]),
        addresses: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))],
        numa: vec![],
        down: false,
    };
    let config = Config::default();
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
    assert!(report.is_complete(), "{node}: {report:?}");
    // Its HardwareData too (metal3's CRD is installed), each controlled by its host.
    let written = hardware::publish(client, &plan, &report.uids, &mut Default::default())
        .await
        .unwrap();
    assert_eq!(written, plan.hardware.len(), "{node}");
    plan.bare_metal_hosts.iter().map(|h| h.name_any()).collect()
}

fn bmh(name: &str, node: Option<&str>) -> BareMetalHost {
    let labels = node.map_or(json!({}), |n| json!({"vino.airshipit.org/node": n}));
    serde_json::from_value(json!({
        "apiVersion": "metal3.io/v1alpha1", "kind": "BareMetalHost",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "spec": {"bmc": {"address": format!("redfish+https://{NODE_IP}:8000/redfish/v1/Systems/x"), "credentialsName": format!("{name}-credentials")}, "online": false}
    }))
    .unwrap()
}

fn secret(name: &str, node: Option<&str>) -> Secret {
    let labels = node.map_or(json!({}), |n| json!({"vino.airshipit.org/node": n}));
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": NS, "labels": labels},
        "stringData": {"password": "x"}
    }))
    .unwrap()
}

fn pp_default() -> PostParams {
    PostParams::default()
}

fn label(key: &str) -> Patch<serde_json::Value> {
    Patch::Merge(json!({"metadata": {"labels": {key: "x"}}}))
}

#[tokio::test]
async fn hosts_may_write_only_their_own_objects() {
    let Some(env) = KubeEnv::start().await else {
        return;
    };
    env.namespace(NS).await;
    env.namespace("other").await;
    env.install_rbac(&[NS]).await;
    let admin = env.admin();
    let a = env.node_client("node-a").await;
    let b = env.node_client("node-b").await;
    env.host_node("node-a", NODE_IP, &[SELECTED]).await;
    env.host_node("node-b", NODE_IP, &[SELECTED]).await;
    let vino = Api::<Vino>::namespaced(admin.clone(), NS)
        .create(&PostParams::default(), &demo())
        .await
        .unwrap();

    // Each host does its own work under the shipped roles and policy.
    let mine = publish_as(&a, &vino, "node-a").await;
    let theirs = publish_as(&b, &vino, "node-b").await;
    let sel: BTreeSet<String> = ["node-a", "node-b"].map(String::from).into();
    let entry = |node: &str| NodeStatus {
        name: node.into(),
        phase: NodePhase::Ready,
        vms_ready: 3,
        vms_total: 3,
        message: None,
        observed_generation: vino.metadata.generation,
        vms: Vec::new(),
    };
    let node_labels = BTreeMap::from([(SELECTED.0.to_string(), SELECTED.1.to_string())]);
    for (client, node) in [(&a, "node-a"), (&b, "node-b")] {
        membership::ensure_finalizer(client, &vino).await.unwrap();
        let holder = Holder::read(client, node).await.unwrap();
        membership::write(client, &vino, &holder, &node_labels, &entry(node))
            .await
            .unwrap();
        // What an earlier version left: its own finalizer and status entry.
        finalizer::add(client, &vino, node).await.unwrap();
        let legacy = json!({"apiVersion": "airship.airshipit.org/v1", "kind": "Vino",
            "metadata": {"name": "demo", "namespace": NS},
            "status": {"nodes": [entry(node)]}});
        Api::<Vino>::namespaced(client.clone(), NS)
            .patch_status(
                "demo",
                &PatchParams::apply(&format!("vinod/{node}")).force(),
                &Patch::Apply(legacy),
            )
            .await
            .unwrap();
    }
    let vino = Api::<Vino>::namespaced(admin.clone(), NS)
        .get("demo")
        .await
        .unwrap();

    // BareMetalHosts, as node-a.
    let hosts: Api<BareMetalHost> = Api::namespaced(a.clone(), NS);
    let pp = PostParams::default();
    let msg = denied_by_policy(
        hosts.create(&pp, &bmh("sneaky", Some("node-b"))).await,
        "create node-b's host",
    );
    assert!(msg.contains("vinod host node-a may only write baremetalhosts labelled vino.airshipit.org/node=node-a"), "{msg}");
    denied_by_policy(
        hosts.create(&pp, &bmh("unlabelled", None)).await,
        "create an unlabelled host",
    );
    denied_by_policy(
        hosts
            .patch(&theirs[0], &PatchParams::default(), &label("x"))
            .await,
        "patch node-b's host",
    );
    denied_by_policy(
        hosts.delete(&theirs[0], &DeleteParams::default()).await,
        "delete node-b's host",
    );
    denied_by_policy(
        hosts
            .patch(
                &mine[0],
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"metadata": {"labels": {"vino.airshipit.org/node": "node-b"}}}),
                ),
            )
            .await,
        "hand its host to node-b",
    );
    hosts
        .patch(&mine[0], &PatchParams::default(), &label("x"))
        .await
        .unwrap();
    hosts
        .create(&pp, &bmh("extra-a", Some("node-a")))
        .await
        .unwrap();
    hosts
        .delete("extra-a", &DeleteParams::default())
        .await
        .unwrap();

    // The same through kubectl.
    let out = env
        .kubectl_as("node-a")
        .args(["delete", "baremetalhost", &theirs[0], "-n", NS])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("(Forbidden)") && stderr.contains(POLICY),
        "{stderr}"
    );

    // Secrets, as node-a.
    let secrets: Api<Secret> = Api::namespaced(a.clone(), NS);
    // Each host's VMs of the Vino share one credentials Secret named for the host.
    let their_secret = "demo.node-b.credentials".to_string();
    let my_secret = "demo.node-a.credentials".to_string();
    denied_by_policy(
        secrets
            .create(&pp, &secret("sneaky-credentials", Some("node-b")))
            .await,
        "create node-b's Secret",
    );
    denied_by_policy(
        secrets
            .create(&pp, &secret("plain-credentials", None))
            .await,
        "create an unlabelled Secret",
    );
    denied_by_policy(
        secrets
            .patch(&their_secret, &PatchParams::default(), &label("x"))
            .await,
        "patch node-b's Secret",
    );
    denied_by_policy(
        secrets
            .delete(&their_secret, &DeleteParams::default())
            .await,
        "delete node-b's Secret",
    );
    secrets
        .patch(&my_secret, &PatchParams::default(), &label("x"))
        .await
        .unwrap();
    secrets
        .delete(&my_secret, &DeleteParams::default())
        .await
        .unwrap();

    // The Vino: only node-a's own finalizer, nothing else.
    let vinoes: Api<Vino> = Api::namespaced(a.clone(), NS);
    let apply = PatchParams::apply("vinod/node-a").force();
    let finalizers = |f: &[&str]| {
        json!({"apiVersion": "airship.airshipit.org/v1", "kind": "Vino",
               "metadata": {"name": "demo", "namespace": NS, "finalizers": f}})
    };
    let msg = denied_by_policy(
        vinoes
            .patch(
                "demo",
                &apply,
                &Patch::Apply(finalizers(&[
                    "vino.airshipit.org/node-a",
                    "vino.airshipit.org/node-c",
                ])),
            )
            .await,
        "add another host's finalizer",
    );
    assert!(
        msg.contains(&format!(
            "may only add or remove the finalizer {FINALIZER} or its own vino.airshipit.org/node-a"
        )),
        "{msg}"
    );
    let msg = denied_by_node_facts(
        vinoes
            .patch(
                "demo",
                &PatchParams::default(),
                &Patch::Merge(
                    json!({"metadata": {"finalizers": [FINALIZER, "vino.airshipit.org/node-a"]}}),
                ),
            )
            .await,
        "drop node-b's finalizer while node-b's Node exists",
    );
    assert!(msg.contains("only once Node node-b is gone"), "{msg}");
    denied_by_policy(
        vinoes
            .patch(
                "demo",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"nodes": [{"name": "master", "count": 9}]}})),
            )
            .await,
        "change the spec",
    );
    denied_by_policy(
        vinoes
            .patch("demo", &PatchParams::default(), &label("x"))
            .await,
        "label the Vino",
    );
    denied_by_rbac(
        vinoes.delete("demo", &DeleteParams::default()).await,
        "delete the Vino",
    );
    denied_by_rbac(vinoes.create(&pp, &demo()).await, "create a Vino");
    finalizer::remove(&a, &vino, "node-a").await.unwrap();
    finalizer::add(&a, &vino, "node-a").await.unwrap();

    // The shared finalizer: not while node-b still serves the Vino (its VinoNode), even once
    // node-a has let go of it.
    let without_shared = |v: &Vino| {
        let kept: Vec<&String> = v.finalizers().iter().filter(|f| *f != FINALIZER).collect();
        json!({"metadata": {"finalizers": kept, "resourceVersion": v.resource_version()}})
    };
    membership::delete(&a, &vinod::state::Owner::of(&vino), "node-a")
        .await
        .unwrap();
    let vino_now = Api::<Vino>::namespaced(admin.clone(), NS)
        .get("demo")
        .await
        .unwrap();
    let msg = denied_by(
        RELEASE_POLICY,
        vinoes
            .patch(
                "demo",
                &PatchParams::default(),
                &Patch::Merge(without_shared(&vino_now)),
            )
            .await,
        "remove the shared finalizer while node-b serves the Vino",
    );
    assert!(
        msg.contains("only when no host serves it: Node node-b still does (VinoNode demo.node-b)"),
        "{msg}"
    );
    let kept = membership::remove_finalizer(&a, &vino_now).await;
    assert!(kept.is_err(), "removed while node-b serves: {kept:?}");
    assert!(membership::has_finalizer(
        &Api::<Vino>::namespaced(admin.clone(), NS)
            .get("demo")
            .await
            .unwrap()
    ));
    // node-a serves again for the rest of the test.
    let holder = Holder::read(&a, "node-a").await.unwrap();
    membership::write(&a, &vino, &holder, &node_labels, &entry("node-a"))
        .await
        .unwrap();

    // Status: only node-a's entry.
    let status_body = |node: &str| {
        json!({"apiVersion": "airship.airshipit.org/v1", "kind": "Vino",
               "metadata": {"name": "demo", "namespace": NS},
               "status": {"nodes": [{"name": node, "phase": "Degraded", "message": "forged"}]}})
    };
    let msg = denied_by_policy(
        vinoes
            .patch_status("demo", &apply, &Patch::Apply(status_body("node-b")))
            .await,
        "write node-b's status entry",
    );
    assert!(
        msg.contains("may only write its own entry of status.nodes"),
        "{msg}"
    );
    denied_by_policy(
        vinoes
            .patch_status(
                "demo",
                &PatchParams::default(),
                &Patch::Merge(json!({"status": {"nodes": []}})),
            )
            .await,
        "wipe every status entry",
    );
    // The summary: node-a coordinates (the first selected Node), node-b may not write it.
    let entries = [entry("node-a"), entry("node-b")];
    let current = Api::<Vino>::namespaced(admin.clone(), NS)
        .get("demo")
        .await
        .unwrap();
    let msg = denied_by_node_facts(
        summary::write(&b, &current, &entries, &sel)
            .await
            .map_err(|e| match e {
                vinod::kube::KubeError::Api { source, .. } => source,
                other => panic!("{other}"),
            }),
        "write the summary of a Vino node-a coordinates",
    );
    assert!(msg.contains("Node node-a comes first"), "{msg}");
    let v = summary::write(&a, &current, &entries, &sel)
        .await
        .unwrap()
        .expect("the summary");
    assert_eq!(
        v.status.as_ref().unwrap().nodes_ready.as_deref(),
        Some("2/2")
    );
    assert_eq!(
        v.status.unwrap().nodes.len(),
        2,
        "the earlier version's entries stay"
    );

    // VinoNodes: only its own, for Vinos that select it.
    let members: Api<vinod::api::vino_node::VinoNode> = Api::namespaced(a.clone(), NS);
    let theirs_member = members.get("demo.node-b").await.unwrap();
    denied_by_policy(
        members
            .delete("demo.node-b", &DeleteParams::default())
            .await,
        "delete node-b's VinoNode",
    );
    denied_by_policy(
        members
            .patch(
                "demo.node-b",
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"phase": "Degraded"}})),
            )
            .await,
        "write node-b's VinoNode",
    );
    let mut forged = theirs_member.clone();
    forged.metadata = ObjectMeta {
        name: Some("demo.node-a2".into()),
        namespace: Some(NS.into()),
        labels: theirs_member.metadata.labels.clone().map(|mut l| {
            l.insert("vino.airshipit.org/node".into(), "node-a".into());
            l
        }),
        owner_references: theirs_member.metadata.owner_references.clone(),
        ..Default::default()
    };
    let msg = denied_by_policy(
        members.create(&pp_default(), &forged).await,
        "create a VinoNode for node-b under another name",
    );
    assert!(msg.contains("may only write VinoNodes named"), "{msg}");
    membership::delete(&a, &vinod::state::Owner::of(&vino), "node-a")
        .await
        .unwrap();

    // IP claims: node-a creates and deletes only claims held by and owned by its Node.
    let claims_api: Api<VinoPoolClaim> = Api::all(a.clone());
    let all = Api::<VinoPoolClaim>::all(admin.clone())
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    let b_claim = all
        .iter()
        .find(|o| o.spec.node == "node-b" && o.spec.address.is_some())
        .unwrap();
    let msg = denied_by_policy(
        claims_api
            .delete(&b_claim.name_any(), &DeleteParams::default())
            .await,
        "release node-b's claim",
    );
    assert!(
        msg.contains("may only write vinopoolclaims labelled"),
        "{msg}"
    );
    let mut forged = b_claim.clone();
    forged.metadata = ObjectMeta {
        name: Some("ip-192-168-150-250".into()),
        labels: Some(BTreeMap::from([(
            "vino.airshipit.org/node".into(),
            "node-a".into(),
        )])),
        owner_references: b_claim.metadata.owner_references.clone(),
        ..Default::default()
    };
    forged.spec.address = Some(Ipv4Addr::new(192, 168, 150, 250));
    let msg = denied_by_policy(
        claims_api.create(&pp, &forged).await,
        "claim in node-b's name",
    );
    assert!(
        msg.contains("may only create claims held by and owned by Node node-a"),
        "{msg}"
    );
    claims::release(&a, NS, "demo", "node-a").await.unwrap();
    let left = Api::<VinoPoolClaim>::all(admin.clone())
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    assert!(!left.is_empty() && left.iter().all(|o| o.spec.node == "node-b"));

    // What is written, checked against node-a's own Node.
    let mut token = secret("token-credentials", Some("node-a"));
    token.type_ = Some("kubernetes.io/service-account-token".into());
    token.metadata.annotations = Some(BTreeMap::from([(
        "kubernetes.io/service-account.name".into(),
        "default".into(),
    )]));
    let msg = denied_by_policy(
        secrets.create(&pp, &token).await,
        "create a service-account token Secret",
    );
    assert!(
        msg.contains("may only write Secrets of type Opaque"),
        "{msg}"
    );
    denied_by_policy(
        secrets
            .create(&pp, &secret("odd-name", Some("node-a")))
            .await,
        "create a Secret vinod never writes",
    );
    secrets
        .create(&pp, &secret("extra-a-credentials", Some("node-a")))
        .await
        .unwrap();
    // A shared credentials Secret in node-b's name, even labelled for node-a: node-b's
    // publication would find its name taken.
    let mut squat = secret("other.node-b.credentials", Some("node-a"));
    squat.type_ = Some("Opaque".into());
    let msg = denied_by_policy(
        secrets.create(&pp, &squat).await,
        "create a shared credentials Secret named for node-b",
    );
    assert!(msg.contains("<vino>.node-a.credentials"), "{msg}");
    let mut own = secret("other.node-a.credentials", Some("node-a"));
    own.type_ = Some("Opaque".into());
    secrets.create(&pp, &own).await.unwrap();
    // HardwareData in the name of node-b's host: BMO would take it as that host's hardware.
    let hardware_data = Api::<DynamicObject>::namespaced_with(
        a.clone(),
        NS,
        &ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("metal3.io", "v1alpha1", "HardwareData"),
            "hardwaredata",
        ),
    );
    let forged_hd = |name: &str, owner_uid: Option<&str>| {
        let mut meta = json!({"name": name, "namespace": NS,
                              "labels": {"vino.airshipit.org/node": "node-a"}});
        if let Some(uid) = owner_uid {
            meta["ownerReferences"] = json!([{"apiVersion": "metal3.io/v1alpha1",
                "kind": "BareMetalHost", "name": name, "uid": uid, "controller": true}]);
        }
        serde_json::from_value::<DynamicObject>(json!({
            "apiVersion": "metal3.io/v1alpha1", "kind": "HardwareData", "metadata": meta,
            "spec": {"hardware": {"cpu": {"count": 64}, "ramMebibytes": 1048576}}}))
        .unwrap()
    };
    // node-b has its own already: taking it over is refused by the node label.
    denied_by_policy(
        hardware_data
            .patch(
                &theirs[0],
                &PatchParams::apply("vinod/node-a").force(),
                &Patch::Apply(forged_hd(&theirs[0], None)),
            )
            .await,
        "overwrite node-b's HardwareData",
    );
    // Made ahead, for a host node-b will publish later: only with its host as controller…
    let later = format!("{}-9", theirs[0].rsplit_once('-').unwrap().0);
    assert!(!theirs.contains(&later));
    let msg = denied_by_policy(
        hardware_data.create(&pp, &forged_hd(&later, None)).await,
        "HardwareData without its host as owner",
    );
    assert!(
        msg.contains(
            "may only write HardwareData controlled by the BareMetalHost of the same name"
        ),
        "{msg}"
    );
    // …and a host that does not exist yet cannot be named by its UID: the garbage collector
    // deletes the made-up one.
    env.start_gc();
    hardware_data
        .create(
            &pp,
            &forged_hd(&later, Some("00000000-0000-0000-0000-000000000001")),
        )
        .await
        .unwrap();
    common::cluster::until(
        "the garbage collector deletes the forged HardwareData",
        std::time::Duration::from_secs(60),
        || async {
            match hardware_data.get_opt(&later).await.unwrap() {
                None => Ok(()),
                Some(_) => Err("still there".to_string()),
            }
        },
    )
    .await;

    let mut elsewhere = bmh("far-a", Some("node-a"));
    elsewhere.spec.bmc.address = "redfish+https://192.0.2.99:8000/redfish/v1/Systems/x".into();
    let msg = denied_by_node_facts(
        hosts.create(&pp, &elsewhere).await,
        "publish a host whose BMC is elsewhere",
    );
    assert!(
        msg.contains("whose BMC is on one of its Node addresses 10.0.0.2"),
        "{msg}"
    );
    let demo_uid = Api::<Vino>::namespaced(admin.clone(), NS)
        .get("demo")
        .await
        .unwrap()
        .uid()
        .unwrap();
    let owned_by_demo = |mut h: BareMetalHost| {
        h.metadata.owner_references = Some(vec![OwnerReference {
            api_version: "airship.airshipit.org/v1".into(),
            kind: "Vino".into(),
            name: "demo".into(),
            uid: demo_uid.clone(),
            ..Default::default()
        }]);
        h
    };
    let mut borrowed = owned_by_demo(bmh("borrow-a", Some("node-a")));
    borrowed.spec.bmc.credentials_name = their_secret.clone();
    let msg = denied_by_node_facts(
        hosts.create(&pp, &borrowed).await,
        "point a host at node-b's credentials",
    );
    assert!(msg.contains("at its own Secrets"), "{msg}");
    let mut unowned = bmh("unowned-a", Some("node-a"));
    unowned.spec.bmc.credentials_name = my_secret.clone();
    denied_by_node_facts(
        hosts.create(&pp, &unowned).await,
        "point a host that names no Vino at a shared Secret",
    );
    let mut shared = owned_by_demo(bmh("shared-a", Some("node-a")));
    shared.spec.bmc.credentials_name = my_secret.clone();
    hosts.create(&pp, &shared).await.unwrap();
    hosts
        .delete("shared-a", &DeleteParams::default())
        .await
        .unwrap();
    let mut on = bmh("on-a", Some("node-a"));
    on.spec.online = true;
    denied_by_node_facts(hosts.create(&pp, &on).await, "create a host powered on");
    denied_by_node_facts(
        hosts
            .patch(
                &mine[0],
                &PatchParams::default(),
                &Patch::Merge(json!({"spec": {"online": true}})),
            )
            .await,
        "power its host on",
    );
    // A Vino that selects only node-b: node-a may not hold it up with its finalizer.
    let mut only_b = demo();
    only_b.metadata.name = Some("only-b".into());
    only_b.spec.node_selector =
        serde_json::from_value(json!({"matchLabels": {"vino.airshipit.org/only-b": "true"}}))
            .unwrap();
    Api::<Vino>::namespaced(admin.clone(), NS)
        .create(&pp, &only_b)
        .await
        .unwrap();
    let msg = denied_by_node_facts(
        vinoes
            .patch(
                "only-b",
                &apply,
                &Patch::Apply(
                    json!({"apiVersion": "airship.airshipit.org/v1", "kind": "Vino",
                    "metadata": {"name": "only-b", "namespace": NS,
                                 "finalizers": ["vino.airshipit.org/node-a"]}}),
                ),
            )
            .await,
        "hold up a Vino that does not select it",
    );
    assert!(
        msg.contains("may only add a finalizer to Vinos that select Node node-a"),
        "{msg}"
    );
    let only_b = Api::<Vino>::namespaced(admin.clone(), NS)
        .get("only-b")
        .await
        .unwrap();
    denied_by_node_facts(
        membership::ensure_finalizer(&a, &only_b)
            .await
            .map_err(|e| match e {
                vinod::kube::KubeError::Api { source, .. } => source,
                other => panic!("{other}"),
            }),
        "add the shared finalizer to a Vino that does not select it",
    );
    // Joining it: with node-a's labels the Vino does not select it; with forged labels the
    // labels are not node-a's.
    let holder = Holder::read(&a, "node-a").await.unwrap();
    let node_labels = BTreeMap::from([(SELECTED.0.to_string(), SELECTED.1.to_string())]);
    let join = |labels: BTreeMap<String, String>| {
        let (a, only_b, holder) = (a.clone(), only_b.clone(), holder.clone());
        async move {
            membership::write(&a, &only_b, &holder, &labels, &entry("node-a"))
                .await
                .map_err(|e| match e {
                    vinod::kube::KubeError::Api { source, .. } => source,
                    other => panic!("{other}"),
                })
        }
    };
    let msg = match join(node_labels).await {
        Err(kube::Error::Api(s)) if s.code == 403 => s.message,
        other => panic!("join a Vino that does not select it: {other:?}"),
    };
    assert!(msg.contains("may only join Vino only-b"), "{msg}");
    let forged = BTreeMap::from([("vino.airshipit.org/only-b".to_string(), "true".to_string())]);
    let msg = denied_by_node_facts(join(forged).await, "join with forged Node labels");
    assert!(msg.contains("carry the labels of Node node-a"), "{msg}");

    // Namespaces without the role binding stay closed, even for reading.
    let elsewhere: Api<Secret> = Api::namespaced(a.clone(), "other");
    denied_by_rbac(
        elsewhere.list(&Default::default()).await,
        "list Secrets in another namespace",
    );

    // node-b's objects are all still there, unchanged by node-a's attempts.
    let b_hosts: Api<BareMetalHost> = Api::namespaced(admin.clone(), NS);
    for h in &theirs {
        let live = b_hosts.get(h).await.unwrap();
        assert!(!live.labels().contains_key("x"), "{h}");
    }
}

#[tokio::test]
async fn a_node_bound_service_account_token_is_confined_to_its_node() {
    let Some(env) = KubeEnv::start().await else {
        return;
    };
    env.namespace(NS).await;
    env.namespace("vinod-system").await;
    env.install_rbac(&[NS]).await;
    env.kubectl_ok(&["create", "serviceaccount", "vinod", "-n", "vinod-system"]);
    // A Node object to bind the token to (no kubelet here).
    env.host_node("node-c", NODE_IP, &[]).await;
    let token = env.kubectl_ok(&[
        "create",
        "token",
        "vinod",
        "-n",
        "vinod-system",
        "--bound-object-kind",
        "Node",
        "--bound-object-name",
        "node-c",
    ]);
    let c = env.token_client(token.trim());
    let hosts: Api<BareMetalHost> = Api::namespaced(c.clone(), NS);
    let pp = PostParams::default();
    hosts
        .create(&pp, &bmh("c-0", Some("node-c")))
        .await
        .unwrap();
    let msg = denied_by_policy(
        hosts.create(&pp, &bmh("a-0", Some("node-a"))).await,
        "node-c writes node-a's host",
    );
    assert!(msg.contains("vinod host node-c may only write"), "{msg}");

    // The same service account without a node binding is no host at all.
    let unbound = env.kubectl_ok(&["create", "token", "vinod", "-n", "vinod-system"]);
    let u: Api<BareMetalHost> = Api::namespaced(env.token_client(unbound.trim()), NS);
    let msg = denied_by_policy(
        u.create(&pp, &bmh("u-0", Some("node-c"))).await,
        "unbound token",
    );
    assert!(
        msg.contains("a vinod host must be user vinod-<node>"),
        "{msg}"
    );
}
