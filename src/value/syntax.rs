//! Small syntax checks and value types shared by validation and planning.

use std::fmt;
use std::str::FromStr;

/// A 48-bit Ethernet MAC address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(u64);

impl Mac {
    /// The largest MAC value.
    pub const MAX: u64 = 0xffff_ffff_ffff;

    /// The MAC with this 48-bit value, if it fits.
    pub fn from_u64(value: u64) -> Option<Mac> {
        (value <= Self::MAX).then_some(Mac(value))
    }

    /// The 48-bit value.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// Whether the group (multicast) bit is clear, as a NIC's own address requires.
    pub fn is_unicast(self) -> bool {
        (self.0 >> 40) & 1 == 0
    }

    /// This MAC plus `offset`, if that stays within 48 bits.
    pub fn offset(self, offset: u64) -> Option<Mac> {
        self.0.checked_add(offset).and_then(Mac::from_u64)
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0.to_be_bytes();
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[2], b[3], b[4], b[5], b[6], b[7]
        )
    }
}

impl FromStr for Mac {
    type Err = String;

    /// Parses exactly six colon-separated hex octets.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split(':').collect();
        if parts.len() != 6 || parts.iter().any(|p| p.len() != 2) {
            return Err(format!(
                "{s:?} is not a MAC address of the form xx:xx:xx:xx:xx:xx"
            ));
        }
        let mut value = 0u64;
        for p in parts {
            let octet = u8::from_str_radix(p, 16)
                .map_err(|_| format!("{s:?} is not a MAC address: {p:?} is not a hex octet"))?;
            value = (value << 8) | u64::from(octet);
        }
        Ok(Mac(value))
    }
}

/// Whether `s` is an RFC 1123 DNS label: 1-63 lowercase alphanumerics or '-', alphanumeric at
/// both ends.
pub fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Whether `s` is an RFC 1123 DNS subdomain (a Kubernetes object name).
pub fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

/// Why `key` is not a valid Kubernetes label key, if it is not.
pub fn label_key_error(key: &str) -> Option<String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, key),
    };
    if let Some(p) = prefix
        && !is_dns_subdomain(p)
    {
        return Some(format!(
            "label key {key:?}: prefix {p:?} is not a DNS subdomain"
        ));
    }
    if !is_label_name(name) {
        return Some(format!(
            "label key {key:?}: name part must be 1-63 alphanumerics, '-', '_' or '.', \
             starting and ending with an alphanumeric"
        ));
    }
    None
}

/// Why `value` is not a valid Kubernetes label value, if it is not.
pub fn label_value_error(value: &str) -> Option<String> {
    (!value.is_empty() && !is_label_name(value)).then(|| {
        format!(
            "label value {value:?} must be at most 63 alphanumerics, '-', '_' or '.', \
             starting and ending with an alphanumeric"
        )
    })
}

fn is_label_name(s: &str) -> bool {
    let alnum = |c: Option<char>| c.is_some_and(|c| c.is_ascii_alphanumeric());
    !s.is_empty()
        && s.len() <= 63
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && alnum(s.chars().next())
        && alnum(s.chars().last())
}

/// Whether `s` is a usable Linux interface name (1-15 bytes, no '/', ':' or whitespace).
pub fn is_ifname(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 15
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Why `path` is not a plain relative URL path (as in `http://host:port/<path>`), or `None`.
pub fn url_path_error(path: &str) -> Option<String> {
    if path.is_empty() || path.len() > 255 {
        return Some("must be 1-255 characters".into());
    }
    if path.starts_with('/') {
        return Some("must be relative (no leading '/')".into());
    }
    if path
        .chars()
        .any(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/')))
    {
        return Some("may hold only letters, digits, '.', '_', '-' and '/'".into());
    }
    if path
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Some("has an empty, '.' or '..' segment".into());
    }
    None
}

/// Whether `s` is a host name or an IP address usable in a URL.
pub fn is_host(s: &str) -> bool {
    s.parse::<std::net::IpAddr>().is_ok()
        || (s.len() <= 253
            && s.split('.').all(|p| {
                !p.is_empty()
                    && p.len() <= 63
                    && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    && !p.starts_with('-')
                    && !p.ends_with('-')
            }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_round_trip_and_bits() {
        let m: Mac = "52:54:00:06:00:0A".parse().unwrap();
        assert_eq!(m.to_string(), "52:54:00:06:00:0a");
        assert!(m.is_unicast());
        assert!(!"01:00:5e:00:00:01".parse::<Mac>().unwrap().is_unicast());
        assert_eq!(m.offset(6).unwrap().to_string(), "52:54:00:06:00:10");
        assert!(
            "ff:ff:ff:ff:ff:ff"
                .parse::<Mac>()
                .unwrap()
                .offset(1)
                .is_none()
        );
        for bad in [
            "",
            "52:54:00:06:00",
            "52:54:00:06:00:00:01",
            "5:54:00:06:00:00",
            "zz:54:00:06:00:00",
            "52-54-00-06-00-00",
        ] {
            assert!(bad.parse::<Mac>().is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn labels() {
        assert!(label_key_error("airshipit.org/rack").is_none());
        assert!(label_key_error("beta.kubernetes.io/os").is_none());
        assert!(label_key_error("Bad_Prefix/x").is_some());
        assert!(label_key_error("a/-x").is_some());
        assert!(label_value_error("").is_none());
        assert!(label_value_error("r1").is_none());
        assert!(label_value_error(&"x".repeat(64)).is_some());
        assert!(label_value_error("a b").is_some());
    }

    #[test]
    fn names() {
        assert!(is_dns_label("worker-1"));
        assert!(!is_dns_label("Worker"));
        assert!(!is_dns_label("-a"));
        assert!(is_dns_subdomain("vino.test-cr"));
        assert!(is_ifname("vm-infra-bridge"));
        assert!(!is_ifname("vm-infra-bridge0"));
        assert!(!is_ifname("a/b"));
        assert!(is_host("10.0.0.1") && is_host("ironic.example") && !is_host("a_b"));
    }
}
