//! What a BMC sees of a VM and can ask of it: power, boot override, virtual media, BIOS
//! settings, and its inventory (processors, memory, disks). Pure data, shared by the
//! [`Machines`](super::Machines) adapter and the Redfish server.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use crate::state::Owner;

/// A vinod-owned VM as its BMC reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Machine {
    /// Domain name, also the Redfish System id.
    pub name: String,
    /// Domain UUID.
    pub uuid: String,
    /// The Vino it belongs to (whose BMC credentials reach it).
    pub owner: Owner,
    /// Power state now.
    pub power: PowerState,
    /// Configured vCPUs.
    pub vcpus: u32,
    /// The processors the guest sees.
    pub cpu: Processors,
    /// Configured memory in MiB.
    pub memory_mib: u64,
    /// NIC MAC addresses, in guest order.
    pub macs: Vec<String>,
    /// The boot override of the persistent definition.
    pub boot: BootOverride,
    /// The image in the virtual CD drive, if any.
    pub media: Option<Media>,
    /// BIOS settings as changed through the BMC.
    pub bios: BiosSettings,
    /// QEMU machine type of the persistent definition (`pc-q35-7.2`, `pc`, …).
    pub machine_type: String,
    /// Secure boot (UEFI firmware with secure boot and enrolled keys) asked for the next boot.
    pub secure_boot: bool,
}

impl Machine {
    /// Why secure boot cannot be turned on for this machine, if it cannot: it needs UEFI
    /// firmware, and OVMF's secure-boot builds need SMM, which only the q35 machine type has.
    pub fn secure_boot_unsupported(&self) -> Option<String> {
        if self.boot.mode != BootMode::Uefi {
            return Some(format!(
                "{} boots {} firmware; secure boot needs UEFI (set Boot/BootSourceOverrideMode to UEFI first)",
                self.name,
                self.boot.mode.as_str()
            ));
        }
        if !self.machine_type.contains("q35") {
            return Some(format!(
                "{} is a {} machine; secure boot needs the q35 machine type (libvirt.machine = \"q35\" in vinod.toml)",
                self.name, self.machine_type
            ));
        }
        None
    }
}

/// The processors of a machine: its topology, architecture and model.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Processors {
    /// Sockets (dies counted as sockets).
    pub sockets: u32,
    /// Cores per socket.
    pub cores: u32,
    /// Threads per core.
    pub threads: u32,
    /// libvirt's architecture name (`x86_64`, `aarch64`, …).
    pub arch: String,
    /// The CPU model name the guest sees.
    pub model: String,
}

/// A disk of a machine, as its guest sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disk {
    /// Target device name (`vda`), also its Redfish id.
    pub id: String,
    /// Bus (`virtio`, `sata`, …).
    pub bus: String,
    /// Capacity the guest sees, if the hypervisor knows it.
    pub capacity_bytes: Option<u64>,
}

/// BIOS attributes changed through the BMC (name → value); anything not named has its
/// default. What the attributes mean is the BMC's business: the adapter only stores them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BiosSettings {
    /// In force since the last boot through the BMC.
    pub current: BTreeMap<String, String>,
    /// Requested; they take effect at the next boot through the BMC.
    pub pending: BTreeMap<String, String>,
}

impl BiosSettings {
    /// The settings after a boot: the pending ones are in force.
    pub fn booted(&self) -> BiosSettings {
        let mut current = self.current.clone();
        current.extend(self.pending.clone());
        BiosSettings {
            current,
            pending: BTreeMap::new(),
        }
    }
}

/// Power state, folded to what Redfish distinguishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerState {
    /// Running, paused or suspended.
    On,
    /// Shut off or crashed.
    Off,
    /// Shutting down.
    PoweringOff,
}

/// A power action (Redfish `ResetType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PowerAction {
    /// Power on (no-op if on).
    On,
    /// Power on (no-op if on).
    ForceOn,
    /// Pull the plug (no-op if off).
    ForceOff,
    /// ACPI power-off request (no-op if off).
    GracefulShutdown,
    /// Orderly restart; powers on a machine that is off.
    GracefulRestart,
    /// Power off and on again; powers on a machine that is off.
    ForceRestart,
    /// The power button: ACPI power-off if on, power-on if off.
    PushPowerButton,
    /// Non-maskable interrupt to a running machine.
    Nmi,
}

impl PowerAction {
    /// Every action, in the order Redfish lists them.
    pub const ALL: [PowerAction; 8] = [
        Self::On,
        Self::ForceOff,
        Self::GracefulShutdown,
        Self::GracefulRestart,
        Self::ForceRestart,
        Self::Nmi,
        Self::ForceOn,
        Self::PushPowerButton,
    ];

    /// The Redfish `ResetType` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::On => "On",
            Self::ForceOn => "ForceOn",
            Self::ForceOff => "ForceOff",
            Self::GracefulShutdown => "GracefulShutdown",
            Self::GracefulRestart => "GracefulRestart",
            Self::ForceRestart => "ForceRestart",
            Self::PushPowerButton => "PushPowerButton",
            Self::Nmi => "Nmi",
        }
    }

    /// The action of a Redfish `ResetType` name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// Device a boot override selects (Redfish `BootSourceOverrideTarget`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BootTarget {
    /// No override: the default order.
    #[default]
    None,
    /// Network (PXE).
    Pxe,
    /// The first hard disk.
    Hdd,
    /// The virtual CD drive.
    Cd,
}

