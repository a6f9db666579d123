//! Cluster benchmarks against a real kube-apiserver (root): `cargo bench --bench cluster` (or
//! `scripts/bench.sh`).
//!
//! - P2, Vino applied → BareMetalHosts published: the real `vinod run` binary in cluster mode,
//!   in a network namespace with libvirt's test driver and a real bridge and dnsmasq, with its
//!   own client certificate. A Vino with 16, then 64 VMs on the host is created; measured: time
//!   until all BareMetalHosts and their Secrets exist, and until the host's status entry is
//!   Ready, and the API requests vinod made meanwhile.
//! - P4, 200 hosts × 16 VMs: 200 in-process cluster daemons (`Cluster` under `run_loop`, one
//!   tokio task, Node, client certificate and field manager each) on simulated host adapters,
//!   one Vino selecting all of them. Measured: time to 3200 BareMetalHosts and to every status
//!   entry Ready, API requests and conflicts, and a check that no IP, MAC or DHCP block is
//!   used twice.
//!
//! Prints the conditions and a Markdown table and writes them into `docs/benchmarks.md`
//! between markers, replacing what was there.

mod check;
#[path = "../../tests/common/mod.rs"]
mod common;
mod p2;
mod p4;
#[path = "../shared/report.rs"]
mod report;
mod requests;

use std::fmt::Write as _;
use std::time::Duration;

use common::host::skip_reason;
use common::kube_env::KubeEnv;
use kube::ResourceExt;
use kube::api::Api;
use vinod::api::bmh::BareMetalHost;
use vinod::api::hardware_data::HardwareData;
use vinod::api::pool_claim::VinoPoolClaim;
use vinod::api::vino_node::VinoNode;
use vinod::api::{NodePhase, Vino};

/// Label that makes a Node selected by the benchmark's Vinos.
pub const LABEL: &str = "vino.airshipit.org/host";
/// Namespace of the Vinos and of what vinod publishes.
pub const NS: &str = "lab";

/// A Vino `lab/<name>` selecting every Node labelled [`LABEL`], with `workers` VMs per host on
/// one network large enough for 200 hosts of 16 VMs (or one host of 64): a /19 whose lower half
/// is the static range (bridge and VM addresses) and whose upper half is cut into per-host DHCP
/// blocks of at least 16 addresses.
pub fn vino_manifest(name: &str, workers: u32) -> String {
    let step = workers.next_power_of_two().trailing_zeros().max(4);
    format!(
        r#"
apiVersion: airship.airshipit.org/v1
kind: Vino
metadata: {{name: {name}, namespace: {NS}}}
spec:
  nodeSelector: {{matchLabels: {{{LABEL}: "true"}}}}
  flavors:
    small: {{vcpus: 1, memoryMiB: 256, rootDiskGiB: 1}}
  networks:
    - name: pxe
      subnet: 10.96.0.0/19
      staticAllocationStart: 10.96.0.1
      staticAllocationStop: 10.96.15.254
      dhcpAllocationStart: 10.96.16.0
      dhcpAllocationStop: 10.96.31.254
      instanceSubnetBitStep: {step}
      macPrefix: "52:54:00:60:00:00"
      bridgeName: vbench0
  nodes:
    - name: worker
      count: {workers}
      flavor: small
      networkInterfaces: [{{name: eth0, network: pxe}}]
  bmcCredentials: {{username: admin, password: pw}}
"#
    )
}

/// The parsed [`vino_manifest`].
pub fn vino(name: &str, workers: u32) -> Vino {
    vinod::api::parse_vino(&vino_manifest(name, workers)).expect("benchmark Vino")
}

/// How many hosts' `VinoNode`s of `vino` report Ready with `workers` VMs for its current
/// generation.
pub fn ready_members(vino: &Vino, members: &[VinoNode], workers: u32) -> usize {
    let generation = vino.metadata.generation;
    members
        .iter()
        .filter(|m| {
            m.spec.vino == vino.name_any()
                && m.spec.phase == NodePhase::Ready
                && m.spec.vms_ready == workers
                && m.spec.observed_generation == generation
        })
        .count()
}

