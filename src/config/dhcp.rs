//! `[dhcp]`: how each network's dnsmasq serves DHCP, TFTP and the iPXE boot URL. Every value
//! here ends up in a dnsmasq configuration file, one directive per line with comma-separated
//! fields, so each is checked to be what it says (a path, a file name, a URL) and can neither
//! end a line nor add a field.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::value::syntax::url_path_error;

/// DHCP/TFTP settings for the per-network dnsmasq.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DhcpConfig {
    /// dnsmasq binary.
    pub dnsmasq: PathBuf,
    /// Lease time, in dnsmasq syntax (`1h`, `30m`, `infinite`).
    pub lease_time: String,
    /// TFTP root. Empty: TFTP off.
    pub tftp_root: PathBuf,
    /// With TFTP on: the file BIOS PXE ROMs that are not iPXE get (they then chain to iPXE).
    pub tftp_boot_file: String,
    /// With TFTP on: the file x86-64 UEFI PXE clients that are not iPXE get (an EFI iPXE
    /// binary, or a signed shim for secure boot).
    pub tftp_efi_boot_file: String,
    /// Boot URL for iPXE clients. Empty: `http://<pxeBootImageHost>:<port>/dualboot.ipxe` as
    /// in ViNO. `{bridge_ip}` is replaced by the host's bridge address on the network.
    pub ipxe_boot_url: String,
}

impl Default for DhcpConfig {
    fn default() -> Self {
        Self {
            dnsmasq: "/usr/sbin/dnsmasq".into(),
            lease_time: "1h".into(),
            tftp_root: PathBuf::new(),
            tftp_boot_file: "undionly.kpxe".into(),
            tftp_efi_boot_file: "snponly.efi".into(),
            ipxe_boot_url: String::new(),
        }
    }
}

/// The placeholder of [`DhcpConfig::ipxe_boot_url`].
pub const BRIDGE_IP: &str = "{bridge_ip}";

impl DhcpConfig {
    /// The first bad value, as (dotted key, reason).
    pub(super) fn problem(&self) -> Option<(String, String)> {
        let bad = |key: &str, reason: String| Some((format!("dhcp.{key}"), reason));
        let relative = |p: &Path| format!("{} is not an absolute path", p.display());
        if !self.dnsmasq.is_absolute() {
            return bad("dnsmasq", relative(&self.dnsmasq));
        }
        if let Some(reason) = path_problem(&self.dnsmasq) {
            return bad("dnsmasq", reason);
        }
        if !self.tftp_root.as_os_str().is_empty() {
            if !self.tftp_root.is_absolute() {
                return bad("tftp_root", relative(&self.tftp_root));
            }
            if let Some(reason) = path_problem(&self.tftp_root) {
                return bad("tftp_root", reason);
            }
        }
        for (key, file) in [
            ("tftp_boot_file", &self.tftp_boot_file),
            ("tftp_efi_boot_file", &self.tftp_efi_boot_file),
        ] {
            if let Some(e) = url_path_error(file) {
                return bad(key, format!("{}: {e}", super::shown(file)));
            }
        }
        if let Some(e) = boot_url_error(&self.ipxe_boot_url) {
            let shown = super::shown(&self.ipxe_boot_url);
            return bad("ipxe_boot_url", format!("{shown}: {e}"));
        }
        None
    }
}

/// Why a directory or file path cannot go into a dnsmasq directive, or `None`: a control
/// character would end the line, a comma start another field (`tftp-root=<dir>,<interface>`).
pub(super) fn path_problem(path: &Path) -> Option<String> {
    let text = path.to_str()?;
    text.chars().any(|c| c.is_control() || c == ',').then(|| {
        format!(
            "{}: holds a control character or a comma",
            super::shown(text)
        )
    })
}

