//! HTTP in and out: one handler resolves the path to a [`Target`], checks the method and the
//! caller, turns the body into an action value and the result into a Redfish response.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::action;
use super::auth::{self, Principal};
use super::error::ApiError;
use super::media::without_query;
use super::reply::{etag, header_value, json, no_content, xml};
use super::target::Target;
use super::{Bmc, resources as doc};
use crate::host::Machines;
use crate::host::machine::{Fault, FaultKind, Machine, Media};

type Reply = Result<Response, ApiError>;

/// The single handler behind every path.
pub async fn dispatch<M: Machines + Send + Sync + 'static>(
    State(bmc): State<Arc<Bmc<M>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let began = Instant::now();
    bmc.requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = uri.path().to_string();
    let mut user = String::new();
    let result = match body {
        Ok(body) => handle(&bmc, &method, &uri, &headers, &body, &mut user).await,
        Err(e) => Err(ApiError::new(
            e.status(),
            "GeneralError",
            format!("The request body could not be read: {e}."),
        )),
    };
    let resp = match result {
        Ok(r) => r,
        Err(e) => e.into_response(),
    };
    tracing::debug!(method = %method, path = %path, status = resp.status().as_u16(), user = %user, micros = began.elapsed().as_micros() as u64, "redfish request");
    resp
}

async fn handle<M: Machines + Send + Sync>(
    bmc: &Bmc<M>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    user: &mut String,
) -> Reply {
    let path = uri.path();
    if let Some(v) = headers.get("odata-version")
        && v.as_bytes() != b"4.0"
    {
        return Err(ApiError::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            "The OData-Version requested is not supported: this service implements OData 4.0.",
        ));
    }
    let target = Target::parse(path);
    let public = target
        .as_ref()
        .is_some_and(|t| t.is_public(method.as_str()));
    let caller = if public {
        None
    } else {
        let p = authenticate(bmc, headers)?;
        user.clone_from(&p.username);
        Some(p)
    };
    let Some(target) = target else {
        return Err(ApiError::not_found(path));
    };
    check_query(uri.query())?;
    let allow = target.allow();
    let m = if *method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    if !allow.split(", ").any(|a| a == m) {
        return Err(ApiError::method_not_allowed(method.as_str(), allow));
    }
    let Some(caller) = caller else {
        return public_resource(bmc, &target, method, body, headers);
    };
    match (m, &target) {
        ("GET", _) => get(bmc, &caller, &target, headers).await,
        ("PATCH", Target::System(id)) => patch_system(bmc, &caller, id, headers, body).await,
        ("POST", Target::Reset(id)) => {
            let action = action::reset(body)?;
            let _guard = bmc.lock(&reachable(bmc, &caller, id).await?).await;
            bmc.machines.power(id, action).await.map_err(fault)?;
            Ok(no_content())
        }
        ("POST", Target::Insert(_, id)) => insert(bmc, &caller, id, body).await,
        ("POST", Target::Eject(_, id)) => {
            action::eject_media(body)?;
            let _guard = bmc.lock(&reachable(bmc, &caller, id).await?).await;
            if let Some(old) = bmc.machines.eject_media(id).await.map_err(fault)? {
                bmc.media.remove(&old.file);
            }
            Ok(no_content())
        }
        ("DELETE", Target::Session(sid)) => {
            if bmc.sessions.logout(&caller, sid) {
                Ok(no_content())
            } else {
                Err(ApiError::not_found(path))
            }
        }
        _ => Err(ApiError::method_not_allowed(method.as_str(), allow)),
    }
}

fn authenticate<M>(bmc: &Bmc<M>, headers: &HeaderMap) -> Result<Principal, ApiError> {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let found = if let Some(token) = header("x-auth-token") {
        bmc.sessions.principal(&bmc.credentials, token)
    } else if let Some(basic) = header("authorization") {
        auth::basic(&bmc.credentials, basic)
    } else {
        None
    };
    found.ok_or_else(ApiError::unauthorized)
}

