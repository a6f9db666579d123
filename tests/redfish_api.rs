//! vinod's Redfish router in process, on the real libvirt adapter over the test driver:
//! every resource and every error path. Each test has its own Vinos (namespace = test).

#[path = "common/redfish_bed.rs"]
mod bed;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use base64::Engine;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;
use vinod::redfish::{Bmc, BmcCredentials, router};

struct Api {
    app: Router,
    vinos: Vec<bed::BedVino>,
    table: BmcCredentials,
    state: tempfile::TempDir,
}

async fn api(ns: &str) -> Api {
    api_with(ns, |_| {}).await
}

async fn api_with(ns: &str, tweak: impl FnOnce(&mut vinod::config::Config)) -> Api {
    let vinos = bed::define_vinos(ns, &["a", "b"], 2).await;
    let table = bed::credentials(&vinos);
    let state = tempfile::tempdir().unwrap();
    let mut config = bed::config(state.path(), 0, false);
    tweak(&mut config);
    let bmc = Bmc::new(&config, bed::libvirt(), table.clone()).unwrap();
    Api {
        app: router(Arc::new(bmc)),
        vinos,
        table,
        state,
    }
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// The Redfish error's message id (without the registry prefix), checking its shape.
    fn error_id(&self) -> String {
        let j = self.json();
        let e = &j["error"];
        assert!(e["message"].is_string(), "{j}");
        let info = e["@Message.ExtendedInfo"].as_array().expect("ExtendedInfo");
        assert!(!info.is_empty());
        assert_eq!(info[0]["MessageId"], e["code"]);
        e["code"]
            .as_str()
            .unwrap()
            .rsplit('.')
            .next()
            .unwrap()
            .to_string()
    }

    fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", |v| v.to_str().unwrap())
    }
}

impl Api {
    fn basic(&self, i: usize) -> String {
        let v = &self.vinos[i];
        basic(&v.username, &v.password)
    }

