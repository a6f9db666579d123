//! [`Bridges`] over rtnetlink.
//!
//! A bridge is vinod's when it is of kind `bridge` and its interface alias is
//! `vinod:<namespace>/<name>` of the owning Vino; the alias is written right after the link is
//! created. Links without that mark are never changed or deleted, and creating a bridge whose
//! name is taken by any link is refused.

mod error;
mod host_network;
mod kernel;

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::Ipv4Net;
use rtnetlink::packet_route::link::BridgeStpState;
use rtnetlink::{Handle, LinkBridge, LinkUnspec};
use tokio::task::AbortHandle;

pub use self::error::BridgeError;
use self::kernel::{Link, MAX_ALIAS_LEN, ipv4_addresses, links, mark, uplink_of};
use super::Bridges;
use crate::plan::HostNetwork;
use crate::state::Bridge;

type Result<T> = std::result::Result<T, BridgeError>;

/// Netlink-backed [`Bridges`] for the network namespace the connection was opened in.
#[derive(Debug)]
pub struct NetlinkBridges {
    handle: Handle,
    driver: AbortHandle,
}

impl NetlinkBridges {
    /// Opens an rtnetlink socket in the calling thread's network namespace and spawns its
    /// driver on the current tokio runtime. Panics outside a tokio runtime.
    pub fn new() -> Result<Self> {
        let (connection, handle, _) = rtnetlink::new_connection().map_err(BridgeError::Connect)?;
        let driver = tokio::spawn(connection).abort_handle();
        Ok(NetlinkBridges { handle, driver })
    }

    async fn links(&self) -> Result<Vec<Link>> {
        links(&self.handle).await.map_err(BridgeError::List)
    }

    /// The link named `bridge.name`, if it is a bridge marked as `bridge.owner`'s.
    async fn owned(&self, bridge: &Bridge) -> Result<(Link, Vec<Link>)> {
        let all = self.links().await?;
        let link = named(&all, bridge)?;
        let actual = link.owner().ok_or_else(|| BridgeError::Unowned {
            bridge: bridge.name.clone(),
        })?;
        if actual != bridge.owner {
            return Err(BridgeError::OtherOwner {
                bridge: bridge.name.clone(),
                expected: bridge.owner.clone(),
                actual,
            });
        }
        Ok((link.clone(), all))
    }

    /// Creates the bridge link itself and returns its index.
    async fn add_link(&self, bridge: &Bridge) -> Result<u32> {
        // With STP off ports forward at once; a zero forward delay keeps it so should STP ever
        // be switched on by hand.
        let message = LinkBridge::new(&bridge.name)
            .stp_state(BridgeStpState::Disabled)
            .forward_delay(0)
            .build();
        if let Err(source) = self.handle.link().add(message).execute().await {
            if errno(&source) == Some(nix::errno::Errno::EEXIST) {
                return Err(BridgeError::Clash {
                    bridge: bridge.name.clone(),
                });
            }
            return Err(netlink_error(bridge, "create the link", source));
        }
        let all = self.links().await?;
        let link = named(&all, bridge)?;
        Ok(link.index)
    }

    /// Marks, sizes and addresses a freshly created bridge and enslaves its uplink.
    async fn configure(&self, bridge: &Bridge, index: u32, uplink: Option<&Link>) -> Result<()> {
        let alias = LinkUnspec::new_with_index(index)
            .alias(mark(&bridge.owner))
            .build();
        self.handle
            .link()
            .set(alias)
            .execute()
            .await
            .map_err(|e| netlink_error(bridge, "set the owner mark", e))?;
        if let Some(mtu) = bridge.mtu {
            self.set_mtu(bridge, index, mtu).await?;
        }
        self.add_address(bridge, index, bridge.address).await?;
        if let Some(uplink) = uplink {
            self.enslave(bridge, index, uplink).await?;
        }
        Ok(())
    }

    async fn set_mtu(&self, bridge: &Bridge, index: u32, mtu: u32) -> Result<()> {
        let message = LinkUnspec::new_with_index(index).mtu(mtu).build();
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(|e| netlink_error(bridge, &format!("set MTU {mtu}"), e))
    }

