//! Publication of BareMetalHosts and Secrets on a real API server: labels, owner, network data,
//! no-op re-application, spec changes reaching existing hosts, the immutable boot MAC, and
//! objects that are not this host's left alone.

mod common;

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use common::kube_env::KubeEnv;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use vinod::api::bmh::BareMetalHost;
use vinod::api::hardware_data::HardwareData;
use vinod::api::{self, Vino};
use vinod::config::Config;
use vinod::kube::KubeError;
use vinod::kube::publish::{self, PublishReport};
use vinod::kube::{claims, hardware};
use vinod::plan::{self, NodeFacts, PlanInput, VinoPlan};
use vinod::state::Owner;
use vinod::value::cpuset::CpuSet;

const NS: &str = "lab";

fn rack() -> Vino {
    api::parse_vino(
        r#"
apiVersion: airship.airshipit.org/v1
kind: Vino
metadata: {name: rack, namespace: lab}
spec:
  nodeSelector: {matchLabels: {vino.airshipit.org/host: "true"}}
  nodeLabelKeysToCopy: ["airshipit.org/rack"]
  flavors: {small: {vcpus: 1, memoryMiB: 256, rootDiskGiB: 1}}
  networks:
    - name: pxe
      subnet: 192.168.150.0/24
      staticAllocationStart: 192.168.150.10
      staticAllocationStop: 192.168.150.60
      dhcpAllocationStart: 192.168.150.128
      dhcpAllocationStop: 192.168.150.191
      macPrefix: "52:54:00:7a:00:00"
      bridgeName: vinod-pxe
      dns_servers: ["192.168.150.1"]
  nodes:
    - name: master
      count: 1
      flavor: small
      bmhLabels: {airshipit.org/k8s-role: master}
      networkInterfaces: [{name: eth0, network: pxe}]
    - name: worker
      count: 2
      flavor: small
      bmhLabels: {airshipit.org/k8s-role: worker, example.com/team: blue}
      networkInterfaces: [{name: eth0, network: pxe}]
  bmcCredentials: {username: admin, password: s3cret}
"#,
    )
    .unwrap()
}

fn node(name: &str) -> NodeFacts {
    NodeFacts {
        name: name.into(),
        labels: BTreeMap::from([
            ("vino.airshipit.org/host".into(), "true".into()),
            ("airshipit.org/rack".into(), "r1".into()),
        ]),
        addresses: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))],
        numa: vec![],
        down: false,
    }
}

