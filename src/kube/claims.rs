//! IP claims in the cluster: one `VinoIPClaim` per network of a Vino, holding every host's DHCP
//! block and static addresses (`spec.hosts`, keyed by host name).
//!
//! A host reserves with a read-modify-write: it lists the Vino's claim objects, computes its own
//! claims from everyone's with [`crate::ipam::allocate`] (usually through the planner), and writes
//! each changed object with the `resourceVersion` of that same list. If any other host wrote in
//! between, the write fails with 409 Conflict and the whole round starts again from a fresh read
//! (at most [`MAX_ATTEMPTS`] rounds). Two hosts therefore never hold the same block or address.
//! A host's existing claims are kept, so a restart (or a round repeated after a conflict)
//! returns the same claims and writes nothing. A host releases its entries when it leaves the
//! Vino; the last host out deletes the emptied objects. The objects are owned by the Vino, so
//! the garbage collector removes them with it as well.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{Api, DeleteParams, ListParams, PostParams, Preconditions};
use kube::{Client, Resource};
use tracing::{debug, info};

use super::{KubeError, MAX_ATTEMPTS, backoff, is_status};
use crate::api::Vino;
use crate::api::claim::{VinoIPClaim, VinoIPClaimSpec};
use crate::api::validate::LABEL_PREFIX;
use crate::ipam::{HostClaims, NetworkClaims};
use crate::plan::names::{bounded, label_value};

/// Errors of [`reserve`]: the caller's planning error, or the cluster's.
#[derive(Debug, thiserror::Error)]
pub enum ReserveError<E> {
    /// The caller could not compute its claims (e.g. the network is exhausted).
    #[error(transparent)]
    Plan(E),
    /// Reading or writing the claims failed.
    #[error(transparent)]
    Kube(#[from] KubeError),
}

/// Name of the claim object of `network` of Vino `vino`: `<vino>.<network>` (bounded to 253).
pub fn object_name(vino: &str, network: &str) -> String {
    bounded(&format!("{vino}.{network}"), 253)
}

/// Every host's claims on every network of `vino`, by network name, as stored now.
pub async fn read(
    client: &Client,
    vino: &Vino,
) -> Result<BTreeMap<String, NetworkClaims>, KubeError> {
    let id = Identity::of(vino)?;
    let objects = id.list(client).await?;
    Ok(objects
        .into_iter()
        .filter(|o| o.spec.vino_uid == id.uid)
        .map(|o| (o.spec.network, o.spec.hosts))
        .collect())
}

/// Reserves `host`'s claims on `vino`'s networks and returns what `plan` made of them.
///
/// `plan` gets every host's current claims by network (this host's included) and returns its
/// result together with this host's claims by network, e.g.
/// `|all| plan::plan(PlanInput { claims: all, .. }).map(|p| (p.claims.clone(), p))`. Networks
/// missing from those claims are released. `plan` may run several times (once per round);
/// its error ends the reservation at once.
pub async fn reserve<T, E, F>(
    client: &Client,
    vino: &Vino,
    host: &str,
    mut plan: F,
) -> Result<T, ReserveError<E>>
where
    F: FnMut(&BTreeMap<String, NetworkClaims>) -> Result<(BTreeMap<String, HostClaims>, T), E>,
{
    let id = Identity::of(vino)?;
    let api = id.api(client);
    for attempt in 0..MAX_ATTEMPTS {
        let objects = id.list(client).await?;
        let mut current = BTreeMap::new();
        let mut stale = false;
        for o in objects {
            if o.spec.vino_uid == id.uid {
                current.insert(o.spec.network.clone(), o);
            } else {
                id.remove_stale(&api, &o, host).await?;
                stale = true;
            }
        }
        if stale {
            continue;
        }
        let all = current
            .iter()
            .map(|(net, o)| (net.clone(), o.spec.hosts.clone()))
            .collect();
        let (mine, value) = plan(&all).map_err(ReserveError::Plan)?;
        let mut conflicted = false;
        for (network, claims) in &mine {
            let result = match current.get(network) {
                Some(o) if o.spec.hosts.get(host) == Some(claims) => Ok(()),
                Some(o) => {
                    let mut o = o.clone();
                    o.spec.hosts.insert(host.to_string(), claims.clone());
                    replace(&api, &o).await
                }
                None => id.create(&api, network, host, claims).await,
            };
            conflicted |= written(result, &id, network)?;
        }
        for (network, o) in &current {
            if !mine.contains_key(network) && o.spec.hosts.contains_key(host) {
                conflicted |= written(drop_entry(&api, o, host).await, &id, network)?;
            }
        }
        if !conflicted {
            return Ok(value);
        }
        debug!(vino = %id, host, attempt, "claims changed under us; reading again");
        backoff(attempt).await;
    }
    Err(KubeError::Contended {
        what: format!("reserve IP claims of host {host} for Vino {id}"),
        attempts: MAX_ATTEMPTS,
    }
    .into())
}

/// Releases every claim `host` holds for the Vino `namespace/name`, deleting claim objects that
/// no host holds any more.
pub async fn release(
    client: &Client,
    namespace: &str,
    name: &str,
    host: &str,
) -> Result<(), KubeError> {
    let id = Identity {
        namespace: namespace.to_string(),
        name: name.to_string(),
        uid: String::new(),
    };
    let api = id.api(client);
    for attempt in 0..MAX_ATTEMPTS {
        let mut conflicted = false;
        for o in id.list(client).await? {
            if o.spec.hosts.contains_key(host) || o.spec.hosts.is_empty() {
                conflicted |= written(drop_entry(&api, &o, host).await, &id, &o.spec.network)?;
            }
        }
        if !conflicted {
            info!(vino = %id, host, "IP claims released");
            return Ok(());
        }
        backoff(attempt).await;
    }
    Err(KubeError::Contended {
        what: format!("release IP claims of host {host} for Vino {id}"),
        attempts: MAX_ATTEMPTS,
    })
}

/// Which Vino the claims belong to.
struct Identity {
    namespace: String,
    name: String,
    uid: String,
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

impl Identity {
    fn of(vino: &Vino) -> Result<Identity, KubeError> {
        let name = vino.metadata.name.clone().unwrap_or_default();
        let missing = |what| KubeError::Incomplete(name.clone(), what);
        Ok(Identity {
            namespace: vino
                .metadata
                .namespace
                .clone()
                .ok_or_else(|| missing("namespace"))?,
            uid: vino.metadata.uid.clone().ok_or_else(|| missing("uid"))?,
            name: vino.metadata.name.clone().ok_or_else(|| missing("name"))?,
        })
    }

