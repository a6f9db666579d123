//! The BMC's part of a domain definition: boot order, firmware (secure boot included), the
//! virtual CD drive and the `<bmc:bmc>` metadata element (namespace [`BMC_NS`]) that records
//! the override, the BIOS settings and a pending NVRAM reset.
//!
//! Pure functions over libvirt's XML. [`view`] reads what the BMC needs; [`apply`] rewrites a
//! definition so it carries a [`BmcState`], leaving everything else (and vinod's own
//! `<vinod:vm>` element, hence the spec hash) untouched.

use std::collections::BTreeMap;
use std::path::PathBuf;

use quick_xml::events::{BytesEnd, BytesStart, Event};
use quick_xml::{Reader, Writer};

use crate::host::machine::{BiosSettings, BootEnabled, BootMode, BootOverride, BootTarget, Media};

/// XML namespace of the BMC's metadata element.
pub const BMC_NS: &str = "https://airshipit.org/vinod/bmc/1";

/// User alias marking the virtual CD drive (`ua-` aliases persist in the definition).
const CD_ALIAS: &str = "ua-vinod-cd";

/// Attribute of the `<bmc:bmc>` element that asks the next boot to reset the NVRAM.
pub const NVRAM_RESET: &str = "nvram-reset";

/// The domain definition could not be parsed or written.
#[derive(Debug, thiserror::Error)]
#[error("malformed domain XML")]
pub struct XmlError(#[from] quick_xml::Error);

impl From<quick_xml::events::attributes::AttrError> for XmlError {
    fn from(e: quick_xml::events::attributes::AttrError) -> Self {
        Self(e.into())
    }
}

impl From<std::io::Error> for XmlError {
    fn from(e: std::io::Error) -> Self {
        Self(quick_xml::Error::Io(e.into()))
    }
}

/// The BMC's settings for one domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BmcState {
    /// The override.
    pub boot: BootOverride,
    /// Boot order without an override (vinod's rendered order).
    pub default_boot: Vec<String>,
    /// Virtual CD contents.
    pub media: Option<Media>,
    /// BIOS settings.
    pub bios: BiosSettings,
    /// UEFI firmware with secure boot and enrolled keys (only with [`BootMode::Uefi`]).
    pub secure_boot: bool,
    /// The next boot through the BMC resets the NVRAM from the firmware's template (the
    /// firmware changed since the NVRAM was made).
    pub nvram_reset: bool,
}

impl BmcState {
    /// The settings recorded in a definition; without a `<bmc:bmc>` element: no override, no
    /// media, the definition's own boot order as the default.
    pub fn of(view: &DomainView) -> BmcState {
        let mode = if view.efi {
            BootMode::Uefi
        } else {
            BootMode::Legacy
        };
        let secure_boot = view.efi && view.secure_boot;
        let Some(attrs) = &view.bmc else {
            return BmcState {
                boot: BootOverride {
                    mode,
                    ..BootOverride::default()
                },
                default_boot: view.boot_devs.clone(),
                media: None,
                bios: BiosSettings::default(),
                secure_boot,
                nvram_reset: false,
            };
        };
        let get = |k: &str| attrs.get(k).map(String::as_str).unwrap_or("");
        let default_boot = match get("default-boot") {
            "" => view.boot_devs.clone(),
            list => list.split(',').map(str::to_string).collect(),
        };
        let media = match (get("media-image"), get("media-file")) {
            (image, file) if !image.is_empty() && !file.is_empty() => Some(Media {
                image: image.to_string(),
                file: PathBuf::from(file),
            }),
            _ => None,
        };
        BmcState {
            boot: BootOverride {
                target: BootTarget::parse(get("boot-target")).unwrap_or_default(),
                enabled: BootEnabled::parse(get("boot-enabled")).unwrap_or_default(),
                mode,
            },
            default_boot,
            media,
            bios: BiosSettings {
                current: settings(get("bios")),
                pending: settings(get("bios-pending")),
            },
            secure_boot,
            nvram_reset: get(NVRAM_RESET) == "yes",
        }
    }

