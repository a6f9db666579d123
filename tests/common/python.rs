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
    let dir = PathBuf::from(
        std::env::var("REDFISH_VENV").unwrap_or_else(|_| "/var/cache/vinod/venv".into()),
    );
    let python = dir.join("bin/python");
    let ok = Command::new(&python)
        .args(["-c", "import sushy, pytest, redfish_protocol_validator"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if ok {
        Ok(python)
    } else {
        Err(format!(
            "no Redfish test venv at {} (run scripts/redfish-venv.sh)",
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
