//! Hostile input beyond the Vino cases of `tests/invalid_inputs.rs`: configuration files given
//! to `vinod check-config` (the same parser `vinod run` uses), and raw HTTP requests to the
//! Redfish BMC over a real socket while one of its VMs runs. Each must end in a clear error
//! (naming the key or field where there is one), never a panic, and the running VM must still
//! run afterwards. docs/robustness.md lists every case.

#[path = "common/redfish_bed.rs"]
mod bed;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use base64::Engine;

/// Configuration texts and the key their error must name.
fn config_cases() -> Vec<(String, &'static str)> {
    vec![
        ("nodename = \"x\"".into(), "nodename"),
        ("resync_ms = \"fast\"".into(), "resync_ms"),
        ("resync_ms = -1".into(), "resync_ms"),
        ("resync_ms = 99999999999999999999999".into(), "resync_ms"),
        ("resync_ms = 5".into(), "resync_ms"),
        ("[redfish]\nport = 70000".into(), "port"),
        ("[redfish]\nport = 0".into(), "redfish.port"),
        (
            "[libvirt]\ndomain_type = \"xen\"".into(),
            "libvirt.domain_type",
        ),
        ("state_dir = \"relative/dir\"".into(), "state_dir"),
        ("node_name = \"Ünïcødé_hóst\"".into(), "node_name"),
        (
            format!("node_name = \"{}\"", "a".repeat(100_000)),
            "node_name",
        ),
        (
            "[redfish]\nlisten_address = \"::ffff::1::\"".into(),
            "redfish.listen_address",
        ),
        ("[metrics]\nlisten = \"127.0.0.1\"".into(), "metrics.listen"),
        ("[dhcp]\nlease_time = \"1y\"".into(), "dhcp.lease_time"),
        ("[log]\nlevel = \"vinod=loud\"".into(), "log.level"),
        (
            "[redfish]\ntls_cert = \"/etc/vino/bmc.pem\"".into(),
            "redfish.tls_cert",
        ),
        (
            "[labels]\nrack_label = \"bad key!\"".into(),
            "labels.rack_label",
        ),
        (
            format!("a = {}{}", "[".repeat(50_000), "]".repeat(50_000)),
            "line 1",
        ),
        ("node_name = \"a\u{0}b\"".into(), "line 1"),
        ("[redfish\nport = 1".into(), "line 1"),
        ("[[libvirt]]\nuri = \"x\"".into(), "libvirt"),
    ]
}

#[test]
fn hostile_configuration_files_fail_with_the_key_named() {
    let dir = tempfile::tempdir().unwrap();
    let cases = config_cases();
    for (i, (text, key)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("case-{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_vinod"))
            .arg("check-config")
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let shown: String = text.chars().take(60).collect();
        assert_eq!(out.status.code(), Some(78), "case {i} ({shown:?}): {err}");
        assert!(
            err.contains(key),
            "case {i} ({shown:?}) must name {key}: {err}"
        );
        assert!(!err.contains("panicked"), "case {i}: {err}");
        assert!(err.len() < 2_000, "case {i}: {} bytes of error", err.len());
    }
    // Not UTF-8 at all.
    let path = dir.path().join("binary.toml");
    std::fs::write(&path, [0xff, 0xfe, 0x00, 0x80, b'\n']).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_vinod"))
        .arg("check-config")
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("binary.toml") && err.contains("UTF-8"),
        "{err}"
    );
    println!("{} configuration files rejected", cases.len() + 1);
}

/// The shipped example Vino with `cpuExclude` set to `value`.
fn example_with_cpu_exclude(value: &str) -> String {
    let text = include_str!("../examples/vino.yaml");
    let anchor = "spec:\n";
    assert!(text.contains(anchor));
    text.replacen(
        anchor,
        &format!("{anchor}  configuration: {{cpuExclude: \"{value}\"}}\n"),
        1,
    )
}

