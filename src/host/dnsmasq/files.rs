//! Files of one server: the layout under `<run_dir>/dnsmasq/<bridge>/`, the ownership marker,
//! the paths named by the configuration, and atomic writes that dnsmasq (running as `nobody`)
//! can read.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::DnsmasqError;
use crate::state::{DhcpServer, Owner};

const DIR_MODE: u32 = 0o755;
const FILE_MODE: u32 = 0o644;

/// Where the files of the server on one bridge live.
#[derive(Clone, Debug)]
pub(super) struct Layout {
    /// Bridge served.
    pub bridge: String,
    /// `<run_dir>/dnsmasq/<bridge>`.
    pub dir: PathBuf,
    /// The configuration dnsmasq runs with.
    pub conf: PathBuf,
    /// Where a configuration is put for `dnsmasq --test` before it replaces `conf`.
    pub conf_new: PathBuf,
    /// dnsmasq's pid file.
    pub pid: PathBuf,
    /// Ownership marker: only directories holding it are vinod's.
    pub marker: PathBuf,
}

impl Layout {
    /// The layout for `bridge`, which must be usable as a single path component.
    pub fn new(run_dir: &Path, bridge: &str) -> Result<Layout, DnsmasqError> {
        if !is_plain_name(bridge) {
            return Err(DnsmasqError::BadName {
                bridge: bridge.into(),
                name: bridge.into(),
            });
        }
        let dir = servers_dir(run_dir).join(bridge);
        Ok(Layout {
            bridge: bridge.into(),
            conf: dir.join("dnsmasq.conf"),
            conf_new: dir.join(".dnsmasq.conf.new"),
            pid: dir.join("dnsmasq.pid"),
            marker: dir.join("owner"),
            dir,
        })
    }

    /// Wraps an I/O error on `path` with this server's bridge.
    pub fn io(&self, action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> DnsmasqError {
        let (bridge, path) = (self.bridge.clone(), path.to_path_buf());
        move |source| DnsmasqError::Io {
            bridge,
            action,
            path,
            source,
        }
    }
}

/// The parent of all servers' directories.
pub(super) fn servers_dir(run_dir: &Path) -> PathBuf {
    run_dir.join("dnsmasq")
}

/// A name usable as one path component that dnsmasq's directory watch does not skip.
pub(super) fn is_plain_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && !name.ends_with('~')
        && !name.contains(['/', '\0', '\n'])
}

/// The paths a configuration names with `dhcp-hostsdir=` and `dhcp-leasefile=`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Named {
    /// Directory of reservation files.
    pub hostsdir: PathBuf,
    /// Lease database.
    pub leasefile: PathBuf,
}

impl Named {
    /// Reads both paths from `config`; each must be present and absolute.
    pub fn from_config(bridge: &str, network: &str, config: &str) -> Result<Named, DnsmasqError> {
        let find = |directive: &'static str| {
            config
                .lines()
                .filter_map(|l| l.trim().strip_prefix(directive)?.strip_prefix('='))
                .map(|v| PathBuf::from(v.trim()))
                .next_back()
                .filter(|p| p.is_absolute())
                .ok_or_else(|| DnsmasqError::MissingPath {
                    bridge: bridge.into(),
                    network: network.into(),
                    directive,
                })
        };
        Ok(Named {
            hostsdir: find("dhcp-hostsdir")?,
            leasefile: find("dhcp-leasefile")?,
        })
    }
}

/// Creates `dir` and each missing parent, every one traversable by dnsmasq's `nobody` whatever
/// the umask (the unit's is 0077). Returns whether it was created.
pub(super) fn ensure_dir(layout: &Layout, dir: &Path) -> Result<bool, DnsmasqError> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.is_dir()).collect();
    for d in missing.iter().rev() {
        match fs::create_dir(d) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => {
                return Err(layout.io("create", d)(e));
            }
            _ => {}
        }
        fs::set_permissions(d, fs::Permissions::from_mode(DIR_MODE))
            .map_err(layout.io("chmod", d))?;
    }
    Ok(!missing.is_empty())
}

/// Writes `content` to `path` through a hidden temporary file and a rename, so readers (and
/// dnsmasq's inotify watch, which skips dot files) only ever see complete files.
pub(super) fn write_atomic(
    layout: &Layout,
    path: &Path,
    content: &str,
) -> Result<(), DnsmasqError> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    fs::write(&tmp, content).map_err(layout.io("write", &tmp))?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(FILE_MODE))
        .map_err(layout.io("chmod", &tmp))?;
    fs::rename(&tmp, path).map_err(layout.io("rename", &tmp))
}

/// Removes a file; a missing file is fine.
pub(super) fn remove_file(layout: &Layout, path: &Path) -> Result<(), DnsmasqError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(layout.io("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Removes a directory tree; a missing one is fine.
pub(super) fn remove_dir(layout: &Layout, path: &Path) -> Result<(), DnsmasqError> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(layout.io("remove", path)(e)),
        _ => Ok(()),
    }
}

/// Writes the ownership marker: owner and network, one `key=value` per line.
pub(super) fn write_marker(layout: &Layout, server: &DhcpServer) -> Result<(), DnsmasqError> {
    let text = format!("owner={}\nnetwork={}\n", server.owner, server.network);
    write_atomic(layout, &layout.marker, &text)
}

