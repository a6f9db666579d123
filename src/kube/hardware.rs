//! Publication of the VMs' `HardwareData` (metal3.io), named after their BareMetalHosts. Each
//! is owned by its BareMetalHost (a controller owner reference, as BMO's own), so it goes with
//! the host through garbage collection and vinod never deletes one. Written only once its
//! host exists and only when its content differs from what is stored; a pass whose
//! HardwareData this host already wrote or saw costs no request. A cluster without metal3's HardwareData CRD gets none (BMO then simply has
//! no hardware details).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::{Client, ResourceExt};
use tracing::debug;

use super::{KubeError, field_manager, is_status};
use crate::api::bmh::BareMetalHost;
use crate::api::hardware_data::{HardwareData, HardwareDataSpec};
use crate::plan::{VinoPlan, ownership};

/// What this host knows to be stored: each HardwareData's spec by (namespace, name), as
/// written or listed. A plan whose HardwareData all match costs no request.
#[derive(Debug, Default)]
pub struct Stored(BTreeMap<(String, String), HardwareDataSpec>);

impl Stored {
    fn matches(&self, ns: &str, hd: &HardwareData) -> bool {
        self.0.get(&(ns.to_string(), hd.name_any())) == Some(&hd.spec)
    }

    fn record(&mut self, ns: &str, hd: &HardwareData) {
        self.0
            .insert((ns.to_string(), hd.name_any()), hd.spec.clone());
    }

    /// Forgets the HardwareData of BareMetalHosts `hosts` of `ns`, just (re)created: theirs
    /// went with the old host or was never written.
    pub fn forget<'a>(&mut self, ns: &str, hosts: impl IntoIterator<Item = &'a String>) {
        for h in hosts {
            self.0.remove(&(ns.to_string(), h.clone()));
        }
    }
}

/// Writes `plan`'s HardwareData whose BareMetalHost exists and whose stored content differs;
/// returns how many were written. `stored` spares the LIST when nothing changed.
pub async fn publish(
    client: &Client,
    plan: &VinoPlan,
    stored: &mut Stored,
) -> Result<usize, KubeError> {
    let ns = plan.owner.namespace.as_str();
    if plan.hardware.iter().all(|hd| stored.matches(ns, hd)) {
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
    let hosts: Api<BareMetalHost> = Api::namespaced(client.clone(), ns);
    let params = PatchParams::apply(&field_manager(&plan.node)).force();
    let mut written = 0;
    for hd in &plan.hardware {
        let name = hd.name_any();
        if live
            .get(&name)
            .is_some_and(|l| l.spec == hd.spec && !l.owner_references().is_empty())
        {
            stored.record(ns, hd);
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
        stored.record(ns, hd);
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
