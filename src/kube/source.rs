//! The cluster [`VinoSource`]: this host's Node and every Vino from the API server (from the
//! daemon's watch caches when it runs them, else read each pass), IP claims held as
//! `VinoPoolClaim`s, BareMetalHosts and Secrets published, this host's `VinoNode` written,
//! the summary of the Vinos it coordinates, Events sent, and the Vinos that were deleted or no
//! longer select the host torn down.
//!
//! Every read comes before any change to the host: if the Node, the Vinos, the Nodes or a
//! credentials Secret cannot be read, the pass fails and changes nothing (an error is never
//! taken for "no Vinos").

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use futures::FutureExt;

use k8s_openapi::api::core::v1::{Node, Secret};
use kube::api::{Api, ListParams};
use kube::runtime::reflector::Store;
use kube::{Client, ResourceExt};
use tracing::warn;

use super::claims::{self, Holder, ReserveError};
use super::summary::{Summaries, coordinator};
use super::{KubeError, finalizer, hardware, membership, publish, vm_events};
use crate::api::host_use::HostUse;
use crate::api::vino_node::VinoNode;
use crate::api::{NodePhase, Vino};
use crate::error_chain;
use crate::host::facts;
use crate::plan::{self, NodeFacts, NumaNode, VinoPlan, credentials};
use crate::reconcile::report::VinoReport;
use crate::reconcile::source::{Finished, Inputs, Planner, Published, Unplanned, VinoSource};
use crate::state::Owner;

mod events;
mod teardown;

/// Vinos from the API server, as host `node_name`.
pub struct KubeSource {
    /// The API client (this host's identity).
    pub client: Client,
    /// This host's Node name.
    pub node_name: String,
    /// This host's CPUs by NUMA node (from sysfs).
    pub numa: Vec<NumaNode>,
    events: vm_events::Events,
    /// What the last read saw: every Vino (also those leaving), every Node, this host.
    vinos: Vec<Vino>,
    nodes: Vec<NodeFacts>,
    node: NodeFacts,
    /// This host's Node as the holder (owner) of its IP claims.
    holder: Holder,
    /// The BareMetalHost each planned domain was published as, from the plans of earlier
    /// passes: a deleted VM's Event names its host without deriving it from the domain name.
    published_as: BTreeMap<String, String>,
    /// The HardwareData this host knows to be stored.
    hardware: tokio::sync::Mutex<hardware::Stored>,
    /// This host's `VinoNode`s by Vino: read once, then kept by this host's own writes (it is
    /// their only writer).
    members: Option<BTreeMap<Owner, VinoNode>>,
    /// The summaries of the Vinos this host coordinates.
    summaries: Summaries,
    /// The daemon's watch caches of every Node and every Vino, when it runs them.
    caches: Option<(Store<Node>, Store<Vino>)>,
}

impl KubeSource {
    /// The source for Node `node_name` talking to the API server through `client`.
    pub fn new(client: Client, node_name: String) -> Self {
        let events = vm_events::Events::new(client.clone(), &node_name);
        Self {
            summaries: Summaries::new(client.clone()),
            members: None,
            caches: None,
            client,
            numa: facts::numa_nodes(Path::new("/sys")),
            events,
            vinos: Vec::new(),
            nodes: Vec::new(),
            node: NodeFacts::default(),
            holder: Holder::default(),
            published_as: BTreeMap::new(),
            hardware: Default::default(),
            node_name,
        }
    }

    /// Reads Nodes and Vinos from these watch caches instead of the API server.
    pub fn use_caches(&mut self, nodes: Store<Node>, vinos: Store<Vino>) {
        self.caches = Some((nodes, vinos));
    }

    /// The summaries this host writes, for a task that keeps them current between passes.
    pub fn summaries(&self) -> Summaries {
        self.summaries.clone()
    }

