//! kill -9 of vinod at random points of a 16-VM reconcile, in cluster mode on real libvirt
//! and a real API server. vinod is restarted after each kill and killed again a few operations
//! later, until the build and then the teardown (after `kubectl delete`) are complete. After
//! every kill nothing is duplicated on the host or in the cluster; at the end of the build
//! exactly the 16 VMs exist and are published, at the end of the teardown nothing is left.
//!
//! Kill points: `VINOD_TEST_CRASH_AFTER_OPS=k` (vinod SIGKILLs itself after the k-th host
//! operation of a pass, k random in 1..=3) and, every fifth run, a SIGKILL from the test at a
//! random moment 0.1–0.6 s after the start (which may land in reading the cluster, claims,
//! publication or status writes). The seed is
//! printed; `VINOD_TEST_SEED` replays a run.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::census::metric;
use common::cluster::{ClusterHost, LABEL, create_node, real_lab, until};
use common::host::vino_yaml;
use common::log::LogRecords;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, ListParams};
use vinod::api::bmh::BareMetalHost;
use vinod::api::{NodePhase, Vino};

const NS: &str = "lab";
const HOST: &str = "host-crash";
const VMS: usize = 16;
const BRIDGE: &str = "vcc0";
const MIN_POINTS: usize = 20;
const MAX_CYCLES: usize = 6;
const RUN_LIMIT: Duration = Duration::from_secs(120);

/// xorshift64*: enough randomness for choosing kill points, reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// What exists of the Vino, on the host and in the cluster.
#[derive(Debug, PartialEq)]
struct Census {
    domains: usize,
    volumes: usize,
    bridges: usize,
    dnsmasq: usize,
    bmhs: usize,
    secrets: usize,
    claims: usize,
}

async fn census(host: &ClusterHost, admin: &Client) -> Census {
    let conn = virt::connect::Connect::open(Some(common::libvirtd::URI)).unwrap();
    let names: Vec<String> = conn
        .list_all_domains(0)
        .unwrap()
        .iter()
        .filter_map(|d| d.name().ok())
        .filter(|n| n.starts_with("lab.c."))
        .collect();
    let distinct: BTreeSet<&String> = names.iter().collect();
    assert_eq!(distinct.len(), names.len(), "duplicate domains {names:?}");
    let volumes = std::fs::read_dir(host.dir().join("pool"))
        .map(|d| d.flatten().count())
        .unwrap_or(0);
    let mine = ListParams::default().labels(&format!("vino.airshipit.org/node={HOST}"));
    let bmhs = Api::<BareMetalHost>::namespaced(admin.clone(), NS)
        .list(&mine)
        .await
        .unwrap()
        .items;
    let macs: BTreeSet<String> = bmhs
        .iter()
        .filter_map(|b| b.spec.boot_mac_address.clone())
        .collect();
    assert_eq!(macs.len(), bmhs.len(), "a MAC published twice");
    Census {
        domains: names.len(),
        volumes,
        bridges: usize::from(host.bridge_exists(BRIDGE)),
        dnsmasq: host.dnsmasq_pids().len(),
        bmhs: bmhs.len(),
        secrets: Api::<Secret>::namespaced(admin.clone(), NS)
            .list(&mine)
            .await
            .unwrap()
            .items
            .len(),
        claims: common::cluster::claimed_networks(admin, HOST).await,
    }
}

/// Never more than the Vino asks for, whatever the point of the kill.
fn assert_no_duplicates(c: &Census, when: &str) {
    assert!(
        c.domains <= VMS
            && c.volumes <= VMS
            && c.bridges <= 1
            && c.dnsmasq <= 1
            && c.bmhs <= VMS
            && c.secrets <= VMS + 1
            && c.claims <= 1,
        "{when}: {c:?}"
    );
}

async fn built(admin: &Client) -> bool {
    let Ok(v) = Api::<Vino>::namespaced(admin.clone(), NS).get("c").await else {
        return false;
    };
    let entry = common::cluster::member(admin, NS, "c", HOST)
        .await
        .map(|m| m.spec.entry());
    entry.is_some_and(|e| {
        e.phase == NodePhase::Ready
            && e.vms_ready as usize == VMS
            && e.observed_generation == v.metadata.generation
    })
}

async fn gone(admin: &Client) -> bool {
    matches!(
        Api::<Vino>::namespaced(admin.clone(), NS)
            .get_opt("c")
            .await,
        Ok(None)
    )
}