/// Plans `vino` on `host` with claims reserved in the cluster.
async fn plan_on(client: &Client, vino: &Vino, host: &str) -> VinoPlan {
    let facts = node(host);
    let config = Config::default();
    let holder = common::kube_env::holder(client, host).await;
    claims::reserve(client, vino, &holder, |all| {
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
    .unwrap()
}

async fn publish_ok(client: &Client, plan: &VinoPlan) -> PublishReport {
    let report = publish::publish(client, plan).await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    report
}

/// Replaces the Vino's spec on the server with `change` applied; returns the stored Vino.
async fn edit(client: &Client, change: impl FnOnce(&mut Vino)) -> Vino {
    let api: Api<Vino> = Api::namespaced(client.clone(), NS);
    let mut v = api.get("rack").await.unwrap();
    change(&mut v);
    api.replace("rack", &PostParams::default(), &v)
        .await
        .unwrap()
}

fn hosts(client: &Client) -> Api<BareMetalHost> {
    Api::namespaced(client.clone(), NS)
}

fn secrets(client: &Client) -> Api<Secret> {
    Api::namespaced(client.clone(), NS)
}

/// Name → resourceVersion of every BareMetalHost and Secret in the namespace.
async fn versions(client: &Client) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for h in hosts(client).list(&Default::default()).await.unwrap() {
        out.insert(
            format!("bmh/{}", h.name_any()),
            h.resource_version().unwrap(),
        );
    }
    for s in secrets(client).list(&Default::default()).await.unwrap() {
        out.insert(
            format!("secret/{}", s.name_any()),
            s.resource_version().unwrap(),
        );
    }
    out
}

async fn setup() -> Option<(KubeEnv, Client, Vino)> {
    let env = KubeEnv::start().await?;
    env.namespace(NS).await;
    let admin = env.admin();
    let vino = Api::<Vino>::namespaced(admin.clone(), NS)
        .create(&PostParams::default(), &rack())
        .await
        .unwrap();
    Some((env, admin, vino))
}

fn data(s: &Secret, key: &str) -> String {
    String::from_utf8(s.data.as_ref().unwrap()[key].0.clone()).unwrap()
}

#[tokio::test]
async fn publishes_labelled_owned_objects_and_reapplying_changes_nothing() {
    let Some((_env, admin, vino)) = setup().await else {
        return;
    };
    let plan = plan_on(&admin, &vino, "node-a").await;
    let report = publish_ok(&admin, &plan).await;
    assert_eq!(report.created.len(), 3, "{report:?}");
    // Three network-data Secrets and the one credentials Secret the three hosts share.
    assert_eq!(report.secrets_created.len(), 4, "{report:?}");
    assert!(report.is_complete());

    for want in &plan.bare_metal_hosts {
        let name = want.name_any();
        let got = hosts(&admin).get(&name).await.unwrap();
        let labels = got.labels();
        for (k, v) in [
            ("vino.airshipit.org/cr-name", "rack"),
            ("vino.airshipit.org/cr-namespace", NS),
            ("vino.airshipit.org/node", "node-a"),
            ("vino.airshipit.org/rack", "r1"),
            ("vino.airshipit.org/network-pxe", "true"),
            ("airshipit.org/rack", "r1"),
        ] {
            assert_eq!(labels.get(k).map(String::as_str), Some(v), "{name}: {k}");
        }
        assert_eq!(got.spec, want.spec, "{name}");
        assert!(
            got.spec
                .bmc
                .address
                .starts_with("redfish+https://10.0.0.2:8000/redfish/v1/Systems/lab.rack."),
            "{}",
            got.spec.bmc.address
        );
        assert!(!got.spec.online);
        let owner = &got.owner_references()[0];
        assert_eq!(
            (owner.kind.as_str(), &owner.uid),
            ("Vino", vino.metadata.uid.as_ref().unwrap())
        );
        let managers: Vec<(String, String)> = got
            .managed_fields()
            .iter()
            .map(|m| (m.manager.clone().unwrap(), m.operation.clone().unwrap()))
            .collect();
        // Created whole by node-a's field manager (one request); it applies once something
        // changes.
        assert_eq!(
            managers,
            [("vinod/node-a".to_string(), "Update".to_string())],
            "{managers:?}"
        );

        let nd_name = &got.spec.network_data.as_ref().unwrap().name;
        let nd = secrets(&admin).get(nd_name).await.unwrap();
        let json: serde_json::Value = serde_json::from_str(&data(&nd, "networkData")).unwrap();
        let planned = plan
            .secrets
            .iter()
            .find(|s| &s.name_any() == nd_name)
            .unwrap();
        let planned: serde_json::Value =
            serde_json::from_str(&planned.string_data.as_ref().unwrap()["networkData"]).unwrap();
        assert_eq!(json, planned);
        assert_eq!(
            json["links"][0]["ethernet_mac_address"].as_str(),
            got.spec.boot_mac_address.as_deref()
        );
        assert_eq!(
            nd.labels().get("vino.airshipit.org/node").unwrap(),
            "node-a"
        );
        let cred = secrets(&admin)
            .get(&got.spec.bmc.credentials_name)
            .await
            .unwrap();
        assert_eq!(
            (data(&cred, "username"), data(&cred, "password")),
            ("admin".into(), "s3cret".into())
        );
    }

    let before = versions(&admin).await;
    let again = publish_ok(&admin, &plan).await;
    assert!(again.created.is_empty() && again.secrets_created.is_empty());
    assert_eq!(
        versions(&admin).await,
        before,
        "re-publishing wrote something"
    );
}

#[tokio::test]
async fn spec_changes_reach_existing_hosts() {
    let Some((_env, admin, vino)) = setup().await else {
        return;
    };
    let plan = plan_on(&admin, &vino, "node-a").await;
    let report = publish_ok(&admin, &plan).await;
    let worker0 = "rack-node-a-worker-0";
    let uid0 = hosts(&admin).get(worker0).await.unwrap().uid();
    let mut stored = hardware::Stored::default();
    let written = hardware::publish(&admin, &plan, &report.uids, &mut stored).await;
    assert_eq!(written.unwrap(), 3);
    let details = |hd: HardwareData| {
        let h = hd.spec.hardware.expect("hardware details");
        (h.cpu.count, h.ram_mebibytes, h.storage[0].size_bytes)
    };
    let hardware_data: Api<HardwareData> = Api::namespaced(admin.clone(), NS);
    let before = hardware_data.get(worker0).await.unwrap();
    assert_eq!(details(before.clone()), (1, 256, 1 << 30));

    // A bigger flavor: the hosts' HardwareData follow, in place, still owned by their hosts.
    let vino = edit(&admin, |v| {
        let small = v.spec.flavors.get_mut("small").unwrap();
        (small.vcpus, small.memory_mib, small.root_disk_gib) = (2, 2048, 8);
    })
    .await;
    let plan = plan_on(&admin, &vino, "node-a").await;
    let report = publish_ok(&admin, &plan).await;
    let written = hardware::publish(&admin, &plan, &report.uids, &mut stored).await;
    assert_eq!(written.unwrap(), 3, "every VM's hardware changed");
    let after = hardware_data.get(worker0).await.unwrap();
    assert_eq!(details(after.clone()), (2, 2048, 8 << 30));
    assert_eq!(after.uid(), before.uid(), "updated in place");
    assert_eq!(Some(after.owner_references()[0].uid.clone()), uid0);
    let again = hardware::publish(&admin, &plan, &report.uids, &mut stored).await;
    assert_eq!(again.unwrap(), 0, "nothing left to write");

    // New BMC credentials: the one Secret the hosts share changes, in place, for all of them.
    let shared = "rack.node-a.credentials";
    let old = secrets(&admin).get(shared).await.unwrap();
    let vino = edit(&admin, |v| {
        v.spec.bmc_credentials.as_mut().unwrap().password = Some("n3w".into());
    })
    .await;
    let report = publish_ok(&admin, &plan_on(&admin, &vino, "node-a").await).await;
    assert!(report.secrets_created.is_empty(), "{report:?}");
    let new = secrets(&admin).get(shared).await.unwrap();
    assert_eq!(
        (new.uid(), data(&new, "password")),
        (old.uid(), "n3w".into())
    );
    for h in [
        "rack-node-a-master-0",
        "rack-node-a-worker-0",
        "rack-node-a-worker-1",
    ] {
        let host = hosts(&admin).get(h).await.unwrap();
        assert_eq!(host.spec.bmc.credentials_name, shared, "{h}");
    }

    // One more worker, a changed and a dropped bmhLabel, another root device.
    let vino = edit(&admin, |v| {
        let w = &mut v.spec.nodes[1];
        w.count = 3;
        w.bmh_labels = BTreeMap::from([("airshipit.org/k8s-role".into(), "compute".into())]);
        w.root_device_name = Some("/dev/vdb".into());
    })
    .await;
    let report = publish_ok(&admin, &plan_on(&admin, &vino, "node-a").await).await;
    assert_eq!(report.created, ["rack-node-a-worker-2"]);
    for i in 0..3 {
        let h = hosts(&admin)
            .get(&format!("rack-node-a-worker-{i}"))
            .await
            .unwrap();
        let labels = h.labels();
        assert_eq!(labels["airshipit.org/k8s-role"], "compute", "worker-{i}");
        assert!(
            !labels.contains_key("example.com/team"),
            "worker-{i} kept a dropped label"
        );
        assert_eq!(
            h.spec.root_device_hints.unwrap().device_name.as_deref(),
            Some("/dev/vdb")
        );
    }
    assert_eq!(
        hosts(&admin).get(worker0).await.unwrap().uid(),
        uid0,
        "updated in place"
    );
    let master = hosts(&admin).get("rack-node-a-master-0").await.unwrap();
    assert_eq!(master.labels()["airshipit.org/k8s-role"], "master");

    // Down to one worker: the others go, with their Secrets.
    let vino = edit(&admin, |v| v.spec.nodes[1].count = 1).await;
    let report = publish_ok(&admin, &plan_on(&admin, &vino, "node-a").await).await;
    assert_eq!(
        report.deleted,
        ["rack-node-a-worker-1", "rack-node-a-worker-2"]
    );
    // Their network data; the credentials Secret serves the hosts that stay.
    assert_eq!(report.secrets_deleted.len(), 2, "{report:?}");
    let names: Vec<String> = versions(&admin).await.into_keys().collect();
    assert_eq!(
        names,
        [
            "bmh/rack-node-a-master-0",
            "bmh/rack-node-a-worker-0",
            "secret/rack-node-a-master-0-network-data",
            "secret/rack-node-a-worker-0-network-data",
            "secret/rack.node-a.credentials",
        ]
    );

    // Withdrawing (teardown) removes the rest.
    let owner = Owner {
        namespace: NS.into(),
        name: "rack".into(),
    };
    let report = publish::withdraw(&admin, &owner, "node-a").await.unwrap();
    assert_eq!(report.deleted.len(), 2);
    assert!(versions(&admin).await.is_empty());
}

#[tokio::test]
async fn a_changed_boot_mac_recreates_the_host_and_waits_for_finalizers() {
    let Some((_env, admin, vino)) = setup().await else {
        return;
    };
    let first = plan_on(&admin, &vino, "node-a").await;
    publish_ok(&admin, &first).await;
    let name = "rack-node-a-master-0";
    let old = hosts(&admin).get(name).await.unwrap();

    // BMO keeps a finalizer on its hosts; mimic it on this one.
    let finalizer = json!({"metadata": {"finalizers": ["baremetalhost.metal3.io"]}});
    hosts(&admin)
        .patch(name, &PatchParams::default(), &Patch::Merge(&finalizer))
        .await
        .unwrap();

    // A claim fixes its MAC: a new macPrefix reaches the claims taken after it, here once
    // node-a has released its claims and claims again.
    let vino = edit(&admin, |v| {
        v.spec.networks[0].mac_prefix = Some("52:7b:00:00:00:00".into())
    })
    .await;
    let unchanged = plan_on(&admin, &vino, "node-a").await;
    assert_eq!(
        unchanged.vms, first.vms,
        "a new macPrefix moved claimed MACs"
    );
    claims::release(&admin, NS, "rack", "node-a").await.unwrap();
    let plan = plan_on(&admin, &vino, "node-a").await;
    let report = publish::publish(&admin, &plan).await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    // The two workers had no finalizer: recreated at once. The master waits for BMO.
    assert_eq!(
        report.recreated,
        ["rack-node-a-worker-0", "rack-node-a-worker-1"]
    );
    assert_eq!(report.pending.len(), 1, "{report:?}");
    assert!(report.pending[0].contains(name), "{report:?}");
    let terminating = hosts(&admin).get(name).await.unwrap();
    assert!(terminating.metadata.deletion_timestamp.is_some());
    assert_eq!(terminating.spec.boot_mac_address, old.spec.boot_mac_address);

    // BMO lets go: the next publication creates it with the new MAC.
    hosts(&admin)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    let report = publish_ok(&admin, &plan).await;
    assert_eq!(report.created, [name]);
    assert!(report.is_complete());
    let new = hosts(&admin).get(name).await.unwrap();
    assert_ne!(new.uid(), old.uid());
    assert!(
        new.spec
            .boot_mac_address
            .as_deref()
            .unwrap()
            .starts_with("52:7b:")
    );
    for h in &plan.bare_metal_hosts {
        let live = hosts(&admin).get(&h.name_any()).await.unwrap();
        assert_eq!(live.spec.boot_mac_address, h.spec.boot_mac_address);
    }
}

#[tokio::test]
async fn a_deleted_hosts_secrets_stay_until_the_host_is_gone() {
    let Some((_env, admin, vino)) = setup().await else {
        return;
    };
    publish_ok(&admin, &plan_on(&admin, &vino, "node-a").await).await;
    let name = "rack-node-a-worker-1";
    hosts(&admin)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"finalizers": ["baremetalhost.metal3.io"]}})),
        )
        .await
        .unwrap();
    let vino = edit(&admin, |v| v.spec.nodes[1].count = 1).await;
    let plan = plan_on(&admin, &vino, "node-a").await;
    let report = publish::publish(&admin, &plan).await.unwrap();
    assert_eq!(report.deleted, [name]);
    assert_eq!(report.pending.len(), 1, "{report:?}");
    assert!(
        secrets(&admin)
            .get(&format!("{name}-network-data"))
            .await
            .is_ok()
    );

    hosts(&admin)
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
    let report = publish_ok(&admin, &plan).await;
    assert_eq!(report.secrets_deleted, [format!("{name}-network-data")]);
    assert!(report.is_complete());
}

