//! The metal3 `BareMetalHost` (`metal3.io/v1alpha1`) fields vinod writes, and the rules BMO's
//! admission webhook enforces on them.

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::FieldError;

/// The part of a BareMetalHost's spec that vinod owns.
#[derive(CustomResource, JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[kube(
    group = "metal3.io",
    version = "v1alpha1",
    kind = "BareMetalHost",
    plural = "baremetalhosts",
    shortname = "bmh",
    namespaced
)]
#[serde(rename_all = "camelCase")]
pub struct BareMetalHostSpec {
    /// How to reach the host's BMC.
    pub bmc: BmcDetails,
    /// MAC of the NIC that PXE-boots. Immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[serde(rename = "bootMACAddress")]
    pub boot_mac_address: Option<String>,
    /// `UEFI`, `UEFISecureBoot` or `legacy`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_mode: Option<String>,
    /// Desired power state.
    #[serde(default)]
    pub online: bool,
    /// Which disk to install on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_device_hints: Option<RootDeviceHints>,
    /// Secret with the host's network data (key `networkData`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_data: Option<SecretReference>,
    /// Free-form description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `metadata` (Ironic cleans the disks before and after each use) or `disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub automated_cleaning_mode: Option<String>,
}

/// The annotation that turns BMO's inspection of a host off (`disabled`).
pub const INSPECT_ANNOTATION: &str = "inspect.metal3.io";

/// BMC address and credentials.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BmcDetails {
    /// e.g. `redfish+https://10.0.0.2:8000/redfish/v1/Systems/<id>`.
    pub address: String,
    /// Secret in the host's namespace with keys `username` and `password`.
    pub credentials_name: String,
    /// Skip TLS verification of the BMC (vinod's self-signed certificate).
    #[serde(default)]
    pub disable_certificate_verification: bool,
}

/// Root disk selection.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RootDeviceHints {
    /// Device path under `/dev/`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_name: Option<String>,
}

/// A Secret by name and namespace.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
pub struct SecretReference {
    /// Secret name.
    pub name: String,
    /// Secret namespace; BMO requires the host's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Checks `host` (and, on update, the change from `old`) against BMO's webhook rules for the
/// fields vinod writes.
pub fn webhook_check(host: &BareMetalHost, old: Option<&BareMetalHost>) -> Vec<FieldError> {
    let mut errors = Vec::new();
    let name = host.metadata.name.as_deref().unwrap_or("");
    let ns = host.metadata.namespace.as_deref();
    if name.is_empty()
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        errors.push(FieldError::new(
            "metadata.name",
            format!("{name:?} must be non-empty [A-Za-z0-9._-]"),
        ));
    }
    if is_uuid(name) {
        errors.push(FieldError::new(
            "metadata.name",
            format!("{name:?} must not be a UUID"),
        ));
    }
    if let Some(mac) = &host.spec.boot_mac_address
        && mac.parse::<crate::value::syntax::Mac>().is_err()
    {
        errors.push(FieldError::new(
            "spec.bootMACAddress",
            format!("{mac:?} does not match xx:xx:xx:xx:xx:xx"),
        ));
    }
    if let Some(oldmac) = old.and_then(|o| o.spec.boot_mac_address.as_deref())
        && !oldmac.is_empty()
        && host.spec.boot_mac_address.as_deref() != Some(oldmac)
    {
        errors.push(FieldError::new(
            "spec.bootMACAddress",
            "bootMACAddress can not be changed once it is set",
        ));
    }
    if let Some(r) = &host.spec.network_data
        && r.namespace.is_some()
        && r.namespace.as_deref() != ns
    {
        errors.push(FieldError::new(
            "spec.networkData.namespace",
            "must be the host's own namespace",
        ));
    }
    if let Some(dev) = host
        .spec
        .root_device_hints
        .as_ref()
        .and_then(|h| h.device_name.as_deref())
        && !dev.starts_with("/dev/")
    {
        errors.push(FieldError::new(
            "spec.rootDeviceHints.deviceName",
            format!("{dev:?} must be under /dev/"),
        ));
    }
    if let Some(mode) = &host.spec.boot_mode
        && !matches!(mode.as_str(), "UEFI" | "UEFISecureBoot" | "legacy")
    {
        errors.push(FieldError::new(
            "spec.bootMode",
            format!("{mode:?} is not UEFI, UEFISecureBoot or legacy"),
        ));
    }
    if let Some(mode) = &host.spec.automated_cleaning_mode
        && !matches!(mode.as_str(), "metadata" | "disabled")
    {
        errors.push(FieldError::new(
            "spec.automatedCleaningMode",
            format!("{mode:?} is not metadata or disabled"),
        ));
    }
    let addr = &host.spec.bmc.address;
    let known = [
        "redfish://",
        "redfish+http://",
        "redfish+https://",
        "redfish-virtualmedia://",
        "redfish-virtualmedia+http://",
        "redfish-virtualmedia+https://",
    ];
    if !known.iter().any(|p| addr.starts_with(p)) {
        errors.push(FieldError::new(
            "spec.bmc.address",
            format!("{addr:?} is not a Redfish BMC address"),
        ));
    }
    errors
}

fn is_uuid(s: &str) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == 5
        && groups
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, mac: &str) -> BareMetalHost {
        let mut h = BareMetalHost::new(
            name,
            BareMetalHostSpec {
                bmc: BmcDetails {
                    address: "redfish+https://10.0.0.2:8000/redfish/v1/Systems/x".into(),
                    credentials_name: "c".into(),
                    disable_certificate_verification: true,
                },
                boot_mac_address: Some(mac.into()),
                ..Default::default()
            },
        );
        h.metadata.namespace = Some("ns".into());
        h
    }

    #[test]
    fn accepts_good_and_rejects_webhook_violations() {
        assert!(webhook_check(&host("ns-v-node1-worker-0", "52:54:00:00:00:01"), None).is_empty());
        assert_eq!(
            webhook_check(
                &host("0b1c7a2e-3f4d-4e5f-8a9b-0c1d2e3f4a5b", "52:54:00:00:00:01"),
                None
            )[0]
            .field,
            "metadata.name"
        );
        assert_eq!(
            webhook_check(&host("x", "52:54:00:00:00"), None)[0].field,
            "spec.bootMACAddress"
        );
        let old = host("x", "52:54:00:00:00:01");
        let errs = webhook_check(&host("x", "52:54:00:00:00:02"), Some(&old));
        assert!(errs.iter().any(|e| e.reason.contains("can not be changed")));
        let mut cross = host("x", "52:54:00:00:00:01");
        cross.spec.network_data = Some(SecretReference {
            name: "n".into(),
            namespace: Some("other".into()),
        });
        assert_eq!(
            webhook_check(&cross, None)[0].field,
            "spec.networkData.namespace"
        );
    }
}
