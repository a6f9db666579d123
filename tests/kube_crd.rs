//! The Vino CRD on a real kube-apiserver: every bad Vino of `tests/fixtures/invalid/cases.yaml`
//! that names a CEL rule or an OpenAPI keyword is rejected by the server with that message; the
//! good manifests are accepted; `kubectl explain` and the printer columns work.

mod common;

use std::path::Path;

use common::kube_env::{KubeEnv, assert_ok, repo};
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use serde::Deserialize;
use serde_json::Value;
use vinod::api::Vino;

#[derive(Deserialize)]
struct Case {
    name: String,
    op: String,
    path: String,
    #[serde(default)]
    value: Value,
    field: String,
    #[serde(default)]
    cel: Option<String>,
    #[serde(default)]
    openapi: Option<String>,
}

fn fixtures() -> std::path::PathBuf {
    repo().join("tests/fixtures/invalid")
}

fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(fixtures().join("cases.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

/// Applies one JSON-pointer operation (`replace`, `add`, `remove`), as `invalid_inputs` does.
fn patch(doc: &mut Value, op: &str, path: &str, value: Value) {
    let (parent, last) = path.rsplit_once('/').unwrap();
    let key = last.replace("~1", "/").replace("~0", "~");
    match (op, doc.pointer_mut(parent).unwrap()) {
        ("remove", Value::Object(m)) => {
            m.remove(&key).unwrap();
        }
        ("remove", Value::Array(a)) => {
            a.remove(key.parse().unwrap());
        }
        ("replace" | "add", Value::Object(m)) => {
            m.insert(key, value);
        }
        ("replace", Value::Array(a)) => a[key.parse::<usize>().unwrap()] = value,
        (op, _) => panic!("unsupported op {op} at {path}"),
    }
}

/// What the API server says when an OpenAPI keyword rejects a value.
fn server_phrase(keyword: &str) -> &'static str {
    match keyword {
        "pattern" => "should match '",
        "maximum" => "should be less than or equal to",
        "minimum" => "should be greater than or equal to",
        "maxLength" => "Too long: may not be more than",
        "x-kubernetes-list-type map" => "Duplicate value:",
        other => panic!("no server phrase known for OpenAPI keyword {other:?}"),
    }
}

fn vinoes(env: &KubeEnv, ns: &str) -> Api<DynamicObject> {
    Api::namespaced_with(env.admin(), ns, &ApiResource::erase::<Vino>(&()))
}

fn rejection(err: kube::Error) -> String {
    match err {
        kube::Error::Api(s) => {
            assert_eq!(s.code, 422, "expected 422 Invalid: {s:?}");
            s.message
        }
        other => panic!("expected an API rejection, got {other}"),
    }
}

#[tokio::test]
async fn server_rejects_each_cel_and_openapi_case_with_its_message() {
    let Some(env) = KubeEnv::start().await else {
        return;
    };
    env.namespace("lab").await;
    let api = vinoes(&env, "lab");
    let dry_run = PostParams {
        dry_run: true,
        ..Default::default()
    };
    let mut checked = 0;
    let mut failures = Vec::new();
    for c in cases() {
        let expected = match (&c.cel, &c.openapi) {
            (Some(msg), _) => msg.clone(),
            (None, Some(keyword)) => server_phrase(keyword).to_string(),
            (None, None) => continue,
        };
        let mut doc = read_yaml(&fixtures().join("base.yaml"));
        patch(&mut doc, &c.op, &c.path, c.value.clone());
        let obj: DynamicObject = serde_json::from_value(doc).unwrap();
        checked += 1;
        match api.create(&dry_run, &obj).await {
            Ok(_) => failures.push(format!("{}: accepted by the server", c.name)),
            Err(e) => {
                let msg = rejection(e);
                if !msg.contains(&expected) {
                    failures.push(format!("{}: want {expected:?}, got: {msg}", c.name));
                }
                // OpenAPI errors name the field (a duplicate list-map key names the item).
                let parent = c.field.rsplit_once('.').map_or("", |(p, _)| p);
                if c.openapi.is_some() && !msg.contains(&c.field) && !msg.contains(parent) {
                    failures.push(format!("{}: {} not named in: {msg}", c.name, c.field));
                }
            }
        }
    }
    assert!(checked >= 30, "only {checked} cases carry a CRD rule");
    assert!(failures.is_empty(), "{}", failures.join("\n"));

    // The same through kubectl, for one CEL and one OpenAPI case.
    let dir = tempfile::tempdir().unwrap();
    for (name, want) in [
        ("overlapping-networks", "network subnets must not overlap"),
        ("bridge-name-too-long", "Too long: may not be more than 15"),
    ] {
        let c = cases().into_iter().find(|c| c.name == name).unwrap();
        let mut doc = read_yaml(&fixtures().join("base.yaml"));
        patch(&mut doc, &c.op, &c.path, c.value.clone());
        let file = dir.path().join(format!("{name}.json"));
        std::fs::write(&file, serde_json::to_vec(&doc).unwrap()).unwrap();
        let out = env
            .kubectl()
            .args(["apply", "--dry-run=server", "-f"])
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{name}: kubectl accepted it");
        assert!(stderr.contains(want), "{name}: {stderr}");
    }
}

#[tokio::test]
async fn server_accepts_the_base_fixture_the_vino_samples_and_the_example() {
    let Some(env) = KubeEnv::start().await else {
        return;
    };
    env.namespace("lab").await;
    let base = fixtures().join("base.yaml");
    let samples = repo().join("examples/vino-samples");
    let example = repo().join("examples/vino.yaml");
    for (file, ns) in [
        (base.as_path(), "lab"),
        (&samples.join("vino_cr.yaml"), "default"),
        (&samples.join("vino_cr_4_workers_1_cp.yaml"), "default"),
        (example.as_path(), "default"),
    ] {
        let mut doc = read_yaml(file);
        let name = doc["metadata"]["name"].as_str().unwrap().to_string();
        // The two samples share a name, as in ViNO; the second replaces the first.
        doc["metadata"]["namespace"] = ns.into();
        let obj: DynamicObject = serde_json::from_value(doc).unwrap();
        let api = vinoes(&env, ns);
        let _ = api.delete(&name, &Default::default()).await;
        let mut created = None;
        for _ in 0..50 {
            match api.create(&PostParams::default(), &obj).await {
                Ok(o) => {
                    created = Some(o);
                    break;
                }
                // Still being deleted.
                Err(kube::Error::Api(s)) if s.code == 409 => {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await
                }
                Err(e) => panic!("{}: rejected: {e}", file.display()),
            }
        }
        let created = created.unwrap_or_else(|| panic!("{}: not created", file.display()));
        // What the server stored decodes into vinod's types.
        let stored: Vino = serde_json::from_value(serde_json::to_value(&created).unwrap())
            .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert_eq!(stored.metadata.name.as_deref(), Some(name.as_str()));
    }
    // kubectl apply (client-side) of the shipped example works too.
    let out = env
        .kubectl()
        .args(["apply", "-f"])
        .arg(&example)
        .output()
        .unwrap();
    assert_ok(&out, "kubectl apply examples/vino.yaml");
}

#[tokio::test]
async fn kubectl_explains_fields_and_prints_the_columns() {
    let Some(env) = KubeEnv::start().await else {
        return;
    };
    // The server publishes a new CRD's OpenAPI schema shortly after the CRD is Established.
    let mut explain = String::new();
    for _ in 0..300 {
        let out = env
            .kubectl()
            .args(["explain", "vino.spec.networks"])
            .output()
            .unwrap();
        if out.status.success() {
            explain = String::from_utf8_lossy(&out.stdout).into_owned();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    for needle in [
        "GROUP:      airship.airshipit.org",
        "VM networks",
        "subnet",
        "staticAllocationStart",
        "dns_servers",
        "bridgeName",
    ] {
        assert!(
            explain.contains(needle),
            "explain lacks {needle:?}:\n{explain}"
        );
    }
    let explain = env.kubectl_ok(&["explain", "vino.status.nodes"]);
    assert!(explain.contains("vmsReady"), "{explain}");

    env.kubectl_ok(&[
        "apply",
        "-f",
        &repo().join("examples/vino.yaml").display().to_string(),
    ]);
    let table = env.kubectl_ok(&["get", "vino", "demo", "-n", "default"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "NODES", "VMS", "AGE"], "{table}");
    let table = env.kubectl_ok(&["get", "vn", "-A"]);
    assert!(table.contains("demo"), "short name vn: {table}");
}
