//! The pure diff: from the desired and the observed host state to an ordered list of
//! operations. Deletes come first, in reverse dependency order (domains, volumes, DHCP,
//! bridges); then creates and updates in dependency order (bridges, DHCP, volumes, domains).
//! Applying the list and diffing again yields nothing.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use crate::state::{Bridge, DhcpServer, Domain, HostState, Volume};

/// One change to the host.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "op", rename_all = "camelCase")]
pub enum Op {
    /// Power off and undefine a domain.
    DeleteDomain(Domain),
    /// Delete a volume.
    DeleteVolume(Volume),
    /// Stop a DHCP server and remove its files.
    StopDhcp(DhcpServer),
    /// Release the uplink and delete a bridge.
    DeleteBridge(Bridge),
    /// Create a bridge.
    CreateBridge(Bridge),
    /// Change a bridge's address, MTU or uplink.
    UpdateBridge {
        /// What it should be.
        desired: Bridge,
        /// What it is.
        observed: Bridge,
    },
    /// Start a DHCP server.
    StartDhcp(DhcpServer),
    /// Replace a DHCP server's configuration and restart it.
    ReconfigureDhcp(DhcpServer),
    /// Change a DHCP server's reservations in place.
    SetDhcpHosts(DhcpServer),
    /// Create a volume.
    CreateVolume(Volume),
    /// Define a new domain (powered off).
    DefineDomain(Domain),
    /// Replace an existing domain's persistent definition.
    RedefineDomain(Domain),
}

impl Op {
    /// Whether the operation removes something.
    pub fn is_delete(&self) -> bool {
        matches!(
            self,
            Op::DeleteDomain(_) | Op::DeleteVolume(_) | Op::StopDhcp(_) | Op::DeleteBridge(_)
        )
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::DeleteDomain(d) => write!(f, "delete domain {}", d.name),
            Op::DeleteVolume(v) => write!(f, "delete volume {}", v.name),
            Op::StopDhcp(s) => write!(f, "stop DHCP on {}", s.bridge),
            Op::DeleteBridge(b) => write!(f, "delete bridge {}", b.name),
            Op::CreateBridge(b) => write!(f, "create bridge {}", b.name),
            Op::UpdateBridge { desired, .. } => write!(f, "update bridge {}", desired.name),
            Op::StartDhcp(s) => write!(f, "start DHCP on {}", s.bridge),
            Op::ReconfigureDhcp(s) => write!(f, "reconfigure DHCP on {}", s.bridge),
            Op::SetDhcpHosts(s) => write!(f, "update DHCP reservations on {}", s.bridge),
            Op::CreateVolume(v) => write!(f, "create volume {}", v.name),
            Op::DefineDomain(d) => write!(f, "define domain {}", d.name),
            Op::RedefineDomain(d) => write!(f, "redefine domain {}", d.name),
        }
    }
}

/// The operations that turn `observed` into `desired`.
pub fn diff(desired: &HostState, observed: &HostState) -> Vec<Op> {
    let mut ops = Vec::new();
    // An object that changed owner is deleted and created again, never adopted.
    let owner_changed =
        |d_owner: &crate::state::Owner, o_owner: &crate::state::Owner| d_owner != o_owner;

    for (name, o) in &observed.domains {
        if desired
            .domains
            .get(name)
            .is_none_or(|d| owner_changed(&d.owner, &o.owner))
        {
            ops.push(Op::DeleteDomain(o.clone()));
        }
    }
    for (name, o) in &observed.volumes {
        if desired
            .volumes
            .get(name)
            .is_none_or(|d| owner_changed(&d.owner, &o.owner))
        {
            ops.push(Op::DeleteVolume(o.clone()));
        }
    }
    for (name, o) in &observed.dhcp {
        if desired
            .dhcp
            .get(name)
            .is_none_or(|d| owner_changed(&d.owner, &o.owner))
        {
            ops.push(Op::StopDhcp(o.clone()));
        }
    }
    for (name, o) in &observed.bridges {
        if desired
            .bridges
            .get(name)
            .is_none_or(|d| owner_changed(&d.owner, &o.owner))
        {
            ops.push(Op::DeleteBridge(o.clone()));
        }
    }

    for_each_wanted(&desired.bridges, &observed.bridges, |d, o| match o {
        None => ops.push(Op::CreateBridge(d.clone())),
        Some(o) if bridge_differs(d, o) => ops.push(Op::UpdateBridge {
            desired: d.clone(),
            observed: o.clone(),
        }),
        Some(_) => {}
    });
    for_each_wanted(&desired.dhcp, &observed.dhcp, |d, o| match o {
        None => ops.push(Op::StartDhcp(d.clone())),
        Some(o) if o.config != d.config => ops.push(Op::ReconfigureDhcp(d.clone())),
        Some(o) if o.hosts != d.hosts => ops.push(Op::SetDhcpHosts(d.clone())),
        Some(_) => {}
    });
    // Existing volumes are never resized or rewritten: disks hold guest data.
    for_each_wanted(&desired.volumes, &observed.volumes, |d, o| {
        if o.is_none() {
            ops.push(Op::CreateVolume(d.clone()));
        }
    });
    for_each_wanted(&desired.domains, &observed.domains, |d, o| match o {
        None => ops.push(Op::DefineDomain(d.clone())),
        Some(o) if o.spec_hash != d.spec_hash || o.uuid != d.uuid => {
            ops.push(Op::RedefineDomain(d.clone()))
        }
        Some(_) => {}
    });
    ops
}

/// Calls `f` for each desired item with its observed counterpart when that has the same owner.
fn for_each_wanted<T: Owned>(
    desired: &BTreeMap<String, T>,
    observed: &BTreeMap<String, T>,
    mut f: impl FnMut(&T, Option<&T>),
) {
    for (name, d) in desired {
        f(d, observed.get(name).filter(|o| o.owner() == d.owner()));
    }
}

fn bridge_differs(d: &Bridge, o: &Bridge) -> bool {
    d.address != o.address || d.uplink != o.uplink || (d.mtu.is_some() && d.mtu != o.mtu)
}

trait Owned {
    fn owner(&self) -> &crate::state::Owner;
}

macro_rules! owned {
    ($($t:ty),*) => {$(impl Owned for $t { fn owner(&self) -> &crate::state::Owner { &self.owner } })*};
}
owned!(Bridge, DhcpServer, Volume, Domain);

#[cfg(test)]
mod tests;
