//! The Kubernetes objects published for each VM: its BareMetalHost and the credentials and
//! network-data Secrets the BareMetalHost references.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};

use crate::api::bmh::{
    BareMetalHost, BareMetalHostSpec, BmcDetails, INSPECT_ANNOTATION, RootDeviceHints,
    SecretReference,
};

/// BMC user name and password.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Inputs of one VM's objects.
#[derive(Clone, Debug, PartialEq)]
pub struct VmObjects {
    /// BareMetalHost name.
    pub bmh: String,
    /// Credentials Secret name (one Secret serves every VM of the Vino on this host).
    pub credentials_secret: String,
    /// Network-data Secret name.
    pub network_data_secret: String,
    /// Namespace of all three (the Vino's).
    pub namespace: String,
    /// Labels of the BareMetalHost.
    pub labels: BTreeMap<String, String>,
    /// Labels of the Secrets (vinod's ownership labels only).
    pub secret_labels: BTreeMap<String, String>,
    /// `bmc.address`.
    pub bmc_address: String,
    /// Whether Ironic should skip verifying the BMC's certificate.
    pub disable_certificate_verification: bool,
    /// `bootMACAddress`.
    pub boot_mac: String,
    /// `rootDeviceHints.deviceName`.
    pub root_device: String,
    /// `bootMode`: `legacy` or `UEFI`, as the domain's firmware.
    pub boot_mode: &'static str,
    /// Whether BMO is told not to inspect the host.
    pub inspection_disabled: bool,
    /// `automatedCleaningMode`.
    pub automated_cleaning_mode: &'static str,
    /// BMC credentials.
    pub credentials: Credentials,
    /// network_data.json text.
    pub network_data: String,
    /// Reference to the owning Vino, when its UID is known.
    pub owner: Option<OwnerReference>,
}

/// The BareMetalHost of a VM.
pub fn bare_metal_host(v: &VmObjects) -> BareMetalHost {
    let mut host = BareMetalHost::new(
        &v.bmh,
        BareMetalHostSpec {
            bmc: BmcDetails {
                address: v.bmc_address.clone(),
                credentials_name: v.credentials_secret.clone(),
                disable_certificate_verification: v.disable_certificate_verification,
            },
            boot_mac_address: Some(v.boot_mac.clone()),
            // What the domain's firmware is; BMO would otherwise assume UEFI.
            boot_mode: Some(v.boot_mode.into()),
            online: false,
            root_device_hints: Some(RootDeviceHints {
                device_name: Some(v.root_device.clone()),
            }),
            network_data: Some(SecretReference {
                name: v.network_data_secret.clone(),
                namespace: Some(v.namespace.clone()),
            }),
            description: None,
            automated_cleaning_mode: Some(v.automated_cleaning_mode.into()),
        },
    );
    host.metadata = meta(&v.bmh, v, &v.labels);
    if v.inspection_disabled {
        host.metadata.annotations = Some(BTreeMap::from([(
            INSPECT_ANNOTATION.to_string(),
            "disabled".to_string(),
        )]));
    }
    host
}

/// The credentials Secret (keys `username`, `password`), which VMs of one Vino on one host
/// may share ([`VmObjects::credentials_secret`]).
pub fn credentials_secret(v: &VmObjects) -> Secret {
    Secret {
        metadata: meta(&v.credentials_secret, v, &v.secret_labels),
        type_: Some("Opaque".into()),
        string_data: Some(BTreeMap::from([
            ("username".to_string(), v.credentials.username.clone()),
            ("password".to_string(), v.credentials.password.clone()),
        ])),
        ..Default::default()
    }
}

/// The VM's own network-data Secret (key `networkData`).
pub fn network_data_secret(v: &VmObjects) -> Secret {
    Secret {
        metadata: meta(&v.network_data_secret, v, &v.secret_labels),
        type_: Some("Opaque".into()),
        string_data: Some(BTreeMap::from([(
            "networkData".to_string(),
            v.network_data.clone(),
        )])),
        ..Default::default()
    }
}

fn meta(name: &str, v: &VmObjects, labels: &BTreeMap<String, String>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(v.namespace.clone()),
        labels: Some(labels.clone()),
        owner_references: v.owner.clone().map(|o| vec![o]),
        ..Default::default()
    }
}
