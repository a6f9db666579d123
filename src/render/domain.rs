//! libvirt domain XML for a VM, with vinod's ownership metadata.

use std::fmt::Write;
use std::path::PathBuf;

use super::xml_escape as x;
use crate::hash::content_hash;
use crate::state::Owner;

/// XML namespace of vinod's domain metadata.
pub const METADATA_NS: &str = "https://airshipit.org/vinod/domain/1";

/// Everything that goes into a domain definition.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DomainSpec {
    /// Domain name.
    pub name: String,
    /// Domain UUID.
    pub uuid: String,
    /// Owning Vino.
    pub owner: Owner,
    /// Host node name (recorded in the metadata).
    pub node: String,
    /// `kvm` or `qemu`.
    pub domain_type: String,
    /// QEMU machine type.
    pub machine: String,
    /// vCPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Back memory with 1 GiB huge pages.
    pub hugepages: bool,
    /// Host CPUs the vCPUs are pinned to (one per vCPU), if pinned.
    pub pinned_cpus: Option<Vec<u32>>,
    /// Disks in guest order: (pool, volume, target device).
    pub disks: Vec<(String, String, String)>,
    /// NICs in guest order: (bridge, MAC).
    pub nics: Vec<(String, String)>,
    /// Serial console log file.
    pub console_log: PathBuf,
    /// VNC listen address, if the VM has a VNC console.
    pub vnc_listen: Option<String>,
    /// UEFI firmware (libvirt picks OVMF and keeps a per-VM NVRAM) instead of SeaBIOS.
    pub uefi: bool,
}

/// Renders the domain XML and returns it with its spec hash (also written into the metadata).
pub fn render(spec: &DomainSpec) -> (String, String) {
    let body = render_with_hash(spec, "");
    let hash = content_hash(&body);
    (render_with_hash(spec, &hash), hash)
}

