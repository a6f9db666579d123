//! Bad Vinos: every case in `tests/fixtures/invalid/cases.yaml` must be rejected by vinod's
//! validation with an error naming the field, by `vinod plan` with a non-zero exit and that
//! field in its message, and — where the CRD carries a CEL rule for it — by that rule too,
//! evaluated client-side with the Kubernetes CEL library.

use std::path::Path;
use std::process::Command;

use kube::CustomResourceExt;
use kube::core::cel::Validator;
use serde::Deserialize;
use serde_json::Value;
use vinod::api::{self, Vino};

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

fn fixtures() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/invalid"
    ))
}

fn base() -> Value {
    let text = std::fs::read_to_string(fixtures().join("base.yaml")).unwrap();
    serde_yaml::from_str(&text).unwrap()
}

fn cases() -> Vec<Case> {
    serde_yaml::from_str(&std::fs::read_to_string(fixtures().join("cases.yaml")).unwrap()).unwrap()
}

/// Applies one JSON-patch-like operation.
fn patch(doc: &mut Value, op: &str, path: &str, value: Value) {
    let (parent, last) = path.rsplit_once('/').unwrap();
    let key = last.replace("~1", "/").replace("~0", "~");
    let target = doc
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent}"));
    match (op, target) {
        ("remove", Value::Object(m)) => {
            m.remove(&key)
                .unwrap_or_else(|| panic!("nothing at {path}"));
        }
        ("remove", Value::Array(a)) => {
            a.remove(key.parse().unwrap());
        }
        ("replace" | "add", Value::Object(m)) => {
            assert!(
                op == "add" || m.contains_key(&key),
                "nothing to replace at {path}"
            );
            m.insert(key, value);
        }
        ("replace", Value::Array(a)) => a[key.parse::<usize>().unwrap()] = value,
        (op, _) => panic!("unsupported op {op} at {path}"),
    }
}

fn crd_schema() -> Value {
    let crd = Vino::crd();
    serde_json::to_value(
        crd.spec.versions[0]
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn base_fixture_is_valid_everywhere() {
    let doc = base();
    let vino: Vino = serde_json::from_value(doc.clone()).unwrap();
    let checked = api::validate::check(&vino.spec);
    assert!(checked.is_ok(), "{checked:?}");
    let cel = Validator::new().validate(&crd_schema(), &doc, None);
    assert!(cel.is_ok(), "CEL rejects the valid base: {cel:?}");
}

#[test]
fn every_case_is_rejected_naming_its_field() {
    let cases = cases();
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    let schema = crd_schema();
    let mut failures = Vec::new();
    for c in &cases {
        let mut doc = base();
        patch(&mut doc, &c.op, &c.path, c.value.clone());
        let vino: Vino = match serde_json::from_value(doc.clone()) {
            Ok(v) => v,
            Err(e) => {
                failures.push(format!("{}: does not decode: {e}", c.name));
                continue;
            }
        };
        match api::validate::check(&vino.spec) {
            Ok(_) => failures.push(format!("{}: accepted", c.name)),
            Err(e) => {
                if !e.field_errors().iter().any(|f| f.field == c.field) {
                    failures.push(format!("{}: expected field {}, got: {e}", c.name, c.field));
                }
            }
        }
        if let Some(msg) = &c.cel {
            match Validator::new().validate(&schema, &doc, None) {
                Ok(()) => failures.push(format!("{}: the CRD's CEL rules accept it", c.name)),
                Err(errs) => {
                    let text = format!("{errs:?}");
                    if !text.contains(msg.as_str()) {
                        failures.push(format!(
                            "{}: CEL rejected it, but not with {msg:?}: {text}",
                            c.name
                        ));
                    }
                }
            }
        } else {
            assert!(c.openapi.is_some() || !c.name.is_empty());
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn cli_rejects_each_case_with_the_field_and_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    for c in cases() {
        let mut doc = base();
        patch(&mut doc, &c.op, &c.path, c.value.clone());
        let file = dir.path().join(format!("{}.yaml", c.name));
        std::fs::write(&file, serde_yaml::to_string(&doc).unwrap()).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_vinod"))
            .args([
                "plan",
                "--node",
                "n1",
                "--node-labels",
                "vino.airshipit.org/host=true",
                "--node-address",
                "10.0.0.2",
                "--numa",
                "0:0-7",
            ])
            .arg("--vino")
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", c.name);
        assert!(
            stderr.contains(&c.field),
            "{}: stderr lacks {}: {stderr}",
            c.name,
            c.field
        );
        assert!(!stderr.contains("panicked"), "{}: {stderr}", c.name);
    }
}

#[test]
fn wrongly_typed_fields_are_named() {
    let cases = [
        (
            "/spec/nodes/0/count",
            serde_json::json!("three"),
            "spec.nodes[0].count",
        ),
        (
            "/spec/networks/0/instanceSubnetBitStep",
            serde_json::json!(-1),
            "spec.networks[0].instanceSubnetBitStep",
        ),
        (
            "/spec/networks",
            serde_json::json!({"name": "x"}),
            "spec.networks",
        ),
        (
            "/spec/nodes/0/enableVNC",
            serde_json::json!("yes"),
            "spec.nodes[0].enableVNC",
        ),
    ];
    for (path, value, field) in cases {
        let mut doc = base();
        patch(&mut doc, "add", path, value);
        let err = api::parse_vino(&serde_yaml::to_string(&doc).unwrap())
            .unwrap_err()
            .to_string();
        assert!(err.contains(field), "{path}: {err}");
    }
}

#[test]
fn hostile_documents_fail_cleanly() {
    let deep = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
    let huge_name = format!(
        "apiVersion: airship.airshipit.org/v1\nkind: Vino\nmetadata: {{name: {}}}\nspec: {{}}\n",
        "a".repeat(1_000_000)
    );
    for text in [
        "",
        "- a\n- b\n",
        "spec: [",
        "\u{0}\u{1}",
        deep.as_str(),
        huge_name.as_str(),
    ] {
        let r = api::parse_vino(text).map(|v| api::validate::check(&v.spec).map(|_| ()));
        assert!(
            matches!(r, Err(_) | Ok(Err(_))),
            "accepted {:?}",
            &text[..text.len().min(40)]
        );
    }
}
