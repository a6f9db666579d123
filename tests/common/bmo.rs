//! metal3's baremetal-operator (BMO) for tests: the pinned release `scripts/bmo-binary.sh`
//! builds, with metal3's real CRDs from the same source, run out of cluster against the test
//! API server and a test [`super::ironic::Ironic`] on 127.0.0.1 of a network namespace (no
//! authentication towards Ironic, plain HTTP), with its validating webhook for BareMetalHosts
//! registered in the API server ([`Bmo::admit`]).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use base64::Engine;
use serde_json::json;

use super::cluster::{forward_into, until};
use super::kube_env::{KubeEnv, cached_path};

/// BMO's metrics and health ports (in the host's namespace).
const METRICS_PORT: u16 = 18481;
const HEALTH_PORT: u16 = 18482;
/// BMO's webhook port, in the host's namespace and forwarded from the test's.
const WEBHOOK_PORT: u16 = 18483;

/// The BMO binary (`VINOD_BMO_BIN`, else the last line `scripts/bmo-binary.sh` prints), or
/// why it cannot be provided.
pub fn binary() -> Result<PathBuf, String> {
    let bin = cached_path("VINOD_BMO_BIN", "scripts/bmo-binary.sh")?;
    if bin.is_file() {
        Ok(bin)
    } else {
        Err(format!("{} is not a file", bin.display()))
    }
}

/// Replaces vinod's BareMetalHost CRD subset with metal3's real CRDs (the `crds/` directory
/// the script installs next to `bin`) and waits until they are Established.
pub fn install_crds(env: &KubeEnv, bin: &Path) {
    let crds = bin.parent().expect("BMO directory").join("crds");
    assert!(
        crds.join("metal3.io_baremetalhosts.yaml").is_file()
            && crds.join("metal3.io_hardwaredata.yaml").is_file(),
        "no metal3 CRDs in {}",
        crds.display()
    );
    let crds = crds.display().to_string();
    env.kubectl_ok(&["apply", "--server-side", "--force-conflicts", "-f", &crds]);
    env.kubectl_ok(&[
        "wait",
        "--for=condition=Established",
        "--timeout=60s",
        "-f",
        &crds,
    ]);
}

/// A running BMO; killed on drop (its log printed if the test is failing).
pub struct Bmo {
    child: Child,
    log: PathBuf,
    cert: PathBuf,
    netns: PathBuf,
}

