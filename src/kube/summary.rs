//! The Vino's summary (`status.conditions`, `nodesReady`, `vmsReady`), written by one host at a
//! time: the coordinator, the live Node
//! the Vino selects whose name sorts first ([`coordinator`]). It reads the hosts' `VinoNode`s
//! (one list) and writes the status only when it changes, by server-side apply with the shared
//! field manager `vinod`; no other host writes it, so there is nothing to conflict with.
//!
//! Hosts do not watch `VinoNode`s: the coordinator reads them in each of its passes and, from
//! a background task ([`Summaries::run`]), again after [`FAST`] while they keep changing,
//! backing off to [`SLOW`] while they do not.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tokio::time::Instant;
use tracing::{debug, warn};

use super::KubeError;
use super::membership::{self, SHARED_MANAGER};
use super::status::{Summary, summarize, unchanged};
use crate::api::{NodeStatus, Vino};
use crate::error_chain;
use crate::plan::{self, NodeFacts};
use crate::state::Owner;

/// How soon the summary is read again after it changed.
pub const FAST: Duration = Duration::from_secs(1);
/// The longest pause between two reads of an unchanged summary.
pub const SLOW: Duration = Duration::from_secs(10);

/// The host that writes `vino`'s summary: the first by name of the `nodes` it selects that
/// are not down, so the summary goes on when the coordinating host dies (once its Node is no
/// longer Ready).
pub fn coordinator<'a>(vino: &Vino, nodes: &'a [NodeFacts]) -> Option<&'a str> {
    nodes
        .iter()
        .filter(|n| !n.down && plan::selects(vino, n))
        .map(|n| n.name.as_str())
        .min()
}

/// One Vino this host summarises.
#[derive(Clone)]
struct Job {
    vino: Vino,
    selected: BTreeSet<String>,
    pause: Duration,
    due: Instant,
}

/// The Vinos this host is the coordinator of, shared with the background task.
#[derive(Clone)]
pub struct Summaries {
    client: Client,
    jobs: Arc<Mutex<BTreeMap<Owner, Job>>>,
}

impl Summaries {
    /// Summaries written through `client`.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            jobs: Arc::default(),
        }
    }

    /// Sets the Vinos this host summarises (as just read) and the hosts each selects. A Vino
    /// whose generation changed is read again at once.
    pub fn set(&self, vinos: Vec<(Vino, BTreeSet<String>)>) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = BTreeMap::new();
        for (vino, selected) in vinos {
            let owner = Owner::of(&vino);
            let job = match jobs.remove(&owner) {
                Some(mut j) => {
                    let same = j.vino.metadata.generation == vino.metadata.generation
                        && j.vino.metadata.uid == vino.metadata.uid
                        && j.selected == selected;
                    if !same {
                        j.due = Instant::now();
                        j.pause = FAST;
                    }
                    // This host is the only writer: the status it wrote last is the newest.
                    let status = j.vino.status.take();
                    j.vino = vino;
                    if status.is_some() {
                        j.vino.status = status;
                    }
                    j.selected = selected;
                    j
                }
                None => Job {
                    vino,
                    selected,
                    pause: FAST,
                    due: Instant::now(),
                },
            };
            next.insert(owner, job);
        }
        *jobs = next;
    }

    /// Reads the `VinoNode`s of `owner` and writes its summary if it changed. Returns whether
    /// it wrote.
    pub async fn refresh(&self, owner: &Owner) -> Result<bool, KubeError> {
        let Some(job) = self.job(owner) else {
            return Ok(false);
        };
        let entries: Vec<NodeStatus> = membership::list_of(&self.client, owner)
            .await?
            .into_iter()
            .filter(|o| Some(&o.spec.vino_uid) == job.vino.metadata.uid.as_ref())
            .map(|o| o.spec.entry())
            .collect();
        let written = write(&self.client, &job.vino, &entries, &job.selected).await?;
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(j) = jobs.get_mut(owner) {
            j.pause = if written.is_some() {
                FAST
            } else {
                (j.pause * 2).min(SLOW)
            };
            j.due = Instant::now() + j.pause;
            if let Some(v) = &written {
                j.vino.status = v.status.clone();
            }
        }
        Ok(written.is_some())
    }

    /// Refreshes each summary when it is due, until dropped (run as a task).
    pub async fn run(self) {
        loop {
            tokio::time::sleep(FAST / 2).await;
            let now = Instant::now();
            let due: Vec<Owner> = {
                let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
                jobs.iter()
                    .filter(|(_, j)| j.due <= now)
                    .map(|(o, _)| o.clone())
                    .collect()
            };
            for owner in due {
                if let Err(e) = self.refresh(&owner).await {
                    warn!(vino = %owner, error = %error_chain(&e), "cannot write the summary");
                    if let Some(j) = self
                        .jobs
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .get_mut(&owner)
                    {
                        j.due = Instant::now() + SLOW;
                    }
                }
            }
        }
    }

    fn job(&self, owner: &Owner) -> Option<Job> {
        let jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.get(owner).cloned()
    }
}

