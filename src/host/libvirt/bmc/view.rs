//! Reading the BMC's view of a domain definition.

use std::collections::BTreeMap;

use quick_xml::Reader;
use quick_xml::events::Event;

use super::{CD_ALIAS, XmlError, attrs, is_bmc_element, local};
use crate::render::domain::METADATA_NS;
use crate::value::cpuset::CpuSet;

fn without_xmlns(a: BTreeMap<String, String>) -> BTreeMap<String, String> {
    a.into_iter()
        .filter(|(k, _)| !k.starts_with("xmlns"))
        .collect()
}

/// What the BMC reads from a definition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DomainView {
    /// `<vcpu>`.
    pub vcpus: u32,
    /// `<memory>` in KiB.
    pub memory_kib: u64,
    /// MACs of the interfaces, in order.
    pub macs: Vec<String>,
    /// `<os><boot dev=…>` in order.
    pub boot_devs: Vec<String>,
    /// UEFI firmware (`<os firmware='efi'>` or a pflash loader).
    pub efi: bool,
    /// Secure boot asked for (`<os><firmware><feature name='secure-boot' enabled='yes'>`) or
    /// in force (`<loader secure='yes'>`, in a running domain's definition).
    pub secure_boot: bool,
    /// `<os><type machine=…>`.
    pub machine: String,
    /// Source file of the virtual CD drive, if the drive is there.
    pub cd_source: Option<String>,
    /// Attributes of the `<bmc:bmc>` element, if there is one.
    pub bmc: Option<BTreeMap<String, String>>,
    /// `<uuid>`.
    pub uuid: String,
    /// Attributes of vinod's own `<vinod:vm>` ownership element, if there is one.
    pub vinod: Option<BTreeMap<String, String>>,
    /// Host CPUs the vCPUs are pinned to: every `<cputune><vcpupin cpuset=…>`, or else the
    /// `<vcpu cpuset=…>` mask; empty when the domain floats.
    pub pinned_cpus: CpuSet,
    /// `<domain type=…>` (`kvm`, `qemu`, …).
    pub domain_type: String,
    /// `<os><type arch=…>`.
    pub arch: String,
    /// `<cpu mode=…>`, if there is a `<cpu>` element.
    pub cpu_mode: Option<String>,
    /// `<cpu><model>`, if named.
    pub cpu_model: Option<String>,
    /// `<cpu><topology>` as (sockets × dies, cores, threads), if given.
    pub topology: Option<(u32, u32, u32)>,
    /// The disks (`device='disk'`), in order.
    pub disks: Vec<DiskRef>,
}

/// A disk of a definition and where its contents live.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DiskRef {
    /// `<target dev=…>`.
    pub target: String,
    /// `<target bus=…>`.
    pub bus: String,
    /// `<source pool=… volume=…>`, for a volume disk.
    pub volume: Option<(String, String)>,
    /// `<source file=…>` (or `dev=…`), for a file or block disk.
    pub path: Option<String>,
}

/// A `<disk>` being read: its device kind, alias and source.
#[derive(Default)]
struct OpenDisk {
    device: String,
    alias: Option<String>,
    disk: DiskRef,
}