    async fn add_address(&self, bridge: &Bridge, index: u32, net: Ipv4Net) -> Result<()> {
        let request = self
            .handle
            .address()
            .add(index, IpAddr::V4(net.addr()), net.prefix_len());
        request
            .replace()
            .execute()
            .await
            .map_err(|e| netlink_error(bridge, &format!("add address {net}"), e))
    }

    /// Makes `net` the bridge's only IPv4 address.
    async fn replace_address(&self, bridge: &Bridge, index: u32, net: Ipv4Net) -> Result<()> {
        let current = ipv4_addresses(&self.handle, Some(index))
            .await
            .map_err(|e| netlink_error(bridge, "list addresses", e))?;
        // Old addresses go first: without promote_secondaries, deleting a primary address
        // also deletes the secondaries of its subnet, which would take a new address with it.
        for old in current.into_iter().filter(|a| a.net != net) {
            let action = format!("remove address {}", old.net);
            self.handle
                .address()
                .del(old.message)
                .execute()
                .await
                .map_err(|e| netlink_error(bridge, &action, e))?;
        }
        self.add_address(bridge, index, net).await
    }

    async fn enslave(&self, bridge: &Bridge, index: u32, uplink: &Link) -> Result<()> {
        let message = LinkUnspec::new_with_index(uplink.index)
            .controller(index)
            .up()
            .build();
        let action = format!("enslave uplink {} and bring it up", uplink.name);
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(|e| netlink_error(bridge, &action, e))
    }

    /// Detaches `uplink` from its bridge, leaving its up/down state alone.
    async fn release(&self, bridge: &Bridge, uplink: &Link) -> Result<()> {
        let message = LinkUnspec::new_with_index(uplink.index)
            .nocontroller()
            .build();
        let action = format!("release uplink {}", uplink.name);
        self.handle
            .link()
            .set(message)
            .execute()
            .await
            .map_err(|e| netlink_error(bridge, &action, e))
    }

    async fn delete_link(&self, bridge: &Bridge, index: u32) -> Result<()> {
        self.handle
            .link()
            .del(index)
            .execute()
            .await
            .map_err(|e| netlink_error(bridge, "delete the link", e))
    }
}

impl Drop for NetlinkBridges {
    fn drop(&mut self) {
        // The driver only ends on its own once an unsolicited message arrives with nobody to
        // receive it, so it would outlive the adapter.
        self.driver.abort();
    }
}

impl Bridges for NetlinkBridges {
    type Error = BridgeError;

    async fn host_network(&self) -> Result<HostNetwork> {
        host_network::observe(&self.handle)
            .await
            .map_err(BridgeError::List)
    }

    /// Owned bridges by name. `mtu` is always `Some` (the current MTU). A bridge without an
    /// IPv4 address reports `0.0.0.0/0`, which no desired bridge has, so a comparison sees the
    /// mismatch; with several addresses the first one the kernel lists is reported.
    async fn observe(&self) -> Result<BTreeMap<String, Bridge>> {
        let all = self.links().await?;
        let addresses = ipv4_addresses(&self.handle, None)
            .await
            .map_err(BridgeError::List)?;
        let mut bridges = BTreeMap::new();
        for link in &all {
            let Some(owner) = link.owner() else { continue };
            let address = addresses
                .iter()
                .find(|a| a.index == link.index)
                .map_or(Ipv4Net::default(), |a| a.net);
            let bridge = Bridge {
                name: link.name.clone(),
                address,
                mtu: Some(link.mtu),
                uplink: uplink_of(&all, link.index).map(|u| u.name.clone()),
                owner,
            };
            bridges.insert(link.name.clone(), bridge);
        }
        Ok(bridges)
    }

