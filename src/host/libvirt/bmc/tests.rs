use super::*;
use crate::render::domain::{DomainSpec, render};
use crate::state::Owner;

fn rendered() -> (String, String) {
    rendered_pinned(None)
}

fn rendered_pinned(pinned_cpus: Option<Vec<u32>>) -> (String, String) {
    render(&DomainSpec {
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
        pinned_cpus,
        disks: vec![("vinod".into(), "root.qcow2".into(), "vda".into())],
        nics: vec![
            ("br0".into(), "52:54:00:00:00:01".into()),
            ("br1".into(), "52:54:00:00:00:02".into()),
        ],
        console_log: "/var/log/vinod/console/x.log".into(),
        vnc_listen: None,
        uefi: false,
    })
}

fn state(target: BootTarget, enabled: BootEnabled) -> BmcState {
    BmcState {
        boot: BootOverride {
            target,
            enabled,
            mode: BootMode::Legacy,
        },
        default_boot: vec!["hd".into(), "network".into()],
        media: None,
        bios: Default::default(),
        secure_boot: false,
        nvram_reset: false,
    }
}

#[test]
fn reads_what_the_bmc_reports() {
    let (xml, _) = rendered();
    let v = view(&xml).unwrap();
    assert_eq!(v.vcpus, 2);
    assert_eq!(v.memory_kib, 2048 * 1024);
    assert_eq!(v.macs, ["52:54:00:00:00:01", "52:54:00:00:00:02"]);
    assert_eq!(v.boot_devs, ["hd", "network"]);
    assert_eq!(v.machine, "pc");
    assert!(!v.efi);
    assert_eq!(v.cd_source, None);
    assert_eq!(v.bmc, None);
    assert_eq!(v.uuid, "00000000-0000-8000-8000-000000000000");
    let vinod = v.vinod.as_ref().unwrap();
    assert_eq!(vinod["vino-name"], "v");
    assert!(!vinod.contains_key("xmlns:vinod"));
    let s = BmcState::of(&v);
    assert!(s.is_default());
    assert_eq!(s.default_boot, ["hd", "network"]);
    assert!(v.pinned_cpus.is_empty());
}

#[test]
fn reads_pinned_cpus_from_vcpupin_or_the_vcpu_mask() {
    let (xml, _) = rendered_pinned(Some(vec![5, 3]));
    assert_eq!(view(&xml).unwrap().pinned_cpus.to_string(), "3,5");
    let masked = "<domain><vcpu placement=\"static\" cpuset=\"8-9\">2</vcpu></domain>";
    assert_eq!(view(masked).unwrap().pinned_cpus.to_string(), "8-9");
}

#[test]
fn override_round_trips_and_keeps_vinods_metadata() {
    let (xml, hash) = rendered();
    let want = state(BootTarget::Pxe, BootEnabled::Once);
    let out = apply(&xml, &want, "pc").unwrap();
    let v = view(&out).unwrap();
    assert_eq!(v.boot_devs, ["network", "hd"]);
    assert_eq!(BmcState::of(&v), want);
    assert!(out.contains(&format!("spec-hash='{hash}'")), "{out}");
    assert_eq!(v.macs.len(), 2);
    // Clearing it restores the default order and drops the element.
    let back = apply(&out, &state(BootTarget::None, BootEnabled::Disabled), "pc").unwrap();
    let v = view(&back).unwrap();
    assert_eq!(v.boot_devs, ["hd", "network"]);
    assert_eq!(v.bmc, None);
    assert!(!back.contains(BMC_NS));
}

#[test]
fn cd_target_goes_first_and_disk_is_kept() {
    let (xml, _) = rendered();
    let out = apply(&xml, &state(BootTarget::Cd, BootEnabled::Continuous), "pc").unwrap();
    assert_eq!(view(&out).unwrap().boot_devs, ["cdrom", "hd", "network"]);
    assert!(out.contains("root.qcow2"));
}

