//! Three vinod daemons as three hosts (own Node names, identities, network namespaces and
//! libvirt test drivers) against one real API server: one Vino selecting all three is built
//! on each, every host reports its own status in its `VinoNode` and the Vino is Ready only once
//! all three are; addresses never overlap across hosts; the API server stopped for 60 s changes
//! nothing on any host and every host converges once it is back; a host killed and its Node
//! deleted takes its `VinoNode` and claims with it; deleting the Vino tears the others down and
//! the Vino goes.

mod common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use common::census::HostCensus;
use common::cluster::{ClusterHost, LABEL, create_node, member, members, until};
use common::host::{skip_reason, vino_yaml};
use common::kube_env::{KubeEnv, assert_ok};
use common::log::LogRecords;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, PostParams};
use kube::{Client, ResourceExt};
use vinod::api::bmh::BareMetalHost;
use vinod::api::{NodePhase, Vino};

const NS: &str = "lab";
const HOSTS: [(&str, &str); 3] = [
    ("host-1", "10.23.1.5"),
    ("host-2", "10.23.2.5"),
    ("host-3", "10.23.3.5"),
];
const LIMIT: Duration = Duration::from_secs(120);
const API_DOWN: Duration = Duration::from_secs(60);

async fn vino(admin: &Client) -> Vino {
    Api::<Vino>::namespaced(admin.clone(), NS)
        .get("x")
        .await
        .unwrap()
}

