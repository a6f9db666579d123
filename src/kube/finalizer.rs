//! The per-host finalizers of earlier versions on Vinos: `vino.airshipit.org/<node>`. Hosts now
//! share one finalizer and keep their membership in `VinoNode`s ([`super::membership`]); what
//! is left here removes the old ones (and adds one, for tests of that migration).
//!
//! The finalizer is written by server-side apply of `metadata.finalizers` with the host's
//! field manager: `metadata.finalizers` is a set, so each host owns its own element and adding
//! or removing it never disturbs the others' (no read-modify-write of the whole list).
//!
//! A host that is gone for good cannot tear down. Once its Node is deleted, any host that
//! sees the Vino being deleted removes the gone host's finalizer ([`remove_departed`]); the
//! admission policy allows that only for finalizers whose Node does not exist.

use std::collections::BTreeSet;

use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::info;

use super::{HOST_FINALIZER_PREFIX, KubeError, field_manager, finalizer_name, is_status};
use crate::api::Vino;

/// Whether `vino` carries host `node`'s finalizer.
pub fn has_finalizer(vino: &Vino, node: &str) -> bool {
    let mine = finalizer_name(node);
    vino.finalizers().contains(&mine)
}

/// Adds host `node`'s finalizer to `vino` (a no-op if present).
pub async fn add(client: &Client, vino: &Vino, node: &str) -> Result<(), KubeError> {
    let (api, name) = target(client, vino)?;
    let body = apply_body(vino, &name, Some(&finalizer_name(node)));
    api.patch(
        &name,
        &PatchParams::apply(&field_manager(node)).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(|e| {
        KubeError::api(
            format!("add finalizer {} to Vino {name}", finalizer_name(node)),
            e,
        )
    })?;
    info!(vino = %name, node, "finalizer added");
    Ok(())
}

/// Removes host `node`'s finalizer from `vino`. A Vino that is already gone is fine.
pub async fn remove(client: &Client, vino: &Vino, node: &str) -> Result<(), KubeError> {
    let (api, name) = target(client, vino)?;
    let mine = finalizer_name(node);
    let what = || format!("remove finalizer {mine} from Vino {name}");
    let body = apply_body(vino, &name, None);
    let after = match api
        .patch(
            &name,
            &PatchParams::apply(&field_manager(node)).force(),
            &Patch::Apply(&body),
        )
        .await
    {
        Ok(v) => v,
        Err(e) if is_status(&e, 404) => return Ok(()),
        Err(e) => return Err(KubeError::api(what(), e)),
    };
    // Someone else also listed this host's finalizer (e.g. an edit that re-sent it), so giving
    // up ownership did not remove it: remove it by position, checked.
    if let Some(i) = after.finalizers().iter().position(|f| *f == mine) {
        let patch = json!([
            {"op": "test", "path": format!("/metadata/finalizers/{i}"), "value": mine},
            {"op": "remove", "path": format!("/metadata/finalizers/{i}")},
        ]);
        let patch: json_patch::Patch = serde_json::from_value(patch)
            .map_err(|e| KubeError::api(what(), kube::Error::SerdeError(e)))?;
        match api
            .patch(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
            .await
        {
            Ok(_) => {}
            Err(e) if is_status(&e, 404) => return Ok(()),
            Err(e) => return Err(KubeError::api(what(), e)),
        }
    }
    info!(vino = %name, node, "finalizer removed");
    Ok(())
}

/// Removes from `vino`, while it is being deleted, the finalizers of hosts whose Node is not in
/// `nodes` (the Nodes that exist): hosts that are gone cannot tear down, and the Vino would
/// wait for them forever. Returns the finalizers removed; a Vino that is gone, or whose
/// finalizers changed meanwhile, is left to the next pass.
pub async fn remove_departed(
    client: &Client,
    vino: &Vino,
    nodes: &BTreeSet<String>,
) -> Result<Vec<String>, KubeError> {
    if vino.metadata.deletion_timestamp.is_none() {
        return Ok(Vec::new());
    }
    let live: BTreeSet<String> = nodes.iter().map(|n| finalizer_name(n)).collect();
    let gone: Vec<(usize, String)> = vino
        .finalizers()
        .iter()
        .enumerate()
        .filter(|(_, f)| f.starts_with(HOST_FINALIZER_PREFIX) && !live.contains(*f))
        .map(|(i, f)| (i, f.clone()))
        .collect();
    if gone.is_empty() {
        return Ok(Vec::new());
    }
    let (api, name) = target(client, vino)?;
    let what = || format!("remove the finalizers of gone hosts from Vino {name}");
    // Highest position first, so that each removal leaves the next one's position as read.
    let ops: Vec<serde_json::Value> = gone
        .iter()
        .rev()
        .flat_map(|(i, f)| {
            [
                json!({"op": "test", "path": format!("/metadata/finalizers/{i}"), "value": f}),
                json!({"op": "remove", "path": format!("/metadata/finalizers/{i}")}),
            ]
        })
        .collect();
    let patch: json_patch::Patch = serde_json::from_value(serde_json::Value::Array(ops))
        .map_err(|e| KubeError::api(what(), kube::Error::SerdeError(e)))?;
    match api
        .patch(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
        .await
    {
        Ok(_) => {}
        // Gone, or the list changed since it was read (the test failed): the next pass.
        Err(e) if is_status(&e, 404) || is_status(&e, 409) || is_status(&e, 422) => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(KubeError::api(what(), e)),
    }
    let removed: Vec<String> = gone.into_iter().map(|(_, f)| f).collect();
    info!(vino = %name, finalizers = ?removed, "finalizers of gone hosts removed");
    Ok(removed)
}

fn target(client: &Client, vino: &Vino) -> Result<(Api<Vino>, String), KubeError> {
    let name = vino.name_any();
    let ns = vino
        .namespace()
        .ok_or_else(|| KubeError::Incomplete(name.clone(), "namespace"))?;
    Ok((Api::namespaced(client.clone(), &ns), name))
}

/// The applied configuration: only this host's finalizer, or nothing to give it up.
fn apply_body(vino: &Vino, name: &str, finalizer: Option<&str>) -> serde_json::Value {
    let mut meta = json!({"name": name, "namespace": vino.namespace()});
    if let Some(f) = finalizer {
        meta["finalizers"] = json!([f]);
    }
    json!({
        "apiVersion": Vino::api_version(&()),
        "kind": Vino::kind(&()),
        "metadata": meta,
    })
}
