//! The desired state of one Vino on one host.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;

use super::names;
use super::publish::{bmc_address, owner_reference, vm_objects};
use super::vm::Vm;
use super::{NicPlan, PlanError, PlanInput, VinoPlan, VmPlan, cpu};
use crate::api::flavor::flavor_name;
use crate::api::validate::{Checked, check, check_metadata};
use crate::api::vino::{BootMode, VinoSpec};
use crate::config::Config;
use crate::ipam::{self, HostClaims, Pool};
use crate::render::dnsmasq::{self, DnsmasqSpec, Reservation};
use crate::render::domain::{self, DomainSpec};
use crate::render::objects;
use crate::state::{Bridge, DhcpServer, Domain, HostState, Owner, Volume};
use crate::value::cpuset::CpuSet;

const GIB: u64 = 1 << 30;

/// Computes what `input.vino` wants on `input.node`.
pub fn plan(input: PlanInput<'_>) -> Result<VinoPlan, PlanError> {
    let spec = &input.vino.spec;
    check_metadata(&input.vino.metadata)?;
    let checked = check(spec)?;
    super::host_network::check(spec, &checked, input.host_network, &input.config.network)?;
    let owner = Owner::of(input.vino);
    let node = input.node;
    let credentials = super::credentials::resolve(input.vino, input.credentials)?;
    let bmc_ip = bmc_address(input.config, node)?;

    let vms: Vec<Vm> = spec
        .nodes
        .iter()
        .flat_map(|set| {
            let kept = input
                .retained
                .iter()
                .filter(move |(name, index)| *name == set.name && *index >= set.count);
            (0..set.count)
                .chain(kept.map(|(_, index)| *index))
                .map(move |index| (set, index))
        })
        .map(|(set, index)| Vm {
            set,
            index,
            names: names::vm_names(&owner.namespace, &owner.name, &node.name, &set.name, index),
            flavor: flavor_name(set).to_string(),
        })
        .collect();

    let claims = allocate(&checked, spec, &vms, input)?;
    let pins = match &checked.cpu_exclude {
        None => vec![None; vms.len()],
        Some(exclude) => {
            let none = CpuSet::default();
            let wants: Vec<cpu::PinRequest<'_>> = vms
                .iter()
                .map(|v| cpu::PinRequest {
                    vm: &v.names.domain,
                    vcpus: checked.flavors[&v.flavor].vcpus,
                    current: input.current_pins.get(&v.names.domain).unwrap_or(&none),
                })
                .collect();
            cpu::pin(&node.numa, exclude, input.taken_cpus, &wants)
                .map_err(PlanError::Pinning)?
                .into_iter()
                .map(Some)
                .collect()
        }
    };

    let mut host = HostState::default();
    for net in &spec.networks {
        let pool = &checked.pools[&net.name];
        let bridge = &checked.bridges[&net.name];
        let bridge_ip = claims[&net.name].addresses[&ipam::bridge_key()];
        host.bridges.insert(
            bridge.clone(),
            Bridge {
                name: bridge.clone(),
                address: Ipv4Net::new(bridge_ip, pool.subnet.prefix_len()).unwrap_or(pool.subnet),
                mtu: net.mtu,
                uplink: net.physical_interface.clone(),
                owner: owner.clone(),
            },
        );
        let dns: Vec<IpAddr> = net
            .dns_servers
            .iter()
            .filter_map(|d| d.parse().ok())
            .collect();
        let dspec = DnsmasqSpec {
            owner: owner.clone(),
            network: net.name.clone(),
            bridge: bridge.clone(),
            bridge_ip,
            netmask: pool.netmask(),
            subnet_address: pool.subnet.network(),
            block: pool
                .dhcp
                .zip(claims[&net.name].block)
                .map(|(span, b)| span.block(b)),
            lease_time: input.config.dhcp.lease_time.clone(),
            dns_servers: dns,
            ipxe_url: boot_url(input.config, spec, bmc_ip, bridge_ip),
            tftp: tftp(input.config),
            hostsdir: input
                .config
                .run_dir
                .join("dnsmasq")
                .join(bridge)
                .join("hosts"),
            leasefile: input
                .config
                .state_dir
                .join("dnsmasq")
                .join(format!("{bridge}.leases")),
        };
        let hosts = vms
            .iter()
            .flat_map(|vm| {
                vm.set
                    .network_interfaces
                    .iter()
                    .filter(|n| n.network == net.name)
                    .map(move |nic| (vm, nic))
            })
            .map(|(vm, nic)| {
                let key = ipam::nic_key(&vm.names.domain, &nic.name);
                let ip = claims[&net.name].addresses[&key];
                let r = Reservation {
                    file: format!("{}-{}", vm.names.domain, nic.name),
                    mac: mac(pool, &claims[&net.name], &key),
                    ip,
                    hostname: vm.names.hostname.clone(),
                };
                (r.file.clone(), dnsmasq::render_host(&r))
            })
            .collect();
        host.dhcp.insert(
            bridge.clone(),
            DhcpServer {
                bridge: bridge.clone(),
                network: net.name.clone(),
                owner: owner.clone(),
                config: dnsmasq::render_config(&dspec),
                hostsdir: dspec.hostsdir.clone(),
                leasefile: dspec.leasefile.clone(),
                hosts,
            },
        );
    }

    let mut out = VinoPlan {
        owner: owner.clone(),
        node: node.name.clone(),
        vms: Vec::new(),
        host,
        bare_metal_hosts: Vec::new(),
        secrets: Vec::new(),
        claims: claims.clone(),
        pinned_cpus: pins.iter().flatten().flatten().copied().collect(),
        warnings: checked.warnings.iter().map(ToString::to_string).collect(),
        departing: Vec::new(),
        hardware: Vec::new(),
    };
    let owner_ref = owner_reference(input.vino);
    for (vm, pinned) in vms.iter().zip(pins) {
        let flavor = &checked.flavors[&vm.flavor];
        let nics: Vec<NicPlan> = vm
            .set
            .network_interfaces
            .iter()
            .map(|nic| {
                let key = ipam::nic_key(&vm.names.domain, &nic.name);
                let ip = claims[&nic.network].addresses[&key];
                NicPlan {
                    name: nic.name.clone(),
                    network: nic.network.clone(),
                    bridge: checked.bridges[&nic.network].clone(),
                    mac: mac(&checked.pools[&nic.network], &claims[&nic.network], &key),
                    ip,
                }
            })
            .collect();

        let mut disks = vec![(
            input.config.libvirt.pool_name.clone(),
            names::volume(&vm.names.domain, "root"),
            "vda".to_string(),
        )];
        out.host.volumes.insert(
            disks[0].1.clone(),
            Volume {
                name: disks[0].1.clone(),
                capacity_bytes: flavor.root_disk_gib * GIB,
                sparse: true,
                owner: owner.clone(),
            },
        );
        let mut next_dev = b'b';
        for d in &vm.set.disk_drives {
            let target =
                match &d.path {
                    Some(p) => p.trim_start_matches("/dev/").to_string(),
                    None => {
                        while vm.set.disk_drives.iter().any(|o| {
                            o.path.as_deref() == Some(&format!("/dev/vd{}", next_dev as char))
                        }) {
                            next_dev += 1;
                        }
                        let t = format!("vd{}", next_dev as char);
                        next_dev += 1;
                        t
                    }
                };
            let opts = d.options.clone().unwrap_or_default();
            let name = names::volume(&vm.names.domain, &d.name);
            out.host.volumes.insert(
                name.clone(),
                Volume {
                    name: name.clone(),
                    capacity_bytes: u64::from(opts.size_gb.unwrap_or(1)) * GIB,
                    sparse: opts.sparse.unwrap_or(true),
                    owner: owner.clone(),
                },
            );
            disks.push((input.config.libvirt.pool_name.clone(), name, target));
        }
        let sizes: Vec<(String, u64)> = disks
            .iter()
            .map(|(_, volume, device)| (device.clone(), out.host.volumes[volume].capacity_bytes))
            .collect();

        let dspec = DomainSpec {
            name: vm.names.domain.clone(),
            uuid: vm.names.uuid.clone(),
            owner: owner.clone(),
            node: node.name.clone(),
            domain_type: input.config.libvirt.domain_type.clone(),
            machine: input.config.libvirt.machine.clone(),
            uefi: spec.boot_mode.unwrap_or_default() == BootMode::Uefi,
            vcpus: flavor.vcpus,
            memory_mib: flavor.memory_mib,
            hugepages: flavor.hugepages,
            pinned_cpus: pinned.clone(),
            disks,
            nics: nics
                .iter()
                .map(|n| (n.bridge.clone(), n.mac.clone()))
                .collect(),
            console_log: input
                .config
                .libvirt
                .console_log_dir
                .join(format!("{}.log", vm.names.domain)),
            vnc_listen: vm
                .set
                .enable_vnc
                .then(|| input.config.vnc.listen.to_string()),
        };
        let (xml, spec_hash) = domain::render(&dspec);
        out.host.domains.insert(
            vm.names.domain.clone(),
            Domain {
                name: vm.names.domain.clone(),
                uuid: vm.names.uuid.clone(),
                owner: owner.clone(),
                spec_hash,
                xml,
                pinned_cpus: pinned.iter().flatten().copied().collect(),
                running: false,
            },
        );

        let objs = vm_objects(
            vm,
            spec,
            &checked,
            &claims,
            input,
            &owner,
            bmc_ip,
            &nics,
            &credentials,
            owner_ref.clone(),
        );
        if objs.inspection_disabled {
            out.hardware.push(super::publish::hardware_data(
                &objs,
                vm,
                flavor.vcpus,
                flavor.memory_mib,
                &nics,
                &sizes,
            ));
        }
        out.bare_metal_hosts.push(objects::bare_metal_host(&objs));
        if !out
            .secrets
            .iter()
            .any(|s| s.metadata.name.as_deref() == Some(objs.credentials_secret.as_str()))
        {
            out.secrets.push(objects::credentials_secret(&objs));
        }
        out.secrets.push(objects::network_data_secret(&objs));
        out.vms.push(VmPlan {
            name: vm.names.domain.clone(),
            bare_metal_host: vm.names.bmh.clone(),
            set: vm.set.name.clone(),
            index: vm.index,
            flavor: vm.flavor.clone(),
            vcpus: flavor.vcpus,
            memory_mib: flavor.memory_mib,
            nics,
            pinned_cpus: pinned,
        });
    }
    Ok(out)
}

