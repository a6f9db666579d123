//! The `SecureBoot` resource of a System: `SecureBootEnable` (asked for the next boot through
//! the BMC, PATCHable), `SecureBootCurrentBoot` (what the running firmware enforces) and
//! `SecureBootMode`. Pure.
//!
//! Secure boot is UEFI firmware with secure boot and enrolled keys (OVMF's build with
//! Microsoft's keys in its variable template); it needs UEFI and the q35 machine type.

use axum::http::StatusCode;
use serde_json::{Value, json};

use super::action::{bad, object, type_error};
use super::error::ApiError;
use crate::host::machine::Machine;

/// The only writable property.
const ENABLE: &str = "SecureBootEnable";

/// The `SecureBoot` resource of `m`; `enforced_now` is whether the firmware it runs now
/// enforces secure boot.
pub fn resource(m: &Machine, enforced_now: bool) -> Value {
    let on_off = |b: bool| if b { "Enabled" } else { "Disabled" };
    json!({
        "@odata.type": "#SecureBoot.v1_1_0.SecureBoot",
        "@odata.id": format!("/redfish/v1/Systems/{}/SecureBoot", m.name),
        "Id": "SecureBoot",
        "Name": "UEFI Secure Boot",
        "Description": format!("Secure boot of {}; a change takes effect at the next boot", m.name),
        ENABLE: m.secure_boot,
        "SecureBootCurrentBoot": on_off(enforced_now),
        // The enrolled-keys template holds a platform key; the others hold none.
        "SecureBootMode": if m.secure_boot { "UserMode" } else { "SetupMode" },
    })
}

/// A PATCH of the resource: `{"SecureBootEnable": bool}`, checked against what `m` supports.
/// Returns the value asked for.
pub fn patch(body: &[u8], m: &Machine) -> Result<bool, ApiError> {
    let fields = object(body, false)?;
    let mut enable = None;
    for (k, v) in &fields {
        match (k.as_str(), v) {
            (ENABLE, Value::Bool(b)) => enable = Some(*b),
            (ENABLE, other) => {
                return Err(type_error(&other.to_string(), ENABLE, "#/SecureBootEnable"));
            }
            _ => {
                return Err(bad(
                    "PropertyNotWritable",
                    format!("The property {k} is a read only property and cannot be assigned a value; only SecureBootEnable is writable."),
                )
                .args([k.as_str()])
                .related(format!("#/{k}")));
            }
        }
    }
    let Some(enable) = enable else {
        return Err(bad(
            "NoOperation",
            "The request body submitted contain no data to act upon and no changes to the resource took place.".into(),
        ));
    };
    if enable && let Some(why) = m.secure_boot_unsupported() {
        let e = if m.boot.mode == crate::host::machine::BootMode::Uefi {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "GeneralError",
                format!("Secure boot cannot be enabled: {why}."),
            )
        } else {
            bad(
                "PropertyValueConflict",
                format!("The property SecureBootEnable could not be written because its value would conflict with the value of the BootSourceOverrideMode property: {why}."),
            )
            .args([ENABLE, "BootSourceOverrideMode"])
        };
        return Err(e.related("#/SecureBootEnable"));
    }
    Ok(enable)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::machine::BootMode;

    fn machine(mode: BootMode, machine_type: &str) -> Machine {
        let mut m = Machine::sample();
        m.boot.mode = mode;
        m.machine_type = machine_type.into();
        m
    }

    #[test]
    fn enabling_needs_uefi_on_q35() {
        let body = br#"{"SecureBootEnable": true}"#;
        let uefi = machine(BootMode::Uefi, "pc-q35-7.2");
        assert_eq!(patch(body, &uefi), Ok(true));
        let legacy = machine(BootMode::Legacy, "pc-q35-7.2");
        let e = patch(body, &legacy).unwrap_err();
        assert_eq!(
            (e.status, e.id),
            (StatusCode::BAD_REQUEST, "PropertyValueConflict")
        );
        assert!(e.message.contains("needs UEFI"), "{}", e.message);
        let pc = machine(BootMode::Uefi, "pc-i440fx-7.2");
        let e = patch(body, &pc).unwrap_err();
        assert!(e.message.contains("q35"), "{}", e.message);
        // Disabling what is off is no conflict.
        assert_eq!(patch(br#"{"SecureBootEnable": false}"#, &legacy), Ok(false));
    }

    #[test]
    fn only_the_switch_is_writable() {
        let m = machine(BootMode::Uefi, "q35");
        let id = |b: &[u8]| patch(b, &m).unwrap_err().id;
        assert_eq!(
            id(br#"{"SecureBootEnable": "yes"}"#),
            "PropertyValueTypeError"
        );
        assert_eq!(
            id(br#"{"SecureBootMode": "UserMode"}"#),
            "PropertyNotWritable"
        );
        assert_eq!(id(b"{}"), "NoOperation");
        assert_eq!(id(b"[]"), "MalformedJSON");
    }

    #[test]
    fn resource_reports_the_next_and_the_current_boot() {
        let mut m = machine(BootMode::Uefi, "q35");
        m.secure_boot = true;
        let r = resource(&m, false);
        assert_eq!(r["SecureBootEnable"], true);
        assert_eq!(r["SecureBootCurrentBoot"], "Disabled");
        assert_eq!(r["SecureBootMode"], "UserMode");
        assert_eq!(resource(&m, true)["SecureBootCurrentBoot"], "Enabled");
    }
}
