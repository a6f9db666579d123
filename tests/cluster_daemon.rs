//! `vinod run` in cluster mode, as a child process in a network namespace with its own host
//! identity, against a real API server: a Vino selecting the host's Node is built, published
//! and reported Ready; spec changes reach the BareMetalHosts; a Node losing its label moves the
//! Vino off the host with a full teardown; deleting the Vino removes everything and the Vino.

mod common;

use std::time::Duration;

use common::cluster::{ClusterHost, LABEL, create_node};
use common::host::{skip_reason, vino_yaml};
use common::kube_env::{KubeEnv, assert_ok};
use common::log::LogRecords;
use common::secret::assert_no_secret;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use serde_json::json;
use vinod::api::Vino;
use vinod::api::bmh::BareMetalHost;

const NS: &str = "lab";
/// The BMC password of the credentials Secret, and the one it is rotated to.
const FIRST_PASSWORD: &str = "bmc-secret-first-7Hq2Vn9Lx4Rt";
const ROTATED_PASSWORD: &str = "bmc-secret-rotated-3Kw8Pz5Dm1";
const HOST: &str = "host-a";
const NODE_IP: &str = "10.23.0.5";
const LIMIT: Duration = Duration::from_secs(90);

fn vino_manifest(workers: u32) -> String {
    vino_yaml("x", "vcl0", 71, workers, 1).replace(
        "nodeSelector: {matchLabels: {}}",
        &format!("nodeSelector: {{matchLabels: {{{LABEL}: \"true\"}}}}"),
    )
}

async fn until<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    common::cluster::until(what, LIMIT, check).await
}

fn mine() -> ListParams {
    ListParams::default().labels(&format!("vino.airshipit.org/node={HOST}"))
}

async fn bmhs(client: &Client) -> Vec<BareMetalHost> {
    Api::<BareMetalHost>::namespaced(client.clone(), NS)
        .list(&mine())
        .await
        .unwrap()
        .items
}

async fn count_objects(client: &Client) -> (usize, usize, usize) {
    let s = Api::<Secret>::namespaced(client.clone(), NS)
        .list(&mine())
        .await
        .unwrap()
        .items
        .len();
    let c = common::cluster::claimed_networks(client, HOST).await;
    (bmhs(client).await.len(), s, c)
}

async fn host_entry(client: &Client) -> Option<vinod::api::NodeStatus> {
    common::cluster::member(client, NS, "x", HOST)
        .await
        .map(|m| m.spec.entry())
}

async fn set_workers(client: &Client, n: u32) {
    let api: Api<Vino> = Api::namespaced(client.clone(), NS);
    // The host may write the status between the read and the replace.
    for _ in 0..10 {
        let mut v = api.get("x").await.unwrap();
        v.spec.nodes[0].count = n;
        match api.replace("x", &PostParams::default(), &v).await {
            Ok(_) => return,
            Err(kube::Error::Api(s)) if s.code == 409 => continue,
            Err(e) => panic!("set workers: {e}"),
        }
    }
    panic!("set workers: still conflicting");
}

async fn label_node(client: &Client, on: bool) {
    common::cluster::label_node(client, HOST, on).await
}

