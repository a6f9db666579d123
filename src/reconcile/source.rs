//! [`VinoSource`]: where a host's Vinos come from and where the results of a pass go. It is the
//! only mode-specific part of a pass: files in standalone mode ([`super::files`]), the API
//! server in a cluster ([`crate::kube::source`]).

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;

use super::report::VinoReport;
use crate::api::Vino;
use crate::api::host_use::HostUse;
use crate::ipam::NetworkClaims;
use crate::plan::{NodeFacts, PlanError, VinoPlan};
use crate::state::{HostState, Owner};

/// What went wrong, as far as retrying is concerned. Of several failures in one pass the
/// greatest decides the pause before the next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum FailureKind {
    /// The input is wrong; nothing changes until it does (a watch or the manifest's change
    /// wakes the loop).
    InvalidInput,
    /// The host (an adapter, a local file) failed; worth retrying soon.
    Host,
    /// The API server could not be reached or refused; retry with a longer pause.
    ApiUnreachable,
}

/// An error that knows its [`FailureKind`].
pub trait Failure: std::error::Error + Send + Sync + 'static {
    /// What kind of failure it is.
    fn kind(&self) -> FailureKind;
}

/// What a source read for one pass.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// This host.
    pub node: NodeFacts,
    /// The Vinos this host builds (selecting it, not being deleted), sorted by owner.
    pub vinos: Vec<Vino>,
    /// The Vinos that still exist but no longer ask this host for anything (being deleted,
    /// or no longer selecting it): their VMs leave, as their `spec.metal3` allows.
    pub leaving: Vec<Vino>,
    /// The credentials Secrets the Vinos reference, by (namespace, name); one absent here
    /// does not exist.
    pub secrets: BTreeMap<(String, String), Secret>,
    /// A problem with the input that did not stop the pass (an unreadable manifest whose
    /// last good content was used).
    pub problem: Option<String>,
}

/// Why a Vino was not planned; it is frozen (keeps what it has).
#[derive(Debug, thiserror::Error)]
pub enum Unplanned<E> {
    /// The Vino cannot be planned as it is.
    #[error(transparent)]
    Invalid(#[from] PlanError),
    /// The source could not reserve its claims, or tell how metal3 uses its hosts.
    #[error(transparent)]
    Source(E),
    /// A VM metal3 holds cannot be planned any more (its set was removed).
    #[error("{0}")]
    Held(String),
}

/// The planner, called by a source with every host's claims by network.
pub type Planner<'a> =
    dyn FnMut(&BTreeMap<String, NetworkClaims>) -> Result<VinoPlan, PlanError> + Send + 'a;

/// What publishing did.
#[derive(Debug)]
pub struct Published<E> {
    /// Objects written, created or deleted.
    pub written: usize,
    /// What failed (the reports concerned are degraded too).
    pub errors: Vec<E>,
}

impl<E> Default for Published<E> {
    fn default() -> Self {
        Self {
            written: 0,
            errors: Vec::new(),
        }
    }
}

/// The pass as the source's last step sees it.
#[derive(Debug)]
pub struct Finished<'a> {
    /// The plans built.
    pub plans: &'a [VinoPlan],
    /// The host before the pass.
    pub observed: &'a HostState,
    /// The host after the pass.
    pub now: &'a HostState,
    /// The first operation that failed, if one did.
    pub first_error: Option<&'a str>,
    /// Vinos that left this host but whose VMs stay for now.
    pub departing: &'a Departing,
}

/// The Vinos that left this host with VMs that stay for now: the BareMetalHosts each keeps
/// published (every other one of theirs is withdrawn), or `None` to withdraw nothing (how
/// metal3 uses them could not be read).
pub type Departing = BTreeMap<Owner, Option<BTreeSet<String>>>;

/// Where a host's Vinos come from and where its results go.
#[allow(async_fn_in_trait)]
pub trait VinoSource {
    /// Why the source failed.
    type Error: Failure;

    /// Reads this host's facts, its Vinos and their Secrets. On failure the pass changes
    /// nothing.
    async fn read(&mut self) -> Result<Inputs, Self::Error>;

    /// Reserves `vino`'s IP claims (persisted before anything is built, so a crash never
    /// reallocates) and plans it with them through `plan`.
    async fn reserve(
        &mut self,
        vino: &Vino,
        plan: &mut Planner<'_>,
    ) -> Result<VinoPlan, Unplanned<Self::Error>>;

    /// How metal3 uses the BareMetalHosts `names` of Vino `owner` on this host, for those that
    /// exist (published by this host). A source without metal3 (standalone) has none, so
    /// leaving VMs are destroyed at once.
    async fn host_uses(
        &mut self,
        owner: &Owner,
        names: &[String],
    ) -> Result<BTreeMap<String, HostUse>, Self::Error> {
        let _ = (owner, names);
        Ok(BTreeMap::new())
    }

    /// Publishes the planned Vinos' objects and every report; degrades the reports whose
    /// publication failed.
    async fn publish(
        &mut self,
        plans: &[VinoPlan],
        reports: &mut [VinoReport],
    ) -> Published<Self::Error>;

    /// Ends the pass: lets go of the Vinos that left this host once the host no longer holds
    /// their objects. Returns what failed (retried by the next pass).
    async fn finish(&mut self, pass: &Finished<'_>) -> Vec<Self::Error>;
}
