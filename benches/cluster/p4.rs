//! P4: many hosts against one API server. Each host is the real cluster daemon (`Cluster` under
//! `run_loop`, with its watches, debounce and retries) in a tokio task of this process, with its
//! own Node, its own client certificate (user `vinod-<node>`, group `vinod:nodes`, so RBAC and
//! the admission policy apply as in production) and simulated host adapters.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Secret};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use vinod::api::Vino;
use vinod::api::bmh::BareMetalHost;
use vinod::api::vino_node::VinoNode;
use vinod::config::Config;
use vinod::daemon::{Cluster, Notifier, RunOptions, run_loop};

use crate::check;
use crate::common::host::config_text;
use crate::common::kube_env::KubeEnv;
use crate::common::sim::simulated_host;
use crate::requests::{Counts, Own};
use crate::{LABEL, NS, ready_members, vino};

const POLL: Duration = Duration::from_millis(250);
const VINO: &str = "p4";

/// What P4 measured.
pub struct P4 {
    hosts: usize,
    workers: u32,
    limit: Duration,
    setup: Duration,
    published: Option<f64>,
    entries: Option<f64>,
    vino_ready: Option<f64>,
    last: (usize, usize, usize),
    requests: Counts,
    check: check::Check,
    /// Seconds from the Vino's creation to each host's last BareMetalHost, for the hosts that
    /// published all theirs (server timestamps, whole seconds).
    per_host: Vec<f64>,
    /// CPU seconds used during the measurement by kube-apiserver, etcd and this process (the
    /// simulated hosts and the polling).
    cpu: [f64; 3],
}

/// Runs `hosts` simulated hosts with a Vino of `workers` VMs each; gives up after `limit`.
pub async fn run(env: &KubeEnv, hosts: usize, workers: u32, limit: Duration) -> P4 {
    let began = Instant::now();
    env.namespace(NS).await;
    env.install_rbac(&[NS]).await;
    crate::warm_up(env).await;
    let names: Vec<String> = (0..hosts).map(|i| format!("host-{i:03}")).collect();
    futures::stream::iter(names.iter().enumerate())
        .map(|(i, n)| create_node(env.admin(), n, i))
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
    if per_host_bindings() {
        bind_per_host(env, &names).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut tasks = Vec::new();
    for name in &names {
        let client = env.node_client(name).await;
        let text = config_text(&dir.path().join(name), "test:///default", "sim", "")
            .replace("node_name = \"host-a\"", &format!("node_name = \"{name}\""))
            .replace(
                "advertise_address = \"192.0.2.10\"",
                "advertise_address = \"\"",
            );
        let config = Config::parse(&text, name).unwrap();
        let mut daemon = Cluster::new(simulated_host(), config, client, name.clone());
        tasks.push(tokio::spawn(async move {
            daemon.watch();
            let hook = |_: usize| {};
            let _ = run_loop(&mut daemon, &RunOptions::default(), &Notifier::new(), &hook).await;
        }));
    }
    settle(env).await;
    let setup = began.elapsed();
    eprintln!("P4: {hosts} hosts started in {setup:.1?}");

    let admin = env.admin();
    let vinos: Api<Vino> = Api::namespaced(admin.clone(), NS);
    let own = Own::default();
    let pids = [
        pid_of(env, "kube-apiserver"),
        pid_of(env, "etcd"),
        std::process::id(),
    ];
    let cpu0 = pids.map(crate::report::cpu_seconds);
    let before = Counts::scrape(env);
    let began = Instant::now();
    vinos
        .create(&PostParams::default(), &vino(VINO, workers))
        .await
        .unwrap();
    own.add("vinoes", "POST");
    let (mut published, mut entries, mut vino_ready) = (None, None, None);
    let mut last = (0, 0, 0);
    let mut shown = Instant::now();
    let want = hosts * workers as usize;
    while (published.is_none() || entries.is_none() || vino_ready.is_none())
        && began.elapsed() < limit
    {
        tokio::time::sleep(POLL).await;
        let at = began.elapsed().as_secs_f64();
        let h = count::<BareMetalHost>(&admin, &own, "baremetalhosts").await;
        let s = count::<Secret>(&admin, &own, "secrets").await;
        let v = vinos.get(VINO).await.unwrap();
        own.add("vinoes", "GET");
        let members = Api::<VinoNode>::namespaced(admin.clone(), NS)
            .list(&ListParams::default())
            .await
            .unwrap();
        own.add("vinonodes", "LIST");
        let ready = ready_members(&v, &members.items, workers);
        last = (h, s, ready);
        // One network-data Secret per VM, one credentials Secret per host.
        if published.is_none() && h == want && s == want + hosts {
            published = Some(at);
        }
        if entries.is_none() && ready == hosts {
            entries = Some(at);
        }
        if vino_ready.is_none() && condition(&v, "Ready") {
            vino_ready = Some(at);
        }
        if shown.elapsed() > Duration::from_secs(10) {
            eprintln!("P4 at {at:.0} s: {h} BareMetalHosts, {s} Secrets, {ready} entries Ready");
            shown = Instant::now();
        }
    }
    let requests = Counts::scrape(env).since(&before).less(&own);
    let cpu1 = pids.map(crate::report::cpu_seconds);
    for t in &tasks {
        t.abort();
    }
    let check = check::run(&admin).await;
    let per_host = host_times(&admin, workers as usize).await;
    P4 {
        hosts,
        workers,
        limit,
        setup,
        published,
        entries,
        vino_ready,
        last,
        requests,
        check,
        per_host,
        cpu: [0, 1, 2].map(|i| cpu1[i] - cpu0[i]),
    }
}

fn pid_of(env: &KubeEnv, name: &str) -> u32 {
    let text = std::fs::read_to_string(env.dir().join(format!("{name}.pid"))).unwrap_or_default();
    text.trim().parse().unwrap_or(0)
}

/// Seconds from the Vino's creation to each complete host's last BareMetalHost, sorted.
async fn host_times(admin: &Client, workers: usize) -> Vec<f64> {
    let Ok(v) = Api::<Vino>::namespaced(admin.clone(), NS).get(VINO).await else {
        return Vec::new();
    };
    let Some(created) = v.metadata.creation_timestamp else {
        return Vec::new();
    };
    let mut hosts: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for h in list_all(&Api::<BareMetalHost>::namespaced(admin.clone(), NS)).await {
        let node = h.labels().get("vino.airshipit.org/node").cloned();
        if let (Some(node), Some(t)) = (node, h.metadata.creation_timestamp) {
            hosts.entry(node).or_default().push(t.0.as_second());
        }
    }
    let mut out: Vec<f64> = hosts
        .values()
        .filter(|t| t.len() == workers)
        .filter_map(|t| t.iter().max())
        .map(|t| (t - created.0.as_second()) as f64)
        .collect();
    out.sort_by(f64::total_cmp);
    out
}

async fn create_node(admin: Client, name: &str, i: usize) {
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": {LABEL: "true"}},
    }))
    .unwrap();
    let nodes: Api<Node> = Api::all(admin);
    nodes.create(&PostParams::default(), &node).await.unwrap();
    // Documentation addresses: only written into the BareMetalHosts' BMC URLs.
    let ip = format!("198.51.{}.{}", 100 + i / 250, 1 + i % 250);
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"addresses": [
                {"type": "InternalIP", "address": ip},
            ]}})),
        )
        .await
        .unwrap();
}

