//! A real libvirtd for tests, started by hand (no systemd) inside a network namespace of its
//! own, so the taps of the test VMs and the bridges they join never touch the host's network.
//!
//! Root only. [`Libvirtd::start`] returns `None` after [`super::prereq::skip`] when not root or
//! when a binary is missing. If a libvirtd already answers on `qemu:///system` it is reused
//! instead of starting a second one (both would share `/run/libvirt` and the state
//! directories): it is then neither restarted nor stopped, and bridges are made in whatever
//! network namespace it runs in. Either way, dropping the harness destroys and undefines every
//! domain and pool it was told about and deletes the bridges it made; a daemon it started is
//! stopped (libvirtd, then virtlogd, by pid file) and its namespace deleted.
//!
//! One harness at a time per process: [`Libvirtd::start`] waits for the previous one to drop.

use std::fs;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, MutexGuard, PoisonError, mpsc};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// The URI of the system daemon.
pub const URI: &str = "qemu:///system";

const LIBVIRTD: &str = "/usr/sbin/libvirtd";
const VIRTLOGD: &str = "/usr/sbin/virtlogd";
const LIBVIRT_SOCK: &str = "/run/libvirt/libvirt-sock";
const VIRTLOGD_SOCK: &str = "/run/libvirt/virtlogd-sock";
const QEMU_CONF: &str = "/etc/libvirt/qemu.conf";
/// Where libvirt keeps the domains' UEFI variable stores.
const NVRAM_DIR: &str = "/var/lib/libvirt/qemu/nvram";
/// The first start probes qemu's capabilities (8–12 s here); later ones take well under 1 s.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// A libvirtd the tests may use, and what to clean up when done.
pub struct Libvirtd {
    /// Network namespace the daemon runs in, as a path for `nsenter --net=`; `None` for the
    /// host's own.
    netns: Option<PathBuf>,
    started: Option<Started>,
    domains: Mutex<Vec<String>>,
    pools: Mutex<Vec<String>>,
    bridges: Mutex<Vec<String>>,
    _turn: MutexGuard<'static, ()>,
}

/// A daemon this harness started.
struct Started {
    dir: tempfile::TempDir,
    netns_name: String,
    /// Whether virtlogd was started here too (an already running one is reused).
    own_virtlogd: bool,
}

impl Libvirtd {
    /// A running libvirtd on [`URI`]: the one already running, or a new one in a new network
    /// namespace. `None` (after printing why) when the test cannot run here. Panics if the
    /// daemon should start but does not.
    pub fn start() -> Option<Libvirtd> {
        if !nix::unistd::geteuid().is_root() {
            super::prereq::skip("libvirtd tests need root");
            return None;
        }
        for bin in [
            LIBVIRTD,
            VIRTLOGD,
            "/usr/bin/virsh",
            "/usr/bin/qemu-system-x86_64",
            "/usr/bin/qemu-img",
            "/usr/bin/nsenter",
        ] {
            if !Path::new(bin).exists() {
                super::prereq::skip(format!("{bin} is not installed"));
                return None;
            }
        }
        if find_in_path("ip").is_none() {
            super::prereq::skip("ip (iproute2) is not installed");
            return None;
        }
        let turn = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
        if UnixStream::connect(LIBVIRT_SOCK).is_ok() && answers() {
            let netns = running_daemon_netns();
            println!("reusing the running libvirtd (network namespace {netns:?})");
            return Some(Libvirtd {
                netns,
                started: None,
                domains: Mutex::default(),
                pools: Mutex::default(),
                bridges: Mutex::default(),
                _turn: turn,
            });
        }
        prerequisites();
        let name = format!("vinod-lvt-{}", std::process::id());
        // A namespace left by an earlier run of this process id would make `add` fail.
        let _ = run("ip", &["netns", "del", &name]);
        must(run("ip", &["netns", "add", &name]), "ip netns add");
        must(
            run("ip", &["-n", &name, "link", "set", "lo", "up"]),
            "ip link set lo up",
        );
        let dir = tempfile::tempdir().expect("temporary directory");
        let own_virtlogd = UnixStream::connect(VIRTLOGD_SOCK).is_err();
        let harness = Libvirtd {
            netns: Some(PathBuf::from(format!("/run/netns/{name}"))),
            started: Some(Started {
                dir,
                netns_name: name,
                own_virtlogd,
            }),
            domains: Mutex::default(),
            pools: Mutex::default(),
            bridges: Mutex::default(),
            _turn: turn,
        };
        // From here on, `harness` going out of scope (also by panic) cleans up.
        if own_virtlogd {
            let pid_file = harness.pid_file("virtlogd");
            must(
                run(
                    VIRTLOGD,
                    &["--daemon", &format!("--pid-file={}", pid_file.display())],
                ),
                "virtlogd --daemon",
            );
        }
        harness.start_libvirtd();
        Some(harness)
    }