/// Claims every network's bridge address and DHCP block and every NIC's address for this host.
fn allocate(
    checked: &Checked,
    spec: &VinoSpec,
    vms: &[Vm],
    input: PlanInput<'_>,
) -> Result<BTreeMap<String, HostClaims>, PlanError> {
    let empty = BTreeMap::new();
    let mut out = BTreeMap::new();
    for net in &spec.networks {
        let mut wanted = BTreeSet::from([ipam::bridge_key()]);
        for vm in vms {
            for nic in vm
                .set
                .network_interfaces
                .iter()
                .filter(|n| n.network == net.name)
            {
                wanted.insert(ipam::nic_key(&vm.names.domain, &nic.name));
            }
        }
        let all = input.claims.get(&net.name).unwrap_or(&empty);
        out.insert(
            net.name.clone(),
            ipam::allocate(&checked.pools[&net.name], all, &input.node.name, &wanted)?,
        );
    }
    Ok(out)
}

fn boot_url(config: &Config, spec: &VinoSpec, host_ip: IpAddr, bridge_ip: Ipv4Addr) -> String {
    if !config.dhcp.ipxe_boot_url.is_empty() {
        return config
            .dhcp
            .ipxe_boot_url
            .replace(crate::config::BRIDGE_IP, &bridge_ip.to_string());
    }
    // An IPv6 literal goes in brackets in a URL, or its colons read as a port.
    let host = match spec.pxe_boot_image_host.as_deref() {
        Some(name) => match name.parse::<IpAddr>() {
            Ok(ip) => url_host(ip),
            Err(_) => name.to_string(),
        },
        None => url_host(host_ip),
    };
    format!(
        "http://{host}:{}/{}",
        spec.pxe_boot_image_host_port.unwrap_or(80),
        spec.pxe_boot_image_path
            .as_deref()
            .unwrap_or("dualboot.ipxe")
    )
}

fn url_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    }
}

fn tftp(config: &Config) -> Option<dnsmasq::Tftp> {
    (!config.dhcp.tftp_root.as_os_str().is_empty()).then(|| dnsmasq::Tftp {
        root: config.dhcp.tftp_root.clone(),
        bios_file: config.dhcp.tftp_boot_file.clone(),
        efi_file: config.dhcp.tftp_efi_boot_file.clone(),
    })
}

/// The MAC of the address claimed under `key`: the one its claim fixed, else the pool's.
fn mac(pool: &Pool, claims: &HostClaims, key: &str) -> String {
    let fixed = claims.macs.get(key).copied();
    // Validation guarantees the whole static range has MACs; claims are inside it.
    let derived = || pool.mac_for(claims.addresses[key]);
    fixed
        .or_else(derived)
        .map(|m| m.to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;
