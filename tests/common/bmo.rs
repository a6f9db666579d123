//! metal3's baremetal-operator (BMO) for tests: the pinned release `scripts/bmo-binary.sh`
//! builds, with metal3's real CRDs from the same source, run out of cluster against the test
//! API server and a test [`super::ironic::Ironic`] on 127.0.0.1 of a network namespace (no
//! webhook, no authentication towards Ironic, plain HTTP).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use super::kube_env::{KubeEnv, cached_path};

/// BMO's metrics and health ports (in the test's namespace).
const METRICS_PORT: u16 = 18481;
const HEALTH_PORT: u16 = 18482;

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
        crds.join("metal3.io_baremetalhosts.yaml").is_file(),
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
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", netns.display()))
            .arg(bin)
            .arg("--webhook-port=0")
            .arg(format!("--metrics-addr=127.0.0.1:{METRICS_PORT}"))
            .arg(format!("--health-addr=127.0.0.1:{HEALTH_PORT}"))
            .arg(format!("--namespace={ns}"))
            .arg("--dev")
            .env("KUBECONFIG", kubeconfig)
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
        }
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
