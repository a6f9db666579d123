//! One pass, the same in both modes: read the inputs → plan every Vino once (one CPU ledger)
//! → merge → diff → apply → observe → per-Vino reports → publish → finish, and the BMC
//! credential table. What differs between modes is behind [`VinoSource`].

use std::collections::{BTreeMap, BTreeSet};

use tracing::{info, warn};

use super::departures;
use super::report::VinoReport;
use super::source::{Failure, FailureKind, Finished, Inputs, Unplanned, VinoSource};
use super::{Adapters, AfterOp, Outcome, ReconcileError};
use crate::api::{NodePhase, Vino};
use crate::config::Config;
use crate::error_chain;
use crate::host::{Bridges, DhcpServers, Hypervisor};
use crate::plan::cpu::CpuLedger;
use crate::plan::diff::diff;
use crate::plan::merge::merge;
use crate::plan::{self, HostNetwork, PlanError, PlanInput, VinoPlan, credentials};
use crate::redfish::BmcCredentials;
use crate::render::objects::Credentials;
use crate::state::{HostState, Owner};

/// A host's reconcile: where its Vinos come from, its adapters and its configuration.
pub struct Host<S, B, D, H> {
    /// The Vinos' source.
    pub source: S,
    /// Host adapters.
    pub adapters: Adapters<B, D, H>,
    /// Configuration.
    pub config: Config,
    bmc: Option<BmcCredentials>,
}

/// What one pass found and did.
#[derive(Debug)]
pub struct PassReport {
    /// This host's Node name.
    pub node: String,
    /// Per-Vino status on this host, sorted by Vino.
    pub reports: Vec<VinoReport>,
    /// Operations applied and failed.
    pub outcome: Outcome,
    /// Whether the host matches every plannable Vino and everything was published.
    pub converged: bool,
    /// Whether the host alone matches every plannable Vino.
    pub host_converged: bool,
    /// A problem with the input that did not stop the pass (the last good manifest was used).
    pub input_problem: Option<String>,
    /// Objects written, created or deleted by publication.
    pub objects_written: usize,
    /// The plans built.
    pub plans: Vec<VinoPlan>,
    /// The host after the pass.
    pub now: HostState,
    /// Every error of the pass, as text.
    pub errors: Vec<String>,
    /// The credentials Secrets the Vinos reference, by (namespace, name).
    pub secrets_used: BTreeSet<(String, String)>,
    /// The namespaces of the Vinos this host serves or leaves (where its BareMetalHosts are).
    pub namespaces_used: BTreeSet<String>,
    /// The worst kind of failure seen, if any.
    pub failure: Option<FailureKind>,
}

