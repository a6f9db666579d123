//! The `Vino` custom resource (`airship.airshipit.org/v1`), field for field compatible with
//! ViNO's API, plus backward-compatible additions (flavors, BMC credentials by Secret
//! reference, an explicit flavor per node set).

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

pub use super::metal3_options::{BmcDriver, CleaningMode, Inspection, Metal3Options};
pub use super::network::{Network, VmRoute};
use super::status::VinoStatus;

/// Desired state of a Vino: the networks and VM sets that every selected host builds.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "airship.airshipit.org",
    version = "v1",
    kind = "Vino",
    plural = "vinoes",
    singular = "vino",
    shortname = "vn",
    namespaced,
    status = "VinoStatus",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Nodes","type":"string","jsonPath":".status.nodesReady","description":"Hosts ready / hosts selected"}"#,
    printcolumn = r#"{"name":"VMs","type":"string","jsonPath":".status.vmsReady","description":"VMs ready / VMs desired"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.nodeSelector)").message("spec.nodeSelector is required: a Vino without it would select no host").field_path(".nodeSelector"))]
#[x_kube(validation = Rule::new("!has(self.nodes) || self.nodes.all(n, !has(n.networkInterfaces) || n.networkInterfaces.all(i, has(self.networks) && self.networks.exists(w, w.name == i.network)))").message("every nodes[].networkInterfaces[].network must name one of spec.networks[].name").field_path(".nodes"))]
#[x_kube(validation = Rule::new("has(self.bmcCredentials)").message("spec.bmcCredentials is required: give secretRef or username and password").field_path(".bmcCredentials"))]
#[x_kube(validation = Rule::new("!has(self.networks) || self.networks.all(a, self.networks.all(b, a.name == b.name || !isCIDR(a.subnet) || !isCIDR(b.subnet) || !cidr(a.subnet).masked().containsCIDR(cidr(b.subnet).masked())))").message("network subnets must not overlap").field_path(".networks"))]
#[x_kube(validation = Rule::new("!has(self.networks) || self.networks.all(a, self.networks.all(b, a.name == b.name || (has(a.bridgeName) ? a.bridgeName : 'vm-infra-bridge') != (has(b.bridgeName) ? b.bridgeName : 'vm-infra-bridge')))").message("each network needs its own bridgeName (default vm-infra-bridge)").field_path(".networks"))]
#[x_kube(validation = Rule::new("!has(self.nodes) || self.nodes.all(n, (has(n.flavor) ? n.flavor : n.name) in ['master', 'worker'] || (has(self.flavors) && (has(n.flavor) ? n.flavor : n.name) in self.flavors))").message("every node set needs a flavor: nodes[].flavor (default: the set name) must be master, worker or a key of spec.flavors").field_path(".nodes"))]
#[x_kube(validation = Rule::new("!has(self.networks) || !has(self.nodes) || self.networks.all(w, !has(w.dhcpAllocationStart) || self.nodes.map(n, n.count * (has(n.networkInterfaces) ? n.networkInterfaces.filter(i, i.network == w.name).size() : 0)).sum() <= [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536][has(w.instanceSubnetBitStep) ? w.instanceSubnetBitStep : 4])").message("VM NICs per host on a network must fit in its DHCP block of 2^instanceSubnetBitStep addresses").field_path(".nodes"))]
pub struct VinoSpec {
    /// Hosts (Kubernetes Nodes) whose labels match run this Vino's VMs. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_selector: Option<NodeSelector>,

    /// Host CPU settings: which cores VMs must never be pinned to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configuration: Option<CpuConfiguration>,

    /// VM networks. Each becomes a Linux bridge with its own DHCP server on every selected host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub networks: Vec<Network>,

    /// VM sets. Each entry creates `count` VMs on every selected host.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub nodes: Vec<NodeSet>,

    /// Accepted for compatibility with ViNO manifests; vinod has no DaemonSet and ignores it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon_set_options: Option<DaemonSetOptions>,

    /// Credentials every VM's Redfish BMC accepts, and that each BareMetalHost's credentials
    /// Secret carries. Give `secretRef` (preferred) or the inline `username` and `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmc_credentials: Option<BmcCredentials>,

