//! IP claims in the cluster (`VinoPoolClaim`, one object per address or DHCP block), on a real
//! API server: many hosts claiming at once never overlap, two Vinos on one subnet share no
//! address or MAC, a restart returns the same claims, leaving releases them, a host cannot take
//! another's unit, and claims of the earlier per-Vino objects are carried over.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use common::kube_env::KubeEnv;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, DeleteParams, PostParams};
use kube::{Client, ResourceExt};
use vinod::api::claim::{VinoIPClaim, VinoIPClaimSpec};
use vinod::api::pool_claim::{ClaimVino, VinoPoolClaim, VinoPoolClaimSpec};
use vinod::api::{self, Vino};
use vinod::config::Config;
use vinod::ipam::{HostClaims, IpamError, NetworkClaims};
use vinod::kube::MAX_ATTEMPTS;
use vinod::kube::claims::{self, Holder, ReserveError};
use vinod::plan::{self, NodeFacts, PlanError, PlanInput, VinoPlan};
use vinod::value::cpuset::CpuSet;

const HOSTS: usize = 20;

/// One network whose DHCP span has 16 blocks of 16 addresses; 2 workers with one NIC each.
fn farm(name: &str, dhcp: bool) -> Vino {
    farm_in(name, "lab", dhcp)
}

/// [`farm`] in namespace `namespace`.
fn farm_in(name: &str, namespace: &str, dhcp: bool) -> Vino {
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
metadata: {{name: {name}, namespace: {namespace}}}
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
    Api::<Vino>::namespaced(client.clone(), &vino.namespace().unwrap())
        .create(&PostParams::default(), vino)
        .await
        .unwrap()
}

fn host(i: usize) -> String {
    format!("host-{i:02}")
}

/// Plans `vino` as `holder` with claims reserved in the cluster, as cluster mode does.
async fn reserve(
    client: &Client,
    vino: &Vino,
    holder: &Holder,
    rounds: &AtomicU32,
) -> Result<VinoPlan, ReserveError<PlanError>> {
    let node = node_facts(&holder.name);
    let config = Config::default();
    claims::reserve(client, vino, holder, |all| {
        rounds.fetch_add(1, Ordering::Relaxed);
        plan_with(vino, &node, &config, all).map(|p| (p.claims.clone(), p))
    })
    .await
}

fn node_facts(name: &str) -> NodeFacts {
    NodeFacts {
        name: name.to_string(),
        addresses: vec![IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2))],
        ..Default::default()
    }
}

fn plan_with(
    vino: &Vino,
    node: &NodeFacts,
    config: &Config,
    claims: &BTreeMap<String, NetworkClaims>,
) -> Result<VinoPlan, PlanError> {
    plan::plan(PlanInput {
        vino,
        node,
        config,
        claims,
        credentials: None,
        taken_cpus: &CpuSet::default(),
        current_pins: &Default::default(),
        host_network: &Default::default(),
        retained: &[],
    })
}

/// Every claim object, by name.
async fn stored(client: &Client) -> BTreeMap<String, VinoPoolClaim> {
    Api::<VinoPoolClaim>::all(client.clone())
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|o| (o.name_any(), o))
        .collect()
}

/// The stored claims of `node` for `vino` on `pxe`, as the planner sees its own.
fn held_by(all: &BTreeMap<String, VinoPoolClaim>, vino: &Vino, node: &str) -> HostClaims {
    let mut c = HostClaims::default();
    for o in all.values() {
        let s = &o.spec;
        if s.node != node || Some(&s.vino.uid) != vino.metadata.uid.as_ref() {
            continue;
        }
        if let Some(b) = s.block {
            let offset = u32::from(b.start) - u32::from(Ipv4Addr::new(10, 20, 1, 0));
            c.block = Some(offset / b.size);
        }
        if let Some(ip) = s.address {
            c.addresses.insert(s.key.clone(), ip);
            if let Some(m) = &s.mac {
                c.macs.insert(s.key.clone(), m.parse().unwrap());
            }
        }
    }
    c
}

