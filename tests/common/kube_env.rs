//! A real Kubernetes control plane for tests, in the spirit of controller-runtime's envtest:
//! etcd and kube-apiserver on loopback (`scripts/k8s-test-env.sh`), with vinod's CRDs and
//! metal3's real BareMetalHost and HardwareData CRDs (from `scripts/bmo-binary.sh`'s cache)
//! installed and Established, an admin client and clients for per-host identities. Dropping
//! the environment stops both processes and removes their directory.
//!
//! Host identities follow the mapping the shipped admission policy uses: host `<node>` is user
//! `vinod-<node>` in group `vinod:nodes`. `node-a` and `node-b` use the bearer tokens the start
//! script makes; any other host gets a client certificate signed by the test CA.
//!
//! [`KubeEnv::start`] returns `None` after [`super::prereq::skip`] when the binaries cannot be
//! provided (`scripts/k8s-test-binaries.sh` fails, e.g. without Go) or openssl is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, Secret};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// The host the admission policies are probed as (it has a Node only while probing).
const PROBE: &str = "policy-probe";

/// Where the repository is.
pub fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

const ESTABLISHED_TIMEOUT: Duration = Duration::from_secs(60);
const START_ATTEMPTS: usize = 2;

/// A running etcd + kube-apiserver with vinod's CRDs.
pub struct KubeEnv {
    dir: tempfile::TempDir,
    bin: PathBuf,
    admin: Client,
}

impl KubeEnv {
    /// Starts a fresh control plane, installs vinod's CRDs (`packaging/crd/*.yaml`) and
    /// metal3's BareMetalHost and HardwareData CRDs and waits until every CRD is Established.
    /// Without metal3's CRDs (BMO cannot be built here) vinod's BareMetalHost subset stands in,
    /// with a printed note; under CI that fails instead. `None` (after printing why) when the binaries are not available here.
    /// Panics if the binaries are there but the control plane does not come up.
    pub async fn start() -> Option<KubeEnv> {
        if Command::new("openssl").arg("version").output().is_err() {
            super::prereq::skip("openssl is not installed");
            return None;
        }
        let bin = match binaries() {
            Ok(b) => b,
            Err(why) => {
                super::prereq::skip(format!("no Kubernetes test binaries: {why}"));
                return None;
            }
        };
        let metal3 = match super::bmo::binary() {
            Ok(bmo) => Some(bmo.parent().expect("BMO directory").join("crds")),
            Err(why) => {
                let why = format!("metal3's CRDs are not available here: {why}");
                assert!(
                    !super::prereq::in_ci(),
                    "a prerequisite is missing under CI=true: {why}"
                );
                eprintln!("NOTE {why}; vinod's BareMetalHost subset stands in for them");
                None
            }
        };
        let mut last = String::new();
        for _ in 0..START_ATTEMPTS {
            let dir = tempfile::Builder::new()
                .prefix("vinod-kube-")
                .tempdir()
                .expect("temporary directory");
            let out = Command::new(repo().join("scripts/k8s-test-env.sh"))
                .arg("start")
                .arg(dir.path())
                .env("VINOD_K8S_BIN", &bin)
                .stdin(Stdio::null())
                .output()
                .expect("run scripts/k8s-test-env.sh");
            if out.status.success() {
                let admin = client_from(&dir.path().join("kubeconfig")).await;
                let env = KubeEnv { dir, bin, admin };
                env.install_crds(metal3.as_deref()).await;
                return Some(env);
            }
            // A port picked as free may have been taken meanwhile: try once more.
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            stop(dir.path());
        }
        panic!("the Kubernetes test environment did not start:\n{last}");
    }

    /// The environment's directory (kubeconfigs, `pki/ca.crt`, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client for the admin (group `system:masters`).
    pub fn admin(&self) -> Client {
        self.admin.clone()
    }

    /// A client for host `node`'s identity: user `vinod-<node>`, group `vinod:nodes`.
    pub async fn node_client(&self, node: &str) -> Client {
        client_from(&self.kubeconfig(node)).await
    }

    /// The kubeconfig of host `node` (made on first use for hosts other than `node-a` and
    /// `node-b`, with a client certificate).
    pub fn kubeconfig(&self, node: &str) -> PathBuf {
        let user = format!("vinod-{node}");
        let path = self.dir().join(format!("kubeconfig-{user}"));
        if !path.exists() {
            self.issue_certificate(&user, &path);
        }
        path
    }

