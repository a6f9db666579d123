//! metal3 end to end: a real API server with metal3's real CRDs (from the baremetal-operator
//! source `scripts/bmo-binary.sh` builds, replacing vinod's BareMetalHost subset), a real
//! Ironic (`scripts/ironic-venv.sh`) and the real baremetal-operator run out of cluster, and
//! one vinod daemon in cluster mode (libvirt test driver, so nothing really boots), all on
//! 127.0.0.1 of the host's network namespace. A Vino of two VMs with `bmcDriver:
//! redfish-virtualmedia` is applied; the BareMetalHosts vinod publishes, left exactly as
//! published (every create and update admitted by BMO's own validating webhook), are
//! registered by BMO through Ironic and vinod's Redfish BMC and each reaches
//! `available`; Ironic holds a node per VM with vinod's BMC address, the VM's System and its
//! boot MAC. A `live-iso` image (iPXE's ISO) set on each host takes it to `provisioned` over
//! virtual media (Ironic reads the ISO in the VM's CD drive back from vinod's BMC).
//!
//! Then the lifecycle: a count-down and the Node's label removal leave both provisioned VMs
//! in place with the Vino Degraded naming them; with `releaseProvisioned` the count-down
//! takes the highest VM, and the Vino's deletion the other, each only after BMO deprovisioned
//! and released its BareMetalHost (the System is seen to outlive its host); every Ironic node
//! goes, the Vino goes, and Ironic logs no error throughout. Each step is timed and the
//! timeline printed. Root only; every wait is bounded.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::bmo::{self, Bmo};
use common::cluster::{ClusterHost, LABEL, create_node, label_node, until};
use common::host::{skip_reason, vino_yaml};
use common::ironic::{self, Ironic};
use common::kube_env::KubeEnv;
use common::metal3::{
    LIMIT, Timeline, assert_no_ironic_errors, bmc_on_loopback, bmc_systems, bmhs, name,
    node_status, state, wait_bmhs, wait_vinos_gone,
};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use serde_json::{Value, json};

const NS: &str = "lab";
const HOST: &str = "m3-host";
const VMS: usize = 2;
/// The BMC's port in the host's namespace.
const BMC_PORT: u16 = 18000;
/// Flavor with a whole number of GiB of memory and a disk above Ironic's 4 GiB minimum.
const FLAVOR: &str = "small: {vcpus: 2, memoryMiB: 1024, rootDiskGiB: 8}";
/// A small bootable ISO (iPXE's, from the distribution's `ipxe` package).
const LIVE_ISO: &str = "/usr/lib/ipxe/ipxe.iso";
/// The BMC credentials of `vino_yaml`.
const BMC_USER: &str = "admin:pw";

/// Ironic's nodes, with their driver info.
fn ironic_nodes(ironic: &Ironic) -> Vec<Value> {
    let nodes = ironic.expect("GET", "/v1/nodes?detail=true", None, 200);
    nodes["nodes"].as_array().cloned().unwrap_or_default()
}

/// Whether the array `list` holds the string `value`.
fn lists_str(list: &Value, value: &str) -> bool {
    list.as_array()
        .is_some_and(|l| l.iter().any(|x| x == value))
}

