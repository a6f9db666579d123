//! A UEFI VM of `vinod run --standalone` on a real libvirtd (TCG) network-boots and is put
//! under secure boot through vinod's BMC. Everything is observed from the real components:
//! the running domain's XML (the firmware and NVRAM libvirt selected), the NVRAM file, vinod's
//! dnsmasq (the lease, the tags of the DHCP exchange, the TFTP transfers it logs), the VM's
//! serial console and an HTTP server on the bridge that the VM's iPXE must reach. Root only;
//! needs the `ovmf` and `ipxe` packages; every wait is bounded.
//!
//! 1. A `bootMode: UEFI` VM on q35, powered on through the BMC: OVMF without secure boot, a
//!    per-VM NVRAM from the plain template. The iPXE of the NIC's option ROM (a UEFI client:
//!    architecture 7, tagged `efi64` by dnsmasq) gets the reserved address and fetches the
//!    boot URL; the script served chains an EFI binary (`snponly.efi`) over TFTP from vinod's
//!    dnsmasq, which runs: a second iPXE fetches the boot URL again.
//! 2. `SecureBootEnable: true`, then a `ForceRestart`: the running firmware is OVMF's secure
//!    build (`secure='yes'`) with the `ms` variable template, and the NVRAM was reset from it
//!    (it holds Microsoft's UEFI CA). The network boot step still works (lease, boot URL; OVMF
//!    trusts the hypervisor's option ROMs), and the same unsigned EFI binary, transferred
//!    again, is refused.
//! 3. `SecureBootEnable: false`, a `ForceRestart`: the plain firmware again, the boot URL
//!    fetched.
//! 4. Switched to Legacy, then the Vino removed: the domain and its NVRAM file are gone, a
//!    file vinod did not make in the NVRAM directory is still there.

mod common;

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::host::{
    Daemon, Reaper, config_text, plan_of, serve_boot_script, skip_reason, standalone_daemon,
    wait_for,
};
use common::libvirtd::Libvirtd;
use serde_json::{Value, json};
use vinod::config::Config;
use virt::connect::Connect;

/// The BMC's port in the libvirtd's network namespace.
const BMC_PORT: u16 = 18001;
const NVRAM_DIR: &str = "/var/lib/libvirt/qemu/nvram";
const FIRMWARE: [&str; 4] = [
    "/usr/share/OVMF/OVMF_CODE_4M.fd",
    "/usr/share/OVMF/OVMF_CODE_4M.ms.fd",
    "/usr/share/qemu/firmware/40-edk2-x86_64-secure-enrolled.json",
    "/usr/lib/ipxe/snponly.efi",
];
/// What every iPXE prints when it starts.
const BANNER: &str = "Open Source Network Boot Firmware";
/// How long one network boot may take under TCG.
const BOOT: Duration = Duration::from_secs(150);

fn manifest() -> String {
    common::host::vino_yaml("ue", "vue0", 69, 1, 1)
        .replace("memoryMiB: 256", "memoryMiB: 512")
        .replace("  nodeSelector:", "  bootMode: UEFI\n  nodeSelector:")
}

/// One request to the BMC (plain HTTP, in the BMC's namespace); returns status and body.
fn bmc(netns: &Path, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", netns.display()))
        .args(["curl", "-s", "-m", "30", "-u", "admin:pw", "-X", method])
        .args(["-w", "\n%{http_code}"]);
    if let Some(b) = body {
        cmd.args(["-H", "Content-Type: application/json", "-d", &b.to_string()]);
    }
    let out = cmd
        .arg(format!("http://127.0.0.1:{BMC_PORT}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    let status = status.trim().parse().unwrap_or(0);
    (status, serde_json::from_str(body).unwrap_or(Value::Null))
}

fn reset(netns: &Path, system: &str, kind: &str) {
    let path = format!("{system}/Actions/ComputerSystem.Reset");
    let (status, body) = bmc(netns, "POST", &path, Some(&json!({"ResetType": kind})));
    assert_eq!(status, 204, "{kind}: {body}");
}

/// The running domain's definition (`None` when it is not running).
fn live_xml(name: &str) -> Option<String> {
    let conn = Connect::open(Some(common::libvirtd::URI)).unwrap();
    let dom = conn.lookup_domain_by_name(name).ok()?;
    dom.is_active().unwrap().then(|| dom.xml_desc(0).unwrap())
}

fn inactive_xml(name: &str) -> String {
    let conn = Connect::open(Some(common::libvirtd::URI)).unwrap();
    let dom = conn.lookup_domain_by_name(name).unwrap();
    dom.xml_desc(virt::sys::VIR_DOMAIN_XML_INACTIVE).unwrap()
}

/// The text of `<tag …>…</tag>` in `xml` (first occurrence).
fn element<'a>(xml: &'a str, tag: &str) -> &'a str {
    let start = xml
        .find(&format!("<{tag}"))
        .unwrap_or_else(|| panic!("no <{tag}> in {xml}"));
    let end = xml[start..].find(&format!("</{tag}>")).unwrap() + start;
    &xml[start..end]
}