#[tokio::test]
async fn hosts_share_one_credentials_secret_and_earlier_ones_keep_their_own() {
    let Some((_env, admin, vino)) = setup().await else {
        return;
    };
    let plan = plan_on(&admin, &vino, "node-a").await;
    let shared = "rack.node-a.credentials";
    assert!(
        plan.bare_metal_hosts
            .iter()
            .all(|h| h.spec.bmc.credentials_name == shared)
    );
    // As an earlier version published it: the first host with a Secret of its own.
    let mut earlier = plan.clone();
    let first = earlier.bare_metal_hosts[0].name_any();
    let own = format!("{first}-credentials");
    earlier.bare_metal_hosts[0].spec.bmc.credentials_name = own.clone();
    let mut own_secret = earlier
        .secrets
        .iter()
        .find(|s| s.name_any() == shared)
        .unwrap()
        .clone();
    own_secret.metadata.name = Some(own.clone());
    earlier.secrets.push(own_secret);
    publish_ok(&admin, &earlier).await;
    let before = versions(&admin).await;
    assert!(before.contains_key(&format!("secret/{own}")));

    // This version leaves that host on its own Secret (moving it would leave the old one to
    // BMO's finalizer for good) and writes nothing.
    let report = publish_ok(&admin, &plan).await;
    assert!(
        report.secrets_deleted.is_empty() && report.secrets_created.is_empty(),
        "{report:?}"
    );
    assert_eq!(versions(&admin).await, before);
    let credentials_of = |name: String| {
        let admin = admin.clone();
        async move {
            let h = hosts(&admin).get(&name).await.unwrap();
            h.spec.bmc.credentials_name
        }
    };
    assert_eq!(credentials_of(first.clone()).await, own);

    // Once that host is gone and planned again, it shares too, and its own Secret goes.
    hosts(&admin)
        .delete(&first, &Default::default())
        .await
        .unwrap();
    let report = publish_ok(&admin, &plan).await;
    assert_eq!(report.created, std::slice::from_ref(&first));
    assert_eq!(report.secrets_deleted, [own]);
    assert_eq!(credentials_of(first.clone()).await, shared);
}

