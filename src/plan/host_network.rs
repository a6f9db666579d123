//! The guard between a Vino and the host's own network: a Vino subnet may not overlap an
//! address or a route of the host (the bridge's connected route would take the host's traffic
//! on that network), and `physicalInterface` may not name an interface the host itself uses
//! (enslaving it to a bridge takes its addresses out of service). The `[network]` allow-lists
//! of `vinod.toml` narrow both further. A Vino that fails is refused before anything is planned.

use ipnet::{IpNet, Ipv4Net};

use super::PlanError;
use super::facts::HostNetwork;
use crate::api::validate::Checked;
use crate::api::vino::VinoSpec;
use crate::config::NetworkConfig;

/// Refuses `spec` if one of its networks overlaps or takes over the host's network, or is not
/// allowed by `policy`.
pub fn check(
    spec: &VinoSpec,
    checked: &Checked,
    host: &HostNetwork,
    policy: &NetworkConfig,
) -> Result<(), PlanError> {
    for (i, net) in spec.networks.iter().enumerate() {
        let field = format!("spec.networks[{i}]");
        let refuse = |key: &str, reason: String| PlanError::HostNetwork {
            field: format!("{field}.{key}"),
            reason,
        };
        if let Some(pool) = checked.pools.get(&net.name) {
            subnet(&pool.subnet, host, policy).map_err(|r| refuse("subnet", r))?;
        }
        if let Some(uplink) = &net.physical_interface {
            self::uplink(uplink, host, policy).map_err(|r| refuse("physicalInterface", r))?;
        }
    }
    Ok(())
}

fn subnet(subnet: &Ipv4Net, host: &HostNetwork, policy: &NetworkConfig) -> Result<(), String> {
    if !policy.allows_subnet(subnet) {
        return Err(format!(
            "{subnet} is outside every network of network.subnets in vinod.toml ({})",
            listed(&policy.subnets)
        ));
    }
    for iface in &host.interfaces {
        for address in &iface.addresses {
            if let IpNet::V4(a) = address
                && overlaps(subnet, &a.trunc())
            {
                return Err(format!(
                    "{subnet} overlaps the host's address {a} on {}: the bridge would take the host's traffic to that network",
                    iface.name
                ));
            }
        }
    }
    // A default route overlaps everything; it is what the host uses for networks it has no
    // other route to, so a Vino network there takes nothing from it.
    for route in host
        .routes
        .iter()
        .filter(|r| r.destination.prefix_len() > 0)
    {
        if overlaps(subnet, &route.destination) {
            return Err(format!(
                "{subnet} overlaps the host's route to {} via {}: the bridge would take the host's traffic to that network",
                route.destination,
                if route.interface.is_empty() {
                    "no interface"
                } else {
                    &route.interface
                }
            ));
        }
    }
    Ok(())
}

fn uplink(name: &str, host: &HostNetwork, policy: &NetworkConfig) -> Result<(), String> {
    if !policy.allows_uplink(name) {
        return Err(format!(
            "{name} is not in network.uplinks in vinod.toml ({})",
            listed(&policy.uplinks)
        ));
    }
    if let Some(iface) = host.interfaces.iter().find(|i| i.name == name)
        && let Some(address) = iface.addresses.first()
    {
        return Err(format!(
            "{name} carries the host's address {address}: enslaving it to a bridge would cut the host off that network"
        ));
    }
    if let Some(route) = host.routes.iter().find(|r| r.interface == name) {
        return Err(format!(
            "the host routes {} via {name}: enslaving it to a bridge would cut the host off that network",
            route.destination
        ));
    }
    Ok(())
}

fn overlaps(a: &Ipv4Net, b: &Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn listed<T: std::fmt::Display>(items: &[T]) -> String {
    if items.is_empty() {
        return "none".into();
    }
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
