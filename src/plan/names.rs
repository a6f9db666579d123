//! Names of everything vinod creates for a VM. Every name includes the Vino, so two Vinos on
//! one host never collide, and is bounded to what Kubernetes and Linux accept.

pub use crate::hash::{content_hash, short_hash};
use crate::hash::{digest16, hex};
use crate::value::syntax::label_value_error;

/// Longest BareMetalHost name, leaving room for the `-network-data` Secret suffix within 253.
pub const MAX_BMH_NAME: usize = 240;

/// Identity of one VM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VmNames {
    /// libvirt domain name and Redfish System id: `<namespace>.<vino>.<set>-<index>`.
    /// Namespaces and set names contain no dots, so the name is unambiguous.
    pub domain: String,
    /// BareMetalHost name: `<vino>-<node>-<set>-<index>` (in the Vino's namespace).
    pub bmh: String,
    /// Host name handed out by DHCP: `<set>-<index>`.
    pub hostname: String,
    /// Stable UUID from namespace, Vino, node, set and index.
    pub uuid: String,
}

/// Names for VM `index` of `set` of Vino `namespace/vino` on `node`.
pub fn vm_names(namespace: &str, vino: &str, node: &str, set: &str, index: u32) -> VmNames {
    let hostname = format!("{set}-{index}");
    VmNames {
        domain: format!("{namespace}.{vino}.{hostname}"),
        bmh: bounded(&format!("{vino}-{node}-{hostname}"), MAX_BMH_NAME),
        uuid: uuid_from(&format!("vinod/{namespace}/{vino}/{node}/{hostname}")),
        hostname,
    }
}

/// Name of a BareMetalHost's own credentials Secret (earlier versions published one per
/// host; a host that still points at its own keeps it).
pub fn credentials_secret(bmh: &str) -> String {
    format!("{bmh}-credentials")
}

/// Name of the credentials Secret that every BareMetalHost of Vino `vino` on `node` shares:
/// `<vino>.<node>.credentials`. The credentials are the Vino's, so one Secret per host and
/// Vino serves all its VMs. `None` when that name would exceed 253 characters: those hosts
/// keep one Secret each ([`credentials_secret`]). The dots keep the name apart from every
/// per-host name (which end in `-credentials`), and the admission policy can tie the node in
/// it to the writer.
pub fn shared_credentials_secret(vino: &str, node: &str) -> Option<String> {
    let name = format!("{vino}.{node}.credentials");
    (name.len() <= 253).then_some(name)
}

/// Name of the BareMetalHost's network-data Secret.
pub fn network_data_secret(bmh: &str) -> String {
    format!("{bmh}-network-data")
}

/// Name of a VM's volume for `disk` (`root` for the flavor's root disk).
pub fn volume(domain: &str, disk: &str) -> String {
    format!("{domain}-{disk}.qcow2")
}

/// `name` if it is at most `max` bytes, else a prefix plus a hash of the whole name.
pub fn bounded(name: &str, max: usize) -> String {
    if name.len() <= max {
        return name.to_string();
    }
    let hash = short_hash(name);
    let keep = max.saturating_sub(hash.len() + 1);
    let prefix = name[..floor_char_boundary(name, keep)].trim_end_matches(['-', '.']);
    format!("{prefix}-{hash}")
}

/// `value` if it is a valid label value, else a bounded, hashed form that is.
pub fn label_value(value: &str) -> String {
    if label_value_error(value).is_none() {
        return value.to_string();
    }
    let cleaned: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect();
    let b = bounded(cleaned.trim_matches(['-', '_', '.']), 63);
    if label_value_error(&b).is_none() {
        b
    } else {
        short_hash(value)
    }
}

fn uuid_from(seed: &str) -> String {
    let mut b = digest16(seed);
    b[6] = (b[6] & 0x0f) | 0x80; // version 8: custom, name-derived
    b[8] = (b[8] & 0x3f) | 0x80; // RFC 4122 variant
    let h = hex(&b);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_namespaced_and_stable() {
        let a = vm_names("default", "vino-test-cr", "node01", "worker", 1);
        assert_eq!(a.domain, "default.vino-test-cr.worker-1");
        assert_eq!(a.bmh, "vino-test-cr-node01-worker-1");
        assert_eq!(
            a,
            vm_names("default", "vino-test-cr", "node01", "worker", 1)
        );
        assert_ne!(
            a.uuid,
            vm_names("default", "vino-test-cr", "node02", "worker", 1).uuid
        );
        assert_ne!(
            a.domain,
            vm_names("other", "vino-test-cr", "node01", "worker", 1).domain
        );
        assert_eq!(a.uuid.len(), 36);
        assert_eq!(&a.uuid[14..15], "8");
    }

    #[test]
    fn long_names_are_bounded() {
        let long = "v".repeat(200);
        let n = vm_names("ns", &long, &"n".repeat(100), "worker", 0);
        assert!(n.bmh.len() <= MAX_BMH_NAME);
        assert!(network_data_secret(&n.bmh).len() <= 253);
        assert_ne!(
            n.bmh,
            vm_names("ns", &long, &"n".repeat(100), "worker", 1).bmh
        );
        assert_eq!(label_value("node01"), "node01");
        let lv = label_value(&"a.b".repeat(40));
        assert!(lv.len() <= 63 && label_value_error(&lv).is_none());
    }
}