fn render_with_hash(s: &DomainSpec, hash: &str) -> String {
    let mut o = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(o, "<domain type='{}'>", x(&s.domain_type));
    let _ = writeln!(o, "  <name>{}</name>", x(&s.name));
    let _ = writeln!(o, "  <uuid>{}</uuid>", x(&s.uuid));
    let _ = writeln!(o, "  <metadata>");
    let _ = writeln!(
        o,
        "    <vinod:vm xmlns:vinod='{METADATA_NS}' vino-namespace='{}' vino-name='{}' node='{}' spec-hash='{}'/>",
        x(&s.owner.namespace),
        x(&s.owner.name),
        x(&s.node),
        x(hash)
    );
    let _ = writeln!(o, "  </metadata>");
    let _ = writeln!(o, "  <memory unit='MiB'>{}</memory>", s.memory_mib);
    if s.hugepages {
        let _ = writeln!(
            o,
            "  <memoryBacking><hugepages><page size='1' unit='GiB'/></hugepages></memoryBacking>"
        );
    }
    let _ = writeln!(o, "  <vcpu placement='static'>{}</vcpu>", s.vcpus);
    if let Some(cpus) = &s.pinned_cpus {
        let _ = writeln!(o, "  <cputune>");
        let _ = writeln!(o, "    <shares>8192</shares>");
        for (i, c) in cpus.iter().enumerate() {
            let _ = writeln!(o, "    <vcpupin vcpu='{i}' cpuset='{c}'/>");
        }
        let all = cpus
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let _ = writeln!(o, "    <emulatorpin cpuset='{all}'/>");
        let _ = writeln!(o, "  </cputune>");
    }
    if s.uefi {
        let _ = writeln!(o, "  <os firmware='efi'>");
    } else {
        let _ = writeln!(o, "  <os>");
    }
    let _ = writeln!(
        o,
        "    <type arch='x86_64' machine='{}'>hvm</type>",
        x(&s.machine)
    );
    if s.uefi {
        // Without it libvirt picks the first matching firmware, which on q35 is OVMF with
        // secure boot on and Microsoft's keys enrolled; secure boot is the BMC's to turn on.
        let _ = writeln!(
            o,
            "    <firmware><feature enabled='no' name='secure-boot'/></firmware>"
        );
    }
    // Disk first, then the network: a fresh VM (empty disk) PXE-boots, a provisioned one
    // boots its disk; the Redfish BMC can override either way.
    let _ = writeln!(o, "    <boot dev='hd'/>");
    let _ = writeln!(o, "    <boot dev='network'/>");
    let _ = writeln!(o, "  </os>");
    let _ = writeln!(o, "  <features><acpi/><apic/></features>");
    if s.domain_type == "kvm" {
        let _ = writeln!(o, "  <cpu mode='host-passthrough'/>");
    }
    let _ = writeln!(
        o,
        "  <clock offset='utc'><timer name='pit' tickpolicy='delay'/><timer name='rtc' tickpolicy='catchup'/><timer name='hpet' present='no'/></clock>"
    );
    let _ = writeln!(o, "  <on_poweroff>destroy</on_poweroff>");
    let _ = writeln!(o, "  <on_reboot>restart</on_reboot>");
    let _ = writeln!(o, "  <on_crash>destroy</on_crash>");
    let _ = writeln!(o, "  <devices>");
    for (pool, volume, target) in &s.disks {
        let _ = writeln!(o, "    <disk type='volume' device='disk'>");
        let _ = writeln!(
            o,
            "      <driver name='qemu' type='qcow2' discard='unmap'/>"
        );
        let _ = writeln!(
            o,
            "      <source pool='{}' volume='{}'/>",
            x(pool),
            x(volume)
        );
        let _ = writeln!(o, "      <target dev='{}' bus='virtio'/>", x(target));
        let _ = writeln!(o, "    </disk>");
    }
    for (bridge, mac) in &s.nics {
        let _ = writeln!(o, "    <interface type='bridge'>");
        let _ = writeln!(o, "      <mac address='{}'/>", x(mac));
        let _ = writeln!(o, "      <source bridge='{}'/>", x(bridge));
        let _ = writeln!(o, "      <model type='virtio'/>");
        let _ = writeln!(o, "    </interface>");
    }
    let _ = writeln!(
        o,
        "    <serial type='file'><source path='{}'/><target port='0'/></serial>",
        x(&s.console_log.display().to_string())
    );
    let _ = writeln!(o, "    <serial type='pty'><target port='1'/></serial>");
    if let Some(listen) = &s.vnc_listen {
        let _ = writeln!(
            o,
            "    <graphics type='vnc' autoport='yes' listen='{}'/>",
            x(listen)
        );
        let _ = writeln!(o, "    <video><model type='vga'/></video>");
    }
    let _ = writeln!(
        o,
        "    <memballoon model='virtio'><stats period='10'/></memballoon>"
    );
    let _ = writeln!(o, "  </devices>");
    let _ = writeln!(o, "</domain>");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> DomainSpec {
        DomainSpec {
            name: "ns.v.worker-0".into(),
            uuid: "00000000-0000-8000-8000-000000000000".into(),
            owner: Owner {
                namespace: "ns".into(),
                name: "v".into(),
            },
            node: "n1".into(),
            domain_type: "qemu".into(),
            machine: "pc".into(),
            vcpus: 2,
            memory_mib: 2048,
            hugepages: false,
            pinned_cpus: Some(vec![2, 3]),
            disks: vec![(
                "vinod".into(),
                "ns.v.worker-0-root.qcow2".into(),
                "vda".into(),
            )],
            nics: vec![("br0".into(), "52:54:00:00:00:01".into())],
            console_log: "/var/log/vinod/console/ns.v.worker-0.log".into(),
            vnc_listen: None,
            uefi: false,
        }
    }

    #[test]
    fn hash_tracks_content_and_is_embedded() {
        let (xml, hash) = render(&spec());
        assert!(xml.contains(&format!("spec-hash='{hash}'")));
        assert!(xml.contains("<vcpupin vcpu='1' cpuset='3'/>"));
        assert!(
            !xml.contains("host-passthrough"),
            "TCG domains get no host CPU model"
        );
        let mut changed = spec();
        changed.memory_mib = 4096;
        assert_ne!(render(&changed).1, hash);
        assert_eq!(render(&spec()).1, hash);
    }

    #[test]
    fn uefi_asks_for_firmware_without_secure_boot() {
        let (legacy, _) = render(&spec());
        assert!(legacy.contains("  <os>\n") && !legacy.contains("<firmware>"));
        let mut s = spec();
        s.uefi = true;
        let (xml, _) = render(&s);
        assert!(xml.contains("<os firmware='efi'>"));
        assert!(xml.contains("<firmware><feature enabled='no' name='secure-boot'/></firmware>"));
    }

    #[test]
    fn escapes_values() {
        let mut s = spec();
        s.owner.name = "a'b<c".into();
        assert!(render(&s).0.contains("vino-name='a&apos;b&lt;c'"));
    }
}
