//! What a benchmark reports besides its numbers, and where: the conditions it ran under, read
//! from the machine and from libvirt and printed above its table (CPU model and count, memory,
//! kernel, load average before and after, which libvirt driver answered, vinod's version), and
//! the writing of its section of `docs/benchmarks.md`. Also the CPU time of a process, for the
//! measurements.

// Each benchmark uses part of it.
#![allow(dead_code)]

/// The value of the first `key: value` line of `file` (such as `/proc/cpuinfo`) whose key is
/// `key`.
fn proc_value(file: &str, key: &str) -> Option<String> {
    let text = std::fs::read_to_string(file).ok()?;
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k.trim() == key).then(|| v.trim().to_string())
    })
}

/// The 1, 5 and 15 minute load averages, as the kernel prints them.
pub fn load_average() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The machine: CPU model, CPUs this process may use, memory, kernel.
pub fn machine() -> String {
    let cpu =
        proc_value("/proc/cpuinfo", "model name").unwrap_or_else(|| "CPU model unknown".into());
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib: f64 = proc_value("/proc/meminfo", "MemTotal")
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cpu}, {cpus} CPUs, {:.1} GiB memory, Linux {}",
        mem_kib / 1024.0 / 1024.0,
        kernel.trim()
    )
}

/// The list printed above a table: the machine, the load average before (`load_before`, from
/// [`load_average`] at the start) and now, then `setup`, one item each.
pub fn conditions(load_before: &str, setup: &[String]) -> String {
    let mut items = vec![
        format!("Machine: {}.", machine()),
        format!(
            "Load average (1, 5, 15 min) before: {load_before}; after: {}.",
            load_average()
        ),
    ];
    items.extend(setup.iter().cloned());
    let mut t: String = items.iter().map(|i| format!("- {i}\n")).collect();
    t.push('\n');
    t
}

/// `major.minor.release` of a libvirt version number.
fn version(v: u32) -> String {
    format!("{}.{}.{}", v / 1_000_000, v / 1000 % 1000, v % 1000)
}

/// What libvirt at `uri` is, as it answers a connection from this process: driver type,
/// hypervisor version (when it has one) and library version, e.g. `` `qemu:///system`
/// (driver QEMU 7.2.0, libvirt 9.0.0) ``.
pub fn libvirt_driver(uri: &str) -> String {
    let Ok(conn) = virt::connect::Connect::open(Some(uri)) else {
        return format!("`{uri}` (no answer)");
    };
    let kind = conn.driver_type().unwrap_or_else(|_| "?".into());
    let hyp = match conn.hyp_version() {
        Ok(v) if v > 0 => format!(" {}", version(v)),
        _ => String::new(),
    };
    let lib = conn
        .lib_version()
        .map(version)
        .unwrap_or_else(|_| "?".into());
    format!("`{uri}` (driver {kind}{hyp}, libvirt {lib})")
}

/// CPU time (user + system) process `pid` has used, in seconds; 0 if it cannot be read.
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command name: state, ppid, …; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat
        .rsplit_once(") ")
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    static HZ: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    let hz = HZ.get_or_init(|| {
        let out = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output();
        out.ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    });
    (tick(11) + tick(12)) as f64 / hz
}

/// The vinod binary to measure: `VINOD_BIN`, or the release build of this checkout; panics
/// if it does not exist.
pub fn vinod_binary() -> std::path::PathBuf {
    let vinod =
        std::path::PathBuf::from(std::env::var("VINOD_BIN").unwrap_or_else(|_| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/vinod").into()
        }));
    assert!(
        vinod.exists(),
        "{} is missing: build with `cargo build --release` or set VINOD_BIN",
        vinod.display()
    );
    vinod
}

/// What `<vinod> --version` prints, e.g. `vinod 0.1.0`.
pub fn vinod_version(vinod: &std::path::Path) -> String {
    let out = std::process::Command::new(vinod).arg("--version").output();
    out.map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

/// Replaces everything between `<!-- {marker}:start -->` and `<!-- {marker}:end -->` in
/// `docs/benchmarks.md` with a `## {title}` heading and `body`, so that a run leaves only its
/// own output there; appends the section if the markers are missing.
pub fn write_section(marker: &str, title: &str, body: &str) {
    let doc = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/benchmarks.md");
    let old = std::fs::read_to_string(&doc).unwrap_or_else(|_| "# Benchmarks\n".into());
    let (start, end) = (
        format!("<!-- {marker}:start -->"),
        format!("<!-- {marker}:end -->"),
    );
    let section = format!("{start}\n## {title}\n\n{body}{end}");
    let new = match (old.find(&start), old.find(&end)) {
        (Some(a), Some(b)) => format!("{}{}{}", &old[..a], section, &old[b + end.len()..]),
        _ => format!("{}\n\n{}\n", old.trim_end(), section),
    };
    std::fs::write(&doc, new).unwrap();
}
