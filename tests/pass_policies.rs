//! The whole pass, without root: the real `reconcile::pass::Host` over the simulated host
//! adapters and an in-memory `VinoSource`. Checks the pass's policies: invalid and conflicting
//! Vinos are frozen, CPU pins stay put, and a pass cut short after any operation converges on
//! the next one.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::sim::{
    OpBudget, SimulatedBridges, SimulatedDhcpServers, SimulatedHost, SimulatedHypervisor,
    simulated_host_with,
};
use k8s_openapi::api::core::v1::Secret;
use vinod::api::{NodePhase, Vino};
use vinod::config::Config;
use vinod::plan::{NodeFacts, NumaNode, VinoPlan};
use vinod::reconcile::files::{ClaimStore, record_claims};
use vinod::reconcile::pass::{Host, PassReport};
use vinod::reconcile::report::VinoReport;
use vinod::reconcile::source::{
    Failure, FailureKind, Finished, Inputs, Planner, Published, Unplanned, VinoSource,
};
use vinod::state::{HostState, Owner};
use vinod::value::cpuset::CpuSet;

/// What a source keeps between passes and across a restart: the Vinos, the claims.
#[derive(Clone, Default)]
struct Store {
    vinos: Vec<Vino>,
    claims: ClaimStore,
    reports: Vec<VinoReport>,
    /// The BareMetalHosts the last pass published, by name.
    published: Vec<String>,
}

/// A source that never fails, over a shared [`Store`].
struct MemorySource(Arc<Mutex<Store>>);

#[derive(Debug, thiserror::Error)]
#[error("memory source")]
struct NeverFails;

impl Failure for NeverFails {
    fn kind(&self) -> FailureKind {
        FailureKind::Host
    }
}

impl VinoSource for MemorySource {
    type Error = NeverFails;

    async fn read(&mut self) -> Result<Inputs, NeverFails> {
        let mut vinos = self.0.lock().unwrap().vinos.clone();
        vinos.sort_by_key(Owner::of);
        Ok(Inputs {
            node: node(),
            vinos,
            leaving: Vec::new(),
            secrets: BTreeMap::<(String, String), Secret>::new(),
            problem: None,
        })
    }

    async fn reserve(
        &mut self,
        vino: &Vino,
        plan: &mut Planner<'_>,
    ) -> Result<VinoPlan, Unplanned<NeverFails>> {
        let key = Owner::of(vino).to_string();
        let mut store = self.0.lock().unwrap();
        let p = plan(&store.claims.get(&key).cloned().unwrap_or_default())?;
        record_claims(&mut store.claims, &p);
        Ok(p)
    }

    async fn publish(
        &mut self,
        plans: &[VinoPlan],
        reports: &mut [VinoReport],
    ) -> Published<NeverFails> {
        let mut store = self.0.lock().unwrap();
        store.reports = reports.to_vec();
        store.published = plans
            .iter()
            .flat_map(|p| &p.bare_metal_hosts)
            .filter_map(|h| h.metadata.name.clone())
            .collect();
        Published::default()
    }

    async fn finish(&mut self, _pass: &Finished<'_>) -> Vec<NeverFails> {
        let mut store = self.0.lock().unwrap();
        let present: Vec<String> = store
            .vinos
            .iter()
            .map(|v| Owner::of(v).to_string())
            .collect();
        store.claims.retain(|k, _| present.contains(k));
        Vec::new()
    }
}

fn node() -> NodeFacts {
    NodeFacts {
        name: "host-a".into(),
        addresses: vec!["192.0.2.10".parse().unwrap()],
        numa: vec![NumaNode {
            id: 0,
            cpus: "0-11".parse().unwrap(),
        }],
        ..Default::default()
    }
}

/// The shipped example as Vino `name` with `masters` masters, pinned away from CPU 0, on its
/// own bridge and subnet unless `bridge` is given.
fn vino(name: &str, masters: u32, bridge: Option<&str>) -> Vino {
    let mut v = vinod::api::parse_vino(include_str!("../examples/vino.yaml")).unwrap();
    v.metadata.name = Some(name.into());
    v.spec.configuration =
        Some(serde_json::from_value(serde_json::json!({"cpuExclude": "0"})).unwrap());
    v.spec.nodes[0].count = masters;
    v.spec.networks[0].bridge_name = Some(bridge.map_or(format!("vd-{name}"), str::to_string));
    v
}

/// An invalid copy of `v`: its static range leaves the subnet.
fn broken(mut v: Vino) -> Vino {
    v.spec.networks[0].static_allocation_stop = "10.9.9.9".into();
    v
}

