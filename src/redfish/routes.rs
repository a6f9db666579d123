//! HTTP in and out: one handler resolves the path to a [`Target`], checks the method and the
//! caller, turns the body into an action value and the result into a Redfish response.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::action;
use super::auth::{self, Principal};
use super::error::ApiError;
use super::guessing::Admission;
use super::listener::ClientAddr;
use super::media::without_query;
use super::reply::{header_value, json, no_content, xml};
use super::target::Target;
use super::{Bmc, resources as doc};
use crate::host::Machines;
use crate::host::machine::{Fault, FaultKind, Machine, Media};

mod parts;

type Reply = Result<Response, ApiError>;

/// The single handler behind every path.
pub async fn dispatch<M: Machines + Send + Sync + 'static>(
    State(bmc): State<Arc<Bmc<M>>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    client: Option<Extension<ClientAddr>>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let began = Instant::now();
    bmc.requests
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = uri.path().to_string();
    let mut user = String::new();
    let result = match body {
        Ok(body) => {
            let client = client.map(|Extension(ClientAddr(ip))| ip);
            let request = Incoming {
                method: &method,
                uri: &uri,
                headers: &headers,
                body: &body,
                client,
            };
            handle(&bmc, &request, &mut user).await
        }
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

/// One request as the handler sees it.
struct Incoming<'a> {
    method: &'a Method,
    uri: &'a Uri,
    headers: &'a HeaderMap,
    body: &'a [u8],
    /// The client's address, when the request came through the listener.
    client: Option<IpAddr>,
}

async fn handle<M: Machines + Send + Sync>(
    bmc: &Bmc<M>,
    request: &Incoming<'_>,
    user: &mut String,
) -> Reply {
    let Incoming {
        method,
        uri,
        headers,
        body,
        client,
    } = *request;
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
        let p = authenticate(bmc, headers, client).await?;
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
        return public_resource(bmc, &target, request).await;
    };
    match (m, &target) {
        ("GET", _) => get(bmc, &caller, &target, path, headers).await,
        ("PATCH", _) => parts::patch(bmc, &caller, &target, headers, body).await,
        ("POST", Target::ResetBios(id)) => parts::reset_bios(bmc, &caller, id, body).await,
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

async fn authenticate<M>(
    bmc: &Bmc<M>,
    headers: &HeaderMap,
    client: Option<IpAddr>,
) -> Result<Principal, ApiError> {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let (token, basic) = (header("x-auth-token"), header("authorization"));
    if token.is_none() && basic.is_none() {
        return Err(ApiError::unauthorized());
    }
    admit(bmc, client)?;
    let found = match (token, basic) {
        (Some(token), _) => bmc.sessions.principal(&bmc.credentials, token),
        (None, Some(basic)) => auth::basic(&bmc.credentials, basic),
        (None, None) => None,
    };
    match found {
        Some(p) => Ok(p),
        None => Err(refused(bmc, client).await),
    }
}

/// Refuses a client (known by its address) that failed to authenticate too often, before
/// its credentials are checked. Requests without an address (in-process) are not counted.
fn admit<M>(bmc: &Bmc<M>, client: Option<IpAddr>) -> Result<(), ApiError> {
    match client.map(|ip| bmc.guessing.admit(ip)) {
        Some(Admission::Refuse(_)) => Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "GeneralError",
            "Too many failed authentications from this address; retry later.",
        )),
        _ => Ok(()),
    }
}

/// A failed authentication: counted for the client, and answered once its budget allows.
async fn refused<M>(bmc: &Bmc<M>, client: Option<IpAddr>) -> ApiError {
    if let Some(ip) = client {
        let wait = bmc.guessing.failed(ip);
        tokio::time::sleep(wait).await;
    }
    ApiError::unauthorized()
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

async fn public_resource<M>(bmc: &Bmc<M>, target: &Target, request: &Incoming<'_>) -> Reply {
    let (method, body, headers) = (request.method, request.body, request.headers);
    match target {
        Target::Versions => Ok(json(doc::versions(), target, headers)),
        Target::Root => Ok(json(doc::root(&bmc.uuid), target, headers)),
        Target::OData => Ok(json(doc::odata(), target, headers)),
        Target::Metadata => Ok(xml(doc::metadata())),
        Target::Sessions if *method == Method::POST => {
            let (user, password) = action::login(body)?;
            admit(bmc, request.client)?;
            let Some(login) = bmc.sessions.login(&bmc.credentials, &user, &password) else {
                return Err(refused(bmc, request.client).await);
            };
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
    path: &str,
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
        Target::Part(id, part) => parts::get(bmc, caller, id, part, path).await?,
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
            let request = Incoming {
                method: &Method::GET,
                uri: &Uri::from_static("/"),
                headers,
                body: &[],
                client: None,
            };
            return public_resource(bmc, target, &request).await;
        }
        Target::Reset(_) | Target::Insert(..) | Target::Eject(..) | Target::ResetBios(_) => {
            return Err(ApiError::method_not_allowed("GET", target.allow()));
        }
    };
    Ok(json(body, target, headers))
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