    fn api(&self, client: &Client) -> Api<VinoIPClaim> {
        Api::namespaced(client.clone(), &self.namespace)
    }

    fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (format!("{LABEL_PREFIX}cr-name"), label_value(&self.name)),
            (
                format!("{LABEL_PREFIX}cr-namespace"),
                label_value(&self.namespace),
            ),
        ])
    }

    /// The Vino's claim objects, from one consistent list (each with its resourceVersion).
    async fn list(&self, client: &Client) -> Result<Vec<VinoIPClaim>, KubeError> {
        let selector = self
            .labels()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",");
        let list = self
            .api(client)
            .list(&ListParams::default().labels(&selector))
            .await
            .map_err(|e| KubeError::api(format!("list IP claims of Vino {self}"), e))?;
        // Label values may be hashed: the spec names the Vino exactly.
        Ok(list
            .items
            .into_iter()
            .filter(|o| o.spec.vino == self.name)
            .collect())
    }

    async fn create(
        &self,
        api: &Api<VinoIPClaim>,
        network: &str,
        host: &str,
        claims: &HostClaims,
    ) -> Result<(), kube::Error> {
        let mut o = VinoIPClaim::new(
            &object_name(&self.name, network),
            VinoIPClaimSpec {
                vino: self.name.clone(),
                vino_uid: self.uid.clone(),
                network: network.to_string(),
                hosts: BTreeMap::from([(host.to_string(), claims.clone())]),
            },
        );
        o.metadata = ObjectMeta {
            name: o.metadata.name.take(),
            namespace: Some(self.namespace.clone()),
            labels: Some(self.labels()),
            owner_references: Some(vec![OwnerReference {
                api_version: Vino::api_version(&()).into_owned(),
                kind: Vino::kind(&()).into_owned(),
                name: self.name.clone(),
                uid: self.uid.clone(),
                controller: Some(false),
                block_owner_deletion: Some(false),
            }]),
            ..Default::default()
        };
        api.create(&PostParams::default(), &o).await.map(|_| ())
    }

    /// Deals with a claim object of an earlier Vino of the same name: deletes it when no other
    /// host holds anything in it, else stops with an error (those claims may be in use).
    async fn remove_stale(
        &self,
        api: &Api<VinoIPClaim>,
        o: &VinoIPClaim,
        host: &str,
    ) -> Result<(), KubeError> {
        let name = o.metadata.name.clone().unwrap_or_default();
        let others: BTreeSet<&String> = o.spec.hosts.keys().filter(|h| *h != host).collect();
        if !others.is_empty() {
            return Err(KubeError::StaleClaims {
                namespace: self.namespace.clone(),
                name,
                uid: o.spec.vino_uid.clone(),
                hosts: others.into_iter().cloned().collect::<Vec<_>>().join(", "),
            });
        }
        info!(claim = %name, "deleting IP claims of an earlier Vino with the same name");
        written(delete_exact(api, o).await, self, &o.spec.network).map(|_| ())
    }
}

/// Writes `o` back with the resourceVersion it was read with.
async fn replace(api: &Api<VinoIPClaim>, o: &VinoIPClaim) -> Result<(), kube::Error> {
    let name = o.metadata.name.clone().unwrap_or_default();
    api.replace(&name, &PostParams::default(), o)
        .await
        .map(|_| ())
}

/// Removes `host`'s entry from `o`; deletes `o` if no host is left in it.
async fn drop_entry(
    api: &Api<VinoIPClaim>,
    o: &VinoIPClaim,
    host: &str,
) -> Result<(), kube::Error> {
    let mut o = o.clone();
    o.spec.hosts.remove(host);
    if o.spec.hosts.is_empty() {
        delete_exact(api, &o).await
    } else {
        replace(api, &o).await
    }
}

/// Deletes `o` only if it is still the version that was read.
async fn delete_exact(api: &Api<VinoIPClaim>, o: &VinoIPClaim) -> Result<(), kube::Error> {
    let name = o.metadata.name.clone().unwrap_or_default();
    let dp = DeleteParams::default().preconditions(Preconditions {
        resource_version: o.metadata.resource_version.clone(),
        uid: o.metadata.uid.clone(),
    });
    api.delete(&name, &dp).await.map(|_| ())
}

/// Sorts the result of one write: `Ok(false)` written, `Ok(true)` someone else changed the
/// object first (409 Conflict or AlreadyExists, 404 gone), `Err` anything else.
fn written(
    result: Result<(), kube::Error>,
    id: &Identity,
    network: &str,
) -> Result<bool, KubeError> {
    match result {
        Ok(()) => Ok(false),
        Err(e) if is_status(&e, 409) || is_status(&e, 404) => Ok(true),
        Err(e) => Err(KubeError::api(
            format!("write IP claims of Vino {id} on network {network}"),
            e,
        )),
    }
}