    /// The URI to connect to.
    pub fn uri(&self) -> &'static str {
        URI
    }

    /// The daemon's network namespace (for `setns`), `None` when it runs in the host's.
    pub fn netns(&self) -> Option<&Path> {
        self.netns.as_deref()
    }

    /// Whether this harness started the daemon (and may restart it).
    pub fn owns_daemon(&self) -> bool {
        self.started.is_some()
    }

    /// Destroy and undefine domain `name` when the harness drops.
    pub fn track_domain(&self, name: &str) {
        self.domains
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(name.to_string());
    }

    /// Destroy and undefine storage pool `name` when the harness drops.
    pub fn track_pool(&self, name: &str) {
        self.pools
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(name.to_string());
    }

    /// Creates bridge `name` (up, no address, no ports) in the daemon's network namespace, where
    /// the VMs' taps appear; it is deleted when the harness drops.
    pub fn add_bridge(&self, name: &str) {
        self.bridges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(name.to_string());
        must(
            self.ip(&["link", "add", name, "type", "bridge"]),
            "ip link add bridge",
        );
        must(
            self.ip(&["link", "set", name, "up"]),
            "ip link set bridge up",
        );
    }

    /// Runs `ip` in the daemon's network namespace.
    pub fn ip(&self, args: &[&str]) -> Output {
        match &self.netns {
            Some(ns) => {
                let net = format!("--net={}", ns.display());
                let mut all = vec![net.as_str(), "ip"];
                all.extend_from_slice(args);
                run("nsenter", &all)
            }
            None => run("ip", args),
        }
    }

    /// Stops and starts the daemon (to exercise reconnects). `false`, doing nothing, for a
    /// reused daemon.
    pub fn restart(&self) -> bool {
        if self.started.is_none() {
            return false;
        }
        stop(&self.pid_file("libvirtd"));
        self.start_libvirtd();
        true
    }

    fn pid_file(&self, daemon: &str) -> PathBuf {
        let dir = self
            .started
            .as_ref()
            .map_or(Path::new("/nonexistent"), |s| s.dir.path());
        dir.join(format!("{daemon}.pid"))
    }

    fn start_libvirtd(&self) {
        let Some(started) = &self.started else { return };
        let pid_file = self.pid_file("libvirtd");
        let begin = Instant::now();
        must(
            run(
                "ip",
                &[
                    "netns",
                    "exec",
                    &started.netns_name,
                    LIBVIRTD,
                    "--daemon",
                    &format!("--pid-file={}", pid_file.display()),
                ],
            ),
            "libvirtd --daemon",
        );
        while !answers() {
            if begin.elapsed() > READY_TIMEOUT {
                let log = fs::read_to_string("/var/log/libvirt/libvirtd.log").unwrap_or_default();
                let tail: Vec<&str> = log.lines().rev().take(20).collect();
                panic!(
                    "libvirtd did not answer on {URI} within {READY_TIMEOUT:?}; log tail (newest first):\n{}",
                    tail.join("\n")
                );
            }
            sleep(Duration::from_millis(200));
        }
        println!("libvirtd ready in {:.2?}", begin.elapsed());
    }
}

impl Drop for Libvirtd {
    fn drop(&mut self) {
        let domains =
            std::mem::take(&mut *self.domains.lock().unwrap_or_else(PoisonError::into_inner));
        for d in &domains {
            let _ = virsh(&["destroy", d]);
            if !virsh(&["undefine", "--nvram", d]).status.success() {
                let _ = virsh(&["undefine", d]);
            }
            // libvirt keeps the NVRAM of a domain whose definition no longer says UEFI.
            let _ = fs::remove_file(format!("{NVRAM_DIR}/{d}_VARS.fd"));
        }
        let pools = std::mem::take(&mut *self.pools.lock().unwrap_or_else(PoisonError::into_inner));
        for p in &pools {
            let _ = virsh(&["pool-destroy", p]);
            let _ = virsh(&["pool-undefine", p]);
        }
        let bridges =
            std::mem::take(&mut *self.bridges.lock().unwrap_or_else(PoisonError::into_inner));
        for b in &bridges {
            let _ = self.ip(&["link", "del", b]);
        }
        if let Some(started) = &self.started {
            stop(&self.pid_file("libvirtd"));
            if started.own_virtlogd {
                stop(&self.pid_file("virtlogd"));
            }
            let _ = run("ip", &["netns", "del", &started.netns_name]);
        }
    }
}

