//! Value types shared by the API, IPAM and the planner, with their parsers and the syntax
//! checks Kubernetes applies to names and labels. A leaf: it depends on std only.

pub mod cpuset;
pub mod syntax;

pub use cpuset::CpuSet;
pub use syntax::Mac;
