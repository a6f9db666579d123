//! Reading links and IPv4 addresses from the kernel, and the owner mark vinod puts on the
//! bridges it creates.

use std::net::IpAddr;

use futures::TryStreamExt;
use ipnet::Ipv4Net;
use rtnetlink::Handle;
use rtnetlink::packet_route::AddressFamily;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};

use crate::state::Owner;

/// Prefix of the interface alias that marks a link as created by vinod.
pub const MARK_PREFIX: &str = "vinod:";

/// Longest alias the kernel accepts (`IFALIASZ` is 256 including the terminating NUL).
pub const MAX_ALIAS_LEN: usize = 255;

/// The alias that marks a link as owned by `owner`.
pub fn mark(owner: &Owner) -> String {
    format!("{MARK_PREFIX}{owner}")
}

/// The owner named by a mark, or `None` if `alias` is not a well-formed mark.
pub fn parse_mark(alias: &str) -> Option<Owner> {
    let (namespace, name) = alias.strip_prefix(MARK_PREFIX)?.split_once('/')?;
    if namespace.is_empty() || name.is_empty() || name.contains('/') {
        return None;
    }
    Some(Owner {
        namespace: namespace.into(),
        name: name.into(),
    })
}

/// One link as the kernel reports it, reduced to what the bridge adapter looks at.
#[derive(Clone, Debug)]
pub struct Link {
    /// Interface index.
    pub index: u32,
    /// Interface name.
    pub name: String,
    /// Link kind (`bridge`, `veth`, `tun`, …); `None` for physical NICs.
    pub kind: Option<InfoKind>,
    /// Index of the bridge (or bond) this link is a port of.
    pub controller: Option<u32>,
    /// Interface alias (IFLA_IFALIAS).
    pub alias: Option<String>,
    /// Current MTU.
    pub mtu: u32,
}

impl Link {
    fn from_message(msg: LinkMessage) -> Self {
        let mut link = Link {
            index: msg.header.index,
            name: String::new(),
            kind: None,
            controller: None,
            alias: None,
            mtu: 0,
        };
        for attr in msg.attributes {
            match attr {
                LinkAttribute::IfName(n) => link.name = n,
                LinkAttribute::IfAlias(a) => link.alias = Some(a),
                LinkAttribute::Mtu(m) => link.mtu = m,
                LinkAttribute::Controller(c) if c != 0 => link.controller = Some(c),
                LinkAttribute::LinkInfo(infos) => {
                    link.kind = infos.into_iter().find_map(|i| match i {
                        LinkInfo::Kind(k) => Some(k),
                        _ => None,
                    });
                }
                _ => {}
            }
        }
        link
    }

    /// The owner, if this is a bridge carrying a well-formed vinod mark.
    pub fn owner(&self) -> Option<Owner> {
        if self.kind != Some(InfoKind::Bridge) {
            return None;
        }
        self.alias.as_deref().and_then(parse_mark)
    }

    /// Whether this is a tun/tap device: libvirt's VM ports, never an uplink.
    pub fn is_tap(&self) -> bool {
        self.kind == Some(InfoKind::Tun)
    }
}

/// All links, in ifindex order.
pub async fn links(handle: &Handle) -> Result<Vec<Link>, rtnetlink::Error> {
    let mut links: Vec<Link> = handle
        .link()
        .get()
        .execute()
        .map_ok(Link::from_message)
        .try_collect()
        .await?;
    links.sort_by_key(|l| l.index);
    Ok(links)
}

/// The first port of bridge `index` that is not a tap, in ifindex order.
pub fn uplink_of(links: &[Link], index: u32) -> Option<&Link> {
    links
        .iter()
        .find(|l| l.controller == Some(index) && !l.is_tap())
}

/// An IPv4 address on a link, with the message needed to delete it.
#[derive(Clone, Debug)]
pub struct Address {
    /// Link index.
    pub index: u32,
    /// Address and prefix.
    pub net: Ipv4Net,
    /// The kernel's message, as `RTM_DELADDR` wants it back.
    pub message: AddressMessage,
}

/// All IPv4 addresses of link `index` (all links if `None`), in the kernel's order.
pub async fn ipv4_addresses(
    handle: &Handle,
    index: Option<u32>,
) -> Result<Vec<Address>, rtnetlink::Error> {
    let mut request = handle.address().get();
    if let Some(index) = index {
        request = request.set_link_index_filter(index);
    }
    let messages: Vec<AddressMessage> = request.execute().try_collect().await?;
    Ok(messages
        .into_iter()
        .filter_map(Address::from_message)
        .collect())
}

impl Address {
    fn from_message(message: AddressMessage) -> Option<Self> {
        if message.header.family != AddressFamily::Inet {
            return None;
        }
        // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on point-to-point links.
        let local = message.attributes.iter().find_map(|a| match a {
            AddressAttribute::Local(IpAddr::V4(ip)) => Some(*ip),
            _ => None,
        });
        let address = message.attributes.iter().find_map(|a| match a {
            AddressAttribute::Address(IpAddr::V4(ip)) => Some(*ip),
            _ => None,
        });
        let net = Ipv4Net::new(local.or(address)?, message.header.prefix_len).ok()?;
        Some(Address {
            index: message.header.index,
            net,
            message,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mark_round_trips() {
        let owner = Owner {
            namespace: "lab".into(),
            name: "rack-1".into(),
        };
        assert_eq!(mark(&owner), "vinod:lab/rack-1");
        assert_eq!(parse_mark(&mark(&owner)), Some(owner));
    }

    #[test]
    fn rejects_foreign_and_malformed_aliases() {
        for alias in [
            "",
            "uplink to rack 4",
            "vinod:",
            "vinod:lab",
            "vinod:/x",
            "vinod:lab/",
            "vinod:a/b/c",
            "Vinod:a/b",
        ] {
            assert_eq!(parse_mark(alias), None, "{alias:?}");
        }
    }

    #[test]
    fn only_marked_bridges_have_an_owner() {
        let link = |kind, alias: &str| Link {
            index: 3,
            name: "br".into(),
            kind,
            controller: None,
            alias: Some(alias.into()),
            mtu: 1500,
        };
        assert!(link(Some(InfoKind::Bridge), "vinod:a/b").owner().is_some());
        assert!(link(Some(InfoKind::Veth), "vinod:a/b").owner().is_none());
        assert!(
            link(Some(InfoKind::Bridge), "operator's bridge")
                .owner()
                .is_none()
        );
    }
}
