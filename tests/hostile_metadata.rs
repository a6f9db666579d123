//! A Vino's metadata is hostile input in a standalone manifest (no API server checked it):
//! a name carrying dnsmasq directives, and names and namespaces that would lead file paths out
//! of vinod's directories. Each is refused naming the field, and nothing is built or written
//! for it: no dnsmasq configuration, no bridge, no domain, no file outside the state
//! directory.

mod common;

use std::path::Path;
use std::process::Command;

use common::host::{NetNs, Reaper, skip_reason, standalone_pass, vino_yaml};

/// The manifest of a valid one-VM Vino whose metadata is replaced by `metadata` (flow YAML).
fn manifest(metadata: &str) -> String {
    let text = vino_yaml("ok", "vhm0", 77, 1, 1);
    let valid = "metadata: {name: ok, namespace: lab}";
    assert!(text.contains(valid));
    text.replace(valid, &format!("metadata: {metadata}"))
}

/// The hostile metadata and the field vinod must name.
const CASES: &[(&str, &str)] = &[
    (
        r#"{name: "inj\ndhcp-script=/tmp/vinod-pwn.sh\n#", namespace: lab}"#,
        "metadata.name",
    ),
    (
        r#"{name: "../../../../tmp/vinod-out", namespace: lab}"#,
        "metadata.name",
    ),
    (
        r#"{name: x, namespace: "/tmp/vinod-out"}"#,
        "metadata.namespace",
    ),
    (r#"{name: x, namespace: "../.."}"#, "metadata.namespace"),
];

#[test]
fn vinod_plan_refuses_hostile_metadata_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    for (metadata, field) in CASES {
        let file = dir.path().join("vino.yaml");
        std::fs::write(&file, manifest(metadata)).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_vinod"))
            .args(["plan", "--node-address", "192.0.2.10", "--vino"])
            .arg(&file)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{metadata}: {stderr}");
        assert!(stderr.contains(field), "{metadata}: {stderr}");
        assert!(
            !stderr.lines().any(|l| l.starts_with("dhcp-script")),
            "{metadata}: the directive reached the output: {stderr}"
        );
        assert!(out.stdout.is_empty(), "{metadata}: printed a plan");
    }
}

#[test]
fn the_daemon_builds_and_writes_nothing_for_hostile_metadata() {
    if let Some(why) = skip_reason() {
        return common::prereq::skip(why);
    }
    let ns = NetNs::new("hmeta");
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper(dir.path().to_path_buf());
    let docs: Vec<String> = CASES.iter().map(|(m, _)| manifest(m)).collect();
    let status = standalone_pass(&ns.path(), dir.path(), "vinod-hmeta", "", &docs);

    // Nothing built: no bridge, no dnsmasq configuration or process.
    let links = ns.ip(&["-o", "link", "show"]);
    assert!(!links.contains("vhm0"), "a bridge was made: {links}");
    let run = dir.path().join("run");
    assert!(
        find(&run, "dnsmasq.conf").is_empty(),
        "dnsmasq configuration written under {}",
        run.display()
    );
    // Nothing written outside the state directory, and every Vino reported by field.
    for outside in ["/tmp/vinod-out", "/tmp/vinod-pwn.sh"] {
        assert!(!Path::new(outside).exists(), "{outside} exists");
    }
    assert_eq!(
        status.matches("phase: Degraded").count(),
        CASES.len(),
        "{status}"
    );
    for (_, field) in CASES {
        assert!(status.contains(field), "status lacks {field}: {status}");
    }
    assert!(!status.contains("\ndhcp-script"), "{status}");
}

/// Every file named `name` below `dir`.
fn find(dir: &Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            found.extend(find(&p, name));
        } else if p.file_name().is_some_and(|n| n == name) {
            found.push(p);
        }
    }
    found
}
