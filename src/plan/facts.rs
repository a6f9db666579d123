//! What the planner knows about the host: its Node name, labels and addresses, its CPUs, and
//! its own network.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::{IpNet, Ipv4Net};
use serde::{Deserialize, Serialize};

use crate::api::Vino;
use crate::value::cpuset::CpuSet;

/// Facts about this host.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NodeFacts {
    /// Kubernetes Node name.
    pub name: String,
    /// Node labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Node addresses, InternalIP first.
    #[serde(default)]
    pub addresses: Vec<IpAddr>,
    /// CPUs by NUMA node.
    #[serde(default)]
    pub numa: Vec<NumaNode>,
    /// Whether the Node's `Ready` condition is there and not `True`: its kubelet stopped
    /// reporting (e.g. the host died). A Node without the condition is not down.
    #[serde(default)]
    pub down: bool,
}

/// One NUMA node's CPUs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NumaNode {
    /// NUMA node number.
    pub id: u32,
    /// Its CPUs, as a cpulist (`0-7,16-23`).
    pub cpus: CpuSet,
}

/// Whether `vino` selects the host described by `node`: every `matchLabels` entry must be
/// among the Node's labels. A Vino without a selector selects nothing.
pub fn selects(vino: &Vino, node: &NodeFacts) -> bool {
    vino.spec.node_selector.as_ref().is_some_and(|sel| {
        sel.match_labels
            .iter()
            .all(|(k, v)| node.labels.get(k) == Some(v))
    })
}

/// The host's own network as the kernel reports it, leaving out vinod's bridges and the VMs'
/// ports: what no Vino may take over.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostNetwork {
    /// Interfaces and their addresses (link-local ones left out).
    #[serde(default)]
    pub interfaces: Vec<HostInterface>,
    /// IPv4 routes of the main table.
    #[serde(default)]
    pub routes: Vec<HostRoute>,
}

/// One of the host's interfaces.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostInterface {
    /// Interface name.
    pub name: String,
    /// Its addresses with their prefix length.
    #[serde(default)]
    pub addresses: Vec<IpNet>,
}

/// One of the host's routes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HostRoute {
    /// Destination network.
    pub destination: Ipv4Net,
    /// Interface it leaves by (empty when the kernel names none, e.g. a blackhole).
    #[serde(default)]
    pub interface: String,
}
