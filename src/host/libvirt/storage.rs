//! vinod's storage pool and the volumes in it.
//!
//! The pool is vinod's alone, so a volume's owner comes from its name (see
//! [`owner_from_volume_name`]); names that do not parse are left alone.

use std::collections::BTreeMap;
use std::path::Path;

use virt::connect::Connect;
use virt::error::{Error as LibvirtError, ErrorNumber};
use virt::storage_pool::StoragePool;
use virt::storage_vol::StorageVol;
use virt::sys;

use super::PoolConfig;
use super::error::{VirtError, is};
use super::xml;
use crate::render::xml_escape as x;
use crate::state::{Owner, Volume};

/// The owner encoded in a volume name made by `plan::names::volume`:
/// `<namespace>.<vino>.<set>-<index>-<disk>.qcow2`. The namespace is everything before the
/// first dot and the Vino everything up to the last dot, because namespaces, set names and disk
/// names are DNS labels (no dots) while Vino names may contain dots. The part after the last
/// dot must look like `<set>-<index>-<disk>` with a numeric index. `None` for any other name.
pub(super) fn owner_from_volume_name(name: &str) -> Option<Owner> {
    let stem = name.strip_suffix(".qcow2")?;
    let (namespace, rest) = stem.split_once('.')?;
    let (vino, tail) = rest.rsplit_once('.')?;
    let parts: Vec<&str> = tail.split('-').collect();
    let well_formed = parts.len() >= 3
        && parts.iter().all(|p| !p.is_empty())
        && parts[1..parts.len() - 1]
            .iter()
            .any(|p| p.bytes().all(|b| b.is_ascii_digit()));
    if namespace.is_empty() || vino.is_empty() || !well_formed {
        return None;
    }
    Some(Owner {
        namespace: namespace.to_string(),
        name: vino.to_string(),
    })
}

/// vinod's pool, active and set to autostart; defined (mode 0711), built and started first if
/// it does not exist. A pool of that name with another target path is somebody else's: error.
pub(super) fn ensure_pool(conn: &Connect, cfg: &PoolConfig) -> Result<StoragePool, VirtError> {
    let err = |action| move |source| pool_error(cfg, action, source);
    let pool = match conn.lookup_storage_pool_by_name(&cfg.name) {
        Ok(pool) => {
            check_target(&pool, cfg)?;
            pool
        }
        Err(e) if is(&e, ErrorNumber::NoStoragePool) => {
            let xml = format!(
                "<pool type='dir'>\n  <name>{}</name>\n  <target>\n    <path>{}</path>\n    <permissions><mode>0711</mode></permissions>\n  </target>\n</pool>\n",
                x(&cfg.name),
                x(&cfg.path.to_string_lossy())
            );
            tracing::info!(pool = %cfg.name, path = %cfg.path.display(), "defining storage pool");
            conn.define_storage_pool_xml(&xml, 0)
                .map_err(err("define"))?
        }
        Err(e) => return Err(pool_error(cfg, "look up", e)),
    };
    if !pool.is_active().map_err(err("query"))? {
        // Building a dir pool creates its directory and is harmless when it exists; the
        // create-with-build flag would do the same but the test driver rejects it.
        pool.build(0).map_err(err("build"))?;
        pool.create(0).map_err(err("start"))?;
    }
    if !pool.autostart().map_err(err("query"))? {
        pool.set_autostart(true).map_err(err("set autostart on"))?;
    }
    Ok(pool)
}

fn check_target(pool: &StoragePool, cfg: &PoolConfig) -> Result<(), VirtError> {
    let desc = pool
        .xml_desc(0)
        .map_err(|e| pool_error(cfg, "read the definition of", e))?;
    let found = xml::child_text(&desc, "target", "path").unwrap_or_default();
    if Path::new(&found) != cfg.path {
        return Err(VirtError::PoolPath {
            pool: cfg.name.clone(),
            expected: cfg.path.display().to_string(),
            found,
        });
    }
    Ok(())
}

/// The volumes of vinod's pool whose names carry an owner. `sparse` is best-effort: it is
/// allocation < capacity as libvirt reports it after a pool refresh, so a thin volume the
/// guest has filled reads as not sparse, and a preallocated one on a file system without
/// `fallocate` may read as sparse.
pub(super) fn observe_volumes(
    conn: &Connect,
    cfg: &PoolConfig,
) -> Result<BTreeMap<String, Volume>, VirtError> {
    let pool = ensure_pool(conn, cfg)?;
    // libvirt caches sizes; a refresh picks up what guests have written since.
    pool.refresh(0).map_err(|e| pool_error(cfg, "refresh", e))?;
    let mut volumes = BTreeMap::new();
    for vol in pool
        .list_all_volumes(0)
        .map_err(|e| pool_error(cfg, "list the volumes of", e))?
    {
        let name = match vol.name() {
            Ok(name) => name,
            Err(e) if is(&e, ErrorNumber::NoStorageVolume) => continue,
            Err(e) => return Err(pool_error(cfg, "list the volumes of", e)),
        };
        let Some(owner) = owner_from_volume_name(&name) else {
            continue;
        };
        let info = match vol.info() {
            Ok(info) => info,
            Err(e) if is(&e, ErrorNumber::NoStorageVolume) => continue,
            Err(e) => return Err(volume_error(cfg, &name, "query", e)),
        };
        volumes.insert(
            name.clone(),
            Volume {
                name,
                capacity_bytes: info.capacity,
                sparse: info.allocation < info.capacity,
                owner,
            },
        );
    }
    Ok(volumes)
}

