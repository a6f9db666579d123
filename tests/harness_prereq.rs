//! The test harness itself: a missing prerequisite skips loudly outside CI and fails under
//! `CI=true`, naming what is missing. Each case runs this binary again as a child, with one
//! `#[ignore]`d probe test selected and the environment set for the case.

#[path = "common/prereq.rs"]
mod prereq;
#[path = "common/python.rs"]
#[allow(dead_code)]
mod python;

use std::process::{Command, Output};

/// Runs the probe `name` of this binary in a child with `envs` (and without `CI` unless set).
fn probe(name: &str, envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--ignored",
        "--exact",
        name,
        "--nocapture",
        "--test-threads=1",
    ])
    .env_remove("CI")
    .env_remove("VINOD_TEST_SKIP_LOG")
    .envs(envs.iter().copied());
    cmd.output().unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
#[ignore = "probe, run by the tests below"]
fn probe_missing_venv() {
    if let Err(why) = python::venv() {
        prereq::skip(why);
    }
}

#[test]
fn a_missing_venv_fails_under_ci_naming_it() {
    let venv = [("REDFISH_VENV", "/nonexistent/vinod-venv")];
    let out = probe("probe_missing_venv", &[venv[0], ("CI", "true")]);
    assert!(!out.status.success(), "passed under CI: {}", text(&out));
    assert!(
        text(&out).contains(
            "prerequisite is missing under CI=true: no Redfish test venv at /nonexistent/vinod-venv"
        ),
        "{}",
        text(&out)
    );
}

#[test]
fn a_missing_venv_skips_loudly_and_is_recorded_outside_ci() {
    let log = tempfile::NamedTempFile::new().unwrap();
    let path = log.path().to_str().unwrap();
    let out = probe(
        "probe_missing_venv",
        &[
            ("REDFISH_VENV", "/nonexistent/vinod-venv"),
            ("VINOD_TEST_SKIP_LOG", path),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("SKIPPED probe_missing_venv: no Redfish test venv"),
        "{}",
        text(&out)
    );
    let recorded = std::fs::read_to_string(path).unwrap();
    assert_eq!(recorded.lines().count(), 1, "{recorded}");
    assert!(
        recorded.starts_with("SKIPPED probe_missing_venv: no Redfish test venv at /nonexistent")
    );
}
