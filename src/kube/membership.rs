//! Which hosts serve a Vino, without an object that every host writes.
//!
//! Each host that serves a Vino holds one `VinoNode` in the Vino's namespace, named
//! `<vino>.<node>`, labelled with the Vino and the Node and owned by its Node. It carries the
//! host's status entry and is written only by that host, by server-side apply with its field
//! manager `vinod/<node>`, and only when the entry changes. A host serves a Vino (and keeps
//! serving it while VMs that metal3 holds stay, after the Vino left it) exactly while its
//! `VinoNode` exists.
//!
//! The Vino itself carries one finalizer, [`FINALIZER`], the same for every host: a host adds
//! it before building anything, only if it is absent, so a Vino gets it once whatever the
//! number of hosts. While the Vino is being deleted each host tears down and deletes its
//! `VinoNode`; whichever host then finds none left removes the finalizer. A host that is gone
//! for good holds the Vino only until its Node is deleted: the garbage collector deletes its
//! `VinoNode`s with it.
//!
//! Earlier versions put one finalizer per host on the Vino and each host's entry into its
//! status; a host removes its own when it finds them ([`migrate`]).

use std::collections::BTreeMap;

use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::info;

use super::claims::Holder;
use super::{KubeError, field_manager, finalizer, finalizer_name, is_status};
use crate::api::vino_node::{VinoNode, VinoNodeSpec, vino_node_name};
use crate::api::{NodeStatus, Vino};
use crate::plan::names::label_value;
use crate::plan::ownership;
use crate::state::Owner;

/// The one finalizer every host relies on: a Vino being deleted stays until no host serves it.
pub const FINALIZER: &str = "airship.airshipit.org/vino-hosts";

/// The field manager of the writes that are not any one host's: the shared finalizer and the
/// Vino's status summary (written by one host at a time).
pub const SHARED_MANAGER: &str = "vinod";

/// Whether `vino` carries [`FINALIZER`].
pub fn has_finalizer(vino: &Vino) -> bool {
    vino.finalizers().iter().any(|f| f == FINALIZER)
}

