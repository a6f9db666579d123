//! OpenStack Ironic (the pinned release of `scripts/ironic-venv.sh`, `redfish` hardware type)
//! drives vinod's VMs through vinod's Redfish BMC: `vinod run --standalone` builds three VMs on
//! a real libvirtd (TCG) and publishes their BareMetalHosts; each is enrolled in Ironic from
//! what was published (address, System id, credentials), validated, managed and inspected
//! with the `redfish` inspect interface, which must find the flavor's vCPUs, memory and disk,
//! the architecture and the boot NIC's MAC; the VM of a flavor `vinod plan` warns about (under
//! 1 GiB of memory) fails inspection as the warning says. Then power on, off and reboot, boot device once
//! and persistent, boot mode, secure boot on and off on UEFI, virtual media attach and detach, a BIOS setting applied and the
//! BIOS reset by manual clean steps, each read back from Ironic and from libvirt. Ironic's log may hold no
//! ERROR line. Root only; every wait is bounded.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use common::host::{Daemon, Reaper, config_text, plan_of, skip_reason, standalone_daemon};
use common::ironic::{self, Ironic};
use common::libvirtd::Libvirtd;
use serde_json::{Value, json};
use vinod::config::Config;
use virt::connect::Connect;

/// The BMC's port in the test's network namespace.
const BMC_PORT: u16 = 18000;
/// The flavors: a whole number of GiB of memory and a disk above Ironic's 4 GiB minimum; and
/// one Ironic cannot inspect.
const FLAVORS: &str = "small: {vcpus: 2, memoryMiB: 1024, rootDiskGiB: 8}\n    tiny: {vcpus: 1, memoryMiB: 768, rootDiskGiB: 2}";
/// The node set of the `tiny` flavor.
const TINY_SET: &str = "- name: tiny\n      count: 1\n      flavor: tiny\n      networkInterfaces: [{name: eth0, network: pxe}]\n  bmcCredentials:";
const WAIT: Duration = Duration::from_secs(120);

/// What the daemon published for one VM.
struct Published {
    name: String,
    address: String,
    system: String,
    boot_mac: String,
    username: String,
    password: String,
}

fn manifest() -> String {
    common::host::vino_yaml("ir", "vir0", 67, 2, 2)
        .replace("small: {vcpus: 2, memoryMiB: 256, rootDiskGiB: 1}", FLAVORS)
        .replace("  bmcCredentials:", &format!("    {TINY_SET}"))
}

