//! The JSON (and CSDL) documents of the service, built from plain values. Pure.

use serde_json::{Value, json};

use super::auth::{SESSION_TIMEOUT, Session};
use super::bios;
use super::target::Via;
use crate::host::machine::{BootEnabled, BootMode, BootTarget, Machine, PowerAction};

const V1: &str = "/redfish/v1";

pub(super) fn link(path: impl AsRef<str>) -> Value {
    json!({ "@odata.id": path.as_ref() })
}

pub(super) fn collection(odata_type: &str, path: &str, name: &str, members: Vec<String>) -> Value {
    json!({
        "@odata.type": odata_type,
        "@odata.id": path,
        "Name": name,
        "Members@odata.count": members.len(),
        "Members": members.iter().map(link).collect::<Vec<_>>(),
    })
}

pub(super) fn status() -> Value {
    json!({ "State": "Enabled", "Health": "OK" })
}

/// `/redfish`.
pub fn versions() -> Value {
    json!({ "v1": "/redfish/v1/" })
}

/// The service root. `uuid` identifies this vinod.
pub fn root(uuid: &str) -> Value {
    json!({
        "@odata.type": "#ServiceRoot.v1_11_0.ServiceRoot",
        "@odata.id": "/redfish/v1/",
        "Id": "RootService",
        "Name": "vinod Redfish service",
        "RedfishVersion": "1.15.0",
        "UUID": uuid,
        "Vendor": "vinod",
        "Product": "vinod",
        "Systems": link(format!("{V1}/Systems")),
        "Managers": link(format!("{V1}/Managers")),
        "Chassis": link(format!("{V1}/Chassis")),
        "SessionService": link(format!("{V1}/SessionService")),
        "Links": { "Sessions": link(format!("{V1}/SessionService/Sessions")) },
        "ProtocolFeaturesSupported": {
            "ExcerptQuery": false,
            "ExpandQuery": { "ExpandAll": false, "Levels": false, "Links": false, "NoLinks": false },
            "FilterQuery": false,
            "OnlyMemberQuery": false,
            "SelectQuery": false,
        },
    })
}

/// The OData service document.
pub fn odata() -> Value {
    let entry = |name: &str, url: &str| json!({ "name": name, "kind": "Singleton", "url": url });
    json!({
        "@odata.context": "/redfish/v1/$metadata",
        "value": [
            entry("Service", "/redfish/v1/"),
            entry("Systems", "/redfish/v1/Systems"),
            entry("Managers", "/redfish/v1/Managers"),
            entry("Chassis", "/redfish/v1/Chassis"),
            entry("SessionService", "/redfish/v1/SessionService"),
        ],
    })
}

/// The CSDL `$metadata` document: references to DMTF's published schemas of every type
/// served.
pub fn metadata() -> String {
    const SCHEMAS: [(&str, &str); 30] = [
        ("ServiceRoot", "v1_11_0"),
        ("ComputerSystemCollection", ""),
        ("ComputerSystem", "v1_13_0"),
        ("EthernetInterfaceCollection", ""),
        ("EthernetInterface", "v1_6_0"),
        ("VirtualMediaCollection", ""),
        ("VirtualMedia", "v1_6_0"),
        ("ManagerCollection", ""),
        ("Manager", "v1_10_0"),
        ("ChassisCollection", ""),
        ("Chassis", "v1_14_0"),
        ("SessionService", "v1_1_8"),
        ("SessionCollection", ""),
        ("Session", "v1_3_0"),
        ("ProcessorCollection", ""),
        ("Processor", "v1_10_0"),
        ("SimpleStorageCollection", ""),
        ("SimpleStorage", "v1_3_0"),
        ("StorageCollection", ""),
        ("Storage", "v1_8_0"),
        ("Drive", "v1_9_0"),
        ("VolumeCollection", ""),
        ("Volume", "v1_5_0"),
        ("Bios", "v1_1_0"),
        ("SecureBoot", "v1_1_0"),
        ("ActionInfo", "v1_1_2"),
        ("Message", "v1_1_2"),
        ("Resource", "v1_11_0"),
        ("RedfishExtensions", "v1_0_0"),
        ("Settings", "v1_3_3"),
    ];
    let mut out = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<edmx:Edmx xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\" Version=\"4.0\">\n",
    );
    for (schema, version) in SCHEMAS {
        out.push_str(&format!(
            "  <edmx:Reference Uri=\"http://redfish.dmtf.org/schemas/v1/{schema}_v1.xml\">\n    <edmx:Include Namespace=\"{schema}\"/>\n"
        ));
        if !version.is_empty() {
            out.push_str(&format!(
                "    <edmx:Include Namespace=\"{schema}.{version}\"/>\n"
            ));
        }
        out.push_str("  </edmx:Reference>\n");
    }
    out.push_str("  <edmx:DataServices>\n    <Schema xmlns=\"http://docs.oasis-open.org/odata/ns/edm\" Namespace=\"Service\">\n      <EntityContainer Name=\"Service\" Extends=\"ServiceRoot.v1_11_0.ServiceContainer\"/>\n    </Schema>\n  </edmx:DataServices>\n</edmx:Edmx>\n");
    out
}

