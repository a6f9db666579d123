//! One cluster pass: read this host's Node and every Vino from the API server, plan the Vinos
//! that select the host (claims shared through `VinoIPClaim`s), build them all in one host
//! reconcile, publish BareMetalHosts and Secrets, report this host's status entry, and tear
//! down the Vinos that were deleted or no longer select the host.
//!
//! Every read of the API comes before any change to the host: if the Node, the Vinos, the
//! Nodes or a credentials Secret cannot be read, the pass fails and changes nothing (an error is
//! never taken for "no Vinos").

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;

use k8s_openapi::api::core::v1::{Node, Secret};
use kube::api::{Api, ListParams};
use kube::{Client, ResourceExt};
use tracing::warn;

use super::inputs::{VinoReport, owner_of, secret_credentials};
use super::standalone::{Built, build, error_chain, report, vino_report};
use super::status::Snapshot;
use super::watches::Watches;
use super::{Pass, PassReport};
use crate::config::Config;
use crate::host::{Bridges, DhcpServers, Hypervisor, facts};
use crate::kube::claims::{self, ReserveError};
use crate::kube::finalizer;
use crate::kube::{KubeError, publish, status};
use crate::plan::cpu::CpuLedger;
use crate::plan::{self, NodeFacts, NumaNode, PlanInput};
use crate::reconcile::{Adapters, AfterOp, ReconcileError};
use crate::render::objects::Credentials;
use crate::spec::{NodePhase, Vino};
use crate::state::Owner;

mod events;
mod teardown;

/// The cluster daemon's state between passes.
pub struct Cluster<B, D, H> {
    /// Host adapters.
    pub adapters: Adapters<B, D, H>,
    /// Configuration.
    pub config: Config,
    /// The API client (this host's identity).
    pub client: Client,
    /// This host's Node name.
    pub node_name: String,
    /// This host's CPUs by NUMA node (from sysfs).
    pub numa: Vec<NumaNode>,
    /// What the last pass saw and did, for `vinod status`.
    pub snapshot: Snapshot,
    bmc: Option<crate::redfish::BmcCredentials>,
    events: status::Events,
    watches: Option<Watches>,
}

/// Why a pass could not read the cluster (nothing was changed).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ReadError(String);

fn read_failed(what: &'static str, e: impl std::fmt::Display) -> ReconcileError {
    ReconcileError::Observe {
        what,
        source: Box::new(ReadError(e.to_string())),
    }
}

impl<B: Bridges + Sync, D: DhcpServers + Sync, H: Hypervisor + Sync> Cluster<B, D, H> {
    /// A daemon for Node `node_name` talking to the API server through `client`.
    pub fn new(
        adapters: Adapters<B, D, H>,
        config: Config,
        client: Client,
        node_name: String,
    ) -> Self {
        let events = status::Events::new(client.clone(), &node_name);
        Self {
            adapters,
            config,
            client,
            node_name,
            numa: facts::numa_nodes(Path::new("/sys")),
            snapshot: Snapshot::default(),
            bmc: None,
            events,
            watches: None,
        }
    }

    /// Hands each pass's BMC credentials of the selected Vinos to the Redfish server.
    pub fn with_bmc_credentials(mut self, table: crate::redfish::BmcCredentials) -> Self {
        self.bmc = Some(table);
        self
    }

    /// Starts watches of the Vinos, of this host's Node and (from the next pass on) of the
    /// credentials Secrets of the selected Vinos; each event makes [`Pass::changed`] return.
    pub fn watch(&mut self) {
        self.watches = Some(Watches::start(self.client.clone(), &self.node_name));
    }

