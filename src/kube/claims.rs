//! IP claims in the cluster: one `VinoPoolClaim` per claimed unit (a static address or a DHCP
//! block), cluster-scoped, named for the unit, owned by the holder's Node.
//!
//! A host takes a unit by *creating* its object: the API server lets one create of a name
//! succeed, so AlreadyExists means another holder has it, and nothing is ever read, changed
//! and written back. Pools are keyed by the network's subnet and shared by every Vino in every
//! namespace; the names are the units themselves, so an address (and the MAC derived from it,
//! [`crate::ipam::address_mac`]) is held once in the whole cluster. A held unit is kept while
//! its holder wants it, whatever anyone else writes; it goes when the holder releases it, or
//! with the holder's Node (garbage collection through the owner reference).
//!
//! [`reserve`] reads this host's own claims of the Vino (one list), plans with them, and only
//! if the plan needs new units lists the pool's claims and creates them; a unit taken in
//! between is planned around in the next round. Claims of the per-Vino `VinoIPClaim` objects of
//! earlier versions are carried over once ([`legacy`]), with their MACs.

mod legacy;
mod units;

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Node;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Client, ResourceExt};
use tracing::{debug, info};

pub use units::Holder;

use super::{KubeError, MAX_ATTEMPTS, backoff, is_status};
use crate::api::SpecError;
use crate::api::Vino;
use crate::api::pool_claim::VinoPoolClaim;
use crate::api::validate::check;
use crate::ipam::{HostClaims, NetworkClaims};

/// After how many rounds with lost units the pool is read again.
const RELIST_EVERY: u32 = 4;

