//! metal3's `HardwareData` (`metal3.io/v1alpha1`): the hardware of a BareMetalHost of the same
//! name. With inspection disabled, BMO copies its `spec.hardware` into the host's
//! `status.hardware` (what metal3's users, e.g. CAPM3 host selectors, read), so vinod
//! publishes the hardware it built instead of having a ramdisk discover it. Only the fields
//! vinod knows are modelled; their names are metal3's.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The part of a HardwareData's spec that vinod writes.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "metal3.io",
    version = "v1alpha1",
    kind = "HardwareData",
    plural = "hardwaredata",
    shortname = "hd",
    namespaced
)]
#[serde(rename_all = "camelCase")]
pub struct HardwareDataSpec {
    /// The host's hardware.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardware: Option<HardwareDetails>,
}

/// metal3's `HardwareDetails`, as far as vinod knows them.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HardwareDetails {
    /// Who made the system: vinod, a libvirt domain (as the Redfish System says).
    pub system_vendor: SystemVendor,
    /// Memory in MiB.
    pub ram_mebibytes: u64,
    /// Network interfaces.
    pub nics: Vec<Nic>,
    /// Disks.
    pub storage: Vec<Storage>,
    /// Processors.
    pub cpu: Cpu,
    /// The VM's host name.
    pub hostname: String,
}

/// `systemVendor`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SystemVendor {
    /// Manufacturer.
    pub manufacturer: String,
    /// Product name.
    pub product_name: String,
}

/// One NIC.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Nic {
    /// Interface name in the guest's network data.
    pub name: String,
    /// Device model.
    pub model: String,
    /// MAC address.
    pub mac: String,
    /// IPv4 address vinod reserved for it.
    pub ip: String,
    /// Whether the host boots from it.
    pub pxe: bool,
}

/// One disk.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Storage {
    /// Device path in the guest (`/dev/vda`).
    pub name: String,
    /// Size in bytes.
    pub size_bytes: u64,
    /// Model.
    pub model: String,
}

/// `cpu`.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Cpu {
    /// Architecture (`x86_64`).
    pub arch: String,
    /// Logical CPUs (the flavor's vCPUs).
    pub count: u32,
}
