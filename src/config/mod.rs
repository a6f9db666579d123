//! The daemon's configuration file (`/etc/vino/vinod.toml`): strict TOML, every key optional
//! with a documented default (see `packaging/vinod.toml`). Parsing is pure; callers read the file.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

mod address;
mod dhcp;
mod network;
mod redfish;

pub use dhcp::{BRIDGE_IP, DhcpConfig};
pub use network::NetworkConfig;
pub use redfish::RedfishConfig;

/// Where the packaged configuration lives.
pub const DEFAULT_PATH: &str = "/etc/vino/vinod.toml";

/// Errors of the configuration module.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not valid TOML or has an unknown key or a wrongly typed value.
    #[error("{path}: {message}")]
    Syntax {
        /// The file.
        path: String,
        /// The parser's message, which names the key and line.
        message: String,
    },
    /// A value is well-typed but unusable.
    #[error("{path}: {key}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// Dotted key.
        key: String,
        /// What is wrong.
        reason: String,
    },
}

/// vinod's configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// This host's Kubernetes Node name. Empty: the machine's hostname.
    pub node_name: String,
    /// Persistent state (claims, certificates, standalone output).
    pub state_dir: PathBuf,
    /// Runtime files (dnsmasq configs and pid files, the status socket).
    pub run_dir: PathBuf,
    /// Milliseconds between passes when nothing triggers one (0: the default, 30 000).
    pub resync_ms: u64,
    /// Logging.
    pub log: LogConfig,
    /// libvirt.
    pub libvirt: LibvirtConfig,
    /// DHCP/TFTP servers.
    pub dhcp: DhcpConfig,
    /// The Redfish BMC.
    pub redfish: RedfishConfig,
    /// VNC consoles.
    pub vnc: VncConfig,
    /// BareMetalHost labels.
    pub labels: LabelsConfig,
    /// Prometheus metrics.
    pub metrics: MetricsConfig,
    /// What Vinos may do to the host's own network.
    pub network: NetworkConfig,
}

/// Metrics settings.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    /// `address:port` serving `GET /metrics`. Empty: off.
    #[serde(with = "address::metrics_listen")]
    pub listen: Option<SocketAddr>,
}

/// Logging settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Level or tracing filter; `RUST_LOG` overrides it.
    pub level: String,
    /// `auto` (journald under systemd, text on a terminal), `journald`, `text` or `json`.
    pub format: String,
}

/// libvirt settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LibvirtConfig {
    /// Connection URI.
    pub uri: String,
    /// Domain type: `kvm` on real hosts, `qemu` (TCG) where KVM is unavailable.
    pub domain_type: String,
    /// QEMU machine type.
    pub machine: String,
    /// Name of vinod's own storage pool.
    pub pool_name: String,
    /// Directory of that pool.
    pub pool_path: PathBuf,
    /// Directory of the VMs' serial console logs.
    pub console_log_dir: PathBuf,
}

/// VNC settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VncConfig {
    /// Address VNC consoles listen on (`enableVNC`). Loopback by default: reach it over SSH.
    #[serde(with = "address::vnc_listen")]
    pub listen: IpAddr,
}

/// BareMetalHost label settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LabelsConfig {
    /// Node label holding the host's rack, published as `vino.airshipit.org/rack`.
    pub rack_label: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: "auto".into(),
        }
    }
}

impl Default for LibvirtConfig {
    fn default() -> Self {
        Self {
            uri: "qemu:///system".into(),
            domain_type: "kvm".into(),
            machine: "pc".into(),
            pool_name: "vinod".into(),
            pool_path: "/var/lib/vinod/pool".into(),
            console_log_dir: "/var/log/vinod/console".into(),
        }
    }
}

impl Default for VncConfig {
    fn default() -> Self {
        Self {
            listen: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }
}

impl Default for LabelsConfig {
    fn default() -> Self {
        Self {
            rack_label: "airshipit.org/rack".into(),
        }
    }
}

impl Config {
    /// Parses and validates the text of a configuration file; `path` only names it in errors.
    pub fn parse(text: &str, path: &str) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| {
            let line = e
                .span()
                .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
            let source = line
                .and_then(|l| text.lines().nth(l - 1))
                .map(str::trim)
                .unwrap_or("");
            let quoted: String = source.chars().take(80).collect();
            ConfigError::Syntax {
                path: path.into(),
                message: match line {
                    Some(l) => format!("line {l} (`{quoted}`): {}", e.message()),
                    None => e.message().to_string(),
                },
            }
        })?;
        if config.state_dir.as_os_str().is_empty() {
            config.state_dir = "/var/lib/vinod".into();
        }
        if config.run_dir.as_os_str().is_empty() {
            config.run_dir = "/run/vinod".into();
        }
        if config.resync_ms == 0 {
            config.resync_ms = 30_000;
        }
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let bad = |key: &str, reason: String| {
            Err(ConfigError::Invalid {
                path: path.into(),
                key: key.into(),
                reason,
            })
        };
        if !self.node_name.is_empty() && !crate::value::syntax::is_dns_subdomain(&self.node_name) {
            return bad(
                "node_name",
                format!("{} is not a valid Node name", shown(&self.node_name)),
            );
        }
        if !matches!(
            self.log.format.as_str(),
            "auto" | "journald" | "text" | "json"
        ) {
            return bad(
                "log.format",
                format!(
                    "{}: use auto, journald, text or json",
                    shown(&self.log.format)
                ),
            );
        }
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&self.log.level) {
            return bad(
                "log.level",
                format!(
                    "{}: {e} (use a level such as info, or directives such as vinod=debug)",
                    shown(&self.log.level)
                ),
            );
        }
        if let Some((key, reason)) = self.network.problem() {
            return bad(&key, reason);
        }
        if !matches!(self.libvirt.domain_type.as_str(), "kvm" | "qemu") {
            return bad(
                "libvirt.domain_type",
                format!("{}: use kvm or qemu", shown(&self.libvirt.domain_type)),
            );
        }
        for (key, dir) in [
            ("state_dir", &self.state_dir),
            ("run_dir", &self.run_dir),
            ("libvirt.pool_path", &self.libvirt.pool_path),
            ("libvirt.console_log_dir", &self.libvirt.console_log_dir),
        ] {
            if !dir.is_absolute() {
                let dir = dir.display().to_string();
                return bad(key, format!("{} is not an absolute path", shown(&dir)));
            }
            // Paths under these go into dnsmasq's and libvirt's configuration.
            if let Some(reason) = dhcp::path_problem(dir) {
                return bad(key, reason);
            }
        }
        if let Some((key, reason)) = self.dhcp.problem() {
            return bad(&key, reason);
        }
        if !valid_lease_time(&self.dhcp.lease_time) {
            return bad(
                "dhcp.lease_time",
                format!(
                    "{}: use seconds, or a number with s/m/h/d/w, or infinite",
                    shown(&self.dhcp.lease_time)
                ),
            );
        }
        if self.resync_ms < 100 {
            return bad("resync_ms", format!("{} is below 100", self.resync_ms));
        }
        if let Some((key, reason)) = self.redfish.problem() {
            return bad(&key, reason);
        }
        if let Some(e) = crate::value::syntax::label_key_error(&self.labels.rack_label) {
            return bad("labels.rack_label", e);
        }
        Ok(())
    }
}