/// Reads the ownership marker: `None` if the directory is not vinod's.
pub(super) fn read_marker(layout: &Layout) -> Result<Option<(Owner, String)>, DnsmasqError> {
    let text = match fs::read_to_string(&layout.marker) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        other => other.map_err(layout.io("read", &layout.marker))?,
    };
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
    };
    let parsed = value("owner")
        .and_then(|o| o.split_once('/'))
        .zip(value("network"));
    match parsed {
        Some(((namespace, name), network)) => Ok(Some((
            Owner {
                namespace: namespace.into(),
                name: name.into(),
            },
            network.into(),
        ))),
        None => Err(DnsmasqError::BadMarker {
            bridge: layout.bridge.clone(),
            path: layout.marker.clone(),
        }),
    }
}

/// The reservation files in `hostsdir` (name → content), skipping hidden and backup files as
/// dnsmasq does.
pub(super) fn read_hosts(
    layout: &Layout,
    hostsdir: &Path,
) -> Result<BTreeMap<String, String>, DnsmasqError> {
    let mut hosts = BTreeMap::new();
    let entries = match fs::read_dir(hostsdir) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(hosts),
        other => other.map_err(layout.io("list", hostsdir))?,
    };
    for entry in entries {
        let entry = entry.map_err(layout.io("list", hostsdir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !is_plain_name(&name) || !entry.file_type().is_ok_and(|t| t.is_file()) {
            continue;
        }
        let content = fs::read_to_string(entry.path()).map_err(layout.io("read", &entry.path()))?;
        hosts.insert(name, content);
    }
    Ok(hosts)
}

/// Makes `hostsdir` hold exactly `hosts`. Returns whether a file was removed or rewritten,
/// which dnsmasq only notices on SIGHUP (its watch only adds records).
pub(super) fn sync_hosts(
    layout: &Layout,
    hostsdir: &Path,
    hosts: &BTreeMap<String, String>,
) -> Result<bool, DnsmasqError> {
    if let Some(bad) = hosts.keys().find(|n| !is_plain_name(n)) {
        return Err(DnsmasqError::BadName {
            bridge: layout.bridge.clone(),
            name: bad.clone(),
        });
    }
    ensure_dir(layout, hostsdir)?;
    let present = read_hosts(layout, hostsdir)?;
    let mut dropped = false;
    for name in present.keys().filter(|n| !hosts.contains_key(*n)) {
        remove_file(layout, &hostsdir.join(name))?;
        dropped = true;
    }
    for (name, content) in hosts {
        match present.get(name) {
            Some(old) if old == content => {}
            old => {
                write_atomic(layout, &hostsdir.join(name), content)?;
                dropped |= old.is_some();
            }
        }
    }
    Ok(dropped)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_paths_must_be_present_and_absolute() {
        let c = "port=0\ndhcp-hostsdir=/run/v/h\ndhcp-leasefile=/var/lib/v/br0.leases\n";
        let n = Named::from_config("br0", "pxe", c).unwrap();
        assert_eq!(n.hostsdir, PathBuf::from("/run/v/h"));
        assert_eq!(n.leasefile, PathBuf::from("/var/lib/v/br0.leases"));
        let e =
            Named::from_config("br0", "pxe", "dhcp-hostsdir=/h\ndhcp-leasefile=rel\n").unwrap_err();
        assert!(
            e.to_string().contains("dhcp-leasefile") && e.to_string().contains("br0"),
            "{e}"
        );
        assert!(Named::from_config("br0", "pxe", "dhcp-leasefile=/l\n").is_err());
    }

    #[test]
    fn hosts_sync_and_marker_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path(), "br0").unwrap();
        let hostsdir = layout.dir.join("hosts");
        let mut hosts = BTreeMap::from([("a".to_string(), "m1,1.2.3.4,a\n".to_string())]);
        assert!(!sync_hosts(&layout, &hostsdir, &hosts).unwrap());
        hosts.insert("b".into(), "m2,1.2.3.5,b\n".into());
        assert!(!sync_hosts(&layout, &hostsdir, &hosts).unwrap());
        assert_eq!(read_hosts(&layout, &hostsdir).unwrap(), hosts);
        let mode = fs::metadata(hostsdir.join("b"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, FILE_MODE);
        hosts.remove("a");
        assert!(sync_hosts(&layout, &hostsdir, &hosts).unwrap());
        assert_eq!(read_hosts(&layout, &hostsdir).unwrap(), hosts);
        assert!(
            sync_hosts(
                &layout,
                &hostsdir,
                &BTreeMap::from([(".x".into(), String::new())])
            )
            .is_err()
        );

        let server = DhcpServer {
            bridge: "br0".into(),
            network: "pxe".into(),
            owner: Owner {
                namespace: "ns".into(),
                name: "v".into(),
            },
            config: String::new(),
            hostsdir: "/run/v/hosts".into(),
            leasefile: "/var/lib/v/br0.leases".into(),
            hosts: BTreeMap::new(),
        };
        assert_eq!(read_marker(&layout).unwrap(), None);
        write_marker(&layout, &server).unwrap();
        assert_eq!(
            read_marker(&layout).unwrap(),
            Some((server.owner, "pxe".into()))
        );
        assert!(Layout::new(dir.path(), "../x").is_err());
    }
}