/// Writes `vino`'s summary over the hosts `selected` from the hosts' `entries` if it differs
/// from the one `vino` holds. Returns the Vino as stored after a write.
pub async fn write(
    client: &Client,
    vino: &Vino,
    entries: &[NodeStatus],
    selected: &BTreeSet<String>,
) -> Result<Option<Vino>, KubeError> {
    let status = vino.status.clone().unwrap_or_default();
    // What `vinod plan` warns about, from the spec alone (an invalid spec has no warnings:
    // the hosts report it Degraded).
    let warnings: Vec<String> = crate::api::validate::check(&vino.spec)
        .map(|c| c.warnings.iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    let summary = summarize(
        vino.metadata.generation.unwrap_or_default(),
        selected,
        entries,
        &warnings,
        &status.conditions,
        Timestamp::now(),
    );
    if unchanged(&status, &summary) {
        return Ok(None);
    }
    let name = vino.name_any();
    let namespace = vino.namespace().unwrap_or_default();
    let body = body(vino, &summary);
    let api: Api<Vino> = Api::namespaced(client.clone(), &namespace);
    match api
        .patch_status(
            &name,
            &PatchParams::apply(SHARED_MANAGER).force(),
            &Patch::Apply(&body),
        )
        .await
    {
        Ok(v) => {
            debug!(vino = %format!("{namespace}/{name}"), nodes = %summary.nodes_ready, vms = %summary.vms_ready, "summary written");
            Ok(Some(v))
        }
        Err(e) if super::is_status(&e, 404) => Ok(None),
        Err(e) => Err(KubeError::api(
            format!("write the status of Vino {namespace}/{name}"),
            e,
        )),
    }
}

/// The summary as applied. `status.nodes` is not part of it: each host's entry is in its
/// `VinoNode` (a copy here would make every change of any host a write of the Vino that every
/// host watches).
fn body(vino: &Vino, summary: &Summary) -> serde_json::Value {
    json!({
        "apiVersion": Vino::api_version(&()),
        "kind": Vino::kind(&()),
        "metadata": {"name": vino.name_any(), "namespace": vino.namespace()},
        "status": {
            "conditions": summary.conditions,
            "nodesReady": summary.nodes_ready,
            "vmsReady": summary.vms_ready,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_selected_node_coordinates() {
        let mut vino = crate::api::parse_vino(
            &std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/vino.yaml"))
                .unwrap(),
        )
        .unwrap();
        vino.spec.node_selector =
            serde_json::from_value(serde_json::json!({"matchLabels": {"rack": "a"}})).unwrap();
        let node = |name: &str, rack: &str| NodeFacts {
            name: name.into(),
            labels: BTreeMap::from([("rack".to_string(), rack.to_string())]),
            ..Default::default()
        };
        let nodes = vec![node("c", "a"), node("a", "b"), node("b", "a")];
        assert_eq!(coordinator(&vino, &nodes), Some("b"));
        assert_eq!(coordinator(&vino, &nodes[1..2]), None);
        let mut b_down = nodes.clone();
        b_down[2].down = true;
        assert_eq!(coordinator(&vino, &b_down), Some("c"));
        b_down[0].down = true;
        assert_eq!(coordinator(&vino, &b_down), None);
    }
}
