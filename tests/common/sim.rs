//! Simulated host adapters: in-memory stand-ins for the netlink bridges, the dnsmasq supervisor
//! and libvirt, for running many cluster hosts in one process (the scale benchmark). They keep
//! the adapters' contracts that reconcile relies on (create fails on an existing name, observe
//! reports only what was made, observed domains carry no XML) and take no time: nothing on the
//! machine changes. An [`OpBudget`] makes a host fail every operation after the first N, as if
//! vinod had been killed there.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use vinod::host::{Bridges, DhcpServers, Hypervisor, VirtState};
use vinod::plan::HostNetwork;
use vinod::reconcile::Adapters;
use vinod::state::{Bridge, DhcpServer, Domain, Volume};

/// Why a simulated operation was refused.
#[derive(Debug, thiserror::Error)]
#[error("simulated host: {0}")]
pub struct SimulatedError(String);

/// How many more operations a simulated host carries out (no limit by default); shared by the
/// adapters of one host.
#[derive(Clone, Default)]
pub struct OpBudget(Arc<Mutex<Option<usize>>>);

impl OpBudget {
    /// Every operation after the next `n` fails.
    pub fn stop_after(&self, n: usize) {
        *self.0.lock().unwrap() = Some(n);
    }

    /// Operations succeed again.
    pub fn unlimited(&self) {
        *self.0.lock().unwrap() = None;
    }

