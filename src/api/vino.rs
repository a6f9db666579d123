//! The `Vino` custom resource (`airship.airshipit.org/v1`), field for field compatible with
//! ViNO's API, plus backward-compatible additions (flavors, BMC credentials by Secret
//! reference, an explicit flavor per node set).

use std::collections::BTreeMap;

use kube::{CustomResource, KubeSchema};
use serde::{Deserialize, Serialize};

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

/// A VM network: bridge, addressing and DHCP settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("isCIDR(self.subnet) && cidr(self.subnet).ip().family() == 4").message("subnet must be an IPv4 CIDR such as 192.168.2.0/24").field_path(".subnet"))]
#[x_kube(validation = Rule::new("!isCIDR(self.subnet) || (isIP(self.staticAllocationStart) && isIP(self.staticAllocationStop) && cidr(self.subnet).containsIP(self.staticAllocationStart) && cidr(self.subnet).containsIP(self.staticAllocationStop))").message("staticAllocationStart and staticAllocationStop must be IP addresses inside subnet").field_path(".staticAllocationStart"))]
#[x_kube(validation = Rule::new(concat!("!isIP(self.staticAllocationStart) || !isIP(self.staticAllocationStop) || ip(self.staticAllocationStart).family() != 4 || ip(self.staticAllocationStop).family() != 4 || ", ipv4_int!("self.staticAllocationStart"), " <= ", ipv4_int!("self.staticAllocationStop"))).message("staticAllocationStart must not be after staticAllocationStop").field_path(".staticAllocationStop"))]
#[x_kube(validation = Rule::new("has(self.dhcpAllocationStart) == has(self.dhcpAllocationStop)").message("dhcpAllocationStart and dhcpAllocationStop go together").field_path(".dhcpAllocationStart"))]
#[x_kube(validation = Rule::new("!isCIDR(self.subnet) || !has(self.dhcpAllocationStart) || !has(self.dhcpAllocationStop) || (isIP(self.dhcpAllocationStart) && isIP(self.dhcpAllocationStop) && cidr(self.subnet).containsIP(self.dhcpAllocationStart) && cidr(self.subnet).containsIP(self.dhcpAllocationStop))").message("dhcpAllocationStart and dhcpAllocationStop must be IP addresses inside subnet").field_path(".dhcpAllocationStart"))]
#[x_kube(validation = Rule::new(concat!("!has(self.dhcpAllocationStart) || !has(self.dhcpAllocationStop) || !isIP(self.dhcpAllocationStart) || !isIP(self.dhcpAllocationStop) || ip(self.dhcpAllocationStart).family() != 4 || ip(self.dhcpAllocationStop).family() != 4 || ", ipv4_int!("self.dhcpAllocationStart"), " <= ", ipv4_int!("self.dhcpAllocationStop"))).message("dhcpAllocationStart must not be after dhcpAllocationStop").field_path(".dhcpAllocationStop"))]
#[x_kube(validation = Rule::new("!has(self.macPrefix) || !(self.macPrefix.substring(1, 2).lowerAscii() in ['1', '3', '5', '7', '9', 'b', 'd', 'f'])").message("macPrefix must be a unicast MAC (low bit of the first octet clear)").field_path(".macPrefix"))]
pub struct Network {
    /// Network name, referenced by `nodes[].networkInterfaces[].network`.
    #[schemars(
        length(min = 1, max = 40),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,

    /// IPv4 subnet in CIDR form, e.g. `192.168.2.0/20`.
    #[schemars(length(max = 43))]
    pub subnet: String,

    /// First address of the span cut into per-host DHCP blocks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 39))]
    pub dhcp_allocation_start: Option<String>,

    /// Last address of that span.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 39))]
    pub dhcp_allocation_stop: Option<String>,

    /// Each host's DHCP block holds 2^instanceSubnetBitStep addresses. Default 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 16))]
    pub instance_subnet_bit_step: Option<u32>,

    /// Free-form network type (ViNO samples use `bridge`); written into network data.
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub network_type: Option<String>,

    /// First address of the static range: host bridge addresses and VM NIC addresses.
    #[schemars(length(max = 39))]
    pub static_allocation_start: String,

    /// Last address of the static range.
    #[schemars(length(max = 39))]
    pub static_allocation_stop: String,

    /// DNS servers written into each VM's network data.
    #[serde(rename = "dns_servers", default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 8), inner(length(max = 39)))]
    #[x_kube(validation = Rule::new("self.all(d, isIP(d))").message("dns_servers must be IP addresses"))]
    pub dns_servers: Vec<String>,

    /// Routes written into each VM's network data. A gateway of `$vinobridge` means this
    /// host's bridge address on the network.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub routes: Vec<VmRoute>,

    /// First MAC address of this network's VM NICs. The NIC on the n-th address of the static
    /// range gets this MAC plus n. Default `02:00:00:00:00:00`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(max = 17),
        regex(pattern = r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$")
    )]
    pub mac_prefix: Option<String>,

    /// Host NIC enslaved to the bridge, giving the VMs layer-2 access to that NIC's network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 15))]
    pub physical_interface: Option<String>,

    /// Accepted for compatibility with ViNO manifests and ignored: vinod builds a plain bridge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub libvirt_template: Option<String>,

    /// Name of the Linux bridge. Default `vm-infra-bridge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 15),
        regex(pattern = r"^[A-Za-z0-9_.][-A-Za-z0-9_.]*$")
    )]
    pub bridge_name: Option<String>,

    /// MTU of the bridge. Default: the kernel's (1500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 68, max = 65535))]
    pub mtu: Option<u32>,
}

/// A route handed to VMs through network data.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct VmRoute {
    /// Destination network address.
    pub network: String,
    /// Destination netmask, dotted quad.
    pub netmask: String,
    /// Next hop, or `$vinobridge` for this host's bridge address.
    pub gateway: String,
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