#[test]
fn oversized_manifests_are_refused_before_they_cost_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let nested = format!(
        "{}\nx: {}{}\n",
        include_str!("../examples/vino.yaml"),
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let long_list: Vec<String> = (0..12_000).step_by(2).map(|c| c.to_string()).collect();
    let cases = [
        (nested.clone(), "nest more than 64 deep"),
        (
            example_with_cpu_exclude(&long_list.join(",")),
            "spec.configuration.cpuExclude: 30444 characters; at most 1024",
        ),
    ];
    for (i, (text, expected)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("vino-{i}.yaml"));
        std::fs::write(&path, text).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_vinod"))
            .args(["plan", "--node-address", "192.0.2.10", "--vino"])
            .arg(&path)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "case {i}: {err}");
        assert!(
            err.contains(expected),
            "case {i} must say {expected:?}: {err}"
        );
    }
    // The standalone reader refuses the same nesting, and a file past the size bound unread.
    let path = dir.path().join("manifest.yaml");
    std::fs::write(&path, &nested).unwrap();
    let e = vinod::reconcile::files::Manifest::read(&path).unwrap_err();
    assert!(e.to_string().contains("nest more than 64 deep"), "{e}");
    let big = "#".repeat(vinod::api::MAX_YAML_BYTES + 10);
    std::fs::write(&path, big).unwrap();
    let e = vinod::reconcile::files::Manifest::read(&path).unwrap_err();
    assert!(e.to_string().contains("at most"), "{e}");
    // The bound leaves a real manifest alone.
    std::fs::write(&path, example_with_cpu_exclude("0-1")).unwrap();
    assert_eq!(
        vinod::reconcile::files::Manifest::read(&path)
            .unwrap()
            .vinos
            .len(),
        1
    );
}

/// Sends `request` to `port` and returns the response's status code and text.
fn send(port: u16, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may answer and close before reading all of an oversized request.
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let text = String::from_utf8_lossy(&buf).into_owned();
    let code = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP response: {text:?}"));
    (code, text)
}

