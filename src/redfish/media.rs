//! Virtual media images: downloaded by vinod over HTTP(S) into `state_dir/redfish/media`,
//! with a size limit and a deadline, then handed to the hypervisor as a CD image.
//!
//! A BMC client names the URL, so vinod (root, on the host's network) fetches only from the
//! networks in `redfish.media_allow`: every address a host name resolves to, IP literals, and
//! every redirect's target are checked, and the connection goes to a checked address only.
//! Credentials for the image server are not sent on to a redirect's other host. A client is
//! told only that the image could not be fetched; the reason is logged.

use std::collections::HashSet;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use base64::Engine;
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper::{Request, StatusCode, Uri, header};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::TokioExecutor;
use ipnet::IpNet;
use ring::rand::{SecureRandom, SystemRandom};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::AsyncWriteExt;

use super::error::RedfishError;

/// Redirects followed at most.
const MAX_REDIRECTS: usize = 5;

/// Why an image could not be fetched.
#[derive(Debug, thiserror::Error)]
pub enum MediaError {
    /// The URL does not parse.
    #[error("{0} is not a valid http(s) URL")]
    Url(String),
    /// The request failed (source not allowed, connection, TLS, protocol). The reason is
    /// logged, never shown to the client: it would tell open ports from closed ones.
    #[error("cannot fetch {url}")]
    Fetch {
        /// URL without its query.
        url: String,
        /// Why.
        reason: String,
    },
    /// The server answered with an error status.
    #[error("{url} answered {status}")]
    Status {
        /// URL without its query.
        url: String,
        /// The status.
        status: StatusCode,
    },
    /// The image is larger than allowed.
    #[error("{url} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// URL without its query.
        url: String,
        /// `redfish.media_max_bytes`.
        limit: u64,
    },
    /// The download took too long.
    #[error("fetching {url} took longer than {0:?}", .timeout)]
    Timeout {
        /// URL without its query.
        url: String,
        /// `redfish.media_timeout_secs`.
        timeout: Duration,
    },
    /// The local copy could not be written.
    #[error("cannot write {path}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl MediaError {
    /// Whether the failure is the image source's (the client's URL), not vinod's.
    pub fn is_source(&self) -> bool {
        !matches!(self, Self::Io { .. })
    }

    /// The error with its reason, for the log.
    pub fn detail(&self) -> String {
        match self {
            Self::Fetch { url, reason } => format!("cannot fetch {url}: {reason}"),
            other => other.to_string(),
        }
    }
}

type HttpsClient =
    Client<hyper_rustls::HttpsConnector<HttpConnector<AllowedResolver>>, Empty<Bytes>>;

/// Where images go and how they are fetched.
#[derive(Clone)]
pub struct MediaStore {
    dir: PathBuf,
    max_bytes: u64,
    timeout: Duration,
    client: HttpsClient,
    allow: Arc<Vec<IpNet>>,
    rng: Arc<SystemRandom>,
}

