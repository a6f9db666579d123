//! `[redfish]`: the Redfish BMC's listener, the address published in BareMetalHosts, TLS,
//! and the bounds and allow-list of virtual media downloads.

use std::net::IpAddr;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::address;

/// Redfish BMC settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RedfishConfig {
    /// Listen address. Empty: all addresses.
    #[serde(with = "address::redfish_listen_address")]
    pub listen_address: Option<IpAddr>,
    /// TCP port.
    pub port: u16,
    /// Address published in BareMetalHosts. Empty: the Node's InternalIP.
    #[serde(with = "address::redfish_advertise_address")]
    pub advertise_address: Option<IpAddr>,
    /// Serve HTTPS (with `tls_cert`/`tls_key`, or a self-signed certificate).
    pub tls: bool,
    /// PEM certificate chain. Empty: self-signed, kept in the state directory.
    pub tls_cert: PathBuf,
    /// PEM private key for `tls_cert`.
    pub tls_key: PathBuf,
    /// Largest virtual media image downloaded, in bytes.
    pub media_max_bytes: u64,
    /// Longest a virtual media download may take, in seconds.
    pub media_timeout_secs: u64,
    /// Verify the TLS certificate of https:// image URLs against the system's CAs.
    pub media_verify_tls: bool,
    /// Networks virtual media may be fetched from (checked after DNS and at every redirect).
    /// Empty: no image URL is fetched.
    pub media_allow: Vec<ipnet::IpNet>,
}

impl Default for RedfishConfig {
    fn default() -> Self {
        Self {
            listen_address: None,
            port: 8000,
            advertise_address: None,
            tls: true,
            tls_cert: PathBuf::new(),
            tls_key: PathBuf::new(),
            media_max_bytes: 8 << 30,
            media_timeout_secs: 900,
            media_verify_tls: false,
            media_allow: Vec::new(),
        }
    }
}

impl RedfishConfig {
    /// The first bad value, as (dotted key, reason).
    pub(super) fn problem(&self) -> Option<(String, String)> {
        let bad = |key: &str, reason: &str| Some((format!("redfish.{key}"), reason.to_string()));
        if self.port == 0 {
            return bad("port", "0 is not a usable port");
        }
        if self.media_max_bytes == 0 {
            return bad("media_max_bytes", "must be more than 0");
        }
        if self.media_timeout_secs == 0 {
            return bad("media_timeout_secs", "must be more than 0");
        }
        if self.tls_cert.as_os_str().is_empty() != self.tls_key.as_os_str().is_empty() {
            return bad("tls_cert", "tls_cert and tls_key go together");
        }
        None
    }
}