/// Whether the hosts' writes are checked by per-host bindings of `vinod-node-facts` (`vinod
/// policy-bindings`, the fleet setup of docs/kubernetes.md; the default) rather than by the
/// shipped binding alone (`VINOD_BENCH_P4_BINDINGS=shared`).
pub fn per_host_bindings() -> bool {
    std::env::var("VINOD_BENCH_P4_BINDINGS").map_or(true, |v| v != "shared")
}

/// Applies the per-host bindings of `names` and waits until the API server enforces them: a
/// BareMetalHost of the first host with a BMC off its Node is refused by its own binding.
async fn bind_per_host(env: &KubeEnv, names: &[String]) {
    let yaml = vinod::render::policy_bindings::bindings(names).unwrap();
    let file = env.dir().join("per-host-bindings.yaml");
    std::fs::write(&file, yaml).unwrap();
    env.kubectl_ok(&["apply", "-f", &file.display().to_string()]);
    let first = &names[0];
    let api: Api<BareMetalHost> = Api::namespaced(env.node_client(first).await, NS);
    let forged: BareMetalHost = serde_json::from_value(json!({
        "apiVersion": "metal3.io/v1alpha1", "kind": "BareMetalHost",
        "metadata": {"name": "binding-probe", "labels": {"vino.airshipit.org/node": first}},
        "spec": {"bmc": {"address": "redfish+https://192.0.2.254:8000/redfish/v1/Systems/x",
                         "credentialsName": "binding-probe-credentials"}, "online": false}
    }))
    .unwrap();
    let own = format!("with binding 'vinod-node-facts.{first}'");
    let began = Instant::now();
    loop {
        match api.create(&PostParams::default(), &forged).await {
            Err(kube::Error::Api(s)) if s.code == 403 && s.message.contains(&own) => return,
            Err(kube::Error::Api(s)) if s.code == 403 => {}
            other => panic!("the forged probe host was not refused: {other:?}"),
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "per-host bindings not enforced"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits until the hosts' first passes are over: the request counters stop moving for a second.
async fn settle(env: &KubeEnv) {
    let began = Instant::now();
    let mut before = Counts::scrape(env).total();
    while began.elapsed() < Duration::from_secs(120) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now = Counts::scrape(env).total();
        if now == before {
            return;
        }
        before = now;
    }
}

/// How many objects of kind `K` the namespace holds, from a one-item page (the API server
/// tells how many items remain).
async fn count<K>(client: &Client, own: &Own, resource: &'static str) -> usize
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let api: Api<K> = Api::namespaced(client.clone(), NS);
    let page = api
        .list_metadata(&ListParams::default().limit(1))
        .await
        .unwrap();
    own.add(resource, "LIST");
    match (page.items.len(), page.metadata.remaining_item_count) {
        (0, _) => 0,
        (n, Some(rest)) => n + rest as usize,
        (n, None) if page.metadata.continue_.as_deref().unwrap_or("").is_empty() => n,
        _ => {
            own.add(resource, "LIST");
            let all = api.list_metadata(&ListParams::default()).await.unwrap();
            all.items.len()
        }
    }
}

fn condition(v: &Vino, kind: &str) -> bool {
    v.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == kind && c.status == "True")
    })
}