fn request(method: &str, path: &str, auth: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: bmc\r\nConnection: close\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn basic(user: &str, password: &str) -> String {
    let pair = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(pair)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_redfish_requests_get_errors_and_the_vm_keeps_running() {
    let vinos = bed::define_vinos("hostile", &["ha", "hb"], 1).await;
    let state = tempfile::tempdir().unwrap();
    let config = bed::config(state.path(), 0, false);
    let running = bed::serve(&config, bed::credentials(&vinos)).await;
    let port = running.addr.port();
    let vm = vinos[0].vms[0].clone();
    let conn = bed::keep_driver_open();
    let domain = conn.lookup_domain_by_name(&vm).unwrap();
    domain.create().unwrap();
    let auth = basic(&vinos[0].username, &vinos[0].password);
    let other = basic(&vinos[1].username, &vinos[1].password);
    let system = format!("/redfish/v1/Systems/{vm}");
    let reset = format!("{system}/Actions/ComputerSystem.Reset");
    let media = format!("{system}/VirtualMedia/Cd/Actions/VirtualMedia.InsertMedia");
    let nested = format!("{}{}", "[".repeat(5_000), "]".repeat(5_000));
    let cases: Vec<(&str, Vec<u8>, &[u16], &str)> = vec![
        (
            "10 MB body",
            request("POST", &reset, &auth, &vec![b' '; 10 << 20]),
            &[413],
            "",
        ),
        (
            "ResetType a number",
            request("POST", &reset, &auth, br#"{"ResetType": 5}"#),
            &[400],
            "ResetType",
        ),
        (
            "ResetType unknown",
            request("POST", &reset, &auth, br#"{"ResetType": "Explode"}"#),
            &[400],
            "Explode",
        ),
        (
            "5k nested arrays",
            request("POST", &reset, &auth, nested.as_bytes()),
            &[400],
            "",
        ),
        (
            "truncated JSON",
            request("POST", &reset, &auth, br#"{"ResetType":"#),
            &[400],
            "",
        ),
        (
            "body not UTF-8",
            request("POST", &reset, &auth, &[0xff, 0xfe, 0x7b]),
            &[400],
            "",
        ),
        (
            "JSON not an object",
            request("POST", &reset, &auth, b"[\"On\"]"),
            &[400],
            "",
        ),
        (
            "another Vino's credentials",
            request("POST", &reset, &other, br#"{"ResetType": "ForceOff"}"#),
            &[404],
            "",
        ),
        (
            "wrong password",
            request(
                "POST",
                &reset,
                &basic(&vinos[0].username, "x"),
                br#"{"ResetType": "ForceOff"}"#,
            ),
            &[401],
            "",
        ),
        (
            "Basic not base64",
            request("GET", &system, "Basic !!!not-base64!!!", b""),
            &[401],
            "",
        ),
        (
            "Basic without a colon",
            request(
                "GET",
                &system,
                &format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode("nocolon")
                ),
                b"",
            ),
            &[401],
            "",
        ),
        (
            "1 MB Authorization header",
            request(
                "GET",
                &system,
                &format!("Basic {}", "A".repeat(1 << 20)),
                b"",
            ),
            &[400, 401, 431],
            "",
        ),
        (
            "10k-character System id",
            request(
                "GET",
                &format!("/redfish/v1/Systems/{}", "x".repeat(10_000)),
                &auth,
                b"",
            ),
            &[404, 414],
            "",
        ),
        (
            "unicode System id",
            request("GET", "/redfish/v1/Systems/%C3%BC%F0%9F%99%82", &auth, b""),
            &[404],
            "",
        ),
        (
            "path traversal",
            request(
                "GET",
                "/redfish/v1/Systems/..%2F..%2Fetc%2Fpasswd",
                &auth,
                b"",
            ),
            &[404],
            "",
        ),
        (
            "boot target unknown",
            request(
                "PATCH",
                &system,
                &auth,
                br#"{"Boot": {"BootSourceOverrideTarget": "Floppy"}}"#,
            ),
            &[400],
            "Floppy",
        ),
        (
            "Boot a string",
            request("PATCH", &system, &auth, br#"{"Boot": "Pxe"}"#),
            &[400],
            "Boot",
        ),
        (
            "media from file://",
            request("POST", &media, &auth, br#"{"Image": "file:///etc/shadow"}"#),
            &[400],
            "Image",
        ),
        (
            "100k-character media URL",
            request(
                "POST",
                &media,
                &auth,
                format!(r#"{{"Image": "http://{}"}}"#, "a".repeat(100_000)).as_bytes(),
            ),
            &[413],
            "",
        ),
        (
            "DELETE a System",
            request("DELETE", &system, &auth, b""),
            &[405],
            "",
        ),
        (
            "request line garbage",
            b"\x00\x01\x02 / HTTP/1.1\r\n\r\n".to_vec(),
            &[400],
            "",
        ),
    ];
    for (what, bytes, codes, needle) in &cases {
        let (code, text) = tokio::task::spawn_blocking({
            let bytes = bytes.clone();
            move || send(port, &bytes)
        })
        .await
        .unwrap();
        let head: String = text.chars().take(600).collect();
        assert!(codes.contains(&code), "{what}: {code}: {head}");
        assert!(
            text.contains(needle),
            "{what}: must mention {needle}: {head}"
        );
        if code != 413 && code != 431 && code != 414 && !what.contains("garbage") {
            assert!(
                text.contains("\"error\""),
                "{what}: not a Redfish error: {head}"
            );
        }
        assert!(domain.is_active().unwrap(), "{what}: the VM stopped");
    }
    // Still serving, and the VM still defined and running.
    let (code, text) =
        tokio::task::spawn_blocking(move || send(port, &request("GET", &system, &auth, b"")))
            .await
            .unwrap();
    assert_eq!(code, 200, "{text}");
    assert!(text.contains("\"PowerState\":\"On\""), "{text}");
    println!(
        "{} hostile Redfish requests answered with errors",
        cases.len()
    );
    running.stop().await;
}
