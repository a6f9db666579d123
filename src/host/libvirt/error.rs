//! Errors of the libvirt adapter.

use virt::error::{Error as LibvirtError, ErrorDomain, ErrorNumber};

use crate::host::machine::{Fault, FaultKind};
use crate::state::Owner;

/// What went wrong talking to libvirt. Every variant names the pool, volume or domain it is
/// about; the libvirt error, where there is one, is the source.
#[derive(Debug, thiserror::Error)]
pub enum VirtError {
    /// The console log directory could not be created.
    #[error("cannot create the console log directory {path}")]
    ConsoleDir {
        /// The directory.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The connection could not be opened.
    #[error("cannot connect to libvirt at {uri}")]
    Connect {
        /// Connection URI.
        uri: String,
        /// libvirt's error.
        #[source]
        source: LibvirtError,
    },
    /// A call on vinod's storage pool failed.
    #[error("cannot {action} storage pool {pool}")]
    Pool {
        /// Pool name.
        pool: String,
        /// What was being done.
        action: &'static str,
        /// libvirt's error.
        #[source]
        source: LibvirtError,
    },
    /// A pool of vinod's pool name exists but is somebody else's.
    #[error(
        "storage pool {pool} exists with target path {found}, not {expected}; refusing to use it"
    )]
    PoolPath {
        /// Pool name.
        pool: String,
        /// The configured path.
        expected: String,
        /// The path the existing pool uses.
        found: String,
    },
    /// A call on a volume failed.
    #[error("cannot {action} volume {volume} in storage pool {pool}")]
    Volume {
        /// Pool name.
        pool: String,
        /// Volume name.
        volume: String,
        /// What was being done.
        action: &'static str,
        /// libvirt's error.
        #[source]
        source: LibvirtError,
    },
    /// `create_volume` found a volume of that name already.
    #[error("volume {volume} already exists in storage pool {pool}")]
    VolumeExists {
        /// Pool name.
        pool: String,
        /// Volume name.
        volume: String,
    },
    /// The volume's name does not say it belongs to the expected Vino.
    #[error("volume {volume} is not named as a volume of {owner}; refusing to change it")]
    VolumeNotOwned {
        /// Volume name.
        volume: String,
        /// The Vino it was expected to belong to.
        owner: Owner,
    },
    /// A call on a domain failed.
    #[error("cannot {action} domain {domain}")]
    Domain {
        /// Domain name.
        domain: String,
        /// What was being done.
        action: &'static str,
        /// libvirt's error.
        #[source]
        source: LibvirtError,
    },
    /// The domains could not be listed.
    #[error("cannot list domains")]
    ListDomains {
        /// libvirt's error.
        #[source]
        source: LibvirtError,
    },
    /// `define` found a domain with the same name or UUID (owned by vinod or not).
    #[error("domain {domain} clashes with existing domain {existing} (same {what})")]
    DomainClash {
        /// Name of the domain to define.
        domain: String,
        /// Name of the domain that exists.
        existing: String,
        /// `name` or `UUID`.
        what: &'static str,
    },
    /// `redefine` found no domain of that name.
    #[error("domain {domain} does not exist")]
    NoDomain {
        /// Domain name.
        domain: String,
    },
    /// The domain lacks vinod's metadata for the expected Vino.
    #[error("domain {domain} does not carry vinod's metadata for {owner}; refusing to change it")]
    NotOwned {
        /// Domain name.
        domain: String,
        /// The Vino it was expected to belong to.
        owner: Owner,
    },
    /// There is no vinod-owned domain of that name (the BMC's view).
    #[error("no machine {domain}")]
    NoMachine {
        /// Domain name.
        domain: String,
    },
    /// A power action needs the domain running.
    #[error("cannot {action} machine {domain}: it is powered off")]
    NotRunning {
        /// Domain name.
        domain: String,
        /// What was asked.
        action: &'static str,
    },
    /// The domain's definition could not be read or rewritten.
    #[error("cannot rewrite the definition of domain {domain}")]
    Xml {
        /// Domain name.
        domain: String,
        /// The parser's error.
        #[source]
        source: super::bmc::XmlError,
    },
    /// The blocking worker running the libvirt calls panicked or was cancelled.
    #[error("libvirt worker task failed")]
    Task(#[source] tokio::task::JoinError),
}

impl VirtError {
    /// The libvirt error underneath, if any.
    pub fn libvirt(&self) -> Option<&LibvirtError> {
        match self {
            Self::Connect { source, .. }
            | Self::Pool { source, .. }
            | Self::Volume { source, .. }
            | Self::Domain { source, .. }
            | Self::ListDomains { source } => Some(source),
            _ => None,
        }
    }

    /// Whether the connection to libvirtd broke (daemon restarted or gone), so that reopening
    /// the connection and retrying may succeed.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            Self::Connect { .. } => false,
            _ => self.libvirt().is_some_and(is_connection_error),
        }
    }
}

impl Fault for VirtError {
    fn fault(&self) -> FaultKind {
        match self {
            Self::NoMachine { .. } | Self::NoDomain { .. } | Self::NotOwned { .. } => {
                FaultKind::NotFound
            }
            Self::NotRunning { .. } => FaultKind::WrongState,
            _ => FaultKind::Host,
        }
    }
}

/// Errors of the RPC layer mean the socket to libvirtd is gone.
pub(super) fn is_connection_error(e: &LibvirtError) -> bool {
    e.domain().is(ErrorDomain::Rpc)
        || e.code()
            .is_any(vec![ErrorNumber::NoConnect, ErrorNumber::InvalidConn])
}

/// Whether `e` has code `code`.
pub(super) fn is(e: &LibvirtError, code: ErrorNumber) -> bool {
    e.code().is(code)
}