/// Sets (or with `Null` removes) `spec.image` of BareMetalHost `host` with a merge patch, and
/// powers the host on, as its user (e.g. CAPM3) does: vinod creates hosts `online: false`.
fn set_image(env: &KubeEnv, host: &Value, image: &Value) {
    let name = host["metadata"]["name"].as_str().unwrap();
    let patch = json!({"spec": {"image": image, "online": true}}).to_string();
    env.kubectl_ok(&[
        "patch",
        "-n",
        NS,
        "baremetalhost",
        name,
        "--type=merge",
        "-p",
        &patch,
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bmo_takes_vinod_hosts_to_provisioned_and_vinod_keeps_them_until_released() {
    if let Some(why) = skip_reason() {
        common::prereq::skip(why);
        return;
    }
    let venv = match ironic::venv() {
        Ok(v) => v,
        Err(why) => return common::prereq::skip(why),
    };
    let bin = match bmo::binary() {
        Ok(b) => b,
        Err(why) => return common::prereq::skip(format!("no baremetal-operator: {why}")),
    };
    if !std::path::Path::new(LIVE_ISO).is_file() {
        return common::prereq::skip(format!("no {LIVE_ISO} (package ipxe)"));
    }
    let Some(env) = KubeEnv::start().await else {
        return;
    };
    bmo::install_crds(&env, &bin);
    env.namespace(NS).await;
    env.install_rbac(&[NS]).await;
    let admin = env.admin();
    create_node(&admin, HOST, "10.24.0.5", true).await;

    // Dropped in reverse: BMO first, then Ironic, then the host whose BMC Ironic talks to.
    // No periodic pass within the test: every status change below reaches the VinoNode
    // because metal3's change of a BareMetalHost wakes the host.
    let mut host = ClusterHost::new(&env, HOST, "test:///default", "resync_ms = 600000");
    bmc_on_loopback(&admin, HOST, &host, BMC_PORT).await;
    let work = tempfile::tempdir().unwrap();
    let mut ironic = Ironic::start(&venv, host.netns(), &work.path().join("ironic"));
    let mut bmo = Bmo::start(&bin, host.netns(), &env.admin_kubeconfig(), NS, work.path());
    bmo.admit(&env, NS).await;
    host.start(&[]);

    let manifest = work.path().join("vino.yaml");
    let write_manifest = |workers: usize, release: bool| {
        let metal3 = if release {
            "  metal3: {releaseProvisioned: true}\n"
        } else {
            ""
        };
        // A count-down also relabels the hosts: an update BMO's webhook must admit.
        let stage = if workers < VMS {
            "      flavor: small\n      bmhLabels: {stage: down}\n"
        } else {
            "      flavor: small\n"
        };
        let vino = vino_yaml("m3", "vm3b0", 74, workers as u32, 2)
            .replace("small: {vcpus: 2, memoryMiB: 256, rootDiskGiB: 1}", FLAVOR)
            .replace("      flavor: small\n", stage)
            .replace(
                "nodeSelector: {matchLabels: {}}",
                &format!("nodeSelector: {{matchLabels: {{{LABEL}: \"true\"}}}}"),
            )
            .replace(
                "  bmcCredentials:",
                &format!("  bmcDriver: redfish-virtualmedia\n{metal3}  bmcCredentials:"),
            );
        std::fs::write(&manifest, vino).unwrap();
        manifest.display().to_string()
    };
    let manifest = write_manifest(VMS, false);
    let mut timeline = Timeline::start();
    env.kubectl_ok(&["apply", "-f", &manifest]);
    timeline.mark("applied");

    wait_bmhs(&admin, NS, &mut bmo, "BareMetalHosts published", |h| {
        h.len() == VMS
    })
    .await;
    timeline.mark("published");
    let published = bmhs(&admin, NS).await;
    wait_bmhs(&admin, NS, &mut bmo, "every host available", |h| {
        h.len() == VMS && h.iter().all(|h| state(h) == "available")
    })
    .await;
    timeline.mark("available");
    // The host's status says it per VM: defined, off (BMO keeps an available host off),
    // available, ready; as `vinod status` does.
    until("VMs reported available", LIMIT, || async {
        vms_reported(&env, &host, "available", "Off")
    })
    .await;

    // Both hosts point at the one credentials Secret of the Vino on this host, and BMO took
    // it for each (an owner reference per host, its finalizer).
    let shared = format!("m3.{HOST}.credentials");
    let secret = secrets(&admin).get(&shared).await.unwrap();
    let owners: Vec<&str> = secret
        .owner_references()
        .iter()
        .filter(|r| r.kind == "BareMetalHost")
        .map(|r| r.uid.as_str())
        .collect();
    for h in &bmhs(&admin, NS).await {
        assert_eq!(h["spec"]["bmc"]["credentialsName"], shared.as_str(), "{h}");
        let uid = h["metadata"]["uid"].as_str().unwrap();
        assert!(
            owners.contains(&uid),
            "BMO did not take {shared} for {uid}: {owners:?}"
        );
    }
    assert!(
        secret
            .finalizers()
            .iter()
            .any(|f| f == "baremetalhost.metal3.io/secret"),
        "{:?}",
        secret.finalizers()
    );

    // Ironic enrolled each VM at vinod's BMC, with the published address and System.
    let nodes = ironic_nodes(&ironic);
    assert_eq!(nodes.len(), VMS, "{nodes:?}");
    for h in &published {
        let address = h["spec"]["bmc"]["address"].as_str().unwrap();
        let url = address
            .strip_prefix("redfish-virtualmedia+")
            .unwrap_or_else(|| panic!("not a virtual media address: {address}"));
        let at = url.find("/redfish/").unwrap();
        let (bmc, system) = (&url[..at], &url[at..]);
        assert_eq!(bmc, format!("https://127.0.0.1:{BMC_PORT}"));
        let node = nodes
            .iter()
            .find(|n| n["driver_info"]["redfish_system_id"] == system)
            .unwrap_or_else(|| panic!("no Ironic node for {system}: {nodes:?}"));
        assert_eq!(node["driver"], "redfish");
        assert_eq!(node["driver_info"]["redfish_address"], bmc);
        // BMO keeps an `available` host `manageable` in Ironic until it provisions it.
        assert_eq!(node["provision_state"], "manageable", "{node}");
        let mac = h["spec"]["bootMACAddress"].as_str().unwrap().to_lowercase();
        let ports = ironic.expect(
            "GET",
            &format!("/v1/ports?node={}", node["uuid"].as_str().unwrap()),
            None,
            200,
        );
        assert!(
            ports["ports"]
                .as_array()
                .is_some_and(|p| p.iter().any(|p| p["address"] == mac)),
            "boot MAC {mac} not a port of the node: {ports}"
        );
    }
    // BMO took the hardware vinod built (HardwareData) as the hosts' hardware details.
    wait_bmhs(&admin, NS, &mut bmo, "hardware details", |h| {
        h.iter().all(|h| h["status"]["hardware"].is_object())
    })
    .await;
    for h in bmhs(&admin, NS).await {
        let hw = &h["status"]["hardware"];
        assert_eq!(hw["cpu"]["count"], 2, "{}: {hw}", name(&h));
        assert_eq!(hw["cpu"]["arch"], "x86_64", "{hw}");
        assert_eq!(hw["ramMebibytes"], 1024, "{hw}");
        assert_eq!(hw["storage"][0]["name"], "/dev/vda", "{hw}");
        assert_eq!(hw["storage"][0]["sizeBytes"], 8u64 << 30, "{hw}");
        assert_eq!(hw["nics"][0]["mac"], h["spec"]["bootMACAddress"], "{hw}");
        assert_eq!(hw["nics"][0]["pxe"], true, "{hw}");
    }
    // What BMO registered is what vinod published: no field of the spec was changed.
    for h in bmhs(&admin, NS).await {
        let name = &h["metadata"]["name"];
        let before = published
            .iter()
            .find(|p| &p["metadata"]["name"] == name)
            .unwrap();
        assert_eq!(h["spec"]["bmc"], before["spec"]["bmc"], "{name}");
        assert_eq!(
            h["spec"]["bootMACAddress"],
            before["spec"]["bootMACAddress"]
        );
    }

    // A live ISO over virtual media: what a user of the hosts sets, next to vinod's fields.
    std::fs::copy(LIVE_ISO, ironic.http_root().join("live.iso")).unwrap();
    let image = json!({
        "url": format!("http://127.0.0.1:{}/live.iso", ironic::HTTP_PORT),
        "format": "live-iso",
    });
    for h in &published {
        set_image(&env, h, &image);
    }
    wait_bmhs(&admin, NS, &mut bmo, "every host provisioned", |h| {
        h.len() == VMS && h.iter().all(|h| state(h) == "provisioned")
    })
    .await;
    timeline.mark("provisioned");
    until("VMs reported provisioned", LIMIT, || async {
        vms_reported(&env, &host, "provisioned", "On")
    })
    .await;
    let text = host.status_text();
    assert!(
        text.lines()
            .any(|l| l.contains(&format!("{NS}.m3.worker-0"))
                && l.contains(" on ")
                && l.contains("provisioned")),
        "{text}"
    );
    for node in ironic_nodes(&ironic) {
        assert_eq!(node["boot_interface"], "redfish-virtual-media", "{node}");
        assert_eq!(node["deploy_interface"], "ramdisk", "{node}");
        assert_eq!(node["provision_state"], "active", "{node}");
        assert_eq!(node["power_state"], "power on", "{node}");
        let uuid = node["uuid"].as_str().unwrap();
        // Read through vinod's BMC: the ISO is in the VM's CD drive.
        let media = ironic.expect("GET", &format!("/v1/nodes/{uuid}/vmedia"), None, 200);
        let cd = media
            .as_array()
            .and_then(|m| m.iter().find(|d| lists_str(&d["media_types"], "CD")))
            .unwrap_or_else(|| panic!("no CD of {uuid}: {media}"));
        assert_eq!(cd["inserted"], true, "{media}");
        assert_eq!(cd["image"], image["url"], "{media}");
    }
    let [first, second] = [0, 1].map(|i| format!("m3-{HOST}-worker-{i}"));
    let [first_vm, second_vm] = [0, 1].map(|i| format!("{NS}.m3.worker-{i}"));

    // A count-down would take worker-1, which metal3 holds: it stays, and the Vino says why.
    env.kubectl_ok(&["apply", "-f", &write_manifest(1, false)]);
    until("the count-down refused", LIMIT, || async {
        degraded_naming(&env, &[&second])
    })
    .await;
    timeline.mark("count-down refused (Degraded)");
    still_there(
        &admin,
        host.netns(),
        &[(&first, &first_vm), (&second, &second_vm)],
    )
    .await;
    // The relabelling went through BMO's webhook to both hosts, the held one included.
    until("the hosts relabelled", LIMIT, || async {
        let hosts = bmhs(&admin, NS).await;
        let stages: Vec<&Value> = hosts
            .iter()
            .map(|h| &h["metadata"]["labels"]["stage"])
            .collect();
        if stages.len() == VMS && stages.iter().all(|s| *s == "down") {
            Ok(())
        } else {
            Err(format!("{stages:?}"))
        }
    })
    .await;

    // So would the Node's label removal, for both.
    label_node(&admin, HOST, false).await;
    until("the deselection refused", LIMIT, || async {
        degraded_naming(&env, &[&first, &second])
    })
    .await;
    timeline.mark("deselection refused (Degraded)");
    still_there(
        &admin,
        host.netns(),
        &[(&first, &first_vm), (&second, &second_vm)],
    )
    .await;
    label_node(&admin, HOST, true).await;

    // With the opt-in the count-down goes ahead: BMO deprovisions worker-1 first.
    env.kubectl_ok(&["apply", "-f", &write_manifest(1, true)]);
    released_then_destroyed(&admin, &mut bmo, host.netns(), &second, &second_vm).await;
    timeline.mark("count-down: worker-1 released, destroyed");
    still_there(&admin, host.netns(), &[(&first, &first_vm)]).await;
    // The shared credentials stay for the host that remains (BMO deprovisions it with them).
    assert!(secrets(&admin).get(&shared).await.is_ok());

    // Deleting the Vino takes worker-0 the same way, then every Ironic node and the Vino go.
    env.kubectl_ok(&["delete", "-f", &manifest, "--wait=false"]);
    timeline.mark("Vino deleted");
    released_then_destroyed(&admin, &mut bmo, host.netns(), &first, &first_vm).await;
    timeline.mark("worker-0 released, destroyed");
    until("every Ironic node gone", LIMIT, || async {
        let nodes = ironic_nodes(&ironic);
        if nodes.is_empty() {
            Ok(())
        } else {
            Err(format!("{} left", nodes.len()))
        }
    })
    .await;
    timeline.mark("Ironic nodes gone");
    wait_vinos_gone(&env, NS).await;
    timeline.mark("Vino gone");
    until("every Secret vinod published gone", LIMIT, || async {
        let left: Vec<String> = secrets(&admin)
            .list(&ListParams::default().labels("vino.airshipit.org/node"))
            .await
            .map_err(|e| e.to_string())?
            .items
            .iter()
            .map(|s| s.name_any())
            .collect();
        if left.is_empty() {
            Ok(())
        } else {
            Err(format!("{left:?}"))
        }
    })
    .await;
    timeline.print(&format!(
        "metal3 timeline ({VMS} VMs, BMO v0.13.2, Ironic 39)"
    ));

    drop(bmo);
    ironic.stop();
    assert_no_ironic_errors(&ironic.log());
}

fn secrets(admin: &Client) -> Api<Secret> {
    Api::namespaced(admin.clone(), NS)
}

/// Whether this host's VinoNode and status socket report every VM ready, powered `power`, its
/// BareMetalHost in provisioning state `state`.
fn vms_reported(env: &KubeEnv, host: &ClusterHost, state: &str, power: &str) -> Result<(), String> {
    let entry = node_status(env, NS, "m3", HOST);
    let vms = entry["vms"].as_array().cloned().unwrap_or_default();
    let each =
        |vm: &Value| vm["provisioning"] == state && vm["power"] == power && vm["ready"] == true;
    if vms.len() != VMS || !vms.iter().all(each) || entry["vmsReady"] != VMS {
        return Err(format!("VinoNode: {entry}"));
    }
    let snap = host.snapshot().ok_or("no status socket")?;
    let power = if power == "On" {
        vinod::api::Power::On
    } else {
        vinod::api::Power::Off
    };
    let listed = snap.vms.iter().filter(|vm| {
        vm.provisioning.as_deref() == Some(state) && vm.power == Some(power) && vm.ready
    });
    if listed.count() != VMS {
        return Err(format!("status socket: {:?}", snap.vms));
    }
    Ok(())
}

/// Whether this host's status entry is Degraded naming each of `hosts`.
fn degraded_naming(env: &KubeEnv, hosts: &[&str]) -> Result<(), String> {
    let entry = node_status(env, NS, "m3", HOST);
    let message = entry["message"].as_str().unwrap_or_default();
    if entry["phase"] == "Degraded" && hosts.iter().all(|h| message.contains(h)) {
        assert!(message.contains("provisioned"), "{message}");
        Ok(())
    } else {
        Err(entry.to_string())
    }
}

/// Asserts each (BareMetalHost, System) is still there: the host provisioned, the VM served.
async fn still_there(admin: &Client, netns: &Path, pairs: &[(&str, &str)]) {
    let hosts = bmhs(admin, NS).await;
    let systems = bmc_systems(netns, BMC_PORT, BMC_USER);
    for (bmh, vm) in pairs {
        let h = hosts
            .iter()
            .find(|h| name(h) == *bmh)
            .unwrap_or_else(|| panic!("BareMetalHost {bmh} is gone"));
        assert_eq!(state(h), "provisioned", "{bmh}");
        assert!(
            systems.iter().any(|s| s == vm),
            "VM {vm} is gone: {systems:?}"
        );
    }
}

/// Waits until BareMetalHost `bmh` and then VM `vm` are gone, checking at every look that the
/// VM is never gone while its host exists (BMO still drives it through the BMC).
async fn released_then_destroyed(admin: &Client, bmo: &mut Bmo, netns: &Path, bmh: &str, vm: &str) {
    let began = Instant::now();
    let mut states = Vec::new();
    loop {
        assert!(began.elapsed() < LIMIT, "{bmh} not released: {states:?}");
        bmo.assert_running();
        let host = bmhs(admin, NS).await.into_iter().find(|h| name(h) == bmh);
        let served = bmc_systems(netns, BMC_PORT, BMC_USER)
            .iter()
            .any(|s| s == vm);
        if let Some(h) = &host {
            assert!(served, "VM {vm} destroyed while {bmh} is {:?}", state(h));
            if states.last().map(String::as_str) != Some(state(h)) {
                states.push(state(h).to_string());
            }
        } else if !served {
            println!(
                "{bmh}: {} → gone, then VM {vm} destroyed",
                states.join(" → ")
            );
            return;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
