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
