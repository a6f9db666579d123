//! vinod hosts in cluster mode for tests: each a `vinod run` child process in a network
//! namespace (its own, or the one a test libvirtd runs in) with its own Node name and host
//! identity, talking to the test API server through a loopback forwarder.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Node;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};
use nix::sched::{CloneFlags, setns};
use serde_json::json;

use super::host::{Daemon, NetNs, Reaper, config_text};
use super::kube_env::KubeEnv;
use super::libvirtd::Libvirtd;

/// The Node label the tests' Vinos select.
pub const LABEL: &str = "vino.airshipit.org/host";

/// A lab for one host on real libvirt: a libvirtd this test started (in its own network
/// namespace, returned with it) and an API server with namespace `ns` and the shipped RBAC.
/// `None`, after printing why, when it cannot run here.
pub async fn real_lab(ns: &str) -> Option<(Libvirtd, PathBuf, KubeEnv)> {
    if let Some(why) = super::host::skip_reason() {
        super::prereq::skip(why);
        return None;
    }
    let h = Libvirtd::start()?;
    let Some(netns) = h
        .netns()
        .map(|p| p.to_path_buf())
        .filter(|_| h.owns_daemon())
    else {
        super::prereq::skip("a libvirtd already runs here; this test needs its own");
        return None;
    };
    let env = KubeEnv::start().await?;
    env.namespace(ns).await;
    env.install_rbac(&[ns]).await;
    Some((h, netns, env))
}

/// Polls `check` every 250 ms until it succeeds; panics with its last error after `limit`.
pub async fn until<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let began = Instant::now();
    let mut last = String::new();
    while began.elapsed() < limit {
        match check().await {
            Ok(()) => return,
            Err(e) => last = e,
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("{what}: not within {limit:?}: {last}");
}

/// Makes `127.0.0.1:port` inside the namespace at `netns` reach `127.0.0.1:port` of the test's
/// namespace (where the API server listens), one thread per connection, for the test's
/// lifetime.
pub fn forward_loopback(netns: &Path, port: u16) {
    let path = netns.to_path_buf();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let home = std::fs::File::open("/proc/thread-self/ns/net").expect("own netns");
        let inside = std::fs::File::open(&path).expect("netns");
        setns(inside.as_fd(), CloneFlags::CLONE_NEWNET).expect("enter netns");
        let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind in netns");
        setns(home.as_fd(), CloneFlags::CLONE_NEWNET).expect("back home");
        ready_tx.send(()).unwrap();
        for conn in listener.incoming().flatten() {
            let Ok(up) = TcpStream::connect(("127.0.0.1", port)) else {
                continue;
            };
            pipe(conn.try_clone().unwrap(), up.try_clone().unwrap());
            pipe(up, conn);
        }
    });
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("forwarder ready");
}

/// Makes `127.0.0.1:port` of the test's namespace (where the API server runs) reach
/// `127.0.0.1:port` inside the namespace at `netns`, one thread per connection, for the test's
/// lifetime.
pub fn forward_into(netns: &Path, port: u16) {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind forwarder");
    let path = netns.to_path_buf();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let path = path.clone();
            std::thread::spawn(move || {
                let inside = std::fs::File::open(&path).expect("netns");
                setns(inside.as_fd(), CloneFlags::CLONE_NEWNET).expect("enter netns");
                let Ok(down) = TcpStream::connect(("127.0.0.1", port)) else {
                    return;
                };
                pipe(conn.try_clone().unwrap(), down.try_clone().unwrap());
                pipe(down, conn);
            });
        }
    });
}

fn pipe(mut from: TcpStream, to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to.try_clone().unwrap());
        let _ = to.shutdown(std::net::Shutdown::Write);
    });
}

/// A TCP listener on `addr` inside the namespace at `netns` (usable from any thread).
pub fn listen_in(netns: &Path, addr: std::net::SocketAddr) -> TcpListener {
    let path = netns.to_path_buf();
    std::thread::spawn(move || {
        let inside = std::fs::File::open(&path).expect("netns");
        setns(inside.as_fd(), CloneFlags::CLONE_NEWNET).expect("enter netns");
        TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr} in netns: {e}"))
    })
    .join()
    .expect("bind thread")
}

