//! The CustomResourceDefinitions vinod ships, as YAML.

use kube::CustomResourceExt;

use super::bmh::BareMetalHost;
use super::claim::VinoIPClaim;
use super::pool_claim::VinoPoolClaim;
use super::vino::Vino;
use super::vino_node::VinoNode;

/// The Vino CRD as a YAML document.
pub fn vino_crd_yaml() -> String {
    to_yaml(&Vino::crd())
}

/// The VinoIPClaim CRD (IP claims shared by the hosts of a Vino) as a YAML document.
pub fn claim_crd_yaml() -> String {
    to_yaml(&VinoIPClaim::crd())
}

/// The VinoPoolClaim CRD (one claimed unit of an address pool, cluster-scoped) as a YAML
/// document.
pub fn pool_claim_crd_yaml() -> String {
    to_yaml(&VinoPoolClaim::crd())
}

/// The VinoNode CRD (one host's membership of a Vino and its status there) as a YAML
/// document.
pub fn vino_node_crd_yaml() -> String {
    to_yaml(&VinoNode::crd())
}

/// The subset of metal3's BareMetalHost CRD that vinod writes, for test clusters without BMO.
pub fn bmh_crd_yaml() -> String {
    to_yaml(&BareMetalHost::crd())
}

fn to_yaml<T: serde::Serialize>(value: &T) -> String {
    // Serializing an in-memory CRD cannot fail: it holds only strings, maps and numbers.
    serde_yaml::to_string(value).unwrap_or_default()
}
