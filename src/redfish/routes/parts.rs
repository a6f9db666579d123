//! Requests on a System's inventory (processors, storage) and its BIOS, and the PATCHes of
//! a System (boot override) and of its BIOS settings.

use axum::http::{HeaderMap, StatusCode, header};
use serde_json::Value;

use super::{Reply, fault, visible};
use crate::host::Machines;
use crate::host::machine::{Disk, Machine};
use crate::redfish::error::ApiError;
use crate::redfish::inventory::{self as inv, Part, STORAGE_ID};
use crate::redfish::reply::{etag, json, no_content};
use crate::redfish::target::Target;
use crate::redfish::{Bmc, action, auth::Principal, bios, resources as doc, secure_boot};

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
        Part::SecureBoot => Some(secure_boot::resource(&m, enforced_now(bmc, id).await?)),
        _ => None,
    };
    found.ok_or_else(|| ApiError::not_found(path))
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

/// A PATCH of `target` with `body`.
pub(super) async fn patch<M: Machines + Send + Sync>(
    bmc: &Bmc<M>,
    caller: &Principal,
    target: &Target,
    headers: &HeaderMap,
    body: &[u8],
) -> Reply {
    match target {
        Target::System(id) => {
            patch_machine(bmc, caller, id, target, headers, doc::system, async |m| {
                let boot = action::boot_patch(body, m.boot)?;
                if boot != m.boot {
                    bmc.machines.set_boot(id, boot).await.map_err(fault)?;
                }
                Ok(())
            })
            .await
        }
        Target::Part(id, Part::BiosSettings) => {
            patch_machine(bmc, caller, id, target, headers, bios::settings, async |m| {
                let next = bios::settings_patch(body, &m.bios)?;
                tracing::info!(machine = %id, pending = ?next.pending, "BIOS settings pending until the next boot");
                bmc.machines.set_bios(id, next).await.map_err(fault)
            })
            .await
        }
        Target::Part(id, Part::SecureBoot) => {
            let _guard = bmc.lock(&visible(bmc, caller, id).await?.name).await;
            let m = visible(bmc, caller, id).await?;
            if_match(headers, &secure_boot::resource(&m, enforced_now(bmc, id).await?))?;
            let enable = secure_boot::patch(body, &m)?;
            if enable != m.secure_boot {
                tracing::info!(machine = %id, enable, "secure boot changed for the next boot");
                bmc.machines
                    .set_secure_boot(id, enable)
                    .await
                    .map_err(fault)?;
            }
            let m = visible(bmc, caller, id).await?;
            let doc = secure_boot::resource(&m, enforced_now(bmc, id).await?);
            Ok(json(doc, target, &HeaderMap::new()))
        }
        _ => Err(ApiError::method_not_allowed("PATCH", target.allow())),
    }
}

/// Whether the firmware machine `id` runs now enforces secure boot.
async fn enforced_now<M: Machines + Send + Sync>(bmc: &Bmc<M>, id: &str) -> Result<bool, ApiError> {
    bmc.machines
        .secure_boot_now(id)
        .await
        .map_err(fault)?
        .ok_or_else(|| ApiError::not_found(&format!("/redfish/v1/Systems/{id}")))
}

/// A PATCH of `target`, a resource of machine `id` whose document `doc` makes: under the
/// machine's lock, checks `If-Match` against the document, lets `change` act on the machine,
/// and answers with the document as it is then.
async fn patch_machine<M: Machines + Send + Sync>(
    bmc: &Bmc<M>,
    caller: &Principal,
    id: &str,
    target: &Target,
    headers: &HeaderMap,
    doc: fn(&Machine) -> Value,
    change: impl AsyncFnOnce(Machine) -> Result<(), ApiError>,
) -> Reply {
    let _guard = bmc.lock(&visible(bmc, caller, id).await?.name).await;
    let m = visible(bmc, caller, id).await?;
    if_match(headers, &doc(&m))?;
    change(m).await?;
    let m = visible(bmc, caller, id).await?;
    Ok(json(doc(&m), target, &HeaderMap::new()))
}

/// Refuses a change whose `If-Match` names neither `*` nor the current representation's ETag.
fn if_match(headers: &HeaderMap, current: &Value) -> Result<(), ApiError> {
    let Some(want) = headers.get(header::IF_MATCH) else {
        return Ok(());
    };
    let current = etag(current);
    let want = want.to_str().unwrap_or("");
    if want
        .split(',')
        .map(str::trim)
        .any(|w| w == "*" || w.trim_start_matches("W/") == current)
    {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::PRECONDITION_FAILED,
        "PreconditionFailed",
        "The ETag supplied did not match the ETag required to change this resource.",
    ))
}
