//! One standalone pass: read the manifest, plan every Vino, merge, apply, publish to files.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use tracing::{info, warn};

use super::inputs::{
    ClaimStore, Manifest, VinoReport, owner_of, read_claims, write_atomic, write_if_changed,
};
use super::status::Snapshot;
use crate::config::Config;
use crate::host::{Bridges, DhcpServers, Hypervisor};
use crate::plan::cpu::CpuLedger;
use crate::plan::diff::diff;
use crate::plan::merge::merge;
use crate::plan::{self, NodeFacts, PlanInput, VinoPlan};
use crate::reconcile::{Adapters, AfterOp, Outcome, ReconcileError};
use crate::redfish::BmcCredentials;
use crate::spec::{NodePhase, NodeStatus};
use crate::state::{HostState, Owner};

/// The standalone daemon's state between passes.
pub struct Standalone<B, D, H> {
    /// Host adapters.
    pub adapters: Adapters<B, D, H>,
    /// Configuration.
    pub config: Config,
    /// This host.
    pub node: NodeFacts,
    /// The manifest file.
    pub manifest_path: PathBuf,
    /// What the last pass saw and did, for `vinod status`.
    pub snapshot: Snapshot,
    last_good: Manifest,
    bmc: Option<BmcCredentials>,
}

/// What one pass found and did.
#[derive(Debug)]
pub struct PassReport {
    /// Per-Vino status on this host.
    pub reports: Vec<VinoReport>,
    /// Operations applied and failed.
    pub outcome: Outcome,
    /// Whether the host now matches every plannable Vino.
    pub converged: bool,
    /// Why the manifest could not be read (the last good one was used).
    pub manifest_error: Option<String>,
    /// Object files (BareMetalHosts, Secrets) rewritten because their content changed.
    pub objects_written: usize,
}

impl<B: Bridges + Sync, D: DhcpServers + Sync, H: Hypervisor + Sync> Standalone<B, D, H> {
    /// A daemon for `manifest_path` on `node`.
    pub fn new(
        adapters: Adapters<B, D, H>,
        config: Config,
        node: NodeFacts,
        manifest_path: PathBuf,
    ) -> Self {
        Self {
            adapters,
            config,
            node,
            manifest_path,
            snapshot: Snapshot::default(),
            last_good: Manifest::default(),
            bmc: None,
        }
    }

    /// Keeps `table` (the Redfish server's) set to the manifest's BMC credentials.
    pub fn with_bmc_credentials(mut self, table: BmcCredentials) -> Self {
        self.bmc = Some(table);
        self
    }

    fn out_dir(&self) -> PathBuf {
        self.config.state_dir.join("standalone")
    }

