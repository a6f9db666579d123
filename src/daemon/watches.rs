//! The cluster daemon's watches: every Vino, every Node, each credentials Secret a selected
//! Vino references, and this host's BareMetalHosts in each namespace it serves. The Vinos and Nodes are kept in caches that the passes read
//! instead of listing them; an event that matters (or a watch error) is a trigger for the next
//! pass.
//!
//! Only changes a host acts on wake it: a Vino's generation (its spec, or the start of its
//! deletion), a Node's labels, appearance or deletion (which Vinos select which hosts, and who
//! coordinates them), and this host's Node's addresses. Status writes, finalizers and kubelet
//! heartbeats do not, so a status write does not make every host run a pass. A change metal3
//! makes to one of this host's BareMetalHosts (its provisioning, operational or power state,
//! an error, its deletion) wakes only this host, which reports it in its `VinoNode`; vinod's
//! own writes to them do not.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Secret};
use kube::Client;
use kube::ResourceExt;
use kube::api::{Api, DynamicObject};
use kube::discovery::ApiResource;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::AbortOnDrop;
use super::reconnect::Reconnect;
use crate::api::Vino;
use crate::api::bmh::BareMetalHost;
use crate::api::validate::LABEL_PREFIX;
use crate::plan::names::label_value;

/// How long watch events are gathered before a pass runs.
const DEBOUNCE: Duration = Duration::from_millis(300);

/// A Secret by namespace and name.
pub type SecretRef = (String, String);

/// Running watches and the channel their events arrive on.
pub struct Watches {
    client: Client,
    tx: mpsc::Sender<()>,
    rx: mpsc::Receiver<()>,
    _fixed: Vec<AbortOnDrop>,
    secrets: BTreeMap<SecretRef, AbortOnDrop>,
    /// This host's Node name, as its BareMetalHosts are labelled.
    node_label: String,
    hosts: BTreeMap<String, AbortOnDrop>,
}

impl Watches {
    /// Starts watches of every Vino and every Node (host `node`), and returns their caches.
    pub fn start(client: Client, node: &str) -> (Watches, Store<Node>, Store<Vino>) {
        let (tx, rx) = mpsc::channel(1);
        let vinos: Api<Vino> = Api::all(client.clone());
        let nodes: Api<Node> = Api::all(client.clone());
        let (vino_store, vino_writer) = reflector::store();
        let (node_store, node_writer) = reflector::store();
        let (t1, t2) = (tx.clone(), tx.clone());
        let me = node.to_string();
        let me_vinos = node.to_string();
        let fixed = vec![
            AbortOnDrop(tokio::spawn(async move {
                let stream = watcher(vinos, watcher::Config::default())
                    .backoff(Reconnect::of(&me_vinos, "Vinos"))
                    .reflect(vino_writer)
                    .touched_objects()
                    .predicate_filter(vino_change, Default::default());
                forward(stream, t1, "Vinos").await
            })),
            AbortOnDrop(tokio::spawn(async move {
                let mut seen: BTreeMap<String, u64> = BTreeMap::new();
                let stream = watcher(nodes, watcher::Config::default())
                    .backoff(Reconnect::of(&me, "Nodes"))
                    .reflect(node_writer)
                    .filter_map(move |ev| {
                        let changed = match &ev {
                            Ok(watcher::Event::Apply(n) | watcher::Event::InitApply(n)) => {
                                let h = node_change(n, &me);
                                seen.insert(n.name_any(), h) != Some(h)
                            }
                            Ok(watcher::Event::Delete(n)) => {
                                seen.remove(&n.name_any());
                                true
                            }
                            Ok(watcher::Event::Init) => false,
                            Ok(watcher::Event::InitDone) | Err(_) => true,
                        };
                        std::future::ready(changed.then_some(ev))
                    });
                forward(stream, t2, "Nodes").await
            })),
        ];
        let w = Watches {
            client,
            tx,
            rx,
            _fixed: fixed,
            secrets: BTreeMap::new(),
            node_label: label_value(node),
            hosts: BTreeMap::new(),
        };
        (w, node_store, vino_store)
    }

    /// Watches exactly the Secrets in `wanted` (one watch per Secret, by name, in its
    /// namespace: the permissions a host has there). Watches of Secrets no longer referenced
    /// stop.
    pub fn follow_secrets(&mut self, wanted: &BTreeSet<SecretRef>) {
        self.secrets.retain(|r, _| wanted.contains(r));
        for r in wanted {
            if self.secrets.contains_key(r) {
                continue;
            }
            debug!(namespace = %r.0, secret = %r.1, "watching a credentials Secret");
            let api: Api<Secret> = Api::namespaced(self.client.clone(), &r.0);
            let cfg = watcher::Config::default().fields(&format!("metadata.name={}", r.1));
            let (tx, node) = (self.tx.clone(), self.node_label.clone());
            let task = tokio::spawn(async move {
                let backoff = Reconnect::of(&node, "Secret");
                forward(watcher(api, cfg).backoff(backoff), tx, "Secret").await
            });
            self.secrets.insert(r.clone(), AbortOnDrop(task));
        }
    }

