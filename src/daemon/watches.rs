//! The cluster daemon's watches: every Vino, every Node, and each credentials Secret a
//! selected Vino references. The Vinos and Nodes are kept in caches that the passes read
//! instead of listing them; an event that matters (or a watch error) is a trigger for the next
//! pass.
//!
//! Only changes a host acts on wake it: a Vino's generation (its spec, or the start of its
//! deletion), a Node's labels, appearance or deletion (which Vinos select which hosts, and who
//! coordinates them), and this host's Node's addresses. Status writes, finalizers and kubelet
//! heartbeats do not, so a status write does not make every host run a pass.

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Secret};
use kube::Client;
use kube::ResourceExt;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::AbortOnDrop;
use crate::api::Vino;

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
        let fixed = vec![
            AbortOnDrop(tokio::spawn(async move {
                let stream = watcher(vinos, watcher::Config::default())
                    .default_backoff()
                    .reflect(vino_writer)
                    .touched_objects()
                    .predicate_filter(vino_change, Default::default());
                forward(stream, t1, "Vinos").await
            })),
            AbortOnDrop(tokio::spawn(async move {
                let mut seen: BTreeMap<String, u64> = BTreeMap::new();
                let stream = watcher(nodes, watcher::Config::default())
                    .default_backoff()
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
            let tx = self.tx.clone();
            let task = tokio::spawn(async move {
                forward(watcher(api, cfg).default_backoff(), tx, "Secret").await
            });
            self.secrets.insert(r.clone(), AbortOnDrop(task));
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

/// What of a Node makes a host act: its labels (which Vinos select it) and, for this host's
/// own Node (`me`), its addresses (the BMC address). A Node's appearance and deletion are
/// changes too.
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
    digest(&(n.labels(), addresses))
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