/// Creates Node `name` with `InternalIP` `ip`, labelled with [`LABEL`]`=true` if `labelled`.
pub async fn create_node(admin: &Client, name: &str, ip: &str, labelled: bool) {
    let labels = if labelled {
        json!({LABEL: "true"})
    } else {
        json!({})
    };
    let node: Node = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Node",
        "metadata": {"name": name, "labels": labels},
    }))
    .unwrap();
    let nodes: Api<Node> = Api::all(admin.clone());
    nodes.create(&PostParams::default(), &node).await.unwrap();
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"status": {"addresses": [
                {"type": "Hostname", "address": name},
                {"type": "ExternalIP", "address": "203.0.113.9"},
                {"type": "InternalIP", "address": ip},
            ]}})),
        )
        .await
        .unwrap();
}

/// Sets or removes [`LABEL`] on Node `name`.
pub async fn label_node(admin: &Client, name: &str, on: bool) {
    let value = if on { json!("true") } else { json!(null) };
    Api::<Node>::all(admin.clone())
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {LABEL: value}}})),
        )
        .await
        .unwrap();
}

/// One vinod host. Dropping it kills the daemon, then the dnsmasq it left running, then
/// deletes its namespace (when it made one) and its directory.
pub struct ClusterHost {
    /// The Node name.
    pub name: String,
    daemon: Option<Daemon>,
    _reaper: Reaper,
    own_ns: Option<NetNs>,
    netns_name: String,
    netns_path: PathBuf,
    kubeconfig: PathBuf,
    dir: tempfile::TempDir,
}

impl ClusterHost {
    /// Host `name` in a network namespace of its own, on libvirt `uri`, with `extra` lines at
    /// the top of its configuration.
    pub fn new(env: &KubeEnv, name: &str, uri: &str, extra: &str) -> ClusterHost {
        let ns = NetNs::new(name);
        let path = ns.path();
        Self::build(env, name, uri, extra, Some(ns), &path)
    }

    /// Host `name` in the existing namespace at `netns` (e.g. a test libvirtd's).
    pub fn in_netns(
        env: &KubeEnv,
        name: &str,
        uri: &str,
        extra: &str,
        netns: &Path,
    ) -> ClusterHost {
        Self::build(env, name, uri, extra, None, netns)
    }

    fn build(
        env: &KubeEnv,
        name: &str,
        uri: &str,
        extra: &str,
        own_ns: Option<NetNs>,
        netns: &Path,
    ) -> ClusterHost {
        let port: u16 = env
            .server()
            .rsplit(':')
            .next()
            .unwrap()
            .parse()
            .expect("API port");
        forward_loopback(netns, port);
        let dir = tempfile::Builder::new()
            .prefix(&format!("vinod-{name}-"))
            .tempdir()
            .unwrap();
        let pool = format!("vinod-{name}");
        let text = config_text(dir.path(), uri, &pool, "")
            .replace("node_name = \"host-a\"", &format!("node_name = \"{name}\""))
            .replace(
                "advertise_address = \"192.0.2.10\"",
                "advertise_address = \"\"",
            )
            .replace(
                "[dhcp]\n",
                &format!(
                    "[metrics]\nlisten = \"{}\"\n[dhcp]\n",
                    super::census::METRICS
                ),
            );
        std::fs::write(dir.path().join("vinod.toml"), format!("{extra}\n{text}")).unwrap();
        let netns_name = netns.file_name().unwrap().to_string_lossy().into_owned();
        ClusterHost {
            name: name.to_string(),
            daemon: None,
            _reaper: Reaper(dir.path().to_path_buf()),
            own_ns,
            netns_name,
            netns_path: netns.to_path_buf(),
            kubeconfig: env.kubeconfig(name),
            dir,
        }
    }

    /// Adds `line` to the `[dhcp]` table of the configuration (the file's last table).
    pub fn add_dhcp_setting(&self, line: &str) {
        let path = self.dir().join("vinod.toml");
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str(line);
        text.push('\n');
        std::fs::write(&path, text).unwrap();
    }

    /// The name of the host's network namespace (for `ip netns exec`).
    pub fn netns_name(&self) -> &str {
        &self.netns_name
    }

