//! Standalone inputs and outputs on disk: the manifest file (Vinos and Secrets), the persisted
//! IP claims, and the published objects and status written under the state directory.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use serde::{Deserialize, Serialize};

use crate::api::{self, NodeStatus, Vino};
use crate::ipam::NetworkClaims;
use crate::render::objects::Credentials;
use crate::state::Owner;

/// Errors reading or writing standalone files.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A document could not be decoded.
    #[error("{path}: document {index}: {reason}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// Zero-based document number.
        index: usize,
        /// Decoder message naming the field.
        reason: String,
    },
}

/// The Vinos and Secrets of a manifest file.
#[derive(Clone, Debug, Default)]
pub struct Manifest {
    /// Vinos, sorted by namespace and name.
    pub vinos: Vec<Vino>,
    /// Secrets by (namespace, name).
    pub secrets: BTreeMap<(String, String), Secret>,
}

impl Manifest {
    /// Reads a multi-document YAML file of `Vino` and `Secret` objects; other kinds are an error.
    pub fn read(path: &Path) -> Result<Manifest, FileError> {
        let text = fs::read_to_string(path).map_err(|source| FileError::Io {
            path: path.into(),
            source,
        })?;
        let mut m = Manifest::default();
        for (index, doc) in serde_yaml::Deserializer::from_str(&text).enumerate() {
            let value = serde_yaml::Value::deserialize(doc).map_err(|e| FileError::Decode {
                path: path.into(),
                index,
                reason: e.to_string(),
            })?;
            if value.is_null() {
                continue;
            }
            let kind = value.get("kind").and_then(|k| k.as_str()).unwrap_or("");
            let decode_err = |reason: String| FileError::Decode {
                path: path.into(),
                index,
                reason,
            };
            match kind {
                "Vino" => {
                    let text =
                        serde_yaml::to_string(&value).map_err(|e| decode_err(e.to_string()))?;
                    let mut vino = api::parse_vino(&text).map_err(|e| decode_err(e.to_string()))?;
                    vino.metadata
                        .namespace
                        .get_or_insert_with(|| "default".into());
                    m.vinos.push(vino);
                }
                "Secret" => {
                    let s: Secret =
                        serde_yaml::from_value(value).map_err(|e| decode_err(e.to_string()))?;
                    let ns = s
                        .metadata
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".into());
                    m.secrets
                        .insert((ns, s.metadata.name.clone().unwrap_or_default()), s);
                }
                other => {
                    return Err(decode_err(format!(
                        "kind {other:?}: only Vino and Secret are read"
                    )));
                }
            }
        }
        m.vinos.sort_by_key(owner_of);
        Ok(m)
    }

    /// BMC credentials of `vino` from its `secretRef`, if it has one and the Secret is here.
    pub fn credentials(&self, vino: &Vino) -> Option<Credentials> {
        let r = vino.spec.bmc_credentials.as_ref()?.secret_ref.as_ref()?;
        let ns = vino
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        secret_credentials(self.secrets.get(&(ns, r.name.clone()))?)
    }
}

/// BMC credentials from a Secret's `username` and `password` (`stringData` or `data`).
pub fn secret_credentials(s: &Secret) -> Option<Credentials> {
    let get = |k: &str| {
        s.string_data
            .as_ref()
            .and_then(|d| d.get(k).cloned())
            .or_else(|| {
                s.data
                    .as_ref()
                    .and_then(|d| d.get(k))
                    .and_then(|b| String::from_utf8(b.0.clone()).ok())
            })
    };
    Some(Credentials {
        username: get("username")?,
        password: get("password")?,
    })
}

/// The owner key of a Vino.
pub fn owner_of(vino: &Vino) -> Owner {
    Owner {
        namespace: vino
            .metadata
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        name: vino.metadata.name.clone().unwrap_or_default(),
    }
}

/// Persisted claims: Vino (`namespace/name`) → network → host → claims.
pub type ClaimStore = BTreeMap<String, BTreeMap<String, NetworkClaims>>;

/// Reads the claim store; a missing file is an empty store.
pub fn read_claims(path: &Path) -> Result<ClaimStore, FileError> {
    match fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| FileError::Decode {
            path: path.into(),
            index: 0,
            reason: e.to_string(),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ClaimStore::new()),
        Err(source) => Err(FileError::Io {
            path: path.into(),
            source,
        }),
    }
}

/// Like [`write_atomic`], but leaves the file alone when it already holds `bytes`; returns
/// whether it wrote. Idle passes then write nothing.
pub fn write_if_changed(path: &Path, bytes: &[u8], mode: u32) -> Result<bool, FileError> {
    let same = fs::read(path).is_ok_and(|old| old == bytes)
        && fs::metadata(path).is_ok_and(|m| m.permissions().mode() & 0o777 == mode);
    if same {
        return Ok(false);
    }
    write_atomic(path, bytes, mode)?;
    Ok(true)
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename) with `mode`.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), FileError> {
    let io = |source| FileError::Io {
        path: path.into(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(io)?;
    }
    let tmp = path.with_extension("tmp");
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&tmp)
        .map_err(io)?;
    f.write_all(bytes).map_err(io)?;
    f.sync_all().map_err(io)?;
    fs::set_permissions(&tmp, fs::Permissions::from_mode(mode)).map_err(io)?;
    fs::rename(&tmp, path).map_err(io)
}

/// Status of one Vino on this host, as written to `status.yaml`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VinoReport {
    /// `namespace/name`.
    pub vino: String,
    /// This host's entry, as it would appear in `Vino.status.nodes`.
    pub status: NodeStatus,
    /// Accepted input worth reporting.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
}
