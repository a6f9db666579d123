//! Errors of the bridge adapter; each names the bridge it is about.

use super::kernel::MAX_ALIAS_LEN;
use crate::state::Owner;

/// Errors of the bridge adapter.
#[derive(Debug, thiserror::Error)]
pub enum BridgeError {
    /// The netlink socket could not be opened.
    #[error("cannot open a netlink connection")]
    Connect(#[source] std::io::Error),
    /// Links or addresses could not be listed.
    #[error("cannot list links and addresses")]
    List(#[source] rtnetlink::Error),
    /// A link with the bridge's name exists already.
    #[error("bridge {bridge}: a link of that name already exists")]
    Clash {
        /// Bridge name.
        bridge: String,
    },
    /// There is no link with the bridge's name.
    #[error("bridge {bridge}: no such link")]
    Missing {
        /// Bridge name.
        bridge: String,
    },
    /// The link is not a bridge carrying vinod's mark.
    #[error("bridge {bridge}: the link is not a bridge marked as vinod's")]
    Unowned {
        /// Bridge name.
        bridge: String,
    },
    /// The bridge is marked as another Vino's.
    #[error("bridge {bridge}: owned by {actual}, not {expected}")]
    OtherOwner {
        /// Bridge name.
        bridge: String,
        /// Owner the caller named.
        expected: Owner,
        /// Owner in the bridge's mark.
        actual: Owner,
    },
    /// The owner mark does not fit in an interface alias.
    #[error(
        "bridge {bridge}: owner mark {mark:?} is longer than the kernel's {MAX_ALIAS_LEN}-byte alias limit"
    )]
    MarkTooLong {
        /// Bridge name.
        bridge: String,
        /// The mark.
        mark: String,
    },
    /// The uplink does not exist.
    #[error("bridge {bridge}: uplink {uplink} does not exist")]
    UplinkMissing {
        /// Bridge name.
        bridge: String,
        /// Uplink name.
        uplink: String,
    },
    /// The uplink is already a port of another bridge or bond, or is the bridge itself.
    #[error("bridge {bridge}: uplink {uplink} is already a port of another device")]
    UplinkTaken {
        /// Bridge name.
        bridge: String,
        /// Uplink name.
        uplink: String,
    },
    /// A netlink request about the bridge failed.
    #[error("bridge {bridge}: cannot {action}")]
    Netlink {
        /// Bridge name.
        bridge: String,
        /// What was being done.
        action: String,
        /// The kernel's answer.
        #[source]
        source: rtnetlink::Error,
    },
}
