//! What the metal3 tests read: BareMetalHosts as metal3's CRD stores them, a host's status
//! for a Vino (its VinoNode), the Systems vinod's BMC serves (read with curl inside the host's
//! namespace, as Ironic reads them), and a timeline of the steps.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use kube::Client;
use kube::api::{Api, DynamicObject, ListParams};
use kube::discovery::ApiResource;
use serde_json::Value;

use super::bmo::Bmo;
use super::cluster::ClusterHost;
use super::cluster::until;
use super::kube_env::KubeEnv;

/// How long one metal3 step may take.
pub const LIMIT: Duration = Duration::from_secs(180);

/// The BareMetalHosts of namespace `ns`, as metal3's CRD stores them (not vinod's types).
pub async fn bmhs(admin: &Client, ns: &str) -> Vec<Value> {
    let resource = ApiResource {
        group: "metal3.io".into(),
        version: "v1alpha1".into(),
        api_version: "metal3.io/v1alpha1".into(),
        kind: "BareMetalHost".into(),
        plural: "baremetalhosts".into(),
    };
    Api::<DynamicObject>::namespaced_with(admin.clone(), ns, &resource)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|o| serde_json::to_value(o).unwrap())
        .collect()
}

/// The provisioning state BMO reported for `host` (empty before its first report).
pub fn state(host: &Value) -> &str {
    host["status"]["provisioning"]["state"]
        .as_str()
        .unwrap_or_default()
}

/// The name of `host`.
pub fn name(host: &Value) -> &str {
    host["metadata"]["name"].as_str().unwrap_or_default()
}

/// Waits until the BareMetalHosts of `ns` satisfy `done`, checking BMO is alive meanwhile.
pub async fn wait_bmhs(
    admin: &Client,
    ns: &str,
    bmo: &mut Bmo,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) {
    until(what, LIMIT, || {
        bmo.assert_running();
        async {
            let hosts = bmhs(admin, ns).await;
            if done(&hosts) {
                Ok(())
            } else {
                let states: Vec<String> = hosts
                    .iter()
                    .map(|h| format!("{}: {:?}", name(h), state(h)))
                    .collect();
                Err(format!("{states:?}"))
            }
        }
    })
    .await;
}

/// Host `node`'s status for Vino `ns/vino`, as its `VinoNode` (`<vino>.<node>`) carries it
/// (`Null` without one).
pub fn node_status(env: &KubeEnv, ns: &str, vino: &str, node: &str) -> Value {
    let name = format!("{vino}.{node}");
    let out = env
        .kubectl()
        .args(["get", "vinonode", "-n", ns, &name, "-o", "json"])
        .output()
        .expect("kubectl");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    v["spec"].clone()
}

/// The System ids vinod's BMC at `https://127.0.0.1:port` in `netns` serves to `user`: the
/// VMs that exist on the host, as Ironic sees them.
pub fn bmc_systems(netns: &Path, port: u16, user: &str) -> Vec<String> {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["curl", "-sk", "-m", "10", "-u", user])
        .arg(format!("https://127.0.0.1:{port}/redfish/v1/Systems"))
        .output()
        .expect("curl");
    let v: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|_| panic!("BMC answered {}", String::from_utf8_lossy(&out.stdout)));
    v["Members"]
        .as_array()
        .unwrap_or_else(|| panic!("no Members: {v}"))
        .iter()
        .filter_map(|m| m["@odata.id"].as_str())
        .filter_map(|id| id.rsplit('/').next())
        .map(str::to_string)
        .collect()
}

/// Waits until namespace `ns` holds no Vino (every finalizer let go).
pub async fn wait_vinos_gone(env: &KubeEnv, ns: &str) {
    until("the Vino gone", LIMIT, || async {
        let out = env.kubectl_ok(&["get", "vino", "-n", ns, "-o", "name"]);
        if out.trim().is_empty() {
            Ok(())
        } else {
            Err(out)
        }
    })
    .await;
}

/// Asserts Ironic's log holds no ERROR line.
pub fn assert_no_ironic_errors(log: &str) {
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert!(
        errors.is_empty(),
        "ERROR lines in Ironic's log:\n{}",
        errors.join("\n")
    );
}

/// Milestones since the Vino was applied.
pub struct Timeline {
    began: Instant,
    steps: Vec<(&'static str, Duration)>,
}

impl Timeline {
    /// A timeline starting now.
    pub fn start() -> Self {
        Timeline {
            began: Instant::now(),
            steps: Vec::new(),
        }
    }

    /// Records `step` as reached now.
    pub fn mark(&mut self, step: &'static str) {
        self.steps.push((step, self.began.elapsed()));
    }

    /// Prints the steps under `title`.
    pub fn print(&self, title: &str) {
        println!("{title}:");
        let mut last = Duration::ZERO;
        for (step, at) in &self.steps {
            println!(
                "  {step:<40} at {:>6.1} s  (+{:.1} s)",
                at.as_secs_f64(),
                (*at - last).as_secs_f64()
            );
            last = *at;
        }
    }
}

/// Makes `host` (Node `node`) serve its BMC on loopback at `port`, where the test's Ironic
/// reaches it and fetches virtual media from: the Node's annotation (the admission policy lets
/// a host publish a BMC address only as its Node says, as an operator does for a separate BMC
/// network) and the host's configuration. Call before the host starts.
pub async fn bmc_on_loopback(admin: &Client, node: &str, host: &ClusterHost, port: u16) {
    let nodes: Api<k8s_openapi::api::core::v1::Node> = Api::all(admin.clone());
    let annotation = serde_json::json!({"metadata": {"annotations": {
        "vino.airshipit.org/redfish-address": "127.0.0.1"
    }}});
    nodes
        .patch(
            node,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(annotation),
        )
        .await
        .unwrap();
    let config = host.dir().join("vinod.toml");
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "advertise_address = \"\"",
        &format!(
            "advertise_address = \"127.0.0.1\"\nport = {port}\nmedia_allow = [\"127.0.0.1/32\"]"
        ),
    );
    std::fs::write(&config, text).unwrap();
}