    fn spend(&self) -> Result<(), SimulatedError> {
        match &mut *self.0.lock().unwrap() {
            Some(0) => Err(SimulatedError("stopped".into())),
            Some(n) => {
                *n -= 1;
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// Linux bridges, simulated: a map by name.
#[derive(Default)]
pub struct SimulatedBridges(Mutex<BTreeMap<String, Bridge>>, OpBudget);

/// dnsmasq instances, simulated: a map by bridge.
#[derive(Default)]
pub struct SimulatedDhcpServers(Mutex<BTreeMap<String, DhcpServer>>, OpBudget);

/// libvirt's pool and domains, simulated: two maps by name.
#[derive(Default)]
#[allow(clippy::type_complexity)]
pub struct SimulatedHypervisor(
    Mutex<(BTreeMap<String, Volume>, BTreeMap<String, Domain>)>,
    OpBudget,
);

/// The simulated host adapters.
pub type SimulatedHost = Adapters<SimulatedBridges, SimulatedDhcpServers, SimulatedHypervisor>;

/// A fresh simulated host: no bridges, no DHCP servers, no volumes, no domains.
pub fn simulated_host() -> SimulatedHost {
    simulated_host_with(OpBudget::default())
}

/// A fresh simulated host whose operations spend `budget`.
pub fn simulated_host_with(budget: OpBudget) -> SimulatedHost {
    Adapters {
        bridges: SimulatedBridges(Mutex::default(), budget.clone()),
        dhcp: SimulatedDhcpServers(Mutex::default(), budget.clone()),
        hypervisor: SimulatedHypervisor(Mutex::default(), budget),
    }
}

fn insert_new<T>(
    map: &mut BTreeMap<String, T>,
    name: &str,
    value: T,
) -> Result<(), SimulatedError> {
    if map.contains_key(name) {
        return Err(SimulatedError(format!("{name} exists")));
    }
    map.insert(name.to_string(), value);
    Ok(())
}

fn replace<T>(map: &mut BTreeMap<String, T>, name: &str, value: T) -> Result<(), SimulatedError> {
    match map.get_mut(name) {
        Some(v) => {
            *v = value;
            Ok(())
        }
        None => Err(SimulatedError(format!("{name} does not exist"))),
    }
}

fn remove<T>(map: &mut BTreeMap<String, T>, name: &str) -> Result<(), SimulatedError> {
    map.remove(name)
        .map(|_| ())
        .ok_or_else(|| SimulatedError(format!("{name} does not exist")))
}

impl Bridges for SimulatedBridges {
    type Error = SimulatedError;

    /// A simulated host has no network of its own.
    async fn host_network(&self) -> Result<HostNetwork, SimulatedError> {
        Ok(HostNetwork::default())
    }

    async fn observe(&self) -> Result<BTreeMap<String, Bridge>, SimulatedError> {
        Ok(self.0.lock().unwrap().clone())
    }

    async fn create(&self, bridge: &Bridge) -> Result<(), SimulatedError> {
        self.1.spend()?;
        insert_new(&mut self.0.lock().unwrap(), &bridge.name, bridge.clone())
    }

    async fn update(&self, desired: &Bridge, _observed: &Bridge) -> Result<(), SimulatedError> {
        self.1.spend()?;
        replace(&mut self.0.lock().unwrap(), &desired.name, desired.clone())
    }

    async fn delete(&self, bridge: &Bridge) -> Result<(), SimulatedError> {
        self.1.spend()?;
        remove(&mut self.0.lock().unwrap(), &bridge.name)
    }
}

impl DhcpServers for SimulatedDhcpServers {
    type Error = SimulatedError;

    async fn observe(&self) -> Result<BTreeMap<String, DhcpServer>, SimulatedError> {
        Ok(self.0.lock().unwrap().clone())
    }

    async fn start(&self, server: &DhcpServer) -> Result<(), SimulatedError> {
        self.1.spend()?;
        // A real start replaces a stale instance of the same bridge.
        self.0
            .lock()
            .unwrap()
            .insert(server.bridge.clone(), server.clone());
        Ok(())
    }

    async fn reconfigure(&self, server: &DhcpServer) -> Result<(), SimulatedError> {
        self.1.spend()?;
        replace(&mut self.0.lock().unwrap(), &server.bridge, server.clone())
    }

    async fn set_hosts(&self, server: &DhcpServer) -> Result<(), SimulatedError> {
        self.1.spend()?;
        replace(&mut self.0.lock().unwrap(), &server.bridge, server.clone())
    }

    async fn stop(&self, bridge: &str) -> Result<(), SimulatedError> {
        self.1.spend()?;
        remove(&mut self.0.lock().unwrap(), bridge)
    }
}

impl Hypervisor for SimulatedHypervisor {
    type Error = SimulatedError;

    async fn observe(&self) -> Result<VirtState, SimulatedError> {
        let (volumes, domains) = self.0.lock().unwrap().clone();
        // Like the libvirt adapter: observed domains carry their hash, not their XML.
        let domains = domains
            .into_iter()
            .map(|(name, d)| {
                (
                    name,
                    Domain {
                        xml: String::new(),
                        ..d
                    },
                )
            })
            .collect();
        Ok((volumes, domains))
    }

    async fn create_volume(&self, volume: &Volume) -> Result<(), SimulatedError> {
        self.1.spend()?;
        insert_new(&mut self.0.lock().unwrap().0, &volume.name, volume.clone())
    }

    async fn delete_volume(&self, volume: &Volume) -> Result<(), SimulatedError> {
        self.1.spend()?;
        remove(&mut self.0.lock().unwrap().0, &volume.name)
    }

    async fn define(&self, domain: &Domain) -> Result<(), SimulatedError> {
        self.1.spend()?;
        let mut state = self.0.lock().unwrap();
        if state.1.values().any(|d| d.uuid == domain.uuid) {
            return Err(SimulatedError(format!("UUID {} exists", domain.uuid)));
        }
        insert_new(&mut state.1, &domain.name, domain.clone())
    }

    async fn redefine(&self, domain: &Domain) -> Result<(), SimulatedError> {
        self.1.spend()?;
        replace(&mut self.0.lock().unwrap().1, &domain.name, domain.clone())
    }

    async fn undefine(&self, domain: &Domain) -> Result<(), SimulatedError> {
        self.1.spend()?;
        remove(&mut self.0.lock().unwrap().1, &domain.name)
    }
}