impl MediaStore {
    /// A store in `dir` (created, mode 0755: qemu reads the images) fetching only from the
    /// networks in `allow`.
    pub fn new(
        dir: PathBuf,
        max_bytes: u64,
        timeout: Duration,
        verify_tls: bool,
        allow: Vec<IpNet>,
    ) -> Result<Self, RedfishError> {
        std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)))
            .map_err(|source| RedfishError::MediaDir {
                path: dir.display().to_string(),
                source,
            })?;
        let allow = Arc::new(allow);
        let mut http = HttpConnector::new_with_resolver(AllowedResolver {
            allow: allow.clone(),
        });
        http.enforce_http(false);
        let builder = hyper_rustls::HttpsConnectorBuilder::new();
        let connector = if verify_tls {
            builder
                .with_native_roots()
                .map_err(RedfishError::MediaClient)?
        } else {
            builder.with_tls_config(
                rustls::ClientConfig::builder()
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyCertificate(
                        rustls::crypto::ring::default_provider(),
                    )))
                    .with_no_client_auth(),
            )
        }
        .https_or_http()
        .enable_http1()
        .wrap_connector(http);
        Ok(Self {
            dir,
            max_bytes,
            timeout,
            client: Client::builder(TokioExecutor::new()).build(connector),
            allow,
            rng: Arc::new(SystemRandom::new()),
        })
    }

    /// The directory images are kept in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Downloads `url` for machine `name`; returns the new local file.
    pub async fn fetch(
        &self,
        name: &str,
        url: &str,
        auth: Option<&(String, String)>,
    ) -> Result<PathBuf, MediaError> {
        let mut suffix = [0u8; 6];
        self.rng.fill(&mut suffix).map_err(|_| MediaError::Io {
            path: self.dir.display().to_string(),
            source: std::io::Error::other("no randomness"),
        })?;
        let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
        let file = self.dir.join(format!("{name}.{suffix}.iso"));
        // Deleted on every way out but success, also when the client goes away and this
        // future is dropped half way.
        let part = PartFile(self.dir.join(format!("{name}.{suffix}.part")));
        let shown = without_query(url);
        let result =
            match tokio::time::timeout(self.timeout, self.download(url, auth, &part.0)).await {
                Ok(r) => r,
                Err(_) => Err(MediaError::Timeout {
                    url: shown,
                    timeout: self.timeout,
                }),
            };
        result?;
        tokio::fs::rename(&part.0, &file)
            .await
            .map_err(|source| MediaError::Io {
                path: file.display().to_string(),
                source,
            })?;
        Ok(file)
    }

    async fn download(
        &self,
        url: &str,
        auth: Option<&(String, String)>,
        part: &Path,
    ) -> Result<(), MediaError> {
        let shown = without_query(url);
        let mut uri: Uri = url.parse().map_err(|_| MediaError::Url(shown.clone()))?;
        let origin = uri.authority().cloned();
        let mut redirects = 0;
        let response = loop {
            self.check_literal(&uri)
                .map_err(|reason| MediaError::Fetch {
                    url: shown.clone(),
                    reason,
                })?;
            let mut req = Request::get(uri.clone());
            // The image server's credentials go to that server only, not to where it redirects.
            if let Some((user, password)) = auth.filter(|_| uri.authority() == origin.as_ref()) {
                let token =
                    base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
                req = req.header(header::AUTHORIZATION, format!("Basic {token}"));
            }
            let req = req
                .body(Empty::new())
                .map_err(|_| MediaError::Url(shown.clone()))?;
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| MediaError::Fetch {
                    url: shown.clone(),
                    reason: crate::error_chain(&e),
                })?;
            if resp.status().is_redirection() && redirects < MAX_REDIRECTS {
                let location = resp
                    .headers()
                    .get(header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| MediaError::Status {
                        url: shown.clone(),
                        status: resp.status(),
                    })?;
                uri = resolve(&uri, location)
                    .ok_or_else(|| MediaError::Url(without_query(location)))?;
                redirects += 1;
                continue;
            }
            break resp;
        };
        if response.status() != StatusCode::OK {
            return Err(MediaError::Status {
                url: shown,
                status: response.status(),
            });
        }
        let too_large = || MediaError::TooLarge {
            url: shown.clone(),
            limit: self.max_bytes,
        };
        let length = response
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|l| l.to_str().ok()?.parse::<u64>().ok());
        if length.is_some_and(|l| l > self.max_bytes) {
            return Err(too_large());
        }
        let io = |source| MediaError::Io {
            path: part.display().to_string(),
            source,
        };
        let mut out = tokio::fs::File::create(part).await.map_err(io)?;
        let mut body = response.into_body();
        let mut written: u64 = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| MediaError::Fetch {
                url: shown.clone(),
                reason: crate::error_chain(&e),
            })?;
            if let Ok(data) = frame.into_data() {
                written += data.len() as u64;
                if written > self.max_bytes {
                    return Err(too_large());
                }
                out.write_all(&data).await.map_err(io)?;
            }
        }
        out.sync_all().await.map_err(io)?;
        drop(out);
        tokio::fs::set_permissions(part, std::fs::Permissions::from_mode(0o644))
            .await
            .map_err(io)
    }

    /// Refuses a URL whose host is an IP address outside `redfish.media_allow` (host names are
    /// checked by the resolver, which hands the connector only allowed addresses).
    fn check_literal(&self, uri: &Uri) -> Result<(), String> {
        let host = uri.host().unwrap_or("");
        let literal = host.trim_start_matches('[').trim_end_matches(']');
        match literal.parse::<IpAddr>() {
            Ok(ip) if !allowed(&self.allow, ip) => {
                Err(format!("{ip} is not in redfish.media_allow"))
            }
            _ => Ok(()),
        }
    }

    /// Deletes an image file if it is one of this store's.
    pub fn remove(&self, file: &Path) {
        if file.parent() == Some(self.dir.as_path())
            && let Err(e) = std::fs::remove_file(file)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(file = %file.display(), error = %e, "cannot delete virtual media image");
        }
    }

    /// Deletes every image file of the store not in `keep` (left by ejects that failed half
    /// way, machines that were deleted, or downloads cut short).
    pub fn prune(&self, keep: &HashSet<PathBuf>) {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return;
        };
        for path in entries.flatten().map(|e| e.path()) {
            if path.is_file() && !keep.contains(&path) {
                self.remove(&path);
            }
        }
    }
}