/// Why a pass failed before changing anything.
#[derive(Debug, thiserror::Error)]
pub enum PassError<E> {
    /// The inputs could not be read.
    #[error("cannot read the inputs")]
    Read(#[source] E),
    /// The host could not be observed.
    #[error(transparent)]
    Host(#[from] ReconcileError),
}

impl<E: Failure> PassError<E> {
    /// What kind of failure it is.
    pub fn kind(&self) -> FailureKind {
        match self {
            PassError::Read(e) => e.kind(),
            PassError::Host(_) => FailureKind::Host,
        }
    }
}

/// The plans of one pass.
struct Planned {
    plans: Vec<VinoPlan>,
    frozen: Vec<Owner>,
    reports: Vec<VinoReport>,
    failure: Option<FailureKind>,
}

/// The credentials a Vino's `secretRef` Secret gives: `Ok(None)` without one or if it does
/// not exist (the planner reports that).
type FromSecret = Result<Option<Credentials>, PlanError>;

impl<S, B, D, H> Host<S, B, D, H> {
    /// A host reconciling `source`'s Vinos with `adapters`.
    pub fn new(source: S, adapters: Adapters<B, D, H>, config: Config) -> Self {
        Self {
            source,
            adapters,
            config,
            bmc: None,
        }
    }

    /// Keeps `table` (the Redfish server's) set to the BMC credentials of this host's Vinos.
    pub fn with_bmc_credentials(mut self, table: BmcCredentials) -> Self {
        self.bmc = Some(table);
        self
    }
}

impl<S, B, D, H> Host<S, B, D, H>
where
    S: VinoSource,
    B: Bridges + Sync,
    D: DhcpServers + Sync,
    H: Hypervisor + Sync,
{
    /// Reads, plans, applies, publishes and finishes once.
    pub async fn pass(&mut self, after_op: AfterOp<'_>) -> Result<PassReport, PassError<S::Error>> {
        let inputs = self.source.read().await.map_err(PassError::Read)?;
        if let Some(table) = &self.bmc {
            // Leaving Vinos too: BMO deprovisions their hosts through the BMC before they go.
            let all: Vec<Vino> = inputs
                .vinos
                .iter()
                .chain(&inputs.leaving)
                .cloned()
                .collect();
            table.replace(&bmc_table(&all, &secret_credentials(&inputs)));
        }
        let observed = self.adapters.observe().await?;
        let host_network = self.adapters.host_network().await?;
        let mut failure = inputs.problem.as_ref().map(|_| FailureKind::InvalidInput);

        let Planned {
            mut plans,
            mut frozen,
            mut reports,
            failure: plan_failure,
        } = self.plan_all(&inputs, &observed, &host_network).await;
        failure = failure.max(plan_failure);
        let (departing, held_failure) = self
            .hold_departed(&inputs, &observed, &mut frozen, &mut reports)
            .await;
        failure = failure.max(held_failure);

        let (desired, conflicts) = merge(&plans, &frozen, &observed);
        for c in &conflicts {
            warn!(vino = %c.frozen, holder = %c.holder, what = %c.what, "name already used by another Vino");
            plans.retain(|p| p.owner != c.frozen);
            failure = failure.max(Some(FailureKind::InvalidInput));
            reports.push(VinoReport::degraded(
                &c.frozen,
                format!("{} is already used by Vino {}", c.what, c.holder),
            ));
        }
        let ops = diff(&desired, &observed);
        info!(
            operations = ops.len(),
            vinos = inputs.vinos.len(),
            "reconciling"
        );
        let outcome = self.adapters.apply(ops, after_op).await;
        let now = self.adapters.observe().await?;
        let host_converged = outcome.errors.is_empty() && diff(&desired, &now).is_empty();
        if !host_converged {
            failure = failure.max(Some(FailureKind::Host));
        }
        let first_error = outcome.errors.first().map(|e| error_chain(e));
        for p in &plans {
            let mut r = VinoReport::of_plan(p, &desired, &now, first_error.clone());
            r.note_departures(&p.departing);
            reports.push(r);
        }
        for r in &mut reports {
            r.status.name = inputs.node.name.clone();
            r.status.observed_generation = generation_of(&inputs.vinos, &r.vino);
        }
        reports.sort_by(|a, b| a.vino.cmp(&b.vino));

        let publishable = without_undefined_vms(&plans, &observed, &now);
        let published = self.source.publish(&publishable, &mut reports).await;
        let finished = Finished {
            plans: &plans,
            observed: &observed,
            now: &now,
            first_error: first_error.as_deref(),
            departing: &departing,
        };
        let source_errors = published
            .errors
            .into_iter()
            .chain(self.source.finish(&finished).await);
        let mut errors: Vec<String> = outcome.errors.iter().map(|e| error_chain(e)).collect();
        for e in source_errors {
            failure = failure.max(Some(e.kind()));
            errors.push(error_chain(&e));
        }
        errors.extend(inputs.problem.clone());
        if let Some(table) = &self.bmc {
            table.mark_current();
        }
        // Publication still waiting (a BareMetalHost being deleted): look again soon.
        let settled = reports
            .iter()
            .all(|r| r.status.phase != NodePhase::Progressing);
        Ok(PassReport {
            node: inputs.node.name.clone(),
            converged: host_converged && errors.is_empty() && settled,
            host_converged,
            outcome,
            input_problem: inputs.problem.clone(),
            objects_written: published.written,
            secrets_used: inputs
                .vinos
                .iter()
                .filter_map(credentials::secret_ref)
                .collect(),
            namespaces_used: inputs
                .vinos
                .iter()
                .chain(&inputs.leaving)
                .filter_map(|v| v.metadata.namespace.clone())
                .collect(),
            reports,
            plans,
            now,
            errors,
            failure,
        })
    }

    /// Reserves claims for and plans every Vino of `inputs`, with one CPU ledger: a Vino that
    /// cannot be planned is frozen and reported.
    async fn plan_all(
        &mut self,
        inputs: &Inputs,
        observed: &HostState,
        host_network: &HostNetwork,
    ) -> Planned {
        let mut from_secret = secret_credentials(inputs);
        let mut failure = None;
        let owners: Vec<Owner> = inputs.vinos.iter().map(Owner::of).collect();
        let mut cpus = CpuLedger::new(observed, &owners);
        let mut plans = Vec::new();
        let mut frozen = Vec::new();
        let mut reports = Vec::new();
        for vino in &inputs.vinos {
            let owner = Owner::of(vino);
            let creds = from_secret.remove(&owner).unwrap_or(Ok(None));
            let release = plan::departure::releases_provisioned(Some(&vino.spec));
            let node_name = inputs.node.name.clone();
            let planned = match self
                .departures(&owner, Some(&vino.spec), release, &node_name, observed)
                .await
            {
                Err(e) => Err(Unplanned::Source(e)),
                Ok(leaving) => match (creds, departures::unplannable(&leaving)) {
                    (_, Some(why)) => Err(Unplanned::Held(why)),
                    (Err(e), None) => Err(Unplanned::Invalid(e)),
                    (Ok(creds), None) => {
                        let retained = departures::retained(&leaving);
                        let taken = cpus.taken_for(&owner);
                        let (node, config, current) = (&inputs.node, &self.config, cpus.current());
                        let mut planner = |claims: &_| {
                            plan::plan(PlanInput {
                                vino,
                                node,
                                config,
                                claims,
                                credentials: creds.as_ref(),
                                taken_cpus: &taken,
                                current_pins: current,
                                host_network,
                                retained: &retained,
                            })
                        };
                        let reserved = self.source.reserve(vino, &mut planner).await;
                        reserved.map(|p| (p, leaving))
                    }
                },
            };
            match planned {
                Ok((mut p, leaving)) => {
                    cpus.record(&p.pinned_cpus);
                    departures::settle(&mut p, leaving, observed);
                    plans.push(p);
                }
                Err(e) => {
                    let (kind, why) = match &e {
                        Unplanned::Invalid(e) => (FailureKind::InvalidInput, e.to_string()),
                        Unplanned::Held(why) => (FailureKind::InvalidInput, why.clone()),
                        Unplanned::Source(e) => (e.kind(), error_chain(e)),
                    };
                    warn!(vino = %owner, error = %why, "cannot plan; keeping what it has");
                    failure = failure.max(Some(kind));
                    reports.push(VinoReport::degraded(&owner, why));
                    frozen.push(owner);
                }
            }
        }

        Planned {
            plans,
            frozen,
            reports,
            failure,
        }
    }
}

/// `plans` without the BareMetalHosts (and their Secrets) of VMs whose domain exists neither
/// now nor before the pass: a VM whose definition failed is not offered to metal3, which
/// would register and power a machine that is not there. A VM that existed keeps its
/// BareMetalHost (withdrawing it would make metal3 deprovision a host over a hiccup).
fn without_undefined_vms(
    plans: &[VinoPlan],
    observed: &HostState,
    now: &HostState,
) -> Vec<VinoPlan> {
    plans
        .iter()
        .map(|p| {
            let missing: BTreeSet<String> = p
                .vms
                .iter()
                .filter(|vm| {
                    !now.domains.contains_key(&vm.name) && !observed.domains.contains_key(&vm.name)
                })
                .map(|vm| vm.bare_metal_host.clone())
                .collect();
            if !missing.is_empty() {
                warn!(vino = %p.owner, hosts = ?missing, "BareMetalHosts withheld: their VMs are not defined");
            }
            let mut kept = p.clone();
            kept.withhold(&missing);
            kept
        })
        .collect()
}

/// Each Vino's decoded `secretRef` Secret.
fn secret_credentials(inputs: &Inputs) -> BTreeMap<Owner, FromSecret> {
    inputs
        .vinos
        .iter()
        .chain(&inputs.leaving)
        .map(|v| {
            let secret = credentials::secret_ref(v).and_then(|key| inputs.secrets.get(&key));
            (Owner::of(v), secret.map(credentials::decode).transpose())
        })
        .collect()
}

/// The BMC credentials of every Vino that has some, also of Vinos that cannot be planned, so
/// their running VMs stay reachable.
fn bmc_table(
    vinos: &[Vino],
    from_secret: &BTreeMap<Owner, FromSecret>,
) -> BTreeMap<Owner, Credentials> {
    vinos
        .iter()
        .filter(|v| v.spec.bmc_credentials.is_some())
        .filter_map(|v| {
            let owner = Owner::of(v);
            let secret = from_secret[&owner].as_ref().ok()?.as_ref();
            let c = credentials::resolve(v, secret).ok()?;
            Some((owner, c))
        })
        .collect()
}

fn generation_of(vinos: &[Vino], owner: &str) -> Option<i64> {
    vinos
        .iter()
        .find(|v| Owner::of(v).to_string() == owner)
        .and_then(|v| v.metadata.generation)
}
