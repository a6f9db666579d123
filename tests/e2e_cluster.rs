//! The whole flow on real components: a real kube-apiserver + etcd; vinod running as a host
//! in cluster mode with a real libvirtd (both in one network namespace, TCG domains);
//! `kubectl apply` of a Vino with two node sets → BareMetalHosts published → sushy (Ironic's
//! Redfish library) reads a BareMetalHost's `bmc.address` and credentials Secret from the
//! cluster, sets PXE boot Once and powers the VM on → the VM gets its reserved address from
//! vinod's dnsmasq and fetches its boot file. While it runs: dnsmasq is killed, libvirtd is
//! restarted and the API server is stopped for 60 s — the VM keeps running, no lease is lost,
//! vinod recovers. Then sushy powers it off, `kubectl delete vino` leaves nothing behind.

mod common;

use std::net::{Ipv4Addr, SocketAddr};
use std::process::Command;
use std::time::{Duration, Instant};

use common::census::HostCensus;
use common::cluster::{ClusterHost, LABEL, create_node, listen_in, real_lab, until};
use common::host::serve_boot_fetch;
use common::kube_env::KubeEnv;
use common::log::LogRecords;
use common::python::{run_bounded, venv};
use common::secret::assert_no_secret;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use vinod::api::bmh::BareMetalHost;
use vinod::api::{NodePhase, Vino};

const NS: &str = "lab";
const HOST: &str = "host-e2e";
const NODE_IP: &str = "10.23.9.5";
const BRIDGE: &str = "ve2e0";
const DOMAINS: [&str; 2] = ["lab.x.master-0", "lab.x.worker-0"];
const LIMIT: Duration = Duration::from_secs(120);
const API_DOWN: Duration = Duration::from_secs(60);
/// The Vino's BMC password: sushy sends it in every request.
const BMC_PASSWORD: &str = "e2e-bmc-secret-6Ry3Jk8Wn2Qs";

fn manifest() -> String {
    format!(
        r#"
apiVersion: airship.airshipit.org/v1
kind: Vino
metadata: {{name: x, namespace: {NS}}}
spec:
  nodeSelector: {{matchLabels: {{{LABEL}: "true"}}}}
  flavors:
    small: {{vcpus: 1, memoryMiB: 256, rootDiskGiB: 1}}
  networks:
    - name: pxe
      subnet: 192.168.74.0/24
      staticAllocationStart: 192.168.74.1
      staticAllocationStop: 192.168.74.60
      dhcpAllocationStart: 192.168.74.128
      dhcpAllocationStop: 192.168.74.191
      macPrefix: "52:54:00:4a:00:00"
      bridgeName: {BRIDGE}
  nodes:
    - name: master
      count: 1
      flavor: small
      networkInterfaces: [{{name: eth0, network: pxe}}]
    - name: worker
      count: 1
      flavor: small
      networkInterfaces: [{{name: eth0, network: pxe}}]
  bmcCredentials: {{username: admin, password: {BMC_PASSWORD}}}
"#
    )
}

fn domain_active(name: &str) -> Option<bool> {
    let conn = virt::connect::Connect::open(Some(common::libvirtd::URI)).ok()?;
    let d = conn.lookup_domain_by_name(name).ok()?;
    d.is_active().ok()
}

/// The running domain `name`'s id: a new one after any stop and start.
fn domain_id(name: &str) -> Option<u32> {
    let conn = virt::connect::Connect::open(Some(common::libvirtd::URI)).ok()?;
    conn.lookup_domain_by_name(name).ok()?.id()
}

/// How many passes the daemon has finished.
fn passes(host: &ClusterHost) -> usize {
    LogRecords::parse(&host.log()).count("pass done")
}

fn owned_domains() -> Vec<String> {
    let conn = virt::connect::Connect::open(Some(common::libvirtd::URI)).unwrap();
    conn.list_all_domains(0)
        .unwrap()
        .iter()
        .filter_map(|d| d.name().ok())
        .filter(|n| n.starts_with("lab.x."))
        .collect()
}

async fn cluster_objects(admin: &Client) -> (usize, usize, usize) {
    let mine = ListParams::default().labels(&format!("vino.airshipit.org/node={HOST}"));
    let hosts = Api::<BareMetalHost>::namespaced(admin.clone(), NS)
        .list(&mine)
        .await
        .unwrap()
        .items
        .len();
    let secrets = Api::<Secret>::namespaced(admin.clone(), NS)
        .list(&mine)
        .await
        .unwrap()
        .items
        .len();
    let claims = common::cluster::claimed_networks(admin, HOST).await;
    (hosts, secrets, claims)
}

