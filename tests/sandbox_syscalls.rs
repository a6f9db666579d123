//! The shipped unit's sandbox, checked against what vinod really does. systemd is not PID 1
//! where the tests run, so the unit cannot be started here; instead the daemon runs with the
//! unit's capability bounding set, `NoNewPrivileges` and `UMask` (setpriv and the shell), under
//! strace, through a whole working life in a private network namespace: a pass that builds a
//! bridge and starts dnsmasq, a DHCP client that must get its reserved address, Redfish
//! requests (Basic auth, a session login, a power action), a reload and a stop. Every system
//! call it and its dnsmasq made must be allowed by the unit's `SystemCallFilter`, as systemd
//! itself expands it.

mod common;

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::host::{Daemon, NetNs, Reaper, config_text, skip_reason, vino_yaml, wait_for};

const UNIT: &str = include_str!("../systemd/vinod.service");

/// The values of `key=` in the unit, in order.
fn unit_values(key: &str) -> Vec<String> {
    UNIT.lines()
        .filter_map(|l| l.strip_prefix(&format!("{key}=")))
        .map(str::to_string)
        .collect()
}

/// Every system call the unit's `SystemCallFilter=` allows, expanded by systemd-analyze.
fn allowed_syscalls() -> BTreeSet<String> {
    let out = Command::new("systemd-analyze")
        .arg("syscall-filter")
        .output()
        .expect("systemd-analyze");
    let text = String::from_utf8_lossy(&out.stdout);
    let mut groups: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    let mut current = None;
    for line in text.lines() {
        if line.starts_with('@') {
            current = Some(line.trim().to_string());
            groups.insert(line.trim().to_string(), Vec::new());
        } else if let (Some(g), item) = (&current, line.trim())
            && !item.is_empty()
            && !item.starts_with('#')
        {
            groups.get_mut(g).unwrap().push(item.to_string());
        }
    }
    fn expand(name: &str, groups: &std::collections::BTreeMap<String, Vec<String>>) -> Vec<String> {
        match groups.get(name) {
            Some(members) => members.iter().flat_map(|m| expand(m, groups)).collect(),
            None => vec![name.to_string()],
        }
    }
    let filters = unit_values("SystemCallFilter");
    assert!(!filters.is_empty(), "the unit has no SystemCallFilter");
    let allowed: BTreeSet<String> = filters
        .iter()
        .flat_map(|f| f.split_whitespace())
        .flat_map(|item| {
            assert!(
                !item.starts_with('~'),
                "deny lists are not expected: {item}"
            );
            expand(item, &groups)
        })
        .collect();
    assert!(allowed.len() > 100, "{} calls allowed?", allowed.len());
    allowed
}

/// The unit's bounding set as setpriv's argument: `-all,+net_admin,…`.
fn bounding_set() -> String {
    let caps = unit_values("CapabilityBoundingSet").join(" ");
    let mut arg = String::from("-all");
    for cap in caps.split_whitespace() {
        arg.push_str(&format!(
            ",+{}",
            cap.trim_start_matches("CAP_").to_lowercase()
        ));
    }
    arg
}

