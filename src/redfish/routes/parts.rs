//! Requests on a System's inventory (processors, storage) and its BIOS.

use axum::http::HeaderMap;
use serde_json::Value;

use super::{Reply, fault, if_match, visible};
use crate::host::Machines;
use crate::host::machine::Disk;
use crate::redfish::error::ApiError;
use crate::redfish::inventory::{self as inv, Part, STORAGE_ID};
use crate::redfish::reply::{json, no_content};
use crate::redfish::target::Target;
use crate::redfish::{Bmc, action, auth::Principal, bios};

/// The document of `part` of System `id`; `path` is the request's, for a 404.
pub(super) async fn get<M: Machines + Send + Sync>(
    bmc: &Bmc<M>,
    caller: &Principal,
    id: &str,
    part: &Part,
    path: &str,
) -> Result<Value, ApiError> {
    let m = visible(bmc, caller, id).await?;
    let disks: Vec<Disk> = if part.needs_disks() {
        bmc.machines
            .disks(id)
            .await
            .map_err(fault)?
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let disk = |d: &str| disks.iter().find(|x| x.id == d);
    let ours = |s: &str| s == STORAGE_ID;
    let found = match part {
        Part::Processors => Some(inv::processors(&m)),
        Part::Processor(cpu) => inv::processor(&m, cpu),
        Part::SimpleStorages => Some(inv::simple_storages(&m)),
        Part::SimpleStorage(s) if ours(s) => Some(inv::simple_storage(&m, &disks)),
        Part::Storages => Some(inv::storages(&m)),
        Part::Storage(s) if ours(s) => Some(inv::storage(&m, &disks)),
        Part::Drive(s, d) if ours(s) => disk(d).map(|d| inv::drive(&m, d)),
        Part::Volumes(s) if ours(s) => Some(inv::volumes(&m, &disks)),
        Part::Volume(s, d) if ours(s) => disk(d).and_then(|d| inv::volume(&m, d)),
        Part::Bios => Some(bios::bios(&m)),
        Part::BiosSettings => Some(bios::settings(&m)),
        _ => None,
    };
    found.ok_or_else(|| ApiError::not_found(path))
}

/// PATCH of the BIOS `Settings` object: the attributes wait for the next boot.
pub(super) async fn patch_bios_settings<M: Machines + Send + Sync>(
    bmc: &Bmc<M>,
    caller: &Principal,
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Reply {
    let _guard = bmc.lock(&visible(bmc, caller, id).await?.name).await;
    let m = visible(bmc, caller, id).await?;
    if_match(headers, &bios::settings(&m))?;
    let next = bios::settings_patch(body, &m.bios)?;
    tracing::info!(machine = %id, pending = ?next.pending, "BIOS settings pending until the next boot");
    bmc.machines.set_bios(id, next).await.map_err(fault)?;
    let m = visible(bmc, caller, id).await?;
    Ok(json(
        bios::settings(&m),
        &Target::Part(id.to_string(), Part::BiosSettings),
        &HeaderMap::new(),
    ))
}

/// `Bios.ResetBios`: the defaults wait for the next boot.
pub(super) async fn reset_bios<M: Machines + Send + Sync>(
    bmc: &Bmc<M>,
    caller: &Principal,
    id: &str,
    body: &[u8],
) -> Reply {
    action::no_parameters("Bios.ResetBios", body)?;
    let _guard = bmc.lock(&visible(bmc, caller, id).await?.name).await;
    let m = visible(bmc, caller, id).await?;
    tracing::info!(machine = %id, "BIOS reset to defaults at the next boot");
    bmc.machines
        .set_bios(id, bios::reset(&m.bios))
        .await
        .map_err(fault)?;
    Ok(no_content())
}
