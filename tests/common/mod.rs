//! Helpers shared by the integration tests.

// Each test binary compiles this module and uses only part of it.
#![allow(dead_code)]

pub mod cluster;
pub mod host;
pub mod kube_env;
pub mod libvirtd;
pub mod python;
pub mod secret;
pub mod sim;