#[tokio::test]
async fn power_state_stays_with_whoever_powers_the_host() {
    let Some((_env, admin, vino)) = setup().await else {
        return;
    };
    publish_ok(&admin, &plan_on(&admin, &vino, "node-a").await).await;
    let name = "rack-node-a-worker-0";
    // CAPM3 powers the host on with an ordinary patch.
    hosts(&admin)
        .patch(
            name,
            &PatchParams {
                field_manager: Some("capm3".into()),
                ..Default::default()
            },
            &Patch::Merge(&json!({"spec": {"online": true}})),
        )
        .await
        .unwrap();
    let rv = hosts(&admin).get(name).await.unwrap().resource_version();
    publish_ok(&admin, &plan_on(&admin, &vino, "node-a").await).await;
    let h = hosts(&admin).get(name).await.unwrap();
    assert!(h.spec.online, "vinod powered the host off");
    assert_eq!(h.resource_version(), rv);

    // A label change is applied; the power state still is not touched.
    let vino = edit(&admin, |v| {
        v.spec.nodes[1]
            .bmh_labels
            .insert("example.com/team".into(), "green".into());
    })
    .await;
    publish_ok(&admin, &plan_on(&admin, &vino, "node-a").await).await;
    let h = hosts(&admin).get(name).await.unwrap();
    assert!(h.spec.online);
    assert_eq!(h.labels()["example.com/team"], "green");
}

