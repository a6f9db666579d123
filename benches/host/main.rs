//! Host-side benchmarks (root): `cargo bench --bench host` (or `scripts/bench.sh`).
//!
//! - P3, an idle hour compressed: the standalone daemon with 16 VMs (libvirt test driver, real
//!   bridge and dnsmasq in a private network namespace) runs 120 resync passes with nothing
//!   changing; counted: host mutations, object file writes, CPU time, RSS.
//! - P5, power-on to lease: a VM defined by vinod on a real libvirtd (TCG) is powered on; time
//!   until vinod's dnsmasq has handed it its reserved address.
//!
//! Prints a Markdown table and writes it into `docs/benchmarks.md` between markers.

#[path = "../tests/common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::host::{Daemon, NetNs, Reaper, config_text, skip_reason, vino_yaml};
use common::libvirtd::Libvirtd;

const IDLE_PASSES: usize = 120;
const BOOTS: usize = 3;

fn proc_field(pid: u32, file: &str, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/{file}")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, r)| r.split_whitespace().collect())
        .unwrap_or_default();
    fields
        .get(11)
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        + fields
            .get(12)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
}

fn ticks_per_second() -> u64 {
    let out = Command::new("getconf").arg("CLK_TCK").output().ok();
    out.and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

struct Idle {
    passes: usize,
    applied: u64,
    written: u64,
    cpu_ms_per_pass: f64,
    rss_kib: u64,
    hwm_kib: u64,
    anon_kib: u64,
    file_kib: u64,
}

fn idle_hour(vinod: &Path) -> Idle {
    let ns = NetNs::new("bench-idle");
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper(dir.path().to_path_buf());
    let config = dir.path().join("vinod.toml");
    let text = config_text(dir.path(), "test:///default", "vinod-bench", "").replace(
        "[log]\nlevel = \"debug\"",
        "resync_ms = 100\n[log]\nlevel = \"info\"\nformat = \"json\"",
    );
    std::fs::write(&config, text).unwrap();
    let manifest = dir.path().join("vino.yaml");
    std::fs::write(&manifest, vino_yaml("bench", "vbench0", 70, 16, 1)).unwrap();
    let log = dir.path().join("vinod.log");
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(vinod)
        .args(["run", "--config"])
        .arg(&config)
        .arg("--standalone")
        .arg(&manifest)
        .stderr(std::fs::File::create(&log).unwrap())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let daemon = Daemon(child);
    let passes = |log: &Path| {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains("\"pass done\""))
            .count()
    };
    let began = Instant::now();
    while passes(&log) < 1 {
        assert!(began.elapsed() < Duration::from_secs(60), "no first pass");
        std::thread::sleep(Duration::from_millis(50));
    }
    // `ip netns exec` runs vinod as its child with the same pid after exec.
    let pid = daemon.0.id();
    let cpu0 = cpu_ticks(pid);
    let began = Instant::now();
    while passes(&log) < IDLE_PASSES + 1 {
        assert!(
            began.elapsed() < Duration::from_secs(300),
            "idle passes too slow"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let cpu = cpu_ticks(pid) - cpu0;
    let (rss, hwm) = (
        proc_field(pid, "status", "VmRSS:"),
        proc_field(pid, "status", "VmHWM:"),
    );
    let (anon, file) = (
        proc_field(pid, "status", "RssAnon:"),
        proc_field(pid, "status", "RssFile:"),
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let idle: Vec<serde_json::Value> = text
        .lines()
        .filter(|l| l.contains("\"pass done\""))
        .skip(1)
        .take(IDLE_PASSES)
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let sum = |k: &str| {
        idle.iter()
            .map(|v| v["fields"][k].as_u64().unwrap_or(0))
            .sum::<u64>()
    };
    drop(daemon);
    let empty = dir.path().join("empty.yaml");
    std::fs::write(&empty, "").unwrap();
    let _ = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(vinod)
        .args(["run", "--once", "--config"])
        .arg(&config)
        .arg("--standalone")
        .arg(&empty)
        .output();
    Idle {
        passes: idle.len(),
        applied: sum("applied"),
        written: sum("objects_written"),
        cpu_ms_per_pass: cpu as f64 * 1000.0 / ticks_per_second() as f64 / IDLE_PASSES as f64,
        rss_kib: rss,
        hwm_kib: hwm,
        anon_kib: anon,
        file_kib: file,
    }
}

fn power_on_to_lease(vinod: &Path) -> Option<Vec<f64>> {
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
    let mut times = Vec::new();
    for _ in 0..BOOTS {
        let before = std::fs::metadata(&leases).and_then(|m| m.modified()).ok();
        let began = Instant::now();
        dom.create().unwrap();
        loop {
            let now = std::fs::metadata(&leases).and_then(|m| m.modified()).ok();
            if now != before
                && std::fs::read_to_string(&leases)
                    .unwrap_or_default()
                    .contains("192.168.71.2 ")
            {
                break;
            }
            assert!(began.elapsed() < Duration::from_secs(120), "no lease");
            std::thread::sleep(Duration::from_millis(50));
        }
        times.push(began.elapsed().as_secs_f64());
        dom.destroy().unwrap();
    }
    std::fs::write(&manifest, "").unwrap();
    assert!(run(&manifest).status.success());
    Some(times)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if let Some(why) = skip_reason() {
        println!("skipped: {why}");
        return;
    }
    let vinod =
        PathBuf::from(std::env::var("VINOD_BIN").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/vinod").into()
        }));
    assert!(
        vinod.exists(),
        "{} is missing: build with `cargo build --release` or set VINOD_BIN",
        vinod.display()
    );
    let idle = idle_hour(&vinod);
    let boots = power_on_to_lease(&vinod);
    let cpus = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut t = String::new();
    let _ = writeln!(
        t,
        "Machine: {cpus} CPUs, kernel {}; vinod release build; `scripts/bench.sh`.\n",
        kernel.trim()
    );
    let _ = writeln!(t, "| Benchmark | Result | Target |\n|---|---|---|");
    let _ = writeln!(
        t,
        "| P3 idle (16 VMs, {} passes = 1 h at the 30 s resync) | {} host mutations, {} object writes | 0 |",
        idle.passes, idle.applied, idle.written
    );
    let _ = writeln!(
        t,
        "| P3 CPU per idle pass | {:.2} ms ({:.1} s per idle hour) | – |",
        idle.cpu_ms_per_pass,
        idle.cpu_ms_per_pass * 120.0 / 1000.0
    );
    let mb = |k: u64| k as f64 / 1024.0;
    let _ = writeln!(
        t,
        "| P3 memory | RSS {:.1} MB (peak {:.1}) = {:.1} MB anonymous (vinod's heap and stacks) + {:.1} MB file-backed (binary and shared libraries, libvirt's among them: shared, reclaimable) | RSS ≤ 25 MB |",
        mb(idle.rss_kib),
        mb(idle.hwm_kib),
        mb(idle.anon_kib),
        mb(idle.file_kib)
    );
    match boots {
        Some(b) => {
            let list = b
                .iter()
                .map(|s| format!("{s:.1} s"))
                .collect::<Vec<_>>()
                .join(", ");
            let _ = writeln!(
                t,
                "| P5 power-on → reserved lease (TCG, {BOOTS} boots) | {list} | – (KVM on real hosts is faster) |"
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
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/benchmarks.md");
    let old = std::fs::read_to_string(&doc).unwrap_or_else(|_| "# Benchmarks\n".into());
    let (start, end) = ("<!-- host-bench:start -->", "<!-- host-bench:end -->");
    let section = format!("{start}\n## Host (P3, P5)\n\n{t}{end}");
    let new = match (old.find(start), old.find(end)) {
        (Some(a), Some(b)) => format!("{}{}{}", &old[..a], section, &old[b + end.len()..]),
        _ => format!("{}\n{}\n", old.trim_end(), section),
    };
    std::fs::write(&doc, new).unwrap();
}
