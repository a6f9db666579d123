//! vinod against a real libvirtd (started by the harness in its own network namespace, TCG
//! domains): a 4-VM reconcile and a real PXE boot from vinod's dnsmasq; kill -9 at 13 points of
//! a reconcile; the standalone daemon end to end. Root only; every wait is bounded.

mod common;

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::host::{
    Daemon, Reaper, config_text, in_netns, node, serve_boot_fetch, skip_reason, standalone_daemon,
    vino, vino_yaml, wait_for,
};
use common::libvirtd::Libvirtd;
use vinod::config::Config;
use vinod::host::bridge::NetlinkBridges;
use vinod::host::dnsmasq::Dnsmasq;
use vinod::host::libvirt::Libvirt;
use vinod::plan::{self, PlanInput};
use vinod::reconcile::Adapters;
use vinod::state::HostState;
use vinod::value::cpuset::CpuSet;

fn no_hook(_: usize) {}

/// The harness, or `None` after printing why the test cannot run.
fn harness() -> Option<Libvirtd> {
    if let Some(why) = skip_reason() {
        common::prereq::skip(why);
        return None;
    }
    Libvirtd::start()
}

fn netns_of(h: &Libvirtd) -> PathBuf {
    h.netns()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/proc/self/ns/net"))
}

/// Names of vinod's domains of Vino `lab/<vino>` known to libvirt, and how many are running.
fn domains(vino: &str) -> (Vec<String>, usize) {
    let conn = virt::connect::Connect::open(Some(common::libvirtd::URI)).unwrap();
    let prefix = format!("lab.{vino}.");
    let mut names = Vec::new();
    let mut running = 0;
    for d in conn.list_all_domains(0).unwrap() {
        let name = d.name().unwrap();
        let index: u32 = name
            .rsplit('-')
            .next()
            .and_then(|i| i.parse().ok())
            .unwrap_or(0);
        // Indices from 100 up are the tests' own unowned domains.
        if name.starts_with(&prefix) && index < 100 {
            running += usize::from(d.is_active().unwrap());
            names.push(name);
        }
    }
    names.sort();
    (names, running)
}

fn volumes(pool: &str) -> Vec<String> {
    let out = Command::new("virsh")
        .args(["-q", "-c", common::libvirtd::URI, "vol-list", pool])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Processes whose command line mentions `needle`.
fn processes(needle: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            // Zombies (state Z) are dead processes nobody reaped yet.
            String::from_utf8_lossy(&cmd).contains(needle)
                && !stat.split(") ").nth(1).is_some_and(|s| s.starts_with('Z'))
        })
        .count()
}