    /// Reads, plans, applies and publishes once.
    pub async fn pass(&mut self, after_op: AfterOp<'_>) -> Result<PassReport, ReconcileError> {
        let manifest_error = match Manifest::read(&self.manifest_path) {
            Ok(m) => {
                self.last_good = m;
                None
            }
            Err(e) => {
                warn!(error = %e, "cannot read the manifest; keeping the last good one");
                Some(e.to_string())
            }
        };
        let manifest = self.last_good.clone();
        if let Some(table) = &self.bmc {
            table.replace(&super::bmc::bmc_credentials(&manifest));
        }
        let claims_path = self.config.state_dir.join("claims.json");
        let mut store = read_claims(&claims_path).map_err(|e| ReconcileError::Observe {
            what: "IP claims",
            source: Box::new(e),
        })?;
        let observed = self.adapters.observe().await?;

        let mut plans = Vec::new();
        let mut frozen = Vec::new();
        let mut reports = Vec::new();
        let owners: Vec<Owner> = manifest.vinos.iter().map(owner_of).collect();
        let mut cpus = CpuLedger::new(&observed, &owners);
        for vino in &manifest.vinos {
            let owner = owner_of(vino);
            let key = owner.to_string();
            let claims = store.get(&key).cloned().unwrap_or_default();
            let credentials = manifest.credentials(vino);
            match plan::plan(PlanInput {
                vino,
                node: &self.node,
                config: &self.config,
                claims: &claims,
                credentials: credentials.as_ref(),
                taken_cpus: &cpus.taken_for(&owner),
                current_pins: cpus.current(),
            }) {
                Ok(p) => {
                    cpus.record(&p.pinned_cpus);
                    let entry = store.entry(key).or_default();
                    for (net, c) in &p.claims {
                        entry
                            .entry(net.clone())
                            .or_default()
                            .insert(self.node.name.clone(), c.clone());
                    }
                    plans.push(p);
                }
                Err(e) => {
                    warn!(vino = %owner, error = %e, "cannot plan; keeping what it has");
                    reports.push(report(
                        &owner,
                        NodePhase::Degraded,
                        0,
                        0,
                        Some(e.to_string()),
                        vino.metadata.generation,
                    ));
                    frozen.push(owner);
                }
            }
        }
        // Claims of Vinos no longer in the manifest are released; their objects go below.
        let keep: BTreeSet<String> = manifest
            .vinos
            .iter()
            .map(|v| owner_of(v).to_string())
            .collect();
        store.retain(|k, _| keep.contains(k));
        // Claims are saved before anything is built, so a crash never reallocates.
        save_claims(&claims_path, &store)?;

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
            manifest.vinos.len(),
            after_op,
        )
        .await?;
        reports.extend(conflicts);
        let first_error = outcome.errors.first().map(error_chain);
        for p in &plans {
            let generation = manifest
                .vinos
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
        reports.sort_by(|a, b| a.vino.cmp(&b.vino));
        for r in &mut reports {
            r.status.name = self.node.name.clone();
        }
        let objects_written = self.publish(&plans, &reports)?;
        let errors = outcome
            .errors
            .iter()
            .map(error_chain)
            .chain(manifest_error.clone())
            .collect();
        self.snapshot = Snapshot::after_pass(
            &self.node.name,
            &plans,
            &now,
            reports.clone(),
            errors,
            converged,
        );
        Ok(PassReport {
            reports,
            outcome,
            converged,
            manifest_error,
            objects_written,
        })
    }

    /// Writes the objects (only files whose content changed) and the status; returns how many
    /// object files were written.
    fn publish(&self, plans: &[VinoPlan], reports: &[VinoReport]) -> Result<usize, ReconcileError> {
        let fail = |e: super::inputs::FileError| ReconcileError::Apply {
            op: "publish objects".into(),
            source: Box::new(e),
        };
        let out = self.out_dir();
        let mut wanted = BTreeSet::new();
        let mut written = 0;
        for p in plans {
            let dir = out.join(&p.owner.namespace).join(&p.owner.name);
            wanted.insert(dir.clone());
            written += usize::from(
                write_if_changed(
                    &dir.join("baremetalhosts.yaml"),
                    multi_doc(&p.bare_metal_hosts).as_bytes(),
                    0o644,
                )
                .map_err(fail)?,
            );
            // Secret manifests hold the BMC password: readable by root only.
            written += usize::from(
                write_if_changed(
                    &dir.join("secrets.yaml"),
                    multi_doc(&p.secrets).as_bytes(),
                    0o600,
                )
                .map_err(fail)?,
            );
        }
        let status = serde_yaml::to_string(reports).unwrap_or_default();
        write_atomic(&out.join("status.yaml"), status.as_bytes(), 0o644).map_err(fail)?;
        // Objects of Vinos that left the manifest are withdrawn.
        for ns in fs::read_dir(&out)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| e.path().is_dir())
        {
            for dir in fs::read_dir(ns.path())
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
            {
                if dir.is_dir() && !wanted.contains(&dir) {
                    let _ = fs::remove_dir_all(&dir);
                }
            }
        }
        Ok(written)
    }
}