impl Bmo {
    /// Starts BMO in the namespace at `netns`, watching Kubernetes namespace `ns` through
    /// `kubeconfig` and driving the Ironic on 127.0.0.1:6385 there; its files go to `dir`.
    pub fn start(bin: &Path, netns: &Path, kubeconfig: &Path, ns: &str, dir: &Path) -> Bmo {
        let auth = dir.join("auth");
        std::fs::create_dir_all(&auth).unwrap();
        let log = dir.join("bmo.log");
        let file = std::fs::File::create(&log).unwrap();
        let absent = dir.join("absent");
        // The webhook server's certificate, where controller-runtime looks by default.
        let certs = dir.join("tmp/k8s-webhook-server/serving-certs");
        std::fs::create_dir_all(&certs).unwrap();
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=baremetal-operator-webhook"])
            .args(["-addext", "subjectAltName=IP:127.0.0.1"])
            .arg("-keyout")
            .arg(certs.join("tls.key"))
            .arg("-out")
            .arg(certs.join("tls.crt"))
            .output()
            .expect("run openssl");
        assert!(made.status.success(), "openssl: {made:?}");
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", netns.display()))
            .arg(bin)
            .arg(format!("--webhook-port={WEBHOOK_PORT}"))
            .arg(format!("--metrics-addr=127.0.0.1:{METRICS_PORT}"))
            .arg(format!("--health-addr=127.0.0.1:{HEALTH_PORT}"))
            .arg(format!("--namespace={ns}"))
            .arg("--dev")
            .env("KUBECONFIG", kubeconfig)
            .env("TMPDIR", dir.join("tmp"))
            .env("IRONIC_ENDPOINT", "http://127.0.0.1:6385/v1/")
            // An empty directory: no credentials towards Ironic.
            .env("METAL3_AUTH_ROOT_DIR", &auth)
            // Files that do not exist: plain HTTP towards Ironic.
            .env("IRONIC_CACERT_FILE", absent.join("ca.crt"))
            .env("IRONIC_CLIENT_CERT_FILE", absent.join("tls.crt"))
            .env("IRONIC_CLIENT_PRIVATE_KEY_FILE", absent.join("tls.key"))
            .env("WATCH_NAMESPACE", ns)
            .env("POD_NAMESPACE", ns)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file);
        Bmo {
            child: cmd.spawn().expect("start baremetal-operator"),
            log,
            cert: certs.join("tls.crt"),
            netns: netns.to_path_buf(),
        }
    }

    /// Has the API server send every BareMetalHost create and update to BMO's validating
    /// webhook (as metal3's deployment does), and waits until it answers: a host with a BMC
    /// driver nobody knows (which the CRD's schema lets through) must be refused by BMO.
    pub async fn admit(&self, env: &KubeEnv, ns: &str) {
        forward_into(&self.netns, WEBHOOK_PORT);
        let ca = base64::engine::general_purpose::STANDARD
            .encode(std::fs::read(&self.cert).expect("webhook certificate"));
        let config = json!({
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingWebhookConfiguration",
            "metadata": {"name": "baremetal-operator"},
            "webhooks": [{
                "name": "baremetalhost.metal3.io",
                "admissionReviewVersions": ["v1", "v1beta"],
                "clientConfig": {
                    "url": format!(
                        "https://127.0.0.1:{WEBHOOK_PORT}/validate-metal3-io-v1alpha1-baremetalhost"
                    ),
                    "caBundle": ca,
                },
                "failurePolicy": "Fail",
                "sideEffects": "None",
                "rules": [{
                    "apiGroups": ["metal3.io"], "apiVersions": ["v1alpha1"],
                    "operations": ["CREATE", "UPDATE"], "resources": ["baremetalhosts"],
                }],
            }],
        });
        let file = self.log.with_file_name("webhook.json");
        std::fs::write(&file, config.to_string()).unwrap();
        env.kubectl_ok(&["apply", "-f", &file.display().to_string()]);
        let probe = json!({
            "apiVersion": "metal3.io/v1alpha1", "kind": "BareMetalHost",
            "metadata": {"name": "webhook-probe", "namespace": ns},
            "spec": {"online": false, "bmc": {
                "address": "no-such-driver://127.0.0.1", "credentialsName": "none",
            }},
        });
        let probe_file = self.log.with_file_name("probe.json");
        std::fs::write(&probe_file, probe.to_string()).unwrap();
        let probe_file = probe_file.display().to_string();
        until(
            "BMO's webhook answering",
            Duration::from_secs(60),
            || async {
                let out = env
                    .kubectl()
                    .args(["create", "--dry-run=server", "-f", &probe_file])
                    .output()
                    .expect("kubectl");
                let err = String::from_utf8_lossy(&out.stderr).into_owned();
                if !out.status.success()
                    && err.contains("admission webhook")
                    && err.contains("no-such-driver")
                {
                    Ok(())
                } else {
                    Err(format!("{:?}: {err}", out.status))
                }
            },
        )
        .await;
    }

    /// BMO's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics (with its log) if BMO has exited.
    pub fn assert_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("baremetal-operator exited ({status}):\n{}", self.log());
        }
    }
}

impl Drop for Bmo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let log = self.log();
            let tail: Vec<&str> = log.lines().rev().take(80).collect();
            eprintln!("---- baremetal-operator log (last 80 lines) ----");
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}