    /// This host's Node, every Node and every Vino: from the caches, or read.
    async fn read_cluster(&self) -> Result<(Node, Vec<Node>, Vec<Vino>), KubeError> {
        if let Some((nodes, vinos)) = &self.caches {
            let (Some(_), Some(_)) = (
                nodes.wait_until_ready().now_or_never(),
                vinos.wait_until_ready().now_or_never(),
            ) else {
                return Err(KubeError::NotCached);
            };
            let all: Vec<Node> = nodes.state().iter().map(|n| (**n).clone()).collect();
            let me = all
                .iter()
                .find(|n| n.name_any() == self.node_name)
                .cloned()
                .ok_or_else(|| KubeError::NoNode(self.node_name.clone()))?;
            let vinos = vinos.state().iter().map(|v| (**v).clone()).collect();
            return Ok((me, all, vinos));
        }
        let nodes: Api<Node> = Api::all(self.client.clone());
        let me = nodes
            .get(&self.node_name)
            .await
            .map_err(|e| KubeError::api(format!("read Node {}", self.node_name), e))?;
        let all = nodes
            .list(&ListParams::default())
            .await
            .map_err(|e| KubeError::api("list Nodes", e))?
            .items;
        let vinos = Api::<Vino>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .map_err(|e| KubeError::api("list Vinos", e))?
            .items;
        Ok((me, all, vinos))
    }

    /// Whether this host serves `vino`: it has a `VinoNode` for it, or the finalizer of an
    /// earlier version.
    fn serves(&self, vino: &Vino) -> bool {
        self.members
            .as_ref()
            .is_some_and(|m| m.contains_key(&Owner::of(vino)))
            || finalizer::has_finalizer(vino, &self.node_name)
    }

    /// Whether this host writes `vino`'s summary.
    fn coordinates(&self, vino: &Vino) -> bool {
        coordinator(vino, &self.nodes) == Some(self.node_name.as_str())
    }

    /// Writes this host's `VinoNode` for `vino` with `entry` unless it already says that.
    async fn report(
        &mut self,
        vino: &Vino,
        entry: &crate::api::NodeStatus,
    ) -> Result<(), KubeError> {
        let owner = Owner::of(vino);
        let uid = vino.metadata.uid.clone().unwrap_or_default();
        let held = self
            .members
            .get_or_insert_with(BTreeMap::new)
            .get(&owner)
            .cloned();
        if let Some(h) = &held {
            if h.spec.vino_uid == uid && h.spec.entry() == *entry {
                return Ok(());
            }
            if h.spec.vino_uid != uid {
                // Left by an earlier Vino of the same name: its Vino never changes.
                membership::delete(&self.client, &owner, &self.node_name).await?;
            }
        }
        // The labels it joined with, which never change.
        let labels = match &held {
            Some(h) if h.spec.vino_uid == uid => h.spec.node_labels.clone(),
            _ => self.node.labels.clone(),
        };
        let stored = membership::write(&self.client, vino, &self.holder, &labels, entry).await?;
        self.members
            .get_or_insert_with(BTreeMap::new)
            .insert(owner, stored);
        Ok(())
    }

    /// This host's facts from its Node: labels, addresses (InternalIP first; a configured
    /// `redfish.advertise_address` still wins in the planner) and the NUMA layout from sysfs.
    fn facts_of(&self, me: &Node) -> NodeFacts {
        NodeFacts {
            name: self.node_name.clone(),
            labels: me.labels().clone(),
            addresses: node_addresses(me),
            numa: self.numa.clone(),
            down: node_down(me),
        }
    }

    fn vino(&self, owner: &str) -> Option<&Vino> {
        self.vinos
            .iter()
            .find(|v| Owner::of(v).to_string() == owner)
    }

