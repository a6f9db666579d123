//! Publication of the VMs' `HardwareData` (metal3.io), named after their BareMetalHosts. Each
//! is owned by its BareMetalHost (a controller owner reference, as BMO's own), so it goes with
//! the host through garbage collection and vinod never deletes one. Written only once its
//! host exists and only when its content differs from what is stored: one LIST per Vino and
//! pass otherwise. A cluster without metal3's HardwareData CRD gets none (BMO then simply has
//! no hardware details).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use tracing::debug;

use super::{KubeError, field_manager, is_status};
use crate::api::bmh::BareMetalHost;
use crate::api::hardware_data::HardwareData;
use crate::plan::{VinoPlan, ownership};

/// Writes `plan`'s HardwareData whose BareMetalHost exists and whose stored content differs;
/// returns how many were written.
pub async fn publish(client: &Client, plan: &VinoPlan) -> Result<usize, KubeError> {
    if plan.hardware.is_empty() {
        return Ok(0);
    }
    let ns = plan.owner.namespace.as_str();
    let selector = ownership(&plan.owner, &plan.node)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let api: Api<HardwareData> = Api::namespaced(client.clone(), ns);
    let live: BTreeMap<String, HardwareData> =
        match api.list(&ListParams::default().labels(&selector)).await {
            Ok(list) => list.items.into_iter().map(|h| (h.name_any(), h)).collect(),
            Err(e) if is_status(&e, 404) => {
                debug!(
                    namespace = ns,
                    "no HardwareData resource: hardware details not published"
                );
                return Ok(0);
            }
            Err(e) => return Err(KubeError::api(format!("list HardwareData in {ns}"), e)),
        };
    let hosts: Api<BareMetalHost> = Api::namespaced(client.clone(), ns);
    let params = PatchParams::apply(&field_manager(&plan.node)).force();
    let mut written = 0;
    for hd in &plan.hardware {
        let name = hd.name_any();
        if live
            .get(&name)
            .is_some_and(|l| l.spec == hd.spec && !l.owner_references().is_empty())
        {
            continue;
        }
        let host = hosts
            .get_opt(&name)
            .await
            .map_err(|e| KubeError::api(format!("read BareMetalHost {ns}/{name}"), e))?;
        let Some(owner) = host
            .filter(|h| h.metadata.deletion_timestamp.is_none())
            .and_then(|h| owned_by(&h))
        else {
            continue;
        };
        let mut body = hd.clone();
        body.metadata.owner_references = Some(vec![owner]);
        api.patch(&name, &params, &Patch::Apply(&body))
            .await
            .map_err(|e| KubeError::api(format!("apply HardwareData {ns}/{name}"), e))?;
        written += 1;
    }
    Ok(written)
}

/// The controller owner reference to `host`, once it has a UID.
fn owned_by(host: &BareMetalHost) -> Option<OwnerReference> {
    Some(OwnerReference {
        api_version: "metal3.io/v1alpha1".into(),
        kind: "BareMetalHost".into(),
        name: host.name_any(),
        uid: host.metadata.uid.clone()?,
        controller: Some(true),
        block_owner_deletion: Some(false),
    })
}