    /// Starts `vinod run` (cluster mode) with `envs` added to its environment; its output goes
    /// to [`ClusterHost::log`].
    pub fn start(&mut self, envs: &[(&str, &str)]) {
        assert!(self.daemon.is_none(), "{} already runs", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir().join("vinod.log"))
            .unwrap();
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &self.netns_name,
            env!("CARGO_BIN_EXE_vinod"),
        ])
        .arg("run")
        .arg("--config")
        .arg(self.dir().join("vinod.toml"))
        .env("KUBECONFIG", &self.kubeconfig)
        .env("RUST_LOG", "info,vinod::daemon::watches=debug")
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log);
        self.daemon = Some(Daemon(cmd.spawn().unwrap()));
    }

    /// The daemon's exit status once it has exited by itself (it is then reaped).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        let status = self.daemon.as_mut()?.0.try_wait().unwrap()?;
        self.daemon = None;
        Some(status)
    }

    /// Whether the daemon process is still running.
    pub fn running(&mut self) -> bool {
        match &mut self.daemon {
            Some(d) => d.0.try_wait().unwrap().is_none(),
            None => false,
        }
    }

    /// Kills the daemon (SIGKILL) and reaps it; dnsmasq and the VMs stay.
    pub fn kill(&mut self) {
        self.daemon = None;
    }

    /// The host's directory (config, state, run, pool, log).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The host's network namespace.
    pub fn netns(&self) -> &Path {
        &self.netns_path
    }

    /// Everything the daemon has logged so far.
    pub fn log(&self) -> String {
        let mut s = String::new();
        let _ = std::fs::File::open(self.dir().join("vinod.log"))
            .and_then(|mut f| f.read_to_string(&mut s));
        s
    }

    /// Whether link `name` exists in the host's namespace.
    pub fn bridge_exists(&self, name: &str) -> bool {
        Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.netns_name,
                "ip",
                "link",
                "show",
                name,
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    /// The pids of the dnsmasq processes this host's daemon started.
    pub fn dnsmasq_pids(&self) -> Vec<i32> {
        let needle = self.dir().display().to_string();
        let mut pids = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let cmd = String::from_utf8_lossy(&cmd);
            if cmd.contains("dnsmasq") && cmd.contains(&needle) {
                pids.push(pid);
            }
        }
        pids
    }

    /// What the daemon's status socket reports, if it answers.
    pub fn snapshot(&self) -> Option<vinod::daemon::status_socket::Snapshot> {
        let socket = self
            .dir()
            .join("run")
            .join(vinod::daemon::status_socket::SOCKET);
        vinod::daemon::status_socket::fetch(&socket).ok()
    }

    /// What `vinod status` prints for this host.
    pub fn status_text(&self) -> String {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vinod"))
            .arg("status")
            .arg("--config")
            .arg(self.dir().join("vinod.toml"))
            .output()
            .expect("vinod status");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Prints the daemon's log if the test is failing (call from a guard's drop).
    fn dump_on_panic(&self) {
        if std::thread::panicking() {
            eprintln!("---- {} log ----\n{}", self.name, self.log());
        }
    }
}

impl Drop for ClusterHost {
    fn drop(&mut self) {
        self.dump_on_panic();
        self.daemon = None;
    }
}

/// The IP claims (`VinoPoolClaim`s) `node` holds, or every host's with `None`.
pub async fn claims_of(
    admin: &Client,
    node: Option<&str>,
) -> Vec<vinod::api::pool_claim::VinoPoolClaim> {
    Api::<vinod::api::pool_claim::VinoPoolClaim>::all(admin.clone())
        .list(&Default::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|o| node.is_none_or(|n| o.spec.node == n))
        .collect()
}

/// How many networks of Vinos `node` holds IP claims on (each is a bridge address, a DHCP
/// block and the VM NICs' addresses).
pub async fn claimed_networks(admin: &Client, node: &str) -> usize {
    let claims = claims_of(admin, Some(node)).await;
    let networks: std::collections::BTreeSet<(String, String)> = claims
        .into_iter()
        .map(|o| (o.spec.vino.uid, o.spec.network))
        .collect();
    networks.len()
}

/// Host `node`'s `VinoNode` of Vino `namespace/vino` (its membership and status entry), if any.
#[allow(dead_code)]
pub async fn member(
    admin: &Client,
    namespace: &str,
    vino: &str,
    node: &str,
) -> Option<vinod::api::vino_node::VinoNode> {
    let name = vinod::api::vino_node::vino_node_name(vino, node);
    kube::api::Api::<vinod::api::vino_node::VinoNode>::namespaced(admin.clone(), namespace)
        .get_opt(&name)
        .await
        .unwrap()
}

/// The hosts that hold a `VinoNode` of Vino `namespace/vino`, sorted.
#[allow(dead_code)]
pub async fn members(admin: &Client, namespace: &str, vino: &str) -> Vec<String> {
    let mut out: Vec<String> =
        kube::api::Api::<vinod::api::vino_node::VinoNode>::namespaced(admin.clone(), namespace)
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .filter(|m| m.spec.vino == vino)
            .map(|m| m.spec.node)
            .collect();
    out.sort();
    out
}
