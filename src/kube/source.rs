//! The cluster [`VinoSource`]: this host's Node and every Vino from the API server, IP claims
//! held as `VinoPoolClaim`s, BareMetalHosts and Secrets published, this host's status
//! entry reported, Events sent, and the Vinos that were deleted or no longer select the host
//! torn down.
//!
//! Every read comes before any change to the host: if the Node, the Vinos, the Nodes or a
//! credentials Secret cannot be read, the pass fails and changes nothing (an error is never
//! taken for "no Vinos").

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use k8s_openapi::api::core::v1::{Node, Secret};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use tracing::warn;

use super::claims::{self, Holder, ReserveError};
use super::finalizer::{self, FinalizeError, has_finalizer};
use super::{KubeError, hardware, publish, status};
use crate::api::host_use::HostUse;
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
    events: status::Events,
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
}

impl KubeSource {
    /// The source for Node `node_name` talking to the API server through `client`.
    pub fn new(client: Client, node_name: String) -> Self {
        let events = status::Events::new(client.clone(), &node_name);
        Self {
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

    /// This host's facts from its Node: labels, addresses (InternalIP first; a configured
    /// `redfish.advertise_address` still wins in the planner) and the NUMA layout from sysfs.
    fn facts_of(&self, me: &Node) -> NodeFacts {
        NodeFacts {
            name: self.node_name.clone(),
            labels: me.labels().clone(),
            addresses: node_addresses(me),
            numa: self.numa.clone(),
        }
    }

    fn vino(&self, owner: &str) -> Option<&Vino> {
        self.vinos
            .iter()
            .find(|v| Owner::of(v).to_string() == owner)
    }

    /// Publishes `p` (if planned) and reports `r`; returns objects changed and what failed.
    async fn publish_one(
        &self,
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
                    let stored = &mut *self.hardware.lock().await;
                    stored.forget(&p.owner.namespace, rep.created.iter().chain(&rep.recreated));
                    match hardware::publish(&self.client, p, stored).await {
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
        let selected = selected_hosts(vino, &self.nodes, &self.node_name);
        if let Err(e) = status::report(
            &self.client,
            &owner.namespace,
            &owner.name,
            &r.status,
            &selected,
        )
        .await
        {
            warn!(vino = %owner, error = %error_chain(&e), "cannot report status");
            errors.push(e);
        }
        written
    }
}

impl VinoSource for KubeSource {
    type Error = KubeError;

    async fn read(&mut self) -> Result<Inputs, KubeError> {
        let nodes: Api<Node> = Api::all(self.client.clone());
        let me = nodes
            .get(&self.node_name)
            .await
            .map_err(|e| KubeError::api(format!("read Node {}", self.node_name), e))?;
        self.node = self.facts_of(&me);
        self.holder = Holder {
            name: self.node_name.clone(),
            uid: me.uid().unwrap_or_default(),
        };
        self.nodes = nodes
            .list(&ListParams::default())
            .await
            .map_err(|e| KubeError::api("list Nodes", e))?
            .items
            .iter()
            .map(|n| NodeFacts {
                name: n.name_any(),
                labels: n.labels().clone(),
                ..Default::default()
            })
            .collect();
        self.vinos = Api::<Vino>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .map_err(|e| KubeError::api("list Vinos", e))?
            .items;
        self.vinos.sort_by_key(Owner::of);
        let (vinos, leaving): (Vec<Vino>, Vec<Vino>) = self
            .vinos
            .iter()
            .filter(|v| active(v, &self.node) || has_finalizer(v, &self.node_name))
            .cloned()
            .partition(|v| active(v, &self.node));
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
        let node = self.node_name.as_str();
        finalizer::reconcile(&self.client, vino, node, true, || async {
            Ok::<(), KubeError>(())
        })
        .await
        .map_err(|e| match e {
            FinalizeError::Kube(e) | FinalizeError::Teardown { source: e, .. } => {
                Unplanned::Source(e)
            }
        })?;
        claims::reserve(&self.client, vino, &self.holder, |all| {
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
            let Some(vino) = self.vino(&r.vino) else {
                continue;
            };
            let plan = plans.iter().find(|p| p.owner.to_string() == r.vino);
            out.written += self.publish_one(vino, plan, r, &mut out.errors).await;
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

/// The Node names `vino` selects (this host's view of its labels included).
fn selected_hosts(vino: &Vino, nodes: &[NodeFacts], me: &str) -> BTreeSet<String> {
    nodes
        .iter()
        .filter(|n| plan::selects(vino, n))
        .map(|n| n.name.clone())
        .filter(|n| n != me || vino.metadata.deletion_timestamp.is_none())
        .collect()
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
