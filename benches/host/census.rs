//! A census of what vinod manages on the host, taken from outside vinod: the links and IPv4
//! addresses of its network namespace, its dnsmasq processes, and the files under its state
//! directory. Two censuses that differ show a host mutation whatever vinod reports.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::common::host::NetNs;

/// Links by name: (ifindex, master, mtu, IPv4 addresses).
type Links = BTreeMap<String, (u64, String, u64, Vec<String>)>;

/// What was seen at one moment.
#[derive(Debug, PartialEq)]
pub struct Census {
    links: Links,
    /// Pids of the dnsmasq processes whose command line names the daemon's directory.
    dnsmasq: Vec<i32>,
    /// Files under the state directory: (inode, modification time in ns, length).
    files: BTreeMap<PathBuf, (u64, i64, u64)>,
}

/// Files vinod rewrites every pass by design (its status) or that dnsmasq writes (leases):
/// not host mutations by vinod.
fn rewritten_by_design(path: &Path) -> bool {
    path.file_name().is_some_and(|n| n == "status.yaml")
        || path.extension().is_some_and(|e| e == "leases")
}

fn walk(dir: &Path, out: &mut BTreeMap<PathBuf, (u64, i64, u64)>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&path) else {
            continue;
        };
        if meta.is_dir() {
            walk(&path, out);
        } else if meta.is_file() && !rewritten_by_design(&path) {
            let mtime = meta.mtime() * 1_000_000_000 + meta.mtime_nsec();
            out.insert(path, (meta.ino(), mtime, meta.len()));
        }
    }
}

impl Census {
    /// Takes a census of namespace `ns`, of the dnsmasq processes whose command line names
    /// `daemon_dir` (which holds the daemon's configuration, run and state directories) and of
    /// the files under `state_dir`.
    pub fn take(ns: &NetNs, daemon_dir: &Path, state_dir: &Path) -> Census {
        let json = |args: &[&str]| -> Vec<serde_json::Value> {
            serde_json::from_str(&ns.ip(args)).unwrap_or_default()
        };
        let mut links = Links::new();
        for l in json(&["-j", "link", "show"]) {
            let text = |k: &str| l[k].as_str().unwrap_or_default().to_string();
            let number = |k: &str| l[k].as_u64().unwrap_or(0);
            links.insert(
                text("ifname"),
                (number("ifindex"), text("master"), number("mtu"), Vec::new()),
            );
        }
        for a in json(&["-j", "-4", "addr", "show"]) {
            let name = a["ifname"].as_str().unwrap_or_default();
            if let Some(link) = links.get_mut(name) {
                for i in a["addr_info"].as_array().into_iter().flatten() {
                    link.3.push(format!("{}/{}", i["local"], i["prefixlen"]));
                }
            }
        }
        let needle = daemon_dir.display().to_string();
        let mut dnsmasq = Vec::new();
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            if comm.trim() == "dnsmasq" && String::from_utf8_lossy(&cmd).contains(&needle) {
                dnsmasq.push(pid);
            }
        }
        dnsmasq.sort_unstable();
        let mut files = BTreeMap::new();
        walk(state_dir, &mut files);
        Census {
            links,
            dnsmasq,
            files,
        }
    }

    /// What was counted: `3 links, 1 dnsmasq, 5 state files`.
    pub fn size(&self) -> String {
        format!(
            "{} links, {} dnsmasq, {} state files",
            self.links.len(),
            self.dnsmasq.len(),
            self.files.len()
        )
    }

    /// How many links, dnsmasq processes and files differ between `self` and `later`
    /// (appeared, disappeared or changed).
    pub fn changes(&self, later: &Census) -> usize {
        fn differ<K: Ord, V: PartialEq>(a: &BTreeMap<K, V>, b: &BTreeMap<K, V>) -> usize {
            let gone_or_changed = a.iter().filter(|(k, v)| b.get(*k) != Some(*v)).count();
            gone_or_changed + b.keys().filter(|k| !a.contains_key(*k)).count()
        }
        let pids =
            |c: &Census| -> BTreeMap<i32, ()> { c.dnsmasq.iter().map(|p| (*p, ())).collect() };
        differ(&self.links, &later.links)
            + differ(&pids(self), &pids(later))
            + differ(&self.files, &later.files)
    }
}