/// The Systems collection.
pub fn systems(names: &[&str]) -> Value {
    let members = names.iter().map(|n| format!("{V1}/Systems/{n}")).collect();
    collection(
        "#ComputerSystemCollection.ComputerSystemCollection",
        &format!("{V1}/Systems"),
        "Computer System Collection",
        members,
    )
}

fn allowable<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Vec<&'static str> {
    all.iter().map(|v| name(*v)).collect()
}

/// One System.
pub fn system(m: &Machine) -> Value {
    let path = format!("{V1}/Systems/{}", m.name);
    json!({
        "@odata.type": "#ComputerSystem.v1_13_0.ComputerSystem",
        "@odata.id": path,
        "Id": m.name,
        "Name": m.name,
        "Description": format!("VM {} of Vino {}", m.name, m.owner),
        "UUID": m.uuid,
        "SystemType": "Virtual",
        "Manufacturer": "vinod",
        "Model": "libvirt domain",
        "PowerState": m.power.to_string(),
        "Status": status(),
        "Boot": {
            "BootSourceOverrideTarget": m.boot.target.as_str(),
            "BootSourceOverrideTarget@Redfish.AllowableValues": allowable(&BootTarget::ALL, BootTarget::as_str),
            "BootSourceOverrideEnabled": m.boot.enabled.as_str(),
            "BootSourceOverrideEnabled@Redfish.AllowableValues": allowable(&BootEnabled::ALL, BootEnabled::as_str),
            "BootSourceOverrideMode": m.boot.mode.as_str(),
            "BootSourceOverrideMode@Redfish.AllowableValues": allowable(&BootMode::ALL, BootMode::as_str),
        },
        "BiosVersion": bios::version(m),
        "ProcessorSummary": { "Count": m.cpu.sockets, "LogicalProcessorCount": m.vcpus,
            "Model": m.cpu.model, "Status": status() },
        "MemorySummary": { "TotalSystemMemoryGiB": m.memory_mib as f64 / 1024.0, "Status": status() },
        "Processors": link(format!("{path}/Processors")),
        "SimpleStorage": link(format!("{path}/SimpleStorage")),
        "Storage": link(format!("{path}/Storage")),
        "Bios": link(format!("{path}/Bios")),
        "SecureBoot": link(format!("{path}/SecureBoot")),
        "EthernetInterfaces": link(format!("{path}/EthernetInterfaces")),
        "VirtualMedia": link(format!("{path}/VirtualMedia")),
        "Links": {
            "ManagedBy": [link(format!("{V1}/Managers/{}", m.name))],
            "Chassis": [link(format!("{V1}/Chassis/{}", m.name))],
        },
        "Actions": {
            "#ComputerSystem.Reset": {
                "target": format!("{path}/Actions/ComputerSystem.Reset"),
                "ResetType@Redfish.AllowableValues": allowable(&PowerAction::ALL, PowerAction::as_str),
                "@Redfish.ActionInfo": format!("{path}/ResetActionInfo"),
            }
        },
    })
}

/// The ActionInfo of the reset action.
pub fn reset_info(m: &Machine) -> Value {
    json!({
        "@odata.type": "#ActionInfo.v1_1_2.ActionInfo",
        "@odata.id": format!("{V1}/Systems/{}/ResetActionInfo", m.name),
        "Id": "ResetActionInfo",
        "Name": "Reset Action Info",
        "Parameters": [{
            "Name": "ResetType",
            "Required": true,
            "DataType": "String",
            "AllowableValues": allowable(&PowerAction::ALL, PowerAction::as_str),
        }],
    })
}

/// Id of the `i`-th NIC.
pub fn nic_id(i: usize) -> String {
    format!("nic{i}")
}

/// The EthernetInterfaces collection of a System.
pub fn nics(m: &Machine) -> Value {
    let base = format!("{V1}/Systems/{}/EthernetInterfaces", m.name);
    let members = (0..m.macs.len())
        .map(|i| format!("{base}/{}", nic_id(i)))
        .collect();
    collection(
        "#EthernetInterfaceCollection.EthernetInterfaceCollection",
        &base,
        "Ethernet Interface Collection",
        members,
    )
}

/// One EthernetInterface.
pub fn nic(m: &Machine, i: usize) -> Value {
    json!({
        "@odata.type": "#EthernetInterface.v1_6_0.EthernetInterface",
        "@odata.id": format!("{V1}/Systems/{}/EthernetInterfaces/{}", m.name, nic_id(i)),
        "Id": nic_id(i),
        "Name": format!("NIC {i}"),
        "MACAddress": m.macs[i],
        "PermanentMACAddress": m.macs[i],
        "Status": status(),
    })
}

fn media_base(via: Via, name: &str) -> String {
    match via {
        Via::System => format!("{V1}/Systems/{name}/VirtualMedia"),
        Via::Manager => format!("{V1}/Managers/{name}/VirtualMedia"),
    }
}