#[test]
fn media_adds_and_removes_the_cd_drive() {
    let (xml, _) = rendered();
    let mut s = state(BootTarget::None, BootEnabled::Disabled);
    s.media = Some(Media {
        image: "http://127.0.0.1:8080/a.iso?x=1&y=\"2\"".into(),
        file: "/var/lib/vinod/redfish/media/x.iso".into(),
    });
    let out = apply(&xml, &s, "pc").unwrap();
    let v = view(&out).unwrap();
    assert_eq!(
        v.cd_source.as_deref(),
        Some("/var/lib/vinod/redfish/media/x.iso")
    );
    assert_eq!(BmcState::of(&v), s);
    assert!(out.contains("bus=\"ide\""), "{out}");
    // Applying twice does not duplicate the drive.
    let again = apply(&out, &s, "pc-q35-8.0").unwrap();
    assert_eq!(again.matches("ua-vinod-cd").count(), 1, "{again}");
    assert!(again.contains("bus=\"sata\""));
    assert!(again.contains("root.qcow2"), "other disks stay");
    s.media = None;
    let ejected = apply(&again, &s, "pc").unwrap();
    assert_eq!(view(&ejected).unwrap().cd_source, None);
    assert!(!ejected.contains("cdrom"));
    assert!(ejected.contains("root.qcow2"));
}

#[test]
fn uefi_sets_firmware_and_legacy_drops_loader() {
    let (xml, _) = rendered();
    let mut s = state(BootTarget::None, BootEnabled::Disabled);
    s.boot.mode = BootMode::Uefi;
    let out = apply(&xml, &s, "pc").unwrap();
    let v = view(&out).unwrap();
    assert!(v.efi);
    assert_eq!(BmcState::of(&v).boot.mode, BootMode::Uefi);
    // As libvirt expands it after firmware selection.
    let expanded = out.replace(
        "<boot dev=\"hd\"/>",
        "<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE.fd</loader><nvram>/var/lib/x_VARS.fd</nvram><boot dev=\"hd\"/>",
    );
    assert!(view(&expanded).unwrap().efi);
    s.boot.mode = BootMode::Legacy;
    let legacy = apply(&expanded, &s, "pc").unwrap();
    let v = view(&legacy).unwrap();
    assert!(!v.efi, "{legacy}");
    assert!(!legacy.contains("OVMF") && !legacy.contains("nvram"));
    assert_eq!(v.boot_devs, ["hd", "network"]);
}

#[test]
fn secure_boot_selects_the_enrolled_keys_firmware_with_smm() {
    let (xml, _) = rendered();
    let mut s = state(BootTarget::None, BootEnabled::Disabled);
    s.boot.mode = BootMode::Uefi;
    let plain = apply(&xml, &s, "q35").unwrap();
    assert!(
        plain.contains("<feature enabled=\"no\" name=\"secure-boot\"/>"),
        "{plain}"
    );
    assert!(!plain.contains("smm"));
    assert!(!view(&plain).unwrap().secure_boot);
    s.secure_boot = true;
    s.nvram_reset = true;
    // As libvirt expands a running domain's firmware: it must be selected anew.
    let expanded = plain.replace(
        "<boot dev=\"hd\"/>",
        "<loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader><nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>/var/lib/x_VARS.fd</nvram><boot dev=\"hd\"/>",
    );
    let secure = apply(&expanded, &s, "q35").unwrap();
    for want in [
        "<feature enabled=\"yes\" name=\"enrolled-keys\"/>",
        "<feature enabled=\"yes\" name=\"secure-boot\"/>",
        "<smm state=\"on\"/></features>",
        "nvram-reset=\"yes\"",
    ] {
        assert!(secure.contains(want), "{want} not in {secure}");
    }
    assert!(!secure.contains("OVMF_CODE_4M.fd") && !secure.contains("<nvram"));
    assert_eq!(secure.matches("<firmware>").count(), 1);
    let v = view(&secure).unwrap();
    assert!(v.secure_boot && v.efi);
    let back = BmcState::of(&v);
    assert!(back.secure_boot && back.nvram_reset);
    // Applying the same state again changes nothing.
    assert_eq!(apply(&secure, &back, "q35").unwrap(), secure);
    // Legacy firmware has no secure boot: features and SMM go.
    s.boot.mode = BootMode::Legacy;
    let legacy = apply(&secure, &s, "q35").unwrap();
    assert!(
        !legacy.contains("<firmware>") && !legacy.contains("smm"),
        "{legacy}"
    );
    assert!(!BmcState::of(&view(&legacy).unwrap()).secure_boot);
}