    /// Checks the name, the mark and the uplink before creating anything; if a later step
    /// fails the new bridge is deleted again, so nothing half-configured stays behind.
    async fn create(&self, bridge: &Bridge) -> Result<()> {
        let alias = mark(&bridge.owner);
        if alias.len() > MAX_ALIAS_LEN {
            return Err(BridgeError::MarkTooLong {
                bridge: bridge.name.clone(),
                mark: alias,
            });
        }
        let all = self.links().await?;
        if all.iter().any(|l| l.name == bridge.name) {
            return Err(BridgeError::Clash {
                bridge: bridge.name.clone(),
            });
        }
        let uplink = match &bridge.uplink {
            Some(name) => Some(free_uplink(bridge, &all, name)?.clone()),
            None => None,
        };
        let index = self.add_link(bridge).await?;
        if let Err(e) = self.configure(bridge, index, uplink.as_ref()).await {
            // The first error is the one worth reporting; a failed rollback leaves an unmarked
            // bridge that the next create reports as a clash.
            let _ = self.delete_link(bridge, index).await;
            return Err(e);
        }
        Ok(())
    }

    /// `observed` must be what [`observe`](Bridges::observe) reported for the same bridge; the
    /// link is looked up again and must still be marked as `desired.owner`'s.
    async fn update(&self, desired: &Bridge, observed: &Bridge) -> Result<()> {
        let (link, all) = self.owned(desired).await?;
        let new_uplink = match &desired.uplink {
            Some(name) if desired.uplink != observed.uplink => {
                Some(free_uplink(desired, &all, name)?.clone())
            }
            _ => None,
        };
        if desired.address != observed.address {
            self.replace_address(desired, link.index, desired.address)
                .await?;
        }
        if let Some(mtu) = desired.mtu.filter(|m| Some(*m) != observed.mtu) {
            self.set_mtu(desired, link.index, mtu).await?;
        }
        if desired.uplink != observed.uplink {
            if let Some(old) = all.iter().find(|l| {
                Some(&l.name) == observed.uplink.as_ref() && l.controller == Some(link.index)
            }) {
                self.release(desired, old).await?;
            }
            if let Some(new) = &new_uplink {
                self.enslave(desired, link.index, new).await?;
            }
        }
        Ok(())
    }

    async fn delete(&self, bridge: &Bridge) -> Result<()> {
        let (link, all) = self.owned(bridge).await?;
        for port in all
            .iter()
            .filter(|l| l.controller == Some(link.index) && !l.is_tap())
        {
            self.release(bridge, port).await?;
        }
        self.delete_link(bridge, link.index).await
    }
}

/// The link with the bridge's name.
fn named<'a>(all: &'a [Link], bridge: &Bridge) -> Result<&'a Link> {
    all.iter()
        .find(|l| l.name == bridge.name)
        .ok_or_else(|| BridgeError::Missing {
            bridge: bridge.name.clone(),
        })
}

/// The link named `name`, if it can become `bridge`'s uplink.
fn free_uplink<'a>(bridge: &Bridge, all: &'a [Link], name: &str) -> Result<&'a Link> {
    let link = all
        .iter()
        .find(|l| l.name == name)
        .ok_or_else(|| BridgeError::UplinkMissing {
            bridge: bridge.name.clone(),
            uplink: name.into(),
        })?;
    let own_index = all.iter().find(|l| l.name == bridge.name).map(|l| l.index);
    let taken = link.name == bridge.name || link.controller.is_some_and(|c| Some(c) != own_index);
    if taken {
        return Err(BridgeError::UplinkTaken {
            bridge: bridge.name.clone(),
            uplink: name.into(),
        });
    }
    Ok(link)
}

fn errno(error: &rtnetlink::Error) -> Option<nix::errno::Errno> {
    match error {
        rtnetlink::Error::NetlinkError(msg) => {
            msg.code.map(|c| nix::errno::Errno::from_raw(-c.get()))
        }
        _ => None,
    }
}

fn netlink_error(bridge: &Bridge, action: &str, source: rtnetlink::Error) -> BridgeError {
    BridgeError::Netlink {
        bridge: bridge.name.clone(),
        action: action.into(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adapter_can_be_shared_between_tasks() {
        fn shareable<T: Send + Sync + 'static>() {}
        shareable::<NetlinkBridges>();
        shareable::<BridgeError>();
    }
}