/// Query parameters starting with `$` (and `only`, `excerpt`) ask for features vinod does
/// not implement: 501, as Redfish requires.
fn check_query(query: Option<&str>) -> Result<(), ApiError> {
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let key = pair.split('=').next().unwrap_or("");
        if key.starts_with('$') || key.starts_with("%24") || matches!(key, "only" | "excerpt") {
            return Err(ApiError::new(
                StatusCode::NOT_IMPLEMENTED,
                "QueryNotSupported",
                "Querying is not supported by the implementation.",
            ));
        }
    }
    Ok(())
}

fn public_resource<M>(
    bmc: &Bmc<M>,
    target: &Target,
    method: &Method,
    body: &[u8],
    headers: &HeaderMap,
) -> Reply {
    match target {
        Target::Versions => Ok(json(doc::versions(), target, headers)),
        Target::Root => Ok(json(doc::root(&bmc.uuid), target, headers)),
        Target::OData => Ok(json(doc::odata(), target, headers)),
        Target::Metadata => Ok(xml(doc::metadata())),
        Target::Sessions if *method == Method::POST => {
            let (user, password) = action::login(body)?;
            let login = bmc
                .sessions
                .login(&bmc.credentials, &user, &password)
                .ok_or_else(ApiError::unauthorized)?;
            let location = doc::session_path(&login.session.id);
            let mut resp = json(
                doc::session(&login.session),
                &Target::Session(login.session.id.clone()),
                headers,
            );
            *resp.status_mut() = StatusCode::CREATED;
            let h = resp.headers_mut();
            h.insert(header::LOCATION, header_value(&location));
            h.insert("x-auth-token", header_value(&login.token));
            Ok(resp)
        }
        _ => Err(ApiError::unauthorized()),
    }
}

async fn get<M: Machines + Send + Sync>(
    bmc: &Bmc<M>,
    caller: &Principal,
    target: &Target,
    headers: &HeaderMap,
) -> Reply {
    let body = match target {
        Target::Systems | Target::Managers | Target::Chassis => {
            let all = bmc.machines.list().await.map_err(fault)?;
            let names: Vec<&str> = all
                .iter()
                .filter(|m| caller.reaches(&m.owner))
                .map(|m| m.name.as_str())
                .collect();
            match target {
                Target::Systems => doc::systems(&names),
                Target::Managers => doc::managers(&names),
                _ => doc::chassis_collection(&names),
            }
        }
        Target::System(id) => doc::system(&visible(bmc, caller, id).await?),
        Target::ResetInfo(id) => doc::reset_info(&visible(bmc, caller, id).await?),
        Target::Nics(id) => doc::nics(&visible(bmc, caller, id).await?),
        Target::Nic(id, nic) => {
            let m = visible(bmc, caller, id).await?;
            let i = (0..m.macs.len())
                .find(|i| doc::nic_id(*i) == *nic)
                .ok_or_else(|| {
                    ApiError::not_found(&format!(
                        "/redfish/v1/Systems/{id}/EthernetInterfaces/{nic}"
                    ))
                })?;
            doc::nic(&m, i)
        }
        Target::MediaCollection(via, id) => {
            doc::media_collection(*via, &visible(bmc, caller, id).await?)
        }
        Target::Cd(via, id) => doc::cd(*via, &visible(bmc, caller, id).await?, bmc.verify_tls),
        Target::Manager(id) => doc::manager(&visible(bmc, caller, id).await?),
        Target::ChassisMember(id) => doc::chassis(&visible(bmc, caller, id).await?),
        Target::SessionService => doc::session_service(),
        Target::Sessions => {
            let ids: Vec<String> = bmc.sessions.of(caller).into_iter().map(|s| s.id).collect();
            doc::sessions(&ids)
        }
        Target::Session(sid) => {
            let s = bmc
                .sessions
                .of(caller)
                .into_iter()
                .find(|s| s.id == *sid)
                .ok_or_else(|| ApiError::not_found(&doc::session_path(sid)))?;
            doc::session(&s)
        }
        Target::Versions | Target::Root | Target::OData | Target::Metadata => {
            return public_resource(bmc, target, &Method::GET, &[], headers);
        }
        Target::Reset(_) | Target::Insert(..) | Target::Eject(..) => {
            return Err(ApiError::method_not_allowed("GET", target.allow()));
        }
    };
    Ok(json(body, target, headers))
}

