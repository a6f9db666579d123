//! Host-side benchmarks (root): `cargo bench --bench host` (or `scripts/bench.sh`).
//!
//! - P3, an idle hour compressed (`idle.rs`): the standalone daemon with 16 VMs on libvirt's
//!   test driver, with a real bridge and dnsmasq in a private network namespace, runs 120
//!   resync passes with nothing changing; counted: host operations (vinod's metric), a census
//!   of the host, CPU time, RSS.
//! - P5, power-on to lease: a VM defined by vinod on a real libvirtd (TCG) is powered on; time
//!   until vinod's dnsmasq has handed it its reserved address.
//!
//! Prints the conditions and a Markdown table and writes them into `docs/benchmarks.md`
//! between markers, replacing what was there.

mod census;
#[path = "../../tests/common/mod.rs"]
mod common;
mod idle;
#[path = "../shared/report.rs"]
mod report;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::host::{Reaper, config_text, skip_reason, vino_yaml};
use common::libvirtd::Libvirtd;

const BOOTS: usize = 3;

/// How long P5 waits for a lease.
const LEASE_LIMIT: Duration = Duration::from_secs(120);

/// What P5 measured: the libvirt driver that answered, and per boot the seconds to the lease
/// or why there was none (the boots stop at the first failure).
struct Boots {
    driver: String,
    times: Vec<Result<f64, String>>,
}

