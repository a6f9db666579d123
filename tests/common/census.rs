//! What a cluster host holds that vinod could change, measured from the host itself and from
//! the daemon's own counter, so that a drill can prove that nothing changed (e.g. while the API
//! server is away): links and their addresses, dnsmasq processes, the VMs the daemon reports,
//! `vinod_operations_applied_total` from its metrics endpoint and the `applied` records of its
//! JSON log.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::fd::AsFd;
use std::process::Command;
use std::time::Duration;

use nix::sched::{CloneFlags, setns};
use serde_json::Value;

use super::cluster::ClusterHost;
use super::log::LogRecords;

/// Where [`ClusterHost`] daemons serve their metrics, inside their network namespace.
pub const METRICS: &str = "127.0.0.1:9464";

/// One measurement of a host.
#[derive(Debug, Clone, PartialEq)]
pub struct HostCensus {
    /// Every link but loopback: name, index, MTU, state and addresses (`ip -j addr`).
    links: Vec<String>,
    /// The dnsmasq processes the daemon started.
    dnsmasq: Vec<i32>,
    /// The VMs the daemon reports, with whether libvirt has them as planned.
    vms: Option<Vec<(String, bool)>>,
    /// `vinod_operations_applied_total`.
    operations: Option<u64>,
    /// `applied` records in the daemon's log.
    logged_operations: usize,
}

impl HostCensus {
    /// Measures `host` now.
    pub fn of(host: &ClusterHost) -> HostCensus {
        let mut vms: Option<Vec<(String, bool)>> = host
            .snapshot()
            .map(|s| s.vms.iter().map(|v| (v.name.clone(), v.defined)).collect());
        if let Some(v) = vms.as_mut() {
            v.sort();
        }
        let mut dnsmasq = host.dnsmasq_pids();
        dnsmasq.sort();
        HostCensus {
            links: links(host.netns_name()),
            dnsmasq,
            vms,
            operations: metric(host, "vinod_operations_applied_total"),
            logged_operations: LogRecords::parse(&host.log()).host_operations(),
        }
    }

    /// `Ok` if `self` (measured later) shows no change since `before`; otherwise what changed.
    /// A counter that cannot be read counts as a change: the check must never pass blind.
    pub fn unchanged_since(&self, before: &HostCensus) -> Result<(), String> {
        let mut changes = Vec::new();
        if self.links != before.links {
            changes.push(format!("links {:?} → {:?}", before.links, self.links));
        }
        if self.dnsmasq != before.dnsmasq {
            changes.push(format!("dnsmasq {:?} → {:?}", before.dnsmasq, self.dnsmasq));
        }
        if self.vms.is_none() || self.vms != before.vms {
            changes.push(format!("VMs {:?} → {:?}", before.vms, self.vms));
        }
        if self.operations.is_none() || self.operations != before.operations {
            changes.push(format!(
                "operations applied {:?} → {:?}",
                before.operations, self.operations
            ));
        }
        if self.logged_operations != before.logged_operations {
            changes.push(format!(
                "logged operations {} → {}",
                before.logged_operations, self.logged_operations
            ));
        }
        if changes.is_empty() {
            Ok(())
        } else {
            Err(changes.join("; "))
        }
    }

    /// Host operations the daemon has applied since it started, by its counter.
    pub fn operations(&self) -> Option<u64> {
        self.operations
    }
}

/// The links of namespace `netns` but loopback, one line each with what identifies them.
fn links(netns: &str) -> Vec<String> {
    let out = Command::new("ip")
        .args(["-n", netns, "-j", "addr", "show"])
        .output()
        .expect("ip addr");
    assert!(out.status.success(), "ip -n {netns} addr");
    let all: Vec<Value> = serde_json::from_slice(&out.stdout).expect("ip -j output");
    let mut lines: Vec<String> = all
        .iter()
        .filter(|l| l["ifname"] != "lo")
        .map(|l| {
            let addrs: Vec<String> = l["addr_info"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|a| format!("{}/{}", a["local"], a["prefixlen"]))
                .collect();
            format!(
                "{} #{} mtu {} {} {}",
                l["ifname"],
                l["ifindex"],
                l["mtu"],
                l["operstate"],
                addrs.join(",")
            )
        })
        .collect();
    lines.sort();
    lines
}

/// The value of the daemon's metric `name`, read from [`METRICS`] inside its namespace.
pub fn metric(host: &ClusterHost, name: &str) -> Option<u64> {
    let netns = host.netns().to_path_buf();
    let body = std::thread::spawn(move || -> Option<String> {
        let inside = std::fs::File::open(&netns).ok()?;
        setns(inside.as_fd(), CloneFlags::CLONE_NEWNET).ok()?;
        let mut conn = TcpStream::connect(METRICS).ok()?;
        conn.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        conn.write_all(b"GET /metrics HTTP/1.0\r\nHost: vinod\r\n\r\n")
            .ok()?;
        let mut text = String::new();
        conn.read_to_string(&mut text).ok()?;
        Some(text)
    })
    .join()
    .ok()??;
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}
