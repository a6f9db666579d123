//! What a test does when something it needs is missing (not root, no venv, no Kubernetes
//! binaries, no libvirtd or qemu, …).
//!
//! Outside CI the test skips loudly: it prints `SKIPPED <test>: <why>` on stderr (shown even
//! though the test passes: `scripts/dev.sh test` lists every skip after the run) and appends the
//! same line to `$VINOD_TEST_SKIP_LOG` when set. Under `CI=true` a missing prerequisite is a
//! failure: the test panics with the reason, so CI can never pass by skipping.
//!
//! Included with `#[path]` by test binaries that do not use `common`, so it depends on std only.

// Each including binary uses part of it.
#![allow(dead_code)]

use std::fmt::Display;
use std::io::Write;

/// Whether this run is CI's (`CI=true`), where nothing may be skipped.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}

/// Records that the calling test cannot run here because of `why`; panics under CI. Callers
/// return right after it.
#[track_caller]
pub fn skip(why: impl Display) {
    let test = std::thread::current()
        .name()
        .unwrap_or("unnamed test")
        .to_string();
    if in_ci() {
        panic!("{test}: a prerequisite is missing under CI=true: {why}");
    }
    let line = format!("SKIPPED {test}: {why}");
    eprintln!("{line}");
    if let Some(path) = std::env::var_os("VINOD_TEST_SKIP_LOG") {
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = written {
            eprintln!("cannot record the skip in {}: {e}", path.to_string_lossy());
        }
    }
}
