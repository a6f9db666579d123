//! A running daemon under a connection flood on its BMC. The attack as reported: a thousand idle
//! connections, opened in seconds without credentials, used up the daemon's file descriptors,
//! so a legitimate request failed and every pass failed with `Too many open files`. The daemon
//! runs here with the unit's `LimitNOFILE` (read from `systemd/vinod.service`; the machine's hard
//! limit if that is lower), its passes run
//! every 300 ms, and 1500 idle plus 200 slow-head connections hold the BMC: passes keep
//! succeeding, none fails on descriptors, and an authorized client is answered.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::host::{
    Daemon, NetNs, Reaper, config_text, in_netns, skip_reason, vino_yaml, wait_for,
};
use common::log::LogRecords;

const UNIT: &str = include_str!("../systemd/vinod.service");
const IDLE: usize = 1500;
const SLOW_HEAD: usize = 200;

/// The unit's `LimitNOFILE`, or this machine's hard limit if that is lower (raising it needs a
/// capability a container may not have).
fn limit_nofile() -> u64 {
    let unit: u64 = UNIT
        .lines()
        .find_map(|l| l.strip_prefix("LimitNOFILE="))
        .expect("the unit sets LimitNOFILE")
        .parse()
        .expect("a number");
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let hard: u64 = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4)?.parse().ok())
        .unwrap_or(unit);
    unit.min(hard)
}

/// One authorized GET on a fresh connection: its status (0 if none came).
fn authorized_get(addr: SocketAddr, path: &str) -> u16 {
    common::bmc_client::authorized_get(addr, path, "admin", "pw", Duration::from_secs(10)).0
}

#[test]
fn passes_and_authorized_clients_go_on_under_a_connection_flood() {
    if let Some(why) = skip_reason() {
        return common::prereq::skip(why);
    }
    // The flood's own sockets need more descriptors than a test process is given.
    let own = format!("--nofile={0}:{0}", IDLE + SLOW_HEAD + 512);
    let raised = std::process::Command::new("prlimit")
        .args(["--pid", &std::process::id().to_string(), &own])
        .status()
        .unwrap();
    assert!(raised.success(), "prlimit {own}");

    let ns = NetNs::new("dfl");
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper(dir.path().to_path_buf());
    let config = dir.path().join("vinod.toml");
    // Passes every 300 ms (a top-level key, so before the first table); plain HTTP.
    let text = format!(
        "resync_ms = 300\n{}",
        config_text(dir.path(), "test:///default", "vinod-dfl", "")
            .replace("[redfish]\n", "[redfish]\ntls = false\n")
    );
    std::fs::write(&config, text).unwrap();
    let manifest = dir.path().join("vinos.yaml");
    std::fs::write(&manifest, vino_yaml("dfl", "vdf0", 94, 1, 1)).unwrap();
    let log = dir.path().join("daemon.log");
    let nofile = limit_nofile();
    let cap = vinod::redfish::listener::Limits::default().max_connections as u64;
    assert!(
        nofile > cap + 1000,
        "a limit of {nofile} descriptors leaves no room beside the BMC's {cap} connections"
    );
    let child = std::process::Command::new("nsenter")
        .arg(format!("--net={}", ns.path().display()))
        .arg("prlimit")
        .arg(format!("--nofile={nofile}:{nofile}"))
        .arg("--")
        .arg(env!("CARGO_BIN_EXE_vinod"))
        .args(["run", "--config"])
        .arg(&config)
        .arg("--standalone")
        .arg(&manifest)
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let _daemon = Daemon(child);
    let records = |log: &std::path::Path| {
        LogRecords::parse(&std::fs::read_to_string(log).unwrap_or_default())
    };
    wait_for("the first pass", Duration::from_secs(30), || {
        records(&log).count("pass done") > 0
    });

    let addr: SocketAddr = "127.0.0.1:8000".parse().unwrap();
    let system = "/redfish/v1/Systems/lab.dfl.worker-0";
    let flood_log = log.clone();
    let (served, flood_passes) = in_netns(&ns.path(), move || async move {
        assert_eq!(authorized_get(addr, system), 200, "before the flood");
        let before = records(&flood_log).count("pass done");
        let idle: Vec<TcpStream> = (0..IDLE)
            .filter_map(|_| TcpStream::connect(addr).ok())
            .collect();
        let slow: Vec<TcpStream> = (0..SLOW_HEAD)
            .filter_map(|_| {
                let mut s = TcpStream::connect(addr).ok()?;
                s.write_all(b"GET /redfish/v1/ HTTP/1.1\r\nHost: bmc\r\n")
                    .ok()?;
                Some(s)
            })
            .collect();
        assert!(
            idle.len() + slow.len() > 1024,
            "the flood must overflow the BMC's table"
        );
        let served: Vec<u16> = (0..10)
            .map(|_| {
                std::thread::sleep(Duration::from_millis(300));
                authorized_get(addr, system)
            })
            .collect();
        // Passes while the flood holds its connections.
        let during = records(&flood_log).count("pass done") - before;
        drop((idle, slow));
        (served, during)
    });
    assert!(
        served.iter().all(|s| *s == 200),
        "authorized GETs during the flood: {served:?}"
    );
    assert!(
        flood_passes >= 3,
        "only {flood_passes} passes during the flood"
    );
    let r = records(&log);
    let failed: Vec<_> = r
        .with_message("pass done")
        .filter(|p| p["fields"]["errors"].as_u64() != Some(0))
        .collect();
    assert!(failed.is_empty(), "passes with errors: {failed:?}");
    assert_eq!(r.count("pass failed; nothing was changed"), 0);
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(!text.contains("Too many open files"), "descriptors ran out");
}
