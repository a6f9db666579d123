//! The per-host bindings of `vinod-node-facts` (`vinod policy-bindings`) on a real API server,
//! over `packaging/rbac/` as shipped: each listed host's BareMetalHosts are checked against
//! its own Node by its own binding, a host not listed is still checked by the shipped binding,
//! and nothing a host may not publish gets through either way.

mod common;

use std::time::{Duration, Instant};

use common::kube_env::KubeEnv;
use kube::Client;
use kube::api::{Api, PostParams};
use serde_json::json;
use vinod::api::bmh::BareMetalHost;

const NS: &str = "lab";
const SELECTED: (&str, &str) = ("vino.airshipit.org/demo", "true");

/// Node `n`'s address: 10.0.0.1, 10.0.0.2, …
fn address(n: usize) -> String {
    format!("10.0.0.{}", n + 1)
}

/// A BareMetalHost `name` of host `node` whose BMC is at `ip`.
fn host(name: &str, node: &str, ip: &str) -> BareMetalHost {
    serde_json::from_value(json!({
        "apiVersion": "metal3.io/v1alpha1", "kind": "BareMetalHost",
        "metadata": {"name": name, "namespace": NS,
                     "labels": {"vino.airshipit.org/node": node}},
        "spec": {"bmc": {"address": format!("redfish+https://{ip}:8000/redfish/v1/Systems/x"),
                         "credentialsName": format!("{name}-credentials")},
                 "online": false}
    }))
    .unwrap()
}

/// Creates `h` as `client`; `Ok` or the refusing binding's name.
async fn create(client: &Client, h: &BareMetalHost) -> Result<(), String> {
    let api: Api<BareMetalHost> = Api::namespaced(client.clone(), NS);
    match api.create(&PostParams::default(), h).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 403 => {
            let binding = s
                .message
                .split("with binding '")
                .nth(1)
                .and_then(|rest| rest.split('\'').next())
                .unwrap_or_else(|| panic!("refused, but not by a policy: {}", s.message));
            Err(binding.to_string())
        }
        Err(e) => panic!("create {:?}: {e}", h.metadata.name),
    }
}

#[tokio::test]
async fn per_host_bindings_check_each_host_against_its_own_node() {
    let Some(env) = KubeEnv::start().await else {
        return;
    };
    env.namespace(NS).await;
    env.install_rbac(&[NS]).await;
    let nodes = ["node-a", "node-b", "node-c"];
    let mut clients = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        env.host_node(n, &address(i), &[SELECTED]).await;
        clients.push(env.node_client(n).await);
    }
    let [a, b, c] = [&clients[0], &clients[1], &clients[2]];

    // Bindings for node-a and node-b; node-c stays with the shipped one.
    let yaml =
        vinod::render::policy_bindings::bindings(&["node-a".into(), "node-b".into()]).unwrap();
    let file = env.dir().join("bindings.yaml");
    std::fs::write(&file, yaml).unwrap();
    env.kubectl_ok(&["apply", "-f", &file.display().to_string()]);

    // The server's informers take the new bindings a moment later: node-a's forged host is
    // refused by the shipped binding until its own one takes over.
    let began = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        let forged = host(&format!("probe-{n}"), "node-a", &address(1));
        match create(a, &forged).await {
            Err(binding) if binding == "vinod-node-facts.node-a" => break,
            Err(binding) if binding == "vinod-node-facts" => {}
            other => panic!("node-a publishing node-b's BMC: {other:?}"),
        }
        assert!(
            began.elapsed() < Duration::from_secs(30),
            "node-a's own binding never took over"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!("per-host binding in force after {:?}", began.elapsed());

    // Each listed host: its own BMC passes, another host's is refused by its own binding.
    for (i, (client, node)) in [(a, "node-a"), (b, "node-b")].into_iter().enumerate() {
        create(client, &host(&format!("{node}-ok"), node, &address(i)))
            .await
            .unwrap_or_else(|b| panic!("{node}'s own host refused by {b}"));
        let other = address(1 - i);
        assert_eq!(
            create(client, &host(&format!("{node}-forged"), node, &other)).await,
            Err(format!("vinod-node-facts.{node}")),
            "{node} publishing a BMC at {other}"
        );
    }
    // node-c, not listed: still checked, by the shipped binding.
    create(c, &host("node-c-ok", "node-c", &address(2)))
        .await
        .unwrap();
    assert_eq!(
        create(c, &host("node-c-forged", "node-c", &address(0))).await,
        Err("vinod-node-facts".to_string())
    );
    // A host that labels its host for another host is refused (by the node scope, or by the
    // shipped binding, which checks node-c's label against the writer's Node).
    let r = create(a, &host("node-a-as-c", "node-c", &address(2))).await;
    assert!(r.is_err(), "node-a published a host for node-c");
}