impl BootTarget {
    /// Every target.
    pub const ALL: [BootTarget; 4] = [Self::None, Self::Pxe, Self::Hdd, Self::Cd];

    /// The Redfish name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "None",
            Self::Pxe => "Pxe",
            Self::Hdd => "Hdd",
            Self::Cd => "Cd",
        }
    }

    /// The target of a Redfish name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// How long an override lasts (Redfish `BootSourceOverrideEnabled`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BootEnabled {
    /// Not in force.
    #[default]
    Disabled,
    /// For the next boot through the BMC only.
    Once,
    /// Until changed.
    Continuous,
}

impl BootEnabled {
    /// Every value.
    pub const ALL: [BootEnabled; 3] = [Self::Disabled, Self::Once, Self::Continuous];

    /// The Redfish name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disabled => "Disabled",
            Self::Once => "Once",
            Self::Continuous => "Continuous",
        }
    }

    /// The value of a Redfish name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// Firmware the machine boots with (Redfish `BootSourceOverrideMode`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BootMode {
    /// BIOS (SeaBIOS), vinod's default.
    #[default]
    Legacy,
    /// UEFI firmware chosen by libvirt (`<os firmware='efi'>`).
    Uefi,
}

impl BootMode {
    /// Every mode.
    pub const ALL: [BootMode; 2] = [Self::Uefi, Self::Legacy];

    /// The Redfish name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Legacy => "Legacy",
            Self::Uefi => "UEFI",
        }
    }

    /// The mode of a Redfish name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// A boot override as stored with the machine.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BootOverride {
    /// Device.
    pub target: BootTarget,
    /// Duration.
    pub enabled: BootEnabled,
    /// Firmware.
    pub mode: BootMode,
}

impl BootOverride {
    /// The device the next boot starts from ahead of the default order, if any.
    pub fn effective(&self) -> Option<BootTarget> {
        (self.enabled != BootEnabled::Disabled && self.target != BootTarget::None)
            .then_some(self.target)
    }
}

/// An image in the virtual CD drive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Media {
    /// The URL it was inserted from.
    pub image: String,
    /// The local copy the drive reads.
    pub file: PathBuf,
}

/// How a [`Machines`](super::Machines) error is to be reported to a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// No vinod-owned machine of that name.
    NotFound,
    /// The machine is not in a state that allows the action (e.g. NMI while off).
    WrongState,
    /// The hypervisor failed.
    Host,
}

/// Classifies an adapter error for the BMC.
pub trait Fault {
    /// The kind of failure.
    fn fault(&self) -> FaultKind;
}

impl fmt::Display for PowerState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::On => "On",
            Self::Off => "Off",
            Self::PoweringOff => "PoweringOff",
        })
    }
}

#[cfg(test)]
impl Machine {
    /// A powered-off one-vCPU x86_64 machine `ns.v.w-0` of Vino `ns/v` on machine type `pc`,
    /// for unit tests to adjust.
    pub fn sample() -> Machine {
        Machine {
            name: "ns.v.w-0".into(),
            uuid: "u".into(),
            owner: crate::state::Owner {
                namespace: "ns".into(),
                name: "v".into(),
            },
            power: PowerState::Off,
            vcpus: 1,
            cpu: Processors {
                sockets: 1,
                cores: 1,
                threads: 1,
                arch: "x86_64".into(),
                model: "m".into(),
            },
            memory_mib: 1024,
            macs: vec![],
            boot: BootOverride::default(),
            media: None,
            bios: BiosSettings::default(),
            machine_type: "pc".into(),
            secure_boot: false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in PowerAction::ALL {
            assert_eq!(PowerAction::parse(a.as_str()), Some(a));
        }
        for t in BootTarget::ALL {
            assert_eq!(BootTarget::parse(t.as_str()), Some(t));
        }
        for e in BootEnabled::ALL {
            assert_eq!(BootEnabled::parse(e.as_str()), Some(e));
        }
        for m in BootMode::ALL {
            assert_eq!(BootMode::parse(m.as_str()), Some(m));
        }
        assert_eq!(PowerAction::parse("on"), None);
    }

    #[test]
    fn a_boot_puts_pending_bios_settings_in_force() {
        let settings = BiosSettings {
            current: BTreeMap::from([("A".into(), "1".into()), ("B".into(), "1".into())]),
            pending: BTreeMap::from([("B".into(), "2".into()), ("C".into(), "2".into())]),
        };
        let booted = settings.booted();
        assert!(booted.pending.is_empty());
        assert_eq!(
            booted.current,
            BTreeMap::from([
                ("A".into(), "1".into()),
                ("B".into(), "2".into()),
                ("C".into(), "2".into())
            ])
        );
    }

    #[test]
    fn override_is_effective_only_when_enabled_with_a_target() {
        let mut b = BootOverride {
            target: BootTarget::Pxe,
            enabled: BootEnabled::Once,
            mode: BootMode::Legacy,
        };
        assert_eq!(b.effective(), Some(BootTarget::Pxe));
        b.enabled = BootEnabled::Disabled;
        assert_eq!(b.effective(), None);
        b.enabled = BootEnabled::Continuous;
        b.target = BootTarget::None;
        assert_eq!(b.effective(), None);
    }
}
