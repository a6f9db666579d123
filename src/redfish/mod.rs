//! vinod's Redfish BMC for its VMs, so that Ironic (through sushy) can drive them: Systems,
//! Managers and Chassis (one each per VM), power, boot override, virtual media, sessions.
//!
//! Every request except the service root and the documents describing the service needs the
//! BMC credentials of the Vino that owns the VM (HTTP Basic or a session token); a VM of
//! another Vino does not exist for the caller. HTTPS with the configured certificate or a
//! self-signed one kept in the state directory. See `docs/redfish.md`.

pub mod action;
mod activation;
pub mod auth;
pub mod bios;
mod error;
pub mod guessing;
pub mod inventory;
pub mod listener;
pub mod media;
mod reply;
pub mod resources;
mod routes;
pub mod secure_boot;
pub mod target;
pub mod tls;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum_server::tls_rustls::RustlsConfig;
use sha2::{Digest, Sha256};

pub use auth::BmcCredentials;
pub use error::{ApiError, RedfishError};
pub use reply::etag;

use crate::config::Config;
use crate::host::Machines;
use media::MediaStore;

/// Largest request body accepted (JSON bodies are small).
const BODY_LIMIT: usize = 64 * 1024;

/// The BMC's state, shared by all requests.
pub struct Bmc<M> {
    machines: M,
    credentials: BmcCredentials,
    sessions: auth::Sessions,
    guessing: guessing::Guessing,
    media: MediaStore,
    verify_tls: bool,
    uuid: String,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Requests received, for the daemon's metrics.
    pub(crate) requests: Arc<std::sync::atomic::AtomicU64>,
}

impl<M: Machines> Bmc<M> {
    /// A BMC over `machines`, reachable with `credentials`, keeping images under
    /// `config.state_dir`.
    pub fn new(
        config: &Config,
        machines: M,
        credentials: BmcCredentials,
    ) -> Result<Self, RedfishError> {
        let rf = &config.redfish;
        let media = MediaStore::new(
            config.state_dir.join("redfish/media"),
            rf.media_max_bytes,
            Duration::from_secs(rf.media_timeout_secs),
            rf.media_verify_tls,
            rf.media_allow.clone(),
        )?;
        let seed = crate::host::facts::node_name(&config.node_name);
        Ok(Self {
            machines,
            credentials,
            sessions: auth::Sessions::default(),
            guessing: guessing::Guessing::default(),
            media,
            verify_tls: rf.media_verify_tls,
            uuid: service_uuid(&seed),
            locks: Mutex::default(),
            requests: Arc::default(),
        })
    }

    /// Serializes changes to one machine (power, boot, media).
    async fn lock(&self, name: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = Arc::clone(
            self.locks
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(name.to_string())
                .or_default(),
        );
        lock.lock_owned().await
    }

    /// Deletes image files no machine uses any more.
    pub async fn prune_media(&self) {
        match self.machines.list().await {
            Ok(all) => {
                let keep: HashSet<_> = all
                    .into_iter()
                    .filter_map(|m| m.media)
                    .map(|m| m.file)
                    .collect();
                self.media.prune(&keep);
            }
            Err(e) => tracing::warn!(error = %e, "cannot list machines to prune virtual media"),
        }
    }
}

/// A UUID (version 8 layout) stable for a host.
fn service_uuid(seed: &str) -> String {
    let d = Sha256::digest(format!("vinod-redfish/{seed}"));
    let mut b: [u8; 16] = d[..16].try_into().unwrap_or_default();
    b[6] = (b[6] & 0x0f) | 0x80;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

/// The HTTP application.
pub fn router<M: Machines + Send + Sync + 'static>(bmc: Arc<Bmc<M>>) -> Router {
    Router::new()
        .fallback(routes::dispatch::<M>)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::from_fn(listener::body_in_time))
        .with_state(bmc)
}

