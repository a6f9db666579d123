//! Real-host test helpers: private network namespaces, running async code inside one, and
//! Vino/config fixtures for reconcile tests.

use std::fs::File;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;

use nix::sched::{CloneFlags, setns};
use vinod::api::{self, Vino};
use vinod::config::Config;
use vinod::plan::{self, NodeFacts, NumaNode, PlanInput, VinoPlan};
use vinod::value::CpuSet;

/// Why a root test cannot run here, if it cannot.
pub fn skip_reason() -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (network namespaces)".into());
    }
    for bin in ["/usr/sbin/dnsmasq", "/usr/bin/busybox"] {
        if !Path::new(bin).exists() {
            return Some(format!("{bin} is not installed"));
        }
    }
    None
}

/// A named network namespace (`ip netns add`), deleted on drop.
pub struct NetNs {
    /// Its name.
    pub name: String,
}

impl NetNs {
    /// Creates namespace `vinod-<tag>-<pid>` with loopback up.
    pub fn new(tag: &str) -> NetNs {
        let name = format!("vinod-{tag}-{}", std::process::id());
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(std::process::Stdio::null())
            .status();
        assert!(
            Command::new("ip")
                .args(["netns", "add", &name])
                .status()
                .unwrap()
                .success(),
            "ip netns add {name}"
        );
        let ns = NetNs { name };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Its path, for `setns`.
    pub fn path(&self) -> PathBuf {
        PathBuf::from(format!("/run/netns/{}", self.name))
    }

    /// Runs `ip` inside; panics if it fails.
    pub fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .arg("-n")
            .arg(&self.name)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs a command inside; returns its output.
    pub fn exec(&self, cmd: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(cmd)
            .output()
            .unwrap()
    }
}

impl Drop for NetNs {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Runs `body` on a new thread that has entered the namespace at `netns`, on a current-thread
/// runtime; panics in `body` fail the caller.
pub fn in_netns<F, Fut, T>(netns: &Path, body: F) -> T
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = T>,
    T: Send + 'static,
{
    let path = netns.to_path_buf();
    std::thread::spawn(move || {
        let f = File::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        setns(f, CloneFlags::CLONE_NEWNET).expect("setns");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(body())
    })
    .join()
    .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

/// The text of a configuration with every path under `dir`, libvirt at `uri`, TCG domains, a
/// JSON log (read with [`super::log::LogRecords`]), plus `dhcp` lines for the `[dhcp]` table.
pub fn config_text(dir: &Path, uri: &str, pool: &str, dhcp: &str) -> String {
    format!(
        "node_name = \"host-a\"\nstate_dir = \"{d}/state\"\nrun_dir = \"{d}/run\"\n[log]\nlevel = \"debug\"\nformat = \"json\"\n[libvirt]\nuri = \"{uri}\"\ndomain_type = \"qemu\"\npool_name = \"{pool}\"\npool_path = \"{d}/pool\"\nconsole_log_dir = \"{d}/console\"\n[redfish]\nadvertise_address = \"192.0.2.10\"\n[dhcp]\n{dhcp}\n",
        d = dir.display()
    )
}

/// [`config_text`], parsed.
pub fn config(dir: &Path, uri: &str, pool: &str) -> Config {
    Config::parse(&config_text(dir, uri, pool, ""), "test").unwrap()
}

/// A Vino `lab/name` with `workers` VMs of a flavor with `vcpus`, on bridge `bridge` with
/// subnet 192.168.`net`.0/24.
pub fn vino(name: &str, bridge: &str, net: u8, workers: u32, vcpus: u32) -> Vino {
    api::parse_vino(&vino_yaml(name, bridge, net, workers, vcpus)).unwrap()
}

/// The manifest text of [`vino`].
pub fn vino_yaml(name: &str, bridge: &str, net: u8, workers: u32, vcpus: u32) -> String {
    format!(
        r#"
apiVersion: airship.airshipit.org/v1
kind: Vino
metadata: {{name: {name}, namespace: lab}}
spec:
  nodeSelector: {{matchLabels: {{}}}}
  flavors:
    small: {{vcpus: {vcpus}, memoryMiB: 256, rootDiskGiB: 1}}
  networks:
    - name: pxe
      subnet: 192.168.{net}.0/24
      staticAllocationStart: 192.168.{net}.1
      staticAllocationStop: 192.168.{net}.60
      dhcpAllocationStart: 192.168.{net}.128
      dhcpAllocationStop: 192.168.{net}.191
      macPrefix: "52:54:00:{net:02x}:00:00"
      bridgeName: {bridge}
  nodes:
    - name: worker
      count: {workers}
      flavor: small
      networkInterfaces: [{{name: eth0, network: pxe}}]
  bmcCredentials: {{username: admin, password: pw}}
"#
    )
}

/// This host's facts for the fixtures.
pub fn node() -> NodeFacts {
    NodeFacts {
        name: "host-a".into(),
        labels: Default::default(),
        addresses: vec!["192.0.2.10".parse().unwrap()],
        numa: vec![NumaNode {
            id: 0,
            cpus: "0-7".parse().unwrap(),
        }],
        down: false,
    }
}

/// Plans `vino` with no prior claims.
pub fn plan_of(vino: &Vino, config: &Config) -> VinoPlan {
    plan::plan(PlanInput {
        vino,
        node: &node(),
        config,
        claims: &Default::default(),
        credentials: None,
        taken_cpus: &CpuSet::default(),
        current_pins: &Default::default(),
        host_network: &Default::default(),
        retained: &[],
    })
    .unwrap()
}

/// On drop (also after a failed assertion), kills every process whose command line mentions
/// `dir`: the dnsmasq instances a test's vinod started and left running by design.
pub struct Reaper(pub PathBuf);

impl Drop for Reaper {
    fn drop(&mut self) {
        let needle = self.0.display().to_string();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmd).contains(&needle) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

/// A child process (a vinod daemon) killed and reaped when dropped, also after a failure.
pub struct Daemon(pub std::process::Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Polls `cond` every 100 ms until it holds, failing the test after `limit`; returns how long
/// it took.
pub fn wait_for(
    what: &str,
    limit: std::time::Duration,
    mut cond: impl FnMut() -> bool,
) -> std::time::Duration {
    let began = std::time::Instant::now();
    while !cond() {
        assert!(began.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    began.elapsed()
}

/// Waits (at most 150 s) for a VM to fetch its boot file from `listener` (non-blocking, on the
/// bridge), answers with an iPXE script that idles, and returns the request's text and the
/// peer.
pub async fn serve_boot_fetch(listener: &std::net::TcpListener) -> (String, std::net::SocketAddr) {
    serve_boot_script(listener, "#!ipxe\nsleep 600\n").await
}

/// [`serve_boot_fetch`], answering with the iPXE script `script`.
pub async fn serve_boot_script(
    listener: &std::net::TcpListener,
    script: &str,
) -> (String, std::net::SocketAddr) {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    listener.set_nonblocking(true).unwrap();
    let began = Instant::now();
    let (mut conn, peer) = loop {
        match listener.accept() {
            Ok(c) => break c,
            Err(_) if began.elapsed() < Duration::from_secs(150) => {
                tokio::time::sleep(Duration::from_millis(200)).await
            }
            Err(e) => panic!("the VM fetched no boot file within 150 s: {e}"),
        }
    };
    conn.set_nonblocking(false).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut req = [0u8; 1024];
    let n = conn.read(&mut req).unwrap();
    let _ = conn.write_all(
        format!("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n{script}").as_bytes(),
    );
    (String::from_utf8_lossy(&req[..n]).into_owned(), peer)
}

/// `vinod run --config config --standalone manifest` inside the namespace at `netns`.
pub fn standalone_daemon(netns: &Path, config: &Path, manifest: &Path) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", netns.display()))
        .arg(env!("CARGO_BIN_EXE_vinod"))
        .args(["run", "--config"])
        .arg(config)
        .arg("--standalone")
        .arg(manifest);
    cmd
}

/// Runs one standalone pass (`vinod run --once`) in `netns` over the Vinos `docs`, with the
/// configuration [`config_text`] gives for `dir` (libvirt's test driver, pool `pool`) plus
/// `extra`; returns the status file it wrote.
pub fn standalone_pass(
    netns: &Path,
    dir: &Path,
    pool: &str,
    extra: &str,
    docs: &[String],
) -> String {
    let config = dir.join("vinod.toml");
    let text = config_text(dir, "test:///default", pool, "");
    std::fs::write(&config, format!("{text}{extra}")).unwrap();
    let file = dir.join("vinos.yaml");
    std::fs::write(&file, docs.join("\n---\n")).unwrap();
    let out = standalone_daemon(netns, &config, &file)
        .arg("--once")
        .output()
        .unwrap();
    assert!(out.status.code().is_some(), "vinod died: {out:?}");
    std::fs::read_to_string(dir.join("state/standalone/status.yaml")).unwrap()
}