/// The user, directories and qemu.conf lines libvirtd needs without systemd (idempotent).
fn prerequisites() {
    if !run("getent", &["group", "libvirt-qemu"]).status.success() {
        must(
            run("groupadd", &["--system", "libvirt-qemu"]),
            "groupadd libvirt-qemu",
        );
    }
    if !run("id", &["libvirt-qemu"]).status.success() {
        must(
            run(
                "useradd",
                &[
                    "--system",
                    "--no-create-home",
                    "--home-dir",
                    "/var/lib/libvirt",
                    "--shell",
                    "/usr/sbin/nologin",
                    "-g",
                    "libvirt-qemu",
                    "libvirt-qemu",
                ],
            ),
            "useradd libvirt-qemu",
        );
    }
    fs::create_dir_all("/var/log/libvirt").expect("create /var/log/libvirt");
    fs::create_dir_all("/etc/libvirt").expect("create /etc/libvirt");
    let conf = fs::read_to_string(QEMU_CONF).unwrap_or_default();
    // /dev/kvm is root-only here: qemu as libvirt-qemu makes libvirt re-probe on every call.
    if !conf.lines().any(|l| l.trim() == "user = \"root\"") {
        let mut f = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(QEMU_CONF)
            .expect("open qemu.conf");
        writeln!(f, "user = \"root\"\ngroup = \"root\"").expect("write qemu.conf");
    }
}

/// Whether `virsh version` gets an answer from the daemon.
fn answers() -> bool {
    run_for("virsh", &["-c", URI, "version"], Duration::from_secs(5))
        .status
        .success()
}

/// The network namespace of the running libvirtd: `None` if it is the host's own.
fn running_daemon_netns() -> Option<PathBuf> {
    let own = fs::read_link("/proc/self/ns/net").ok();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let comm = fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim() == "libvirtd" {
            let ns = entry.path().join("ns/net");
            return (fs::read_link(&ns).ok() != own).then_some(ns);
        }
    }
    None
}

/// SIGTERM to the pid in `pid_file`, then waits for the process to end (a zombie counts as
/// ended: nothing here reaps a daemonized process).
fn stop(pid_file: &Path) {
    let Some(pid) = fs::read_to_string(pid_file)
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok())
    else {
        return;
    };
    let pid = nix::unistd::Pid::from_raw(pid);
    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    let begin = Instant::now();
    while running(pid) {
        if begin.elapsed() > STOP_TIMEOUT {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            break;
        }
        sleep(Duration::from_millis(50));
    }
    let _ = fs::remove_file(pid_file);
}

fn running(pid: nix::unistd::Pid) -> bool {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The state is the first field after the parenthesised command name.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    matches!(state, Some(s) if s != "Z" && s != "X")
}

fn virsh(args: &[&str]) -> Output {
    let mut all = vec!["-c", URI];
    all.extend_from_slice(args);
    run("virsh", &all)
}

fn run(program: &str, args: &[&str]) -> Output {
    run_for(program, args, COMMAND_TIMEOUT)
}

/// Runs a command to completion, or kills it after `limit` and returns what it wrote.
fn run_for(program: &str, args: &[&str], limit: Duration) -> Output {
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    let (tx, rx) = mpsc::channel();
    // Waiting on another thread keeps the pipes drained while the deadline runs here.
    std::thread::spawn(move || tx.send(child.wait_with_output()));
    let result = match rx.recv_timeout(limit) {
        Ok(result) => result,
        Err(_) => {
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
            rx.recv().unwrap_or_else(|e| panic!("{program}: {e}"))
        }
    };
    result.unwrap_or_else(|e| panic!("cannot wait for {program}: {e}"))
}

fn must(out: Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn find_in_path(program: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .map(|d| d.join(program))
        .find(|p| p.exists())
}