/// Why `url` is not an `http://` or `https://` URL of plain URL characters (with the
/// placeholder `{bridge_ip}`), or `None`; empty is fine (the default applies).
fn boot_url_error(url: &str) -> Option<String> {
    if url.is_empty() {
        return None;
    }
    if url.len() > 255 {
        return Some("longer than 255 characters".into());
    }
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    let Some(rest) = rest else {
        return Some("must start with http:// or https://".into());
    };
    let plain = rest.replace(BRIDGE_IP, "0.0.0.0");
    if plain.is_empty() || plain.starts_with('/') {
        return Some("names no host".into());
    }
    // RFC 3986's unreserved and delimiter characters less the comma dnsmasq splits on, and
    // braces for iPXE's settings (`${net0/mac}`).
    let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+;=%{}".contains(c);
    plain
        .chars()
        .find(|&c| !allowed(c))
        .map(|c| format!("{c:?} is not allowed in the boot URL"))
}

#[cfg(test)]
mod tests {
    use super::*;

    type Edit = Box<dyn FnOnce(&mut DhcpConfig)>;

    fn with(edit: impl FnOnce(&mut DhcpConfig)) -> Option<String> {
        let mut c = DhcpConfig::default();
        edit(&mut c);
        c.problem().map(|(key, _)| key)
    }

    #[test]
    fn defaults_and_usual_values_pass() {
        assert_eq!(with(|_| {}), None);
        assert_eq!(
            with(|c| {
                c.tftp_root = "/usr/lib/ipxe".into();
                c.tftp_efi_boot_file = "shimx64.efi".into();
                c.tftp_boot_file = "bios/undionly.kpxe".into();
                c.ipxe_boot_url = "http://{bridge_ip}:8080/boot.ipxe?mac=${net0/mac}".into();
            }),
            None
        );
    }

    /// A value that ends the line would add a directive of the writer's choice to dnsmasq's
    /// configuration (e.g. `dhcp-script`, which dnsmasq runs as root on every lease).
    #[test]
    fn values_that_would_add_dnsmasq_directives_are_refused() {
        const INJECTED: &str = "x\ndhcp-script=/tmp/evil";
        let injected = INJECTED;
        let cases: [(&str, Edit); 6] = [
            (
                "dhcp.tftp_boot_file",
                Box::new(|c| c.tftp_boot_file = injected.into()),
            ),
            (
                "dhcp.tftp_efi_boot_file",
                Box::new(|c| c.tftp_efi_boot_file = injected.into()),
            ),
            (
                "dhcp.ipxe_boot_url",
                Box::new(|c| c.ipxe_boot_url = format!("http://h/{INJECTED}")),
            ),
            (
                "dhcp.tftp_root",
                Box::new(|c| c.tftp_root = format!("/srv/{INJECTED}").into()),
            ),
            (
                "dhcp.tftp_root",
                Box::new(|c| c.tftp_root = "/srv/tftp,eth0".into()),
            ),
            (
                "dhcp.dnsmasq",
                Box::new(|c| c.dnsmasq = format!("/usr/{INJECTED}").into()),
            ),
        ];
        for (key, edit) in cases {
            assert_eq!(with(edit).as_deref(), Some(key));
        }
    }

    #[test]
    fn boot_files_and_urls_are_checked() {
        for file in ["", "../etc/shadow", "/abs.efi", "a b.efi", "a,b.efi"] {
            assert!(url_path_error(file).is_some(), "{file}");
            let key = with(|c| c.tftp_efi_boot_file = file.into());
            assert_eq!(key.as_deref(), Some("dhcp.tftp_efi_boot_file"), "{file}");
        }
        for url in [
            "ftp://h/x",
            "http://",
            "http:///x",
            "http://h/a,b",
            "http://h/a b",
            "http://h/\"",
            "http://h/\\x",
        ] {
            assert!(boot_url_error(url).is_some(), "{url}");
        }
        assert_eq!(boot_url_error("https://[2001:db8::1]:8443/boot.ipxe"), None);
    }
}