async fn set_workers(admin: &Client, n: u32) {
    let api: Api<Vino> = Api::namespaced(admin.clone(), NS);
    // The coordinator may write the status between the read and the replace, and a server
    // that has just been started may still refuse requests for a moment.
    let began = std::time::Instant::now();
    loop {
        let replaced = match api.get("x").await {
            Ok(mut v) => {
                v.spec.nodes[0].count = n;
                api.replace("x", &PostParams::default(), &v).await.map(drop)
            }
            Err(e) => Err(e),
        };
        match replaced {
            Ok(()) => return,
            Err(e) if began.elapsed() < Duration::from_secs(30) => {
                println!("set workers: {e}; again");
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("set workers: {e}"),
        }
    }
}

async fn bmhs_of(admin: &Client, host: &str) -> Vec<BareMetalHost> {
    Api::<BareMetalHost>::namespaced(admin.clone(), NS)
        .list(&ListParams::default().labels(&format!("vino.airshipit.org/node={host}")))
        .await
        .unwrap()
        .items
}

/// Waits until each host in `hosts` reports `Ready` with `workers` VMs for the current
/// generation and has published them.
async fn wait_hosts_ready(admin: &Client, hosts: &[&ClusterHost], workers: u32) {
    for host in hosts {
        until(&format!("{} Ready", host.name), LIMIT, || async {
            let v = vino(admin).await;
            let entry = member(admin, NS, "x", &host.name)
                .await
                .map(|m| m.spec.entry());
            let published = bmhs_of(admin, &host.name).await.len() as u32;
            match entry {
                Some(e)
                    if e.phase == NodePhase::Ready
                        && e.vms_ready == workers
                        && e.observed_generation == v.metadata.generation
                        && published == workers =>
                {
                    Ok(())
                }
                other => Err(format!("{other:?}, {published} published")),
            }
        })
        .await;
    }
}

fn condition(v: &Vino, type_: &str) -> Option<(String, String, String)> {
    v.status.as_ref().and_then(|s| {
        s.conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    })
}

/// Every address and MAC published in the network data of all hosts' BareMetalHosts, checked
/// to be distinct; returns how many VMs were seen.
async fn assert_no_address_overlap(admin: &Client) -> usize {
    let hosts = Api::<BareMetalHost>::namespaced(admin.clone(), NS)
        .list(&ListParams::default().labels("vino.airshipit.org/cr-name=x"))
        .await
        .unwrap()
        .items;
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), NS);
    let mut ips = BTreeSet::new();
    let mut macs = BTreeSet::new();
    for h in &hosts {
        let nd = secrets
            .get(&h.spec.network_data.as_ref().unwrap().name)
            .await
            .unwrap();
        let text = String::from_utf8(nd.data.unwrap()["networkData"].0.clone()).unwrap();
        let json: serde_json::Value = serde_json::from_str(&text).unwrap();
        for net in json["networks"].as_array().unwrap() {
            let ip = net["ip_address"].as_str().unwrap().to_string();
            assert!(ips.insert(ip.clone()), "{ip} published twice");
        }
        let mac = h.spec.boot_mac_address.clone().unwrap();
        assert!(macs.insert(mac.clone()), "{mac} published twice");
    }
    // The hosts' DHCP blocks and bridge addresses are disjoint too: one claim per unit, each
    // held by one host, blocks not overlapping.
    let claims = common::cluster::claims_of(admin, None).await;
    let mut claimed = BTreeSet::new();
    let mut blocks: Vec<(u32, u32)> = Vec::new();
    for claim in claims {
        if let Some(ip) = claim.spec.address {
            assert!(claimed.insert(ip.to_string()), "{ip} claimed twice");
        }
        if let Some(b) = claim.spec.block {
            let (start, end) = (u32::from(b.start), u32::from(b.start) + b.size);
            assert!(
                blocks.iter().all(|(s, e)| end <= *s || *e <= start),
                "block {b:?} of {} overlaps another",
                claim.spec.node
            );
            blocks.push((start, end));
        }
    }
    assert!(
        ips.is_subset(&claimed),
        "published {ips:?}, claimed {claimed:?}"
    );
    hosts.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_one_vino_and_the_api_server_away_for_a_minute() {
    if let Some(why) = skip_reason() {
        common::prereq::skip(why);
        return;
    }
    let Some(env) = KubeEnv::start().await else {
        return;
    };
    env.start_gc();
    env.namespace(NS).await;
    env.install_rbac(&[NS]).await;
    let admin = env.admin();
    let mut hosts = Vec::new();
    for (name, ip) in HOSTS {
        create_node(&admin, name, ip, true).await;
        hosts.push(ClusterHost::new(
            &env,
            name,
            "test:///default",
            "resync_ms = 3000",
        ));
    }
    let manifest = hosts[0].dir().join("vino.yaml");
    let text = vino_yaml("x", "vmh0", 72, 2, 1).replace(
        "nodeSelector: {matchLabels: {}}",
        &format!("nodeSelector: {{matchLabels: {{{LABEL}: \"true\"}}}}"),
    );
    std::fs::write(&manifest, text).unwrap();
    env.kubectl_ok(&["apply", "-f", &manifest.display().to_string()]);

    // Two of three hosts up: each reports its own entry, the Vino is not Ready.
    hosts[0].start(&[]);
    hosts[1].start(&[]);
    wait_hosts_ready(&admin, &[&hosts[0], &hosts[1]], 2).await;
    until("2 of 3 hosts ready", LIMIT, || async {
        let v = vino(&admin).await;
        let ready = condition(&v, "Ready");
        let nodes = v.status.as_ref().and_then(|s| s.nodes_ready.clone());
        match (&ready, nodes.as_deref()) {
            (Some((status, reason, message)), Some("2/3"))
                if status == "False"
                    && reason == "HostsProgressing"
                    && message.contains("host-3: no report") =>
            {
                Ok(())
            }
            other => Err(format!("{other:?}")),
        }
    })
    .await;

    // The third host comes up: Ready, and `kubectl wait` sees it.
    hosts[2].start(&[]);
    wait_hosts_ready(&admin, &[&hosts[0], &hosts[1], &hosts[2]], 2).await;
    let out = env
        .kubectl()
        .args(["wait", "--for=condition=Ready", "vino/x", "-n", NS])
        .arg("--timeout=60s")
        .output()
        .unwrap();
    assert_ok(&out, "kubectl wait");
    let v = vino(&admin).await;
    let status = v.status.clone().unwrap();
    assert_eq!(status.nodes_ready.as_deref(), Some("3/3"));
    assert_eq!(status.vms_ready.as_deref(), Some("6/6"));
    assert_eq!(
        members(&admin, NS, "x").await,
        ["host-1", "host-2", "host-3"]
    );
    // One finalizer, whatever the number of hosts.
    assert_eq!(v.finalizers(), [vinod::kube::membership::FINALIZER]);
    for (host, (_, ip)) in hosts.iter().zip(HOSTS) {
        for h in bmhs_of(&admin, &host.name).await {
            assert!(h.spec.bmc.address.contains(&format!("://{ip}:")), "{h:?}");
            assert_eq!(h.labels()["vino.airshipit.org/node"], host.name);
        }
        assert!(host.bridge_exists("vmh0"));
        assert_eq!(host.dnsmasq_pids().len(), 1);
    }
    assert_eq!(assert_no_address_overlap(&admin).await, 6);

    // The API server goes away for a minute: every host keeps its VMs, bridge and dnsmasq,
    // and its daemon keeps running.
    let dnsmasq: Vec<Vec<i32>> = hosts.iter().map(|h| h.dnsmasq_pids()).collect();
    let before: Vec<HostCensus> = hosts.iter().map(HostCensus::of).collect();
    assert!(
        before.iter().all(|c| c.operations().is_some_and(|n| n > 0)),
        "every host reports the operations it applied: {before:?}"
    );
    env.stop_apiserver();
    let down = Instant::now();
    while down.elapsed() < API_DOWN {
        for (i, host) in hosts.iter_mut().enumerate() {
            assert!(host.running(), "{} exited", host.name);
            assert!(host.bridge_exists("vmh0"), "{} lost its bridge", host.name);
            assert_eq!(host.dnsmasq_pids(), dnsmasq[i], "{} dnsmasq", host.name);
            let vms = host.snapshot().map(|s| s.vms.len());
            assert_eq!(vms, Some(2), "{} VMs", host.name);
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    for (i, host) in hosts.iter().enumerate() {
        assert!(
            LogRecords::parse(&host.log()).count("pass failed; nothing was changed") > 0,
            "{}: no failed pass while the API server was away",
            host.name
        );
        if let Err(change) = HostCensus::of(host).unchanged_since(&before[i]) {
            panic!(
                "{} changed its host while the API server was away: {change}",
                host.name
            );
        }
    }
    // The check can fire: one host operation on host-3 while the server is still away.
    let mtu = |h: &ClusterHost| ip_on(h, &["-j", "link", "show", "vmh0"])[0]["mtu"].clone();
    let was = mtu(&hosts[2]);
    ip_on(&hosts[2], &["link", "set", "vmh0", "mtu", "1400"]);
    let seen = HostCensus::of(&hosts[2]).unchanged_since(&before[2]);
    ip_on(&hosts[2], &["link", "set", "vmh0", "mtu", &was.to_string()]);
    assert!(
        seen.as_ref().is_err_and(|c| c.contains("mtu 1400")),
        "the outage check missed an injected host operation: {seen:?}"
    );
    env.start_apiserver();

    // Back: a spec change reaches every host, without restarting dnsmasq.
    let back = Instant::now();
    set_workers(&admin, 3).await;
    wait_hosts_ready(&admin, &[&hosts[0], &hosts[1], &hosts[2]], 3).await;
    println!(
        "API server away {API_DOWN:?}: links, dnsmasq, VMs and vinod_operations_applied_total unchanged on 3 hosts; 3 → 9 VMs published {:.1?} after it returned",
        back.elapsed()
    );
    assert_eq!(assert_no_address_overlap(&admin).await, 9);
    for (i, host) in hosts.iter().enumerate() {
        assert_eq!(host.dnsmasq_pids(), dnsmasq[i], "{} dnsmasq", host.name);
    }

    // host-3 dies for good and its Node is deleted: the garbage collector takes its VinoNode
    // and its claims.
    hosts[2].kill();
    let gone = Instant::now();
    Api::<k8s_openapi::api::core::v1::Node>::all(admin.clone())
        .delete("host-3", &Default::default())
        .await
        .unwrap();
    until(
        "host-3's VinoNode and claims gone",
        Duration::from_secs(60),
        || async {
            let m = member(&admin, NS, "x", "host-3").await;
            let claims = common::cluster::claims_of(&admin, Some("host-3"))
                .await
                .len();
            if m.is_none() && claims == 0 {
                Ok(())
            } else {
                Err(format!("VinoNode {}, {claims} claims", m.is_some()))
            }
        },
    )
    .await;
    println!(
        "host-3's VinoNode and claims gone {:.1?} after its Node",
        gone.elapsed()
    );

    // Deleted: the remaining hosts tear down, then the Vino is gone.
    let deleted = Instant::now();
    env.kubectl_ok(&["delete", "vino", "x", "-n", NS, "--wait=false"]);
    for host in &hosts[..2] {
        until(&format!("{} torn down", host.name), LIMIT, || async {
            let vms = host.snapshot().map(|s| s.vms.len());
            let left = bmhs_of(&admin, &host.name).await.len();
            if host.bridge_exists("vmh0") || !host.dnsmasq_pids().is_empty() || vms != Some(0) {
                Err(format!("bridge, dnsmasq or VMs left ({vms:?})"))
            } else if left != 0 {
                Err(format!("{left} BareMetalHosts left"))
            } else {
                Ok(())
            }
        })
        .await;
    }
    until("Vino gone", LIMIT, || async {
        match Api::<Vino>::namespaced(admin.clone(), NS)
            .get_opt("x")
            .await
            .unwrap()
        {
            None => Ok(()),
            Some(v) => Err(format!(
                "finalizers {:?}, VinoNodes of {:?}",
                v.finalizers(),
                members(&admin, NS, "x").await
            )),
        }
    })
    .await;
    println!(
        "kubectl delete vino done on the two remaining hosts in {:.1?}",
        deleted.elapsed()
    );
    // What the remaining hosts published is gone; the dead host's goes with the Vino (owner).
    until("Secrets gone", LIMIT, || async {
        let left = Api::<Secret>::namespaced(admin.clone(), NS)
            .list(&ListParams::default().labels("vino.airshipit.org/cr-name=x"))
            .await
            .unwrap()
            .items
            .len();
        if left == 0 {
            Ok(())
        } else {
            Err(format!("{left} Secrets left"))
        }
    })
    .await;
}

/// `ip ARGS` in `host`'s network namespace; its JSON output parsed when it prints any.
fn ip_on(host: &ClusterHost, args: &[&str]) -> serde_json::Value {
    let out = std::process::Command::new("ip")
        .args(["-n", host.netns_name()])
        .args(args)
        .output()
        .unwrap();
    assert!(out.status.success(), "ip {args:?}: {:?}", out);
    serde_json::from_slice(&out.stdout).unwrap_or(serde_json::Value::Null)
}
