//! The text log written to a pipe is plain: no escape sequences (colour belongs on a terminal
//! only). The daemon is started on a manifest that does not exist, with `--once`, so it logs
//! its start and its failed pass and exits without touching the host; no root needed.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[test]
fn text_log_to_a_pipe_has_no_escape_sequences() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let config = dir.path().join("vinod.toml");
    std::fs::write(
        &config,
        format!(
            "state_dir = \"{d}/state\"\nrun_dir = \"{d}/run\"\n[log]\nlevel = \"info\"\nformat = \"text\"\n[libvirt]\nuri = \"test:///default\"\npool_path = \"{d}/pool\"\nconsole_log_dir = \"{d}/console\"\n"
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_vinod"))
        .args(["run", "--once", "--config"])
        .arg(&config)
        .arg("--standalone")
        .arg(dir.path().join("missing.yaml"))
        .env_remove("JOURNAL_STREAM")
        .env_remove("NO_COLOR")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let began = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if began.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("vinod starting"), "no start record: {log}");
    assert!(
        !log.contains('\u{1b}'),
        "escape sequence in a piped log: {log:?}"
    );
}
