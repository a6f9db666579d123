//! The Python environment of the Redfish client tests (`scripts/redfish-venv.sh`: sushy,
//! pytest, DMTF's protocol validator) and a bounded way to run it.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Longest a Python run may take.
const PYTHON_TIMEOUT: Duration = Duration::from_secs(600);

/// The venv's python (`REDFISH_VENV`, default `/var/cache/vinod/venv`), or why it is missing.
pub fn venv() -> Result<PathBuf, String> {
    let dir = checked_venv(
        "Redfish",
        "REDFISH_VENV",
        "/var/cache/vinod/venv",
        "sushy, pytest, redfish_protocol_validator",
        "scripts/redfish-venv.sh",
    )?;
    Ok(dir.join("bin/python"))
}

/// The `what` test venv, the directory named by the environment variable `var` (default
/// `default`), if its python imports `modules`; otherwise why not, naming the `script` that
/// builds it.
pub fn checked_venv(
    what: &str,
    var: &str,
    default: &str,
    modules: &str,
    script: &str,
) -> Result<PathBuf, String> {
    let dir = PathBuf::from(std::env::var(var).unwrap_or_else(|_| default.into()));
    let ok = Command::new(dir.join("bin/python"))
        .args(["-c", &format!("import {modules}")])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(dir)
    } else {
        Err(format!(
            "no {what} test venv at {} (run {script})",
            dir.display()
        ))
    }
}

/// Runs `cmd` to completion or the deadline (then kills it); returns success and output.
pub fn run_bounded(cmd: Command) -> (bool, String) {
    let (status, text) = run_bounded_status(cmd);
    (status.is_some_and(|s| s.success()), text)
}

/// Runs `cmd` to completion or the deadline (then kills it); returns its exit status (`None`
/// when killed at the deadline) and output.
pub fn run_bounded_status(mut cmd: Command) -> (Option<ExitStatus>, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let began = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if began.elapsed() > PYTHON_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = format!("{}{}", out.join().unwrap(), err.join().unwrap());
    (status, text)
}
