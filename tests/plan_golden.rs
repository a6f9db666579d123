//! Golden tests: each folder under `tests/fixtures/plan/` holds an `input.yaml` (the Vino file,
//! node facts, configuration, claims, resolved credentials) and the `expected.yaml` plan. The
//! plan is compared as data; a stale golden file fails. `UPDATE_GOLDEN=1 cargo test --test
//! plan_golden` rewrites them after a deliberate change (review the diff); under `CI=true` it is
//! refused, and `scripts/dev.sh test` fails in CI if any committed fixture changed during the run.

#[path = "common/prereq.rs"]
mod prereq;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;
use vinod::api;
use vinod::config::Config;
use vinod::ipam::NetworkClaims;
use vinod::plan::{self, NodeFacts, PlanInput};
use vinod::render::objects::Credentials;
use vinod::value::CpuSet;

#[derive(Deserialize)]
struct Input {
    vino: PathBuf,
    node: NodeFacts,
    #[serde(default)]
    config: String,
    #[serde(default)]
    claims: BTreeMap<String, NetworkClaims>,
    #[serde(default)]
    credentials: Option<Creds>,
}

#[derive(Deserialize)]
struct Creds {
    username: String,
    password: String,
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run_case(dir: &Path) -> Value {
    let input: Input =
        serde_yaml::from_str(&std::fs::read_to_string(dir.join("input.yaml")).unwrap()).unwrap();
    let vino =
        api::parse_vino(&std::fs::read_to_string(root().join(&input.vino)).unwrap()).unwrap();
    let config = Config::parse(&input.config, "input.yaml").unwrap();
    let creds = input.credentials.map(|c| Credentials {
        username: c.username,
        password: c.password,
    });
    assert!(
        plan::selects(&vino, &input.node),
        "{}: the Vino does not select the node",
        dir.display()
    );
    let p = plan::plan(PlanInput {
        vino: &vino,
        node: &input.node,
        config: &config,
        claims: &input.claims,
        credentials: creds.as_ref(),
        taken_cpus: &CpuSet::default(),
        current_pins: &Default::default(),
        host_network: &Default::default(),
        retained: &[],
    })
    .unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    serde_json::to_value(p.redacted()).unwrap()
}

fn first_difference(path: &str, a: &Value, b: &Value) -> Option<String> {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys()) {
                match (x.get(k), y.get(k)) {
                    (Some(v), Some(w)) => {
                        if let Some(d) = first_difference(&format!("{path}.{k}"), v, w) {
                            return Some(d);
                        }
                    }
                    _ => return Some(format!("{path}.{k}: present on one side only")),
                }
            }
            None
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (v, w))| first_difference(&format!("{path}[{i}]"), v, w)),
        _ if a == b => None,
        _ => Some(format!("{path}: got {a}, expected {b}")),
    }
}

#[test]
fn plans_match_golden_files() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(root().join("tests/fixtures/plan"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 4);
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    // A golden that rewrites itself accepts anything: CI only ever compares.
    assert!(
        !(update && prereq::in_ci()),
        "UPDATE_GOLDEN is refused under CI=true: goldens are compared, never rewritten"
    );
    let mut stale = Vec::new();
    for dir in dirs {
        let got = run_case(&dir);
        let file = dir.join("expected.yaml");
        if update {
            std::fs::write(&file, serde_yaml::to_string(&got).unwrap()).unwrap();
            continue;
        }
        let expected: Value =
            serde_yaml::from_str(&std::fs::read_to_string(&file).unwrap_or_default())
                .unwrap_or(Value::Null);
        if let Some(d) = first_difference("plan", &got, &expected) {
            stale.push(format!("{}: {d}", dir.display()));
        }
    }
    assert!(
        stale.is_empty(),
        "stale golden files (rerun with UPDATE_GOLDEN=1 after checking):\n{}",
        stale.join("\n")
    );
}

#[test]
fn planning_is_deterministic() {
    let dir = root().join("tests/fixtures/plan/vino-cr-4-workers-second-host");
    assert_eq!(run_case(&dir), run_case(&dir));
}