/// The system calls named in an `strace -c` summary.
fn syscalls_in(summary: &str) -> BTreeSet<String> {
    summary
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .filter(|w| {
            *w != "total"
                && *w != "syscall"
                && w.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_string)
        .collect()
}

fn curl(ns: &NetNs, args: &[&str]) -> String {
    let mut cmd = vec![
        "curl",
        "-sk",
        "-m",
        "5",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
    ];
    cmd.extend_from_slice(args);
    String::from_utf8_lossy(&ns.exec(&cmd).stdout).into_owned()
}

#[test]
fn the_daemon_lives_inside_the_units_sandbox() {
    if let Some(why) = skip_reason() {
        return common::prereq::skip(why);
    }
    for tool in [
        "/usr/bin/strace",
        "/usr/bin/curl",
        "/usr/bin/setpriv",
        "/usr/bin/systemd-analyze",
    ] {
        if !Path::new(tool).exists() {
            return common::prereq::skip(format!("{tool} is not installed"));
        }
    }
    let allowed = allowed_syscalls();
    let umask = unit_values("UMask");
    assert_eq!(umask, ["0077"], "the unit's UMask");

    let ns = NetNs::new("sbx");
    let client = NetNs::new("sbxc");
    let dir = tempfile::tempdir().unwrap();
    let _reaper = Reaper(dir.path().to_path_buf());
    // As systemd makes them for the unit (StateDirectory=, RuntimeDirectory=, LogsDirectory=:
    // mode 0755); everything below them vinod makes itself, under the unit's umask.
    for d in ["", "state", "run", "console"] {
        let d = dir.path().join(d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let config = dir.path().join("vinod.toml");
    let text = config_text(dir.path(), "test:///default", "vinod-sbx", "");
    std::fs::write(&config, text).unwrap();
    let manifest = dir.path().join("vinos.yaml");
    std::fs::write(&manifest, vino_yaml("sbx", "vsb0", 93, 1, 1)).unwrap();
    let summary = dir.path().join("strace.txt");
    let inner = format!(
        "umask {}; exec strace -f -qq -c -o {} {} run --config {} --standalone {}",
        umask[0],
        summary.display(),
        env!("CARGO_BIN_EXE_vinod"),
        config.display(),
        manifest.display()
    );
    let child = Command::new("nsenter")
        .arg(format!("--net={}", ns.path().display()))
        .args(["setpriv", "--no-new-privs", "--bounding-set"])
        .arg(bounding_set())
        .args(["--", "sh", "-c", &inner])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("daemon.log")).unwrap())
        .spawn()
        .unwrap();
    let mut daemon = Daemon(child);

    // The BMC serves the pass's VM and the pass started the bridge's dnsmasq.
    let systems = "https://127.0.0.1:8000/redfish/v1/Systems";
    let system = format!("{systems}/lab.sbx.worker-0");
    wait_for("the VM on the BMC", Duration::from_secs(30), || {
        curl(&ns, &["-u", "admin:pw", &system]) == "200"
    });
    wait_for("dnsmasq on vsb0", Duration::from_secs(30), || {
        String::from_utf8_lossy(&ns.exec(&["pgrep", "-f", "dnsmasq.*vsb0"]).stdout).trim() != ""
    });
    let reset = format!("{system}/Actions/ComputerSystem.Reset");
    let json = ["-H", "Content-Type: application/json", "-X", "POST", "-d"];
    let mut power = vec!["-u", "admin:pw"];
    power.extend_from_slice(&json);
    power.extend_from_slice(&[r#"{"ResetType":"On"}"#, &reset]);
    assert_eq!(curl(&ns, &power), "204");
    let mut login = json.to_vec();
    login.extend_from_slice(&[
        r#"{"UserName":"admin","Password":"pw"}"#,
        "https://127.0.0.1:8000/redfish/v1/SessionService/Sessions",
    ]);
    assert_eq!(curl(&ns, &login), "201");

    // A DHCP client with the VM's boot MAC gets its reserved address, the static range's second
    // (the bridge has the first): dnsmasq runs, writes
    // its lease under the unit's umask, with the unit's capabilities).
    let bmh = std::fs::read_to_string(
        dir.path()
            .join("state/standalone/lab/sbx/baremetalhosts.yaml"),
    )
    .unwrap();
    let mac = bmh
        .lines()
        .find_map(|l| l.trim().strip_prefix("bootMACAddress: "))
        .expect("a boot MAC")
        .to_string();
    ns.ip(&[
        "link",
        "add",
        "vsbh",
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        &client.name,
    ]);
    ns.ip(&["link", "set", "vsbh", "master", "vsb0", "up"]);
    client.ip(&["link", "set", "eth0", "address", &mac, "up"]);
    let out = client.exec(&[
        "timeout",
        "30",
        "busybox",
        "udhcpc",
        "-i",
        "eth0",
        "-f",
        "-q",
        "-n",
        "-t",
        "5",
        "-T",
        "1",
        "-s",
        "/bin/true",
    ]);
    let said = String::from_utf8_lossy(&out.stderr);
    let log = std::fs::read_to_string(dir.path().join("daemon.log")).unwrap_or_default();
    assert!(
        said.contains("lease of 192.168.93.2 obtained"),
        "udhcpc: {said}\ndaemon log:\n{}",
        log.lines().rev().take(30).collect::<Vec<_>>().join("\n")
    );

    // Reload, then stop as systemd would.
    let vinod_pid =
        String::from_utf8_lossy(&ns.exec(&["pgrep", "-f", "-n", "vinod run --config"]).stdout)
            .trim()
            .to_string();
    let vinod = nix::unistd::Pid::from_raw(vinod_pid.parse().expect("vinod's pid"));
    nix::sys::signal::kill(vinod, nix::sys::signal::Signal::SIGHUP).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        curl(&ns, &["-u", "admin:pw", systems]),
        "200",
        "the BMC after reload"
    );
    nix::sys::signal::kill(vinod, nix::sys::signal::Signal::SIGTERM).unwrap();
    wait_for("vinod to stop", Duration::from_secs(30), || {
        nix::sys::signal::kill(vinod, None).is_err()
    });
    // dnsmasq outlives vinod by design (KillMode=process); strace follows it too, so it ends
    // only with it.
    let servers = ns.exec(&["pgrep", "-f", "dnsmasq.*vsb0"]).stdout;
    for p in String::from_utf8_lossy(&servers).split_whitespace() {
        let pid = nix::unistd::Pid::from_raw(p.parse().unwrap());
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    }
    let status = daemon.0.wait().unwrap();
    assert!(status.success(), "vinod under strace ended with {status}");

    let used = syscalls_in(&std::fs::read_to_string(&summary).unwrap());
    assert!(
        used.len() > 40 && used.contains("setuid") && used.contains("epoll_wait"),
        "{used:?}"
    );
    let outside: Vec<&String> = used.difference(&allowed).collect();
    assert!(
        outside.is_empty(),
        "system calls outside the unit's SystemCallFilter: {outside:?}"
    );
    println!("{} system calls used, all in the unit's filter", used.len());
}
