//! What the BMC sees of a vinod-owned domain: the [`Machine`] (ownership, power, boot
//! override, media, BIOS settings, processors, memory, NICs) read from its persistent
//! definition, and its disks with the capacity libvirt reports for their volumes or files.

use std::sync::OnceLock;

use virt::connect::Connect;
use virt::domain::{Domain as VirtDomain, DomainState};

use super::bmc::{self, BmcState, DiskRef, DomainView};
use super::error::VirtError;
use super::machines::INACTIVE_XML;
use super::marker::domain_error;
use crate::host::machine::{Disk, Machine, PowerState, Processors};
use crate::state::Owner;

/// The machine of a domain, if it is vinod's: persistent, with a well-formed `<vinod:vm>`
/// element in its persistent definition (the ownership rule of [`super::marker::marker`], read from the
/// definition fetched anyway, which saves libvirt calls on every BMC read).
pub(super) fn describe(dom: &VirtDomain, name: &str) -> Result<Option<Machine>, VirtError> {
    let err = |action| move |e| domain_error(name, action, e);
    if !dom.is_persistent().map_err(err("query"))? {
        return Ok(None);
    }
    let (_, view) = definition(dom, name)?;
    let Some(owner) = view.vinod.as_ref().and_then(owner_of) else {
        return Ok(None);
    };
    let power = match dom
        .state()
        .map_err(err("query"))?
        .0
        .unwrap_or(DomainState::NoState)
    {
        DomainState::Shutoff | DomainState::Crashed | DomainState::NoState => PowerState::Off,
        DomainState::Shutdown => PowerState::PoweringOff,
        _ => PowerState::On,
    };
    let state = BmcState::of(&view);
    let cpu = processors(&view);
    Ok(Some(Machine {
        name: name.to_string(),
        uuid: view.uuid,
        owner,
        power,
        vcpus: view.vcpus,
        cpu,
        memory_mib: view.memory_kib / 1024,
        macs: view.macs,
        boot: state.boot,
        media: state.media,
        bios: state.bios,
        machine_type: view.machine,
        secure_boot: state.secure_boot,
    }))
}

fn owner_of(attrs: &std::collections::BTreeMap<String, String>) -> Option<Owner> {
    let get = |k: &str| attrs.get(k).filter(|v| !v.is_empty()).cloned();
    attrs.get("spec-hash")?;
    Some(Owner {
        namespace: get("vino-namespace")?,
        name: get("vino-name")?,
    })
}

/// The persistent definition and the BMC's view of it.
pub(super) fn definition(dom: &VirtDomain, name: &str) -> Result<(String, DomainView), VirtError> {
    let xml = dom
        .xml_desc(INACTIVE_XML)
        .map_err(|e| domain_error(name, "read the definition of", e))?;
    let view = bmc::view(&xml).map_err(|source| VirtError::Xml {
        domain: name.to_string(),
        source,
    })?;
    Ok((xml, view))
}

/// The model id QEMU gives its default x86 CPU (`qemu64`), which a domain without a `<cpu>`
/// element gets.
const QEMU_DEFAULT_MODEL: &str = "QEMU Virtual CPU version 2.5+";

/// The processors of a definition. Without a `<topology>`, libvirt gives QEMU one socket per
/// vCPU with one core of one thread.
pub(super) fn processors(view: &DomainView) -> Processors {
    let (sockets, cores, threads) = view.topology.unwrap_or((view.vcpus.max(1), 1, 1));
    let model = match (&view.cpu_model, view.cpu_mode.as_deref()) {
        (Some(model), _) => model.clone(),
        (None, Some("host-passthrough" | "host-model" | "maximum")) => host_cpu_model(),
        _ => QEMU_DEFAULT_MODEL.to_string(),
    };
    Processors {
        sockets,
        cores,
        threads,
        arch: view.arch.clone(),
        model,
    }
}

/// The model name of this host's CPU (what a host-passthrough guest sees), read once.
fn host_cpu_model() -> String {
    static MODEL: OnceLock<String> = OnceLock::new();
    MODEL
        .get_or_init(|| {
            std::fs::read_to_string("/proc/cpuinfo")
                .ok()
                .and_then(|text| {
                    text.lines()
                        .filter_map(|l| l.split_once(':'))
                        .find(|(k, _)| k.trim() == "model name")
                        .map(|(_, v)| v.trim().to_string())
                })
                .unwrap_or_else(|| "host CPU".to_string())
        })
        .clone()
}

/// The disks of a definition with their capacities. A disk whose volume or file libvirt
/// does not know (deleted under it) is reported without a capacity.
pub(super) fn disks(conn: &Connect, view: &DomainView) -> Vec<Disk> {
    view.disks
        .iter()
        .map(|d| Disk {
            id: d.target.clone(),
            bus: d.bus.clone(),
            capacity_bytes: capacity(conn, d),
        })
        .collect()
}

fn capacity(conn: &Connect, disk: &DiskRef) -> Option<u64> {
    let vol = match (&disk.volume, &disk.path) {
        (Some((pool, volume)), _) => conn
            .lookup_storage_pool_by_name(pool)
            .and_then(|p| p.lookup_storage_vol_by_name(volume)),
        (None, Some(path)) => conn.lookup_storage_vol_by_path(path),
        (None, None) => return None,
    };
    match vol.and_then(|v| v.info()) {
        Ok(info) => Some(info.capacity),
        Err(e) => {
            tracing::debug!(disk = %disk.target, error = %e, "no capacity for disk");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topology_defaults_to_one_socket_per_vcpu() {
        let mut v = DomainView {
            vcpus: 4,
            arch: "x86_64".into(),
            ..DomainView::default()
        };
        let p = processors(&v);
        assert_eq!((p.sockets, p.cores, p.threads), (4, 1, 1));
        assert_eq!(p.model, QEMU_DEFAULT_MODEL);
        assert_eq!(p.arch, "x86_64");
        v.topology = Some((1, 2, 2));
        v.cpu_model = Some("Haswell".into());
        let p = processors(&v);
        assert_eq!((p.sockets, p.cores, p.threads), (1, 2, 2));
        assert_eq!(p.model, "Haswell");
        v.cpu_model = None;
        v.cpu_mode = Some("host-passthrough".into());
        assert_eq!(processors(&v).model, host_cpu_model());
        assert_ne!(host_cpu_model(), QEMU_DEFAULT_MODEL);
    }
}
