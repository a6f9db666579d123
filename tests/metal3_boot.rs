//! metal3 on real libvirt: the real API server with metal3's CRDs and BMO's webhook, a real
//! Ironic and BMO, one vinod host in cluster mode on a real libvirtd (TCG unless /dev/kvm),
//! all in the libvirtd's network namespace. One VM: BMO registers it (`available`), a
//! `live-iso` (iPXE's ISO) is provisioned over virtual media and the VM really boots it: the
//! ISO's iPXE asks vinod's dnsmasq for an address and gets the VM's reservation (seen in the
//! lease file). Deleting the Vino (with `releaseProvisioned`) has BMO deprovision the host and
//! power it off through vinod's BMC; only then does the domain go. Ironic logs no error. Root
//! only; every wait is bounded.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::bmo::{self, Bmo};
use common::cluster::{ClusterHost, LABEL, create_node, real_lab, until};
use common::host::vino_yaml;
use common::ironic::{self, Ironic};
use common::metal3::{
    LIMIT, Timeline, assert_no_ironic_errors, bmc_on_loopback, bmhs, name, state, wait_bmhs,
    wait_vinos_gone,
};
use serde_json::json;

const NS: &str = "lab";
const HOST: &str = "m3-boot";
const BRIDGE: &str = "vm3boot";
const DOMAIN: &str = "lab.m3b.worker-0";
const BMC_PORT: u16 = 18100;
const LIVE_ISO: &str = "/usr/lib/ipxe/ipxe.iso";

/// Whether libvirt at `uri` has domain `name`.
fn domain_exists(uri: &str, name: &str) -> bool {
    Command::new("virsh")
        .args(["-c", uri, "domstate", name])
        .output()
        .expect("virsh")
        .status
        .success()
}

/// The leases vinod's dnsmasq recorded on the Vino's bridge.
fn leases(host: &ClusterHost) -> String {
    std::fs::read_to_string(host.dir().join(format!("state/dnsmasq/{BRIDGE}.leases")))
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bmo_provisions_a_live_iso_that_really_boots_and_deprovisions_before_the_vm_goes() {
    let venv = match ironic::venv() {
        Ok(v) => v,
        Err(why) => return common::prereq::skip(why),
    };
    let bin = match bmo::binary() {
        Ok(b) => b,
        Err(why) => return common::prereq::skip(format!("no baremetal-operator: {why}")),
    };
    if !Path::new(LIVE_ISO).is_file() {
        return common::prereq::skip(format!("no {LIVE_ISO} (package ipxe)"));
    }
    let Some((h, netns, env)) = real_lab(NS).await else {
        return;
    };
    h.track_domain(DOMAIN);
    h.track_pool(&format!("vinod-{HOST}"));
    bmo::install_crds(&env, &bin);
    let admin = env.admin();
    create_node(&admin, HOST, "10.24.1.5", true).await;

    let mut host = ClusterHost::in_netns(&env, HOST, h.uri(), "resync_ms = 3000", &netns);
    bmc_on_loopback(&admin, HOST, &host, BMC_PORT).await;
    let work = tempfile::tempdir().unwrap();
    let mut ironic = Ironic::start(&venv, &netns, &work.path().join("ironic"));
    let mut bmo = Bmo::start(&bin, &netns, &env.admin_kubeconfig(), NS, work.path());
    bmo.admit(&env, NS).await;
    host.start(&[]);

    let manifest = work.path().join("vino.yaml");
    let vino = vino_yaml("m3b", BRIDGE, 75, 1, 1)
        .replace(
            "small: {vcpus: 1, memoryMiB: 256, rootDiskGiB: 1}",
            "small: {vcpus: 1, memoryMiB: 1024, rootDiskGiB: 8}",
        )
        .replace(
            "nodeSelector: {matchLabels: {}}",
            &format!("nodeSelector: {{matchLabels: {{{LABEL}: \"true\"}}}}"),
        )
        .replace(
            "  bmcCredentials:",
            "  bmcDriver: redfish-virtualmedia\n  metal3: {releaseProvisioned: true}\n  bmcCredentials:",
        );
    std::fs::write(&manifest, vino).unwrap();
    let manifest = manifest.display().to_string();
    let mut timeline = Timeline::start();
    env.kubectl_ok(&["apply", "-f", &manifest]);
    wait_bmhs(&admin, NS, &mut bmo, "the host available", |h| {
        h.len() == 1 && state(&h[0]) == "available"
    })
    .await;
    timeline.mark("available");
    let published = bmhs(&admin, NS).await;
    let mac = published[0]["spec"]["bootMACAddress"]
        .as_str()
        .unwrap()
        .to_lowercase();
    assert!(domain_exists(h.uri(), DOMAIN));

    std::fs::copy(LIVE_ISO, ironic.http_root().join("live.iso")).unwrap();
    let image = json!({"spec": {"online": true, "image": {
        "url": format!("http://127.0.0.1:{}/live.iso", ironic::HTTP_PORT),
        "format": "live-iso",
    }}});
    env.kubectl_ok(&[
        "patch",
        "-n",
        NS,
        "baremetalhost",
        name(&published[0]),
        "--type=merge",
        "-p",
        &image.to_string(),
    ]);
    wait_bmhs(&admin, NS, &mut bmo, "the host provisioned", |h| {
        h.len() == 1 && state(&h[0]) == "provisioned"
    })
    .await;
    timeline.mark("provisioned");
    // The VM runs the ISO it was given: its iPXE takes the VM's reserved address.
    until("the live ISO's DHCP lease", LIMIT, || async {
        let l = leases(&host);
        if l.contains(&mac) { Ok(()) } else { Err(l) }
    })
    .await;
    timeline.mark("booted: lease from vinod's dnsmasq");
    let lease = leases(&host);
    assert!(
        lease.contains("192.168.75."),
        "not the reserved network: {lease}"
    );

    // Deletion: the host is deprovisioned and released while the VM still exists.
    env.kubectl_ok(&["delete", "-f", &manifest, "--wait=false"]);
    let began = Instant::now();
    loop {
        assert!(began.elapsed() < LIMIT, "not released");
        bmo.assert_running();
        let hosts = bmhs(&admin, NS).await;
        let exists = domain_exists(h.uri(), DOMAIN);
        if let Some(bmh) = hosts.first() {
            assert!(exists, "VM destroyed while its host is {:?}", state(bmh));
        } else if !exists {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    timeline.mark("host released, then VM destroyed");
    wait_vinos_gone(&env, NS).await;
    timeline.mark("Vino gone");
    timeline.print("metal3 on real libvirt (1 VM, BMO v0.13.2, Ironic 39)");

    drop(bmo);
    ironic.stop();
    assert_no_ironic_errors(&ironic.log());
}
