//! Facts about this machine read from the kernel: hostname and NUMA CPU layout.

use std::fs;
use std::net::IpAddr;
use std::path::Path;

use crate::plan::NumaNode;
use crate::value::cpuset::CpuSet;

/// The machine's hostname, or `localhost` if it cannot be read.
/// This host's Node name: `configured` (vinod.toml's `node_name`) unless empty, else the
/// hostname.
pub fn node_name(configured: &str) -> String {
    if configured.is_empty() {
        hostname()
    } else {
        configured.to_string()
    }
}

/// The kernel's hostname (`localhost` if it cannot be read).
pub fn hostname() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_else(|| "localhost".into())
}

/// CPUs per NUMA node from sysfs (`/sys/devices/system/node/node*/cpulist`); one node with all
/// online CPUs when the kernel exposes no NUMA information.
pub fn numa_nodes(sys: &Path) -> Vec<NumaNode> {
    let mut nodes = Vec::new();
    if let Ok(entries) = fs::read_dir(sys.join("devices/system/node")) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let Some(id) = name
                .strip_prefix("node")
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(cpus) = read_cpulist(&e.path().join("cpulist")) {
                nodes.push(NumaNode { id, cpus });
            }
        }
    }
    if nodes.is_empty()
        && let Some(cpus) = read_cpulist(&sys.join("devices/system/cpu/online"))
    {
        nodes.push(NumaNode { id: 0, cpus });
    }
    nodes.sort_by_key(|n| n.id);
    nodes
}

/// Global IPv4 addresses of this machine's interfaces (not loopback or link-local), in
/// interface order; used as the Node address when there is no cluster.
pub fn ipv4_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    addrs
        .filter_map(|a| a.address.and_then(|s| s.as_sockaddr_in().map(|v4| v4.ip())))
        .filter(|ip| !ip.is_loopback() && !ip.is_link_local() && !ip.is_unspecified())
        .map(IpAddr::V4)
        .collect()
}

fn read_cpulist(path: &Path) -> Option<CpuSet> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_sysfs_layout() {
        let dir = tempfile::tempdir().unwrap();
        for (n, list) in [("node0", "0-3\n"), ("node1", "4-7\n")] {
            let d = dir.path().join("devices/system/node").join(n);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("cpulist"), list).unwrap();
        }
        let nodes = numa_nodes(dir.path());
        assert_eq!(nodes.len(), 2);
        assert_eq!(nodes[1].cpus.to_string(), "4-7");
        let empty = tempfile::tempdir().unwrap();
        fs::create_dir_all(empty.path().join("devices/system/cpu")).unwrap();
        fs::write(empty.path().join("devices/system/cpu/online"), "0-1\n").unwrap();
        assert_eq!(numa_nodes(empty.path())[0].cpus.len(), 2);
    }
}