/// Reads the BMC's view of a definition.
pub fn view(xml: &str) -> Result<DomainView, XmlError> {
    let mut reader = Reader::from_str(xml);
    let mut v = DomainView::default();
    let mut path: Vec<Vec<u8>> = Vec::new();
    let mut disk: Option<OpenDisk> = None;
    let mut memory_unit = String::from("KiB");
    let mut vcpu_mask = CpuSet::default();
    let cpus = |a: &BTreeMap<String, String>| -> CpuSet {
        // libvirt writes well-formed cpulists; an unreadable one counts as floating.
        a.get("cpuset")
            .and_then(|c| c.parse().ok())
            .unwrap_or_default()
    };
    loop {
        let event = reader.read_event()?;
        let (e, empty) = match &event {
            Event::Start(e) => (Some(e), false),
            Event::Empty(e) => (Some(e), true),
            _ => (None, false),
        };
        if let Some(e) = e {
            let name = local(e.name().as_ref()).to_vec();
            let parent = path.last().map(Vec::as_slice);
            let a = attrs(e)?;
            match (parent, name.as_slice()) {
                (Some(b"os"), b"boot") => v.boot_devs.extend(a.get("dev").cloned()),
                (Some(b"os"), b"type") => {
                    v.machine = a.get("machine").cloned().unwrap_or_default();
                    v.arch = a.get("arch").cloned().unwrap_or_default();
                }
                (None, b"domain") => v.domain_type = a.get("type").cloned().unwrap_or_default(),
                (Some(b"domain"), b"cpu") => v.cpu_mode = a.get("mode").cloned(),
                (Some(b"cpu"), b"topology") => v.topology = Some(topology(&a)),
                (Some(b"os"), b"loader") => {
                    v.efi |= a.get("type").is_some_and(|t| t == "pflash");
                    v.secure_boot |= a.get("secure").is_some_and(|s| s == "yes");
                }
                (Some(b"firmware"), b"feature")
                    if path.len() == 3 && a.get("name").is_some_and(|n| n == "secure-boot") =>
                {
                    v.secure_boot |= a.get("enabled").is_some_and(|e| e == "yes");
                }
                (Some(b"domain"), b"os") => v.efi |= a.get("firmware").is_some_and(|f| f == "efi"),
                (Some(b"domain"), b"vcpu") => vcpu_mask = cpus(&a),
                (Some(b"cputune"), b"vcpupin") => v.pinned_cpus = v.pinned_cpus.union(&cpus(&a)),
                (Some(b"domain"), b"memory") => {
                    memory_unit = a.get("unit").cloned().unwrap_or_else(|| "KiB".into())
                }
                (Some(b"interface"), b"mac") => v.macs.extend(a.get("address").cloned()),
                (Some(b"devices"), b"disk") => {
                    disk = Some(OpenDisk {
                        device: a.get("device").cloned().unwrap_or_default(),
                        ..OpenDisk::default()
                    })
                }
                (Some(b"disk"), b"source") => {
                    if let Some(d) = disk.as_mut() {
                        d.disk.path = a.get("file").or_else(|| a.get("dev")).cloned();
                        d.disk.volume = a.get("pool").cloned().zip(a.get("volume").cloned());
                    }
                }
                (Some(b"disk"), b"target") => {
                    if let Some(d) = disk.as_mut() {
                        d.disk.target = a.get("dev").cloned().unwrap_or_default();
                        d.disk.bus = a.get("bus").cloned().unwrap_or_default();
                    }
                }
                (Some(b"disk"), b"alias") => {
                    if let Some(d) = disk.as_mut() {
                        d.alias = a.get("name").cloned();
                    }
                }
                (Some(b"metadata"), _) if is_bmc_element(e)? => v.bmc = Some(without_xmlns(a)),
                (Some(b"metadata"), _)
                    if a.iter()
                        .any(|(k, ns)| k.starts_with("xmlns") && ns == METADATA_NS) =>
                {
                    v.vinod = Some(without_xmlns(a))
                }
                _ => {}
            }
            if !empty {
                path.push(name);
            } else if name == b"disk" {
                finish_disk(&mut v, disk.take());
            }
            continue;
        }
        match event {
            Event::End(e) => {
                if local(e.name().as_ref()) == b"disk" {
                    finish_disk(&mut v, disk.take());
                }
                path.pop();
            }
            Event::Text(t) => {
                let text = t.decode().map_err(quick_xml::Error::from)?;
                let text = text.trim();
                match path.as_slice() {
                    [d, x] if d == b"domain" && x == b"vcpu" => v.vcpus = text.parse().unwrap_or(0),
                    [d, x] if d == b"domain" && x == b"uuid" => v.uuid = text.to_string(),
                    [d, c, m] if d == b"domain" && c == b"cpu" && m == b"model" => {
                        v.cpu_model = Some(text.to_string())
                    }
                    [d, x] if d == b"domain" && x == b"memory" => {
                        v.memory_kib = to_kib(text.parse().unwrap_or(0), &memory_unit)
                    }
                    _ => {}
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if v.pinned_cpus.is_empty() {
        v.pinned_cpus = vcpu_mask;
    }
    Ok(v)
}

fn finish_disk(v: &mut DomainView, disk: Option<OpenDisk>) {
    let Some(d) = disk else { return };
    match d.device.as_str() {
        "cdrom" if d.alias.as_deref() == Some(CD_ALIAS) => {
            v.cd_source = Some(d.disk.path.unwrap_or_default())
        }
        // libvirt's default device is a disk.
        "disk" | "" => v.disks.push(d.disk),
        _ => {}
    }
}

/// (sockets × dies, cores, threads) of a `<topology>`; a missing count is 1.
fn topology(a: &BTreeMap<String, String>) -> (u32, u32, u32) {
    let n = |k: &str| {
        a.get(k)
            .and_then(|v| v.parse::<u32>().ok())
            .filter(|n| *n > 0)
            .unwrap_or(1)
    };
    (n("sockets") * n("dies"), n("cores"), n("threads"))
}

fn to_kib(n: u64, unit: &str) -> u64 {
    match unit {
        "b" | "bytes" => n / 1024,
        "KB" => n * 1000 / 1024,
        "MB" => n * 1_000_000 / 1024,
        "M" | "MiB" => n * 1024,
        "GB" => n * 1_000_000_000 / 1024,
        "G" | "GiB" => n * 1024 * 1024,
        _ => n,
    }
}