/// Whether the NVRAM file holds Microsoft's UEFI CA certificate (the `ms` template's db).
fn enrolled(nvram: &Path) -> bool {
    let bytes = std::fs::read(nvram).unwrap_or_else(|e| panic!("{}: {e}", nvram.display()));
    let needle = b"Microsoft Corporation UEFI CA 2011";
    bytes.windows(needle.len()).any(|w| w == needle)
}

/// A file the test made, removed when the test ends (also when it fails).
struct Removed(PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Lines of vinod's log that hold `needle`.
fn log_lines(log: &Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

fn console(dir: &Path) -> String {
    let bytes = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| std::fs::read(e.path()).unwrap_or_default())
        .next()
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Polls `cond` for at most [`BOOT`]; when it does not hold by then, fails showing the VM's
/// console and dnsmasq's lines of vinod's log.
fn watch(what: &str, log: &Path, console_dir: &Path, mut cond: impl FnMut() -> bool) {
    let began = Instant::now();
    while !cond() {
        if began.elapsed() > BOOT {
            let log = std::fs::read_to_string(log).unwrap_or_default();
            let dnsmasq: Vec<&str> = log.lines().filter(|l| l.contains("dnsmasq")).collect();
            panic!(
                "{what}: not within {BOOT:?}\nconsole:\n{}\ndnsmasq:\n{}",
                console(console_dir),
                dnsmasq.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits for the VM's iPXE to fetch the boot URL from `listener`, answers with `script`;
/// returns how long it took from `began` and checks the peer is the VM's reserved address.
async fn ipxe_fetch(listener: &TcpListener, script: &str, began: Instant, ip: IpAddr) -> Duration {
    let (request, peer) = serve_boot_script(listener, script).await;
    let took = began.elapsed();
    assert!(request.starts_with("GET /boot.ipxe"), "{request}");
    assert_eq!(peer.ip(), ip, "the VM did not use its reserved address");
    took
}

#[tokio::test]
async fn uefi_vm_network_boots_and_boots_under_secure_boot() {
    if let Some(why) = skip_reason() {
        return common::prereq::skip(why);
    }
    if let Some(missing) = FIRMWARE.iter().find(|f| !Path::new(f).exists()) {
        return common::prereq::skip(format!("{missing} is missing (packages ovmf, ipxe)"));
    }
    let Some(h) = Libvirtd::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let _reaper = Reaper(tmp.path().to_path_buf());
    let pool = format!("vinod-ue-{}", std::process::id());
    h.track_pool(&pool);
    let netns = h
        .netns()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/proc/self/ns/net"));
    let text = config_text(
        tmp.path(),
        h.uri(),
        &pool,
        "tftp_root = \"/usr/lib/ipxe\"\nipxe_boot_url = \"http://{bridge_ip}:8080/boot.ipxe\"",
    )
    .replace(
        "domain_type = \"qemu\"",
        "domain_type = \"qemu\"\nmachine = \"q35\"",
    )
    .replace(
        "advertise_address = \"192.0.2.10\"",
        &format!("advertise_address = \"127.0.0.1\"\nport = {BMC_PORT}\ntls = false"),
    );
    let config_path = tmp.path().join("vinod.toml");
    std::fs::write(&config_path, &text).unwrap();
    let manifest_path = tmp.path().join("vino.yaml");
    std::fs::write(&manifest_path, manifest()).unwrap();
    let plan = plan_of(
        &vinod::api::parse_vino(&manifest()).unwrap(),
        &Config::parse(&text, "test").unwrap(),
    );
    let vm = plan.vms[0].clone();
    h.track_domain(&vm.name);
    let (mac, ip) = (vm.nics[0].mac.to_string(), vm.nics[0].ip);
    let bridge_ip = plan.claims["pxe"].addresses["bridge"];
    let system = format!("/redfish/v1/Systems/{}", vm.name);
    let log = tmp.path().join("vinod.log");
    let daemon_log = std::fs::File::create(&log).unwrap();
    let _daemon = Daemon(
        standalone_daemon(&netns, &config_path, &manifest_path)
            .stdout(daemon_log.try_clone().unwrap())
            .stderr(daemon_log)
            .spawn()
            .unwrap(),
    );
    let state = tmp.path().join("state/standalone/status.yaml");
    wait_for("the VM ready", Duration::from_secs(90), || {
        std::fs::read_to_string(&state).is_ok_and(|s| s.contains("vmsReady: 1"))
    });
    // A file vinod did not make, beside the NVRAM files.
    std::fs::create_dir_all(NVRAM_DIR).unwrap();
    let foreign = Path::new(NVRAM_DIR).join(format!("not-vinods-{}.fd", std::process::id()));
    std::fs::write(&foreign, b"kept").unwrap();
    let _foreign_gone = Removed(foreign.clone());
    let console_dir = tmp.path().join("console");
    let listener = common::cluster::listen_in(&netns, SocketAddr::from((bridge_ip, 8080)));
    let tftp_sent = format!("sent /usr/lib/ipxe/snponly.efi to {ip}");

    // 1. Plain UEFI: the PXE client is the firmware's, iPXE comes over TFTP.
    let (status, doc) = bmc(&netns, "GET", &system, None);
    assert_eq!(status, 200, "{doc}");
    assert_eq!(doc["Boot"]["BootSourceOverrideMode"], "UEFI");
    assert_eq!(doc["BiosVersion"], "OVMF");
    let chain = format!("#!ipxe\nchain tftp://{bridge_ip}/snponly.efi\n");
    let idle = "#!ipxe\nsleep 600\n";
    let began = Instant::now();
    reset(&netns, &system, "On");
    let took = ipxe_fetch(&listener, &chain, began, IpAddr::V4(ip)).await;
    println!("UEFI power-on to iPXE's fetch of the boot URL: {took:.1?}");
    let took = ipxe_fetch(&listener, idle, began, IpAddr::V4(ip)).await;
    println!("… to the fetch by the iPXE chained over TFTP: {took:.1?}");
    assert_eq!(
        log_lines(&log, &tftp_sent),
        1,
        "one TFTP transfer of snponly.efi"
    );
    let c = console(&console_dir);
    assert_eq!(
        c.matches(BANNER).count(),
        2,
        "the option ROM's iPXE, then the chained one:\n{c}"
    );
    assert!(
        log_lines(&log, "tags: vinod, known, ipxe, efi64") > 0,
        "no UEFI client seen by dnsmasq"
    );
    let live = live_xml(&vm.name).expect("running");
    let os = element(&live, "os");
    assert!(
        os.contains(">/usr/share/OVMF/OVMF_CODE_4M.fd</loader>"),
        "{os}"
    );
    assert!(!os.contains("secure='yes'"), "{os}");
    assert!(
        os.contains("template='/usr/share/OVMF/OVMF_VARS_4M.fd'"),
        "{os}"
    );
    let nvram = PathBuf::from(format!("{NVRAM_DIR}/{}_VARS.fd", vm.name));
    assert!(
        os.contains(&format!(">{}</nvram>", nvram.display())),
        "not a per-VM NVRAM: {os}"
    );
    assert!(!enrolled(&nvram), "keys in the plain NVRAM");
    let leases = std::fs::read_to_string(tmp.path().join("state/dnsmasq/vue0.leases")).unwrap();
    assert!(leases.contains(&format!("{mac} {ip}")), "{leases}");
    let c = console(&console_dir);
    assert!(c.contains("iPXE") && c.contains("boot.ipxe"), "{c}");
    let (_, sb) = bmc(&netns, "GET", &format!("{system}/SecureBoot"), None);
    assert_eq!(
        (&sb["SecureBootEnable"], &sb["SecureBootCurrentBoot"]),
        (&json!(false), &json!("Disabled"))
    );

    // 2. Secure boot on: applied by the next boot through the BMC.
    let (status, sb) = bmc(
        &netns,
        "PATCH",
        &format!("{system}/SecureBoot"),
        Some(&json!({"SecureBootEnable": true})),
    );
    assert_eq!(status, 200, "{sb}");
    let config = inactive_xml(&vm.name);
    assert!(
        config.contains("<feature enabled='yes' name='secure-boot'/>")
            && config.contains("<smm state='on'/>"),
        "{config}"
    );
    let began = Instant::now();
    reset(&netns, &system, "ForceRestart");
    let live = live_xml(&vm.name).expect("running");
    let os = element(&live, "os");
    assert!(
        os.contains("secure='yes'") && os.contains(">/usr/share/OVMF/OVMF_CODE_4M.ms.fd</loader>"),
        "{os}"
    );
    assert!(
        os.contains("template='/usr/share/OVMF/OVMF_VARS_4M.ms.fd'"),
        "{os}"
    );
    assert!(
        os.contains(&format!(">{}</nvram>", nvram.display())),
        "{os}"
    );
    assert!(
        enrolled(&nvram),
        "the NVRAM was not reset from the enrolled-keys template"
    );
    let (_, sb) = bmc(&netns, "GET", &format!("{system}/SecureBoot"), None);
    assert_eq!(sb["SecureBootCurrentBoot"], "Enabled", "{sb}");
    let took = ipxe_fetch(&listener, &chain, began, IpAddr::V4(ip)).await;
    println!("secure boot: power-on to iPXE's fetch of the boot URL: {took:.1?}");
    watch(
        "the second TFTP transfer of snponly.efi",
        &log,
        &console_dir,
        || log_lines(&log, &tftp_sent) == 2,
    );
    watch("the unsigned binary refused", &log, &console_dir, || {
        console(&console_dir).contains("Could not boot")
    });
    println!(
        "secure boot: refusal on the console after {:.1?}",
        began.elapsed()
    );
    let c = console(&console_dir);
    let refusal = c.lines().find(|l| l.contains("Could not boot")).unwrap();
    // iPXE's report of the firmware's LoadImage failing; the same file ran in step 1.
    println!("secure boot: the console says {:?}", refusal.trim());
    assert!(c.contains("snponly.efi"), "{c}");
    assert_eq!(c.matches(BANNER).count(), 1, "a second iPXE ran:\n{c}");

    // 3. Secure boot off again: iPXE runs.
    let (status, sb) = bmc(
        &netns,
        "PATCH",
        &format!("{system}/SecureBoot"),
        Some(&json!({"SecureBootEnable": false})),
    );
    assert_eq!(status, 200, "{sb}");
    let began = Instant::now();
    reset(&netns, &system, "ForceRestart");
    let took = ipxe_fetch(&listener, idle, began, IpAddr::V4(ip)).await;
    println!("secure boot off: power-on to iPXE's fetch: {took:.1?}");
    let live = live_xml(&vm.name).expect("running");
    assert!(!element(&live, "os").contains("secure='yes'"));
    reset(&netns, &system, "ForceOff");

    // 4. The Vino goes: so do the domain and its NVRAM, also after a switch to Legacy (the
    // definition no longer names the NVRAM), and nothing else.
    let legacy = json!({"Boot": {"BootSourceOverrideMode": "Legacy"}});
    let (status, doc) = bmc(&netns, "PATCH", &system, Some(&legacy));
    assert_eq!(status, 200, "{doc}");
    assert!(!inactive_xml(&vm.name).contains("efi"), "still UEFI");
    assert!(nvram.exists());
    std::fs::write(&manifest_path, "").unwrap();
    wait_for("the domain gone", Duration::from_secs(90), || {
        Connect::open(Some(common::libvirtd::URI))
            .unwrap()
            .lookup_domain_by_name(&vm.name)
            .is_err()
    });
    assert!(!nvram.exists(), "{} left behind", nvram.display());
    assert_eq!(std::fs::read(&foreign).unwrap(), b"kept");
}
