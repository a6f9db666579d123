//! The objects published for each VM (BareMetalHost, Secrets, HardwareData), and the inputs they need:
//! BMC credentials, the BMC address, the owner reference.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::labels::{bmh_labels, ownership};
use super::vm::Vm;
use super::{NicPlan, PlanError, PlanInput, names};
use crate::api::hardware_data::{
    Cpu, HardwareData, HardwareDataSpec, HardwareDetails, Nic, Storage, SystemVendor,
};
use crate::api::validate::Checked;
use crate::api::vino::{Inspection, VinoSpec};
use crate::config::Config;
use crate::ipam::{self, HostClaims};
use crate::render::network_data::{self, NicData};
use crate::render::objects::{Credentials, VmObjects};
use crate::state::Owner;

#[allow(clippy::too_many_arguments)]
pub(super) fn vm_objects(
    vm: &Vm,
    spec: &VinoSpec,
    checked: &Checked,
    claims: &BTreeMap<String, HostClaims>,
    input: PlanInput<'_>,
    owner: &Owner,
    bmc_ip: IpAddr,
    nics: &[NicPlan],
    credentials: &Credentials,
    owner_ref: Option<OwnerReference>,
) -> VmObjects {
    let rf = &input.config.redfish;
    let scheme = format!(
        "{}+{}",
        spec.bmc_driver.unwrap_or_default().scheme(),
        if rf.tls { "https" } else { "http" }
    );
    let host = match bmc_ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    };
    let boot_mac = match &vm.set.boot_interface_name {
        Some(name) => nics.iter().find(|n| &n.name == name),
        None => nics.first(),
    }
    .map(|n| n.mac.clone())
    .unwrap_or_default();
    let nic_data: Vec<NicData> = vm
        .set
        .network_interfaces
        .iter()
        .zip(nics)
        .map(|(spec_nic, nic)| {
            let net = spec.networks.iter().find(|n| n.name == nic.network);
            let bridge_ip = claims[&nic.network].addresses[&ipam::bridge_key()];
            NicData {
                name: nic.name.clone(),
                network: nic.network.clone(),
                mac: nic.mac.clone(),
                ip: nic.ip,
                netmask: checked.pools[&nic.network].netmask(),
                mtu: spec_nic.mtu,
                options: spec_nic.options.clone(),
                routes: net
                    .map(|n| {
                        n.routes
                            .iter()
                            .map(|r| {
                                (
                                    r.network.clone(),
                                    r.netmask.clone(),
                                    if r.gateway == "$vinobridge" {
                                        bridge_ip.to_string()
                                    } else {
                                        r.gateway.clone()
                                    },
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                dns: net
                    .map(|n| {
                        n.dns_servers
                            .iter()
                            .filter_map(|d| d.parse().ok())
                            .collect()
                    })
                    .unwrap_or_default(),
            }
        })
        .collect();
    let metal3 = spec.metal3.clone().unwrap_or_default();
    VmObjects {
        boot_mode: spec.boot_mode.unwrap_or_default().as_str(),
        inspection_disabled: metal3.inspection.unwrap_or_default() == Inspection::Disabled,
        automated_cleaning_mode: metal3.automated_cleaning_mode.unwrap_or_default().as_str(),
        bmh: vm.names.bmh.clone(),
        credentials_secret: names::shared_credentials_secret(&owner.name, &input.node.name)
            .unwrap_or_else(|| names::credentials_secret(&vm.names.bmh)),
        network_data_secret: names::network_data_secret(&vm.names.bmh),
        namespace: owner.namespace.clone(),
        labels: bmh_labels(
            owner,
            spec,
            input.node,
            &input.config.labels.rack_label,
            vm.set,
            &vm.flavor,
        ),
        secret_labels: ownership(owner, &input.node.name),
        bmc_address: format!(
            "{scheme}://{host}:{}/redfish/v1/Systems/{}",
            rf.port, vm.names.domain
        ),
        // Without a configured certificate the BMC's is self-signed.
        disable_certificate_verification: !rf.tls || rf.tls_cert.as_os_str().is_empty(),
        boot_mac,
        root_device: vm
            .set
            .root_device_name
            .clone()
            .unwrap_or_else(|| "/dev/vda".into()),
        credentials: credentials.clone(),
        network_data: network_data::render(&nic_data),
        owner: owner_ref,
    }
}

pub(super) fn bmc_address(config: &Config, node: &super::NodeFacts) -> Result<IpAddr, PlanError> {
    if let Some(ip) = config.redfish.advertise_address {
        return Ok(ip);
    }
    node.addresses
        .first()
        .copied()
        .ok_or_else(|| PlanError::NoAddress {
            node: node.name.clone(),
        })
}

pub(super) fn owner_reference(vino: &crate::api::Vino) -> Option<OwnerReference> {
    let uid = vino.metadata.uid.clone()?;
    Some(OwnerReference {
        api_version: "airship.airshipit.org/v1".into(),
        kind: "Vino".into(),
        name: vino.metadata.name.clone().unwrap_or_default(),
        uid,
        controller: Some(false),
        block_owner_deletion: Some(false),
    })
}

/// The HardwareData of one VM (named and labelled like its BareMetalHost's Secrets): what BMO
/// puts into the host's `status.hardware` while inspection is disabled. `disks` are each
/// volume's guest device and size; the boot NIC is the one with MAC `boot_mac`.
pub(super) fn hardware_data(
    objects: &VmObjects,
    vm: &Vm,
    vcpus: u32,
    memory_mib: u64,
    nics: &[NicPlan],
    disks: &[(String, u64)],
) -> HardwareData {
    let details = HardwareDetails {
        system_vendor: SystemVendor {
            manufacturer: "vinod".into(),
            product_name: "libvirt domain".into(),
        },
        ram_mebibytes: memory_mib,
        nics: nics
            .iter()
            .map(|n| Nic {
                name: n.name.clone(),
                model: "virtio".into(),
                mac: n.mac.clone(),
                ip: n.ip.to_string(),
                pxe: n.mac == objects.boot_mac,
            })
            .collect(),
        storage: disks
            .iter()
            .map(|(device, size)| Storage {
                name: format!("/dev/{device}"),
                size_bytes: *size,
                model: "virtio disk".into(),
            })
            .collect(),
        cpu: Cpu {
            arch: "x86_64".into(),
            count: vcpus,
        },
        hostname: vm.names.hostname.clone(),
    };
    let mut hd = HardwareData::new(
        &objects.bmh,
        HardwareDataSpec {
            hardware: Some(details),
        },
    );
    hd.metadata.namespace = Some(objects.namespace.clone());
    hd.metadata.labels = Some(objects.secret_labels.clone());
    hd
}
