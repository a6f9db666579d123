//! Request bodies as plain action values. Pure: no I/O, every rejection is a Redfish
//! [`ApiError`] naming the property.

use axum::http::StatusCode;
use serde_json::{Map, Value};

use super::error::ApiError;
use crate::host::machine::{BootEnabled, BootMode, BootOverride, BootTarget, PowerAction};

/// The body as a JSON object. An empty body is an empty object when `empty_ok`.
pub fn object(body: &[u8], empty_ok: bool) -> Result<Map<String, Value>, ApiError> {
    if empty_ok && body.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::malformed_json("the body must be a JSON object")),
        Err(e) => Err(ApiError::malformed_json(e)),
    }
}

pub(super) fn bad(id: &'static str, message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, id, message)
}

fn unknown_parameters(
    action: &str,
    m: &Map<String, Value>,
    known: &[&str],
) -> Result<(), ApiError> {
    match m.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(bad(
            "ActionParameterUnknown",
            format!("The action {action} was submitted with the invalid parameter {k}."),
        )
        .args([action, k.as_str()])
        .related(format!("#/{k}"))),
        None => Ok(()),
    }
}

fn string_parameter<'a>(
    action: &str,
    m: &'a Map<String, Value>,
    name: &str,
) -> Result<Option<&'a str>, ApiError> {
    match m.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(bad(
            "ActionParameterValueTypeError",
            format!("The value {v} for the parameter {name} in the action {action} is of a different type than the parameter can accept."),
        )
        .args([v.to_string(), name.to_string(), action.to_string()])
        .related(format!("#/{name}"))),
    }
}

fn not_in_list(action: &str, name: &str, value: &str, allowed: &[&str]) -> ApiError {
    bad(
        "ActionParameterValueNotInList",
        format!(
            "The value {value} for the parameter {name} in the action {action} is not in the list of acceptable values. Allowed values: {}.",
            allowed.join(", ")
        ),
    )
    .args([value, name, action])
    .related(format!("#/{name}"))
}

/// `ComputerSystem.Reset`: `{"ResetType": …}`.
pub fn reset(body: &[u8]) -> Result<PowerAction, ApiError> {
    const ACTION: &str = "ComputerSystem.Reset";
    let m = object(body, false)?;
    unknown_parameters(ACTION, &m, &["ResetType"])?;
    let Some(value) = string_parameter(ACTION, &m, "ResetType")? else {
        return Err(bad(
            "ActionParameterMissing",
            format!("The action {ACTION} requires the parameter ResetType to be present in the request body."),
        )
        .args([ACTION, "ResetType"])
        .related("#/ResetType"));
    };
    PowerAction::parse(value).ok_or_else(|| {
        let allowed: Vec<&str> = PowerAction::ALL.iter().map(|a| a.as_str()).collect();
        not_in_list(ACTION, "ResetType", value, &allowed)
    })
}

/// PATCH of a System: only `Boot` with `BootSourceOverrideTarget`, `…Enabled` and `…Mode` is
/// writable. Setting a target while the override is `Disabled` makes it `Once`, as BMCs do.
pub fn boot_patch(body: &[u8], current: BootOverride) -> Result<BootOverride, ApiError> {
    let m = object(body, false)?;
    if m.is_empty() {
        return Err(bad(
            "NoOperation",
            "The request body submitted contain no data to act upon and no changes to the resource took place.".into(),
        ));
    }
    let mut next = current;
    let mut target_set = false;
    let mut enabled_set = false;
    for (k, v) in &m {
        if k != "Boot" {
            return Err(property_not_writable(k, &format!("#/{k}")));
        }
        let Value::Object(boot) = v else {
            return Err(type_error(&v.to_string(), "Boot", "#/Boot"));
        };
        for (name, value) in boot {
            let pointer = format!("#/Boot/{name}");
            let text = || match value {
                Value::String(s) => Ok(s.as_str()),
                other => Err(type_error(&other.to_string(), name, &pointer)),
            };
            match name.as_str() {
                "BootSourceOverrideTarget" => {
                    let s = text()?;
                    next.target = BootTarget::parse(s).ok_or_else(|| {
                        value_not_in_list(s, name, &pointer, &BootTarget::ALL.map(|t| t.as_str()))
                    })?;
                    target_set = true;
                }
                "BootSourceOverrideEnabled" => {
                    let s = text()?;
                    next.enabled = BootEnabled::parse(s).ok_or_else(|| {
                        value_not_in_list(s, name, &pointer, &BootEnabled::ALL.map(|e| e.as_str()))
                    })?;
                    enabled_set = true;
                }
                "BootSourceOverrideMode" => {
                    let s = text()?;
                    next.mode = BootMode::parse(s).ok_or_else(|| {
                        value_not_in_list(s, name, &pointer, &BootMode::ALL.map(|m| m.as_str()))
                    })?;
                }
                _ => return Err(property_not_writable(name, &pointer)),
            }
        }
    }
    if target_set
        && !enabled_set
        && next.enabled == BootEnabled::Disabled
        && next.target != BootTarget::None
    {
        next.enabled = BootEnabled::Once;
    }
    Ok(next)
}

fn property_not_writable(name: &str, pointer: &str) -> ApiError {
    bad(
        "PropertyNotWritable",
        format!("The property {name} is a read only property and cannot be assigned a value; only Boot/BootSourceOverrideTarget, Boot/BootSourceOverrideEnabled and Boot/BootSourceOverrideMode are writable."),
    )
    .args([name])
    .related(pointer)
}

