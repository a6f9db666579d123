//! Helpers shared by the integration tests.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod bmc_client;
pub mod bmo;
pub mod census;
pub mod cluster;
pub mod firmware;
pub mod host;
pub mod ironic;
pub mod kube_env;
pub mod libvirtd;
pub mod log;
pub mod metal3;
pub mod prereq;
pub mod python;
pub mod secret;
pub mod sim;
