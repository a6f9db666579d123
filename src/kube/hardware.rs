//! Publication of the VMs' `HardwareData` (metal3.io), named after their BareMetalHosts. Each
//! is owned by its BareMetalHost (a controller owner reference, as BMO's own), so it goes with
//! the host through garbage collection and vinod never deletes one. Written only once its
//! host exists (its UID known from the publication's list or create) and only when its content
//! or owner differs from what is stored; a pass whose HardwareData this host already wrote or
//! saw costs no request. A cluster without metal3's HardwareData CRD gets none (BMO then simply has
//! no hardware details).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use tracing::debug;

use super::{KubeError, field_manager, is_status};
use crate::api::hardware_data::{HardwareData, HardwareDataSpec};
use crate::plan::{VinoPlan, ownership};

/// What this host knows to be stored: each HardwareData's spec and owner UID by (namespace,
/// name), as written or listed. A plan whose HardwareData all match costs no request.
#[derive(Debug, Default)]
pub struct Stored(BTreeMap<(String, String), (HardwareDataSpec, String)>);

impl Stored {
    fn matches(&self, ns: &str, hd: &HardwareData, owner: &str) -> bool {
        self.0
            .get(&(ns.to_string(), hd.name_any()))
            .is_some_and(|(spec, uid)| spec == &hd.spec && uid == owner)
    }

    fn record(&mut self, ns: &str, hd: &HardwareData, owner: &str) {
        self.0.insert(
            (ns.to_string(), hd.name_any()),
            (hd.spec.clone(), owner.to_string()),
        );
    }
}

/// Writes `plan`'s HardwareData whose BareMetalHost exists (its UID in `hosts`, by name)
/// and whose stored content or owner differs; returns how many were written. `stored` spares
/// the LIST when nothing changed.
pub async fn publish(
    client: &Client,
    plan: &VinoPlan,
    hosts: &BTreeMap<String, String>,
    stored: &mut Stored,
) -> Result<usize, KubeError> {
    let ns = plan.owner.namespace.as_str();
    // A HardwareData whose host is not stored (yet, or any more) waits for it.
    if plan.hardware.iter().all(|hd| {
        hosts
            .get(&hd.name_any())
            .is_none_or(|uid| stored.matches(ns, hd, uid))
    }) {
        return Ok(0);
    }
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
    let params = PatchParams::apply(&field_manager(&plan.node)).force();
    let mut written = 0;
    for hd in &plan.hardware {
        let name = hd.name_any();
        let Some(uid) = hosts.get(&name) else {
            continue;
        };
        let owned = |l: &HardwareData| l.owner_references().iter().any(|o| &o.uid == uid);
        if live
            .get(&name)
            .is_some_and(|l| l.spec == hd.spec && owned(l))
        {
            stored.record(ns, hd, uid);
            continue;
        }
        let mut body = hd.clone();
        body.metadata.owner_references = Some(vec![owned_by(&name, uid)]);
        api.patch(&name, &params, &Patch::Apply(&body))
            .await
            .map_err(|e| KubeError::api(format!("apply HardwareData {ns}/{name}"), e))?;
        stored.record(ns, hd, uid);
        written += 1;
    }
    Ok(written)
}

/// The controller owner reference to BareMetalHost `name` with UID `uid`.
fn owned_by(name: &str, uid: &str) -> OwnerReference {
    OwnerReference {
        api_version: "metal3.io/v1alpha1".into(),
        kind: "BareMetalHost".into(),
        name: name.to_string(),
        uid: uid.to_string(),
        controller: Some(true),
        block_owner_deletion: Some(false),
    }
}
