//! OpenStack Ironic for tests: the pinned release `scripts/ironic-venv.sh` installs, run as the
//! all-in-one `ironic` service (SQLite, no authentication, no message bus, the `redfish`
//! hardware type) on 127.0.0.1 of a network namespace, with a plain HTTP server for its
//! `http_root` (where it publishes virtual-media images). Driven through its REST API with
//! curl inside the same namespace.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The Ironic API port (in the test's namespace).
const API_PORT: u16 = 6385;
/// The port of the HTTP server for Ironic's `http_root`.
pub const HTTP_PORT: u16 = 8088;
/// Longest Ironic may take to answer after start.
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// The venv's directory (`IRONIC_VENV`, default `/var/cache/vinod/ironic-venv`), or why it
/// cannot be used.
pub fn venv() -> Result<PathBuf, String> {
    super::python::checked_venv(
        "Ironic",
        "IRONIC_VENV",
        "/var/cache/vinod/ironic-venv",
        "ironic, sushy",
        "scripts/ironic-venv.sh",
    )
}

/// A running Ironic and its image HTTP server; both killed on drop.
pub struct Ironic {
    netns: PathBuf,
    dir: PathBuf,
    ironic: Option<Child>,
    http: Child,
}

/// The configuration: the settings known to work on these machines, everything under `dir`.
fn config(dir: &Path) -> String {
    let d = dir.display();
    format!(
        "[DEFAULT]
auth_strategy = noauth
rpc_transport = none
my_ip = 127.0.0.1
host = vinod-test
enabled_hardware_types = redfish,fake-hardware
enabled_boot_interfaces = ipxe,pxe,redfish-virtual-media,redfish-https,fake
enabled_deploy_interfaces = direct,ramdisk,custom-agent,fake
default_deploy_interface = direct
enabled_inspect_interfaces = agent,redfish,no-inspect,fake
enabled_raid_interfaces = no-raid,agent,redfish,fake
enabled_bios_interfaces = redfish,no-bios,fake
enabled_firmware_interfaces = redfish,no-firmware,fake
enabled_vendor_interfaces = redfish,no-vendor,fake
enabled_management_interfaces = redfish,fake
enabled_power_interfaces = redfish,fake
enabled_network_interfaces = noop
default_network_interface = noop
log_file = {d}/ironic.log
use_stderr = false
[api]
host_ip = 127.0.0.1
port = {API_PORT}
[database]
connection = sqlite:///{d}/ironic.sqlite
[dhcp]
dhcp_provider = none
[conductor]
automated_clean = false
[deploy]
http_root = {d}/http
http_url = http://127.0.0.1:{HTTP_PORT}
ramdisk_image_download_source = http
[pxe]
tftp_root = {d}/tftp
tftp_master_path = {d}/master
instance_master_path = {d}/master
[oslo_concurrency]
lock_path = {d}/locks
[redfish]
use_swift = false
firmware_update_status_interval = 3
[nova]
send_power_notifications = false
"
    )
}

fn in_netns(netns: &Path, program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", netns.display())).arg(program);
    cmd
}