/// What [`build`] did.
pub(super) struct Built {
    /// The desired host state.
    pub desired: HostState,
    /// The host state after applying.
    pub now: HostState,
    /// Operations applied and failed.
    pub outcome: Outcome,
    /// Whether the host matches `desired`.
    pub converged: bool,
    /// Reports of Vinos frozen because a name they want is another Vino's.
    pub conflicts: Vec<VinoReport>,
}

/// Merges `plans` (dropping those that conflict), keeping the objects of `frozen` Vinos, and
/// brings the host there: the host reconcile shared by the standalone and cluster passes.
pub(super) async fn build<B, D, H>(
    adapters: &Adapters<B, D, H>,
    plans: &mut Vec<VinoPlan>,
    frozen: &[Owner],
    observed: &HostState,
    vinos: usize,
    after_op: AfterOp<'_>,
) -> Result<Built, ReconcileError>
where
    B: Bridges + Sync,
    D: DhcpServers + Sync,
    H: Hypervisor + Sync,
{
    let (desired, conflicts) = merge(plans, frozen, observed);
    let mut reports = Vec::new();
    for c in &conflicts {
        warn!(vino = %c.frozen, holder = %c.holder, what = %c.what, "name already used by another Vino");
        plans.retain(|p| p.owner != c.frozen);
        reports.push(report(
            &c.frozen,
            NodePhase::Degraded,
            0,
            0,
            Some(format!("{} is already used by Vino {}", c.what, c.holder)),
            None,
        ));
    }
    let ops = diff(&desired, observed);
    info!(operations = ops.len(), vinos, "reconciling");
    let outcome = adapters.apply(ops, after_op).await;
    let now = adapters.observe().await?;
    let converged = outcome.errors.is_empty() && diff(&desired, &now).is_empty();
    Ok(Built {
        desired,
        now,
        outcome,
        converged,
        conflicts: reports,
    })
}

fn save_claims(path: &std::path::Path, store: &ClaimStore) -> Result<(), ReconcileError> {
    let text = serde_json::to_string_pretty(store).unwrap_or_default();
    write_if_changed(path, text.as_bytes(), 0o644)
        .map(|_| ())
        .map_err(|e| ReconcileError::Apply {
            op: "save IP claims".into(),
            source: Box::new(e),
        })
}

fn multi_doc<T: serde::Serialize>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| format!("---\n{}", serde_yaml::to_string(i).unwrap_or_default()))
        .collect()
}

pub(super) fn error_chain(e: &ReconcileError) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

pub(super) fn vino_report(
    p: &VinoPlan,
    desired: &HostState,
    now: &HostState,
    error: Option<String>,
    generation: Option<i64>,
) -> VinoReport {
    let mine = desired.owned_by(&p.owner);
    let have = now.owned_by(&p.owner);
    let ready = mine
        .domains
        .values()
        .filter(|d| {
            have.domains
                .get(&d.name)
                .is_some_and(|o| o.spec_hash == d.spec_hash)
        })
        .count() as u32;
    let settled = diff(&mine, &have).is_empty();
    let (phase, message) = match (settled, error) {
        (true, _) => (NodePhase::Ready, None),
        (false, Some(e)) => (NodePhase::Degraded, Some(e)),
        (false, None) => (NodePhase::Progressing, None),
    };
    let mut r = report(
        &p.owner,
        phase,
        ready,
        p.vms.len() as u32,
        message,
        generation,
    );
    r.warnings = p.warnings.clone();
    r
}

pub(super) fn report(
    owner: &Owner,
    phase: NodePhase,
    ready: u32,
    total: u32,
    message: Option<String>,
    generation: Option<i64>,
) -> VinoReport {
    VinoReport {
        vino: owner.to_string(),
        status: NodeStatus {
            name: String::new(),
            phase,
            vms_ready: ready,
            vms_total: total,
            message,
            observed_generation: generation,
        },
        warnings: vec![],
    }
}
