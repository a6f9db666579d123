//! The planner: a pure function from (Vino, this host's facts, IP claims, configuration) to
//! the desired host state and the objects to publish.

pub mod cpu;
pub mod credentials;
pub mod departure;
mod desired;
pub mod diff;
pub mod facts;
mod host_network;
mod labels;
pub mod merge;
pub mod names;
mod publish;
mod vm;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use k8s_openapi::api::core::v1::Secret;
use serde::Serialize;

pub use desired::plan;
pub use facts::{HostInterface, HostNetwork, HostRoute, NodeFacts, NumaNode, selects};
pub use labels::ownership;

use crate::api::bmh::BareMetalHost;
use crate::api::hardware_data::HardwareData;
use crate::api::{SpecError, Vino};
use crate::config::Config;
use crate::ipam::{HostClaims, IpamError, NetworkClaims};
use crate::render::objects::Credentials;
use crate::state::{HostState, Owner};
use crate::value::cpuset::CpuSet;

/// Errors of planning.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The Vino is invalid.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// Addresses could not be allocated.
    #[error(transparent)]
    Ipam(#[from] IpamError),
    /// The Vino references a Secret the caller did not supply.
    #[error("{field}: Secret {name:?} in namespace {namespace:?} is not available")]
    MissingSecret {
        /// Referencing field.
        field: String,
        /// Secret name.
        name: String,
        /// Secret namespace.
        namespace: String,
    },
    /// The referenced Secret lacks a key.
    #[error("{field}: Secret {name:?} has no key {key:?}")]
    SecretKey {
        /// Referencing field.
        field: String,
        /// Secret name.
        name: String,
        /// Missing key.
        key: String,
    },
    /// There is no address to publish the BMC on.
    #[error(
        "node {node}: no address for the Redfish BMC: the Node has no InternalIP and redfish.advertise_address is empty"
    )]
    NoAddress {
        /// Node name.
        node: String,
    },
    /// The Vino asks for something of the host's own network.
    #[error("{field}: {reason}")]
    HostNetwork {
        /// The field.
        field: String,
        /// What it would take over, and which setting allows what.
        reason: String,
    },
    /// CPU pinning is requested but the VMs do not fit.
    #[error("spec.configuration.cpuExclude: cannot pin VM {}: it needs {} CPUs on one NUMA node; free CPUs: {}", .0.vm, .0.vcpus, .0.free)]
    Pinning(cpu::PinError),
}

/// Everything the planner needs.
#[derive(Clone, Copy, Debug)]
pub struct PlanInput<'a> {
    /// The Vino.
    pub vino: &'a Vino,
    /// This host.
    pub node: &'a NodeFacts,
    /// vinod's configuration.
    pub config: &'a Config,
    /// Every host's claims, by network name.
    pub claims: &'a BTreeMap<String, NetworkClaims>,
    /// BMC credentials resolved from `spec.bmcCredentials.secretRef`, if it is used.
    pub credentials: Option<&'a Credentials>,
    /// CPUs held by other Vinos on this host (their plans and their existing VMs).
    pub taken_cpus: &'a CpuSet,
    /// The CPUs this host's existing domains are pinned to, by domain name (observed): a VM
    /// keeps its CPUs while they are still allowed.
    pub current_pins: &'a BTreeMap<String, CpuSet>,
    /// The host's own network (observed), which no Vino may overlap or take over.
    pub host_network: &'a HostNetwork,
    /// VMs beyond their set's `count` that stay planned while metal3 may still hold them
    /// (see [`departure`]).
    pub retained: &'a [(String, u32)],
}

/// What one Vino wants on this host.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VinoPlan {
    /// The Vino.
    pub owner: Owner,
    /// This host's node name.
    pub node: String,
    /// VMs, in set order.
    pub vms: Vec<VmPlan>,
    /// Bridges, DHCP servers, volumes and domains.
    pub host: HostState,
    /// BareMetalHosts to publish.
    pub bare_metal_hosts: Vec<BareMetalHost>,
    /// Secrets to publish (credentials and network data).
    pub secrets: Vec<Secret>,
    /// The VMs' hardware for metal3 (HardwareData named after each BareMetalHost), while
    /// BMO's inspection is disabled.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hardware: Vec<HardwareData>,
    /// This host's claims by network, to persist.
    pub claims: BTreeMap<String, HostClaims>,
    /// CPUs this Vino pins (empty when unpinned); serialised in cpulist form.
    pub pinned_cpus: CpuSet,
    /// Accepted input worth reporting.
    pub warnings: Vec<String>,
    /// VMs leaving this host that are not destroyed in this pass, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub departing: Vec<departure::Departure>,
}

/// Summary of one VM.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VmPlan {
    /// Domain name and Redfish System id.
    pub name: String,
    /// BareMetalHost name.
    pub bare_metal_host: String,
    /// Node set.
    pub set: String,
    /// Index within the set on this host.
    pub index: u32,
    /// Flavor.
    pub flavor: String,
    /// vCPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// NICs.
    pub nics: Vec<NicPlan>,
    /// Host CPUs, when pinned.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pinned_cpus: Option<Vec<u32>>,
}

/// One VM NIC.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct NicPlan {
    /// Interface name.
    pub name: String,
    /// Network.
    pub network: String,
    /// Bridge.
    pub bridge: String,
    /// MAC.
    pub mac: String,
    /// Static address.
    pub ip: Ipv4Addr,
}

impl VinoPlan {
    /// A copy safe to print: Secret values other than network data are replaced.
    pub fn redacted(&self) -> VinoPlan {
        let mut copy = self.clone();
        for s in &mut copy.secrets {
            if let Some(data) = s.string_data.as_mut() {
                for (k, v) in data.iter_mut() {
                    if k != "networkData" {
                        *v = "<redacted>".into();
                    }
                }
            }
        }
        copy
    }
}
