//! P2: the real `vinod run` in cluster mode; a Vino with N VMs on the host is created through
//! the API and the benchmark polls (every 50 ms) until the N BareMetalHosts and 2N Secrets
//! exist and until the host's `VinoNode` is Ready.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Secret};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use serde_json::json;
use vinod::api::Vino;
use vinod::api::bmh::BareMetalHost;

use crate::common::cluster::forward_loopback;
use crate::common::host::{Daemon, NetNs, Reaper, config_text};
use crate::common::kube_env::KubeEnv;
use crate::requests::{Counts, Own};
use crate::{LABEL, NS, median, ready_members, seconds, vino};
use vinod::api::vino_node::VinoNode;

const HOST: &str = "host-a";
/// libvirt driver vinod uses in P2: the test driver, whose domains live in vinod's process.
pub const URI: &str = "test:///default";
const POLL: Duration = Duration::from_millis(50);
const LIMIT: Duration = Duration::from_secs(120);

struct Run {
    published: f64,
    ready: f64,
    requests: Counts,
}

/// Runs P2 `runs` times for each size in `sizes`; returns the table rows.
pub async fn run(env: &KubeEnv, vinod: &Path, sizes: &[u32], runs: usize) -> Vec<String> {
    env.namespace(NS).await;
    env.install_rbac(&[NS]).await;
    crate::warm_up(env).await;
    let admin = env.admin();
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": HOST, "labels": {LABEL: "true"}},
    }))
    .unwrap();
    let nodes: Api<Node> = Api::all(admin.clone());
    nodes.create(&PostParams::default(), &node).await.unwrap();
    nodes
        .patch_status(
            HOST,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"addresses": [
                {"type": "InternalIP", "address": "10.23.0.5"},
            ]}})),
        )
        .await
        .unwrap();

    let ns = NetNs::new("bench-p2");
    let port: u16 = env.server().rsplit(':').next().unwrap().parse().unwrap();
    forward_loopback(&ns.path(), port);
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper(dir.path().to_path_buf());
    let config = dir.path().join("vinod.toml");
    let text = config_text(dir.path(), URI, "vinod-bench-p2", "")
        .replace(
            "advertise_address = \"192.0.2.10\"",
            "advertise_address = \"\"",
        )
        .replace("level = \"debug\"", "level = \"info\"");
    std::fs::write(&config, text).unwrap();
    let log = dir.path().join("vinod.log");
    let out = std::fs::File::create(&log).unwrap();
    let _daemon = Daemon(
        Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .arg(vinod)
            .args(["run", "--config"])
            .arg(&config)
            .env("KUBECONFIG", env.kubeconfig(HOST))
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap(),
    );
    let began = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("\"pass done\"")
    {
        assert!(began.elapsed() < LIMIT, "vinod made no first pass");
        tokio::time::sleep(POLL).await;
    }

    let mut rows = Vec::new();
    for &n in sizes {
        let mut all = Vec::new();
        for i in 0..runs {
            let run = once(env, &format!("p2-{n}-{i}"), n).await;
            teardown(env, &format!("p2-{n}-{i}")).await;
            all.push(run);
        }
        let published: Vec<f64> = all.iter().map(|r| r.published).collect();
        let ready: Vec<f64> = all.iter().map(|r| r.ready).collect();
        let target = if n == 64 { "≤ 2 s" } else { "–" };
        rows.push(format!(
            "| P2 Vino created → {n} BareMetalHosts + {} Secrets published (real vinod, {runs} runs) | median {:.2} s ({}) | {target} |",
            n + 1,
            median(&published),
            seconds(&published)
        ));
        rows.push(format!(
            "| P2 Vino created → host's VinoNode Ready, {n} VMs | median {:.2} s ({}) | – |",
            median(&ready),
            seconds(&ready)
        ));
        let totals: Vec<String> = all.iter().map(|r| r.requests.total().to_string()).collect();
        rows.push(format!(
            "| P2 API requests by vinod until Ready, {n} VMs | {} (per run); the first: {} | – |",
            totals.join(", "),
            all[0].requests.summary()
        ));
    }
    rows
}

/// Creates Vino `name` with `n` VMs and waits for publication and the Ready entry.
async fn once(env: &KubeEnv, name: &str, n: u32) -> Run {
    let admin = env.admin();
    let vinos: Api<Vino> = Api::namespaced(admin.clone(), NS);
    let bmhs: Api<BareMetalHost> = Api::namespaced(admin.clone(), NS);
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), NS);
    let mine = ListParams::default().labels(&format!(
        "vino.airshipit.org/node={HOST},vino.airshipit.org/cr-name={name}"
    ));
    let own = Own::default();
    let before = Counts::scrape(env);
    let began = Instant::now();
    vinos
        .create(&PostParams::default(), &vino(name, n))
        .await
        .unwrap();
    own.add("vinoes", "POST");
    let (mut published, mut ready) = (None, None);
    while ready.is_none() || published.is_none() {
        assert!(
            began.elapsed() < LIMIT,
            "P2 {name}: not published and Ready within {LIMIT:?}"
        );
        tokio::time::sleep(POLL).await;
        if published.is_none() {
            let h = bmhs.list(&mine).await.unwrap().items.len();
            let s = secrets.list(&mine).await.unwrap().items.len();
            own.add("baremetalhosts", "LIST");
            own.add("secrets", "LIST");
            // One network-data Secret per VM and the host's credentials Secret.
            if h == n as usize && s == n as usize + 1 {
                published = Some(began.elapsed().as_secs_f64());
            }
        }
        if ready.is_none() {
            let v = vinos.get(name).await.unwrap();
            own.add("vinoes", "GET");
            let members = Api::<VinoNode>::namespaced(admin.clone(), NS)
                .list(&ListParams::default())
                .await
                .unwrap();
            own.add("vinonodes", "LIST");
            if ready_members(&v, &members.items, n) == 1 {
                ready = Some(began.elapsed().as_secs_f64());
            }
        }
    }
    let requests = Counts::scrape(env).since(&before).less(&own);
    Run {
        published: published.unwrap(),
        ready: ready.unwrap(),
        requests,
    }
}

/// Deletes Vino `name` and waits until vinod has torn it down and the Vino is gone.
async fn teardown(env: &KubeEnv, name: &str) {
    let vinos: Api<Vino> = Api::namespaced(env.admin(), NS);
    vinos.delete(name, &DeleteParams::default()).await.unwrap();
    let began = Instant::now();
    while vinos.get_opt(name).await.unwrap().is_some() {
        assert!(began.elapsed() < LIMIT, "P2 {name}: not torn down");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The Vino's removal wakes vinod's watch for one more pass after its debounce: the next
    // Vino must not ride on that pass, or its time would leave the debounce out.
    tokio::time::sleep(Duration::from_secs(2)).await;
}
