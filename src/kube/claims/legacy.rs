//! Claims of earlier versions: one namespaced `VinoIPClaim` per network of a Vino, holding
//! every host's entry. A host that holds no `VinoPoolClaim` on a network yet reads its entry
//! there once and claims the same block and addresses as units, keeping their MACs (the pool's
//! MAC of each address, as before), so running VMs keep their addresses and boot MACs. The old
//! objects are never written again; they go with their Vino (owner reference).

use std::collections::BTreeMap;

use kube::Client;
use kube::api::Api;

use crate::api::claim::VinoIPClaim;
use crate::api::pool_claim::ClaimVino;
use crate::ipam::HostClaims;
use crate::kube::KubeError;
use crate::plan::names::bounded;

/// Name of the earlier claim object of `network` of Vino `vino`: `<vino>.<network>`.
pub fn object_name(vino: &str, network: &str) -> String {
    bounded(&format!("{vino}.{network}"), 253)
}

/// `host`'s entries of the earlier claim objects of `networks`, by network. A missing object,
/// one of an earlier Vino with the same name, or a cluster without the old CRD gives nothing.
pub(super) async fn seed(
    client: &Client,
    vino: &ClaimVino,
    host: &str,
    networks: &[&String],
) -> Result<BTreeMap<String, HostClaims>, KubeError> {
    let api: Api<VinoIPClaim> = Api::namespaced(client.clone(), &vino.namespace);
    let mut out = BTreeMap::new();
    for net in networks {
        let name = object_name(&vino.name, net);
        let found = match api.get_opt(&name).await {
            Ok(found) => found,
            // The old CRD is not installed: nothing to carry over.
            Err(e) if crate::kube::is_status(&e, 404) => None,
            Err(e) => {
                return Err(KubeError::api(
                    format!("read earlier IP claims {}/{name}", vino.namespace),
                    e,
                ));
            }
        };
        let entry = found
            .filter(|o| o.spec.vino_uid == vino.uid)
            .and_then(|mut o| o.spec.hosts.remove(host));
        if let Some(mut c) = entry {
            c.macs.clear();
            out.insert((*net).clone(), c);
        }
    }
    Ok(out)
}
