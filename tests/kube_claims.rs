//! IP claims shared through the cluster (`VinoIPClaim`), on a real API server: many hosts
//! claiming at once never overlap, a restart returns the same claims, leaving releases them.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use common::kube_env::KubeEnv;
use kube::Client;
use kube::api::{Api, DeleteParams, PostParams};
use vinod::api::claim::VinoIPClaim;
use vinod::api::{self, Vino};
use vinod::config::Config;
use vinod::ipam::{HostClaims, IpamError};
use vinod::kube::claims::{self, ReserveError};
use vinod::kube::{KubeError, MAX_ATTEMPTS};
use vinod::plan::{self, NodeFacts, PlanError, PlanInput, VinoPlan};
use vinod::value::cpuset::CpuSet;

const HOSTS: usize = 20;

/// One network whose DHCP span has 16 blocks of 16 addresses; 2 workers with one NIC each.
fn farm(name: &str, dhcp: bool) -> Vino {
    let span = if dhcp {
        "\n      dhcpAllocationStart: 10.20.1.0\n      dhcpAllocationStop: 10.20.1.255\n      instanceSubnetBitStep: 4"
    } else {
        ""
    };
    // Without a span the static range is the limit: 10 addresses, 3 per host.
    let stop = if dhcp { "10.20.0.255" } else { "10.20.0.19" };
    api::parse_vino(&format!(
        "apiVersion: airship.airshipit.org/v1
kind: Vino
metadata: {{name: {name}, namespace: lab}}
spec:
  nodeSelector: {{matchLabels: {{}}}}
  flavors: {{tiny: {{vcpus: 1, memoryMiB: 256, rootDiskGiB: 1}}}}
  networks:
    - name: pxe
      subnet: 10.20.0.0/16
      staticAllocationStart: 10.20.0.10
      staticAllocationStop: {stop}{span}
      macPrefix: \"52:54:00:20:00:00\"
      bridgeName: vpxe
  nodes:
    - name: worker
      count: 2
      flavor: tiny
      networkInterfaces: [{{name: eth0, network: pxe}}]
  bmcCredentials: {{username: admin, password: secret}}
"
    ))
    .unwrap()
}

async fn create(client: &Client, vino: &Vino) -> Vino {
    Api::<Vino>::namespaced(client.clone(), "lab")
        .create(&PostParams::default(), vino)
        .await
        .unwrap()
}

fn host(i: usize) -> String {
    format!("host-{i:02}")
}

/// Plans `vino` on `host` with claims reserved in the cluster, as cluster mode does.
async fn reserve(
    client: &Client,
    vino: &Vino,
    host: &str,
    rounds: &AtomicU32,
) -> Result<VinoPlan, ReserveError<PlanError>> {
    let node = NodeFacts {
        name: host.to_string(),
        addresses: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))],
        ..Default::default()
    };
    let config = Config::default();
    claims::reserve(client, vino, host, |all| {
        rounds.fetch_add(1, Ordering::Relaxed);
        plan::plan(PlanInput {
            vino,
            node: &node,
            config: &config,
            claims: all,
            credentials: None,
            taken_cpus: &CpuSet::default(),
            current_pins: &Default::default(),
            host_network: &Default::default(),
        })
        .map(|p| (p.claims.clone(), p))
    })
    .await
}

/// Every host's claims on network `pxe`, and the object's resourceVersion.
async fn stored(client: &Client, name: &str) -> (BTreeMap<String, HostClaims>, String) {
    let o = Api::<VinoIPClaim>::namespaced(client.clone(), "lab")
        .get(&claims::object_name(name, "pxe"))
        .await
        .unwrap();
    (o.spec.hosts, o.metadata.resource_version.unwrap())
}

/// No block and no address is held by two hosts.
fn assert_disjoint(all: &BTreeMap<String, HostClaims>) {
    let mut blocks = BTreeMap::new();
    let mut addresses = BTreeMap::new();
    for (h, c) in all {
        if let Some(b) = c.block
            && let Some(other) = blocks.insert(b, h)
        {
            panic!("block {b} held by {other} and {h}");
        }
        for ip in c.addresses.values() {
            if let Some(other) = addresses.insert(*ip, h) {
                panic!("{ip} held by {other} and {h}");
            }
        }
    }
}

