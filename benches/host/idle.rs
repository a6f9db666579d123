//! P3, an idle hour compressed: the standalone daemon with 16 VMs runs 120 resync passes with
//! nothing changing. Counted from vinod's metrics endpoint: passes and host operations applied
//! (`vinod_operations_applied_total`); from outside vinod: a census of the host before and
//! after, CPU time and memory from `/proc`.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::census::Census;
use crate::common::host::{Daemon, NetNs, Reaper, config_text, in_netns, vino_yaml};
use crate::report::cpu_seconds;

/// Passes counted: an hour at the default resync period.
pub const IDLE_PASSES: u64 = 120;
/// libvirt driver vinod uses in P3: the test driver, whose domains live in vinod's process.
pub const URI: &str = "test:///default";
const METRICS_PORT: u16 = 9464;
/// The compressed resync period.
pub const RESYNC_MS: u64 = 100;

/// What P3 measured.
pub struct Idle {
    /// Passes between the two metric readings.
    pub passes: u64,
    /// `vinod_operations_applied_total` over those passes.
    pub applied: u64,
    /// Links, dnsmasq processes and state files that changed between the two censuses.
    pub census_changes: usize,
    /// What the census covered.
    pub census_size: String,
    /// CPU time per pass, ms.
    pub cpu_ms_per_pass: f64,
    /// From `/proc/<pid>/status` at the end, kB: VmRSS, VmHWM, RssAnon, RssFile, RssShmem.
    pub memory_kib: [u64; 5],
}

fn status_field(pid: u32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    text.lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The value of `name` on vinod's metrics endpoint in namespace `ns`, if it answers.
fn metric(ns: &Path, name: &'static str) -> Option<u64> {
    in_netns(ns, move || async move {
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", METRICS_PORT)).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        conn.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
        let mut text = String::new();
        conn.read_to_string(&mut text).ok()?;
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Polls until vinod reports `at_least` passes; panics after `limit`.
fn wait_passes(ns: &Path, at_least: u64, limit: Duration) {
    let began = Instant::now();
    while metric(ns, "vinod_reconcile_passes_total").unwrap_or(0) < at_least {
        assert!(
            began.elapsed() < limit,
            "fewer than {at_least} passes in {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Runs P3 with the vinod binary `vinod`.
pub fn run(vinod: &Path) -> Idle {
    let ns = NetNs::new("bench-idle");
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper(dir.path().to_path_buf());
    let config = dir.path().join("vinod.toml");
    let text = config_text(dir.path(), URI, "vinod-bench", "").replace(
        "[log]\nlevel = \"debug\"",
        &format!("resync_ms = {RESYNC_MS}\n[metrics]\nlisten = \"127.0.0.1:{METRICS_PORT}\"\n[log]\nlevel = \"info\"\nformat = \"json\""),
    );
    std::fs::write(&config, text).unwrap();
    let manifest = dir.path().join("vino.yaml");
    std::fs::write(&manifest, vino_yaml("bench", "vbench0", 70, 16, 1)).unwrap();
    let child = Command::new("ip")
        .args(["netns", "exec", &ns.name])
        .arg(vinod)
        .args(["run", "--config"])
        .arg(&config)
        .arg("--standalone")
        .arg(&manifest)
        .stderr(std::fs::File::create(dir.path().join("vinod.log")).unwrap())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let daemon = Daemon(child);
    // The first pass builds everything; the idle hour starts after it.
    wait_passes(&ns.path(), 2, Duration::from_secs(60));
    // `ip netns exec` runs vinod as its child with the same pid after exec.
    let pid = daemon.0.id();
    let state_dir = dir.path().join("state");
    let census0 = Census::take(&ns, dir.path(), &state_dir);
    let read = |name| metric(&ns.path(), name).expect("vinod's metrics");
    let cpu0 = cpu_seconds(pid);
    let passes0 = read("vinod_reconcile_passes_total");
    let applied0 = read("vinod_operations_applied_total");
    // Sleeping through most of the hour first keeps the metric reads out of the CPU count.
    std::thread::sleep(Duration::from_millis(RESYNC_MS * IDLE_PASSES));
    wait_passes(&ns.path(), passes0 + IDLE_PASSES, Duration::from_secs(300));
    let passes = read("vinod_reconcile_passes_total") - passes0;
    let applied = read("vinod_operations_applied_total") - applied0;
    let cpu = cpu_seconds(pid) - cpu0;
    let census1 = Census::take(&ns, dir.path(), &state_dir);
    let memory_kib =
        ["VmRSS:", "VmHWM:", "RssAnon:", "RssFile:", "RssShmem:"].map(|k| status_field(pid, k));
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
        passes,
        applied,
        census_changes: census0.changes(&census1),
        census_size: census0.size(),
        cpu_ms_per_pass: cpu * 1000.0 / passes.max(1) as f64,
        memory_kib,
    }
}
