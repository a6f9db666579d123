//! What a Vino asks of metal3 for its BareMetalHosts (`spec.metal3`, `spec.bmcDriver`):
//! inspection, automated cleaning, whether VMs metal3 holds may be taken, and the driver.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

/// How metal3 treats the published BareMetalHosts.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Metal3Options {
    /// `disabled` (default: the `inspect.metal3.io: disabled` annotation) or `agent` (BMO
    /// inspects each host with Ironic's deploy ramdisk).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inspection: Option<Inspection>,
    /// The BareMetalHosts' `automatedCleaningMode`: `disabled` (default) or `metadata`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automated_cleaning_mode: Option<CleaningMode>,
    /// Whether a count-down, a deselection or the Vino's deletion may take VMs that metal3
    /// holds (BareMetalHost provisioned, provisioning, or with a `consumerRef`). Default
    /// `false`: such a VM stays, and the Vino is Degraded naming it. With `true` vinod deletes
    /// the BareMetalHost, waits for BMO to deprovision and release it, then destroys the VM.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release_provisioned: Option<bool>,
}

/// Whether BMO inspects the hosts.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
#[serde(rename_all = "lowercase")]
pub enum Inspection {
    /// No inspection.
    #[default]
    Disabled,
    /// Ironic's agent inspection (needs the deploy ramdisk).
    Agent,
}

/// Ironic's automated cleaning of the hosts' disks.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
#[serde(rename_all = "lowercase")]
pub enum CleaningMode {
    /// No cleaning.
    #[default]
    Disabled,
    /// Metadata cleaning before and after each use.
    Metadata,
}

impl CleaningMode {
    /// The value of `spec.automatedCleaningMode`.
    pub fn as_str(self) -> &'static str {
        match self {
            CleaningMode::Disabled => "disabled",
            CleaningMode::Metadata => "metadata",
        }
    }
}

/// The metal3 driver of the published BareMetalHosts.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
pub enum BmcDriver {
    /// `redfish+https://…`: network boot.
    #[default]
    #[serde(rename = "redfish")]
    Redfish,
    /// `redfish-virtualmedia+https://…`: boot images attached as virtual media.
    #[serde(rename = "redfish-virtualmedia")]
    RedfishVirtualMedia,
}

impl BmcDriver {
    /// The scheme prefix metal3 reads (`redfish`, `redfish-virtualmedia`).
    pub fn scheme(self) -> &'static str {
        match self {
            BmcDriver::Redfish => "redfish",
            BmcDriver::RedfishVirtualMedia => "redfish-virtualmedia",
        }
    }
}