    /// Whether the definition carries anything of the BMC's.
    pub fn is_default(&self) -> bool {
        self.boot.effective().is_none()
            && self.media.is_none()
            && self.boot.mode == BootMode::Legacy
            && self.bios == BiosSettings::default()
            && !self.secure_boot
            && !self.nvram_reset
    }

    /// Secure boot, if the firmware is UEFI.
    fn secure(&self) -> bool {
        self.boot.mode == BootMode::Uefi && self.secure_boot
    }

    /// The boot order a definition with this state has.
    pub fn boot_order(&self) -> Vec<String> {
        let mut order = Vec::new();
        if let Some(t) = self.boot.effective() {
            order.push(device(t).to_string());
        }
        for d in &self.default_boot {
            if !order.contains(d) {
                order.push(d.clone());
            }
        }
        order
    }
}

/// BIOS settings as stored in an attribute: `name=value` pairs separated by `,` (the BMC
/// allows neither character in names or values).
fn settings(text: &str) -> BTreeMap<String, String> {
    text.split(',')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn settings_text(settings: &BTreeMap<String, String>) -> String {
    settings
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// libvirt's `<boot dev>` for a target.
fn device(t: BootTarget) -> &'static str {
    match t {
        BootTarget::Pxe => "network",
        BootTarget::Cd => "cdrom",
        BootTarget::Hdd | BootTarget::None => "hd",
    }
}

pub(super) fn local(name: &[u8]) -> &[u8] {
    name.iter()
        .position(|b| *b == b':')
        .map_or(name, |i| &name[i + 1..])
}

pub(super) fn attrs(e: &BytesStart<'_>) -> Result<BTreeMap<String, String>, XmlError> {
    let mut out = BTreeMap::new();
    for a in e.attributes() {
        let a = a?;
        out.insert(
            String::from_utf8_lossy(a.key.as_ref()).into_owned(),
            a.unescape_value()?.into_owned(),
        );
    }
    Ok(out)
}

/// Whether `e` is the BMC's metadata element (its namespace is declared on it).
pub(super) fn is_bmc_element(e: &BytesStart<'_>) -> Result<bool, XmlError> {
    Ok(attrs(e)?
        .iter()
        .any(|(k, v)| k.starts_with("xmlns") && v == BMC_NS))
}

/// Rewrites `xml` so that it carries `state`: the boot order, the firmware (attribute,
/// secure-boot features, SMM), the CD drive (present only with media) and the `<bmc:bmc>`
/// element (absent for a default state). Everything else is copied unchanged.
pub fn apply(xml: &str, state: &BmcState, machine: &str) -> Result<String, XmlError> {
    let mut reader = Reader::from_str(xml);
    let mut w = Writer::new(Vec::new());
    let mut path: Vec<Vec<u8>> = Vec::new();
    // Depth at which a dropped element started; everything below it is dropped too.
    let mut skip: Option<usize> = None;
    // A <disk> is held back until its alias says whether it is the BMC's CD drive.
    let mut disk_buf: Option<Vec<Event<'static>>> = None;
    let mut disk_is_ours = false;
    let mut saw_metadata = false;
    let uefi = state.boot.mode == BootMode::Uefi;
    // A firmware libvirt selected for the other secure-boot setting must be selected anew.
    let reselect = !uefi || view(xml)?.secure_boot != state.secure();
    loop {
        let event = reader.read_event()?;
        if matches!(event, Event::Eof) {
            break;
        }
        if let Some(depth) = skip {
            match &event {
                Event::Start(_) => path.push(Vec::new()),
                Event::End(_) => {
                    path.pop();
                    if path.len() == depth {
                        skip = None;
                    }
                }
                _ => {}
            }
            continue;
        }
        if let Some(buf) = disk_buf.as_mut() {
            match &event {
                Event::Start(e) | Event::Empty(e) => {
                    if local(e.name().as_ref()) == b"alias"
                        && attrs(e)?.get("name").is_some_and(|n| n == CD_ALIAS)
                    {
                        disk_is_ours = true;
                    }
                    if matches!(event, Event::Start(_)) {
                        path.push(local(e.name().as_ref()).to_vec());
                    }
                }
                Event::End(_) => {
                    path.pop();
                }
                _ => {}
            }
            let done = matches!(event, Event::End(_))
                && path.last().map(Vec::as_slice) == Some(b"devices");
            buf.push(event.into_owned());
            if done
                && let Some(buf) = disk_buf.take()
                && !disk_is_ours
            {
                for e in buf {
                    w.write_event(e)?;
                }
            }
            continue;
        }
        let (start, empty) = match &event {
            Event::Start(e) => (Some(e.clone()), false),
            Event::Empty(e) => (Some(e.clone()), true),
            _ => (None, false),
        };
        if let Some(e) = start {
            let name = local(e.name().as_ref()).to_vec();
            let parent = path.last().cloned();
            let parent = parent.as_deref();
            let dropped = match (parent, name.as_slice()) {
                (Some(b"os"), b"boot") => true,
                (Some(b"os"), b"loader" | b"nvram") => reselect,
                // Rewritten at the end of <os> and <features> from the state.
                (Some(b"os"), b"firmware") | (Some(b"features"), b"smm") => true,
                (Some(b"metadata"), _) => is_bmc_element(&e)?,
                _ => false,
            };
            if dropped {
                if !empty {
                    skip = Some(path.len());
                    path.push(name);
                }
                continue;
            }
            match (parent, name.as_slice()) {
                (Some(b"devices"), b"disk") if !empty => {
                    path.push(name);
                    disk_buf = Some(vec![event.into_owned()]);
                    disk_is_ours = false;
                }
                (Some(b"domain"), b"os") => {
                    let mut os =
                        BytesStart::new(String::from_utf8_lossy(e.name().as_ref()).into_owned());
                    for (k, v) in attrs(&e)? {
                        if k != "firmware" {
                            os.push_attribute((k.as_str(), v.as_str()));
                        }
                    }
                    if uefi {
                        os.push_attribute(("firmware", "efi"));
                    }
                    w.write_event(Event::Start(os.borrow()))?;
                    if empty {
                        write_firmware(&mut w, state)?;
                        write_boot(&mut w, state)?;
                        w.write_event(Event::End(os.to_end()))?;
                    } else {
                        path.push(name);
                    }
                }
                (Some(b"domain"), b"features") if empty => {
                    w.write_event(Event::Start(e.borrow()))?;
                    write_smm(&mut w, state)?;
                    w.write_event(Event::End(e.to_end()))?;
                }
                (Some(b"domain"), b"metadata") => {
                    saw_metadata = true;
                    w.write_event(Event::Start(e.borrow()))?;
                    if empty {
                        write_bmc_element(&mut w, state)?;
                        w.write_event(Event::End(e.to_end()))?;
                    } else {
                        path.push(name);
                    }
                }
                _ => {
                    w.write_event(event)?;
                    if !empty {
                        path.push(name);
                    }
                }
            }
            continue;
        }
        if let Event::End(e) = &event {
            let name = path.pop().unwrap_or_default();
            let parent = path.last().map(Vec::as_slice);
            match (parent, name.as_slice()) {
                (Some(b"domain"), b"os") => {
                    write_firmware(&mut w, state)?;
                    write_boot(&mut w, state)?
                }
                (Some(b"domain"), b"features") => write_smm(&mut w, state)?,
                (Some(b"domain"), b"devices") => write_cd(&mut w, state, machine)?,
                (Some(b"domain"), b"metadata") => write_bmc_element(&mut w, state)?,
                (None, b"domain") if !saw_metadata && !state.is_default() => {
                    w.write_event(Event::Start(BytesStart::new("metadata")))?;
                    write_bmc_element(&mut w, state)?;
                    w.write_event(Event::End(BytesEnd::new("metadata")))?;
                }
                _ => {}
            }
            w.write_event(Event::End(e.clone()))?;
            continue;
        }
        w.write_event(event)?;
    }
    // Every byte written came from `xml` (a str) or from str values.
    Ok(String::from_utf8_lossy(&w.into_inner()).into_owned())
}

mod view;
mod write;

pub use view::{DiskRef, DomainView, view};
use write::{write_bmc_element, write_boot, write_cd, write_firmware, write_smm};

#[cfg(test)]
mod tests;