/// The VirtualMedia collection (one member, `Cd`).
pub fn media_collection(via: Via, m: &Machine) -> Value {
    let base = media_base(via, &m.name);
    collection(
        "#VirtualMediaCollection.VirtualMediaCollection",
        &base,
        "Virtual Media Collection",
        vec![format!("{base}/Cd")],
    )
}

/// The `Cd` VirtualMedia.
pub fn cd(via: Via, m: &Machine, verify_certificate: bool) -> Value {
    let base = format!("{}/Cd", media_base(via, &m.name));
    let image = m.media.as_ref().map(|x| x.image.clone());
    let image_name = image.as_deref().map(|i| {
        i.split(['?', '#'])
            .next()
            .unwrap_or(i)
            .rsplit('/')
            .next()
            .unwrap_or(i)
            .to_string()
    });
    let protocol = image.as_deref().map(|i| {
        if i.to_ascii_lowercase().starts_with("https:") {
            "HTTPS"
        } else {
            "HTTP"
        }
    });
    json!({
        "@odata.type": "#VirtualMedia.v1_6_0.VirtualMedia",
        "@odata.id": base,
        "Id": "Cd",
        "Name": "Virtual CD",
        "MediaTypes": ["CD", "DVD"],
        "Image": image,
        "ImageName": image_name,
        "Inserted": m.media.is_some(),
        "WriteProtected": true,
        "ConnectedVia": if m.media.is_some() { "URI" } else { "NotConnected" },
        "TransferMethod": "Upload",
        "TransferProtocolType": protocol,
        "VerifyCertificate": verify_certificate,
        "Actions": {
            "#VirtualMedia.InsertMedia": { "target": format!("{base}/Actions/VirtualMedia.InsertMedia") },
            "#VirtualMedia.EjectMedia": { "target": format!("{base}/Actions/VirtualMedia.EjectMedia") },
        },
    })
}

/// The Managers collection.
pub fn managers(names: &[&str]) -> Value {
    let members = names.iter().map(|n| format!("{V1}/Managers/{n}")).collect();
    collection(
        "#ManagerCollection.ManagerCollection",
        &format!("{V1}/Managers"),
        "Manager Collection",
        members,
    )
}

/// The Manager (BMC) of a System.
pub fn manager(m: &Machine) -> Value {
    json!({
        "@odata.type": "#Manager.v1_10_0.Manager",
        "@odata.id": format!("{V1}/Managers/{}", m.name),
        "Id": m.name,
        "Name": format!("BMC of {}", m.name),
        "ManagerType": "BMC",
        "FirmwareVersion": env!("CARGO_PKG_VERSION"),
        "Status": status(),
        "PowerState": "On",
        "VirtualMedia": link(format!("{V1}/Managers/{}/VirtualMedia", m.name)),
        "Links": {
            "ManagerForServers": [link(format!("{V1}/Systems/{}", m.name))],
            "ManagerForChassis": [link(format!("{V1}/Chassis/{}", m.name))],
        },
    })
}

/// The Chassis collection.
pub fn chassis_collection(names: &[&str]) -> Value {
    let members = names.iter().map(|n| format!("{V1}/Chassis/{n}")).collect();
    collection(
        "#ChassisCollection.ChassisCollection",
        &format!("{V1}/Chassis"),
        "Chassis Collection",
        members,
    )
}

/// The Chassis of a System.
pub fn chassis(m: &Machine) -> Value {
    json!({
        "@odata.type": "#Chassis.v1_14_0.Chassis",
        "@odata.id": format!("{V1}/Chassis/{}", m.name),
        "Id": m.name,
        "Name": format!("Chassis of {}", m.name),
        "ChassisType": "Other",
        "PowerState": m.power.to_string(),
        "Status": status(),
        "Links": {
            "ComputerSystems": [link(format!("{V1}/Systems/{}", m.name))],
            "ManagedBy": [link(format!("{V1}/Managers/{}", m.name))],
        },
    })
}

/// The SessionService.
pub fn session_service() -> Value {
    json!({
        "@odata.type": "#SessionService.v1_1_8.SessionService",
        "@odata.id": format!("{V1}/SessionService"),
        "Id": "SessionService",
        "Name": "Session Service",
        "ServiceEnabled": true,
        "SessionTimeout": SESSION_TIMEOUT.as_secs(),
        "Status": status(),
        "Sessions": link(format!("{V1}/SessionService/Sessions")),
    })
}

/// The caller's sessions.
pub fn sessions(ids: &[String]) -> Value {
    let members = ids
        .iter()
        .map(|i| format!("{V1}/SessionService/Sessions/{i}"))
        .collect();
    collection(
        "#SessionCollection.SessionCollection",
        &format!("{V1}/SessionService/Sessions"),
        "Session Collection",
        members,
    )
}

/// URI of a session.
pub fn session_path(id: &str) -> String {
    format!("{V1}/SessionService/Sessions/{id}")
}

/// One session.
pub fn session(s: &Session) -> Value {
    json!({
        "@odata.type": "#Session.v1_3_0.Session",
        "@odata.id": session_path(&s.id),
        "Id": s.id,
        "Name": "User Session",
        "UserName": s.username,
    })
}