/// Errors of [`reserve`]: the caller's planning error, an invalid Vino, or the cluster's.
#[derive(Debug, thiserror::Error)]
pub enum ReserveError<E> {
    /// The caller could not compute its claims (e.g. the network is exhausted).
    #[error(transparent)]
    Plan(E),
    /// The Vino's networks are invalid.
    #[error(transparent)]
    Spec(SpecError),
    /// Reading or writing the claims failed.
    #[error(transparent)]
    Kube(#[from] KubeError),
}

impl Holder {
    /// The holder for Node `node`, read from the API server (claims are owned by the Node).
    pub async fn read(client: &Client, node: &str) -> Result<Holder, KubeError> {
        let n = Api::<Node>::all(client.clone())
            .get(node)
            .await
            .map_err(|e| KubeError::api(format!("read Node {node}"), e))?;
        Ok(Holder {
            name: node.to_string(),
            uid: n.uid().unwrap_or_default(),
            share: None,
        })
    }
}

/// Reserves `holder`'s claims on `vino`'s networks and returns what `plan` made of them.
///
/// `plan` gets this host's claims and, as further entries, what others hold in the same
/// pools, by network; it returns its result together with this host's claims by network, e.g.
/// `|all| plan::plan(PlanInput { claims: all, .. }).map(|p| (p.claims.clone(), p))`. Units it
/// no longer claims are released. `plan` may run several times; its error ends the
/// reservation at once. The result is always planned from claims as they are stored.
pub async fn reserve<T, E, F>(
    client: &Client,
    vino: &Vino,
    holder: &Holder,
    mut plan: F,
) -> Result<T, ReserveError<E>>
where
    F: FnMut(&BTreeMap<String, NetworkClaims>) -> Result<(BTreeMap<String, HostClaims>, T), E>,
{
    let id = units::vino_of(vino)?;
    let pools = check(&vino.spec).map_err(ReserveError::Spec)?.pools;
    let api: Api<VinoPoolClaim> = Api::all(client.clone());
    let what = format!(
        "IP claims of host {} for Vino {}/{}",
        holder.name, id.namespace, id.name
    );
    let selector = units::holder_selector(&holder.name, &id.namespace, &id.name);
    let mut held: Vec<VinoPoolClaim> = list(&api, &selector, &what)
        .await?
        .into_iter()
        .filter(|o| o.spec.node == holder.name && o.spec.vino.uid == id.uid)
        .collect();
    let bare: Vec<&String> = pools
        .keys()
        .filter(|net| !held.iter().any(|o| &o.spec.network == *net))
        .collect();
    let mut seed = legacy::seed(client, &id, &holder.name, &bare).await?;
    let mut foreign: Vec<VinoPoolClaim> = Vec::new();
    let mut listed = BTreeSet::new();
    // Units taken by this call: given back if planning fails after all.
    let mut created: Vec<String> = Vec::new();
    for attempt in 0..MAX_ATTEMPTS {
        let mut all: BTreeMap<String, NetworkClaims> = units::taken(&foreign, &pools);
        for (net, own) in units::own_claims(&held, &pools, &seed) {
            all.entry(net).or_default().insert(holder.name.clone(), own);
        }
        for net in pools.keys() {
            let own = all.entry(net.clone()).or_default();
            own.entry(holder.name.clone()).or_default().share = holder.share;
        }
        // In a cluster a host is never alone in a pool, even when it sees nobody else's claims:
        // hosts that start at the same moment all see an empty pool. An empty holder (no Node
        // has an empty name) makes the planner start from the host's own point in the pool, not
        // the lowest free unit that every other host reaches for too.
        for net in pools.keys() {
            all.entry(net.clone())
                .or_default()
                .entry(String::new())
                .or_default();
        }
        let (mine, value) = match plan(&all) {
            Ok(planned) => planned,
            Err(e) => {
                for name in &created {
                    delete(&api, name, &what).await?;
                }
                return Err(ReserveError::Plan(e));
            }
        };
        let wanted = units::wanted(&mine, &pools, &id, holder, &seed);
        let (keep, stale): (Vec<_>, Vec<_>) = held
            .into_iter()
            .partition(|o| wanted.get(&o.name_any()).is_some_and(|w| w.spec == o.spec));
        held = keep;
        for o in &stale {
            delete(&api, &o.name_any(), &what).await?;
        }
        let missing: Vec<&VinoPoolClaim> = wanted
            .iter()
            .filter(|(name, _)| !held.iter().any(|o| o.name_any() == **name))
            .map(|(_, o)| o)
            .collect();
        if missing.is_empty() {
            return Ok(value);
        }
        // Learn what others hold in these pools before reaching for anything.
        let unlisted: BTreeSet<String> = missing
            .iter()
            .map(|o| o.spec.pool.clone())
            .filter(|p| !listed.contains(p))
            .collect();
        let learnt = !unlisted.is_empty();
        for pool in unlisted {
            let found = list(&api, &units::pool_selector(&pool), &what).await?;
            foreign.retain(|o| o.spec.pool != pool);
            foreign.extend(found.into_iter().filter(|o| {
                o.spec.pool == pool && !(o.spec.node == holder.name && o.spec.vino.uid == id.uid)
            }));
            listed.insert(pool);
        }
        if learnt {
            continue;
        }
        let mut lost = false;
        for o in missing {
            match api.create(&PostParams::default(), o).await {
                Ok(o) => {
                    created.push(o.name_any());
                    held.push(o);
                }
                Err(e) if is_status(&e, 409) => {
                    debug!(claim = %o.name_any(), host = %holder.name, "unit taken by another holder");
                    forget_seed(&mut seed, o);
                    foreign.push(o.clone());
                    lost = true;
                }
                Err(e) => return Err(KubeError::api(format!("create {what}"), e).into()),
            }
        }
        if lost {
            // The units lost are known to be taken; the next round plans around them without
            // reading the pool again (a read of a large pool costs far more than a create that
            // is refused). Only if that keeps failing is the pool read again.
            if attempt % RELIST_EVERY == RELIST_EVERY - 1 {
                listed.clear();
            }
            backoff(attempt).await;
        }
    }
    Err(KubeError::Contended {
        what: format!("reserve {what}"),
        attempts: MAX_ATTEMPTS,
    }
    .into())
}

/// Releases every claim `host` holds for the Vino `namespace/name` (of any UID).
pub async fn release(
    client: &Client,
    namespace: &str,
    name: &str,
    host: &str,
) -> Result<(), KubeError> {
    let api: Api<VinoPoolClaim> = Api::all(client.clone());
    let selector = units::holder_selector(host, namespace, name);
    api.delete_collection(
        &DeleteParams::default(),
        &ListParams::default().labels(&selector),
    )
    .await
    .map_err(|e| {
        KubeError::api(
            format!("release IP claims of host {host} for Vino {namespace}/{name}"),
            e,
        )
    })?;
    info!(vino = %format!("{namespace}/{name}"), host, "IP claims released");
    Ok(())
}

/// Claim objects matching `selector`.
async fn list(
    api: &Api<VinoPoolClaim>,
    selector: &str,
    what: &str,
) -> Result<Vec<VinoPoolClaim>, KubeError> {
    Ok(api
        .list(&ListParams::default().labels(selector))
        .await
        .map_err(|e| KubeError::api(format!("list {what}"), e))?
        .items)
}

/// Deletes the claim `name` (one already gone is fine).
async fn delete(api: &Api<VinoPoolClaim>, name: &str, what: &str) -> Result<(), KubeError> {
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => Err(KubeError::api(format!("release {name} of {what}"), e)),
    }
}

/// Drops the unit of `o` from the carried-over claims: another holder has it.
fn forget_seed(seed: &mut BTreeMap<String, HostClaims>, o: &VinoPoolClaim) {
    if let Some(c) = seed.get_mut(&o.spec.network) {
        if o.spec.block.is_some() {
            c.block = None;
        }
        c.addresses.retain(|_, ip| Some(*ip) != o.spec.address);
    }
}
