//! The API vinod reads (`Vino`) and writes (`BareMetalHost`), with the validation that
//! mirrors the CRD's OpenAPI and CEL rules. Pure data and functions: no I/O.

/// Expands to a CEL expression that turns the IPv4 address string at `$field` into an int,
/// so that CRD rules can order two addresses.
macro_rules! ipv4_int {
    ($field:literal) => {
        concat!(
            "(int(",
            $field,
            ".split('.')[0]) * 16777216 + int(",
            $field,
            ".split('.')[1]) * 65536 + int(",
            $field,
            ".split('.')[2]) * 256 + int(",
            $field,
            ".split('.')[3]))"
        )
    };
}

pub mod bmh;
pub mod claim;
pub mod crd;
pub mod flavor;
pub mod hardware_data;
pub mod host_use;
pub mod metal3_options;
pub mod network;
pub mod pool_claim;
pub mod status;
pub mod validate;
pub mod vino;
pub mod vino_node;
mod yaml_bounds;

use std::fmt;

pub use status::{NodePhase, NodeStatus, Power, VinoStatus, VmState};
pub use vino::{Vino, VinoSpec};
pub use yaml_bounds::{MAX_FLOW_DEPTH, MAX_YAML_BYTES, check_yaml_bounds};

/// One problem with one field of an input, named by its path (e.g. `spec.networks[0].subnet`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    /// Path of the offending field.
    pub field: String,
    /// What is wrong with it.
    pub reason: String,
}

impl FieldError {
    /// A problem with `field`.
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.reason)
    }
}

/// Errors of the API module: decoding and validation of a Vino.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    /// The input is well-formed but breaks one or more rules.
    #[error("invalid Vino: {}", join(.0))]
    Invalid(Vec<FieldError>),
    /// The input could not be decoded.
    #[error("cannot decode {what}: {reason}")]
    Decode {
        /// What was being decoded.
        what: String,
        /// The decoder's message (it names the field and line).
        reason: String,
    },
}

impl SpecError {
    /// The field errors, if this is a validation error.
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            SpecError::Invalid(errors) => errors,
            SpecError::Decode { .. } => &[],
        }
    }
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Decodes a Vino manifest from YAML or JSON, naming the offending field on failure.
pub fn parse_vino(text: &str) -> Result<Vino, SpecError> {
    check_yaml_bounds(text, "Vino")?;
    let de = serde_yaml::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| SpecError::Decode {
        what: "Vino".into(),
        reason: format!("{}: {}", display_path(&e.path().to_string()), e.inner()),
    })
}

fn display_path(path: &str) -> String {
    if path == "." {
        "(document)".into()
    } else {
        path.to_string()
    }
}
