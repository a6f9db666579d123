//! A UEFI VM of `vinod run --standalone` on a real libvirtd (TCG) network-boots and is put
//! under secure boot through vinod's BMC. Everything is observed from the real components:
//! the running domain's XML (the firmware and NVRAM libvirt selected), the NVRAM file, vinod's
//! dnsmasq (the lease, the tags of the DHCP exchange, the TFTP transfers it logs), the VM's
//! serial console and an HTTP server on the bridge that the VM's iPXE must reach. Root only;
//! needs the `ovmf` and `ipxe` packages and the signed shim and GRUB that
//! `scripts/secureboot-binaries.sh` unpacks; every wait is bounded.
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
//!    again, is refused. Then the distribution's signed chain boots under secure boot: the
//!    boot script exits, so the firmware's own PXE client asks dnsmasq, which hands a UEFI
//!    client that is not iPXE the EFI boot file (`tftp_efi_boot_file = "shimx64.efi"`);
//!    Debian's shim (signed by Microsoft's UEFI CA) runs, fetches Debian's signed GRUB over
//!    TFTP and verifies it, and GRUB fetches its configuration over TFTP and prints from it.
//! 3. `SecureBootEnable: false`, a `ForceRestart`: the plain firmware again, the boot URL
//!    fetched.
//! 4. Switched to Legacy, then the Vino removed: the domain and its NVRAM file are gone, a
//!    file vinod did not make in the NVRAM directory is still there.

mod common;

use std::net::{IpAddr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::firmware::{
    Removed, SignedChain, console, element, enrolled, inactive_xml, live_xml, log_lines, watch,
};
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
/// What the signed GRUB prints from the configuration it fetched.
const GRUB_SAYS: &str = "vinod test: signed GRUB read its configuration";

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

/// The TFTP root vinod's dnsmasq serves: iPXE's `snponly.efi`, the signed chain and GRUB's
/// configuration (`grub/grub.cfg` is where Debian's network GRUB looks).
fn tftp_root(tmp: &Path, signed: &SignedChain) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    // dnsmasq reads it after dropping its privileges.
    let open = std::fs::Permissions::from_mode(0o755);
    std::fs::set_permissions(tmp, open.clone()).unwrap();
    let root = tmp.join("tftp");
    std::fs::create_dir_all(root.join("grub")).unwrap();
    for dir in [&root, &root.join("grub")] {
        std::fs::set_permissions(dir, open.clone()).unwrap();
    }
    std::fs::copy("/usr/lib/ipxe/snponly.efi", root.join("snponly.efi")).unwrap();
    std::fs::copy(&signed.shim, root.join("shimx64.efi")).unwrap();
    std::fs::copy(&signed.grub, root.join("grubx64.efi")).unwrap();
    let config = format!("echo \"{GRUB_SAYS}\"\nsleep 600\n");
    std::fs::write(root.join("grub/grub.cfg"), config).unwrap();
    for f in ["snponly.efi", "shimx64.efi", "grubx64.efi", "grub/grub.cfg"] {
        std::fs::set_permissions(root.join(f), std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    root
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
    let signed = match SignedChain::cached() {
        Ok(chain) => chain,
        Err(why) => return common::prereq::skip(why),
    };
    let Some(h) = Libvirtd::start() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let _reaper = Reaper(tmp.path().to_path_buf());
    let tftp = tftp_root(tmp.path(), &signed);
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
        &format!(
            "tftp_root = \"{}\"\ntftp_efi_boot_file = \"shimx64.efi\"\n\
             ipxe_boot_url = \"http://{{bridge_ip}}:8080/boot.ipxe\"",
            tftp.display()
        ),
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
    let sent = |file: &str| format!("sent {}/{file} to {ip}", tftp.display());

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
        log_lines(&log, &sent("snponly.efi")),
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
        || log_lines(&log, &sent("snponly.efi")) == 2,
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

    // The distribution's signed chain: iPXE hands over to the firmware's PXE client.
    let began = Instant::now();
    reset(&netns, &system, "ForceRestart");
    ipxe_fetch(&listener, "#!ipxe\nexit\n", began, IpAddr::V4(ip)).await;
    watch("the signed GRUB's output", &log, &console_dir, || {
        console(&console_dir).contains(GRUB_SAYS)
    });
    println!(
        "secure boot: power-on to the signed GRUB's output: {:.1?} ({})",
        began.elapsed(),
        signed.versions.trim().replace('\n', ", ")
    );
    // The firmware's PXE client may read shim twice (once for its size).
    for file in ["shimx64.efi", "grubx64.efi", "grub/grub.cfg"] {
        assert!(
            log_lines(&log, &sent(file)) > 0,
            "no TFTP transfer of {file}"
        );
    }
    assert!(
        log_lines(&log, "tags: vinod, known, efi64") > 0,
        "the firmware's own PXE client did not ask dnsmasq"
    );
    let c = console(&console_dir);
    assert!(c.contains("NBP filename is shimx64.efi"), "{c}");
    // shim's own words: it ran and fetched GRUB.
    assert!(c.contains("Fetching Netboot Image grubx64.efi"), "{c}");
    let live = live_xml(&vm.name).expect("running");
    assert!(element(&live, "os").contains("secure='yes'"), "{live}");

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
