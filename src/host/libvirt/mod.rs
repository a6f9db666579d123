//! The libvirt adapter: vinod's storage pool, its volumes, and the domains that carry vinod's
//! metadata, over the `virt` crate.
//!
//! libvirt calls block, so every method runs them on tokio's blocking pool. One connection is
//! shared and used by one call at a time. It is opened on first use; when it is found dead
//! (`is_alive` false, or a call fails with an RPC error because libvirtd restarted), it is
//! reopened once and the call retried.

mod bmc;
mod describe;
mod domains;
mod error;
mod machines;
mod marker;
mod storage;
mod xml;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use virt::connect::Connect;

pub use error::VirtError;

use super::{Hypervisor, Machines};
use crate::config::LibvirtConfig;
use crate::state::{Domain, Volume};

/// vinod's libvirt adapter.
#[derive(Clone)]
pub struct Libvirt {
    session: Arc<Mutex<Session>>,
    pool: Arc<PoolConfig>,
    console_dir: PathBuf,
}

/// Name and directory of vinod's storage pool.
#[derive(Debug)]
struct PoolConfig {
    name: String,
    path: PathBuf,
}

impl Libvirt {
    /// An adapter for the libvirt at `config.uri`, using the pool `config.pool_name` at
    /// `config.pool_path`. Nothing is opened until the first call.
    ///
    /// Turns off libvirt's default error handler for the whole process: it prints every error
    /// to stderr, including expected ones such as "no metadata" on domains that are not
    /// vinod's. Errors reach the caller as [`VirtError`] instead.
    pub fn new(config: &LibvirtConfig) -> Self {
        virt::error::clear_error_callback();
        Self {
            session: Arc::new(Mutex::new(Session {
                uri: config.uri.clone(),
                conn: None,
            })),
            pool: Arc::new(PoolConfig {
                name: config.pool_name.clone(),
                path: config.pool_path.clone(),
            }),
            console_dir: config.console_log_dir.clone(),
        }
    }

    /// Creates the directory the domains' serial console logs go to: qemu cannot start a
    /// domain whose console file's directory is missing. Mode 0755 whatever the umask (the
    /// unit's is 0077): with libvirt's `stdio_handler = "file"` qemu itself opens the file.
    fn ensure_console_dir(&self) -> Result<(), VirtError> {
        use std::os::unix::fs::PermissionsExt;
        let err = |source| VirtError::ConsoleDir {
            path: self.console_dir.display().to_string(),
            source,
        };
        std::fs::create_dir_all(&self.console_dir).map_err(err)?;
        std::fs::set_permissions(&self.console_dir, std::fs::Permissions::from_mode(0o755))
            .map_err(err)
    }

    /// Runs `op` on the blocking pool with a live connection, reconnecting once if needed.
    async fn run<T, F>(&self, op: F) -> Result<T, VirtError>
    where
        T: Send + 'static,
        F: Fn(&Connect, &PoolConfig) -> Result<T, VirtError> + Send + 'static,
    {
        let session = Arc::clone(&self.session);
        let pool = Arc::clone(&self.pool);
        tokio::task::spawn_blocking(move || {
            let mut session = session.lock().unwrap_or_else(PoisonError::into_inner);
            session.call(|conn| op(conn, &pool))
        })
        .await
        .map_err(VirtError::Task)?
    }
}

/// The connection, opened lazily and replaced when it dies.
struct Session {
    uri: String,
    conn: Option<Connect>,
}

impl Session {
    fn connection(&mut self) -> Result<&Connect, VirtError> {
        let conn = match self.conn.take() {
            Some(conn) if conn.is_alive().unwrap_or(false) => conn,
            stale => {
                if stale.is_some() {
                    tracing::info!(uri = %self.uri, "libvirt connection closed; reconnecting");
                }
                drop(stale);
                Connect::open(Some(&self.uri)).map_err(|source| VirtError::Connect {
                    uri: self.uri.clone(),
                    source,
                })?
            }
        };
        Ok(self.conn.insert(conn))
    }

    fn call<T>(&mut self, op: impl Fn(&Connect) -> Result<T, VirtError>) -> Result<T, VirtError> {
        match op(self.connection()?) {
            Err(e) if e.is_connection_lost() => {
                // Without an event loop libvirt notices a restarted daemon only when a call
                // fails, so `is_alive` said yes; now the connection is known dead.
                let cause = e.libvirt().map_or("", |l| l.message());
                tracing::info!(uri = %self.uri, error = %e, cause, "libvirt connection lost; reconnecting");
                self.conn = None;
                op(self.connection()?)
            }
            result => result,
        }
    }
}

impl Hypervisor for Libvirt {
    type Error = VirtError;

    /// Volumes whose names carry an owner (see `owner_from_volume_name`) in vinod's pool,
    /// which is created if missing, and the domains, active or not, whose persistent
    /// definition carries vinod's metadata element.
    async fn observe(
        &self,
    ) -> Result<(BTreeMap<String, Volume>, BTreeMap<String, Domain>), VirtError> {
        self.run(|conn, pool| {
            Ok((
                storage::observe_volumes(conn, pool)?,
                domains::observe(conn)?,
            ))
        })
        .await
    }

    async fn create_volume(&self, volume: &Volume) -> Result<(), VirtError> {
        let volume = volume.clone();
        self.run(move |conn, pool| storage::create_volume(conn, pool, &volume))
            .await
    }

    async fn delete_volume(&self, volume: &Volume) -> Result<(), VirtError> {
        let volume = volume.clone();
        self.run(move |conn, pool| storage::delete_volume(conn, pool, &volume))
            .await
    }

    async fn define(&self, domain: &Domain) -> Result<(), VirtError> {
        self.ensure_console_dir()?;
        let domain = domain.clone();
        self.run(move |conn, _| domains::define(conn, &domain))
            .await
    }

    async fn redefine(&self, domain: &Domain) -> Result<(), VirtError> {
        self.ensure_console_dir()?;
        let domain = domain.clone();
        self.run(move |conn, _| domains::redefine(conn, &domain))
            .await
    }

    async fn undefine(&self, domain: &Domain) -> Result<(), VirtError> {
        let domain = domain.clone();
        self.run(move |conn, _| domains::undefine(conn, &domain))
            .await
    }
}