impl Ironic {
    /// Creates the database and starts Ironic from `venv` in `netns`, keeping its files in
    /// `dir`; returns once its API answers.
    pub fn start(venv: &Path, netns: &Path, dir: &Path) -> Ironic {
        for sub in ["http", "tftp", "master", "locks"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let conf = dir.join("ironic.conf");
        std::fs::write(&conf, config(dir)).unwrap();
        let out = Command::new(venv.join("bin/ironic-dbsync"))
            .arg("--config-file")
            .arg(&conf)
            .arg("create_schema")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ironic-dbsync: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let quiet = |cmd: &mut Command| {
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
        };
        let mut http = in_netns(netns, venv.join("bin/python"));
        http.args([
            "-m",
            "http.server",
            &HTTP_PORT.to_string(),
            "--bind",
            "127.0.0.1",
        ])
        .arg("--directory")
        .arg(dir.join("http"));
        quiet(&mut http);
        let mut ironic = in_netns(netns, venv.join("bin/ironic"));
        ironic.arg("--config-file").arg(&conf);
        quiet(&mut ironic);
        let me = Ironic {
            netns: netns.to_path_buf(),
            dir: dir.to_path_buf(),
            http: http.spawn().expect("http.server"),
            ironic: Some(ironic.spawn().expect("ironic")),
        };
        let began = Instant::now();
        while me.call("GET", "/v1/drivers", None).0 != 200 {
            assert!(
                began.elapsed() < START_TIMEOUT,
                "Ironic did not answer within {START_TIMEOUT:?}; its log:\n{}",
                me.log()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        me
    }

    /// Ironic's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("ironic.log")).unwrap_or_default()
    }

    /// The directory Ironic serves images from.
    pub fn http_root(&self) -> PathBuf {
        self.dir.join("http")
    }

    /// One API request (newest microversion); returns the status and the JSON body (`Null`
    /// when empty).
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut cmd = in_netns(&self.netns, "curl");
        cmd.args(["-s", "-m", "60", "-X", method, "-w", "\n%{http_code}"])
            .args(["-H", "Content-Type: application/json"])
            .args(["-H", "X-OpenStack-Ironic-API-Version: latest"]);
        if let Some(b) = body {
            cmd.args(["-d", &b.to_string()]);
        }
        cmd.arg(format!("http://127.0.0.1:{API_PORT}{path}"));
        let out = cmd.output().expect("curl");
        let text = String::from_utf8_lossy(&out.stdout);
        let (json, code) = text.rsplit_once('\n').unwrap_or(("", &text));
        let status = code.trim().parse().unwrap_or(0);
        let value = if json.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(json).unwrap_or_else(|_| Value::String(json.to_string()))
        };
        (status, value)
    }

    /// A request that must answer `want`; returns the body.
    pub fn expect(&self, method: &str, path: &str, body: Option<&Value>, want: u16) -> Value {
        let (status, value) = self.call(method, path, body);
        assert_eq!(status, want, "{method} {path}: {value}");
        value
    }

    /// The node, once `done` holds for it (at most `limit`); fails on a `last_error`.
    pub fn wait_node(&self, node: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
        self.poll_node(node, limit, |n| {
            assert!(
                n["last_error"].is_null(),
                "node {node}: {}",
                n["last_error"]
            );
            done(n)
        })
    }

    /// The node, once `done` holds for it (at most `limit`).
    pub fn poll_node(&self, node: &str, limit: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let began = Instant::now();
        loop {
            let n = self.expect("GET", &format!("/v1/nodes/{node}"), None, 200);
            if done(&n) {
                return n;
            }
            assert!(
                began.elapsed() < limit,
                "node {node} not done within {limit:?}: provision {} (target {}), power {} (target {})",
                n["provision_state"],
                n["target_provision_state"],
                n["power_state"],
                n["target_power_state"]
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// The node once no provision or power change is under way, in provision state `state`.
    pub fn settled(&self, node: &str, state: &str, limit: Duration) -> Value {
        self.wait_node(node, limit, |n| {
            n["provision_state"] == state
                && n["target_provision_state"].is_null()
                && n["target_power_state"].is_null()
                && n["reservation"].is_null()
        })
    }

    /// Stops Ironic (SIGTERM, then SIGKILL after 30 s). Ironic must stop before the BMC it
    /// talks to, or its shutdown waits for it.
    pub fn stop(&mut self) {
        let Some(mut child) = self.ironic.take() else {
            return;
        };
        let pid = nix::unistd::Pid::from_raw(child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let began = Instant::now();
        while began.elapsed() < Duration::from_secs(30) {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Ironic {
    fn drop(&mut self) {
        self.stop();
        let _ = self.http.kill();
        let _ = self.http.wait();
    }
}
