//! `[network]`: what Vinos may do to the host's own network. A Vino is refused (Degraded,
//! nothing touched) if it names an uplink or a subnet these settings do not allow, and always
//! if it would overlap an address or route of the host or take over an interface the host
//! uses (see `plan::host_network`).

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::value::syntax::is_ifname;

/// Host network allow-lists.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Interfaces a Vino may enslave as `physicalInterface`. Empty: any interface that carries
    /// none of the host's addresses or routes.
    pub uplinks: Vec<String>,
    /// Networks every Vino subnet must lie inside. Empty: any subnet that overlaps none of the
    /// host's addresses and routes.
    pub subnets: Vec<Ipv4Net>,
}

impl NetworkConfig {
    /// The first bad entry, as (dotted key, reason).
    pub(super) fn problem(&self) -> Option<(String, String)> {
        self.uplinks.iter().enumerate().find_map(|(i, u)| {
            (!is_ifname(u)).then(|| {
                (
                    format!("network.uplinks[{i}]"),
                    format!("{} is not a Linux interface name", super::shown(u)),
                )
            })
        })
    }

    /// Whether `interface` may be a Vino's uplink by these settings.
    pub fn allows_uplink(&self, interface: &str) -> bool {
        self.uplinks.is_empty() || self.uplinks.iter().any(|u| u == interface)
    }

    /// Whether `subnet` may be a Vino's subnet by these settings.
    pub fn allows_subnet(&self, subnet: &Ipv4Net) -> bool {
        self.subnets.is_empty() || self.subnets.iter().any(|s| s.contains(subnet))
    }
}