impl P4 {
    /// The table rows.
    pub fn rows(&self) -> String {
        let mut t = String::new();
        let (n, w) = (self.hosts, self.workers);
        let vms = n * w as usize;
        let time = |v: Option<f64>| match v {
            Some(s) => format!("{s:.1} s"),
            None => format!("not within {:.0} s", self.limit.as_secs_f64()),
        };
        let (h, s, r) = self.last;
        let _ = writeln!(
            t,
            "| P4 {n} hosts × {w} VMs: Vino created → {vms} BareMetalHosts + {} Secrets published | {} (last seen: {h} BareMetalHosts, {s} Secrets) | ≤ 60 s |",
            vms + n,
            time(self.published)
        );
        let _ = writeln!(
            t,
            "| P4 → all {n} hosts Ready (their VinoNodes) | {} (last seen: {r} Ready) | ≤ 60 s |",
            time(self.entries)
        );
        let _ = writeln!(
            t,
            "| P4 → Vino condition Ready | {} | – |",
            time(self.vino_ready)
        );
        let _ = writeln!(
            t,
            "| P4 API requests by the {n} hosts until then | {} | – |",
            self.requests.summary()
        );
        let (total, writes) = (self.requests.total(), self.requests.writes());
        let conflicts = self.requests.with_code("409");
        let _ = writeln!(
            t,
            "| P4 API requests per VM ({n} hosts) | {:.2} ({total} for {vms} VMs); 409 Conflict: {conflicts} of {writes} writes ({:.1} %) | ≤ 4; 409 < 1 % |",
            total as f64 / vms.max(1) as f64,
            100.0 * conflicts as f64 / writes.max(1) as f64
        );
        let _ = writeln!(t, "| P4 IP conflicts | {} | 0 |", self.check.summary());
        let pct = |p: usize| {
            let i = (self.per_host.len() * p).div_ceil(100).saturating_sub(1);
            self.per_host
                .get(i)
                .map_or("–".into(), |s| format!("{s:.0} s"))
        };
        let _ = writeln!(
            t,
            "| P4 hosts with all {w} BareMetalHosts published, and when (whole seconds) | {} of {n}: 10% by {}, 50% by {}, 90% by {}, last {} | – |",
            self.per_host.len(),
            pct(10),
            pct(50),
            pct(90),
            pct(100)
        );
        let [api, etcd, bench] = self.cpu;
        let _ = writeln!(
            t,
            "| P4 CPU used meanwhile | kube-apiserver {api:.0} s, etcd {etcd:.0} s, the {n} simulated hosts with the polling {bench:.0} s | – |"
        );
        t
    }

    /// What the rows leave out: the untimed setup.
    pub fn notes(&self) -> String {
        format!(
            "P4 setup (not timed): {:.0} s for {} Nodes, their client certificates and clients, \
             and the hosts' first passes.",
            self.setup.as_secs_f64(),
            self.hosts
        )
    }
}

/// Lists every object of a kind in the namespace, page by page.
pub async fn list_all<K>(api: &Api<K>) -> Vec<K>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut lp = ListParams::default().limit(500);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = api.list(&lp).await.unwrap();
        out.extend(page.items);
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            return out;
        }
    }
}
