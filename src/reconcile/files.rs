//! Standalone inputs and outputs on disk: the manifest file (Vinos and Secrets), the persisted
//! IP claims, and atomic writes of the published objects and status.

use std::collections::BTreeMap;
use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Secret;
use serde::{Deserialize, Serialize};

use super::source::{Failure, FailureKind};
use crate::api::{self, Vino};
use crate::ipam::NetworkClaims;
use crate::plan::VinoPlan;
use crate::state::Owner;

/// Errors reading or writing standalone files.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// A file could not be read or written.
    #[error("{path}")]
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
    /// Content could not be encoded; nothing was written.
    #[error("{path}: cannot encode")]
    Encode {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A name would lead a file path out of its directory; nothing was written.
    #[error("{base}: refusing {part:?} as a name inside it: it is not one plain file name")]
    Escape {
        /// The directory.
        base: PathBuf,
        /// The offending name.
        part: String,
    },
}

impl Failure for FileError {
    fn kind(&self) -> FailureKind {
        match self {
            FileError::Io { .. } | FileError::Encode { .. } => FailureKind::Host,
            FileError::Decode { .. } | FileError::Escape { .. } => FailureKind::InvalidInput,
        }
    }
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
        let io = |source| FileError::Io {
            path: path.into(),
            source,
        };
        // One byte past the bound is enough to refuse a larger file without reading it all.
        let mut text = String::new();
        fs::File::open(path)
            .and_then(|f| {
                f.take(api::MAX_YAML_BYTES as u64 + 1)
                    .read_to_string(&mut text)
            })
            .map_err(io)?;
        api::check_yaml_bounds(&text, "the manifest").map_err(|e| FileError::Decode {
            path: path.into(),
            index: 0,
            reason: e.to_string(),
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
        m.vinos.sort_by_key(Owner::of);
        Ok(m)
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

/// `base` joined with `parts`, each of which must be one plain file name: a `/`, `.`, `..`,
/// NUL or empty part (which would lead the path out of `base`) is refused.
pub fn inside(base: &Path, parts: &[&str]) -> Result<PathBuf, FileError> {
    let mut path = base.to_path_buf();
    for part in parts {
        if part.is_empty() || *part == "." || *part == ".." || part.contains(['/', '\0']) {
            return Err(FileError::Escape {
                base: base.into(),
                part: part.chars().take(64).collect(),
            });
        }
        path.push(part);
    }
    Ok(path)
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

/// `items` as one multi-document YAML text.
pub fn multi_doc<T: Serialize>(path: &Path, items: &[T]) -> Result<String, FileError> {
    items
        .iter()
        .map(|i| yaml(path, i).map(|text| format!("---\n{text}")))
        .collect()
}

/// `value` as YAML; an error names `path`, the file it was meant for.
pub fn yaml<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<String, FileError> {
    serde_yaml::to_string(value).map_err(|e| FileError::Encode {
        path: path.into(),
        source: Box::new(e),
    })
}

/// Records this host's claims of `plan` in `store`.
pub fn record_claims(store: &mut ClaimStore, plan: &VinoPlan) {
    let entry = store.entry(plan.owner.to_string()).or_default();
    for (net, c) in &plan.claims {
        entry
            .entry(net.clone())
            .or_default()
            .insert(plan.node.clone(), c.clone());
    }
}

/// Saves the claim store (only if it changed).
pub fn save_claims(path: &Path, store: &ClaimStore) -> Result<(), FileError> {
    let text = serde_json::to_string_pretty(store).map_err(|e| FileError::Encode {
        path: path.into(),
        source: Box::new(e),
    })?;
    write_if_changed(path, text.as_bytes(), 0o644).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_leave_the_directory_are_refused() {
        let base = Path::new("/var/lib/vinod/standalone");
        assert_eq!(
            inside(base, &["lab", "demo"]).unwrap(),
            base.join("lab/demo")
        );
        for bad in ["..", ".", "", "a/b", "/tmp", "x\0y"] {
            let e = inside(base, &["lab", bad]).unwrap_err();
            assert!(matches!(e, FileError::Escape { .. }), "{bad:?}: {e}");
            assert_eq!(e.kind(), FailureKind::InvalidInput);
        }
    }
}