/// Runs vinod again and again, killing it at random points, until `done`; returns the number
/// of kills by the operation hook and by the test.
async fn crash_until<F, Fut>(
    host: &mut ClusterHost,
    admin: &Client,
    rng: &mut Rng,
    phase: &str,
    done: F,
) -> (usize, usize)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let (mut hooked, mut timed) = (0, 0);
    for run in 0.. {
        let k = 1 + rng.below(3);
        let timer = (run % 5 == 4).then(|| Duration::from_millis(100 + rng.below(500)));
        let k_text = k.to_string();
        if timer.is_some() {
            host.start(&[]);
        } else {
            host.start(&[("VINOD_TEST_CRASH_AFTER_OPS", k_text.as_str())]);
        }
        let began = Instant::now();
        let finished = loop {
            if let Some(status) = host.exited() {
                assert_eq!(
                    std::os::unix::process::ExitStatusExt::signal(&status),
                    Some(9),
                    "{phase}: run {run} ended by itself: {status}"
                );
                hooked += 1;
                println!("{phase}: run {run} killed itself after operation {k}");
                break false;
            }
            if timer.is_some_and(|t| began.elapsed() >= t) {
                host.kill();
                timed += 1;
                println!("{phase}: run {run} killed after {:?}", timer.unwrap());
                break false;
            }
            if done().await {
                host.kill();
                break true;
            }
            if began.elapsed() > RUN_LIMIT {
                let v = Api::<Vino>::namespaced(admin.clone(), NS)
                    .get_opt("c")
                    .await;
                panic!("{phase}: run {run} stuck; the Vino: {v:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let c = census(host, admin).await;
        assert_no_duplicates(&c, &format!("{phase}, after run {run}"));
        if finished {
            println!("{phase}: complete after {run} kills: {c:?}");
            return (hooked, timed);
        }
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_random_points_of_a_16_vm_reconcile() {
    let Some((h, netns, env)) = real_lab(NS).await else {
        return;
    };
    let admin = env.admin();
    for i in 0..VMS {
        h.track_domain(&format!("lab.c.worker-{i}"));
    }
    h.track_pool(&format!("vinod-{HOST}"));
    let seed: u64 = std::env::var("VINOD_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    println!("seed {seed} (VINOD_TEST_SEED={seed} replays it)");
    let mut rng = Rng(seed);
    create_node(&admin, HOST, "10.23.8.5", true).await;
    let mut host = ClusterHost::in_netns(&env, HOST, h.uri(), "resync_ms = 2000", &netns);
    let file = host.dir().join("vino.yaml");
    let text = vino_yaml("c", BRIDGE, 75, VMS as u32, 1).replace(
        "nodeSelector: {matchLabels: {}}",
        &format!("nodeSelector: {{matchLabels: {{{LABEL}: \"true\"}}}}"),
    );
    std::fs::write(&file, text).unwrap();
    let want = Census {
        domains: VMS,
        volumes: VMS,
        bridges: 1,
        dnsmasq: 1,
        bmhs: VMS,
        // One network-data Secret per VM and the credentials Secret they share.
        secrets: VMS + 1,
        claims: 1,
    };
    let empty = Census {
        domains: 0,
        volumes: 0,
        bridges: 0,
        dnsmasq: 0,
        bmhs: 0,
        secrets: 0,
        claims: 0,
    };
    // Build and tear down, each under repeated kills, until there were enough kill points.
    let (mut hooked, mut timed) = (0, 0);
    for cycle in 1..=MAX_CYCLES {
        env.kubectl_ok(&["apply", "-f", &file.display().to_string()]);
        let (h1, t1) = crash_until(&mut host, &admin, &mut rng, "build", || built(&admin)).await;
        assert_eq!(census(&host, &admin).await, want, "after build {cycle}");
        env.kubectl_ok(&["delete", "vino", "c", "-n", NS, "--wait=false"]);
        let (h2, t2) = crash_until(&mut host, &admin, &mut rng, "teardown", || gone(&admin)).await;
        assert_eq!(census(&host, &admin).await, empty, "after teardown {cycle}");
        hooked += h1 + h2;
        timed += t1 + t2;
        println!(
            "cycle {cycle}: {h1} + {h2} kills after an operation, {} at a random moment",
            t1 + t2
        );
        if hooked >= MIN_POINTS {
            break;
        }
    }
    println!("kill points: {hooked} after an operation, {timed} at a random moment");
    assert!(hooked >= MIN_POINTS, "only {hooked} kill points");

    // One more start on the clean host changes nothing.
    let seen = host.log().len();
    host.start(&[]);
    until(
        "a pass on the clean host",
        Duration::from_secs(30),
        || async {
            if LogRecords::parse(&host.log()[seen..]).count("pass done") > 0 {
                Ok(())
            } else {
                Err("no pass yet".into())
            }
        },
    )
    .await;
    assert!(host.running());
    assert_eq!(
        metric(&host, "vinod_operations_applied_total"),
        Some(0),
        "a start on a clean host applied operations"
    );
    assert_eq!(
        LogRecords::parse(&host.log()[seen..]).host_operations(),
        0,
        "a start on a clean host logged operations"
    );
    assert_eq!(
        census(&host, &admin).await,
        empty,
        "a restart on a clean host"
    );
}
