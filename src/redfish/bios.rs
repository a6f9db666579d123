//! The BIOS of a System: a fixed set of attributes with defaults and allowed values, the
//! `Bios` resource, its `Settings` object (PATCHed, applied at the next boot through the BMC)
//! and `Bios.ResetBios`. Pure.
//!
//! The attributes are kept per VM and reported back; they do not change the VM's hardware.

use serde_json::{Map, Value, json};

use super::action::{bad, object, type_error, value_not_in_list};
use super::error::ApiError;
use crate::host::machine::{BiosSettings, BootMode, Machine};

/// One BIOS attribute.
#[derive(Clone, Copy, Debug)]
pub struct Attribute {
    /// Its name.
    pub name: &'static str,
    /// Its value until changed.
    pub default: &'static str,
    /// Every value it may take.
    pub values: &'static [&'static str],
}

const ON_OFF: &[&str] = &["Enabled", "Disabled"];

/// The attributes every VM's BIOS has.
pub const ATTRIBUTES: [Attribute; 4] = [
    Attribute {
        name: "ProcTurboMode",
        default: "Enabled",
        values: ON_OFF,
    },
    Attribute {
        name: "ProcVirtualization",
        default: "Enabled",
        values: ON_OFF,
    },
    Attribute {
        name: "QuietBoot",
        default: "Disabled",
        values: ON_OFF,
    },
    Attribute {
        name: "NumLock",
        default: "On",
        values: &["On", "Off"],
    },
];

/// The only apply time: the next boot through the BMC.
const ON_RESET: &str = "OnReset";

/// The firmware a VM boots, as `BiosVersion`.
pub fn version(m: &Machine) -> &'static str {
    match m.boot.mode {
        BootMode::Legacy => "SeaBIOS",
        BootMode::Uefi => "OVMF",
    }
}

fn path(m: &Machine) -> String {
    format!("/redfish/v1/Systems/{}/Bios", m.name)
}

/// The attributes in force: defaults overlaid with the current settings.
fn effective(bios: &BiosSettings) -> Map<String, Value> {
    ATTRIBUTES
        .iter()
        .map(|a| {
            let value = bios.current.get(a.name).map_or(a.default, String::as_str);
            (a.name.to_string(), Value::from(value))
        })
        .collect()
}

/// The `Bios` resource.
pub fn bios(m: &Machine) -> Value {
    let base = path(m);
    json!({
        "@odata.type": "#Bios.v1_1_0.Bios",
        "@odata.id": base,
        "Id": "Bios",
        "Name": "BIOS Configuration",
        "Description": format!("BIOS settings of {}; they take effect at the next boot", m.name),
        "AttributeRegistry": "BiosAttributeRegistry.v1_0_0",
        "Attributes": effective(&m.bios),
        "@Redfish.Settings": {
            "@odata.type": "#Settings.v1_3_3.Settings",
            "SettingsObject": { "@odata.id": format!("{base}/Settings") },
            "SupportedApplyTimes": [ON_RESET],
        },
        "Actions": {
            "#Bios.ResetBios": { "target": format!("{base}/Actions/Bios.ResetBios") },
        },
    })
}

/// The `Settings` object: the attributes waiting for the next boot.
pub fn settings(m: &Machine) -> Value {
    let pending: Map<String, Value> = m
        .bios
        .pending
        .iter()
        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
        .collect();
    json!({
        "@odata.type": "#Bios.v1_1_0.Bios",
        "@odata.id": format!("{}/Settings", path(m)),
        "Id": "Settings",
        "Name": "BIOS Pending Settings",
        "AttributeRegistry": "BiosAttributeRegistry.v1_0_0",
        "Attributes": pending,
        "@Redfish.SettingsApplyTime": {
            "@odata.type": "#Settings.v1_3_3.PreferredApplyTime",
            "ApplyTime": ON_RESET,
        },
    })
}

/// `Bios.ResetBios`: every attribute goes back to its default at the next boot.
pub fn reset(current: &BiosSettings) -> BiosSettings {
    BiosSettings {
        current: current.current.clone(),
        pending: ATTRIBUTES
            .iter()
            .map(|a| (a.name.to_string(), a.default.to_string()))
            .collect(),
    }
}

/// A PATCH of the `Settings` object: `Attributes` (known names, allowed string values) and
/// optionally `@Redfish.SettingsApplyTime` with `ApplyTime` `OnReset`. The values join those
/// already pending.
pub fn settings_patch(body: &[u8], current: &BiosSettings) -> Result<BiosSettings, ApiError> {
    let m = object(body, false)?;
    let mut next = current.clone();
    let mut changed = false;
    for (k, v) in &m {
        match (k.as_str(), v) {
            ("Attributes", Value::Object(attrs)) => {
                for (name, value) in attrs {
                    next.pending.insert(name.clone(), checked(name, value)?);
                    changed = true;
                }
            }
            ("@Redfish.SettingsApplyTime", Value::Object(t)) => apply_time(t)?,
            ("Attributes" | "@Redfish.SettingsApplyTime", other) => {
                return Err(type_error(&other.to_string(), k, &format!("#/{k}")));
            }
            _ => {
                return Err(bad(
                    "PropertyNotWritable",
                    format!("The property {k} is a read only property and cannot be assigned a value; only Attributes is writable."),
                )
                .args([k.as_str()])
                .related(format!("#/{k}")));
            }
        }
    }
    if !changed {
        return Err(bad(
            "NoOperation",
            "The request body submitted contain no data to act upon and no changes to the resource took place.".into(),
        ));
    }
    Ok(next)
}

fn checked(name: &str, value: &Value) -> Result<String, ApiError> {
    let pointer = format!("#/Attributes/{name}");
    let Some(attr) = ATTRIBUTES.iter().find(|a| a.name == name) else {
        return Err(unknown_property(name, &pointer));
    };
    let Value::String(text) = value else {
        return Err(type_error(&value.to_string(), name, &pointer));
    };
    if !attr.values.contains(&text.as_str()) {
        return Err(value_not_in_list(text, name, &pointer, attr.values));
    }
    Ok(text.clone())
}

fn apply_time(t: &Map<String, Value>) -> Result<(), ApiError> {
    const POINTER: &str = "#/@Redfish.SettingsApplyTime/ApplyTime";
    for (k, v) in t {
        match (k.as_str(), v) {
            ("@odata.type", _) => {}
            ("ApplyTime", Value::String(s)) if s == ON_RESET => {}
            ("ApplyTime", Value::String(s)) => {
                return Err(value_not_in_list(s, "ApplyTime", POINTER, &[ON_RESET]));
            }
            ("ApplyTime", v) => return Err(type_error(&v.to_string(), k, POINTER)),
            _ => {
                return Err(unknown_property(
                    k,
                    &format!("#/@Redfish.SettingsApplyTime/{k}"),
                ));
            }
        }
    }
    Ok(())
}

fn unknown_property(name: &str, pointer: &str) -> ApiError {
    bad(
        "PropertyUnknown",
        format!("The property {name} is not in the list of valid properties for the resource."),
    )
    .args([name])
    .related(pointer)
}

#[cfg(test)]
mod tests;
