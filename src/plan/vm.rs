//! One VM of a Vino on this host, before rendering.

use super::names::VmNames;
use crate::api::vino::NodeSet;

/// One VM before rendering.
pub(super) struct Vm<'a> {
    pub(super) set: &'a NodeSet,
    pub(super) index: u32,
    pub(super) names: VmNames,
    pub(super) flavor: String,
}