fn yaml_docs(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

/// The BareMetalHosts of `lab/ir` with their credentials, as metal3 would read them.
fn published(state: &Path) -> Vec<Published> {
    let dir = state.join("standalone/lab/ir");
    let secrets = yaml_docs(&dir.join("secrets.yaml"));
    let secret_field = |name: &str, field: &str| -> String {
        let s = secrets
            .iter()
            .find(|s| s["metadata"]["name"] == name)
            .unwrap_or_else(|| panic!("no Secret {name}"));
        if let Some(v) = s["stringData"][field].as_str() {
            return v.to_string();
        }
        let b = base64::engine::general_purpose::STANDARD
            .decode(s["data"][field].as_str().expect("secret field"))
            .unwrap();
        String::from_utf8(b).unwrap()
    };
    yaml_docs(&dir.join("baremetalhosts.yaml"))
        .iter()
        .map(|h| {
            let url = h["spec"]["bmc"]["address"].as_str().unwrap();
            let url = url.strip_prefix("redfish+").expect("a redfish address");
            let at = url.find("/redfish/").unwrap();
            let credentials = h["spec"]["bmc"]["credentialsName"].as_str().unwrap();
            Published {
                name: h["metadata"]["name"].as_str().unwrap().to_string(),
                address: url[..at].to_string(),
                system: url[at..].to_string(),
                boot_mac: h["spec"]["bootMACAddress"].as_str().unwrap().to_string(),
                username: secret_field(credentials, "username"),
                password: secret_field(credentials, "password"),
            }
        })
        .collect()
}

fn status_ready(state: &Path, total: u32) -> bool {
    let text = std::fs::read_to_string(state.join("standalone/status.yaml")).unwrap_or_default();
    text.contains("phase: Ready") && text.contains(&format!("vmsReady: {total}"))
}

/// The domain's persistent definition and whether it runs.
fn domain(name: &str) -> (String, bool) {
    let conn = Connect::open(Some(common::libvirtd::URI)).unwrap();
    let dom = conn.lookup_domain_by_name(name).unwrap();
    let xml = dom.xml_desc(virt::sys::VIR_DOMAIN_XML_INACTIVE).unwrap();
    (xml, dom.is_active().unwrap())
}

/// The device of the definition's first `<boot dev=…>`.
fn first_boot(name: &str) -> String {
    let (xml, _) = domain(name);
    let at = xml.find("<boot dev=").expect("a boot element");
    xml[at + 11..]
        .split(['\'', '"'])
        .next()
        .unwrap()
        .to_string()
}

/// Whether the array `list` has an object whose `key` is `value`.
fn lists(list: &Value, key: &str, value: &str) -> bool {
    list.as_array()
        .is_some_and(|l| l.iter().any(|x| x[key] == value))
}

fn enroll(ironic: &Ironic, vm: &Published) -> String {
    let node = ironic.expect(
        "POST",
        "/v1/nodes",
        Some(&json!({
            "name": vm.name,
            "driver": "redfish",
            "driver_info": {
                "redfish_address": vm.address,
                "redfish_system_id": vm.system,
                "redfish_username": vm.username,
                "redfish_password": vm.password,
                "redfish_verify_ca": false,
            },
            "inspect_interface": "redfish",
            "bios_interface": "redfish",
            "boot_interface": "redfish-virtual-media",
        })),
        201,
    );
    node["uuid"].as_str().unwrap().to_string()
}

fn provision(ironic: &Ironic, node: &str, body: Value, then: &str) -> Value {
    ironic.expect(
        "PUT",
        &format!("/v1/nodes/{node}/states/provision"),
        Some(&body),
        202,
    );
    ironic.settled(node, then, Duration::from_secs(300))
}

fn power(ironic: &Ironic, node: &str, target: &str, then: &str, domain_runs: bool, vm: &str) {
    ironic.expect(
        "PUT",
        &format!("/v1/nodes/{node}/states/power"),
        Some(&json!({ "target": target })),
        202,
    );
    let n = ironic.settled(node, "manageable", WAIT);
    assert_eq!(n["power_state"], then, "after {target}");
    assert_eq!(domain(vm).1, domain_runs, "libvirt after {target}");
}

/// Secure boot through Ironic's API on a UEFI node: asked for in the definition, in force in
/// the running firmware after Ironic's power-on, and off again.
fn secure_boot_on_and_off(ironic: &Ironic, node: &str, vm: &str) {
    let set = |on: bool| {
        ironic.expect(
            "PUT",
            &format!("/v1/nodes/{node}/states/secure_boot"),
            Some(&json!({"target": on})),
            202,
        );
        ironic.wait_node(node, WAIT, |n| n["secure_boot"] == on);
        let config = domain(vm).0;
        let asked = config.contains("<feature enabled='yes' name='secure-boot'/>");
        assert_eq!(asked, on, "libvirt after secure boot {on}: {config}");
    };
    set(true);
    power(ironic, node, "power on", "power on", true, vm);
    let conn = Connect::open(Some(common::libvirtd::URI)).unwrap();
    let live = conn.lookup_domain_by_name(vm).unwrap().xml_desc(0).unwrap();
    assert!(
        live.contains("secure='yes'") && live.contains("OVMF_VARS_4M.ms.fd"),
        "not the enrolled-keys secure-boot firmware: {live}"
    );
    power(ironic, node, "power off", "power off", false, vm);
    set(false);
}

fn harness() -> Option<(PathBuf, Libvirtd)> {
    if let Some(why) = skip_reason() {
        common::prereq::skip(why);
        return None;
    }
    let venv = match ironic::venv() {
        Ok(v) => v,
        Err(why) => {
            common::prereq::skip(why);
            return None;
        }
    };
    Some((venv, Libvirtd::start()?))
}

#[test]
fn ironic_inspects_and_drives_vinod_vms() {
    let Some((venv, h)) = harness() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let _reaper = Reaper(tmp.path().to_path_buf());
    let pool = format!("vinod-ir-{}", std::process::id());
    h.track_pool(&pool);
    for name in ["worker-0", "worker-1", "tiny-0"] {
        h.track_domain(&format!("lab.ir.{name}"));
    }
    let netns = h
        .netns()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/proc/self/ns/net"));
    let text = config_text(tmp.path(), h.uri(), &pool, "").replace(
        "advertise_address = \"192.0.2.10\"",
        &format!(
            "advertise_address = \"127.0.0.1\"\nport = {BMC_PORT}\nmedia_allow = [\"127.0.0.1/32\"]"
        ),
    )
    // Secure boot needs q35.
    .replace(
        "domain_type = \"qemu\"",
        "domain_type = \"qemu\"\nmachine = \"q35\"",
    );
    let config_path = tmp.path().join("vinod.toml");
    std::fs::write(&config_path, &text).unwrap();
    let manifest_path = tmp.path().join("vino.yaml");
    std::fs::write(&manifest_path, manifest()).unwrap();
    let vino = vinod::api::parse_vino(&manifest()).unwrap();
    let plan = plan_of(&vino, &Config::parse(&text, "test").unwrap());
    let state = tmp.path().join("state");
    let daemon_log = std::fs::File::create(tmp.path().join("vinod.log")).unwrap();
    let _daemon = Daemon(
        standalone_daemon(&netns, &config_path, &manifest_path)
            .stdout(daemon_log.try_clone().unwrap())
            .stderr(daemon_log)
            .spawn()
            .unwrap(),
    );
    common::host::wait_for("3 VMs ready", Duration::from_secs(90), || {
        status_ready(&state, 3)
    });
    let (tiny, vms): (Vec<Published>, Vec<Published>) = published(&state)
        .into_iter()
        .partition(|vm| vm.system.ends_with("tiny-0"));
    assert_eq!((tiny.len(), vms.len()), (1, 2));
    let status = std::fs::read_to_string(state.join("standalone/status.yaml")).unwrap();
    for warning in [
        "memoryMiB 768 is under 1 GiB",
        "rootDiskGiB 2 is under 4 GiB",
    ] {
        assert!(
            plan.warnings.iter().any(|w| w.contains(warning)),
            "{warning}: {:?}",
            plan.warnings
        );
        assert!(
            status.contains(warning),
            "{warning} not in status.yaml:\n{status}"
        );
    }

    let mut ironic = Ironic::start(&venv, &netns, &tmp.path().join("ironic"));
    let mut nodes = Vec::new();
    for vm in &vms {
        let node = enroll(&ironic, vm);
        let checks = ironic.expect("GET", &format!("/v1/nodes/{node}/validate"), None, 200);
        for iface in ["power", "management", "inspect", "bios", "firmware"] {
            assert_eq!(checks[iface]["result"], true, "{iface}: {checks}");
        }
        provision(&ironic, &node, json!({"target": "manage"}), "manageable");
        let firmware = ironic.expect("GET", &format!("/v1/nodes/{node}/firmware"), None, 200);
        let bios = firmware["firmware"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["component"] == "bios");
        assert_eq!(bios.map(|c| &c["current_version"]), Some(&json!("SeaBIOS")));
        let n = provision(&ironic, &node, json!({"target": "inspect"}), "manageable");
        let want = plan
            .vms
            .iter()
            .find(|p| vm.system.ends_with(&p.name))
            .unwrap();
        let props = &n["properties"];
        assert_eq!(props["memory_mb"], want.memory_mib, "{props}");
        assert_eq!(props["cpu_arch"], "x86_64");
        // Ironic reports the disk in GiB less one.
        assert_eq!(props["local_gb"], 8 - 1, "{props}");
        let inventory = ironic.expect("GET", &format!("/v1/nodes/{node}/inventory"), None, 200);
        let inv = &inventory["inventory"];
        assert_eq!(inv["cpu"]["count"], want.vcpus, "{inv}");
        assert_eq!(inv["memory"]["physical_mb"], want.memory_mib);
        assert_eq!(inv["disks"][0]["size"], 8u64 << 30);
        assert_eq!(vm.boot_mac, want.nics[0].mac);
        let mac = vm.boot_mac.to_lowercase();
        assert!(
            lists(&inv["interfaces"], "mac_address", &mac),
            "boot MAC {mac} not inspected: {inv}"
        );
        let ports = ironic.expect("GET", &format!("/v1/ports?node={node}"), None, 200);
        assert!(lists(&ports["ports"], "address", &mac), "{ports}");
        nodes.push(node);
    }

    // What `vinod plan` warned about: Ironic finds no memory.
    let tiny_node = enroll(&ironic, &tiny[0]);
    provision(
        &ironic,
        &tiny_node,
        json!({"target": "manage"}),
        "manageable",
    );
    ironic.expect(
        "PUT",
        &format!("/v1/nodes/{tiny_node}/states/provision"),
        Some(&json!({"target": "inspect"})),
        202,
    );
    let failed = ironic.poll_node(&tiny_node, WAIT, |n| {
        n["provision_state"] == "inspect failed"
    });
    let error = failed["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("memory_mb"), "{error}");

    let vm = vms[0].system.rsplit('/').next().unwrap().to_string();
    let (node, vm) = (&nodes[0], &vm);
    power(&ironic, node, "power on", "power on", true, vm);
    power(&ironic, node, "rebooting", "power on", true, vm);
    power(&ironic, node, "power off", "power off", false, vm);

    let boot_device = format!("/v1/nodes/{node}/management/boot_device");
    for (device, persistent, libvirt) in [("pxe", false, "network"), ("disk", true, "hd")] {
        let body = json!({"boot_device": device, "persistent": persistent});
        ironic.expect("PUT", &boot_device, Some(&body), 204);
        assert_eq!(ironic.expect("GET", &boot_device, None, 200), body);
        assert_eq!(first_boot(vm), libvirt);
    }
    // A one-time override is consumed by the next power-on.
    let once = json!({"boot_device": "pxe", "persistent": false});
    ironic.expect("PUT", &boot_device, Some(&once), 204);
    power(&ironic, node, "power on", "power on", true, vm);
    assert_eq!(first_boot(vm), "hd");
    power(&ironic, node, "power off", "power off", false, vm);

    for mode in ["uefi", "bios"] {
        ironic.expect(
            "PUT",
            &format!("/v1/nodes/{node}/states/boot_mode"),
            Some(&json!({"target": mode})),
            202,
        );
        ironic.wait_node(node, WAIT, |n| n["boot_mode"] == mode);
        let efi =
            domain(vm).0.contains("firmware=\"efi\"") || domain(vm).0.contains("firmware='efi'");
        assert_eq!(efi, mode == "uefi", "libvirt after boot mode {mode}");
        if mode == "uefi" {
            secure_boot_on_and_off(&ironic, node, vm);
        }
    }

    let image = b"vinod virtual media test image".repeat(1000);
    std::fs::write(ironic.http_root().join("source.iso"), &image).unwrap();
    let vmedia = format!("/v1/nodes/{node}/vmedia");
    let attach = json!({
        "device_type": "cdrom",
        "image_url": format!("http://127.0.0.1:{}/source.iso", ironic::HTTP_PORT),
    });
    ironic.expect("POST", &vmedia, Some(&attach), 204);
    ironic.settled(node, "manageable", WAIT);
    assert!(
        domain(vm).0.contains("ua-vinod-cd"),
        "no CD drive after attach"
    );
    ironic.expect("DELETE", &vmedia, None, 204);
    ironic.settled(node, "manageable", WAIT);
    assert!(
        !domain(vm).0.contains("ua-vinod-cd"),
        "CD drive after detach"
    );

    let num_lock = || {
        let bios = ironic.expect("GET", &format!("/v1/nodes/{node}/bios/NumLock"), None, 200);
        bios["NumLock"]["value"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    let bios_step = |step: Value| {
        let steps = json!({"target": "clean", "disable_ramdisk": true, "clean_steps": [step]});
        provision(&ironic, node, steps, "manageable");
    };
    assert_eq!(num_lock(), "On");
    bios_step(json!({"interface": "bios", "step": "apply_configuration",
        "args": {"settings": [{"name": "NumLock", "value": "Off"}]}}));
    assert_eq!(num_lock(), "Off");
    bios_step(json!({"interface": "bios", "step": "factory_reset"}));
    assert_eq!(num_lock(), "On", "back to the default");
    power(&ironic, node, "power off", "power off", false, vm);

    ironic.stop();
    let log = ironic.log();
    for on in ["True", "False"] {
        let set = format!("Secure boot state for node {node} has been set to {on}");
        assert!(log.contains(&set), "Ironic's log lacks {set:?}");
    }
    for warning in log.lines().filter(|l| l.contains(" WARNING ")) {
        println!("Ironic: {warning}");
    }
    // The only errors: the failed inspection of the VM `vinod plan` warned about.
    let (expected, errors): (Vec<&str>, Vec<&str>) = log
        .lines()
        .filter(|l| l.contains(" ERROR "))
        .partition(|l| l.contains(tiny_node.as_str()));
    assert!(!expected.is_empty(), "no error for the failed inspection");
    assert!(
        errors.is_empty(),
        "ERROR lines in Ironic's log:\n{}",
        errors.join("\n")
    );
}
