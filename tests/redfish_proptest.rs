//! Random requests against vinod's Redfish router (real libvirt adapter on the test driver):
//! whatever the method, path, headers and body, the server does not panic, never answers
//! 500, and answers either a success or a Redfish-shaped error. Bounded: 512 cases per run
//! (`scripts/fuzz-long.sh` runs many more).

#[path = "common/redfish_bed.rs"]
mod bed;

use std::sync::{Arc, OnceLock};

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use base64::Engine;
use http_body_util::BodyExt;
use proptest::prelude::*;
use serde_json::Value;
use tower::ServiceExt;
use vinod::redfish::{Bmc, router};

/// Cases per property: `PROPTEST_CASES` (the long run sets it), else 512.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(512)
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    app: Router,
    vms: Vec<String>,
    _state: tempfile::TempDir,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let state = tempfile::tempdir().unwrap();
        let (app, vms) = rt.block_on(async {
            let vinos = bed::define_vinos("rf-prop", &["a", "b"], 1).await;
            let mut config = bed::config(state.path(), 0, false);
            config.redfish.media_timeout_secs = 2;
            let bmc = Bmc::new(&config, bed::libvirt(), bed::credentials(&vinos)).unwrap();
            let vms = vinos.iter().flat_map(|v| v.vms.clone()).collect();
            (router(Arc::new(bmc)), vms)
        });
        Fixture {
            rt,
            app,
            vms,
            _state: state,
        }
    })
}

fn basic(user: &str, password: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
    )
}

const SEGMENTS: &[&str] = &[
    "redfish",
    "v1",
    "Systems",
    "Managers",
    "Chassis",
    "SessionService",
    "Sessions",
    "Actions",
    "ComputerSystem.Reset",
    "ResetActionInfo",
    "EthernetInterfaces",
    "nic0",
    "nic1",
    "VirtualMedia",
    "Cd",
    "VirtualMedia.InsertMedia",
    "VirtualMedia.EjectMedia",
    "Members",
    "odata",
    "$metadata",
    "EventService",
    "Subscriptions",
    "test",
    "VM0",
    "VM1",
    "",
    "..",
    "%2E",
    "%zz",
    "%E2%82%AC",
];

const KEYS: &[&str] = &[
    "ResetType",
    "Boot",
    "BootSourceOverrideTarget",
    "BootSourceOverrideEnabled",
    "BootSourceOverrideMode",
    "Image",
    "Inserted",
    "WriteProtected",
    "TransferProtocolType",
    "TransferMethod",
    "UserName",
    "Password",
    "PowerState",
    "Name",
    "@odata.id",
];

const WORDS: &[&str] = &[
    "On",
    "ForceOff",
    "ForceOn",
    "GracefulShutdown",
    "GracefulRestart",
    "ForceRestart",
    "Nmi",
    "PushPowerButton",
    "Pxe",
    "Hdd",
    "Cd",
    "None",
    "Once",
    "Continuous",
    "Disabled",
    "UEFI",
    "Legacy",
    "HTTP",
    "HTTPS",
    "Stream",
    "http://127.0.0.1:1/x.iso",
    "ftp://x/y",
    "admin-a",
    "pw-a",
];

fn segment() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(SEGMENTS).prop_map(str::to_string),
        // Only characters `http` accepts in a path.
        1 => "[A-Za-z0-9%._$-]{0,8}",
    ]
}

const TEMPLATES: &[&str] = &[
    "/redfish/v1/Systems/VM0",
    "/redfish/v1/Systems/VM1",
    "/redfish/v1/Systems/VM0/Actions/ComputerSystem.Reset",
    "/redfish/v1/Systems/VM0/VirtualMedia/Cd",
    "/redfish/v1/Systems/VM0/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia",
    "/redfish/v1/Managers/VM0/VirtualMedia/Cd/Actions/VirtualMedia.EjectMedia",
    "/redfish/v1/Systems/VM0/EthernetInterfaces/nic0",
    "/redfish/v1/SessionService/Sessions",
    "/redfish/v1/Systems",
];

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => proptest::sample::select(TEMPLATES).prop_map(str::to_string),
        2 => random_path(),
    ]
}