async fn host_ready(admin: &Client) -> Result<(), String> {
    let v = Api::<Vino>::namespaced(admin.clone(), NS)
        .get("x")
        .await
        .map_err(|e| e.to_string())?;
    let entry = common::cluster::member(admin, NS, "x", HOST)
        .await
        .map(|m| m.spec.entry());
    match entry {
        Some(e)
            if e.phase == NodePhase::Ready
                && e.vms_ready == 2
                && e.observed_generation == v.metadata.generation =>
        {
            Ok(())
        }
        other => Err(format!("{other:?}")),
    }
}

/// Runs the sushy driver (inside the host's namespace, where the BMC listens) against
/// BareMetalHost `bmh`; panics unless it succeeds.
fn sushy(env: &KubeEnv, host: &ClusterHost, python: &std::path::Path, bmh: &str, action: &str) {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", host.netns_name()])
        .arg(python)
        .arg(common::kube_env::repo().join("tests/e2e/sushy_bmh.py"))
        .arg(env.kubectl_path())
        .arg(env.admin_kubeconfig())
        .args([NS, bmh, action])
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("PYTHONWARNINGS", "ignore:Unverified HTTPS request");
    let (ok, out) = run_bounded(cmd);
    println!("sushy {action} {bmh}: {}", out.trim());
    assert!(ok, "sushy {action} failed:\n{out}");
}