/// A host: its source's store and the budget of its simulated machine, both kept across a
/// restart, and the reconcile.
struct Bed {
    store: Arc<Mutex<Store>>,
    budget: OpBudget,
    host: Host<MemorySource, SimulatedBridges, SimulatedDhcpServers, SimulatedHypervisor>,
}

impl Bed {
    fn new(vinos: Vec<Vino>) -> Bed {
        let store = Arc::new(Mutex::new(Store {
            vinos,
            ..Default::default()
        }));
        let budget = OpBudget::default();
        let host = Host::new(
            MemorySource(store.clone()),
            simulated_host_with(budget.clone()),
            Config::parse("", "test").unwrap(),
        );
        Bed {
            store,
            budget,
            host,
        }
    }

    fn set_vinos(&self, vinos: Vec<Vino>) {
        self.store.lock().unwrap().vinos = vinos;
    }

    async fn pass(&mut self) -> PassReport {
        self.host.pass(&|_| {}).await.unwrap()
    }

    /// vinod killed: what it held in memory is gone; the machine and the store stay.
    fn restart(self) -> Bed {
        let adapters: SimulatedHost = self.host.adapters;
        self.budget.unlimited();
        Bed {
            host: Host::new(
                MemorySource(self.store.clone()),
                adapters,
                Config::parse("", "test").unwrap(),
            ),
            store: self.store,
            budget: self.budget,
        }
    }

    async fn observe(&self) -> HostState {
        self.host.adapters.observe().await.unwrap()
    }

    async fn pins(&self) -> BTreeMap<String, CpuSet> {
        self.observe()
            .await
            .domains
            .into_values()
            .map(|d| (d.name, d.pinned_cpus))
            .collect()
    }
}

fn report<'a>(r: &'a PassReport, vino: &str) -> &'a VinoReport {
    r.reports
        .iter()
        .find(|x| x.vino == format!("default/{vino}"))
        .unwrap_or_else(|| panic!("no report of {vino}: {:?}", r.reports))
}

#[tokio::test]
async fn an_invalid_vino_is_frozen_and_keeps_its_vms() {
    let mut bed = Bed::new(vec![vino("a", 1, None)]);
    assert!(bed.pass().await.converged);
    let before = bed.observe().await;
    assert_eq!(before.domains.len(), 3);

    bed.set_vinos(vec![broken(vino("a", 2, None))]);
    let r = bed.pass().await;
    assert!(r.outcome.applied.is_empty(), "{:?}", r.outcome.applied);
    assert_eq!(bed.observe().await, before);
    let a = report(&r, "a");
    assert_eq!(a.status.phase, NodePhase::Degraded);
    assert!(
        a.status
            .message
            .as_deref()
            .unwrap_or("")
            .contains("staticAllocationStop"),
        "{a:?}"
    );
    assert_eq!(r.failure, Some(FailureKind::InvalidInput));
}

#[tokio::test]
async fn a_name_conflict_freezes_the_later_vino() {
    let mut bed = Bed::new(vec![
        vino("b", 1, Some("vd-shared")),
        vino("a", 1, Some("vd-shared")),
    ]);
    let r = bed.pass().await;
    let b = report(&r, "b");
    assert_eq!(b.status.phase, NodePhase::Degraded);
    assert!(
        b.status
            .message
            .as_deref()
            .unwrap_or("")
            .contains("default/a"),
        "{b:?}"
    );
    assert_eq!(report(&r, "a").status.phase, NodePhase::Ready);
    let owners: Vec<String> = bed
        .observe()
        .await
        .domains
        .values()
        .map(|d| d.owner.name.clone())
        .collect();
    assert_eq!(owners, ["a", "a", "a"]);
}

#[tokio::test]
async fn adding_and_removing_a_master_moves_no_other_vm() {
    let mut bed = Bed::new(vec![vino("a", 1, None), vino("z", 1, None)]);
    assert!(bed.pass().await.converged);
    let one = bed.pins().await;
    assert_eq!(one.len(), 6);
    assert!(one.values().all(|c| c.len() == 1 && !c.contains(0)));

    bed.set_vinos(vec![vino("a", 2, None), vino("z", 1, None)]);
    assert!(bed.pass().await.converged);
    let two = bed.pins().await;
    assert_eq!(two.len(), 7);
    for (vm, cpus) in &one {
        assert_eq!(&two[vm], cpus, "{vm} moved when a master was added");
    }
    let all: CpuSet = two.values().flat_map(|c| c.iter()).collect();
    assert_eq!(all.len(), 7, "two VMs share a CPU: {two:?}");

    bed.set_vinos(vec![vino("a", 1, None), vino("z", 1, None)]);
    assert!(bed.pass().await.converged);
    assert_eq!(bed.pins().await, one, "removing the master moved a VM");
}