    /// Publishes `p` (if planned) and reports `r`; returns objects changed and what failed.
    async fn publish_one(
        &mut self,
        vino: &Vino,
        plan: Option<&VinoPlan>,
        r: &mut VinoReport,
        errors: &mut Vec<KubeError>,
    ) -> usize {
        let mut written = 0;
        if let Some(p) = plan {
            match publish::publish(&self.client, p).await {
                Ok(rep) => {
                    written = rep.created.len() + rep.recreated.len() + rep.deleted.len();
                    for bmh in &rep.recreated {
                        if let Err(e) = self.events.host_recreated(vino, bmh).await {
                            warn!(error = %error_chain(&e), "cannot send an Event");
                        }
                    }
                    if !rep.errors.is_empty() {
                        let text: Vec<String> = rep.errors.iter().map(|e| error_chain(e)).collect();
                        r.degrade(format!("publishing failed: {}", text.join("; ")));
                        errors.extend(rep.errors);
                    } else if !rep.pending.is_empty() && r.status.phase == NodePhase::Ready {
                        r.status.phase = NodePhase::Progressing;
                    }
                    r.note_metal3(&rep.uses);
                    let stored = &mut *self.hardware.lock().await;
                    match hardware::publish(&self.client, p, &rep.uids, stored).await {
                        Ok(n) => written += n,
                        Err(e) => {
                            r.degrade(format!("publishing failed: {}", error_chain(&e)));
                            errors.push(e);
                        }
                    }
                }
                Err(e) => {
                    r.degrade(format!("publishing failed: {}", error_chain(&e)));
                    errors.push(e);
                }
            }
        }
        let owner = Owner::of(vino);
        if let Err(e) = self.report(vino, &r.status).await {
            warn!(vino = %owner, error = %error_chain(&e), "cannot report status");
            errors.push(e);
        } else if membership::has_legacy(vino, &self.node_name)
            && let Err(e) = membership::migrate(&self.client, vino, &self.node_name).await
        {
            warn!(vino = %owner, error = %error_chain(&e), "cannot remove what an earlier version wrote");
            errors.push(e);
        }
        if self.coordinates(vino)
            && vino.metadata.deletion_timestamp.is_none()
            && let Err(e) = self.summaries.refresh(&owner).await
        {
            warn!(vino = %owner, error = %error_chain(&e), "cannot write the summary");
            errors.push(e);
        }
        written
    }
}

impl VinoSource for KubeSource {
    type Error = KubeError;

    async fn read(&mut self) -> Result<Inputs, KubeError> {
        let (me, all, vinos) = self.read_cluster().await?;
        self.node = self.facts_of(&me);
        self.holder = Holder {
            name: self.node_name.clone(),
            uid: me.uid().unwrap_or_default(),
            share: None,
        };
        self.nodes = all
            .iter()
            .map(|n| NodeFacts {
                name: n.name_any(),
                labels: n.labels().clone(),
                down: node_down(n),
                ..Default::default()
            })
            .collect();
        self.vinos = vinos;
        self.vinos.sort_by_key(Owner::of);
        if self.members.is_none() {
            self.members = Some(membership::list_own(&self.client, &self.node_name).await?);
        }
        let (vinos, leaving): (Vec<Vino>, Vec<Vino>) = self
            .vinos
            .iter()
            .filter(|v| active(v, &self.node) || self.serves(v))
            .cloned()
            .partition(|v| active(v, &self.node));
        let coordinated: Vec<(Vino, BTreeSet<String>)> = self
            .vinos
            .iter()
            .filter(|v| v.metadata.deletion_timestamp.is_none() && self.coordinates(v))
            .map(|v| (v.clone(), selected_hosts(v, &self.nodes)))
            .collect();
        self.summaries.set(coordinated);
        let mut secrets = BTreeMap::new();
        let referenced = vinos
            .iter()
            .chain(&leaving)
            .filter_map(credentials::secret_ref);
        for (namespace, name) in referenced {
            let api: Api<Secret> = Api::namespaced(self.client.clone(), &namespace);
            let found = api.get_opt(&name).await.map_err(|e| {
                KubeError::api(format!("read BMC credentials Secret {namespace}/{name}"), e)
            })?;
            if let Some(s) = found {
                secrets.insert((namespace, name), s);
            }
        }
        Ok(Inputs {
            node: self.node.clone(),
            vinos,
            leaving,
            secrets,
            problem: None,
        })
    }