fn random_path() -> impl Strategy<Value = String> {
    let query = proptest::sample::select(&["", "?$expand=.", "?only", "?a=b", "?$top=1", "?"][..]);
    (
        proptest::bool::weighted(0.8),
        proptest::collection::vec(segment(), 0..7),
        proptest::bool::ANY,
        query,
    )
        .prop_map(|(prefixed, segs, slash, q)| {
            let mut p = if prefixed {
                "/redfish/v1".to_string()
            } else {
                String::new()
            };
            for s in segs {
                p.push('/');
                p.push_str(&s);
            }
            if slash || p.is_empty() {
                p.push('/');
            }
            p.push_str(q);
            p
        })
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i32>().prop_map(Value::from),
        proptest::sample::select(WORDS).prop_map(Value::from),
        // No ':' in free text, so no string is ever a URL to anywhere.
        "[A-Za-z0-9 ._-]{0,10}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..3).prop_map(Value::Array),
            proptest::collection::btree_map(
                proptest::sample::select(KEYS).prop_map(str::to_string),
                inner,
                0..4
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        1 => Just(Vec::new()),
        1 => proptest::collection::vec(any::<u8>(), 0..48),
        4 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    method: Method,
    path: String,
    auth: Option<String>,
    token: Option<String>,
    if_match: Option<String>,
    odata_version: Option<String>,
    body: Vec<u8>,
}

fn case() -> impl Strategy<Value = Case> {
    let method = proptest::sample::select(
        &[
            "GET", "HEAD", "POST", "PATCH", "DELETE", "PUT", "OPTIONS", "BREW",
        ][..],
    )
    .prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap());
    let auth = proptest::option::weighted(
        0.8,
        prop_oneof![
            3 => Just(basic("admin-a", "pw-a")),
            1 => Just(basic("admin-b", "pw-b")),
            1 => Just(basic("admin-a", "wrong")),
            1 => Just("Basic !!".to_string()),
            // Visible ASCII and space: always a valid header value.
            1 => "[ -~]{0,16}",
        ],
    );
    let token = proptest::option::weighted(0.1, "[0-9a-f]{0,8}");
    let if_match = proptest::option::weighted(0.2, "[*\"W/0-9a-f]{0,10}");
    let odata_version =
        proptest::option::weighted(0.1, prop_oneof![Just("4.0".to_string()), "4\\.[0-9]"]);
    (method, path(), auth, token, if_match, odata_version, body()).prop_map(
        |(method, path, auth, token, if_match, odata_version, body)| Case {
            method,
            path,
            auth,
            token,
            if_match,
            odata_version,
            body,
        },
    )
}

/// The HTTP request of case `c`. The generators only make paths and header values `http`
/// accepts, so this fails only if a generator is wrong.
fn request(f: &Fixture, c: &Case) -> Result<Request<Body>, axum::http::Error> {
    let path = c.path.replace("VM0", &f.vms[0]).replace("VM1", &f.vms[1]);
    let mut req = Request::builder().method(c.method.clone()).uri(path);
    if let Some(a) = &c.auth {
        req = req.header("authorization", a.as_str());
    }
    if let Some(t) = &c.token {
        req = req.header("x-auth-token", t.as_str());
    }
    if let Some(m) = &c.if_match {
        req = req.header("if-match", m.as_str());
    }
    if let Some(v) = &c.odata_version {
        req = req.header("odata-version", v.as_str());
    }
    req.body(Body::from(c.body.clone()))
}

fn run(f: &Fixture, req: Request<Body>) -> (StatusCode, Vec<u8>, String) {
    f.rt.block_on(async {
        let resp = f.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let ctype = resp
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap_or("").to_string())
            .unwrap_or_default();
        (
            status,
            resp.into_body()
                .collect()
                .await
                .unwrap()
                .to_bytes()
                .to_vec(),
            ctype,
        )
    })
}

/// Writes to real resources, with valid credentials and random bodies.
fn write() -> impl Strategy<Value = Case> {
    let method = proptest::sample::select(&["POST", "PATCH"][..])
        .prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap());
    (method, proptest::sample::select(TEMPLATES), body()).prop_map(|(method, path, body)| Case {
        method,
        path: path.to_string(),
        auth: Some(basic("admin-a", "pw-a")),
        token: None,
        if_match: None,
        odata_version: None,
        body,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_request_gets_a_redfish_answer(c in case()) {
        check(&c)?;
    }

    #[test]
    fn any_write_gets_a_redfish_answer(c in write()) {
        check(&c)?;
    }
}

fn check(c: &Case) -> Result<(), TestCaseError> {
    let f = fixture();
    let req = request(f, c)
        .map_err(|e| TestCaseError::fail(format!("the generator made no request: {e}: {c:?}")))?;
    let (status, body, ctype) = run(f, req);
    if std::env::var_os("VINOD_PROPTEST_TRACE").is_some() {
        eprintln!(
            "{} {} {} -> {}",
            c.method,
            c.path,
            String::from_utf8_lossy(&c.body),
            status
        );
    }
    let allowed = [200, 201, 204, 304, 400, 401, 404, 405, 409, 412, 501];
    prop_assert!(
        allowed.contains(&status.as_u16()),
        "status {} for {:?}",
        status,
        c
    );
    if body.is_empty() {
        prop_assert!(
            c.method == Method::HEAD || matches!(status.as_u16(), 204 | 304),
            "empty body with {} for {:?}",
            status,
            c
        );
    } else if ctype == "application/xml" {
        prop_assert!(body.starts_with(b"<?xml"));
    } else {
        let v: Value = serde_json::from_slice(&body)
            .map_err(|e| TestCaseError::fail(format!("{e} for {c:?}")))?;
        if status.is_success() {
            prop_assert!(v.is_object());
        } else {
            let e = &v["error"];
            prop_assert!(
                e["code"].as_str().is_some_and(|s| s.starts_with("Base.")),
                "{v} for {c:?}"
            );
            prop_assert!(e["message"].is_string());
            prop_assert!(
                e["@Message.ExtendedInfo"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
            );
        }
    }
    Ok(())
}