#[test]
fn a_running_secure_boot_loader_counts() {
    let live = "<domain><os><type machine='pc-q35-7.2'>hvm</type><loader readonly='yes' secure='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.ms.fd</loader></os><cpu><feature name='secure-boot' policy='require'/></cpu></domain>";
    let v = view(live).unwrap();
    assert!(v.efi && v.secure_boot);
    let cpu_only = "<domain><os firmware='efi'/><cpu><feature name='secure-boot' enabled='yes'/></cpu></domain>";
    assert!(!view(cpu_only).unwrap().secure_boot);
}

#[test]
fn metadata_element_is_created_when_missing() {
    let xml = "<domain type='test'><name>a</name><os><type>hvm</type><boot dev='hd'/></os><devices/></domain>";
    let out = apply(xml, &state(BootTarget::Pxe, BootEnabled::Continuous), "pc").unwrap();
    let v = view(&out).unwrap();
    assert_eq!(v.boot_devs, ["network", "hd"]);
    assert!(v.bmc.is_some(), "{out}");
}

#[test]
fn malformed_xml_is_an_error() {
    assert!(view("<domain><os></domain>").is_err());
    assert!(
        apply(
            "<domain><os></domain>",
            &state(BootTarget::Pxe, BootEnabled::Once),
            "pc"
        )
        .is_err()
    );
}

#[test]
fn reads_the_inventory_of_a_definition() {
    let (xml, _) = rendered();
    let v = view(&xml).unwrap();
    assert_eq!(
        (v.domain_type.as_str(), v.arch.as_str()),
        ("qemu", "x86_64")
    );
    assert_eq!(
        (v.cpu_mode.as_deref(), v.cpu_model.as_deref()),
        (None, None)
    );
    assert_eq!(v.topology, None);
    assert_eq!(
        v.disks,
        [DiskRef {
            target: "vda".into(),
            bus: "virtio".into(),
            volume: Some(("vinod".into(), "root.qcow2".into())),
            path: None,
        }]
    );
    let xml = "<domain type='kvm'><cpu mode='custom'><model fallback='allow'>Skylake-Server</model>\
        <topology sockets='2' dies='1' cores='4' threads='2'/></cpu><devices>\
        <disk type='file' device='disk'><source file='/d/a.img'/><target dev='sda' bus='sata'/></disk>\
        <disk type='file' device='cdrom'><source file='/d/b.iso'/><target dev='hdc' bus='ide'/></disk>\
        </devices></domain>";
    let v = view(xml).unwrap();
    assert_eq!(v.cpu_mode.as_deref(), Some("custom"));
    assert_eq!(v.cpu_model.as_deref(), Some("Skylake-Server"));
    assert_eq!(v.topology, Some((2, 4, 2)));
    assert_eq!(v.disks.len(), 1, "a CD drive is not a disk");
    assert_eq!(v.disks[0].path.as_deref(), Some("/d/a.img"));
    assert_eq!(v.disks[0].bus, "sata");
}

#[test]
fn bios_settings_round_trip_through_the_metadata() {
    let (xml, hash) = rendered();
    let mut s = state(BootTarget::None, BootEnabled::Disabled);
    s.bios
        .current
        .insert("ProcTurboMode".into(), "Disabled".into());
    s.bios.pending.insert("QuietBoot".into(), "Enabled".into());
    s.bios
        .pending
        .insert("ProcTurboMode".into(), "Enabled".into());
    let out = apply(&xml, &s, "pc").unwrap();
    assert!(out.contains(&format!("spec-hash='{hash}'")));
    assert_eq!(BmcState::of(&view(&out).unwrap()), s);
    s.bios = s.bios.booted();
    let booted = apply(&out, &s, "pc").unwrap();
    let back = BmcState::of(&view(&booted).unwrap());
    assert_eq!(back.bios.current["ProcTurboMode"], "Enabled");
    assert_eq!(back.bios.current["QuietBoot"], "Enabled");
    assert!(back.bios.pending.is_empty(), "{booted}");
    assert!(!booted.contains("bios-pending"), "{booted}");
}
