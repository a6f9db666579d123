//! vinod's objects as the API server stores them: listed by this host's ownership labels (a
//! BareMetalHost with how metal3 uses it), deleted by UID, and which hosts use a Secret.

use std::collections::BTreeMap;

use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Preconditions};
use kube::discovery::ApiResource;
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

use super::super::{KubeError, is_status};
use crate::api::bmh::BareMetalHost;
use crate::api::host_use::HostUse;

/// Objects by name, listed with this host's ownership labels.
pub(super) async fn list<K>(api: &Api<K>, selector: &str) -> Result<BTreeMap<String, K>, KubeError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let list = api
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| KubeError::api(format!("list {} with {selector}", K::plural(&())), e))?;
    Ok(list.items.into_iter().map(|o| (o.name_any(), o)).collect())
}

/// This host's BareMetalHosts matching `selector` in `ns`, each with how metal3 uses it (its
/// status is not part of vinod's type, so the list is read raw once and both are taken
/// from it).
pub(super) async fn list_hosts(
    client: &Client,
    ns: &str,
    selector: &str,
) -> Result<(BTreeMap<String, BareMetalHost>, BTreeMap<String, HostUse>), KubeError> {
    let resource = ApiResource::erase::<BareMetalHost>(&());
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), ns, &resource);
    let list = api
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| KubeError::api(format!("list baremetalhosts with {selector}"), e))?;
    let (mut hosts, mut uses) = (BTreeMap::new(), BTreeMap::new());
    for object in list.items {
        let name = object.name_any();
        let raw = serde_json::to_value(&object).map_err(|e| KubeError::Decode {
            what: format!("BareMetalHost {ns}/{name}"),
            reason: e.to_string(),
        })?;
        uses.insert(name.clone(), HostUse::of_object(&raw));
        let host = serde_json::from_value(raw).map_err(|e| KubeError::Decode {
            what: format!("BareMetalHost {ns}/{name}"),
            reason: e.to_string(),
        })?;
        hosts.insert(name, host);
    }
    Ok((hosts, uses))
}

/// Deletes exactly `live` (by UID); `true` when it is gone, `false` while finalizers keep it.
pub(super) async fn delete<K>(api: &Api<K>, live: &K) -> Result<bool, KubeError>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug,
{
    let dp = DeleteParams::default().preconditions(Preconditions {
        uid: live.meta().uid.clone(),
        resource_version: None,
    });
    match api.delete(&live.name_any(), &dp).await {
        Ok(either) => Ok(either.is_right()),
        Err(e) if is_status(&e, 404) => Ok(true),
        Err(e) => Err(KubeError::api(
            format!("delete {} {}", K::kind(&()), live.name_any()),
            e,
        )),
    }
}

/// The stored BareMetalHosts that point at Secret `secret` (credentials or network data).
pub(super) fn users_of<'a>(
    secret: &str,
    hosts: &'a BTreeMap<String, BareMetalHost>,
) -> Vec<&'a str> {
    hosts
        .iter()
        .filter(|(_, h)| {
            h.spec.bmc.credentials_name == secret
                || h.spec
                    .network_data
                    .as_ref()
                    .is_some_and(|r| r.name == secret)
        })
        .map(|(name, _)| name.as_str())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::bmh::{BareMetalHostSpec, SecretReference};

    #[test]
    fn secrets_belong_to_the_hosts_that_point_at_them() {
        let host = |name: &str, credentials: &str| {
            let mut h = BareMetalHost::new(name, BareMetalHostSpec::default());
            h.spec.bmc.credentials_name = credentials.into();
            h.spec.network_data = Some(SecretReference {
                name: format!("{name}-network-data"),
                namespace: None,
            });
            (name.to_string(), h)
        };
        let hosts = BTreeMap::from([
            host("v-n-w-0", "v.n.credentials"),
            host("v-n-w-1", "v.n.credentials"),
            host("v-n-w-2", "v-n-w-2-credentials"),
        ]);
        assert_eq!(users_of("v.n.credentials", &hosts), ["v-n-w-0", "v-n-w-1"]);
        assert_eq!(users_of("v-n-w-2-credentials", &hosts), ["v-n-w-2"]);
        assert_eq!(users_of("v-n-w-1-network-data", &hosts), ["v-n-w-1"]);
        assert!(users_of("unrelated", &hosts).is_empty());
    }
}