#[tokio::test]
async fn objects_that_are_not_this_hosts_are_left_alone() {
    let Some((_env, admin, vino)) = setup().await else {
        return;
    };
    let plan_a = plan_on(&admin, &vino, "node-a").await;
    let plan_b = plan_on(&admin, &vino, "node-b").await;
    publish_ok(&admin, &plan_b).await;

    // Unlabelled objects: one with the name of a host node-a wants, one unrelated; and one
    // with vinod's Vino labels but no node label.
    let squatter = plan_a.bare_metal_hosts[0].name_any();
    let foreign = |name: &str, labels: serde_json::Value| -> BareMetalHost {
        serde_json::from_value(json!({
            "apiVersion": "metal3.io/v1alpha1", "kind": "BareMetalHost",
            "metadata": {"name": name, "namespace": NS, "labels": labels},
            "spec": {"bmc": {"address": "ipmi://192.0.2.1", "credentialsName": "x"}, "online": true}
        }))
        .unwrap()
    };
    for h in [
        foreign(&squatter, json!({"team": "metal"})),
        foreign("real-server-1", json!({})),
        foreign(
            "half-labelled",
            json!({"vino.airshipit.org/cr-name": "rack", "vino.airshipit.org/cr-namespace": NS}),
        ),
    ] {
        hosts(&admin)
            .create(&PostParams::default(), &h)
            .await
            .unwrap();
    }
    let unrelated: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "rack-node-a-worker-9-credentials", "namespace": NS},
        "stringData": {"username": "u"}
    }))
    .unwrap();
    secrets(&admin)
        .create(&PostParams::default(), &unrelated)
        .await
        .unwrap();
    let before = versions(&admin).await;

    let report = publish::publish(&admin, &plan_a).await.unwrap();
    assert_eq!(report.errors.len(), 1, "{:?}", report.errors);
    match &report.errors[0] {
        e @ KubeError::Clash { name, .. } => {
            assert_eq!(name, &squatter);
            assert!(
                e.to_string()
                    .contains("label vino.airshipit.org/cr-name is missing"),
                "{e}"
            );
        }
        other => panic!("expected a clash, got {other}"),
    }
    assert_eq!(
        report.created.len(),
        2,
        "the other hosts are published: {report:?}"
    );

    // node-a withdraws: only its own objects go.
    let owner = Owner {
        namespace: NS.into(),
        name: "rack".into(),
    };
    publish::withdraw(&admin, &owner, "node-a").await.unwrap();
    let after = versions(&admin).await;
    assert_eq!(after, before, "something that is not node-a's changed");
}
