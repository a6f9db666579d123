//! Host state: the single set of types for what the host should look like (from the planner)
//! and what it does look like (from the adapters), so the two can be compared.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

use crate::api::Vino;
use crate::value::cpuset::CpuSet;

/// The Vino an object belongs to. vinod only ever changes objects that carry an owner.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Owner {
    /// Vino namespace.
    pub namespace: String,
    /// Vino name.
    pub name: String,
}

impl Owner {
    /// The owner key of `vino`; a Vino without a namespace is in `default`.
    pub fn of(vino: &Vino) -> Owner {
        Owner {
            namespace: vino
                .metadata
                .namespace
                .clone()
                .unwrap_or_else(|| "default".into()),
            name: vino.metadata.name.clone().unwrap_or_default(),
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// Everything vinod manages on one host.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HostState {
    /// Linux bridges by name.
    pub bridges: BTreeMap<String, Bridge>,
    /// DHCP/TFTP servers by bridge name.
    pub dhcp: BTreeMap<String, DhcpServer>,
    /// Storage volumes by name.
    pub volumes: BTreeMap<String, Volume>,
    /// libvirt domains by name.
    pub domains: BTreeMap<String, Domain>,
}

/// A Linux bridge for one VM network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bridge {
    /// Interface name.
    pub name: String,
    /// The host's address on the network, with the subnet's prefix length.
    pub address: Ipv4Net,
    /// MTU, if set by the Vino.
    pub mtu: Option<u32>,
    /// Host NIC enslaved to the bridge.
    pub uplink: Option<String>,
    /// Owning Vino.
    pub owner: Owner,
}

/// A dnsmasq instance serving DHCP (and optionally TFTP) on one bridge.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DhcpServer {
    /// Bridge it serves.
    pub bridge: String,
    /// Network name.
    pub network: String,
    /// Owning Vino.
    pub owner: Owner,
    /// The main configuration file; a change restarts dnsmasq.
    pub config: String,
    /// Directory of the reservation files (the configuration's `dhcp-hostsdir`).
    pub hostsdir: PathBuf,
    /// Lease database (the configuration's `dhcp-leasefile`).
    pub leasefile: PathBuf,
    /// Reservation files (name → `mac,ip,hostname` line); changes are picked up live.
    pub hosts: BTreeMap<String, String>,
}

/// A qcow2 volume in vinod's storage pool.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    /// Volume name (file name in the pool).
    pub name: String,
    /// Size in bytes.
    pub capacity_bytes: u64,
    /// Thin-provisioned.
    pub sparse: bool,
    /// Owning Vino.
    pub owner: Owner,
}

/// A libvirt domain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Domain {
    /// Domain name, also the Redfish System id.
    pub name: String,
    /// Stable UUID.
    pub uuid: String,
    /// Owning Vino.
    pub owner: Owner,
    /// Hash of the definition, stored in the domain's metadata to detect changes.
    pub spec_hash: String,
    /// Full definition (desired state only; observed domains leave it empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub xml: String,
    /// Host CPUs its vCPUs are pinned to (empty when it floats). Observed from the host's
    /// definition; in the desired state the XML carries them, so they are not serialised.
    #[serde(skip)]
    pub pinned_cpus: CpuSet,
    /// Whether it runs (observed; the desired state leaves it `false` and the diff ignores it:
    /// power belongs to whoever drives the BMC).
    #[serde(skip)]
    pub running: bool,
}

impl HostState {
    /// The part of this state that belongs to `owner`.
    pub fn owned_by(&self, owner: &Owner) -> HostState {
        HostState {
            bridges: self
                .bridges
                .iter()
                .filter(|(_, v)| &v.owner == owner)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            dhcp: self
                .dhcp
                .iter()
                .filter(|(_, v)| &v.owner == owner)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            volumes: self
                .volumes
                .iter()
                .filter(|(_, v)| &v.owner == owner)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            domains: self
                .domains
                .iter()
                .filter(|(_, v)| &v.owner == owner)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        }
    }
}
