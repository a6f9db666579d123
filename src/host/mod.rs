//! Adapters: the only code that reads or changes the machine. Each external system sits behind
//! a narrow trait whose methods speak the `state` types; each trait has one real
//! implementation. Every adapter observes and changes only what vinod owns (marked at
//! creation) and reports a name clash with anything else as an error instead of taking it over.

pub mod bridge;
pub mod dnsmasq;
pub mod facts;
pub mod libvirt;

use std::collections::BTreeMap;
use std::future::Future;

use crate::state::{Bridge, DhcpServer, Domain, Volume};

/// Linux bridges, over netlink.
pub trait Bridges {
    /// Error type of the implementation.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The bridges vinod owns, by name, as they are now.
    fn observe(&self)
    -> impl Future<Output = Result<BTreeMap<String, Bridge>, Self::Error>> + Send;

    /// Creates `bridge` (marked as vinod's), sets MTU and address, enslaves the uplink and
    /// brings it up. Fails without changing anything if a link of that name exists.
    fn create(&self, bridge: &Bridge) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Changes an owned bridge from `observed` to `desired` (address, MTU, uplink).
    fn update(
        &self,
        desired: &Bridge,
        observed: &Bridge,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Releases the uplink and deletes an owned bridge; refuses unowned links.
    fn delete(&self, bridge: &Bridge) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Per-network dnsmasq instances, supervised.
pub trait DhcpServers {
    /// Error type of the implementation.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The servers vinod runs, by bridge, with the configuration and reservation files they
    /// use now. A server whose process is gone is not reported (so it gets started again).
    fn observe(
        &self,
    ) -> impl Future<Output = Result<BTreeMap<String, DhcpServer>, Self::Error>> + Send;

    /// Writes the configuration (after `dnsmasq --test` accepts it) and reservations and starts
    /// the server, replacing a stale process left by an earlier vinod.
    fn start(&self, server: &DhcpServer) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Replaces the configuration (tested first) and restarts; the lease file is kept.
    fn reconfigure(
        &self,
        server: &DhcpServer,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Makes the reservation files match `server.hosts` without a restart.
    fn set_hosts(
        &self,
        server: &DhcpServer,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Stops the server and removes its files and lease database.
    fn stop(&self, bridge: &str) -> impl Future<Output = Result<(), Self::Error>> + Send;
}

/// Volumes and domains, by name, as a hypervisor reports them.
pub type VirtState = (BTreeMap<String, Volume>, BTreeMap<String, Domain>);

/// libvirt: vinod's storage pool and domains.
pub trait Hypervisor {
    /// Error type of the implementation.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Volumes in vinod's pool and domains carrying vinod's metadata, as they are now.
    fn observe(&self) -> impl Future<Output = Result<VirtState, Self::Error>> + Send;

    /// Creates a volume in vinod's pool (creating and starting the pool if needed).
    fn create_volume(
        &self,
        volume: &Volume,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Deletes a volume from vinod's pool.
    fn delete_volume(
        &self,
        volume: &Volume,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Defines a new domain, powered off. Fails if any domain of that name or UUID exists.
    fn define(&self, domain: &Domain) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Replaces the persistent definition of an owned domain; a running domain keeps running
    /// and picks the change up at its next cold boot.
    fn redefine(&self, domain: &Domain) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Powers off (if running) and undefines an owned domain.
    fn undefine(&self, domain: &Domain) -> impl Future<Output = Result<(), Self::Error>> + Send;
}
