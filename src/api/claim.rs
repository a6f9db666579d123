//! `VinoIPClaim` (`airship.airshipit.org/v1`): the IP claims of every host on one network of
//! one Vino, in the Vino's namespace, as earlier versions kept them. vinod now claims each
//! address and DHCP block as its own `VinoPoolClaim` ([`super::pool_claim`]) and only reads
//! these once, to carry a host's existing claims over.

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use crate::ipam::HostClaims;

/// Claims of every host on one network of one Vino.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "airship.airshipit.org",
    version = "v1",
    kind = "VinoIPClaim",
    plural = "vinoipclaims",
    singular = "vinoipclaim",
    shortname = "vnclaim",
    namespaced,
    printcolumn = r#"{"name":"Vino","type":"string","jsonPath":".spec.vino"}"#,
    printcolumn = r#"{"name":"Network","type":"string","jsonPath":".spec.network"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct VinoIPClaimSpec {
    /// Name of the Vino, in this namespace.
    #[schemars(length(min = 1, max = 253))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("vino is immutable"))]
    pub vino: String,

    /// UID of the Vino: claims of an earlier Vino of the same name are never reused.
    #[schemars(length(min = 1, max = 64))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("vinoUID is immutable"))]
    #[serde(rename = "vinoUID")]
    pub vino_uid: String,

    /// Name of the network in the Vino's `spec.networks`.
    #[schemars(length(min = 1, max = 40))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("network is immutable"))]
    pub network: String,

    /// Each host's DHCP block and static addresses, by host (Node) name. Each host changes
    /// only its own entry.
    #[serde(default)]
    pub hosts: BTreeMap<String, HostClaims>,
}