    fn system(&self, vino: usize, vm: usize) -> String {
        format!("/redfish/v1/Systems/{}", self.vinos[vino].vms[vm])
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(path);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = self
            .app
            .clone()
            .oneshot(req.body(Body::from(body.to_string())).unwrap())
            .await
            .unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = resp
            .into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec();
        Reply {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, path: &str, auth: &str) -> Reply {
        self.call(Method::GET, path, &[("authorization", auth)], "")
            .await
    }

    async fn post(&self, path: &str, auth: &str, body: &str) -> Reply {
        self.call(Method::POST, path, &[("authorization", auth)], body)
            .await
    }
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

#[tokio::test]
async fn public_documents() {
    let api = api("rf-public").await;
    let r = api.call(Method::GET, "/redfish/v1/", &[], "").await;
    assert_eq!(r.status, StatusCode::OK);
    let root = r.json();
    assert_eq!(root["@odata.id"], "/redfish/v1/");
    assert_eq!(root["Systems"]["@odata.id"], "/redfish/v1/Systems");
    assert_eq!(
        root["Links"]["Sessions"]["@odata.id"],
        "/redfish/v1/SessionService/Sessions"
    );
    assert!(root.get("EventService").is_none(), "no events");
    assert_eq!(r.header("odata-version"), "4.0");
    assert_eq!(
        api.call(Method::GET, "/redfish/v1", &[], "").await.json(),
        root
    );
    assert_eq!(
        api.call(Method::GET, "/redfish", &[], "").await.json(),
        json!({"v1": "/redfish/v1/"})
    );
    let odata = api
        .call(Method::GET, "/redfish/v1/odata", &[], "")
        .await
        .json();
    assert_eq!(odata["@odata.context"], "/redfish/v1/$metadata");
    let md = api
        .call(Method::GET, "/redfish/v1/$metadata", &[], "")
        .await;
    assert_eq!(md.header("content-type"), "application/xml");
    assert!(String::from_utf8_lossy(&md.body).contains("ComputerSystem.v1_13_0"));
    let head = api.call(Method::HEAD, "/redfish/v1/", &[], "").await;
    assert_eq!(head.status, StatusCode::OK);
}

#[tokio::test]
async fn credentials_are_required_and_scoped() {
    let api = api("rf-auth").await;
    let path = api.system(0, 0);
    for auth in [
        None,
        Some(basic("admin-a", "wrong")),
        Some(basic("nobody", "pw-a")),
        Some("Bearer x".into()),
    ] {
        let headers: Vec<(&str, &str)> =
            auth.iter().map(|a| ("authorization", a.as_str())).collect();
        let r = api.call(Method::GET, &path, &headers, "").await;
        assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{auth:?}");
        assert_eq!(r.error_id(), "NoValidSession");
        assert!(r.header("www-authenticate").starts_with("Basic"));
    }
    let r = api
        .call(Method::GET, &path, &[("x-auth-token", "forged")], "")
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Unknown paths do not tell an anonymous caller what exists.
    assert_eq!(
        api.call(Method::GET, "/redfish/v1/Nope", &[], "")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // Vino a sees its VMs only; b's are not found.
    let list = api.get("/redfish/v1/Systems", &api.basic(0)).await.json();
    let ids: Vec<&str> = list["Members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["@odata.id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [api.system(0, 0), api.system(0, 1)]);
    assert_eq!(list["Members@odata.count"], 2);
    let r = api.get(&api.system(1, 0), &api.basic(0)).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(r.error_id(), "ResourceNotFound");
    let r = api
        .post(
            &format!("{}/Actions/ComputerSystem.Reset", api.system(1, 0)),
            &api.basic(0),
            r#"{"ResetType":"On"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // The built-in test domain is not vinod's.
    assert_eq!(
        api.get("/redfish/v1/Systems/test", &api.basic(0))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    // The daemon withdraws Vino a's credentials.
    api.table.replace(&Default::default());
    assert_eq!(
        api.get("/redfish/v1/Systems", &api.basic(0)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn system_resource_and_etags() {
    let api = api("rf-system").await;
    let auth = api.basic(0);
    let path = api.system(0, 0);
    let r = api.get(&path, &auth).await;
    assert_eq!(r.status, StatusCode::OK);
    let s = r.json();
    assert_eq!(s["@odata.id"], path);
    assert_eq!(s["@odata.type"], "#ComputerSystem.v1_13_0.ComputerSystem");
    assert_eq!(s["Id"], api.vinos[0].vms[0]);
    assert!(s["UUID"].as_str().unwrap().len() == 36);
    assert_eq!(s["PowerState"], "Off");
    assert_eq!(
        s["Boot"]["BootSourceOverrideTarget@Redfish.AllowableValues"],
        json!(["None", "Pxe", "Hdd", "Cd"])
    );
    assert_eq!(s["ProcessorSummary"]["Count"], 1, "one socket");
    assert_eq!(s["ProcessorSummary"]["LogicalProcessorCount"], 2);
    assert_eq!(s["MemorySummary"]["TotalSystemMemoryGiB"], 2.0);
    assert_eq!(
        s["Links"]["ManagedBy"][0]["@odata.id"],
        format!("/redfish/v1/Managers/{}", api.vinos[0].vms[0])
    );
    assert_eq!(
        s["Links"]["Chassis"][0]["@odata.id"],
        format!("/redfish/v1/Chassis/{}", api.vinos[0].vms[0])
    );
    let reset = &s["Actions"]["#ComputerSystem.Reset"];
    assert_eq!(
        reset["target"],
        format!("{path}/Actions/ComputerSystem.Reset")
    );
    assert_eq!(
        reset["ResetType@Redfish.AllowableValues"]
            .as_array()
            .unwrap()
            .len(),
        8
    );
    let info = api
        .get(&format!("{path}/ResetActionInfo"), &auth)
        .await
        .json();
    assert_eq!(info["Parameters"][0]["Name"], "ResetType");
    let etag = r.header("etag").to_string();
    assert!(etag.starts_with('"'));
    assert_eq!(r.header("allow"), "GET, HEAD, PATCH");
    assert!(r.header("link").contains("ComputerSystem.v1_13_0.json"));
    let r = api
        .call(
            Method::GET,
            &path,
            &[("authorization", &auth), ("if-none-match", &etag)],
            "",
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_MODIFIED);
    // PATCH with a stale ETag is refused, with the current one applied.
    let patch = r#"{"Boot":{"BootSourceOverrideTarget":"Pxe","BootSourceOverrideEnabled":"Once"}}"#;
    let r = api
        .call(
            Method::PATCH,
            &path,
            &[("authorization", &auth), ("if-match", "\"stale\"")],
            patch,
        )
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    assert_eq!(r.error_id(), "PreconditionFailed");
    let r = api
        .call(
            Method::PATCH,
            &path,
            &[("authorization", &auth), ("if-match", &etag)],
            patch,
        )
        .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["Boot"]["BootSourceOverrideEnabled"], "Once");
    assert_ne!(r.header("etag"), etag, "the ETag rotates on write");
    let now = api.get(&path, &auth).await.json();
    assert_eq!(now["Boot"]["BootSourceOverrideTarget"], "Pxe");
    // The override is used by the next power-on and then gone.
    let r = api
        .post(
            &format!("{path}/Actions/ComputerSystem.Reset"),
            &auth,
            r#"{"ResetType":"On"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let now = api.get(&path, &auth).await.json();
    assert_eq!(now["PowerState"], "On");
    assert_eq!(now["Boot"]["BootSourceOverrideEnabled"], "Disabled");
    assert_eq!(now["Boot"]["BootSourceOverrideTarget"], "None");
}

#[tokio::test]
async fn every_reset_type_with_state_read_back() {
    let api = api("rf-reset").await;
    let auth = api.basic(0);
    let path = api.system(0, 1);
    let action = format!("{path}/Actions/ComputerSystem.Reset");
    for (reset, state) in [
        ("On", "On"),
        ("ForceOn", "On"),
        ("Nmi", "On"),
        ("GracefulRestart", "On"),
        ("ForceRestart", "On"),
        ("GracefulShutdown", "Off"),
        ("PushPowerButton", "On"),
        ("PushPowerButton", "Off"),
        ("ForceRestart", "On"),
        ("ForceOff", "Off"),
    ] {
        let r = api
            .post(&action, &auth, &json!({"ResetType": reset}).to_string())
            .await;
        assert_eq!(r.status, StatusCode::NO_CONTENT, "{reset}");
        assert_eq!(
            api.get(&path, &auth).await.json()["PowerState"],
            state,
            "after {reset}"
        );
    }
    let r = api.post(&action, &auth, r#"{"ResetType":"Nmi"}"#).await;
    assert_eq!(r.status, StatusCode::CONFLICT, "NMI while off");
    assert_eq!(r.error_id(), "GeneralError");
}

#[tokio::test]
async fn bad_requests_are_400_with_the_property_named() {
    let api = api("rf-bad").await;
    let auth = api.basic(0);
    let path = api.system(0, 0);
    let action = format!("{path}/Actions/ComputerSystem.Reset");
    for (body, id) in [
        ("{", "MalformedJSON"),
        ("\"On\"", "MalformedJSON"),
        ("{}", "ActionParameterMissing"),
        (r#"{"ResetType":1}"#, "ActionParameterValueTypeError"),
        (
            r#"{"ResetType":"PowerCycle"}"#,
            "ActionParameterValueNotInList",
        ),
        (r#"{"ResetType":"On","Delay":3}"#, "ActionParameterUnknown"),
    ] {
        let r = api.post(&action, &auth, body).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.error_id(), id, "{body}");
    }
    let r = api
        .post(&action, &auth, r#"{"ResetType":"PowerCycle"}"#)
        .await;
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("ForceRestart")
    );
    for (body, id) in [
        ("[", "MalformedJSON"),
        ("{}", "NoOperation"),
        (r#"{"Name":"x"}"#, "PropertyNotWritable"),
        (r#"{"Boot":"Pxe"}"#, "PropertyValueTypeError"),
        (
            r#"{"Boot":{"BootSourceOverrideTarget":7}}"#,
            "PropertyValueTypeError",
        ),
        (
            r#"{"Boot":{"BootSourceOverrideTarget":"UsbCd"}}"#,
            "PropertyValueNotInList",
        ),
        (
            r#"{"Boot":{"BootSourceOverrideEnabled":"Twice"}}"#,
            "PropertyValueNotInList",
        ),
        (
            r#"{"Boot":{"BootSourceOverrideMode":"BIOS"}}"#,
            "PropertyValueNotInList",
        ),
        (r#"{"Boot":{"BootNext":"x"}}"#, "PropertyNotWritable"),
    ] {
        let r = api
            .call(Method::PATCH, &path, &[("authorization", &auth)], body)
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(r.error_id(), id, "{body}");
    }
    let r = api
        .call(
            Method::PATCH,
            &path,
            &[("authorization", &auth)],
            r#"{"Boot":{"BootSourceOverrideTarget":"UsbCd"}}"#,
        )
        .await;
    let j = r.json();
    assert!(
        j["error"]["message"]
            .as_str()
            .unwrap()
            .contains("None, Pxe, Hdd, Cd")
    );
    assert_eq!(
        j["error"]["@Message.ExtendedInfo"][0]["RelatedProperties"][0],
        "#/Boot/BootSourceOverrideTarget"
    );
    assert_eq!(
        api.get(&path, &auth).await.json()["Boot"]["BootSourceOverrideTarget"],
        "None",
        "nothing applied"
    );
    let r = api
        .call(Method::GET, "/redfish/v1/", &[("odata-version", "4.1")], "")
        .await;
    assert_eq!(r.status, StatusCode::PRECONDITION_FAILED);
    let big = format!("{{\"Boot\":\"{}\"}}", "x".repeat(100_000));
    let r = api
        .call(Method::PATCH, &path, &[("authorization", &auth)], &big)
        .await;
    assert_eq!(r.status, StatusCode::PAYLOAD_TOO_LARGE);
    r.error_id();
    let r = api.get("/redfish/v1/Systems?$expand=*", &auth).await;
    assert_eq!(r.status, StatusCode::NOT_IMPLEMENTED);
    assert_eq!(r.error_id(), "QueryNotSupported");
}

#[tokio::test]
async fn not_found_and_method_not_allowed() {
    let api = api("rf-404").await;
    let auth = api.basic(0);
    let path = api.system(0, 0);
    for p in [
        "/redfish/v1/Systems/no-such-vm".to_string(),
        "/redfish/v1/EventService".into(),
        "/redfish/v1/EventService/Subscriptions".into(),
        "/redfish/v1/AccountService".into(),
        format!("{path}/EthernetInterfaces/nic9"),
        format!("{path}/VirtualMedia/Floppy"),
        "/redfish/v1/SessionService/Sessions/nope".into(),
        "/redfish/v1/Managers/no-such-vm".into(),
        "/redfish/v1/Chassis/no-such-vm".into(),
    ] {
        let r = api.get(&p, &auth).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{p}");
        assert_eq!(r.error_id(), "ResourceNotFound");
    }
    let r = api
        .post(
            "/redfish/v1/EventService/Subscriptions",
            &auth,
            r#"{"Destination":"http://127.0.0.1:1/"}"#,
        )
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND, "no event subscriptions");
    for (method, p, allow) in [
        (Method::DELETE, path.clone(), "GET, HEAD, PATCH"),
        (Method::PUT, path.clone(), "GET, HEAD, PATCH"),
        (
            Method::GET,
            format!("{path}/Actions/ComputerSystem.Reset"),
            "POST",
        ),
        (Method::POST, "/redfish/v1/Systems".into(), "GET, HEAD"),
        (
            Method::PATCH,
            "/redfish/v1/SessionService".into(),
            "GET, HEAD",
        ),
        (Method::DELETE, "/redfish/v1/".into(), "GET, HEAD"),
        (
            Method::from_bytes(b"BREW").unwrap(),
            "/redfish/v1/Systems".into(),
            "GET, HEAD",
        ),
    ] {
        let r = api
            .call(method.clone(), &p, &[("authorization", &auth)], "")
            .await;
        assert_eq!(r.status, StatusCode::METHOD_NOT_ALLOWED, "{method} {p}");
        assert_eq!(r.header("allow"), allow);
        r.error_id();
    }
}

#[tokio::test]
async fn nics_managers_and_chassis() {
    let api = api("rf-links").await;
    let auth = api.basic(1);
    let name = &api.vinos[1].vms[0];
    let path = api.system(1, 0);
    let nics = api
        .get(&format!("{path}/EthernetInterfaces"), &auth)
        .await
        .json();
    assert_eq!(nics["Members@odata.count"], 2);
    let nic = api
        .get(&format!("{path}/EthernetInterfaces/nic1"), &auth)
        .await
        .json();
    assert_eq!(nic["MACAddress"], "52:54:00:01:00:02");
    let managers = api.get("/redfish/v1/Managers", &auth).await.json();
    assert_eq!(managers["Members@odata.count"], 2);
    let m = api
        .get(&format!("/redfish/v1/Managers/{name}"), &auth)
        .await
        .json();
    assert_eq!(m["Links"]["ManagerForServers"][0]["@odata.id"], path);
    assert_eq!(
        m["VirtualMedia"]["@odata.id"],
        format!("/redfish/v1/Managers/{name}/VirtualMedia")
    );
    let chassis = api.get("/redfish/v1/Chassis", &auth).await.json();
    assert_eq!(chassis["Members@odata.count"], 2);
    let c = api
        .get(&format!("/redfish/v1/Chassis/{name}"), &auth)
        .await
        .json();
    assert_eq!(c["Links"]["ComputerSystems"][0]["@odata.id"], path);
    let media = api.get(&format!("{path}/VirtualMedia"), &auth).await.json();
    assert_eq!(
        media["Members"][0]["@odata.id"],
        format!("{path}/VirtualMedia/Cd")
    );
    let cd = api
        .get(
            &format!("/redfish/v1/Managers/{name}/VirtualMedia/Cd"),
            &auth,
        )
        .await
        .json();
    assert_eq!(cd["Inserted"], false);
    assert_eq!(
        cd["Actions"]["#VirtualMedia.InsertMedia"]["target"],
        format!("/redfish/v1/Managers/{name}/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia")
    );
}

#[tokio::test]
async fn sessions_log_in_and_out() {
    let api = api("rf-session").await;
    let v = &api.vinos[0];
    let login = json!({"UserName": v.username, "Password": v.password}).to_string();
    let r = api
        .call(
            Method::POST,
            "/redfish/v1/SessionService/Sessions",
            &[],
            &login,
        )
        .await;
    assert_eq!(r.status, StatusCode::CREATED);
    let token = r.header("x-auth-token").to_string();
    let location = r.header("location").to_string();
    assert!(location.starts_with("/redfish/v1/SessionService/Sessions/"));
    assert_eq!(r.json()["UserName"], v.username);
    let t = [("x-auth-token", token.as_str())];
    let r = api.call(Method::GET, "/redfish/v1/Systems", &t, "").await;
    assert_eq!(r.json()["Members@odata.count"], 2);
    let list = api
        .call(Method::GET, "/redfish/v1/SessionService/Sessions", &t, "")
        .await
        .json();
    assert_eq!(list["Members"][0]["@odata.id"], location);
    assert_eq!(
        api.call(Method::GET, &location, &t, "").await.status,
        StatusCode::OK
    );
    let service = api
        .call(Method::GET, "/redfish/v1/SessionService", &t, "")
        .await
        .json();
    assert_eq!(service["SessionTimeout"], 1800);
    // Another Vino cannot see or end it.
    let b = api.basic(1);
    assert_eq!(api.get(&location, &b).await.status, StatusCode::NOT_FOUND);
    let r = api
        .call(Method::DELETE, &location, &[("authorization", &b)], "")
        .await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert_eq!(
        api.call(Method::DELETE, &location, &t, "").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call(Method::GET, "/redfish/v1/Systems", &t, "")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    // Failed logins.
    let wrong = json!({"UserName": v.username, "Password": "x"}).to_string();
    let r = api
        .call(
            Method::POST,
            "/redfish/v1/SessionService/Sessions",
            &[],
            &wrong,
        )
        .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(r.headers.get("x-auth-token").is_none());
    let r = api
        .call(
            Method::POST,
            "/redfish/v1/SessionService/Sessions",
            &[],
            r#"{"UserName":"x"}"#,
        )
        .await;
    assert_eq!(
        (r.status, r.error_id().as_str()),
        (StatusCode::BAD_REQUEST, "PropertyMissing")
    );
    let r = api
        .call(
            Method::POST,
            "/redfish/v1/SessionService/Sessions/Members",
            &[],
            &login,
        )
        .await;
    assert_eq!(
        r.status,
        StatusCode::CREATED,
        "POST to Members is a POST to the collection"
    );
}

/// A one-file HTTP server on loopback for images.
async fn image_server(payload: Vec<u8>) -> (String, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new()
        .route(
            "/boot.iso",
            axum::routing::get(move || async move { payload.clone() }),
        )
        .route(
            "/moved.iso",
            axum::routing::get(|| async { axum::response::Redirect::temporary("/boot.iso") }),
        );
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), task)
}

fn media_files(api: &Api) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(api.state.path().join("redfish/media"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    v.sort();
    v
}

#[tokio::test]
async fn virtual_media_insert_and_eject() {
    let api = api_with("rf-media", |c| c.redfish.media_max_bytes = 64 * 1024).await;
    let (base, server) = image_server(vec![7u8; 4096]).await;
    let auth = api.basic(0);
    let cd = format!("{}/VirtualMedia/Cd", api.system(0, 0));
    let insert = format!("{cd}/Actions/VirtualMedia.InsertMedia");
    let eject = format!("{cd}/Actions/VirtualMedia.EjectMedia");
    let body =
        json!({"Image": format!("{base}/moved.iso"), "TransferProtocolType": "HTTP"}).to_string();
    let r = api.post(&insert, &auth, &body).await;
    assert_eq!(
        r.status,
        StatusCode::NO_CONTENT,
        "{}",
        String::from_utf8_lossy(&r.body)
    );
    let got = api.get(&cd, &auth).await.json();
    assert_eq!(got["Inserted"], true);
    assert_eq!(got["Image"], format!("{base}/moved.iso"));
    assert_eq!(got["ImageName"], "moved.iso");
    let files = media_files(&api);
    assert_eq!(files.len(), 1);
    assert_eq!(std::fs::read(&files[0]).unwrap(), vec![7u8; 4096]);
    // A second insert replaces the first (and its file).
    let body = json!({"Image": format!("{base}/boot.iso")}).to_string();
    assert_eq!(
        api.post(&insert, &auth, &body).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(media_files(&api).len(), 1);
    // The Manager's URI is the same drive.
    let via_manager = format!(
        "/redfish/v1/Managers/{}/VirtualMedia/Cd",
        api.vinos[0].vms[0]
    );
    assert_eq!(
        api.get(&via_manager, &auth).await.json()["Image"],
        format!("{base}/boot.iso")
    );
    assert_eq!(
        api.post(&eject, &auth, "").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(api.get(&cd, &auth).await.json()["Inserted"], false);
    assert!(media_files(&api).is_empty());
    // Failures: missing image, too large, nothing listening, bad URL.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    for (image, needle) in [
        (format!("{base}/missing.iso"), "404"),
        (format!("http://{closed}/x.iso"), "cannot fetch"),
    ] {
        let r = api
            .post(&insert, &auth, &json!({"Image": image}).to_string())
            .await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{image}");
        assert!(
            r.json()["error"]["message"]
                .as_str()
                .unwrap()
                .contains(needle),
            "{}",
            r.json()
        );
    }
    server.abort();
    let (big, server) = image_server(vec![0u8; 100 * 1024]).await;
    let r = api
        .post(
            &insert,
            &auth,
            &json!({"Image": format!("{big}/boot.iso")}).to_string(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("larger than")
    );
    server.abort();
    let r = api
        .post(&insert, &auth, r#"{"Image":"nfs://h/x.iso"}"#)
        .await;
    assert_eq!(r.error_id(), "ActionParameterValueFormatError");
    let r = api.post(&eject, &auth, r#"{"Force":true}"#).await;
    assert_eq!(r.error_id(), "ActionParameterUnknown");
    assert!(
        media_files(&api).is_empty(),
        "failed downloads leave nothing"
    );
    assert_eq!(api.get(&cd, &auth).await.json()["Inserted"], false);
}

/// A server on `ip` that counts its requests and records their Authorization headers:
/// `/secret` answers with a body, `/to?url=U` redirects to U, `/slow.iso` sends part of a large
/// image and then stalls.
async fn recording_server(
    ip: &str,
) -> (
    String,
    Arc<std::sync::Mutex<Vec<Option<String>>>>,
    tokio::task::JoinHandle<()>,
) {
    use axum::extract::Query;
    use std::collections::HashMap;
    let seen: Arc<std::sync::Mutex<Vec<Option<String>>>> = Arc::default();
    let log = seen.clone();
    let record = move |headers: HeaderMap| {
        log.lock().unwrap().push(
            headers
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_string()),
        );
    };
    let (r1, r2, r3) = (record.clone(), record.clone(), record);
    let app = Router::new()
        .route(
            "/secret",
            axum::routing::get(move |h: HeaderMap| async move {
                r1(h);
                "host-only secret"
            }),
        )
        .route(
            "/to",
            axum::routing::get(
                move |h: HeaderMap, Query(q): Query<HashMap<String, String>>| async move {
                    r2(h);
                    axum::response::Redirect::temporary(&q["url"])
                },
            ),
        )
        .route(
            "/slow.iso",
            axum::routing::get(move |h: HeaderMap| async move {
                r3(h);
                let first = futures::stream::once(async {
                    Ok::<_, std::io::Error>(axum::body::Bytes::from(vec![1u8; 8192]))
                });
                let stall = futures::stream::once(async {
                    tokio::time::sleep(std::time::Duration::from_secs(600)).await;
                    Ok(axum::body::Bytes::new())
                });
                axum::response::Response::builder()
                    .header("content-length", "1000000")
                    .body(Body::from_stream(futures::StreamExt::chain(first, stall)))
                    .unwrap()
            }),
        );
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    (format!("http://{addr}"), seen, task)
}

/// InsertMedia of `image` (with image-server credentials), as vinod answers it.
async fn insert_media(api: &Api, image: &str) -> Reply {
    let insert = format!(
        "{}/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia",
        api.system(0, 0)
    );
    let body = json!({"Image": image, "UserName": "img", "Password": "img-secret"}).to_string();
    api.post(&insert, &api.basic(0), &body).await
}

#[tokio::test]
async fn virtual_media_is_fetched_only_from_allowed_networks() {
    let (inside, inside_seen, a) = recording_server("127.0.0.1").await;
    let (other, other_seen, b) = recording_server("127.0.0.2").await;
    let port = inside.rsplit(':').next().unwrap().to_string();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();

    // Nothing allowed but a documentation network: loopback by address or by name, the
    // cloud metadata address, a closed port and an open one all get the same answer, and no
    // request reaches the host's own servers.
    let api = api_with("rf-ssrf", |c| {
        c.redfish.media_allow = vec!["192.0.2.0/24".parse().unwrap()];
    })
    .await;
    for image in [
        format!("{inside}/secret"),
        format!("http://localhost:{port}/secret"),
        format!("http://[::ffff:127.0.0.1]:{port}/secret"),
        "http://169.254.169.254/latest/meta-data".to_string(),
        format!("http://{closed}/x.iso"),
    ] {
        let r = insert_media(&api, &image).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{image}");
        let message = r.json()["error"]["message"].as_str().unwrap().to_string();
        assert!(
            message.contains("could not be fetched"),
            "{image}: {message}"
        );
        assert!(
            !message.contains("refused") && !message.contains("media_allow"),
            "{image}: the answer tells why: {message}"
        );
    }
    assert!(
        inside_seen.lock().unwrap().is_empty(),
        "a refused URL was fetched"
    );
    assert!(media_files(&api).is_empty());

    // 127.0.0.1 allowed: a redirect to 127.0.0.2 (outside) is refused before it is followed.
    let api = api_with("rf-ssrf-redirect", |_| {}).await;
    let r = insert_media(&api, &format!("{inside}/to?url={other}/secret")).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(inside_seen.lock().unwrap().len(), 1);
    assert!(
        other_seen.lock().unwrap().is_empty(),
        "the redirect was followed"
    );

    // Both allowed: the redirect is followed, but the image server's credentials stay with it.
    let api = api_with("rf-ssrf-creds", |c| {
        c.redfish.media_allow = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    let r = insert_media(&api, &format!("{inside}/to?url={other}/secret")).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert!(
        inside_seen.lock().unwrap()[1]
            .as_deref()
            .is_some_and(|a| a.starts_with("Basic "))
    );
    assert_eq!(
        other_seen.lock().unwrap().as_slice(),
        [None],
        "credentials sent on"
    );
    a.abort();
    b.abort();
}

#[tokio::test]
async fn a_client_that_leaves_mid_download_leaves_no_partial_file() {
    let (server, seen, task) = recording_server("127.0.0.1").await;
    let api = api_with("rf-part", |_| {}).await;
    let image = format!("{server}/slow.iso");
    // The client goes away (its request future is dropped) while the image is half fetched.
    let insert = insert_media(&api, &image);
    let left = tokio::time::timeout(std::time::Duration::from_secs(2), insert).await;
    assert!(left.is_err(), "the stalled download finished");
    assert_eq!(seen.lock().unwrap().len(), 1, "the download began");
    assert!(
        media_files(&api).is_empty(),
        "left behind: {:?}",
        media_files(&api)
    );
    task.abort();
}

#[tokio::test]
async fn inventory_from_the_domain() {
    let api = api("rf-inventory").await;
    let auth = api.basic(0);
    let path = api.system(0, 0);
    let system = api.get(&path, &auth).await.json();
    assert_eq!(system["ProcessorSummary"]["Count"], 1);
    assert_eq!(system["ProcessorSummary"]["LogicalProcessorCount"], 2);
    assert_eq!(system["MemorySummary"]["TotalSystemMemoryGiB"], 2.0);
    assert_eq!(system["BiosVersion"], "SeaBIOS");
    let cpus = api.get(&format!("{path}/Processors"), &auth).await.json();
    assert_eq!(cpus["Members@odata.count"], 1, "one socket: {cpus}");
    let cpu = api
        .get(&format!("{path}/Processors/CPU0"), &auth)
        .await
        .json();
    assert_eq!(
        (&cpu["TotalCores"], &cpu["TotalThreads"]),
        (&json!(2), &json!(2))
    );
    assert_eq!(cpu["ProcessorArchitecture"], "x86");
    assert_eq!(cpu["InstructionSet"], "x86-64");
    assert!(cpu["Model"].as_str().is_some_and(|m| !m.is_empty()));
    let simple = api
        .get(&format!("{path}/SimpleStorage/1"), &auth)
        .await
        .json();
    assert_eq!(simple["Devices"][0]["Name"], "vda");
    assert_eq!(simple["Devices"][0]["CapacityBytes"], bed::DISK_BYTES);
    let storage = api.get(&format!("{path}/Storage/1"), &auth).await.json();
    let drive_path = storage["Drives"][0]["@odata.id"].as_str().unwrap();
    let drive = api.get(drive_path, &auth).await.json();
    assert_eq!(drive["CapacityBytes"], bed::DISK_BYTES);
    let volumes = api
        .get(&format!("{path}/Storage/1/Volumes"), &auth)
        .await
        .json();
    let volume_path = volumes["Members"][0]["@odata.id"].as_str().unwrap();
    let volume = api.get(volume_path, &auth).await.json();
    assert_eq!(volume["CapacityBytes"], bed::DISK_BYTES);
    for missing in ["Processors/CPU1", "Storage/2", "Storage/1/Drives/vdb"] {
        let r = api.get(&format!("{path}/{missing}"), &auth).await;
        assert_eq!(r.status, StatusCode::NOT_FOUND, "{missing}");
    }
    let other = api.get(&format!("{path}/Processors"), &api.basic(1)).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "another Vino's VM");
}

#[tokio::test]
async fn bios_settings_apply_at_the_next_boot() {
    let api = api("rf-bios").await;
    let auth = api.basic(0);
    let path = api.system(0, 0);
    let bios = format!("{path}/Bios");
    let settings = format!("{bios}/Settings");
    let attrs = |api_reply: Reply| api_reply.json()["Attributes"].clone();
    assert_eq!(attrs(api.get(&bios, &auth).await)["QuietBoot"], "Disabled");
    let patch = |body: Value| {
        let auth = auth.clone();
        let settings = settings.clone();
        let api = &api;
        async move {
            api.call(
                Method::PATCH,
                &settings,
                &[("authorization", &auth)],
                &body.to_string(),
            )
            .await
        }
    };
    let r = patch(json!({"Attributes": {"QuietBoot": "Enabled"},
        "@Redfish.SettingsApplyTime": {"ApplyTime": "OnReset"}}))
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(
        attrs(api.get(&settings, &auth).await)["QuietBoot"],
        "Enabled"
    );
    assert_eq!(
        attrs(api.get(&bios, &auth).await)["QuietBoot"],
        "Disabled",
        "not before a boot"
    );
    let r = patch(json!({"Attributes": {"QuietBoot": "Sometimes"}})).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_id(), "PropertyValueNotInList");
    let reset = format!("{path}/Actions/ComputerSystem.Reset");
    let r = api.post(&reset, &auth, r#"{"ResetType":"On"}"#).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(attrs(api.get(&bios, &auth).await)["QuietBoot"], "Enabled");
    assert_eq!(attrs(api.get(&settings, &auth).await), json!({}));
    // ResetBios: the defaults come back at the next boot.
    let r = api
        .post(&format!("{bios}/Actions/Bios.ResetBios"), &auth, "")
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(attrs(api.get(&bios, &auth).await)["QuietBoot"], "Enabled");
    let r = api
        .post(&reset, &auth, r#"{"ResetType":"ForceRestart"}"#)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    assert_eq!(attrs(api.get(&bios, &auth).await)["QuietBoot"], "Disabled");
    let other = api.get(&bios, &api.basic(1)).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "another Vino's VM");
}

#[tokio::test]
async fn secure_boot_needs_uefi_on_q35_and_applies_at_the_next_boot() {
    let api = api("rf-sb").await;
    let auth = api.basic(0);
    let patch = |path: String, body: Value| {
        let auth = auth.clone();
        let api = &api;
        async move {
            api.call(
                Method::PATCH,
                &path,
                &[("authorization", &auth)],
                &body.to_string(),
            )
            .await
        }
    };
    let (pc, q35) = (api.system(0, 0), api.system(0, 1));
    let sb = |system: &str| format!("{system}/SecureBoot");
    let system = api.get(&pc, &auth).await.json();
    assert_eq!(system["SecureBoot"]["@odata.id"], sb(&pc));
    let doc = api.get(&sb(&pc), &auth).await.json();
    assert_eq!(doc["@odata.type"], "#SecureBoot.v1_1_0.SecureBoot");
    assert_eq!(
        (
            &doc["SecureBootEnable"],
            &doc["SecureBootCurrentBoot"],
            &doc["SecureBootMode"]
        ),
        (&json!(false), &json!("Disabled"), &json!("SetupMode"))
    );
    // Legacy firmware: a conflict with the boot mode; UEFI on a pc machine: no SMM.
    let on = json!({"SecureBootEnable": true});
    let r = patch(sb(&pc), on.clone()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(r.error_id(), "PropertyValueConflict");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("needs UEFI")
    );
    let uefi = json!({"Boot": {"BootSourceOverrideMode": "UEFI"}});
    assert_eq!(patch(pc.clone(), uefi.clone()).await.status, StatusCode::OK);
    let r = patch(sb(&pc), on.clone()).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("q35")
    );
    let r = patch(sb(&pc), json!({"SecureBootEnable": "on"})).await;
    assert_eq!(r.error_id(), "PropertyValueTypeError");
    let r = patch(sb(&pc), json!({"SecureBootMode": "UserMode"})).await;
    assert_eq!(r.error_id(), "PropertyNotWritable");

    // UEFI on q35: asked for the next boot, in force once booted through the BMC.
    assert_eq!(patch(q35.clone(), uefi).await.status, StatusCode::OK);
    let r = patch(sb(&q35), on).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["SecureBootEnable"], true);
    assert_eq!(
        r.json()["SecureBootCurrentBoot"],
        "Disabled",
        "the VM is off"
    );
    let reset = format!("{q35}/Actions/ComputerSystem.Reset");
    let r = api.post(&reset, &auth, r#"{"ResetType":"On"}"#).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let doc = api.get(&sb(&q35), &auth).await.json();
    assert_eq!(doc["SecureBootCurrentBoot"], "Enabled");
    assert_eq!(doc["SecureBootMode"], "UserMode");
    let off = json!({"SecureBootEnable": false});
    assert_eq!(patch(sb(&q35), off).await.json()["SecureBootEnable"], false);
    let doc = api.get(&sb(&q35), &auth).await.json();
    assert_eq!(
        doc["SecureBootCurrentBoot"], "Enabled",
        "until the next boot"
    );
    let r = api
        .post(&reset, &auth, r#"{"ResetType":"ForceRestart"}"#)
        .await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
    let doc = api.get(&sb(&q35), &auth).await.json();
    assert_eq!(doc["SecureBootCurrentBoot"], "Disabled");
    let other = api.get(&sb(&q35), &api.basic(1)).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND, "another Vino's VM");
    let r = api.post(&reset, &auth, r#"{"ResetType":"ForceOff"}"#).await;
    assert_eq!(r.status, StatusCode::NO_CONTENT);
}