    /// How metal3 drives the VMs, the driver part of each BareMetalHost's `bmc.address`:
    /// `redfish` (boot from the network, iPXE) or `redfish-virtualmedia` (boot images inserted
    /// as virtual CDs, e.g. `live-iso`, no provisioning network needed). Default `redfish`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bmc_driver: Option<BmcDriver>,

    /// What metal3 does with a new BareMetalHost before it is used. vinod knows each VM's
    /// hardware and gives it fresh disks, so by default BMO is told to skip inspection (no
    /// deploy ramdisk needed) and automated cleaning.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metal3: Option<Metal3Options>,

    /// Firmware of the VMs, and the BareMetalHosts' `bootMode`: `legacy` (SeaBIOS, the
    /// default) or `UEFI` (OVMF from the distribution's package, a per-VM NVRAM libvirt keeps).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_mode: Option<BootMode>,

    /// Labels copied from the host's Node to each of its BareMetalHosts. Keys the Node lacks
    /// are skipped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub node_label_keys_to_copy: Vec<String>,

    /// Host of the iPXE boot script URL `http://<host>:<port>/<path>` handed out by DHCP.
    /// Default: the host's own address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub pxe_boot_image_host: Option<String>,

    /// Port of that URL. Default: 80.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub pxe_boot_image_host_port: Option<i32>,

    /// Path of that URL. Default: `dualboot.ipxe` (ViNO's); `boot.ipxe` with Ironic's HTTP
    /// server as host and port hands the VMs Ironic's own iPXE boot script.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 255),
        regex(pattern = r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$")
    )]
    pub pxe_boot_image_path: Option<String>,

    /// VM sizes by name, used by `nodes[].flavor`. `master` and `worker` are built in (with
    /// ViNO's sizes) and may be overridden here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub flavors: BTreeMap<String, Flavor>,
}

/// VM firmware.
#[derive(
    schemars::JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq,
)]
pub enum BootMode {
    /// SeaBIOS.
    #[default]
    #[serde(rename = "legacy")]
    Legacy,
    /// OVMF.
    #[serde(rename = "UEFI")]
    Uefi,
}

impl BootMode {
    /// The BareMetalHost's `bootMode` value.
    pub fn as_str(self) -> &'static str {
        match self {
            BootMode::Legacy => "legacy",
            BootMode::Uefi => "UEFI",
        }
    }
}

/// Equality-based selection of hosts by their Node labels.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct NodeSelector {
    /// Every label here must be present on the Node with this value. Empty selects all hosts.
    #[serde(default)]
    pub match_labels: BTreeMap<String, String>,
}

/// Host CPU configuration.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CpuConfiguration {
    /// Host CPUs that VMs must not be pinned to, as a list such as `0-4,54-60`. When set, each
    /// VM's vCPUs are pinned to dedicated host CPUs of one NUMA node; when absent, VMs float.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^\s*$|^\s*[0-9]+(\s*-\s*[0-9]+)?(\s*,\s*[0-9]+(\s*-\s*[0-9]+)?)*\s*$"
    ))]
    #[schemars(length(max = 1024))]
    pub cpu_exclude: Option<String>,
}

/// A set of identical VMs.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.bootInterfaceName) || (has(self.networkInterfaces) && self.networkInterfaces.exists(i, i.name == self.bootInterfaceName))").message("bootInterfaceName must name one of networkInterfaces[].name").field_path(".bootInterfaceName"))]
pub struct NodeSet {
    /// Set name (the VM role), part of every VM, domain and BareMetalHost name.
    #[schemars(
        length(min = 1, max = 32),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// VMs of this set on each selected host.
    #[serde(default)]
    #[schemars(range(min = 0, max = 256))]
    pub count: u32,

    /// Flavor (size) of these VMs: a key of `spec.flavors` or a built-in. Default: the set name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub flavor: Option<String>,

    /// Labels added to each BareMetalHost of this set, over all other labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bmh_labels: BTreeMap<String, String>,

    /// Accepted for compatibility with ViNO manifests and ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub libvirt_template: Option<NamespacedName>,

    /// VM NICs, in guest order. Each gets a static address and MAC from its network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub network_interfaces: Vec<NetworkInterface>,