    /// `kubectl` as the admin.
    pub fn kubectl(&self) -> Command {
        self.kubectl_with(&self.dir().join("kubeconfig"))
    }

    /// The `kubectl` binary.
    pub fn kubectl_path(&self) -> PathBuf {
        self.bin.join("kubectl")
    }

    /// The admin's kubeconfig.
    pub fn admin_kubeconfig(&self) -> PathBuf {
        self.dir().join("kubeconfig")
    }

    /// `kubectl` as host `node`.
    pub fn kubectl_as(&self, node: &str) -> Command {
        self.kubectl_with(&self.kubeconfig(node))
    }

    fn kubectl_with(&self, kubeconfig: &Path) -> Command {
        let mut c = Command::new(self.bin.join("kubectl"));
        c.arg("--kubeconfig").arg(kubeconfig).stdin(Stdio::null());
        c
    }

    /// Runs `kubectl` as the admin and panics unless it succeeds; returns stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl().args(args).output().expect("run kubectl");
        assert_ok(&out, &format!("kubectl {}", args.join(" ")));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates namespace `name`.
    pub async fn namespace(&self, name: &str) {
        let api: Api<Namespace> = Api::all(self.admin());
        let ns: Namespace = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}
        }))
        .expect("namespace");
        api.create(&PostParams::default(), &ns)
            .await
            .unwrap_or_else(|e| panic!("create namespace {name}: {e}"));
    }

    /// The holder of host `node`'s IP claims: its Node, created (unlabelled, without
    /// addresses) if it does not exist yet.
    pub async fn holder(&self, node: &str) -> vinod::kube::claims::Holder {
        holder(&self.admin(), node).await
    }

    /// Node `name` of a host that publishes (labels `labels`, InternalIP `ip`, the BMC address
    /// the admission policy accepts for it), created if it does not exist yet; its holder.
    pub async fn host_node(
        &self,
        name: &str,
        ip: &str,
        labels: &[(&str, &str)],
    ) -> vinod::kube::claims::Holder {
        let api: Api<Node> = Api::all(self.admin());
        let labels: std::collections::BTreeMap<&str, &str> = labels.iter().copied().collect();
        let n: Node = serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": name, "labels": labels}
        }))
        .expect("node");
        match api.create(&PostParams::default(), &n).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => panic!("create Node {name}: {e}"),
        }
        let status =
            serde_json::json!({"status": {"addresses": [{"type": "InternalIP", "address": ip}]}});
        api.patch_status(name, &PatchParams::default(), &Patch::Merge(status))
            .await
            .unwrap_or_else(|e| panic!("Node {name} addresses: {e}"));
        holder(&self.admin(), name).await
    }

    /// Applies every manifest of `packaging/rbac/` unchanged (the ClusterRoles, their binding
    /// to group `vinod:nodes` and the service account `vinod-system/vinod`, the admission policy
    /// and its binding), binds `vinod-node-objects` in each of `namespaces` as
    /// `docs/kubernetes.md` says, and waits until the policy is enforced there.
    pub async fn install_rbac(&self, namespaces: &[&str]) {
        let dir = repo().join("packaging/rbac");
        self.kubectl_ok(&["apply", "-f", &dir.display().to_string()]);
        for ns in namespaces {
            self.kubectl_ok(&[
                "create",
                "rolebinding",
                "vinod-node-objects",
                "--clusterrole=vinod-node-objects",
                "--group=vinod:nodes",
                "--serviceaccount=vinod-system:vinod",
                "-n",
                ns,
            ]);
        }
        // The authorizer and the policy take effect once the server's informers see them: probe
        // with a write the policy denies (a host writing another host's Secret) until it does.
        let client = self.node_client("node-a").await;
        for ns in namespaces {
            let api: Api<Secret> = Api::namespaced(client.clone(), ns);
            let probe: Secret = serde_json::from_value(serde_json::json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "policy-probe", "labels": {"vino.airshipit.org/node": "probe"}}
            }))
            .expect("probe");
            let dry_run = PostParams {
                dry_run: true,
                ..Default::default()
            };
            let deadline = Instant::now() + ESTABLISHED_TIMEOUT;
            loop {
                match api.create(&dry_run, &probe).await {
                    Err(kube::Error::Api(s)) if s.message.contains("ValidatingAdmissionPolicy") => {
                        break;
                    }
                    other => assert!(
                        Instant::now() < deadline,
                        "the admission policy is not enforced in {ns}: {other:?}"
                    ),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            // The policy that checks writes against the host's Node (a Node of its own for the
            // probe, without addresses): the probe's own BareMetalHost, whose BMC cannot be on
            // one of them.
            holder(&self.admin(), PROBE).await;
            let probe_api: Api<vinod::api::bmh::BareMetalHost> =
                Api::namespaced(self.node_client(PROBE).await, ns);
            let own: vinod::api::bmh::BareMetalHost = serde_json::from_value(serde_json::json!({
                "apiVersion": "metal3.io/v1alpha1", "kind": "BareMetalHost",
                "metadata": {"name": "policy-probe",
                             "labels": {"vino.airshipit.org/node": PROBE}},
                "spec": {"bmc": {"address": "redfish+https://192.0.2.1:8000/redfish/v1/Systems/p",
                                 "credentialsName": "policy-probe-credentials"},
                         "online": false}
            }))
            .expect("probe host");
            let deadline = Instant::now() + ESTABLISHED_TIMEOUT;
            loop {
                match probe_api.create(&dry_run, &own).await {
                    Err(kube::Error::Api(s)) if s.message.contains("vinod-node-facts") => break,
                    other => assert!(
                        Instant::now() < deadline,
                        "the node facts policy is not enforced in {ns}: {other:?}"
                    ),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Api::<Node>::all(self.admin())
            .delete(PROBE, &Default::default())
            .await
            .expect("delete the probe's Node");
    }

    /// The API server's URL.
    pub fn server(&self) -> String {
        let admin = std::fs::read_to_string(self.dir().join("kubeconfig")).expect("kubeconfig");
        admin
            .lines()
            .find_map(|l| l.trim().strip_prefix("server: "))
            .expect("server in kubeconfig")
            .to_string()
    }

    /// Stops kube-apiserver (etcd keeps running, with everything stored).
    pub fn stop_apiserver(&self) {
        self.script("stop-apiserver");
    }

    /// Starts kube-apiserver again on the same port with the same flags and data; returns
    /// once it is ready.
    pub fn start_apiserver(&self) {
        self.script("start-apiserver");
    }

    /// Starts the garbage collector (kube-controller-manager with only that controller), as in
    /// a cluster: objects whose owners are gone are deleted.
    pub fn start_gc(&self) {
        self.script("start-gc");
    }

    fn script(&self, command: &str) {
        let out = Command::new(repo().join("scripts/k8s-test-env.sh"))
            .arg(command)
            .arg(self.dir())
            .stdin(Stdio::null())
            .output()
            .expect("run scripts/k8s-test-env.sh");
        assert_ok(&out, &format!("k8s-test-env.sh {command}"));
    }

    /// A client authenticating with a bearer `token` (e.g. a service account's).
    pub fn token_client(&self, token: &str) -> Client {
        let mut config = Config::new(self.server().parse().expect("server URL"));
        config.root_cert_file = Some(self.dir().join("pki/ca.crt"));
        config.auth_info.token = Some(token.to_string().into());
        Client::try_from(config).expect("kube client")
    }

    /// Installs vinod's CRDs and, from `metal3` (metal3's CRD directory), the real
    /// BareMetalHost and HardwareData CRDs in place of vinod's BareMetalHost subset.
    async fn install_crds(&self, metal3: Option<&Path>) {
        let api: Api<CustomResourceDefinition> = Api::all(self.admin());
        let mut names = Vec::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("packaging/crd"))
            .expect("packaging/crd")
            .map(|e| e.expect("entry").path())
            .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
            .filter(|p| metal3.is_none() || !p.ends_with("metal3.io_baremetalhosts.yaml"))
            .collect();
        files.sort();
        if let Some(dir) = metal3 {
            files.push(dir.join("metal3.io_baremetalhosts.yaml"));
            files.push(dir.join("metal3.io_hardwaredata.yaml"));
        }
        for file in files {
            let text = std::fs::read_to_string(&file).expect("read CRD");
            let crd: CustomResourceDefinition =
                serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let name = crd.metadata.name.clone().expect("CRD name");
            api.patch(
                &name,
                &PatchParams::apply("vinod-tests").force(),
                &Patch::Apply(&crd),
            )
            .await
            .unwrap_or_else(|e| panic!("install {}: {e}", file.display()));
            names.push(name);
        }
        let deadline = Instant::now() + ESTABLISHED_TIMEOUT;
        for name in names {
            loop {
                let crd = api.get(&name).await.expect("get CRD");
                let established = crd
                    .status
                    .and_then(|s| s.conditions)
                    .unwrap_or_default()
                    .iter()
                    .any(|c| c.type_ == "Established" && c.status == "True");
                if established {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "CRD {name} not Established within {ESTABLISHED_TIMEOUT:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    fn issue_certificate(&self, user: &str, kubeconfig: &Path) {
        let pki = self.dir().join("pki");
        let key = pki.join(format!("{user}.key"));
        let csr = pki.join(format!("{user}.csr"));
        let crt = pki.join(format!("{user}.crt"));
        let ext = pki.join(format!("{user}.ext"));
        std::fs::write(
            &ext,
            "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n",
        )
        .expect("write extensions");
        let subject = format!("/CN={user}/O=vinod:nodes");
        let mut request = Command::new("openssl");
        request
            // P-256 rather than RSA: key generation takes milliseconds, so tests and benchmarks
            // can give many hosts their own identity.
            .args(["req", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&csr)
            .args(["-subj", &subject]);
        let mut sign = Command::new("openssl");
        sign.args(["x509", "-req", "-in"])
            .arg(&csr)
            .arg("-CA")
            .arg(pki.join("ca.crt"))
            .arg("-CAkey")
            .arg(pki.join("ca.key"))
            .args(["-CAcreateserial", "-days", "2", "-sha256", "-extfile"])
            .arg(&ext)
            .arg("-out")
            .arg(&crt);
        for mut step in [request, sign] {
            let out = step.output().expect("run openssl");
            assert_ok(&out, "openssl");
        }
        let server = self.server();
        let text = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: vinod-test\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\nusers:\n- name: {user}\n  user:\n    client-certificate: {crt}\n    client-key: {key}\ncontexts:\n- name: {user}@vinod-test\n  context:\n    cluster: vinod-test\n    user: {user}\n    namespace: default\ncurrent-context: {user}@vinod-test\n",
            ca = pki.join("ca.crt").display(),
            crt = crt.display(),
            key = key.display(),
        );
        std::fs::write(kubeconfig, text).expect("write kubeconfig");
    }
}

impl Drop for KubeEnv {
    fn drop(&mut self) {
        stop(self.dir.path());
    }
}

fn stop(dir: &Path) {
    let out = Command::new(repo().join("scripts/k8s-test-env.sh"))
        .arg("stop")
        .arg(dir)
        .stdin(Stdio::null())
        .output();
    if let Ok(out) = out
        && !out.status.success()
    {
        eprintln!(
            "stopping the test control plane in {} failed: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The bin directory from `scripts/k8s-test-binaries.sh` (or `VINOD_K8S_BIN`).
fn binaries() -> Result<PathBuf, String> {
    let dir = cached_path("VINOD_K8S_BIN", "scripts/k8s-test-binaries.sh")?;
    if dir.join("kube-apiserver").exists() {
        Ok(dir)
    } else {
        Err(format!("{} has no kube-apiserver", dir.display()))
    }
}

/// `$var` when set, else the path the caching build script `script` (relative to the
/// repository) prints last; or why it cannot be provided.
pub fn cached_path(var: &str, script: &str) -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os(var) {
        return Ok(PathBuf::from(path));
    }
    let out = Command::new(repo().join(script))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| e.to_string())?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(err.lines().last().unwrap_or("failed").to_string());
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    Ok(PathBuf::from(stdout.lines().last().unwrap_or("").trim()))
}

async fn client_from(kubeconfig: &Path) -> Client {
    let kc = Kubeconfig::read_from(kubeconfig)
        .unwrap_or_else(|e| panic!("{}: {e}", kubeconfig.display()));
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{}: {e}", kubeconfig.display()));
    Client::try_from(config).expect("kube client")
}

/// Panics with the command's output unless it succeeded.
pub fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The holder of host `node`'s IP claims: its Node, created (unlabelled, without addresses)
/// by `admin` if it does not exist yet.
pub async fn holder(admin: &Client, node: &str) -> vinod::kube::claims::Holder {
    let api: Api<Node> = Api::all(admin.clone());
    let n: Node = serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Node", "metadata": {"name": node}
    }))
    .expect("node");
    match api.create(&PostParams::default(), &n).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("create Node {node}: {e}"),
    }
    vinod::kube::claims::Holder::read(admin, node)
        .await
        .unwrap_or_else(|e| panic!("read Node {node}: {e}"))
}
