//! A System's inventory documents: Processors (one per socket), SimpleStorage and Storage with
//! Drives and Volumes (one storage subsystem holding every disk, one volume per disk), and the
//! paths that name them. Pure.

use serde_json::{Value, json};

use super::resources::{collection, link, status};
use crate::host::machine::{Disk, Machine};

/// Id of the one SimpleStorage and Storage member.
pub const STORAGE_ID: &str = "1";

/// A resource below `/redfish/v1/Systems/{id}` that describes the hardware or the BIOS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Part {
    /// `Processors`.
    Processors,
    /// `Processors/{cpu}`.
    Processor(String),
    /// `SimpleStorage`.
    SimpleStorages,
    /// `SimpleStorage/{id}`.
    SimpleStorage(String),
    /// `Storage`.
    Storages,
    /// `Storage/{id}`.
    Storage(String),
    /// `Storage/{id}/Drives/{disk}`.
    Drive(String, String),
    /// `Storage/{id}/Volumes`.
    Volumes(String),
    /// `Storage/{id}/Volumes/{disk}`.
    Volume(String, String),
    /// `Bios`.
    Bios,
    /// `Bios/Settings`.
    BiosSettings,
    /// `SecureBoot`.
    SecureBoot,
}

impl Part {
    /// The part named by the path segments after the System's id.
    pub fn parse(rest: &[&str]) -> Option<Part> {
        let s = |x: &&str| x.to_string();
        Some(match rest {
            ["Processors"] => Self::Processors,
            ["Processors", cpu] => Self::Processor(s(cpu)),
            ["SimpleStorage"] => Self::SimpleStorages,
            ["SimpleStorage", id] => Self::SimpleStorage(s(id)),
            ["Storage"] => Self::Storages,
            ["Storage", id] => Self::Storage(s(id)),
            ["Storage", id, "Drives", disk] => Self::Drive(s(id), s(disk)),
            ["Storage", id, "Volumes"] => Self::Volumes(s(id)),
            ["Storage", id, "Volumes", disk] => Self::Volume(s(id), s(disk)),
            ["Bios"] => Self::Bios,
            ["Bios", "Settings"] => Self::BiosSettings,
            ["SecureBoot"] => Self::SecureBoot,
            _ => return None,
        })
    }

    /// Whether the document needs the disks (which cost libvirt calls to size).
    pub fn needs_disks(&self) -> bool {
        !matches!(
            self,
            Self::Processors
                | Self::Processor(_)
                | Self::Bios
                | Self::BiosSettings
                | Self::SecureBoot
        )
    }
}

fn system(m: &Machine) -> String {
    format!("/redfish/v1/Systems/{}", m.name)
}

/// Redfish `ProcessorArchitecture` and `InstructionSet` of a libvirt architecture.
fn architecture(arch: &str) -> (&'static str, &'static str) {
    match arch {
        "x86_64" => ("x86", "x86-64"),
        "i686" | "i386" => ("x86", "x86"),
        "aarch64" => ("ARM", "ARM-A64"),
        "armv7l" | "armv6l" => ("ARM", "ARM-A32"),
        "ppc64" | "ppc64le" => ("Power", "PowerISA"),
        "mips64" | "mips64el" => ("MIPS", "MIPS64"),
        "mips" | "mipsel" => ("MIPS", "MIPS32"),
        _ => ("OEM", "OEM"),
    }
}

fn cpu_id(socket: u32) -> String {
    format!("CPU{socket}")
}

/// The Processors collection: one member per socket.
pub fn processors(m: &Machine) -> Value {
    let base = format!("{}/Processors", system(m));
    let members: Vec<String> = (0..m.cpu.sockets)
        .map(|i| format!("{base}/{}", cpu_id(i)))
        .collect();
    collection(
        "#ProcessorCollection.ProcessorCollection",
        &base,
        "Processors Collection",
        members,
    )
}