/// P5 with the vinod binary `vinod`; `None` when no libvirtd can run here.
fn power_on_to_lease(vinod: &Path) -> Option<Boots> {
    let h = Libvirtd::start()?;
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper(dir.path().to_path_buf());
    let pool = format!("vinod-bench-{}", std::process::id());
    h.track_pool(&pool);
    h.track_domain("lab.boot.worker-0");
    let netns: PathBuf = h
        .netns()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/proc/self/ns/net"));
    let config = dir.path().join("vinod.toml");
    std::fs::write(&config, config_text(dir.path(), h.uri(), &pool, "")).unwrap();
    let manifest = dir.path().join("vino.yaml");
    let run = |m: &Path| {
        Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .arg(vinod)
            .args(["run", "--once", "--config"])
            .arg(&config)
            .arg("--standalone")
            .arg(m)
            .output()
            .unwrap()
    };
    std::fs::write(&manifest, vino_yaml("boot", "vboot0", 71, 1, 1)).unwrap();
    assert!(run(&manifest).status.success());
    let leases = dir.path().join("state/dnsmasq/vboot0.leases");
    let conn = virt::connect::Connect::open(Some(common::libvirtd::URI)).unwrap();
    let dom = conn.lookup_domain_by_name("lab.boot.worker-0").unwrap();
    let xml = dom.xml_desc(0).unwrap_or_default();
    let domain_type = xml
        .split_once("type='")
        .and_then(|(_, rest)| rest.split_once('\''))
        .map_or("?", |(t, _)| t);
    let driver = format!(
        "{} ({}), domain type {domain_type}{}",
        report::libvirt_driver(h.uri()),
        if h.owns_daemon() {
            "started by the benchmark in a network namespace of its own"
        } else {
            "a libvirtd that was already running, reused"
        },
        if domain_type == "qemu" {
            " (TCG: no KVM)"
        } else {
            ""
        }
    );
    let mut times = Vec::new();
    for _ in 0..BOOTS {
        let before = std::fs::metadata(&leases).and_then(|m| m.modified()).ok();
        let began = Instant::now();
        if let Err(e) = dom.create() {
            times.push(Err(format!("power-on failed: {e}")));
            break;
        }
        let leased = loop {
            let now = std::fs::metadata(&leases).and_then(|m| m.modified()).ok();
            if now != before
                && std::fs::read_to_string(&leases)
                    .unwrap_or_default()
                    .contains("192.168.71.2 ")
            {
                break true;
            }
            if began.elapsed() > LEASE_LIMIT {
                break false;
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let active = dom.is_active().unwrap_or(false);
        let _ = dom.destroy();
        if !leased {
            times.push(Err(format!(
                "no lease within {} s (VM {})",
                LEASE_LIMIT.as_secs(),
                if active { "running" } else { "not running" }
            )));
            break;
        }
        times.push(Ok(began.elapsed().as_secs_f64()));
    }
    std::fs::write(&manifest, "").unwrap();
    let teardown = run(&manifest);
    if !teardown.status.success() {
        eprintln!(
            "P5 teardown failed (the harness removes the domain and pool): {}",
            String::from_utf8_lossy(&teardown.stderr)
        );
    }
    Some(Boots { driver, times })
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if let Some(why) = skip_reason() {
        println!("skipped: {why}");
        return;
    }
    let vinod = report::vinod_binary();
    let load = report::load_average();
    let idle = idle::run(&vinod);
    let boots = power_on_to_lease(&vinod);
    let default_resync_ms = vinod::config::Config::parse("", "defaults")
        .expect("default configuration")
        .resync_ms;
    let mut setup = vec![
        format!(
            "Written by `cargo bench --bench host` (run by `scripts/bench.sh`); vinod: `{}`, release build.",
            report::vinod_version(&vinod)
        ),
        format!(
            "P3: `vinod run --standalone`, a real bridge and dnsmasq in a network namespace, resync every {} ms; libvirt {}: libvirt's test driver, whose domains live in vinod's process (no VM runs), so domain operations are seen only in vinod's own count.",
            idle::RESYNC_MS,
            report::libvirt_driver(idle::URI)
        ),
        format!(
            "P3 host operations: `vinod_operations_applied_total` from vinod's metrics endpoint, read after the first pass and after the idle passes; census (from outside vinod, same two moments): the namespace's links and IPv4 addresses, dnsmasq pids, state files (inode, mtime, size; without `status.yaml`, rewritten each pass, and dnsmasq's leases): {}.",
            idle.census_size
        ),
    ];
    match &boots {
        Some(b) => setup.push(format!(
            "P5: libvirtd {}, `vinod run --once` defines the VM, the benchmark starts it through libvirt.",
            b.driver
        )),
        None => setup.push("P5: not run: no libvirtd here.".into()),
    }
    let mut t = report::conditions(&load, &setup);
    let _ = writeln!(t, "| Benchmark | Result | Target |\n|---|---|---|");
    let hour_at = Duration::from_millis(default_resync_ms * idle::IDLE_PASSES);
    let _ = writeln!(
        t,
        "| P3 idle (16 VMs, {} passes; {} passes = {:.1} h at the default {} s resync) | {} host operations applied (vinod's metric); census: {} of the links, dnsmasq processes and state files changed | 0 |",
        idle.passes,
        idle::IDLE_PASSES,
        hour_at.as_secs_f64() / 3600.0,
        default_resync_ms / 1000,
        idle.applied,
        idle.census_changes
    );
    let _ = writeln!(
        t,
        "| P3 CPU per idle pass | {:.2} ms ({:.1} s per {} passes) | – |",
        idle.cpu_ms_per_pass,
        idle.cpu_ms_per_pass * idle::IDLE_PASSES as f64 / 1000.0,
        idle::IDLE_PASSES
    );
    let mb = |k: u64| k as f64 / 1024.0;
    let [rss, hwm, anon, file, shmem] = idle.memory_kib;
    let _ = writeln!(
        t,
        "| P3 memory (`/proc/<pid>/status` after the idle passes) | VmRSS {:.1} MB (VmHWM {:.1} MB) = RssAnon {:.1} MB + RssFile {:.1} MB + RssShmem {:.1} MB | RSS ≤ 25 MB |",
        mb(rss),
        mb(hwm),
        mb(anon),
        mb(file),
        mb(shmem)
    );
    match &boots {
        Some(b) => {
            let list = b
                .times
                .iter()
                .map(|r| match r {
                    Ok(s) => format!("{s:.1} s"),
                    Err(why) => why.clone(),
                })
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                t,
                "| P5 power-on → reserved lease ({BOOTS} boots) | {list} | – |"
            );
        }
        None => {
            let _ = writeln!(
                t,
                "| P5 power-on → reserved lease | not measured: no libvirtd here | – |"
            );
        }
    }
    println!("{t}");
    report::write_section("host-bench", "Host (P3, P5)", &t);
}