/// No DHCP blocks overlap, and the owner of every claim is its holder's Node.
fn assert_consistent(all: &BTreeMap<String, VinoPoolClaim>) {
    let blocks: Vec<(u32, u32, &str)> = all
        .values()
        .filter_map(|o| {
            o.spec
                .block
                .map(|b| (u32::from(b.start), b.size, o.spec.node.as_str()))
        })
        .collect();
    for (i, (a, size_a, ha)) in blocks.iter().enumerate() {
        for (b, size_b, hb) in &blocks[i + 1..] {
            assert!(
                a + size_a <= *b || b + size_b <= *a,
                "blocks of {ha} and {hb} overlap"
            );
        }
    }
    for o in all.values() {
        let owner = &o.metadata.owner_references.as_ref().unwrap()[0];
        assert_eq!(
            (owner.kind.as_str(), owner.name.as_str()),
            ("Node", o.spec.node.as_str())
        );
    }
}

/// Every VM NIC's MAC across `plans`, with how many NICs there are.
fn nic_macs(plans: &[&VinoPlan]) -> (BTreeSet<String>, usize) {
    let macs: Vec<String> = plans
        .iter()
        .flat_map(|p| {
            p.vms
                .iter()
                .flat_map(|v| v.nics.iter().map(|n| n.mac.clone()))
        })
        .collect();
    let n = macs.len();
    (macs.into_iter().collect(), n)
}

/// An owner reference to `holder`'s Node.
fn owner(holder: &Holder) -> OwnerReference {
    OwnerReference {
        api_version: "v1".into(),
        kind: "Node".into(),
        name: holder.name.clone(),
        uid: holder.uid.clone(),
        ..Default::default()
    }
}

/// Claims address `ip` as `holder` for some other Vino, as the admin.
async fn claim_unit(client: &Client, holder: &Holder, ip: Ipv4Addr) {
    let mut o = VinoPoolClaim::new(
        &format!("ip-{}", ip.to_string().replace('.', "-")),
        VinoPoolClaimSpec {
            pool: "10.20.0.0/16".into(),
            node: holder.name.clone(),
            vino: ClaimVino {
                namespace: "elsewhere".into(),
                name: "other".into(),
                uid: "0".into(),
            },
            network: "pxe".into(),
            key: "bridge".into(),
            address: Some(ip),
            ..Default::default()
        },
    );
    o.metadata.labels = Some(BTreeMap::from([(
        "vino.airshipit.org/pool".to_string(),
        "10.20.0.0-16".to_string(),
    )]));
    o.metadata.owner_references = Some(vec![owner(holder)]);
    Api::<VinoPoolClaim>::all(client.clone())
        .create(&PostParams::default(), &o)
        .await
        .unwrap();
}

/// Runs a claimer per (host, Vino) at once, each with its own client; returns their results
/// in order and the number of planning rounds.
async fn claim_all(env: &KubeEnv, jobs: &[(String, Vino)]) -> (Vec<Result<VinoPlan, String>>, u32) {
    let rounds = Arc::new(AtomicU32::new(0));
    let mut tasks = Vec::new();
    for (h, vino) in jobs {
        let holder = env.holder(h).await;
        let client = env.admin();
        let vino = vino.clone();
        let rounds = rounds.clone();
        tasks.push(tokio::spawn(async move {
            reserve(&client, &vino, &holder, &rounds)
                .await
                .map_err(|e| match e {
                    ReserveError::Plan(PlanError::Ipam(
                        e @ (IpamError::BlocksExhausted { .. } | IpamError::StaticExhausted { .. }),
                    )) => e.to_string(),
                    other => panic!("{}: {other}", holder.name),
                })
        }));
    }
    let mut results = Vec::new();
    for t in tasks {
        results.push(t.await.unwrap());
    }
    (results, rounds.load(Ordering::Relaxed))
}

