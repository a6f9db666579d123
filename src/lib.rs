//! vinod: one daemon per bare-metal host that builds the VMs of the `Vino` resources selecting
//! the host, serves their Redfish BMC, and publishes them to metal3 as BareMetalHosts.
//!
//! The pure core (`value`, `api`, `ipam`, `state`, `plan`, `render`) computes what the host should look
//! like; adapters observe and change the host; `kube` shares claims, publishes and reports
//! through the API server.

#![deny(unsafe_code)]

pub mod api;
pub mod config;
pub mod daemon;
pub mod hash;
pub mod host;
pub mod ipam;
pub mod kube;
pub mod plan;
pub mod reconcile;
pub mod redfish;
pub mod render;
pub mod state;
pub mod value;

/// `e` and each of its sources, joined by `: ` (each cause once: error messages here never
/// repeat their source).
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn error_chain_names_every_cause_once() {
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(super::error_chain(&e), "outer: inner");
    }
}
