//! The BMC's TLS identity: the configured certificate and key, or a self-signed certificate
//! generated once and kept in `state_dir/redfish/` (key mode 0600) so that it survives
//! restarts.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::error::RedfishError;
use crate::config::RedfishConfig;

/// PEM certificate chain and private key.
pub struct Identity {
    /// Certificate chain, PEM.
    pub cert: Vec<u8>,
    /// Private key, PEM.
    pub key: Vec<u8>,
    /// Where it came from, for the log.
    pub source: PathBuf,
}

/// The identity to serve with. `names` are the subject alternative names of a generated
/// certificate (the advertised address and the host's addresses).
pub fn identity(
    config: &RedfishConfig,
    state_dir: &Path,
    names: &[String],
) -> Result<Identity, RedfishError> {
    if !config.tls_cert.as_os_str().is_empty() {
        return Ok(Identity {
            cert: read(&config.tls_cert)?,
            key: read(&config.tls_key)?,
            source: config.tls_cert.clone(),
        });
    }
    let dir = state_dir.join("redfish");
    let cert_path = dir.join("cert.pem");
    let key_path = dir.join("key.pem");
    if cert_path.exists() && key_path.exists() {
        return Ok(Identity {
            cert: read(&cert_path)?,
            key: read(&key_path)?,
            source: cert_path,
        });
    }
    let mut sans: Vec<String> = names.to_vec();
    if sans.is_empty() {
        sans.push("localhost".into());
    }
    let generated = rcgen::generate_simple_self_signed(sans).map_err(RedfishError::CertGen)?;
    let cert = generated.cert.pem().into_bytes();
    let key = generated.signing_key.serialize_pem().into_bytes();
    std::fs::create_dir_all(&dir).map_err(|source| RedfishError::CertFile {
        path: dir.display().to_string(),
        source,
    })?;
    write(&key_path, &key, 0o600)?;
    write(&cert_path, &cert, 0o644)?;
    tracing::info!(cert = %cert_path.display(), "generated a self-signed Redfish certificate");
    Ok(Identity {
        cert,
        key,
        source: cert_path,
    })
}

fn read(path: &Path) -> Result<Vec<u8>, RedfishError> {
    std::fs::read(path).map_err(|source| RedfishError::CertFile {
        path: path.display().to_string(),
        source,
    })
}

/// Writes a file created with `mode` from the start (a key is never readable by others, not
/// even briefly), through a temporary name.
fn write(path: &Path, bytes: &[u8], mode: u32) -> Result<(), RedfishError> {
    let err = |source| RedfishError::CertFile {
        path: path.display().to_string(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn generates_once_and_reuses() {
        let dir = tempfile::tempdir().unwrap();
        let config = RedfishConfig::default();
        let a = identity(&config, dir.path(), &["192.0.2.10".into()]).unwrap();
        let mode = std::fs::metadata(dir.path().join("redfish/key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = identity(&config, dir.path(), &["other".into()]).unwrap();
        assert_eq!(a.cert, b.cert, "kept across restarts");
        assert!(String::from_utf8(a.key).unwrap().contains("PRIVATE KEY"));
    }

    #[test]
    fn configured_files_win() {
        let dir = tempfile::tempdir().unwrap();
        let config = RedfishConfig {
            tls_cert: dir.path().join("missing.pem"),
            tls_key: dir.path().join("missing.key"),
            ..RedfishConfig::default()
        };
        let e = identity(&config, dir.path(), &[]).err().unwrap();
        assert!(e.to_string().contains("missing.pem"));
    }
}
