//! Pure renderers: libvirt domain XML, dnsmasq configuration, network data, and the
//! Kubernetes objects vinod publishes. Each is a deterministic function of its input.

pub mod dnsmasq;
pub mod domain;
pub mod network_data;
pub mod objects;
pub mod policy_bindings;

/// Escapes text for an XML attribute or element.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            _ => out.push(c),
        }
    }
    out
}