fn hosts_of(vino: &Vino, n: usize) -> Vec<(String, Vino)> {
    (0..n).map(|i| (host(i), vino.clone())).collect()
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
    let (results, rounds) = claim_all(&env, &hosts_of(&vino, HOSTS)).await;
    println!(
        "{HOSTS} hosts claimed in {:?}: {rounds} planning rounds (at most {MAX_ATTEMPTS} per host)",
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
    let all = stored(&admin).await;
    assert_eq!(
        all.len(),
        16 * 4,
        "a block and three addresses per host: {:?}",
        all.keys()
    );
    assert_consistent(&all);
    for p in &ok {
        // What each host planned with is exactly what is stored for it, MACs included.
        let held = held_by(&all, &vino, &p.node);
        assert_eq!(held.block, p.claims["pxe"].block, "{}", p.node);
        assert_eq!(held.addresses, p.claims["pxe"].addresses, "{}", p.node);
        assert_eq!(p.claims["pxe"].addresses.len(), 3, "bridge and two NICs");
        for nic in p.vms.iter().flat_map(|v| &v.nics) {
            assert_eq!(
                all[&format!("ip-{}", nic.ip.to_string().replace('.', "-"))]
                    .spec
                    .mac
                    .as_deref(),
                Some(nic.mac.as_str())
            );
        }
    }
    let (macs, nics) = nic_macs(&ok);
    assert_eq!((macs.len(), nics), (32, 32), "every VM NIC has its own MAC");

    // A restart re-reads and keeps everything: same claims, nothing written.
    let rounds = AtomicU32::new(0);
    for p in ok.iter().take(4) {
        let holder = env.holder(&p.node).await;
        let again = reserve(&admin, &vino, &holder, &rounds).await.unwrap();
        assert_eq!(again.claims, p.claims, "{}", p.node);
        assert_eq!(again.vms, p.vms, "{}", p.node);
    }
    let versions = |m: &BTreeMap<String, VinoPoolClaim>| -> Vec<Option<String>> {
        m.values()
            .map(|o| o.metadata.resource_version.clone())
            .collect()
    };
    assert_eq!(
        versions(&stored(&admin).await),
        versions(&all),
        "a restart wrote claims"
    );

    // A host that leaves frees its block for a newcomer.
    let leaving = &ok[0].node;
    let freed = ok[0].claims["pxe"].block;
    claims::release(&admin, "lab", "farm", leaving)
        .await
        .unwrap();
    let newcomer = reserve(&admin, &vino, &env.holder("host-99").await, &rounds)
        .await
        .unwrap();
    assert_eq!(newcomer.claims["pxe"].block, freed);
    let all = stored(&admin).await;
    assert!(all.values().all(|o| &o.spec.node != leaving));
    assert_consistent(&all);

    // When every host has left, no claim is left.
    let holders: BTreeSet<String> = all.values().map(|o| o.spec.node.clone()).collect();
    for h in &holders {
        claims::release(&admin, "lab", "farm", h).await.unwrap();
    }
    assert!(stored(&admin).await.is_empty());
}

#[tokio::test]
async fn static_range_exhaustion_is_reported_and_never_overlaps() {
    let Some(env) = KubeEnv::start().await else {
        return;
    };
    env.namespace("lab").await;
    let admin = env.admin();
    let vino = create(&admin, &farm("small", false)).await;
    let jobs = hosts_of(&vino, HOSTS);
    let (mut results, _) = claim_all(&env, &jobs).await;
    // A host that found the range full while another held units it then gave back (its own
    // plan failed) tries again in its next pass, as the daemon does: once, one at a time.
    let retry: Vec<(String, Vino)> = jobs
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_err())
        .map(|(j, _)| j.clone())
        .collect();
    for job in &retry {
        let (again, _) = claim_all(&env, std::slice::from_ref(job)).await;
        let i = jobs.iter().position(|j| j.0 == job.0).unwrap();
        results[i] = again.into_iter().next().unwrap();
    }
    let ok = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(ok, 3, "10 static addresses hold 3 hosts of 3: {results:?}");
    for e in results.iter().filter_map(|r| r.as_ref().err()) {
        assert!(
            e.contains("static range 10.20.0.10-10.20.0.19 is exhausted"),
            "{e}"
        );
    }
    let all = stored(&admin).await;
    assert_eq!(all.len(), 9, "{:?}", all.keys());
    let holders: BTreeSet<&String> = all.values().map(|o| &o.spec.node).collect();
    assert_eq!(holders.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_vinos_on_one_subnet_share_no_address_block_or_mac() {
    let Some(env) = KubeEnv::start().await else {
        return;
    };
    env.namespace("lab").await;
    env.namespace("lab2").await;
    let admin = env.admin();
    // Same subnet, ranges and MAC prefix, in two namespaces; six hosts serve both.
    let a = create(&admin, &farm_in("rack-a", "lab", true)).await;
    let b = create(&admin, &farm_in("rack-b", "lab2", true)).await;
    let mut jobs = hosts_of(&a, 6);
    jobs.extend(hosts_of(&b, 6));
    let (results, _) = claim_all(&env, &jobs).await;
    let ok: Vec<&VinoPlan> = results.iter().map(|r| r.as_ref().unwrap()).collect();
    let ips: Vec<Ipv4Addr> = ok
        .iter()
        .flat_map(|p| p.claims["pxe"].addresses.values().copied())
        .collect();
    let unique: BTreeSet<&Ipv4Addr> = ips.iter().collect();
    assert_eq!(unique.len(), ips.len(), "an address given twice: {ips:?}");
    assert_eq!(ips.len(), 12 * 3);
    let blocks: BTreeSet<u32> = ok.iter().filter_map(|p| p.claims["pxe"].block).collect();
    assert_eq!(blocks.len(), 12, "a DHCP block given twice");
    let (macs, nics) = nic_macs(&ok);
    assert_eq!((macs.len(), nics), (24, 24), "a MAC given twice: {macs:?}");
    assert_consistent(&stored(&admin).await);
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
    let (ha, hb) = (env.holder("host-a").await, env.holder("host-b").await);
    let first = create(&admin, &farm("farm", true)).await;
    let old_a = reserve(&admin, &first, &ha, &rounds).await.unwrap();
    let old_b = reserve(&admin, &first, &hb, &rounds).await.unwrap();

    // The Vino goes and comes back while its hosts still hold their claims.
    api.delete("farm", &DeleteParams::default()).await.unwrap();
    let second = create(&admin, &farm("farm", true)).await;
    assert_ne!(first.metadata.uid, second.metadata.uid);
    let p = reserve(&admin, &second, &ha, &rounds).await.unwrap();
    let old: BTreeSet<Ipv4Addr> = [&old_a, &old_b]
        .iter()
        .flat_map(|p| p.claims["pxe"].addresses.values().copied())
        .collect();
    assert!(
        p.claims["pxe"]
            .addresses
            .values()
            .all(|ip| !old.contains(ip)),
        "an address of the earlier Vino was reused"
    );
    // Releasing the name releases the claims of both Vinos of that name.
    claims::release(&admin, "lab", "farm", "host-a")
        .await
        .unwrap();
    let left = stored(&admin).await;
    assert!(
        left.values().all(|o| o.spec.node == "host-b"),
        "{:?}",
        left.keys()
    );
    assert_eq!(left.len(), 4);
}

#[tokio::test]
async fn a_host_cannot_take_or_release_another_hosts_units() {
    let Some(env) = KubeEnv::start().await else {
        return;
    };
    env.namespace("lab").await;
    env.install_rbac(&["lab"]).await;
    let admin = env.admin();
    let vino = create(&admin, &farm("farm", true)).await;
    let rounds = AtomicU32::new(0);
    let (ha, hb) = (env.holder("node-a").await, env.holder("node-b").await);
    let (ca, cb) = (
        env.node_client("node-a").await,
        env.node_client("node-b").await,
    );
    let mine = reserve(&ca, &vino, &ha, &rounds).await.unwrap();
    let before = stored(&admin).await;
    let api: Api<VinoPoolClaim> = Api::all(cb.clone());

    // node-b asks for node-a's units in its own name: they are taken.
    for o in before.values() {
        let mut take = o.clone();
        take.metadata = Default::default();
        take.metadata.name = o.metadata.name.clone();
        take.metadata.labels = o.metadata.labels.clone();
        take.metadata
            .labels
            .as_mut()
            .unwrap()
            .insert("vino.airshipit.org/node".into(), "node-b".into());
        take.metadata.owner_references = Some(vec![owner(&hb)]);
        take.spec.node = "node-b".into();
        let e = api.create(&PostParams::default(), &take).await.unwrap_err();
        assert!(matches!(&e, kube::Error::Api(s) if s.code == 409), "{e}");
        // Nor may it release them, or write a claim in node-a's name.
        let e = api
            .delete(&o.name_any(), &DeleteParams::default())
            .await
            .unwrap_err();
        assert!(matches!(&e, kube::Error::Api(s) if s.code == 403), "{e}");
    }
    let mut forged = before
        .values()
        .find(|o| o.spec.address.is_some())
        .unwrap()
        .clone();
    forged.metadata.resource_version = None;
    forged.metadata.uid = None;
    forged.metadata.name = Some("ip-10-20-0-200".into());
    forged.spec.address = Some(Ipv4Addr::new(10, 20, 0, 200));
    let e = api
        .create(&PostParams::default(), &forged)
        .await
        .unwrap_err();
    assert!(
        matches!(&e, kube::Error::Api(s) if s.code == 403 && s.message.contains("node-b")),
        "{e}"
    );
    let e = api
        .delete_collection(&DeleteParams::default(), &Default::default())
        .await
        .unwrap_err();
    assert!(matches!(&e, kube::Error::Api(s) if s.code == 403), "{e}");

    // node-b claims for itself beside node-a; node-a keeps its addresses and MACs.
    let theirs = reserve(&cb, &vino, &hb, &rounds).await.unwrap();
    let taken: BTreeSet<&Ipv4Addr> = mine.claims["pxe"].addresses.values().collect();
    assert!(
        theirs.claims["pxe"]
            .addresses
            .values()
            .all(|ip| !taken.contains(ip))
    );
    assert_ne!(theirs.claims["pxe"].block, mine.claims["pxe"].block);
    let again = reserve(&ca, &vino, &ha, &rounds).await.unwrap();
    assert_eq!(again.claims, mine.claims);
    assert_eq!(
        again.vms, mine.vms,
        "node-a's VMs keep their addresses and MACs"
    );
    let after = stored(&admin).await;
    for (name, o) in &before {
        assert_eq!(
            after[name].metadata.resource_version, o.metadata.resource_version,
            "{name}"
        );
    }
    // Each host releases only its own.
    claims::release(&cb, "lab", "farm", "node-b").await.unwrap();
    assert_eq!(stored(&admin).await.len(), before.len());
}

#[tokio::test]
async fn claims_of_the_earlier_per_vino_objects_are_carried_over() {
    let Some(env) = KubeEnv::start().await else {
        return;
    };
    env.namespace("lab").await;
    let admin = env.admin();
    let vino = create(&admin, &farm("farm", true)).await;
    let config = Config::default();
    // host-a's entry as an earlier version stored it: block 5 and addresses from .50 on.
    let fresh = plan_with(&vino, &node_facts("host-a"), &config, &BTreeMap::new()).unwrap();
    let mut entry = fresh.claims["pxe"].clone();
    entry.block = Some(5);
    for (i, ip) in entry.addresses.values_mut().enumerate() {
        *ip = Ipv4Addr::new(10, 20, 0, 50 + i as u8);
    }
    let mut old = VinoIPClaim::new(
        "farm.pxe",
        VinoIPClaimSpec {
            vino: "farm".into(),
            vino_uid: vino.metadata.uid.clone().unwrap(),
            network: "pxe".into(),
            hosts: BTreeMap::from([("host-a".to_string(), entry.clone())]),
        },
    );
    old.metadata.namespace = Some("lab".into());
    Api::<VinoIPClaim>::namespaced(admin.clone(), "lab")
        .create(&PostParams::default(), &old)
        .await
        .unwrap();
    // Meanwhile another holder took one of those addresses as a unit.
    let (bridge, nic0) = (
        entry.addresses["bridge"],
        *entry.addresses.values().nth(1).unwrap(),
    );
    let lost = *entry.addresses.values().nth(2).unwrap();
    claim_unit(&admin, &env.holder("host-z").await, lost).await;

    let rounds = AtomicU32::new(0);
    let p = reserve(&admin, &vino, &env.holder("host-a").await, &rounds)
        .await
        .unwrap();
    let c = &p.claims["pxe"];
    assert_eq!(c.block, Some(5));
    assert_eq!(c.addresses["bridge"], bridge);
    assert!(c.addresses.values().any(|ip| *ip == nic0));
    assert!(
        c.addresses.values().all(|ip| *ip != lost),
        "a held address was taken over"
    );
    // The carried-over NIC keeps the MAC it had (the pool's: prefix + offset in the range);
    // the moved one gets the MAC of its new address.
    let macs: BTreeMap<Ipv4Addr, String> = p
        .vms
        .iter()
        .flat_map(|v| v.nics.iter().map(|n| (n.ip, n.mac.clone())))
        .collect();
    assert_eq!(
        macs[&nic0],
        format!("52:54:00:20:00:{:02x}", nic0.octets()[3] - 10)
    );
    let moved = macs.keys().find(|ip| **ip != nic0).unwrap();
    let o = moved.octets();
    assert_eq!(
        macs[moved],
        format!("52:54:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
    );
    // Once carried over, the units are what counts: the old object is no longer read.
    Api::<VinoIPClaim>::namespaced(admin.clone(), "lab")
        .delete("farm.pxe", &DeleteParams::default())
        .await
        .unwrap();
    let again = reserve(&admin, &vino, &env.holder("host-a").await, &rounds)
        .await
        .unwrap();
    assert_eq!(again.vms, p.vms);
}

#[tokio::test]
async fn a_dead_hosts_claims_go_with_its_node() {
    let Some(env) = KubeEnv::start().await else {
        return;
    };
    env.start_gc();
    env.namespace("lab").await;
    let admin = env.admin();
    let vino = create(&admin, &farm("farm", true)).await;
    let rounds = AtomicU32::new(0);
    let (ha, hb) = (env.holder("host-a").await, env.holder("host-b").await);
    let a = reserve(&admin, &vino, &ha, &rounds).await.unwrap();
    reserve(&admin, &vino, &hb, &rounds).await.unwrap();
    let held = |all: &BTreeMap<String, VinoPoolClaim>, node: &str| {
        all.values().filter(|o| o.spec.node == node).count()
    };
    let all = stored(&admin).await;
    assert_eq!((held(&all, "host-a"), held(&all, "host-b")), (4, 4));

    // host-b dies; its Node is deleted: the garbage collector takes its claims.
    Api::<Node>::all(admin.clone())
        .delete("host-b", &DeleteParams::default())
        .await
        .unwrap();
    let began = Instant::now();
    loop {
        let all = stored(&admin).await;
        if held(&all, "host-b") == 0 {
            assert_eq!(held(&all, "host-a"), 4, "host-a's claims went too");
            break;
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "host-b's claims still there after 60 s: {:?}",
            all.keys()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    println!("host-b's claims gone {:?} after its Node", began.elapsed());
    // Its addresses are free again; host-a keeps its own.
    let c = reserve(&admin, &vino, &env.holder("host-c").await, &rounds)
        .await
        .unwrap();
    assert_eq!(c.claims["pxe"].addresses.len(), 3);
    let again = reserve(&admin, &vino, &ha, &rounds).await.unwrap();
    assert_eq!(again.vms, a.vms);
}
