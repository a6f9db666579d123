//! `VinoNode` (`airship.airshipit.org/v1`, namespaced): one host's membership of one Vino and
//! its status there. A host writes only its own (`<vino>.<node>` in the Vino's namespace,
//! labelled with both, owned by its Node), so no object is written by many hosts: deleting the
//! Node garbage-collects its `VinoNode`s, and a Vino being deleted waits only for the
//! `VinoNode`s that are left (see `crate::kube::membership`).

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

use super::{NodePhase, NodeStatus, VmState};
use crate::hash::short_hash;

/// One host's membership of a Vino and where it stands with it.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "airship.airshipit.org",
    version = "v1",
    kind = "VinoNode",
    plural = "vinonodes",
    singular = "vinonode",
    shortname = "vnode",
    namespaced,
    printcolumn = r#"{"name":"Vino","type":"string","jsonPath":".spec.vino"}"#,
    printcolumn = r#"{"name":"Node","type":"string","jsonPath":".spec.node"}"#,
    printcolumn = r#"{"name":"Phase","type":"string","jsonPath":".spec.phase"}"#,
    printcolumn = r#"{"name":"Ready","type":"integer","jsonPath":".spec.vmsReady"}"#,
    printcolumn = r#"{"name":"VMs","type":"integer","jsonPath":".spec.vmsTotal"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[x_kube(validation = Rule::new("self.node == oldSelf.node && self.vino == oldSelf.vino && self.vinoUID == oldSelf.vinoUID && self.nodeLabels == oldSelf.nodeLabels").message("a VinoNode's Vino, Node and Node labels never change"))]
#[serde(rename_all = "camelCase")]
pub struct VinoNodeSpec {
    /// The Vino's name (in this object's namespace).
    #[schemars(length(min = 1, max = 253))]
    pub vino: String,

    /// The Vino's UID: an object left from an earlier Vino of the same name is not this one's.
    #[serde(rename = "vinoUID")]
    #[schemars(length(max = 64))]
    pub vino_uid: String,

    /// The Node (host).
    #[schemars(length(min = 1, max = 253))]
    pub node: String,

    /// The Node's labels when the host joined the Vino (the admission policy checks them
    /// against the Node and the Vino's nodeSelector).
    #[serde(default)]
    pub node_labels: BTreeMap<String, String>,

    /// Phase on this host.
    pub phase: NodePhase,

    /// VMs ready on this host (those of `vms` with `ready: true`).
    #[serde(default)]
    pub vms_ready: u32,

    /// VMs this Vino wants on this host.
    #[serde(default)]
    pub vms_total: u32,

    /// The error or warning that explains the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 4096))]
    pub message: Option<String>,

    /// The Vino generation this describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// Each VM: power, its BareMetalHost's provisioning state, ready or why not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4096))]
    pub vms: Vec<VmState>,
}

impl VinoNodeSpec {
    /// The spec for host `entry.name`, labelled `node_labels`, of the Vino `vino` (UID
    /// `uid`).
    pub fn new(
        vino: &str,
        uid: &str,
        node_labels: &BTreeMap<String, String>,
        entry: &NodeStatus,
    ) -> Self {
        Self {
            vino: vino.to_string(),
            vino_uid: uid.to_string(),
            node: entry.name.clone(),
            node_labels: node_labels.clone(),
            phase: entry.phase,
            vms_ready: entry.vms_ready,
            vms_total: entry.vms_total,
            message: entry.message.clone(),
            observed_generation: entry.observed_generation,
            vms: entry.vms.clone(),
        }
    }

    /// The status entry it carries.
    pub fn entry(&self) -> NodeStatus {
        NodeStatus {
            name: self.node.clone(),
            phase: self.phase,
            vms_ready: self.vms_ready,
            vms_total: self.vms_total,
            message: self.message.clone(),
            observed_generation: self.observed_generation,
            vms: self.vms.clone(),
        }
    }
}

/// Object name of host `node`'s `VinoNode` for Vino `vino`: `<vino>.<node>` (bounded to 253
/// characters with a hash if longer).
pub fn vino_node_name(vino: &str, node: &str) -> String {
    let name = format!("{vino}.{node}");
    if name.len() <= 253 {
        return name;
    }
    // Names are ASCII (DNS subdomains), so any cut is on a character boundary.
    let hash = short_hash(&name);
    let prefix = name[..252 - hash.len()].trim_end_matches(['-', '.']);
    format!("{prefix}-{hash}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_entries() {
        assert_eq!(vino_node_name("rack", "node-a"), "rack.node-a");
        let long = vino_node_name(&"v".repeat(200), &"n".repeat(200));
        assert!(long.len() <= 253, "{}", long.len());
        let e = NodeStatus {
            name: "node-a".into(),
            phase: NodePhase::Ready,
            vms_ready: 2,
            vms_total: 2,
            message: None,
            observed_generation: Some(3),
            vms: vec![VmState {
                name: "ns.rack.worker-0".into(),
                bare_metal_host: "rack-node-a-worker-0".into(),
                power: Some(crate::api::Power::On),
                provisioning: Some("provisioned".into()),
                ready: true,
                message: None,
            }],
        };
        let s = VinoNodeSpec::new("rack", "u1", &BTreeMap::new(), &e);
        assert_eq!(s.entry(), e);
    }
}
