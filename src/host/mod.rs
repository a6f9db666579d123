//! Adapters: the only code that reads or changes the machine. Each external system sits behind
//! a narrow trait whose methods speak the `state` types; each trait has one real
//! implementation. Every adapter observes and changes only what vinod owns (marked at
//! creation) and reports a name clash with anything else as an error instead of taking it over.

pub mod bridge;
pub mod dnsmasq;
pub mod facts;
pub mod libvirt;
pub mod machine;

use std::collections::BTreeMap;
use std::future::Future;

use crate::plan::HostNetwork;
use crate::state::{Bridge, DhcpServer, Domain, Owner, Volume};
use machine::{BiosSettings, BootOverride, Disk, Fault, Machine, Media, PowerAction};

/// Linux bridges, over netlink.
pub trait Bridges {
    /// Error type of the implementation.
    type Error: std::error::Error + Send + Sync + 'static;

    /// The bridges vinod owns, by name, as they are now.
    fn observe(&self)
    -> impl Future<Output = Result<BTreeMap<String, Bridge>, Self::Error>> + Send;

    /// The host's own network: interfaces that are not vinod's bridges or VM ports, with
    /// their addresses, and the routes that do not leave by vinod's bridges.
    fn host_network(&self) -> impl Future<Output = Result<HostNetwork, Self::Error>> + Send;

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

/// The BMC's view of the VMs: vinod-owned domains only (any other domain is invisible and
/// untouchable). Boot override and media are kept in the persistent definition, so they
/// survive vinod restarts and reconcile's redefinitions, and never change the spec hash
/// reconcile compares.
pub trait Machines {
    /// Error type of the implementation.
    type Error: Fault + std::error::Error + Send + Sync + 'static;

    /// Every vinod-owned machine, by name.
    fn list(&self) -> impl Future<Output = Result<Vec<Machine>, Self::Error>> + Send;

    /// One vinod-owned machine; `None` if there is none of that name.
    fn get(&self, name: &str) -> impl Future<Output = Result<Option<Machine>, Self::Error>> + Send;

    /// The Vino owning machine `name`; `None` if there is no vinod-owned machine of that name.
    /// Cheaper than [`get`](Self::get), for authorizing an action.
    fn owner(&self, name: &str) -> impl Future<Output = Result<Option<Owner>, Self::Error>> + Send;

    /// Performs a power action. Powering on (and restarting) consumes a `Once` override: the
    /// boot uses it and the persistent definition goes back to the default order.
    fn power(
        &self,
        name: &str,
        action: PowerAction,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Stores a boot override; it takes effect at the next boot through the BMC.
    fn set_boot(
        &self,
        name: &str,
        boot: BootOverride,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Puts a local image file into the machine's virtual CD drive (replacing any).
    fn insert_media(
        &self,
        name: &str,
        media: &Media,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Empties the virtual CD drive; returns what was in it.
    fn eject_media(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Media>, Self::Error>> + Send;

    /// The machine's disks with their capacities; `None` if there is no vinod-owned machine
    /// of that name. Separate from [`get`](Self::get) because sizes cost a call per disk.
    fn disks(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Vec<Disk>>, Self::Error>> + Send;

    /// Stores BIOS settings (pending ones take effect at the next boot through the BMC:
    /// power-on or restart).
    fn set_bios(
        &self,
        name: &str,
        bios: BiosSettings,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Asks for UEFI firmware with secure boot and enrolled keys (or without secure boot) at
    /// the next boot through the BMC; a change also resets the machine's NVRAM from the new
    /// firmware's template at that boot. The caller checks that the machine supports it
    /// ([`Machine::secure_boot_unsupported`](machine::Machine::secure_boot_unsupported)).
    fn set_secure_boot(
        &self,
        name: &str,
        enabled: bool,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send;

    /// Whether the firmware the machine runs now enforces secure boot (`false` when it is
    /// off); `None` if there is no vinod-owned machine of that name.
    fn secure_boot_now(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<bool>, Self::Error>> + Send;
}