async fn wait_built(admin: &Client, host: &ClusterHost, workers: usize) {
    until("BareMetalHosts published", || async {
        let (h, s, c) = count_objects(admin).await;
        if (h, s, c) == (workers, workers + 1, 1) {
            Ok(())
        } else {
            Err(format!("{h} hosts, {s} secrets, {c} claims"))
        }
    })
    .await;
    until("host entry Ready", || async {
        match host_entry(admin).await {
            Some(e)
                if e.phase == vinod::api::NodePhase::Ready
                    && e.vms_ready as usize == workers
                    && e.vms_total as usize == workers =>
            {
                Ok(())
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(host.bridge_exists("vcl0"));
    assert!(!host.dnsmasq_pids().is_empty());
    // The socket's snapshot is replaced right after the pass that wrote the status entry.
    until("status socket shows the VMs", || async {
        match host.snapshot() {
            Some(snap) if snap.vms.len() == workers && snap.vms.iter().all(|v| v.defined) => Ok(()),
            other => Err(format!("{:?}", other.map(|s| s.vms))),
        }
    })
    .await;
}

async fn wait_torn_down(admin: &Client, host: &ClusterHost) {
    until("objects withdrawn", || async {
        let got = count_objects(admin).await;
        if got == (0, 0, 0) {
            Ok(())
        } else {
            Err(format!("{got:?}"))
        }
    })
    .await;
    until("host torn down", || async {
        let vms = host.snapshot().map(|s| s.vms.len()).unwrap_or(usize::MAX);
        if host.bridge_exists("vcl0") || !host.dnsmasq_pids().is_empty() || vms != 0 {
            Err(format!(
                "bridge {}, dnsmasq {}, vms {vms}",
                host.bridge_exists("vcl0"),
                !host.dnsmasq_pids().is_empty()
            ))
        } else {
            Ok(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_mode_builds_publishes_moves_and_tears_down() {
    if let Some(why) = skip_reason() {
        common::prereq::skip(why);
        return;
    }
    let Some(env) = KubeEnv::start().await else {
        return;
    };
    env.namespace(NS).await;
    env.install_rbac(&[NS]).await;
    let admin = env.admin();

    create_node(&admin, HOST, NODE_IP, true).await;
    let mut host = ClusterHost::new(&env, HOST, "test:///default", "resync_ms = 3000");
    let manifest = host.dir().join("vino.yaml");
    std::fs::write(&manifest, vino_manifest(2)).unwrap();
    host.start(&[]);

    // Create by kubectl apply, as an administrator would.
    env.kubectl_ok(&["apply", "-f", &manifest.display().to_string()]);
    wait_built(&admin, &host, 2).await;
    let out = env
        .kubectl()
        .args([
            "wait",
            "--for=condition=Ready",
            "vino/x",
            "-n",
            NS,
            "--timeout=60s",
        ])
        .output()
        .unwrap();
    assert_ok(&out, "kubectl wait");
    let v = Api::<Vino>::namespaced(admin.clone(), NS)
        .get("x")
        .await
        .unwrap();
    assert_eq!(v.finalizers(), [vinod::kube::membership::FINALIZER]);
    let entry = host_entry(&admin).await.unwrap();
    assert_eq!(entry.observed_generation, v.metadata.generation);
    for h in bmhs(&admin).await {
        let labels = h.labels();
        assert_eq!(labels["vino.airshipit.org/cr-name"], "x");
        assert_eq!(labels["vino.airshipit.org/cr-namespace"], NS);
        assert_eq!(labels["vino.airshipit.org/node"], HOST);
        assert!(
            h.spec.bmc.address.contains(&format!("://{NODE_IP}:")),
            "{}",
            h.spec.bmc.address
        );
        let mac = h.spec.boot_mac_address.clone().unwrap();
        let nd = Api::<Secret>::namespaced(admin.clone(), NS)
            .get(&h.spec.network_data.as_ref().unwrap().name)
            .await
            .unwrap();
        let text = String::from_utf8(nd.data.unwrap()["networkData"].0.clone()).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(json["links"][0]["ethernet_mac_address"], json!(mac));
        // The MAC is macPrefix's first two octets and the NIC's address.
        let ip: std::net::Ipv4Addr = json["networks"][0]["ip_address"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let [a, b, c, d] = ip.octets();
        assert_eq!(mac, format!("52:54:{a:02x}:{b:02x}:{c:02x}:{d:02x}"));
    }

    // Spec changes reach the BareMetalHosts.
    set_workers(&admin, 3).await;
    wait_built(&admin, &host, 3).await;
    set_workers(&admin, 1).await;
    wait_built(&admin, &host, 1).await;

    // Events name the VMs created and deleted.
    until("VmCreated and VmDeleted Events", || async {
        let events = Api::<k8s_openapi::api::events::v1::Event>::namespaced(admin.clone(), NS)
            .list(&Default::default())
            .await
            .map_err(|e| e.to_string())?;
        let reasons: Vec<String> = events
            .items
            .iter()
            .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some("x"))
            .filter_map(|e| e.reason.clone())
            .collect();
        if reasons.iter().any(|r| r == "VmCreated") && reasons.iter().any(|r| r == "VmDeleted") {
            Ok(())
        } else {
            Err(format!("{reasons:?}"))
        }
    })
    .await;

    // The Node loses its label: the Vino moves off the host, which tears everything down.
    label_node(&admin, false).await;
    wait_torn_down(&admin, &host).await;
    until("VinoNode gone", || async {
        match host_entry(&admin).await {
            Some(e) => Err(format!("VinoNode left: {e:?}")),
            None => Ok(()),
        }
    })
    .await;

    // Labelled again: built again.
    label_node(&admin, true).await;
    wait_built(&admin, &host, 1).await;

    // A spec that passes the schema but cannot be planned (its credentials Secret does not
    // exist): the host reports Degraded with the reason and keeps what it built.
    Api::<Vino>::namespaced(admin.clone(), NS)
        .patch(
            "x",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"bmcCredentials": {
                "username": null, "password": null, "secretRef": {"name": "bmc"}
            }}})),
        )
        .await
        .unwrap();
    until("host entry Degraded", || async {
        match host_entry(&admin).await {
            Some(e)
                if e.phase == vinod::api::NodePhase::Degraded
                    && e.message.as_deref().unwrap_or("").contains("\"bmc\"") =>
            {
                Ok(())
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let out = env
        .kubectl()
        .args([
            "wait",
            "--for=condition=Degraded",
            "vino/x",
            "-n",
            NS,
            "--timeout=60s",
        ])
        .output()
        .unwrap();
    assert_ok(&out, "kubectl wait Degraded");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(count_objects(&admin).await, (1, 2, 1));
    assert!(host.bridge_exists("vcl0") && !host.dnsmasq_pids().is_empty());
    // The Secret appears: its credentials are read through the API and published.
    let bmc: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bmc", "namespace": NS},
        "stringData": {"username": "root", "password": FIRST_PASSWORD},
    }))
    .unwrap();
    Api::<Secret>::namespaced(admin.clone(), NS)
        .create(&PostParams::default(), &bmc)
        .await
        .unwrap();
    wait_built(&admin, &host, 1).await;
    until("credentials from the Secret published", || async {
        let h = bmhs(&admin).await;
        let Some(h) = h.first() else {
            return Err("no host".into());
        };
        let c = Api::<Secret>::namespaced(admin.clone(), NS)
            .get(&h.spec.bmc.credentials_name)
            .await
            .map_err(|e| e.to_string())?;
        let user = String::from_utf8(c.data.unwrap()["username"].0.clone()).unwrap();
        if user == "root" { Ok(()) } else { Err(user) }
    })
    .await;
    // The daemon watches the Secret: a new password reaches the published credentials.
    assert!(
        LogRecords::parse(&host.log()).count("watching a credentials Secret") > 0,
        "no watch on the credentials Secret"
    );
    Api::<Secret>::namespaced(admin.clone(), NS)
        .patch(
            "bmc",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"password": ROTATED_PASSWORD}})),
        )
        .await
        .unwrap();
    until("rotated password published", || async {
        let h = bmhs(&admin).await;
        let Some(h) = h.first() else {
            return Err("no host".into());
        };
        let c = Api::<Secret>::namespaced(admin.clone(), NS)
            .get(&h.spec.bmc.credentials_name)
            .await
            .map_err(|e| e.to_string())?;
        let pw = String::from_utf8(c.data.unwrap()["password"].0.clone()).unwrap();
        if pw == ROTATED_PASSWORD {
            Ok(())
        } else {
            Err("old password".into())
        }
    })
    .await;
    for pw in [FIRST_PASSWORD, ROTATED_PASSWORD] {
        assert_no_secret(&host.log(), pw, "the host's log");
    }

    // The API refuses this host's reads (its RBAC binding is gone): passes fail and change
    // nothing, they never take the refusal for "no Vinos".
    env.kubectl_ok(&["delete", "clusterrolebinding", "vinod-node"]);
    until("passes fail", || async {
        if LogRecords::parse(&host.log()).count("pass failed; nothing was changed") > 0 {
            Ok(())
        } else {
            Err("no failed pass yet".into())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(7)).await;
    assert_eq!(count_objects(&admin).await, (1, 2, 1));
    assert!(host.bridge_exists("vcl0") && !host.dnsmasq_pids().is_empty());
    assert_eq!(host.snapshot().unwrap().vms.len(), 1);
    env.kubectl_ok(&[
        "apply",
        "-f",
        &common::kube_env::repo()
            .join("packaging/rbac/vinod-bindings.yaml")
            .display()
            .to_string(),
    ]);
    wait_built(&admin, &host, 1).await;

    // Deleted: everything goes, then the Vino.
    env.kubectl_ok(&["delete", "vino", "x", "-n", NS, "--wait=false"]);
    wait_torn_down(&admin, &host).await;
    until("Vino gone", || async {
        match Api::<Vino>::namespaced(admin.clone(), NS)
            .get_opt("x")
            .await
            .unwrap()
        {
            None => Ok(()),
            Some(v) => Err(format!("finalizers {:?}", v.finalizers())),
        }
    })
    .await;
}