/// One socket, if `id` names one.
pub fn processor(m: &Machine, id: &str) -> Option<Value> {
    let socket = (0..m.cpu.sockets).find(|i| cpu_id(*i) == id)?;
    let (arch, instructions) = architecture(&m.cpu.arch);
    Some(json!({
        "@odata.type": "#Processor.v1_10_0.Processor",
        "@odata.id": format!("{}/Processors/{id}", system(m)),
        "Id": id,
        "Name": format!("Processor {socket}"),
        "Socket": format!("CPU {socket}"),
        "ProcessorType": "CPU",
        "ProcessorArchitecture": arch,
        "InstructionSet": instructions,
        "Model": m.cpu.model,
        "TotalCores": m.cpu.cores,
        "TotalThreads": m.cpu.cores * m.cpu.threads,
        "Status": status(),
    }))
}

/// The SimpleStorage collection (one controller).
pub fn simple_storages(m: &Machine) -> Value {
    let base = format!("{}/SimpleStorage", system(m));
    collection(
        "#SimpleStorageCollection.SimpleStorageCollection",
        &base,
        "Simple Storage Collection",
        vec![format!("{base}/{STORAGE_ID}")],
    )
}

/// The one SimpleStorage controller with every disk as a device.
pub fn simple_storage(m: &Machine, disks: &[Disk]) -> Value {
    let devices: Vec<Value> = disks
        .iter()
        .map(|d| {
            json!({
                "Name": d.id,
                "Model": format!("{} disk", d.bus),
                "CapacityBytes": d.capacity_bytes,
                "Status": status(),
            })
        })
        .collect();
    json!({
        "@odata.type": "#SimpleStorage.v1_3_0.SimpleStorage",
        "@odata.id": format!("{}/SimpleStorage/{STORAGE_ID}", system(m)),
        "Id": STORAGE_ID,
        "Name": "Disk controller",
        "Devices": devices,
        "Status": status(),
    })
}

fn storage_path(m: &Machine) -> String {
    format!("{}/Storage/{STORAGE_ID}", system(m))
}

/// The Storage collection (one subsystem).
pub fn storages(m: &Machine) -> Value {
    collection(
        "#StorageCollection.StorageCollection",
        &format!("{}/Storage", system(m)),
        "Storage Collection",
        vec![storage_path(m)],
    )
}

/// The storage subsystem: every disk a drive.
pub fn storage(m: &Machine, disks: &[Disk]) -> Value {
    let base = storage_path(m);
    let drives: Vec<Value> = disks
        .iter()
        .map(|d| link(format!("{base}/Drives/{}", d.id)))
        .collect();
    json!({
        "@odata.type": "#Storage.v1_8_0.Storage",
        "@odata.id": base,
        "Id": STORAGE_ID,
        "Name": "Local storage",
        "Drives": drives,
        "Drives@odata.count": disks.len(),
        "Volumes": link(format!("{base}/Volumes")),
        "Status": status(),
    })
}

/// One drive.
pub fn drive(m: &Machine, d: &Disk) -> Value {
    let base = storage_path(m);
    json!({
        "@odata.type": "#Drive.v1_9_0.Drive",
        "@odata.id": format!("{base}/Drives/{}", d.id),
        "Id": d.id,
        "Name": d.id,
        "Model": format!("{} disk", d.bus),
        "CapacityBytes": d.capacity_bytes,
        "Status": status(),
        "Links": { "Volumes": [link(format!("{base}/Volumes/{}", d.id))] },
    })
}

/// The Volumes collection: one volume per disk whose capacity is known.
pub fn volumes(m: &Machine, disks: &[Disk]) -> Value {
    let base = format!("{}/Volumes", storage_path(m));
    let members: Vec<String> = disks
        .iter()
        .filter(|d| d.capacity_bytes.is_some())
        .map(|d| format!("{base}/{}", d.id))
        .collect();
    collection(
        "#VolumeCollection.VolumeCollection",
        &base,
        "Volume Collection",
        members,
    )
}

/// One volume, if its disk's capacity is known.
pub fn volume(m: &Machine, d: &Disk) -> Option<Value> {
    let base = storage_path(m);
    Some(json!({
        "@odata.type": "#Volume.v1_5_0.Volume",
        "@odata.id": format!("{base}/Volumes/{}", d.id),
        "Id": d.id,
        "Name": d.id,
        "CapacityBytes": d.capacity_bytes?,
        "Status": status(),
        "Links": { "Drives": [link(format!("{base}/Drives/{}", d.id))] },
    }))
}

#[cfg(test)]
mod tests;