/// A running server.
pub struct Running {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Requests received so far.
    pub requests: Arc<std::sync::atomic::AtomicU64>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Running {
    /// Stops accepting, lets requests in flight finish (at most 5 s), and waits.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "Redfish server stopped with an error"),
            Err(e) => tracing::warn!(error = %e, "Redfish server task failed"),
        }
    }
}

/// Longest the BMC waits for its credential table to become current before it serves.
pub const FIRST_PASS_WAIT: Duration = Duration::from_secs(30);

/// Starts the server on `config.redfish` (HTTPS unless `tls = false`), or on the socket systemd
/// passed; it accepts connections once `credentials` is current.
pub async fn start<M: Machines + Send + Sync + 'static>(
    config: &Config,
    machines: M,
    credentials: BmcCredentials,
) -> Result<Running, RedfishError> {
    // rustls is built with ring only; make it the process's provider (a second call is a no-op).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let rf = &config.redfish;
    let ip = rf
        .listen_address
        .unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED));
    let addr = SocketAddr::new(ip, rf.port);
    let gate = credentials.clone();
    let bmc = Arc::new(Bmc::new(config, machines, credentials)?);
    bmc.prune_media().await;
    let requests = bmc.requests.clone();
    let app = router(bmc);
    let serve_err = |source| RedfishError::Serve {
        addr: addr.to_string(),
        source,
    };
    // Bind here so that a busy port is reported to the caller, not to a background task.
    let listener = match activation::inherited_listener()? {
        Some(inherited) => {
            let local = inherited.local_addr().map_err(serve_err)?;
            tracing::info!(%local, "Redfish BMC on the socket systemd passed");
            if local.port() != rf.port {
                tracing::warn!(%local, port = rf.port, "the passed socket's port is not redfish.port, which BareMetalHosts name: make vinod.socket listen on it");
            }
            inherited
        }
        None => std::net::TcpListener::bind(addr).map_err(serve_err)?,
    };
    listener.set_nonblocking(true).map_err(serve_err)?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(serve_err)?;
    let addr = listener.local_addr().map_err(serve_err)?;
    let tls = if rf.tls {
        let mut names: Vec<String> = Vec::new();
        if let Some(a) = rf.advertise_address {
            names.push(a.to_string());
        }
        names.extend(
            crate::host::facts::ipv4_addresses()
                .iter()
                .map(|a| a.to_string()),
        );
        names.push("localhost".into());
        let id = tls::identity(rf, &config.state_dir, &names)?;
        let loaded = RustlsConfig::from_pem(id.cert, id.key)
            .await
            .map_err(serve_err)?;
        // HTTP/1.1 only: the listener speaks nothing else.
        let mut server_config = (*loaded.get_inner()).clone();
        server_config.alpn_protocols = vec![b"http/1.1".to_vec()];
        tracing::info!(%addr, cert = %id.source.display(), "Redfish BMC listening (HTTPS)");
        Some(tokio_rustls::TlsAcceptor::from(Arc::new(server_config)))
    } else {
        tracing::info!(%addr, "Redfish BMC listening (plain HTTP)");
        None
    };
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(async move {
        // Connections wait in the backlog until the table is current (the daemon's first pass),
        // at most FIRST_PASS_WAIT: then the BMC serves with what it has.
        tokio::select! {
            () = tokio::time::sleep(FIRST_PASS_WAIT) => {
                tracing::warn!("no pass finished within {FIRST_PASS_WAIT:?}; the BMC serves with the credentials it has");
            }
            () = gate.current() => {}
            _ = stopped.changed() => return Ok(()),
        }
        listener::serve(
            listener,
            tls,
            app,
            listener::Limits::default(),
            stopped,
            Duration::from_secs(5),
        )
        .await
    });
    Ok(Running {
        addr,
        requests,
        stop,
        task,
    })
}

/// Runs the server until `shutdown` completes, then stops it cleanly.
pub async fn serve<M: Machines + Send + Sync + 'static>(
    config: &Config,
    machines: M,
    credentials: BmcCredentials,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RedfishError> {
    let running = start(config, machines, credentials).await?;
    shutdown.await;
    running.stop().await;
    Ok(())
}
