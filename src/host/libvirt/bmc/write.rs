//! Writing the BMC's elements into a definition: firmware features, SMM, boot order, the
//! virtual CD drive and the `<bmc:bmc>` metadata element.

use quick_xml::Writer;
use quick_xml::events::{BytesEnd, BytesStart, Event};

use super::{BMC_NS, BmcState, CD_ALIAS, NVRAM_RESET, XmlError, settings_text};
use crate::host::machine::BootMode;

/// The firmware features libvirt selects UEFI firmware by: secure boot with enrolled keys, or
/// explicitly none (otherwise libvirt may pick a secure-boot build on q35).
pub(super) fn write_firmware(w: &mut Writer<Vec<u8>>, state: &BmcState) -> Result<(), XmlError> {
    if state.boot.mode != BootMode::Uefi {
        return Ok(());
    }
    w.write_event(Event::Start(BytesStart::new("firmware")))?;
    let features: &[(&str, &str)] = if state.secure() {
        &[("enrolled-keys", "yes"), ("secure-boot", "yes")]
    } else {
        &[("secure-boot", "no")]
    };
    for (name, enabled) in features {
        w.write_event(Event::Empty(
            BytesStart::new("feature").with_attributes([("enabled", *enabled), ("name", *name)]),
        ))?;
    }
    w.write_event(Event::End(BytesEnd::new("firmware")))?;
    Ok(())
}

/// Secure-boot builds of OVMF need System Management Mode.
pub(super) fn write_smm(w: &mut Writer<Vec<u8>>, state: &BmcState) -> Result<(), XmlError> {
    if state.secure() {
        w.write_event(Event::Empty(
            BytesStart::new("smm").with_attributes([("state", "on")]),
        ))?;
    }
    Ok(())
}

pub(super) fn write_boot(w: &mut Writer<Vec<u8>>, state: &BmcState) -> Result<(), XmlError> {
    for dev in state.boot_order() {
        w.write_event(Event::Empty(
            BytesStart::new("boot").with_attributes([("dev", dev.as_str())]),
        ))?;
    }
    Ok(())
}

pub(super) fn write_cd(
    w: &mut Writer<Vec<u8>>,
    state: &BmcState,
    machine: &str,
) -> Result<(), XmlError> {
    let Some(media) = &state.media else {
        return Ok(());
    };
    // q35 has no IDE bus.
    let (dev, bus) = if machine.contains("q35") {
        ("sdc", "sata")
    } else {
        ("hdc", "ide")
    };
    let file = media.file.display().to_string();
    w.write_event(Event::Start(
        BytesStart::new("disk").with_attributes([("type", "file"), ("device", "cdrom")]),
    ))?;
    for e in [
        BytesStart::new("driver").with_attributes([("name", "qemu"), ("type", "raw")]),
        BytesStart::new("source").with_attributes([("file", file.as_str())]),
        BytesStart::new("target").with_attributes([("dev", dev), ("bus", bus)]),
        BytesStart::new("readonly"),
        BytesStart::new("alias").with_attributes([("name", CD_ALIAS)]),
    ] {
        w.write_event(Event::Empty(e))?;
    }
    w.write_event(Event::End(BytesEnd::new("disk")))?;
    Ok(())
}

pub(super) fn write_bmc_element(w: &mut Writer<Vec<u8>>, state: &BmcState) -> Result<(), XmlError> {
    if state.is_default() {
        return Ok(());
    }
    let mut e = BytesStart::new("bmc:bmc");
    e.push_attribute(("xmlns:bmc", BMC_NS));
    e.push_attribute(("boot-target", state.boot.target.as_str()));
    e.push_attribute(("boot-enabled", state.boot.enabled.as_str()));
    e.push_attribute(("default-boot", state.default_boot.join(",").as_str()));
    if let Some(m) = &state.media {
        e.push_attribute(("media-image", m.image.as_str()));
        e.push_attribute(("media-file", m.file.display().to_string().as_str()));
    }
    if state.nvram_reset {
        e.push_attribute((NVRAM_RESET, "yes"));
    }
    for (key, values) in [
        ("bios", &state.bios.current),
        ("bios-pending", &state.bios.pending),
    ] {
        if !values.is_empty() {
            e.push_attribute((key, settings_text(values).as_str()));
        }
    }
    w.write_event(Event::Empty(e))?;
    Ok(())
}