fn bridges(netns: &Path, name: &str) -> usize {
    let out = Command::new("nsenter")
        .arg(format!("--net={}", netns.display()))
        .args(["ip", "-o", "link", "show", "type", "bridge"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.contains(&format!(": {name}:")))
        .count()
}

fn power_on(name: &str) {
    let conn = virt::connect::Connect::open(Some(common::libvirtd::URI)).unwrap();
    conn.lookup_domain_by_name(name).unwrap().create().unwrap();
}

#[test]
fn four_vms_on_real_libvirt_and_a_real_pxe_boot() {
    let Some(h) = harness() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let _reaper = Reaper(tmp.path().to_path_buf());
    let pool = format!("vinod-rr-{}", std::process::id());
    h.track_pool(&pool);
    let text = config_text(
        tmp.path(),
        h.uri(),
        &pool,
        "ipxe_boot_url = \"http://{bridge_ip}:8080/boot.ipxe\"",
    );
    let cfg = Config::parse(&text, "test").unwrap();
    let v = vino("rr", "vrr0", 63, 4, 1);
    let p = plan::plan(PlanInput {
        vino: &v,
        node: &node(),
        config: &cfg,
        claims: &Default::default(),
        credentials: None,
        taken_cpus: &CpuSet::default(),
        current_pins: &Default::default(),
        host_network: &Default::default(),
        retained: &[],
    })
    .unwrap();
    for vm in &p.vms {
        h.track_domain(&vm.name);
    }
    let bridge_ip: Ipv4Addr = p.claims["pxe"].addresses["bridge"];
    let vm0 = p.vms[0].clone();
    let lease_file = cfg.state_dir.join("dnsmasq/vrr0.leases");
    let desired = p.host.clone();
    for i in 4..5 {
        h.track_domain(&format!("lab.rr.worker-{i}"));
    }
    // A domain vinod did not create, with a name in vinod's style, running throughout.
    let foreign = format!("lab.rr.worker-{}", 100 + std::process::id() % 100);
    h.track_domain(&foreign);
    let xml = tmp.path().join("foreign.xml");
    std::fs::write(&xml, format!("<domain type='qemu'><name>{foreign}</name><memory unit='MiB'>64</memory><os><type arch='x86_64'>hvm</type></os></domain>")).unwrap();
    for args in [
        vec!["define", xml.to_str().unwrap()],
        vec!["start", foreign.as_str()],
    ] {
        let out = Command::new("virsh")
            .args(["-q", "-c", h.uri()])
            .args(&args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "virsh {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let cfg2 = cfg.clone();
    in_netns(&netns_of(&h), move || async move {
        let a = Adapters {
            bridges: NetlinkBridges::new().unwrap(),
            dhcp: Dnsmasq::new(&cfg.dhcp.dnsmasq, &cfg.run_dir).unwrap(),
            hypervisor: Libvirt::new(&cfg.libvirt),
        };
        let o = a.reconcile(&desired, &no_hook).await.unwrap();
        assert!(o.errors.is_empty(), "{:?}", o.errors);
        assert_eq!(o.applied.len(), 10);
        let (names, running) = domains("rr");
        assert_eq!(
            (names.len(), running),
            (4, 0),
            "new VMs are defined powered off"
        );
        assert!(
            a.reconcile(&desired, &no_hook)
                .await
                .unwrap()
                .applied
                .is_empty(),
            "second pass changed something"
        );

        // Boot: the VM's iPXE must get its reserved address and then fetch the boot URL that
        // vinod's dnsmasq handed out, from a server on the bridge.
        let listener = TcpListener::bind(SocketAddr::from((bridge_ip, 8080))).unwrap();
        listener.set_nonblocking(true).unwrap();
        let began = Instant::now();
        power_on(&vm0.name);
        let (request, peer) = serve_boot_fetch(&listener).await;
        println!(
            "boot file fetched after {:.1?} by {peer}: {}",
            began.elapsed(),
            request.lines().next().unwrap_or("")
        );
        assert!(request.starts_with("GET /boot.ipxe"), "{request}");
        assert_eq!(
            peer.ip(),
            std::net::IpAddr::V4(vm0.nics[0].ip),
            "the VM did not use its reserved address"
        );
        let leases = std::fs::read_to_string(&lease_file).unwrap();
        assert!(
            leases.contains(&format!("{} {}", vm0.nics[0].mac, vm0.nics[0].ip)),
            "{leases}"
        );

        // Scale 4 → 2 → 5 and a flavor change, with worker-0 running throughout.
        for (count, vcpus, expect) in [(2, 1, (2, 1)), (5, 1, (5, 1)), (5, 2, (5, 1))] {
            let want = plan_host(&vino("rr", "vrr0", 63, count, vcpus), &cfg2);
            let o = a.reconcile(&want, &no_hook).await.unwrap();
            assert!(o.errors.is_empty(), "{:?}", o.errors);
            let (names, running) = domains("rr");
            assert_eq!(
                (names.len(), running),
                expect,
                "after scaling to {count} with {vcpus} vCPUs: {:?}",
                o.applied
            );
            if vcpus == 2 {
                assert_eq!(o.pending_restart.len(), 5, "{:?}", o.applied);
            }
            assert!(
                a.reconcile(&want, &no_hook)
                    .await
                    .unwrap()
                    .applied
                    .is_empty()
            );
        }

        let o = a.reconcile(&HostState::default(), &no_hook).await.unwrap();
        assert!(o.errors.is_empty(), "{:?}", o.errors);
        assert_eq!(domains("rr").0.len(), 0);
    });
    assert!(volumes(&pool).is_empty());
    let conn = virt::connect::Connect::open(Some(common::libvirtd::URI)).unwrap();
    let kept = conn
        .lookup_domain_by_name(&foreign)
        .expect("the unowned domain was removed");
    assert!(kept.is_active().unwrap(), "the unowned domain was stopped");
}

fn plan_host(v: &vinod::api::Vino, cfg: &Config) -> HostState {
    plan::plan(PlanInput {
        vino: v,
        node: &node(),
        config: cfg,
        claims: &Default::default(),
        credentials: None,
        taken_cpus: &CpuSet::default(),
        current_pins: &Default::default(),
        host_network: &Default::default(),
        retained: &[],
    })
    .unwrap()
    .host
}

/// Runs `vinod run --standalone manifest --config config --once` in `netns`.
fn vinod_once(netns: &Path, config: &Path, manifest: &Path, crash_after: Option<usize>) -> Output {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", netns.display()))
        .arg(env!("CARGO_BIN_EXE_vinod"))
        .arg("run")
        .arg("--once")
        .arg("--config")
        .arg(config)
        .arg("--standalone")
        .arg(manifest);
    cmd.env("RUST_LOG", "warn");
    if let Some(k) = crash_after {
        cmd.env("VINOD_TEST_CRASH_AFTER_OPS", k.to_string());
    }
    cmd.output().unwrap()
}

/// What vinod owns on the host for the crash test's Vino, as the host shows it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Owned {
    bridges: usize,
    dnsmasq: usize,
    volumes: usize,
    domains: usize,
}

/// One operation of a pass, by the kind of object it creates or removes.
#[derive(Clone, Copy)]
enum Object {
    Bridge,
    Dhcp,
    Volume,
    Domain,
}
use Object::{Bridge, Dhcp, Domain, Volume};

/// A fresh build of the Vino (4 VMs), in the order vinod applies it.
const BUILD: [Object; 10] = [
    Bridge, Dhcp, Volume, Volume, Volume, Volume, Domain, Domain, Domain, Domain,
];
/// Its teardown, in the order vinod applies it.
const TEARDOWN: [Object; 10] = [
    Domain, Domain, Domain, Domain, Volume, Volume, Volume, Volume, Dhcp, Bridge,
];
/// Where the teardown is killed (operations done before the kill).
const TEARDOWN_KILLS: [usize; 3] = [1, 5, 9];
const _: () = assert!(BUILD.len() + TEARDOWN_KILLS.len() == 13, "13 kill points");

impl Owned {
    /// The Vino fully built.
    const BUILT: Owned = Owned {
        bridges: 1,
        dnsmasq: 1,
        volumes: 4,
        domains: 4,
    };

    /// `self` after `ops`, each adding (`by = 1`) or removing (`by = -1`) one object.
    fn after(mut self, ops: &[Object], by: isize) -> Owned {
        for op in ops {
            let n = match op {
                Bridge => &mut self.bridges,
                Dhcp => &mut self.dnsmasq,
                Volume => &mut self.volumes,
                Domain => &mut self.domains,
            };
            *n = n.checked_add_signed(by).unwrap();
        }
        self
    }
}

struct Scene {
    netns: PathBuf,
    config: PathBuf,
    manifest: PathBuf,
    empty: PathBuf,
    pool: String,
    conf_needle: String,
}

impl Scene {
    fn converge(&self, manifest: &Path) {
        let out = vinod_once(&self.netns, &self.config, manifest, None);
        assert!(
            out.status.success(),
            "vinod did not converge: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs vinod on `manifest` with a kill after `k` operations; asserts it was killed.
    fn crash(&self, manifest: &Path, k: usize, when: &str) {
        let out = vinod_once(&self.netns, &self.config, manifest, Some(k));
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&out.status),
            Some(9),
            "{when}: vinod was not killed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// Runs vinod on `manifest` with a kill after `ops + 1` operations; asserts the pass has
    /// exactly `ops`, so the kill never comes and the host ends up as `want`.
    fn whole_pass(&self, manifest: &Path, ops: usize, want: Owned, what: &str) {
        let out = vinod_once(&self.netns, &self.config, manifest, Some(ops + 1));
        assert!(
            out.status.success(),
            "{what}, crash after {}: {:?}",
            ops + 1,
            out.status
        );
        self.check(want, &format!("{what} without a crash"));
    }

    fn owned(&self) -> Owned {
        Owned {
            bridges: bridges(&self.netns, "vcr0"),
            dnsmasq: processes(&self.conf_needle),
            volumes: volumes(&self.pool).len(),
            domains: domains("cr").0.len(),
        }
    }

    fn check(&self, want: Owned, when: &str) {
        assert_eq!(self.owned(), want, "{when}");
    }
}

#[test]
fn kill_9_at_thirteen_points_always_converges_without_leaks() {
    let Some(h) = harness() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let _reaper = Reaper(tmp.path().to_path_buf());
    let pool = format!("vinod-cr-{}", std::process::id());
    h.track_pool(&pool);
    for i in 0..4 {
        h.track_domain(&format!("lab.cr.worker-{i}"));
    }
    let s = Scene {
        netns: netns_of(&h),
        config: tmp.path().join("vinod.toml"),
        manifest: tmp.path().join("vino.yaml"),
        empty: tmp.path().join("empty.yaml"),
        pool: pool.clone(),
        conf_needle: format!("{}/run/dnsmasq/vcr0/dnsmasq.conf", tmp.path().display()),
    };
    std::fs::write(&s.config, config_text(tmp.path(), h.uri(), &pool, "")).unwrap();
    std::fs::write(&s.manifest, vino_yaml("cr", "vcr0", 64, 4, 1)).unwrap();
    std::fs::write(&s.empty, "").unwrap();
    let none = Owned::default();
    // What a failed earlier run left behind would shift every partial state.
    s.converge(&s.empty);
    s.check(none, "before the first crash");

    for k in 1..=BUILD.len() {
        let when = format!("build, crash after {k}");
        s.crash(&s.manifest, k, &when);
        s.check(none.after(&BUILD[..k], 1), &when);
        s.converge(&s.manifest);
        s.check(Owned::BUILT, &format!("{when}, converged"));
        s.converge(&s.empty);
        s.check(none, &format!("teardown after build crash {k}"));
    }
    s.whole_pass(&s.manifest, BUILD.len(), Owned::BUILT, "build");
    for k in TEARDOWN_KILLS {
        let when = format!("teardown, crash after {k}");
        s.crash(&s.empty, k, &when);
        s.check(Owned::BUILT.after(&TEARDOWN[..k], -1), &when);
        s.converge(&s.empty);
        s.check(none, &format!("{when}, converged"));
        s.converge(&s.manifest);
        s.check(Owned::BUILT, &format!("rebuilt after {when}"));
    }
    s.whole_pass(&s.empty, TEARDOWN.len(), none, "teardown");
}

fn status_ready(state: &Path, total: u32) -> bool {
    let text = std::fs::read_to_string(state.join("standalone/status.yaml")).unwrap_or_default();
    text.contains("phase: Ready")
        && text.contains(&format!("vmsReady: {total}"))
        && text.contains(&format!("vmsTotal: {total}"))
}

#[test]
fn standalone_daemon_builds_scales_and_leaves_vms_running_on_sigterm() {
    let Some(h) = harness() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let _reaper = Reaper(tmp.path().to_path_buf());
    let pool = format!("vinod-sa-{}", std::process::id());
    h.track_pool(&pool);
    for i in 0..3 {
        h.track_domain(&format!("lab.sa.worker-{i}"));
    }
    let netns = netns_of(&h);
    let config = tmp.path().join("vinod.toml");
    let manifest = tmp.path().join("vino.yaml");
    std::fs::write(&config, config_text(tmp.path(), h.uri(), &pool, "")).unwrap();
    std::fs::write(&manifest, vino_yaml("sa", "vsa0", 65, 2, 1)).unwrap();
    let state = tmp.path().join("state");

    let child = standalone_daemon(&netns, &config, &manifest)
        .spawn()
        .unwrap();
    let mut daemon = Daemon(child);
    wait_for("2 VMs ready", Duration::from_secs(60), || {
        status_ready(&state, 2)
    });
    let bmhs =
        std::fs::read_to_string(state.join("standalone/lab/sa/baremetalhosts.yaml")).unwrap();
    assert_eq!(bmhs.matches("kind: BareMetalHost").count(), 2);
    assert!(bmhs.contains("redfish+https://192.0.2.10:8000/redfish/v1/Systems/lab.sa.worker-0"));
    let secrets = state.join("standalone/lab/sa/secrets.yaml");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&secrets).unwrap().permissions()
        ) & 0o777,
        0o600
    );
    assert_eq!(
        processes(&format!(
            "{}/run/dnsmasq/vsa0/dnsmasq.conf",
            tmp.path().display()
        )),
        1
    );
    power_on("lab.sa.worker-0");
    let out = Command::new(env!("CARGO_BIN_EXE_vinod"))
        .args(["status", "--json", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "vinod status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snap: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snap["vms"].as_array().unwrap().len(), 2, "{snap}");
    assert!(
        snap["vms"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["defined"] == true
                && v["ips"][0].as_str().unwrap().starts_with("192.168.65."))
    );
    assert_eq!(snap["dhcp"][0]["running"], true);
    assert_eq!(snap["vinos"][0]["status"]["phase"], "Ready");
    let text = Command::new(env!("CARGO_BIN_EXE_vinod"))
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&text.stdout).contains("lab/sa"),
        "{}",
        String::from_utf8_lossy(&text.stdout)
    );

    std::fs::write(&manifest, vino_yaml("sa", "vsa0", 65, 3, 1)).unwrap();
    wait_for("scaled to 3", Duration::from_secs(60), || {
        status_ready(&state, 3)
    });
    assert_eq!(
        domains("sa"),
        (
            vec![
                "lab.sa.worker-0".into(),
                "lab.sa.worker-1".into(),
                "lab.sa.worker-2".into()
            ],
            1
        )
    );

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.0.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let began = Instant::now();
    let status = loop {
        if let Some(s) = daemon.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            began.elapsed() < Duration::from_secs(15),
            "vinod did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "{status:?}");
    assert_eq!(domains("sa").0.len(), 3, "SIGTERM must not remove VMs");
    assert_eq!(domains("sa").1, 1, "SIGTERM must not stop VMs");

    let empty = tmp.path().join("empty.yaml");
    std::fs::write(&empty, "").unwrap();
    let out = vinod_once(&netns, &config, &empty, None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(domains("sa").0.is_empty());
    drop(daemon);
}