#[tokio::test]
async fn a_frozen_vinos_cpus_are_not_handed_to_another() {
    let mut bed = Bed::new(vec![vino("b", 1, None)]);
    assert!(bed.pass().await.converged);
    let held: CpuSet = bed.pins().await.values().flat_map(|c| c.iter()).collect();
    assert_eq!(held.len(), 3);

    // b breaks and a (planned first) arrives with more VMs than the CPUs left after b's.
    bed.set_vinos(vec![vino("a", 7, None), broken(vino("b", 1, None))]);
    let r = bed.pass().await;
    assert_eq!(report(&r, "b").status.phase, NodePhase::Degraded);
    assert_eq!(
        report(&r, "a").status.phase,
        NodePhase::Degraded,
        "a took b's CPUs"
    );
    bed.set_vinos(vec![vino("a", 4, None), broken(vino("b", 1, None))]);
    let r = bed.pass().await;
    assert_eq!(report(&r, "a").status.phase, NodePhase::Ready);
    let pins = bed.pins().await;
    let a: CpuSet = pins
        .iter()
        .filter(|(vm, _)| vm.starts_with("default.a."))
        .flat_map(|(_, c)| c.iter())
        .collect();
    assert_eq!(a.len(), 6);
    assert!(a.iter().all(|c| !held.contains(c) && c != 0), "{pins:?}");
}

/// Runs a pass that stops after `n` operations, restarts and runs again; returns the host.
async fn cut_after(n: usize, before: Vec<Vino>, after: Vec<Vino>) -> (HostState, Store) {
    let mut bed = Bed::new(before);
    bed.pass().await;
    bed.set_vinos(after);
    bed.budget.stop_after(n);
    bed.host.pass(&|_| {}).await.unwrap();
    let mut bed = bed.restart();
    let r = bed.pass().await;
    assert!(r.converged, "after a stop at operation {n}: {:?}", r.errors);
    assert!(bed.pass().await.outcome.applied.is_empty());
    let store = bed.store.lock().unwrap().clone();
    (bed.observe().await, store)
}

#[tokio::test]
async fn a_pass_cut_short_after_any_operation_converges_on_the_next() {
    let two = || vec![vino("a", 2, None), vino("b", 1, None)];
    for (before, after) in [
        (vec![], two()),
        (two(), vec![vino("a", 1, None)]),
        (two(), vec![]),
    ] {
        let mut reference = Bed::new(before.clone());
        reference.pass().await;
        reference.set_vinos(after.clone());
        let ops = reference.pass().await.outcome.applied.len();
        assert!(ops > 0);
        let want = reference.observe().await;
        let claims = reference.store.lock().unwrap().claims.clone();
        for n in 0..ops {
            let (got, store) = cut_after(n, before.clone(), after.clone()).await;
            assert_eq!(got, want, "stopped after {n} of {ops} operations");
            assert_eq!(store.claims, claims, "claims changed after a stop at {n}");
        }
    }
}

#[tokio::test]
async fn a_vm_whose_definition_failed_gets_no_bare_metal_host() {
    let mut bed = Bed::new(vec![vino("a", 1, None)]);
    assert!(bed.pass().await.converged);
    let before = bed.store.lock().unwrap().published.clone();
    assert_eq!(before.len(), 3, "{before:?}");

    // A second master: its volume is created, then every operation fails (its definition).
    bed.set_vinos(vec![vino("a", 2, None)]);
    bed.budget.stop_after(1);
    let r = bed.pass().await;
    assert!(!r.converged);
    let domains = bed.observe().await.domains;
    let new_vm = r.plans[0]
        .vms
        .iter()
        .find(|vm| !domains.contains_key(&vm.name))
        .expect("a VM left undefined");
    let published = bed.store.lock().unwrap().published.clone();
    assert!(
        !published.contains(&new_vm.bare_metal_host),
        "{} published for an undefined VM: {published:?}",
        new_vm.bare_metal_host
    );
    assert_eq!(published, before, "the defined VMs keep theirs");

    // Defined at the next pass: published then.
    bed.budget.unlimited();
    assert!(bed.pass().await.converged);
    let published = bed.store.lock().unwrap().published.clone();
    assert!(published.contains(&new_vm.bare_metal_host), "{published:?}");
}