pub(super) fn type_error(value: &str, name: &str, pointer: &str) -> ApiError {
    bad(
        "PropertyValueTypeError",
        format!("The value {value} for the property {name} is of a different type than the property can accept."),
    )
    .args([value, name])
    .related(pointer)
}

pub(super) fn value_not_in_list(
    value: &str,
    name: &str,
    pointer: &str,
    allowed: &[&str],
) -> ApiError {
    bad(
        "PropertyValueNotInList",
        format!(
            "The value {value} for the property {name} is not in the list of acceptable values. Allowed values: {}.",
            allowed.join(", ")
        ),
    )
    .args([value, name])
    .related(pointer)
}

/// `VirtualMedia.InsertMedia` parameters vinod acts on.
#[derive(Clone, PartialEq, Eq)]
pub struct InsertMedia {
    /// Image URL (`http` or `https`).
    pub image: String,
    /// Credentials for fetching it.
    pub auth: Option<(String, String)>,
}

impl std::fmt::Debug for InsertMedia {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InsertMedia")
            .field("image", &super::media::without_query(&self.image))
            .field("user", &self.auth.as_ref().map(|(u, _)| u))
            .finish()
    }
}

/// `VirtualMedia.InsertMedia`: `Image` (http/https URL), optional `Inserted` and
/// `WriteProtected` (only `true`), `TransferProtocolType` (`HTTP`/`HTTPS`), `TransferMethod`
/// (`Stream`/`Upload`; vinod always downloads), `UserName` and `Password`.
pub fn insert_media(body: &[u8]) -> Result<InsertMedia, ApiError> {
    const ACTION: &str = "VirtualMedia.InsertMedia";
    let m = object(body, false)?;
    unknown_parameters(
        ACTION,
        &m,
        &[
            "Image",
            "Inserted",
            "WriteProtected",
            "TransferProtocolType",
            "TransferMethod",
            "UserName",
            "Password",
        ],
    )?;
    for flag in ["Inserted", "WriteProtected"] {
        match m.get(flag) {
            None | Some(Value::Bool(true)) => {}
            Some(Value::Bool(false)) => return Err(not_in_list(ACTION, flag, "false", &["true"])),
            Some(v) => {
                return Err(bad(
                    "ActionParameterValueTypeError",
                    format!("The value {v} for the parameter {flag} in the action {ACTION} is of a different type than the parameter can accept."),
                )
                .args([v.to_string(), flag.to_string(), ACTION.to_string()])
                .related(format!("#/{flag}")));
            }
        }
    }
    if let Some(p) = string_parameter(ACTION, &m, "TransferProtocolType")?
        && !matches!(p, "HTTP" | "HTTPS")
    {
        return Err(not_in_list(
            ACTION,
            "TransferProtocolType",
            p,
            &["HTTP", "HTTPS"],
        ));
    }
    if let Some(t) = string_parameter(ACTION, &m, "TransferMethod")?
        && !matches!(t, "Stream" | "Upload")
    {
        return Err(not_in_list(
            ACTION,
            "TransferMethod",
            t,
            &["Stream", "Upload"],
        ));
    }
    let Some(image) = string_parameter(ACTION, &m, "Image")? else {
        return Err(bad(
            "ActionParameterMissing",
            format!("The action {ACTION} requires the parameter Image to be present in the request body."),
        )
        .args([ACTION, "Image"])
        .related("#/Image"));
    };
    let scheme_ok = image.split_once("://").is_some_and(|(s, rest)| {
        matches!(s.to_ascii_lowercase().as_str(), "http" | "https") && !rest.is_empty()
    });
    if !scheme_ok || image.chars().any(char::is_whitespace) {
        return Err(bad(
            "ActionParameterValueFormatError",
            format!("The value {image} for the parameter Image in the action {ACTION} is of a different format than the parameter can accept: use an http:// or https:// URL."),
        )
        .args([image, "Image", ACTION])
        .related("#/Image"));
    }
    let user = string_parameter(ACTION, &m, "UserName")?;
    let password = string_parameter(ACTION, &m, "Password")?;
    Ok(InsertMedia {
        image: image.to_string(),
        auth: user.map(|u| (u.to_string(), password.unwrap_or("").to_string())),
    })
}

/// `VirtualMedia.EjectMedia`: no parameters.
pub fn eject_media(body: &[u8]) -> Result<(), ApiError> {
    no_parameters("VirtualMedia.EjectMedia", body)
}

/// An action without parameters: an empty body or an empty object.
pub fn no_parameters(action: &str, body: &[u8]) -> Result<(), ApiError> {
    let m = object(body, true)?;
    unknown_parameters(action, &m, &[])
}

/// A login: `{"UserName": …, "Password": …}`.
pub fn login(body: &[u8]) -> Result<(String, String), ApiError> {
    let m = object(body, false)?;
    let field = |name: &str| match m.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        None => Err(bad(
            "PropertyMissing",
            format!(
                "The property {name} is a required property and must be included in the request."
            ),
        )
        .args([name])
        .related(format!("#/{name}"))),
        Some(v) => Err(type_error(&v.to_string(), name, &format!("#/{name}"))),
    };
    let user = field("UserName")?;
    let password = field("Password")?;
    if let Some(k) = m
        .keys()
        .find(|k| !matches!(k.as_str(), "UserName" | "Password"))
    {
        return Err(bad(
            "PropertyUnknown",
            format!("The property {k} is not in the list of valid properties for the resource."),
        )
        .args([k.as_str()])
        .related(format!("#/{k}")));
    }
    Ok((user, password))
}

#[cfg(test)]
mod tests;