/// Adds [`FINALIZER`] to `vino` unless the copy read already has it.
pub async fn ensure_finalizer(client: &Client, vino: &Vino) -> Result<(), KubeError> {
    if has_finalizer(vino) {
        return Ok(());
    }
    let (api, name) = target(client, vino)?;
    let body = json!({
        "apiVersion": Vino::api_version(&()),
        "kind": Vino::kind(&()),
        "metadata": {"name": name, "namespace": vino.namespace(), "finalizers": [FINALIZER]},
    });
    api.patch(
        &name,
        &PatchParams::apply(SHARED_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|e| KubeError::api(format!("add finalizer {FINALIZER} to Vino {name}"), e))?;
    info!(vino = %name, "finalizer added");
    Ok(())
}

/// Removes [`FINALIZER`] from `vino` (as read: the removal is checked against that copy's
/// list). Returns whether it was removed; a Vino that is gone or whose finalizers changed
/// meanwhile is left to the next pass.
pub async fn remove_finalizer(client: &Client, vino: &Vino) -> Result<bool, KubeError> {
    let Some(i) = vino.finalizers().iter().position(|f| f == FINALIZER) else {
        return Ok(false);
    };
    let (api, name) = target(client, vino)?;
    let what = || format!("remove finalizer {FINALIZER} from Vino {name}");
    let patch = json!([
        {"op": "test", "path": format!("/metadata/finalizers/{i}"), "value": FINALIZER},
        {"op": "remove", "path": format!("/metadata/finalizers/{i}")},
    ]);
    let patch: json_patch::Patch = serde_json::from_value(patch)
        .map_err(|e| KubeError::api(what(), kube::Error::SerdeError(e)))?;
    match api
        .patch(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
    {
        Ok(_) => {
            info!(vino = %name, "no host serves it any more; finalizer removed");
            Ok(true)
        }
        Err(e) if is_status(&e, 404) || is_status(&e, 409) || is_status(&e, 422) => Ok(false),
        Err(e) => Err(KubeError::api(what(), e)),
    }
}

/// This host's `VinoNode`s, by the Vino they serve (every namespace; one list).
pub async fn list_own(client: &Client, node: &str) -> Result<BTreeMap<Owner, VinoNode>, KubeError> {
    let selector = format!("vino.airshipit.org/node={}", label_value(node));
    let items = Api::<VinoNode>::all(client.clone())
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| KubeError::api(format!("list the VinoNodes of host {node}"), e))?
        .items;
    Ok(items
        .into_iter()
        .filter(|o| o.spec.node == node)
        .filter_map(|o| {
            let owner = Owner {
                namespace: o.namespace()?,
                name: o.spec.vino.clone(),
            };
            Some((owner, o))
        })
        .collect())
}

/// Every host's `VinoNode` of the Vino `owner` (one list in its namespace).
pub async fn list_of(client: &Client, owner: &Owner) -> Result<Vec<VinoNode>, KubeError> {
    let selector = format!(
        "vino.airshipit.org/cr-name={},vino.airshipit.org/cr-namespace={}",
        label_value(&owner.name),
        label_value(&owner.namespace)
    );
    let items = Api::<VinoNode>::namespaced(client.clone(), &owner.namespace)
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(|e| KubeError::api(format!("list the VinoNodes of Vino {owner}"), e))?
        .items;
    Ok(items
        .into_iter()
        .filter(|o| o.spec.vino == owner.name)
        .collect())
}

/// Writes host `holder`'s `VinoNode` for `vino` with `entry` and the Node's labels when it
/// joined, `node_labels` (one request: creates or updates). Returns the object as stored.
pub async fn write(
    client: &Client,
    vino: &Vino,
    holder: &Holder,
    node_labels: &BTreeMap<String, String>,
    entry: &NodeStatus,
) -> Result<VinoNode, KubeError> {
    let owner = Owner::of(vino);
    let uid = vino
        .metadata
        .uid
        .clone()
        .ok_or_else(|| KubeError::Incomplete(owner.to_string(), "uid"))?;
    let name = vino_node_name(&owner.name, &holder.name);
    let mut obj = VinoNode::new(
        &name,
        VinoNodeSpec::new(&owner.name, &uid, node_labels, entry),
    );
    obj.metadata.namespace = Some(owner.namespace.clone());
    obj.metadata.labels = Some(ownership(&owner, &holder.name));
    obj.metadata.owner_references = Some(vec![holder.owner_reference()]);
    let api: Api<VinoNode> = Api::namespaced(client.clone(), &owner.namespace);
    api.patch(
        &name,
        &PatchParams::apply(&field_manager(&holder.name)).force(),
        &Patch::Apply(&obj),
    )
    .await
    .map_err(|e| KubeError::api(format!("write VinoNode {}/{name}", owner.namespace), e))
}

/// Deletes host `node`'s `VinoNode` for the Vino `owner` (one already gone is fine).
pub async fn delete(client: &Client, owner: &Owner, node: &str) -> Result<(), KubeError> {
    let name = vino_node_name(&owner.name, node);
    let api: Api<VinoNode> = Api::namespaced(client.clone(), &owner.namespace);
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(e) if is_status(&e, 404) => Ok(()),
        Err(e) => Err(KubeError::api(
            format!("delete VinoNode {}/{name}", owner.namespace),
            e,
        )),
    }
}

/// Whether `vino` still holds what an earlier version of host `node` wrote into it: its own
/// finalizer, or fields of its field manager (its status entry).
pub fn has_legacy(vino: &Vino, node: &str) -> bool {
    let manager = field_manager(node);
    vino.finalizers().contains(&finalizer_name(node))
        || vino
            .managed_fields()
            .iter()
            .any(|m| m.manager.as_deref() == Some(manager.as_str()))
}

/// Removes from `vino` what an earlier version of host `node` wrote into it: its finalizer and
/// its status entry (both applied with its field manager, so giving them up removes them).
pub async fn migrate(client: &Client, vino: &Vino, node: &str) -> Result<(), KubeError> {
    if !has_legacy(vino, node) {
        return Ok(());
    }
    let (api, name) = target(client, vino)?;
    let body = json!({
        "apiVersion": Vino::api_version(&()),
        "kind": Vino::kind(&()),
        "metadata": {"name": name, "namespace": vino.namespace()},
        "status": {},
    });
    let pp = PatchParams::apply(&field_manager(node)).force();
    match api.patch_status(&name, &pp, &Patch::Apply(&body)).await {
        Ok(_) => {}
        Err(e) if is_status(&e, 404) => return Ok(()),
        Err(e) => {
            return Err(KubeError::api(
                format!("remove the status entry of host {node} from Vino {name}"),
                e,
            ));
        }
    }
    finalizer::remove(client, vino, node).await?;
    info!(vino = %name, node, "finalizer and status entry of an earlier version removed");
    Ok(())
}

fn target(client: &Client, vino: &Vino) -> Result<(Api<Vino>, String), KubeError> {
    let name = vino.name_any();
    let ns = vino
        .namespace()
        .ok_or_else(|| KubeError::Incomplete(name.clone(), "namespace"))?;
    Ok((Api::namespaced(client.clone(), &ns), name))
}
