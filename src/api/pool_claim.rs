//! `VinoPoolClaim` (`airship.airshipit.org/v1`, cluster-scoped): one unit of an address pool
//! held by one host, a static address or a DHCP block. A host takes a unit by creating the
//! object under the unit's name ([`address_claim_name`], [`block_claim_name`]): the API server
//! lets only one create of a name succeed, so a unit has one holder in the whole cluster, for
//! every Vino and namespace. The spec never changes; the holder releases the unit by deleting
//! the object, and the garbage collector deletes it with the holder's Node (its owner).

use std::net::Ipv4Addr;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

/// One unit of an address pool, held by one host for one Vino.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "airship.airshipit.org",
    version = "v1",
    kind = "VinoPoolClaim",
    plural = "vinopoolclaims",
    singular = "vinopoolclaim",
    shortname = "vnpool",
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".spec.node"}"#,
    printcolumn = r#"{"name":"Pool","type":"string","jsonPath":".spec.pool"}"#,
    printcolumn = r#"{"name":"Vino","type":"string","jsonPath":".spec.vino.name"}"#,
    printcolumn = r#"{"name":"Key","type":"string","jsonPath":".spec.key"}"#,
    printcolumn = r#"{"name":"MAC","type":"string","jsonPath":".spec.mac"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("self == oldSelf").message("a claim never changes: delete it and claim again"))]
#[x_kube(validation = Rule::new("has(self.address) != has(self.block)").message("a claim holds either an address or a block"))]
#[serde(rename_all = "camelCase")]
pub struct VinoPoolClaimSpec {
    /// The pool: the network's subnet with its host bits cleared (e.g. `10.20.0.0/16`).
    #[schemars(length(min = 1, max = 64))]
    pub pool: String,

    /// The holder: the Node whose vinod claimed the unit.
    #[schemars(length(min = 1, max = 253))]
    pub node: String,

    /// The Vino the unit serves.
    pub vino: ClaimVino,

    /// The network of the Vino.
    #[schemars(length(min = 1, max = 40))]
    pub network: String,

    /// What the unit is used for: `dhcp`, `bridge` or `<vm>/<interface>`.
    #[schemars(length(min = 1, max = 320))]
    pub key: String,

    /// The claimed static address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Addr>,

    /// The MAC of a VM NIC's address, fixed when it was claimed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 17, max = 17))]
    pub mac: Option<String>,

    /// The claimed DHCP block.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<ClaimBlock>,
}

/// The Vino a claim serves.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, schemars::JsonSchema)]
pub struct ClaimVino {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// UID: claims of an earlier Vino of the same name are not reused.
    pub uid: String,
}

/// A DHCP block: `size` addresses from `start`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, schemars::JsonSchema)]
pub struct ClaimBlock {
    /// First address.
    pub start: Ipv4Addr,
    /// Number of addresses.
    pub size: u32,
}

/// The claim key of a network's DHCP block.
pub const DHCP_KEY: &str = "dhcp";

/// Object name of the claim of static address `ip`: `ip-10-20-0-11`.
pub fn address_claim_name(ip: Ipv4Addr) -> String {
    let [a, b, c, d] = ip.octets();
    format!("ip-{a}-{b}-{c}-{d}")
}

/// Object name of the claim of the DHCP block `block`: `dhcp-10-20-1-0-16`.
pub fn block_claim_name(block: ClaimBlock) -> String {
    let [a, b, c, d] = block.start.octets();
    format!("dhcp-{a}-{b}-{c}-{d}-{}", block.size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names() {
        assert_eq!(
            address_claim_name(Ipv4Addr::new(10, 20, 0, 11)),
            "ip-10-20-0-11"
        );
        let block = ClaimBlock {
            start: Ipv4Addr::new(10, 20, 1, 16),
            size: 16,
        };
        assert_eq!(block_claim_name(block), "dhcp-10-20-1-16-16");
    }
}