/// Lists each of vinod's custom resources as the admin until the API server answers: it
/// builds a custom resource's storage on first use and meanwhile answers 429 (storage
/// initializing), which a long-running cluster never shows; a fresh one should not be timed
/// with it.
pub async fn warm_up(env: &KubeEnv) {
    let admin = env.admin();
    let lp = kube::api::ListParams::default().limit(1);
    let began = std::time::Instant::now();
    loop {
        let a = Api::<Vino>::all(admin.clone()).list_metadata(&lp).await;
        let b = Api::<VinoPoolClaim>::all(admin.clone())
            .list_metadata(&lp)
            .await;
        let c = Api::<BareMetalHost>::all(admin.clone())
            .list_metadata(&lp)
            .await;
        let d = Api::<VinoNode>::all(admin.clone()).list_metadata(&lp).await;
        let e = Api::<HardwareData>::all(admin.clone())
            .list_metadata(&lp)
            .await;
        // Without metal3's CRDs (outside CI) there is no HardwareData resource: 404.
        let e_ok = match &e {
            Ok(_) => true,
            Err(kube::Error::Api(s)) => s.code == 404,
            Err(_) => false,
        };
        if a.is_ok() && b.is_ok() && c.is_ok() && d.is_ok() && e_ok {
            return;
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "custom resources not served: {a:?} {b:?} {c:?} {d:?} {e:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The median of `v` (the lower middle for an even count).
pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s.get(s.len().saturating_sub(1) / 2)
        .copied()
        .unwrap_or(f64::NAN)
}

/// `1.23 s, 1.31 s`.
pub fn seconds(v: &[f64]) -> String {
    v.iter()
        .map(|s| format!("{s:.2} s"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if let Some(why) = skip_reason() {
        println!("skipped: {why}");
        return;
    }
    if let Ok(filter) = std::env::var("RUST_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let vinod = report::vinod_binary();
    let runs = env_usize("VINOD_BENCH_RUNS", 3);
    let hosts: Vec<usize> = std::env::var("VINOD_BENCH_HOSTS")
        .unwrap_or_else(|_| "50,200".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let limit = Duration::from_secs(env_usize("VINOD_BENCH_P4_LIMIT_S", 600) as u64);

    let load = report::load_average();
    let mut rows = String::new();
    let mut setup =
        vec!["Written by `cargo bench --bench cluster` (run by `scripts/bench.sh`).".to_string()];
    // `VINOD_BENCH_ONLY=p2` or `p4` runs one of the two (the document is then not rewritten).
    let only = std::env::var("VINOD_BENCH_ONLY").unwrap_or_default();
    if only != "p4" {
        let Some(env) = KubeEnv::start().await else {
            return;
        };
        setup.push(control_plane(&env));
        setup.push(format!(
            "P2: `{}` (release build) in cluster mode, in its own network namespace with a real bridge and dnsmasq, and libvirt {} (libvirt's test driver: its domains live in vinod's process and no VM runs); {runs} runs per size.",
            report::vinod_version(&vinod),
            report::libvirt_driver(p2::URI)
        ));
        for row in p2::run(&env, &vinod, &[16, 64], runs).await {
            let _ = writeln!(rows, "{row}");
        }
    }
    if only != "p2" && !hosts.is_empty() {
        setup.push(format!(
            "P4: {} hosts in this process, each the real cluster code (`Cluster` under `run_loop`) with simulated host adapters (`tests/common/sim.rs`: in-memory bridges, DHCP servers and hypervisor; no libvirt, no dnsmasq); a fresh control plane per size; time limit {} s (`VINOD_BENCH_P4_LIMIT_S`); {}.",
            hosts.iter().map(ToString::to_string).collect::<Vec<_>>().join(" and "),
            limit.as_secs(),
            if p4::per_host_bindings() {
                "the policy `vinod-node-facts` bound per host (`vinod policy-bindings`, so each write is checked against its host's Node only; `VINOD_BENCH_P4_BINDINGS=shared` keeps the shipped binding)"
            } else {
                "the policy `vinod-node-facts` with its shipped binding only (every Node a parameter)"
            }
        ));
    }
    for &n in hosts.iter().filter(|_| only != "p2") {
        // A fresh control plane for each size: nothing left over from the one before.
        let Some(env) = KubeEnv::start().await else {
            return;
        };
        let plane = control_plane(&env);
        if !setup.contains(&plane) {
            setup.push(plane);
        }
        let p4 = p4::run(&env, n, 16, limit).await;
        let _ = write!(rows, "{}", p4.rows());
        setup.push(p4.notes());
    }
    let mut t = report::conditions(&load, &setup);
    let _ = write!(t, "| Benchmark | Result | Target |\n|---|---|---|\n{rows}");
    println!("{t}");
    if only.is_empty() {
        report::write_section("cluster-bench", "Cluster (P2, P4)", &t);
    }
}

/// The API server's version and where it and etcd run.
fn control_plane(env: &KubeEnv) -> String {
    let text = env.kubectl_ok(&["get", "--raw", "/version"]);
    let version: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
    format!(
        "Control plane: kube-apiserver {} and etcd on loopback, sharing the CPUs with vinod and the benchmark.",
        version["gitVersion"].as_str().unwrap_or("?")
    )
}