/// Creates a qcow2 volume: thin when sparse, else preallocated to its full capacity.
pub(super) fn create_volume(
    conn: &Connect,
    cfg: &PoolConfig,
    volume: &Volume,
) -> Result<(), VirtError> {
    check_name(volume)?;
    let pool = ensure_pool(conn, cfg)?;
    let exists = || VirtError::VolumeExists {
        pool: cfg.name.clone(),
        volume: volume.name.clone(),
    };
    match pool.lookup_storage_vol_by_name(&volume.name) {
        Ok(_) => return Err(exists()),
        Err(e) if is(&e, ErrorNumber::NoStorageVolume) => {}
        Err(e) => return Err(volume_error(cfg, &volume.name, "look up", e)),
    }
    let allocation = if volume.sparse {
        0
    } else {
        volume.capacity_bytes
    };
    let xml = format!(
        "<volume>\n  <name>{}</name>\n  <capacity unit='bytes'>{}</capacity>\n  <allocation unit='bytes'>{allocation}</allocation>\n  <target><format type='qcow2'/></target>\n</volume>\n",
        x(&volume.name),
        volume.capacity_bytes
    );
    // Without the preallocation flag libvirt leaves a qcow2 thin whatever the allocation;
    // with it and allocation = capacity, qemu-img preallocates with fallocate.
    let flags = if volume.sparse {
        0
    } else {
        sys::VIR_STORAGE_VOL_CREATE_PREALLOC_METADATA
    };
    let created = match StorageVol::create_xml(&pool, &xml, flags) {
        // The test driver accepts no flags.
        Err(e) if flags != 0 && is(&e, ErrorNumber::InvalidArg) => {
            StorageVol::create_xml(&pool, &xml, 0)
        }
        other => other,
    };
    match created {
        Ok(_) => Ok(()),
        Err(e) if is(&e, ErrorNumber::StorageVolExist) => Err(exists()),
        Err(e) => Err(volume_error(cfg, &volume.name, "create", e)),
    }
}

/// Deletes a volume from vinod's pool; a volume that is already gone is not an error.
pub(super) fn delete_volume(
    conn: &Connect,
    cfg: &PoolConfig,
    volume: &Volume,
) -> Result<(), VirtError> {
    check_name(volume)?;
    let pool = ensure_pool(conn, cfg)?;
    match pool.lookup_storage_vol_by_name(&volume.name) {
        Ok(vol) => vol
            .delete(0)
            .map_err(|e| volume_error(cfg, &volume.name, "delete", e)),
        Err(e) if is(&e, ErrorNumber::NoStorageVolume) => Ok(()),
        Err(e) => Err(volume_error(cfg, &volume.name, "look up", e)),
    }
}

/// Refuses names `observe` would not report as the volume's owner's: such a volume would
/// either be invisible to vinod or not be vinod's.
fn check_name(volume: &Volume) -> Result<(), VirtError> {
    if owner_from_volume_name(&volume.name).as_ref() != Some(&volume.owner) {
        return Err(VirtError::VolumeNotOwned {
            volume: volume.name.clone(),
            owner: volume.owner.clone(),
        });
    }
    Ok(())
}

fn pool_error(cfg: &PoolConfig, action: &'static str, source: LibvirtError) -> VirtError {
    VirtError::Pool {
        pool: cfg.name.clone(),
        action,
        source,
    }
}

fn volume_error(
    cfg: &PoolConfig,
    volume: &str,
    action: &'static str,
    source: LibvirtError,
) -> VirtError {
    VirtError::Volume {
        pool: cfg.name.clone(),
        volume: volume.to_string(),
        action,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::names;

    fn owner(namespace: &str, name: &str) -> Option<Owner> {
        Some(Owner {
            namespace: namespace.into(),
            name: name.into(),
        })
    }

    #[test]
    fn parses_owner_from_volume_names() {
        let vm = names::vm_names("default", "vino.test-cr", "n1", "worker", 3);
        let name = names::volume(&vm.domain, "root");
        assert_eq!(name, "default.vino.test-cr.worker-3-root.qcow2");
        assert_eq!(
            owner_from_volume_name(&name),
            owner("default", "vino.test-cr")
        );
        assert_eq!(
            owner_from_volume_name("ns.v.w-2-a-0-data-1.qcow2"),
            owner("ns", "v")
        );
        for other in [
            "ns.v.worker-0-root.img",
            "ns.worker-0-root.qcow2",
            ".v.worker-0-root.qcow2",
            "ns..worker-0-root.qcow2",
            "ns.v.worker-root.qcow2",
            "ns.v.worker-0.qcow2",
            "ns.v.-0-root.qcow2",
            "disk.qcow2",
        ] {
            assert_eq!(owner_from_volume_name(other), None, "{other}");
        }
    }
}