/// `value` quoted for an error message, cut to 64 characters: a hostile file's values are not
/// echoed whole.
fn shown(value: &str) -> String {
    const MAX: usize = 64;
    if value.chars().count() <= MAX {
        return format!("{value:?}");
    }
    let head: String = value.chars().take(MAX).collect();
    format!("{head:?}… ({} characters)", value.chars().count())
}

fn valid_lease_time(s: &str) -> bool {
    if s == "infinite" {
        return true;
    }
    let digits = s.trim_end_matches(['s', 'm', 'h', 'd', 'w']);
    let unit_len = s.len() - digits.len();
    unit_len <= 1 && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        let c = Config::parse("", "t.toml").unwrap();
        assert_eq!(c.state_dir, PathBuf::from("/var/lib/vinod"));
        assert_eq!(c.libvirt.domain_type, "kvm");
        assert_eq!(c.redfish.port, 8000);
        assert!(c.redfish.tls);
    }

    #[test]
    fn shipped_example_is_the_defaults() {
        let text = include_str!("../../packaging/vinod.toml");
        let uncommented: String = text
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|r| !r.starts_with(['#', ' ']))
                    .map_or(l.to_string(), |r| r.to_string())
            })
            .collect::<Vec<_>>()
            .join("\n");
        let from_example = Config::parse(&uncommented, "vinod.toml").unwrap();
        assert_eq!(from_example, Config::parse("", "t").unwrap());
    }

    #[test]
    fn unknown_and_bad_keys_are_named() {
        let e = Config::parse("nodename = \"x\"", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("nodename"), "{e}");
        let e = Config::parse("[libvirt]\ndomain_type = \"xen\"", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("libvirt.domain_type"), "{e}");
        let e = Config::parse("[redfish]\nport = \"x\"", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("port"), "{e}");
        let e = Config::parse("[dhcp]\nlease_time = \"1 hour\"", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("dhcp.lease_time"), "{e}");
        let e = Config::parse("state_dir = \"relative\"", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("state_dir"), "{e}");
    }

    #[test]
    fn hostile_files_fail_cleanly_naming_the_key() {
        let deep = "a = ".to_string() + &"[".repeat(5000) + &"]".repeat(5000);
        let cases: Vec<(String, &str)> = vec![
            ("\u{0}\u{1}\u{2}".into(), "t.toml"),
            ("[libvirt\nuri = 1".into(), "libvirt"),
            (deep, "t.toml"),
            ("[redfish]\nport = 70000".into(), "port"),
            ("[redfish]\nport = -1".into(), "port"),
            (
                "[redfish]\nlisten_address = \"0.0.0.0:80\"".into(),
                "redfish.listen_address",
            ),
            ("[vnc]\nlisten = \"any\"".into(), "vnc.listen"),
            ("node_name = \"Node_With_Caps\"".into(), "node_name"),
            (
                "node_name = \"".to_string() + &"n".repeat(300) + "\"",
                "node_name",
            ),
            (
                "[labels]\nrack_label = \"bad key!\"".into(),
                "labels.rack_label",
            ),
            (
                "[redfish]\ntls_cert = \"/etc/c.pem\"".into(),
                "redfish.tls_cert",
            ),
            ("[dhcp]\ntftp_root = \"tftp\"".into(), "dhcp.tftp_root"),
            ("resync_ms = 5".into(), "resync_ms"),
            ("[log]\nformat = \"xml\"".into(), "log.format"),
            ("[libvirt]\nuri = [\"a\"]".into(), "uri"),
            ("[ünïcode]\nkey = 1".into(), "ünïcode"),
            (
                "[network]\nuplinks = [\"eth0\", \"../x\"]".into(),
                "network.uplinks[1]",
            ),
            ("[network]\nsubnets = [\"10.0.0.1\"]".into(), "subnets"),
        ];
        for (text, key) in cases {
            let e = Config::parse(&text, "t.toml")
                .expect_err(&text[..text.len().min(40)])
                .to_string();
            assert!(e.contains(key), "{e} lacks {key}");
        }
    }
}
