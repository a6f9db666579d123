//! `Vino.status`: one entry per host plus cluster-wide conditions.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// Condition type: every selected host has all its VMs defined for the current generation.
pub const CONDITION_READY: &str = "Ready";
/// Condition type: at least one host is still converging on the current generation.
pub const CONDITION_PROGRESSING: &str = "Progressing";
/// Condition type: at least one host cannot apply the current generation.
pub const CONDITION_DEGRADED: &str = "Degraded";
/// Condition type: the spec was accepted with warnings (e.g. a flavor metal3 cannot inspect).
pub const CONDITION_SPEC_WARNINGS: &str = "SpecWarnings";

/// Observed state of a Vino, written by the vinod on each selected host.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VinoStatus {
    /// `Ready`, `Progressing`, `Degraded` and `SpecWarnings`, each with `observedGeneration`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,

    /// One entry per selected host, each written only by that host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub nodes: Vec<NodeStatus>,

    /// Hosts ready for the current generation / hosts selected, e.g. `2/3` (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nodes_ready: Option<String>,

    /// VMs ready / VMs desired over the hosts that reported the current generation, e.g.
    /// `9/10` (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vms_ready: Option<String>,
}

/// Where one host stands with this Vino.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeStatus {
    /// Node (host) name.
    pub name: String,
    /// Phase on this host.
    pub phase: NodePhase,
    /// VMs ready on this host (those of `vms` with `ready: true`).
    #[serde(default)]
    pub vms_ready: u32,
    /// VMs this Vino wants on this host.
    #[serde(default)]
    pub vms_total: u32,
    /// Human-readable detail: the error or warning that explains the phase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The Vino generation this entry describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Each VM the Vino has on this host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 4096))]
    pub vms: Vec<VmState>,
}

/// Where one VM stands: its power, what metal3 does with its BareMetalHost, and whether it
/// counts as ready.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VmState {
    /// libvirt domain name (the Redfish System id).
    #[schemars(length(max = 253))]
    pub name: String,
    /// Its BareMetalHost's name.
    #[schemars(length(max = 253))]
    pub bare_metal_host: String,
    /// Whether it runs; absent while it is not defined.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<Power>,
    /// metal3's provisioning state of its BareMetalHost (`status.provisioning.state`, empty
    /// before BMO's first report); absent when vinod publishes no BareMetalHosts (standalone).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64))]
    pub provisioning: Option<String>,
    /// Defined as planned and, with metal3, its BareMetalHost published and not in error.
    pub ready: bool,
    /// Why it is not ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub message: Option<String>,
}

/// Power state of a VM as libvirt reports it.
#[derive(schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Power {
    /// Running (also paused).
    On,
    /// Shut off.
    Off,
}

impl Power {
    /// `On` for a running domain, else `Off`.
    pub fn of(running: bool) -> Self {
        if running { Power::On } else { Power::Off }
    }
}

/// Phase of a Vino on one host.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
pub enum NodePhase {
    /// Selected, nothing applied yet.
    #[default]
    Pending,
    /// Applying the current generation.
    Progressing,
    /// Everything on this host matches the current generation.
    Ready,
    /// The current generation cannot be applied; the last good state is kept.
    Degraded,
    /// Tearing down after deletion or deselection.
    Deleting,
}