    async fn reserve(
        &mut self,
        vino: &Vino,
        plan: &mut Planner<'_>,
    ) -> Result<VinoPlan, Unplanned<KubeError>> {
        // The Vino keeps its finalizer and this host its VinoNode before anything is built:
        // a Vino deleted meanwhile then waits for this host's teardown.
        membership::ensure_finalizer(&self.client, vino)
            .await
            .map_err(Unplanned::Source)?;
        if !self.serves(vino) {
            let entry = crate::api::NodeStatus {
                name: self.node_name.clone(),
                observed_generation: vino.metadata.generation,
                ..Default::default()
            };
            self.report(vino, &entry).await.map_err(Unplanned::Source)?;
        }
        // This host's part of the pools: its rank among the Nodes the Vino selects, so that
        // hosts that start together claim different units.
        let selected = selected_hosts(vino, &self.nodes);
        let holder = Holder {
            share: selected
                .iter()
                .position(|n| *n == self.node_name)
                .map(|i| crate::ipam::Share {
                    index: i as u32,
                    parts: selected.len() as u32,
                }),
            ..self.holder.clone()
        };
        claims::reserve(&self.client, vino, &holder, |all| {
            plan(all).map(|p| (p.claims.clone(), p))
        })
        .await
        .map_err(|e| match e {
            ReserveError::Plan(e) => Unplanned::Invalid(e),
            ReserveError::Spec(e) => Unplanned::Invalid(e.into()),
            ReserveError::Kube(e) => Unplanned::Source(e),
        })
    }

    async fn host_uses(
        &mut self,
        owner: &Owner,
        names: &[String],
    ) -> Result<BTreeMap<String, HostUse>, KubeError> {
        self.uses_of(owner, names).await
    }

    async fn publish(
        &mut self,
        plans: &[VinoPlan],
        reports: &mut [VinoReport],
    ) -> Published<KubeError> {
        let mut out = Published::default();
        for r in reports.iter_mut() {
            let Some(vino) = self.vino(&r.vino).cloned() else {
                continue;
            };
            let plan = plans.iter().find(|p| p.owner.to_string() == r.vino);
            out.written += self.publish_one(&vino, plan, r, &mut out.errors).await;
        }
        out
    }

    async fn finish(&mut self, pass: &Finished<'_>) -> Vec<KubeError> {
        self.send_events(pass).await;
        self.release_departed(pass.now, pass.departing).await
    }
}

/// Whether the Vino selects the host and is not being deleted.
fn active(vino: &Vino, node: &NodeFacts) -> bool {
    vino.metadata.deletion_timestamp.is_none() && plan::selects(vino, node)
}

/// The Node names `vino` selects.
fn selected_hosts(vino: &Vino, nodes: &[NodeFacts]) -> BTreeSet<String> {
    nodes
        .iter()
        .filter(|n| plan::selects(vino, n))
        .map(|n| n.name.clone())
        .collect()
}

/// Whether `node`'s `Ready` condition is there and not `True` ([`NodeFacts::down`]).
pub fn node_down(node: &Node) -> bool {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status != "True")
}

/// A Node's addresses, InternalIP first, then the others that are IPs.
fn node_addresses(node: &Node) -> Vec<IpAddr> {
    let addrs = node
        .status
        .as_ref()
        .and_then(|s| s.addresses.clone())
        .unwrap_or_default();
    let mut out: Vec<IpAddr> = addrs
        .iter()
        .filter(|a| a.type_ == "InternalIP")
        .chain(addrs.iter().filter(|a| a.type_ != "InternalIP"))
        .filter_map(|a| a.address.parse().ok())
        .collect();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ip_comes_first() {
        let node: Node = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "n"},
            "status": {"addresses": [
                {"type": "Hostname", "address": "n"},
                {"type": "ExternalIP", "address": "203.0.113.9"},
                {"type": "InternalIP", "address": "10.0.0.5"},
            ]}
        }))
        .unwrap();
        let want: Vec<IpAddr> = vec!["10.0.0.5".parse().unwrap(), "203.0.113.9".parse().unwrap()];
        assert_eq!(node_addresses(&node), want);
        assert!(node_addresses(&Node::default()).is_empty());
    }
}