/// Runs `HOSTS` concurrent claimers, each with its own client; returns their results in host
/// order and the number of planning rounds.
async fn claim_all(env: &KubeEnv, vino: &Vino) -> (Vec<Result<VinoPlan, String>>, u32) {
    let rounds = Arc::new(AtomicU32::new(0));
    let tasks: Vec<_> = (0..HOSTS)
        .map(|i| {
            let client = env.admin();
            let vino = vino.clone();
            let rounds = rounds.clone();
            tokio::spawn(async move {
                reserve(&client, &vino, &host(i), &rounds)
                    .await
                    .map_err(|e| match e {
                        ReserveError::Plan(PlanError::Ipam(
                            e @ (IpamError::BlocksExhausted { .. }
                            | IpamError::StaticExhausted { .. }),
                        )) => e.to_string(),
                        other => panic!("{}: {other}", host(i)),
                    })
            })
        })
        .collect();
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    (results, rounds.load(Ordering::Relaxed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_hosts_claim_one_network_at_once_without_overlap() {
    let Some(env) = KubeEnv::start().await else {
        return;
    };
    env.namespace("lab").await;
    let admin = env.admin();
    let vino = create(&admin, &farm("farm", true)).await;

    let started = Instant::now();
    let (results, rounds) = claim_all(&env, &vino).await;
    println!(
        "{HOSTS} hosts claimed in {:?}: {rounds} planning rounds (one more per conflict; at most {MAX_ATTEMPTS} per host)",
        started.elapsed()
    );

    // 16 blocks: 16 hosts get one, the others a clear error.
    let ok: Vec<&VinoPlan> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    let errors: Vec<&String> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert_eq!(ok.len(), 16, "errors: {errors:?}");
    for e in &errors {
        assert!(
            e.contains("no free DHCP block for host") && e.contains("all 16 blocks"),
            "{e}"
        );
    }
    let (all, rv) = stored(&admin, "farm").await;
    assert_eq!(all.len(), 16);
    assert_disjoint(&all);
    for p in &ok {
        // What each host planned with is exactly what is stored for it.
        assert_eq!(all.get(&p.node), Some(&p.claims["pxe"]), "{}", p.node);
        assert_eq!(p.claims["pxe"].addresses.len(), 3, "bridge and two NICs");
    }
    let macs: BTreeSet<String> = ok
        .iter()
        .flat_map(|p| {
            p.vms
                .iter()
                .flat_map(|v| v.nics.iter().map(|n| n.mac.clone()))
        })
        .collect();
    assert_eq!(macs.len(), 32, "every VM NIC has its own MAC");

    // A restart re-reads and keeps everything: same claims, nothing written.
    let rounds = AtomicU32::new(0);
    for p in ok.iter().take(4) {
        let again = reserve(&admin, &vino, &p.node, &rounds).await.unwrap();
        assert_eq!(again.claims, p.claims, "{}", p.node);
    }
    assert_eq!(stored(&admin, "farm").await.1, rv, "a restart wrote claims");

    // A host that leaves frees its block for a newcomer.
    let leaving = &ok[0].node;
    let freed = all[leaving].block;
    claims::release(&admin, "lab", "farm", leaving)
        .await
        .unwrap();
    let newcomer = reserve(&admin, &vino, "host-99", &rounds).await.unwrap();
    assert_eq!(newcomer.claims["pxe"].block, freed);
    let (all, _) = stored(&admin, "farm").await;
    assert!(!all.contains_key(leaving.as_str()));
    assert_disjoint(&all);

    // When every host has left, the claim object is gone.
    for h in all.keys() {
        claims::release(&admin, "lab", "farm", h).await.unwrap();
    }
    let left = Api::<VinoIPClaim>::namespaced(admin.clone(), "lab")
        .list(&Default::default())
        .await
        .unwrap();
    assert!(left.items.is_empty(), "{:?}", left.items);
}

#[tokio::test]
async fn static_range_exhaustion_is_reported_and_never_overlaps() {
    let Some(env) = KubeEnv::start().await else {
        return;
    };
    env.namespace("lab").await;
    let admin = env.admin();
    let vino = create(&admin, &farm("small", false)).await;
    let (results, _) = claim_all(&env, &vino).await;
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 3, "10 static addresses hold 3 hosts of 3: {results:?}");
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            e.contains("static range 10.20.0.10-10.20.0.19 is exhausted"),
            "{e}"
        );
    }
    let (all, _) = stored(&admin, "small").await;
    assert_eq!(all.len(), 3);
    assert_disjoint(&all);
}

#[tokio::test]
async fn claims_of_an_earlier_vino_with_the_same_name_are_not_reused() {
    let Some(env) = KubeEnv::start().await else {
        return;
    };
    env.namespace("lab").await;
    let admin = env.admin();
    let api = Api::<Vino>::namespaced(admin.clone(), "lab");
    let rounds = AtomicU32::new(0);
    let first = create(&admin, &farm("farm", true)).await;
    reserve(&admin, &first, "host-a", &rounds).await.unwrap();
    reserve(&admin, &first, "host-b", &rounds).await.unwrap();

    // The Vino goes and comes back; no garbage collector runs here, so its claims stay.
    api.delete("farm", &DeleteParams::default()).await.unwrap();
    let second = create(&admin, &farm("farm", true)).await;
    assert_ne!(first.metadata.uid, second.metadata.uid);
    match reserve(&admin, &second, "host-a", &rounds).await {
        Err(ReserveError::Kube(e @ KubeError::StaleClaims { .. })) => {
            assert!(e.to_string().contains("still held by host-b"), "{e}")
        }
        other => panic!("expected stale claims, got {other:?}"),
    }
    // Once host-b has released, host-a clears the old object and claims afresh.
    claims::release(&admin, "lab", "farm", "host-b")
        .await
        .unwrap();
    let p = reserve(&admin, &second, "host-a", &rounds).await.unwrap();
    let o = Api::<VinoIPClaim>::namespaced(admin.clone(), "lab")
        .get(&claims::object_name("farm", "pxe"))
        .await
        .unwrap();
    assert_eq!(Some(o.spec.vino_uid), second.metadata.uid);
    assert_eq!(o.spec.hosts.keys().collect::<Vec<_>>(), ["host-a"]);
    assert_eq!(o.spec.hosts["host-a"], p.claims["pxe"]);
    let owner = &o.metadata.owner_references.unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), Some(&owner.uid)),
        ("Vino", second.metadata.uid.as_ref())
    );
}
