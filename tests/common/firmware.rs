//! What the UEFI tests observe of a VM's firmware and boot: the running and the stored domain
//! definition, the NVRAM file, the serial console, vinod's log of dnsmasq; and the signed boot
//! chain of the distribution (`scripts/secureboot-binaries.sh`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use virt::connect::Connect;

/// How long one network boot may take under TCG.
pub const BOOT: Duration = Duration::from_secs(150);

/// The running domain's definition (`None` when it is not running).
pub fn live_xml(name: &str) -> Option<String> {
    let conn = Connect::open(Some(super::libvirtd::URI)).unwrap();
    let dom = conn.lookup_domain_by_name(name).ok()?;
    dom.is_active().unwrap().then(|| dom.xml_desc(0).unwrap())
}

/// The domain's stored definition (what the next start uses).
pub fn inactive_xml(name: &str) -> String {
    let conn = Connect::open(Some(super::libvirtd::URI)).unwrap();
    let dom = conn.lookup_domain_by_name(name).unwrap();
    dom.xml_desc(virt::sys::VIR_DOMAIN_XML_INACTIVE).unwrap()
}

/// The text of `<tag …>…</tag>` in `xml` (first occurrence).
pub fn element<'a>(xml: &'a str, tag: &str) -> &'a str {
    let start = xml
        .find(&format!("<{tag}"))
        .unwrap_or_else(|| panic!("no <{tag}> in {xml}"));
    let end = xml[start..].find(&format!("</{tag}>")).unwrap() + start;
    &xml[start..end]
}

/// Whether the NVRAM file holds Microsoft's UEFI CA certificate (the `ms` template's db).
pub fn enrolled(nvram: &Path) -> bool {
    let bytes = std::fs::read(nvram).unwrap_or_else(|e| panic!("{}: {e}", nvram.display()));
    let needle = b"Microsoft Corporation UEFI CA 2011";
    bytes.windows(needle.len()).any(|w| w == needle)
}

/// A file the test made, removed when the test ends (also when it fails).
pub struct Removed(pub PathBuf);

impl Drop for Removed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Lines of vinod's log that hold `needle`.
pub fn log_lines(log: &Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(needle))
        .count()
}

/// The VM's serial console since its last start (the one file libvirt writes in `dir`).
pub fn console(dir: &Path) -> String {
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
pub fn watch(what: &str, log: &Path, console_dir: &Path, mut cond: impl FnMut() -> bool) {
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

/// The distribution's signed network boot chain: shim signed by Microsoft's UEFI CA (which
/// OVMF's `ms` variable template enrolls) and GRUB signed by the distribution's key (which
/// shim holds).
pub struct SignedChain {
    /// `shimx64.efi`.
    pub shim: PathBuf,
    /// The network GRUB, under the name shim loads: `grubx64.efi`.
    pub grub: PathBuf,
    /// The packages and versions they came from.
    pub versions: String,
}

impl SignedChain {
    /// The chain `scripts/secureboot-binaries.sh` unpacked (into `VINOD_SECUREBOOT_DIR`, by
    /// default `/var/cache/vinod-test/secureboot`), or why it is missing.
    pub fn cached() -> Result<SignedChain, String> {
        let dir = std::env::var_os("VINOD_SECUREBOOT_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("/var/cache/vinod-test/secureboot"));
        let chain = SignedChain {
            shim: dir.join("shimx64.efi"),
            grub: dir.join("grubx64.efi"),
            versions: std::fs::read_to_string(dir.join("VERSIONS")).unwrap_or_default(),
        };
        if let Some(f) = [&chain.shim, &chain.grub].into_iter().find(|f| !f.exists()) {
            return Err(format!(
                "{} is missing (run scripts/secureboot-binaries.sh)",
                f.display()
            ));
        }
        Ok(chain)
    }
}