async fn patch_system<M: Machines + Send + Sync>(
    bmc: &Bmc<M>,
    caller: &Principal,
    id: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Reply {
    let _guard = bmc.lock(&visible(bmc, caller, id).await?.name).await;
    let m = visible(bmc, caller, id).await?;
    if let Some(want) = headers.get(header::IF_MATCH) {
        let current = etag(&doc::system(&m));
        let want = want.to_str().unwrap_or("");
        if !want
            .split(',')
            .map(str::trim)
            .any(|w| w == "*" || w.trim_start_matches("W/") == current)
        {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "PreconditionFailed",
                "The ETag supplied did not match the ETag required to change this resource.",
            ));
        }
    }
    let boot = action::boot_patch(body, m.boot)?;
    if boot != m.boot {
        bmc.machines.set_boot(id, boot).await.map_err(fault)?;
    }
    let m = visible(bmc, caller, id).await?;
    Ok(json(
        doc::system(&m),
        &Target::System(id.to_string()),
        &HeaderMap::new(),
    ))
}

async fn insert<M: Machines + Send + Sync>(
    bmc: &Bmc<M>,
    caller: &Principal,
    id: &str,
    body: &[u8],
) -> Reply {
    let req = action::insert_media(body)?;
    let _guard = bmc.lock(&visible(bmc, caller, id).await?.name).await;
    let old = visible(bmc, caller, id).await?.media;
    tracing::info!(machine = %id, image = %without_query(&req.image), "inserting virtual media");
    let file = bmc
        .media
        .fetch(id, &req.image, req.auth.as_ref())
        .await
        .map_err(|e| {
            tracing::warn!(machine = %id, error = %e.detail(), "virtual media download failed");
            if e.is_source() {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "GeneralError",
                    format!("The image could not be fetched: {e}."),
                )
                .related("#/Image")
            } else {
                ApiError::internal(e)
            }
        })?;
    let media = Media {
        image: req.image,
        file: file.clone(),
    };
    if let Err(e) = bmc.machines.insert_media(id, &media).await {
        bmc.media.remove(&file);
        return Err(fault(e));
    }
    if let Some(old) = old {
        bmc.media.remove(&old.file);
    }
    Ok(no_content())
}

/// `id` if the caller reaches that machine; otherwise 404 (existence is not revealed).
async fn reachable<M: Machines + Send + Sync>(
    bmc: &Bmc<M>,
    caller: &Principal,
    id: &str,
) -> Result<String, ApiError> {
    match bmc.machines.owner(id).await.map_err(fault)? {
        Some(owner) if caller.reaches(&owner) => Ok(id.to_string()),
        _ => Err(ApiError::not_found(&format!("/redfish/v1/Systems/{id}"))),
    }
}

/// The machine `id` if the caller reaches it; otherwise 404 (existence is not revealed).
async fn visible<M: Machines + Send + Sync>(
    bmc: &Bmc<M>,
    caller: &Principal,
    id: &str,
) -> Result<Machine, ApiError> {
    match bmc.machines.get(id).await.map_err(fault)? {
        Some(m) if caller.reaches(&m.owner) => Ok(m),
        _ => Err(ApiError::not_found(&format!("/redfish/v1/Systems/{id}"))),
    }
}

fn fault<E: Fault + std::error::Error>(e: E) -> ApiError {
    match e.fault() {
        FaultKind::NotFound => ApiError::not_found(&e.to_string()),
        FaultKind::WrongState => {
            ApiError::new(StatusCode::CONFLICT, "GeneralError", format!("{e}."))
        }
        FaultKind::Host => {
            tracing::warn!(error = %crate::error_chain(&e), "hypervisor call failed");
            ApiError::internal(e)
        }
    }
}