    /// Data disks besides the root disk, attached in order as vdb, vdc, ...
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8))]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["name".into()]))]
    pub disk_drives: Vec<DiskDrive>,

    /// Secret holding a ViNO network-data Go template. vinod does not run Go templates: it
    /// always writes `network_data.json` and reports a warning when this is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_data_template: Option<NamespacedName>,

    /// Root device hint for the BareMetalHost. Default `/dev/vda`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 253), regex(pattern = r"^/dev/"))]
    pub root_device_name: Option<String>,

    /// Name of the NIC whose MAC becomes the BareMetalHost's `bootMACAddress`.
    /// Default: the first NIC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_interface_name: Option<String>,

    /// Give each VM a VNC console (listening where the vinod config says).
    #[serde(default, rename = "enableVNC")]
    pub enable_vnc: bool,
}

/// A VM NIC.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.type) || self.type in ['network', 'bridge']").message("type must be network or bridge").field_path(".type"))]
pub struct NetworkInterface {
    /// NIC name, unique within the set; the network data link id.
    #[schemars(
        length(min = 1, max = 15),
        regex(pattern = r"^[A-Za-z0-9_.][-A-Za-z0-9_.]*$")
    )]
    pub name: String,
    /// ViNO's libvirt interface type (`network` or `bridge`); vinod always attaches the NIC
    /// to the network's bridge.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub interface_type: Option<String>,
    /// Name of the network in `spec.networks`.
    #[schemars(length(min = 1, max = 40))]
    pub network: String,
    /// MTU written into network data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 68, max = 65535))]
    pub mtu: Option<u32>,
    /// Extra key/values copied into the network data link.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// A data disk.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.options) && has(self.options.sizeGb)").message("options.sizeGb is required").field_path(".options"))]
#[x_kube(validation = Rule::new("!has(self.type) || self.type == 'file'").message("only type file (a qcow2 volume) is supported").field_path(".type"))]
pub struct DiskDrive {
    /// Disk name, unique within the set; part of the volume name.
    #[schemars(
        length(min = 1, max = 32),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
    /// Disk type. Only `file` (a qcow2 volume in vinod's pool) is supported. Default `file`.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub disk_type: Option<String>,
    /// Guest device, `/dev/vdX`. Default: the next free virtio device.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^/dev/vd[b-z]$"))]
    pub path: Option<String>,
    /// Size and allocation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub options: Option<DiskOptions>,
}

/// Size and allocation of a data disk.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DiskOptions {
    /// Size in GiB. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65536))]
    pub size_gb: Option<u32>,
    /// Thin-provisioned (default true) or fully allocated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sparse: Option<bool>,
}

/// A VM size.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Flavor {
    /// Virtual CPUs.
    #[schemars(range(min = 1, max = 512))]
    pub vcpus: u32,
    /// Memory in MiB.
    #[serde(rename = "memoryMiB")]
    #[schemars(range(min = 64, max = 16777216))]
    pub memory_mib: u64,
    /// Root disk size in GiB.
    #[serde(rename = "rootDiskGiB")]
    #[schemars(range(min = 1, max = 65536))]
    pub root_disk_gib: u64,
    /// Back memory with 1 GiB huge pages.
    #[serde(default)]
    pub hugepages: bool,
}

/// BMC credentials: inline, or by reference to a Secret in the Vino's namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.secretRef) ? !has(self.username) && !has(self.password) : has(self.username) && has(self.password)").message("give either secretRef or both username and password"))]
pub struct BmcCredentials {
    /// Inline user name (ViNO style).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub username: Option<String>,
    /// Inline password (ViNO style; prefer `secretRef`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub password: Option<String>,
    /// Secret in the Vino's namespace with keys `username` and `password`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
}

/// Reference to a Secret in the same namespace.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct SecretRef {
    /// Secret name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

/// Name and namespace of an object.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct NamespacedName {
    /// Object name.
    #[serde(default)]
    pub name: String,
    /// Object namespace.
    #[serde(default)]
    pub namespace: String,
}

/// ViNO's DaemonSet template reference and images; ignored by vinod.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DaemonSetOptions {
    /// Template ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespaced_name: Option<NamespacedName>,
    /// Ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub libvirt_image: Option<String>,
    /// Ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sushy_image: Option<String>,
    /// Ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vino_builder_image: Option<String>,
    /// Ignored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_annotator_image: Option<String>,
}