fn leases(host: &ClusterHost) -> String {
    let path = host.dir().join(format!("state/dnsmasq/{BRIDGE}.leases"));
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_apply_sushy_pxe_boot_faults_and_kubectl_delete() {
    let python = match venv() {
        Ok(p) => p,
        Err(why) => return common::prereq::skip(why),
    };
    let Some((h, netns, env)) = real_lab(NS).await else {
        return;
    };
    let admin = env.admin();
    for d in DOMAINS {
        h.track_domain(d);
    }
    h.track_pool(&format!("vinod-{HOST}"));
    let out = h.ip(&["addr", "add", &format!("{NODE_IP}/32"), "dev", "lo"]);
    assert!(out.status.success(), "{out:?}");
    create_node(&admin, HOST, NODE_IP, true).await;
    let mut host = ClusterHost::in_netns(&env, HOST, h.uri(), "resync_ms = 3000", &netns);
    host.add_dhcp_setting("ipxe_boot_url = \"http://{bridge_ip}:8080/boot.ipxe\"");
    host.start(&[]);

    // kubectl apply → BareMetalHosts for both node sets, the host Ready.
    let file = host.dir().join("vino.yaml");
    std::fs::write(&file, manifest()).unwrap();
    env.kubectl_ok(&["apply", "-f", &file.display().to_string()]);
    until("2 BareMetalHosts published", LIMIT, || async {
        match cluster_objects(&admin).await {
            // Two network-data Secrets and the credentials Secret they share.
            (2, 3, 1) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    until("host Ready", LIMIT, || host_ready(&admin)).await;
    let bmhs = Api::<BareMetalHost>::namespaced(admin.clone(), NS)
        .list(&ListParams::default().labels("vino.airshipit.org/node-type=worker"))
        .await
        .unwrap()
        .items;
    assert_eq!(bmhs.len(), 1, "one worker BareMetalHost");
    let bmh = &bmhs[0];
    assert!(
        bmh.spec
            .bmc
            .address
            .starts_with(&format!("redfish+https://{NODE_IP}:")),
        "{}",
        bmh.spec.bmc.address
    );
    assert!(bmh.spec.bmc.address.ends_with("/lab.x.worker-0"));
    let mac = bmh.spec.boot_mac_address.clone().unwrap();
    let nd = Api::<Secret>::namespaced(admin.clone(), NS)
        .get(&bmh.spec.network_data.as_ref().unwrap().name)
        .await
        .unwrap();
    let text = String::from_utf8(nd.data.unwrap()["networkData"].0.clone()).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let ip: Ipv4Addr = json["networks"][0]["ip_address"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let bridge_ip = common::cluster::claims_of(&admin, Some(HOST))
        .await
        .into_iter()
        .find(|o| o.spec.key == "bridge")
        .and_then(|o| o.spec.address)
        .unwrap();
    assert_eq!(domain_active("lab.x.worker-0"), Some(false), "defined off");

    // sushy: PXE once, power on → reserved lease and the boot file over HTTP.
    let listener = listen_in(&netns, SocketAddr::from((bridge_ip, 8080)));
    listener.set_nonblocking(true).unwrap();
    let began = Instant::now();
    sushy(&env, &host, &python, &bmh.name_any(), "pxe-once-on");
    let (request, peer) = serve_boot_fetch(&listener).await;
    println!(
        "boot file fetched {:.1?} after power-on by {peer}: {}",
        began.elapsed(),
        request.lines().next().unwrap_or("")
    );
    assert!(request.starts_with("GET /boot.ipxe"), "{request}");
    assert_eq!(
        peer.ip(),
        std::net::IpAddr::V4(ip),
        "not the reserved address"
    );
    let lease = format!("{} {ip}", mac.to_lowercase());
    assert!(leases(&host).contains(&lease), "{}", leases(&host));

    // Faults while the VM runs. dnsmasq killed: back, lease kept.
    let before = host.dnsmasq_pids();
    assert_eq!(before.len(), 1);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(before[0]),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let killed = Instant::now();
    until("dnsmasq back", LIMIT, || async {
        match host.dnsmasq_pids().as_slice() {
            [p] if *p != before[0] => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    println!(
        "dnsmasq killed: a new one serves after {:.1?}",
        killed.elapsed()
    );
    assert!(
        leases(&host).contains(&lease),
        "lease lost: {}",
        leases(&host)
    );

    // libvirtd restarted: the VM keeps running, vinod reconnects and converges.
    let done = passes(&host);
    let restarted = Instant::now();
    assert!(h.restart());
    assert_eq!(domain_active("lab.x.worker-0"), Some(true), "VM stopped");
    until("a pass after libvirtd's restart", LIMIT, || async {
        let after = passes(&host);
        if after > done + 1 {
            Ok(())
        } else {
            Err(format!("{after} passes"))
        }
    })
    .await;
    until("host Ready after libvirtd's restart", LIMIT, || {
        host_ready(&admin)
    })
    .await;
    println!(
        "libvirtd restarted: VM kept running, vinod converged again {:.1?} after the restart began",
        restarted.elapsed()
    );

    // API server away for 60 s: nothing on the host changes, the VM runs throughout.
    let before = HostCensus::of(&host);
    let vm = domain_id("lab.x.worker-0");
    assert!(vm.is_some(), "the VM runs before the outage");
    env.stop_apiserver();
    let down = Instant::now();
    while down.elapsed() < API_DOWN {
        assert!(host.running(), "vinod exited");
        assert_eq!(domain_id("lab.x.worker-0"), vm, "VM stopped or restarted");
        if let Err(change) = HostCensus::of(&host).unchanged_since(&before) {
            panic!("host changed while the API server was away: {change}");
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    assert!(LogRecords::parse(&host.log()).count("pass failed; nothing was changed") > 0);
    let done = passes(&host);
    env.start_apiserver();
    let back = Instant::now();
    until("a pass after the API server's return", LIMIT, || async {
        let after = passes(&host);
        if after > done {
            Ok(())
        } else {
            Err(format!("{after} passes"))
        }
    })
    .await;
    println!(
        "API server away {API_DOWN:?}: VM, links, dnsmasq and vinod_operations_applied_total unchanged; first complete pass {:.1?} after it returned",
        back.elapsed()
    );
    until("host Ready after the API server's return", LIMIT, || {
        host_ready(&admin)
    })
    .await;
    assert!(
        leases(&host).contains(&lease),
        "lease lost: {}",
        leases(&host)
    );
    assert_eq!(owned_domains().len(), 2);

    // sushy: power off.
    sushy(&env, &host, &python, &bmh.name_any(), "off");
    assert_eq!(domain_active("lab.x.worker-0"), Some(false));

    // kubectl delete → nothing left on the host or in the cluster.
    env.kubectl_ok(&["delete", "vino", "x", "-n", NS, "--wait=false"]);
    until("Vino gone", LIMIT, || async {
        match Api::<Vino>::namespaced(admin.clone(), NS)
            .get_opt("x")
            .await
            .map_err(|e| e.to_string())?
        {
            None => Ok(()),
            Some(v) => Err(format!("finalizers {:?}", v.finalizers())),
        }
    })
    .await;
    assert_eq!(cluster_objects(&admin).await, (0, 0, 0));
    assert!(owned_domains().is_empty(), "{:?}", owned_domains());
    assert!(!host.bridge_exists(BRIDGE));
    assert!(host.dnsmasq_pids().is_empty());
    let pool = host.dir().join("pool");
    let left: Vec<_> = std::fs::read_dir(&pool)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "volumes left: {left:?}");
    assert_no_secret(&host.log(), BMC_PASSWORD, "the host's log");
}
