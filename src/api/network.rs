//! A Vino's VM networks (`spec.networks[]`): bridge, addressing, DHCP and the routes handed
//! to the VMs, with the CRD's validation rules.

use kube::KubeSchema;
use serde::{Deserialize, Serialize};

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