    /// Reads the cluster, plans, applies, publishes, reports and tears down once.
    pub async fn pass(&mut self, after_op: AfterOp<'_>) -> Result<PassReport, ReconcileError> {
        // 1. Read everything first; any failure changes nothing.
        let nodes_api: Api<Node> = Api::all(self.client.clone());
        let me = nodes_api
            .get(&self.node_name)
            .await
            .map_err(|e| read_failed("this host's Node", e))?;
        let node = self.facts_of(&me);
        let all_nodes: Vec<NodeFacts> = nodes_api
            .list(&ListParams::default())
            .await
            .map_err(|e| read_failed("Nodes", e))?
            .items
            .iter()
            .map(|n| NodeFacts {
                name: n.name_any(),
                labels: n.labels().clone(),
                ..Default::default()
            })
            .collect();
        let mut vinos = Api::<Vino>::all(self.client.clone())
            .list(&ListParams::default())
            .await
            .map_err(|e| read_failed("Vinos", e))?
            .items;
        vinos.sort_by_key(owner_of);
        if let Some(w) = self.watches.as_mut() {
            w.follow_secrets(&secret_refs(&vinos, &node));
        }
        let mut credentials: BTreeMap<Owner, Credentials> = BTreeMap::new();
        for v in vinos.iter().filter(|v| active(v, &node)) {
            if let Some(c) = self.credentials(v).await? {
                credentials.insert(owner_of(v), c);
            }
        }
        if let Some(table) = &self.bmc {
            // The BMC answers for the VMs of selected Vinos, with their Secret's or inline
            // credentials.
            let mut all = credentials.clone();
            for v in vinos.iter().filter(|v| active(v, &node)) {
                let inline = v
                    .spec
                    .bmc_credentials
                    .as_ref()
                    .and_then(|c| c.username.clone().zip(c.password.clone()));
                if let Some((username, password)) = inline {
                    all.insert(owner_of(v), Credentials { username, password });
                }
            }
            table.replace(&all);
        }
        let observed = self.adapters.observe().await?;

        // 2. Finalizer, claims and plan of each selected Vino.
        let mut plans = Vec::new();
        let mut frozen = Vec::new();
        let mut reports = Vec::new();
        let owners: Vec<Owner> = vinos
            .iter()
            .filter(|v| active(v, &node))
            .map(owner_of)
            .collect();
        let mut cpus = CpuLedger::new(&observed, &owners);
        for vino in vinos.iter().filter(|v| active(v, &node)) {
            let owner = owner_of(vino);
            let result =
                match finalizer::reconcile(&self.client, vino, &node.name, true, || async {
                    Ok::<(), KubeError>(())
                })
                .await
                {
                    Ok(_) => claims::reserve(&self.client, vino, &node.name, |all| {
                        plan::plan(PlanInput {
                            vino,
                            node: &node,
                            config: &self.config,
                            claims: all,
                            credentials: credentials.get(&owner),
                            taken_cpus: &cpus.taken_for(&owner),
                            current_pins: cpus.current(),
                        })
                        .map(|p| (p.claims.clone(), p))
                    })
                    .await
                    .map_err(|e| match e {
                        ReserveError::Plan(e) => e.to_string(),
                        ReserveError::Kube(e) => chain(&e),
                    }),
                    Err(e) => Err(chain(&e)),
                };
            match result {
                Ok(p) => {
                    cpus.record(&p.pinned_cpus);
                    plans.push(p);
                }
                Err(e) => {
                    warn!(vino = %owner, error = %e, "cannot plan; keeping what it has");
                    reports.push(report(
                        &owner,
                        NodePhase::Degraded,
                        0,
                        0,
                        Some(e),
                        vino.metadata.generation,
                    ));
                    frozen.push(owner);
                }
            }
        }

        // 3. One host reconcile over every selected Vino; the others' objects go.
        let Built {
            desired,
            now,
            outcome,
            converged,
            conflicts,
        } = build(
            &self.adapters,
            &mut plans,
            &frozen,
            &observed,
            vinos.len(),
            after_op,
        )
        .await?;
        reports.extend(conflicts);
        let first_error = outcome.errors.first().map(error_chain);
        for p in &plans {
            let generation = vinos
                .iter()
                .find(|v| owner_of(v) == p.owner)
                .and_then(|v| v.metadata.generation);
            reports.push(vino_report(
                p,
                &desired,
                &now,
                first_error.clone(),
                generation,
            ));
        }
        for r in &mut reports {
            r.status.name = node.name.clone();
        }

        // 4. Publish and report.
        let mut published = 0;
        let mut errors: Vec<String> = outcome.errors.iter().map(error_chain).collect();
        for r in &mut reports {
            let Some(vino) = vinos.iter().find(|v| owner_of(v).to_string() == r.vino) else {
                continue;
            };
            if let Some(p) = plans.iter().find(|p| p.owner.to_string() == r.vino) {
                match publish::publish(&self.client, p).await {
                    Ok(rep) => {
                        published += rep.created.len() + rep.recreated.len() + rep.deleted.len();
                        for bmh in &rep.recreated {
                            if let Err(e) = self.events.host_recreated(vino, bmh).await {
                                warn!(error = %chain(&e), "cannot send an Event");
                            }
                        }
                        if !rep.errors.is_empty() {
                            degrade(
                                r,
                                &format!(
                                    "publishing failed: {}",
                                    rep.errors
                                        .iter()
                                        .map(|e| chain(e))
                                        .collect::<Vec<_>>()
                                        .join("; ")
                                ),
                            );
                        } else if !rep.pending.is_empty() && r.status.phase == NodePhase::Ready {
                            r.status.phase = NodePhase::Progressing;
                        }
                    }
                    Err(e) => degrade(r, &format!("publishing failed: {}", chain(&e))),
                }
            }
            let selected = selected_hosts(vino, &all_nodes, &node.name);
            let owner = owner_of(vino);
            if let Err(e) = status::report(
                &self.client,
                &owner.namespace,
                &owner.name,
                &r.status,
                &selected,
            )
            .await
            {
                warn!(vino = %owner, error = %chain(&e), "cannot report status");
                errors.push(chain(&e));
            }
        }

        self.send_events(&vinos, &plans, &observed, &now, first_error.as_deref())
            .await;

        // 5. Teardown of Vinos deleted or no longer selecting this host.
        self.release_departed(&vinos, &node, &all_nodes, &now, &mut errors)
            .await;

        reports.sort_by(|a, b| a.vino.cmp(&b.vino));
        // Publication, status or teardown still to finish: retry soon rather than at resync.
        let settled = converged
            && errors.is_empty()
            && reports.iter().all(|r| r.status.phase == NodePhase::Ready);
        self.snapshot =
            Snapshot::after_pass(&node.name, &plans, &now, reports.clone(), errors, converged);
        Ok(PassReport {
            reports,
            outcome,
            converged: settled,
            manifest_error: None,
            objects_written: published,
        })
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

    /// The BMC credentials of `vino` from its `secretRef` Secret; `None` without one or if the
    /// Secret does not exist (the planner reports that). Other read errors fail the pass.
    async fn credentials(&self, vino: &Vino) -> Result<Option<Credentials>, ReconcileError> {
        let Some(r) = vino
            .spec
            .bmc_credentials
            .as_ref()
            .and_then(|c| c.secret_ref.as_ref())
        else {
            return Ok(None);
        };
        let owner = owner_of(vino);
        let api: Api<Secret> = Api::namespaced(self.client.clone(), &owner.namespace);
        match api.get_opt(&r.name).await {
            Ok(s) => Ok(s.as_ref().and_then(secret_credentials)),
            Err(e) => Err(read_failed("a BMC credentials Secret", e)),
        }
    }
}

/// The credentials Secrets referenced by the Vinos that select `node`.
fn secret_refs(vinos: &[Vino], node: &NodeFacts) -> BTreeSet<(String, String)> {
    vinos
        .iter()
        .filter(|v| active(v, node))
        .filter_map(|v| {
            let name = v
                .spec
                .bmc_credentials
                .as_ref()?
                .secret_ref
                .as_ref()?
                .name
                .clone();
            Some((owner_of(v).namespace, name))
        })
        .collect()
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

fn degrade(r: &mut VinoReport, message: &str) {
    r.status.phase = NodePhase::Degraded;
    r.status.message = Some(message.to_string());
}

fn is_gone(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 404)
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

impl<B, D, H> Pass for Cluster<B, D, H>
where
    B: Bridges + Sync,
    D: DhcpServers + Sync,
    H: Hypervisor + Sync,
{
    async fn pass(&mut self, after_op: AfterOp<'_>) -> Result<PassReport, ReconcileError> {
        Cluster::pass(self, after_op).await
    }
    fn config(&self) -> &Config {
        &self.config
    }
    fn set_config(&mut self, config: Config) {
        self.config = config;
    }
    fn snapshot(&self) -> &Snapshot {
        &self.snapshot
    }
    async fn changed(&mut self) {
        match self.watches.as_mut() {
            Some(w) => w.changed().await,
            None => std::future::pending().await,
        }
    }
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