    /// Watches this host's BareMetalHosts in exactly the namespaces `wanted` (one watch per
    /// namespace, by its node label: a host may read BareMetalHosts only where it publishes).
    pub fn follow_hosts(&mut self, wanted: &BTreeSet<String>) {
        self.hosts.retain(|ns, _| wanted.contains(ns));
        for ns in wanted {
            if self.hosts.contains_key(ns) {
                continue;
            }
            debug!(namespace = %ns, "watching this host's BareMetalHosts");
            let resource = ApiResource::erase::<BareMetalHost>(&());
            let api: Api<DynamicObject> = Api::namespaced_with(self.client.clone(), ns, &resource);
            let selector = format!("{LABEL_PREFIX}node={}", self.node_label);
            let cfg = watcher::Config::default().labels(&selector);
            let (tx, node) = (self.tx.clone(), self.node_label.clone());
            let task = tokio::spawn(async move {
                let mut seen: BTreeMap<String, u64> = BTreeMap::new();
                let backoff = Reconnect::of(&node, "BareMetalHosts");
                let stream = watcher(api, cfg).backoff(backoff).filter_map(move |ev| {
                    let changed = match &ev {
                        Ok(watcher::Event::Apply(h) | watcher::Event::InitApply(h)) => {
                            metal3_change(&mut seen, h)
                        }
                        Ok(watcher::Event::Delete(h)) => seen.remove(&h.name_any()).is_some(),
                        Ok(watcher::Event::Init | watcher::Event::InitDone) => false,
                        Err(_) => true,
                    };
                    std::future::ready(changed.then_some(ev))
                });
                forward(stream, tx, "BareMetalHosts").await
            });
            self.hosts.insert(ns.clone(), AbortOnDrop(task));
        }
    }

    /// Returns after the next event, once the events following it within [`DEBOUNCE`] have
    /// been gathered.
    pub async fn changed(&mut self) {
        if self.rx.recv().await.is_none() {
            return std::future::pending().await;
        }
        tokio::time::sleep(DEBOUNCE).await;
        while self.rx.try_recv().is_ok() {}
    }
}

/// What of a Vino makes a host act: its generation (spec changes; the start of a deletion
/// bumps it too) and whether it is being deleted.
fn vino_change(v: &Vino) -> Option<u64> {
    Some(digest(&(
        v.metadata.generation,
        v.metadata.deletion_timestamp.is_some(),
    )))
}

/// What of a Node makes a host act: its labels (which Vinos select it), whether it is down
/// (who coordinates) and, for this host's own Node (`me`), its addresses (the BMC address).
/// A Node's appearance and deletion are changes too.
fn node_change(n: &Node, me: &str) -> u64 {
    let addresses: Vec<(String, String)> = n
        .status
        .as_ref()
        .and_then(|s| s.addresses.as_ref())
        .filter(|_| n.name_any() == me)
        .map(|a| {
            a.iter()
                .map(|a| (a.type_.clone(), a.address.clone()))
                .collect()
        })
        .unwrap_or_default();
    digest(&(n.labels(), addresses, crate::kube::source::node_down(n)))
}

/// Whether metal3 changed what a host reports of `host` since it was last seen: its
/// provisioning, operational and power state, its error, or the start of its deletion. A host
/// seen for the first time without any of them (just created by this host) is not a change.
fn metal3_change(seen: &mut BTreeMap<String, u64>, host: &DynamicObject) -> bool {
    let status = &host.data["status"];
    let fields = (
        status["provisioning"]["state"].as_str().unwrap_or_default(),
        status["operationalStatus"].as_str().unwrap_or_default(),
        status["errorType"].as_str().unwrap_or_default(),
        status["poweredOn"].as_bool(),
        host.metadata.deletion_timestamp.is_some(),
    );
    let fresh = fields == ("", "", "", None, false);
    let h = digest(&fields);
    match seen.insert(host.name_any(), h) {
        Some(old) => old != h,
        None => !fresh,
    }
}

fn digest(value: &impl Hash) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    value.hash(&mut h);
    h.finish()
}

/// Forwards every item of a watch stream as a trigger; errors are logged (the watcher retries
/// with backoff) and trigger a pass too, which then reports whether the API can be read.
async fn forward<T, S>(stream: S, tx: mpsc::Sender<()>, what: &'static str)
where
    S: futures::Stream<Item = Result<T, watcher::Error>> + Send,
{
    let mut stream = std::pin::pin!(stream);
    while let Some(ev) = stream.next().await {
        if let Err(e) = &ev {
            warn!(watch = what, error = %e, "watch failed; retrying");
        }
        // A full channel already holds a trigger.
        let _ = tx.try_send(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn host(status: serde_json::Value) -> DynamicObject {
        serde_json::from_value(json!({
            "apiVersion": "metal3.io/v1alpha1",
            "kind": "BareMetalHost",
            "metadata": {"name": "rack-node-a-worker-0", "namespace": "lab"},
            "spec": {"online": false},
            "status": status,
        }))
        .unwrap()
    }

    #[test]
    fn only_metal3_changes_wake_the_host() {
        let mut seen = BTreeMap::new();
        // Created by this host: nothing metal3 said yet.
        assert!(!metal3_change(&mut seen, &host(json!(null))));
        // vinod's own update (spec, labels) leaves the status as it was.
        assert!(!metal3_change(&mut seen, &host(json!(null))));
        let registering =
            json!({"provisioning": {"state": "registering"}, "operationalStatus": "OK"});
        assert!(metal3_change(&mut seen, &host(registering.clone())));
        assert!(!metal3_change(&mut seen, &host(registering)));
        let powered = json!({"provisioning": {"state": "available"}, "operationalStatus": "OK",
                             "poweredOn": true, "lastUpdated": "2026-12-07T17:00:00Z"});
        assert!(metal3_change(&mut seen, &host(powered.clone())));
        // A heartbeat-like status write (only a timestamp) is not a change.
        let mut later = powered;
        later["lastUpdated"] = json!("2026-12-07T17:00:30Z");
        assert!(!metal3_change(&mut seen, &host(later)));
        // A host first seen after a restart with a state is one.
        let mut fresh = BTreeMap::new();
        assert!(metal3_change(
            &mut fresh,
            &host(json!({"provisioning": {"state": "provisioned"}}))
        ));
    }
}
