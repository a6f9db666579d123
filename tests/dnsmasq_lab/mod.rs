//! The topology of one dnsmasq test: a "host" network namespace with a bridge, "VM" namespaces
//! joined to it by veth pairs, a temporary directory, and the DHCP client run in a guest.

use std::fs::{self, File};
use std::future::Future;
use std::net::Ipv4Addr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tempfile::TempDir;
use vinod::host::dnsmasq::Dnsmasq;
use vinod::ipam::AddrRange;
use vinod::render::dnsmasq::{DnsmasqSpec, Reservation, render_config, render_host};
use vinod::state::{DhcpServer, Owner};

/// The dnsmasq the tests run.
pub const DNSMASQ: &str = "/usr/sbin/dnsmasq";
/// The bridge in every host namespace.
pub const BRIDGE: &str = "br-vino";

/// Why the tests cannot run here, if they cannot.
pub fn skip_reason(tools: &[&str]) -> Option<String> {
    if !nix::unistd::geteuid().is_root() {
        return Some("needs root (network namespaces, dnsmasq)".into());
    }
    if !Path::new(DNSMASQ).exists() {
        return Some(format!("{DNSMASQ} is missing"));
    }
    let missing = |t: &&&str| {
        !Command::new("sh")
            .args(["-c", &format!("command -v {t}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    tools
        .iter()
        .find(missing)
        .map(|t| format!("{t} is missing"))
}

/// Runs a command that must succeed.
pub fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A guest: a namespace with `eth0` on the bridge, and the address reserved for it.
pub struct Vm {
    /// Network namespace.
    pub ns: String,
    /// MAC of its `eth0`.
    pub mac: String,
    /// The address reserved for it.
    pub ip: Ipv4Addr,
    /// udhcpc script.
    pub script: PathBuf,
    /// Where the script records udhcpc's events.
    pub events: PathBuf,
}

/// One test's topology and directories; everything is removed on drop.
pub struct Lab {
    /// Third octet of the lab's 192.168.x.0/24.
    pub net: u8,
    /// The host namespace, holding the bridge and dnsmasq.
    pub host_ns: String,
    /// The guests.
    pub vms: Vec<Vm>,
    /// Run dir, state dir, scripts and TFTP root.
    pub dir: TempDir,
}

impl Lab {
    /// Namespaces named after `tag`, subnet 192.168.`net`.0/24, `vms` guests.
    pub fn new(tag: &str, net: u8, vms: usize) -> Lab {
        let _ = tracing_subscriber::fmt()
            .with_env_filter("vinod=debug,info")
            .with_test_writer()
            .try_init();
        let dir = tempfile::tempdir().unwrap();
        // dnsmasq drops to `nobody`, which must reach the hosts dir and the TFTP root.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let prefix = format!("vdq{}-{tag}", std::process::id());
        let mut lab = Lab {
            net,
            host_ns: format!("{prefix}-h"),
            vms: Vec::new(),
            dir,
        };
        sh(&["ip", "netns", "add", &lab.host_ns]);
        let h = lab.host_ns.clone();
        sh(&["ip", "-n", &h, "link", "set", "lo", "up"]);
        sh(&["ip", "-n", &h, "link", "add", BRIDGE, "type", "bridge"]);
        sh(&["ip", "-n", &h, "link", "set", BRIDGE, "up"]);
        sh(&[
            "ip",
            "-n",
            &h,
            "addr",
            "add",
            &format!("192.168.{net}.1/24"),
            "dev",
            BRIDGE,
        ]);
        for i in 0..vms {
            let ns = format!("{prefix}-v{i}");
            let mac = format!("52:54:00:{net:02x}:00:{:02x}", i + 1);
            let events = lab.path(&format!("vm{i}.events"));
            let script = lab.path(&format!("vm{i}.udhcpc"));
            let body = format!(
                "#!/bin/sh\n# Records the lease and configures eth0; never touches /etc/resolv.conf.\n\
                 echo \"$1 ip=$ip siaddr=$siaddr boot_file=$boot_file\" >> {events}\n\
                 case \"$1\" in bound|renew) ip addr flush dev \"$interface\"; ip addr add \"$ip/$mask\" dev \"$interface\";; esac\n",
                events = events.display()
            );
            fs::write(&script, body).unwrap();
            fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
            sh(&["ip", "netns", "add", &ns]);
            lab.vms.push(Vm {
                ns: ns.clone(),
                mac: mac.clone(),
                ip: Ipv4Addr::new(192, 168, net, 11 + i as u8),
                script,
                events,
            });
            let port = format!("vh{i}");
            sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
            sh(&[
                "ip", "link", "add", &port, "netns", &h, "type", "veth", "peer", "name", "eth0",
                "netns", &ns,
            ]);
            sh(&["ip", "-n", &h, "link", "set", &port, "master", BRIDGE]);
            sh(&["ip", "-n", &h, "link", "set", &port, "up"]);
            sh(&["ip", "-n", &ns, "link", "set", "eth0", "address", &mac]);
            sh(&["ip", "-n", &ns, "link", "set", "eth0", "up"]);
        }
        lab
    }

    /// A path in the lab's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// vinod's run dir.
    pub fn run_dir(&self) -> PathBuf {
        self.path("run")
    }

    /// The lease file the configuration names.
    pub fn lease_file(&self) -> PathBuf {
        self.path("state")
            .join("dnsmasq")
            .join(format!("{BRIDGE}.leases"))
    }

    /// dnsmasq's pid file.
    pub fn pid_file(&self) -> PathBuf {
        self.run_dir()
            .join("dnsmasq")
            .join(BRIDGE)
            .join("dnsmasq.pid")
    }

    /// The pid in the pid file.
    pub fn pid(&self) -> u32 {
        fs::read_to_string(self.pid_file())
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }

    /// A new adapter over the lab's run dir; create it inside the host namespace.
    pub fn adapter(&self) -> Dnsmasq {
        Dnsmasq::new(DNSMASQ, self.run_dir()).unwrap()
    }

    /// The desired server with reservations for the given guests, TFTP optional.
    pub fn server(&self, reserved: &[usize], tftp: Option<(PathBuf, String)>) -> DhcpServer {
        let net = self.net;
        let spec = DnsmasqSpec {
            owner: Owner {
                namespace: "vino-system".into(),
                name: "lab".into(),
            },
            network: "pxe".into(),
            bridge: BRIDGE.into(),
            bridge_ip: Ipv4Addr::new(192, 168, net, 1),
            netmask: Ipv4Addr::new(255, 255, 255, 0),
            subnet_address: Ipv4Addr::new(192, 168, net, 0),
            block: Some(AddrRange {
                start: Ipv4Addr::new(192, 168, net, 100),
                end: Ipv4Addr::new(192, 168, net, 150),
            }),
            lease_time: "1h".into(),
            dns_servers: vec![],
            ipxe_url: format!("http://192.168.{net}.1/boot.ipxe"),
            tftp: tftp.map(|(root, file)| vinod::render::dnsmasq::Tftp {
                root,
                bios_file: file,
                efi_file: "snponly.efi".into(),
            }),
            hostsdir: self.run_dir().join("dnsmasq").join(BRIDGE).join("hosts"),
            leasefile: self.lease_file(),
        };
        let hosts = reserved
            .iter()
            .map(|&i| {
                let vm = &self.vms[i];
                let r = Reservation {
                    file: format!("vm{i}-eth0"),
                    mac: vm.mac.clone(),
                    ip: vm.ip,
                    hostname: format!("vm{i}"),
                };
                (r.file.clone(), render_host(&r))
            })
            .collect();
        DhcpServer {
            bridge: BRIDGE.into(),
            network: "pxe".into(),
            owner: spec.owner.clone(),
            config: render_config(&spec),
            hostsdir: spec.hostsdir.clone(),
            leasefile: spec.leasefile.clone(),
            hosts,
        }
    }

    /// Runs `f` on a thread inside the host namespace, with a current-thread runtime.
    pub fn in_host<T: Send, F: Future<Output = T>>(&self, f: impl FnOnce() -> F + Send) -> T {
        std::thread::scope(|s| {
            let worker = s.spawn(|| {
                let ns = File::open(format!("/run/netns/{}", self.host_ns)).unwrap();
                setns(&ns, CloneFlags::CLONE_NEWNET).unwrap();
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap()
                    .block_on(f())
            });
            worker
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        })
    }

    /// Runs udhcpc on guest `i` (bounded tries); the address it was offered, if any.
    pub fn dhcp(&self, i: usize) -> Option<Ipv4Addr> {
        self.dhcp_with(i, &[])
    }

    /// [`Lab::dhcp`] with more udhcpc arguments (such as `-x` options to send).
    pub fn dhcp_with(&self, i: usize, extra: &[&str]) -> Option<Ipv4Addr> {
        let vm = &self.vms[i];
        let _ = fs::remove_file(&vm.events);
        let script = vm.script.to_str().unwrap();
        let mut args = vec![
            "30", "ip", "netns", "exec", &vm.ns, "busybox", "udhcpc", "-i", "eth0", "-f", "-q",
            "-n", "-t", "5", "-T", "1", "-s", script,
        ];
        args.extend_from_slice(extra);
        let out = Command::new("timeout").args(args).output().unwrap();
        let events = fs::read_to_string(&vm.events).unwrap_or_default();
        let bound = events
            .lines()
            .find_map(|l| l.strip_prefix("bound ip=")?.split(' ').next()?.parse().ok());
        assert_eq!(
            out.status.success(),
            bound.is_some(),
            "udhcpc {:?}, events {events:?}",
            out.status
        );
        bound
    }

    /// Whether the lease file holds guest `i`'s reserved address, waiting up to 2 s for it.
    pub fn has_lease(&self, i: usize) -> bool {
        let want = format!(" {} {} ", self.vms[i].mac, self.vms[i].ip);
        poll(Duration::from_secs(2), || {
            fs::read_to_string(self.lease_file()).is_ok_and(|l| l.contains(&want))
        })
    }

    /// Whether the pid file names a live dnsmasq for this lab other than `old`.
    pub fn replaced(&self, old: u32) -> bool {
        let conf = format!(
            "--conf-file={}",
            self.run_dir()
                .join("dnsmasq")
                .join(BRIDGE)
                .join("dnsmasq.conf")
                .display()
        );
        let pid = fs::read_to_string(self.pid_file())
            .ok()
            .and_then(|p| p.trim().parse::<u32>().ok());
        pid.is_some_and(|p| {
            p != old
                && fs::read(format!("/proc/{p}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&conf))
        })
    }

    /// The processes whose command line mentions this lab's directory.
    pub fn processes(&self) -> Vec<u32> {
        let needle = self.dir.path().to_string_lossy().into_owned();
        let mut pids = Vec::new();
        for e in fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let cmdline = fs::read(e.path().join("cmdline")).unwrap_or_default();
            if String::from_utf8_lossy(&cmdline).contains(&needle) {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // A failed test may leave a server behind; it must not outlive its namespace.
        for pid in self.processes() {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        for ns in self.vms.iter().map(|v| &v.ns).chain([&self.host_ns]) {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Checks `ok` every 20 ms until it holds or `limit` has passed.
pub fn poll(limit: Duration, mut ok: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if ok() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