/// `url` without user information, query and fragment, safe to log and show (signed URLs carry
/// tokens in the query, and some clients put credentials before the host).
pub fn without_query(url: &str) -> String {
    let bare = url.split(['?', '#']).next().unwrap_or("");
    match bare.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            format!("{scheme}://{host}{path}")
        }
        None => bare.to_string(),
    }
}

/// Whether `ip` is in one of the networks of `allow` (IPv4-mapped IPv6 counts as IPv4).
fn allowed(allow: &[IpNet], ip: IpAddr) -> bool {
    let ip = ip.to_canonical();
    allow.iter().any(|net| net.contains(&ip))
}

/// A partial download, deleted when dropped unless it was renamed away first.
struct PartFile(PathBuf);

impl Drop for PartFile {
    fn drop(&mut self) {
        // After a successful rename the file is gone and this is a no-op.
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Resolves image server names to their allowed addresses only; a name with none is an
/// error, so a DNS name can never lead the connection outside `redfish.media_allow`.
#[derive(Clone)]
struct AllowedResolver {
    allow: Arc<Vec<IpNet>>,
}

type Resolved = std::vec::IntoIter<SocketAddr>;

impl tower_service::Service<Name> for AllowedResolver {
    type Response = Resolved;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Resolved, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow = self.allow.clone();
        Box::pin(async move {
            let found: Vec<SocketAddr> = tokio::net::lookup_host((name.as_str(), 0))
                .await?
                .filter(|a| allowed(&allow, a.ip()))
                .collect();
            if found.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{name} resolves to no address in redfish.media_allow"),
                ));
            }
            Ok(found.into_iter())
        })
    }
}

fn resolve(base: &Uri, location: &str) -> Option<Uri> {
    if location.contains("://") {
        return location.parse().ok();
    }
    let mut parts = base.clone().into_parts();
    let path = if location.starts_with('/') {
        location.to_string()
    } else {
        let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
        format!("{dir}/{location}")
    };
    parts.path_and_query = Some(path.parse().ok()?);
    Uri::from_parts(parts).ok()
}

/// Accepts any server certificate (`redfish.media_verify_tls = false`), still checking the
/// handshake signatures.
#[derive(Debug)]
struct AnyCertificate(rustls::crypto::CryptoProvider);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_resolve_and_queries_are_hidden() {
        let base: Uri = "http://127.0.0.1:8080/a/b.iso?sig=x".parse().unwrap();
        assert_eq!(
            resolve(&base, "/c.iso").unwrap().to_string(),
            "http://127.0.0.1:8080/c.iso"
        );
        assert_eq!(
            resolve(&base, "d.iso").unwrap().to_string(),
            "http://127.0.0.1:8080/a/d.iso"
        );
        assert_eq!(
            resolve(&base, "https://h/e.iso").unwrap().to_string(),
            "https://h/e.iso"
        );
        assert_eq!(
            without_query("http://h/x.iso?temp_url_sig=s#f"),
            "http://h/x.iso"
        );
        assert_eq!(
            without_query("https://user:secret@h:8443/x.iso?a=b"),
            "https://h:8443/x.iso"
        );
    }

    #[test]
    fn only_allowed_networks_pass() {
        let allow: Vec<IpNet> = vec!["192.0.2.0/24".parse().unwrap()];
        assert!(allowed(&allow, "192.0.2.7".parse().unwrap()));
        assert!(allowed(&allow, "::ffff:192.0.2.7".parse().unwrap()));
        for refused in ["127.0.0.1", "169.254.169.254", "10.0.0.1", "::1", "0.0.0.0"] {
            assert!(!allowed(&allow, refused.parse().unwrap()), "{refused}");
        }
        assert!(!allowed(&[], "192.0.2.7".parse().unwrap()));
    }
}
