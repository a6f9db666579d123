//! A Vino's name and namespace, checked as the API server checks them.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::super::{FieldError, SpecError};
use crate::value::syntax::{is_dns_label, is_dns_subdomain};

/// Checks a Vino's name and namespace as the API server checks them: a Vino from a manifest
/// never met one, and these names reach file paths, libvirt names and dnsmasq's
/// configuration. The name must be a DNS subdomain, the namespace (if any) a DNS label.
pub fn check_metadata(meta: &ObjectMeta) -> Result<(), SpecError> {
    let mut errors = Vec::new();
    match meta.name.as_deref() {
        None | Some("") => errors.push(FieldError::new("metadata.name", "required")),
        Some(name) if !is_dns_subdomain(name) => errors.push(FieldError::new(
            "metadata.name",
            format!(
                "{} is not a valid object name (lowercase alphanumerics, '-' and '.', at most 253 characters)",
                quoted_prefix(name)
            ),
        )),
        Some(_) => {}
    }
    if let Some(ns) = meta.namespace.as_deref()
        && !is_dns_label(ns)
    {
        errors.push(FieldError::new(
            "metadata.namespace",
            format!(
                "{} is not a valid namespace (lowercase alphanumerics and '-', at most 63 characters)",
                quoted_prefix(ns)
            ),
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(SpecError::Invalid(errors))
    }
}

/// At most 64 characters of hostile text, quoted with its control characters escaped.
fn quoted_prefix(text: &str) -> String {
    let cut: String = text.chars().take(64).collect();
    if cut.len() < text.len() {
        format!("{cut:?}…")
    } else {
        format!("{cut:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, namespace: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.into()),
            namespace: namespace.map(Into::into),
            ..ObjectMeta::default()
        }
    }

    fn fields(m: &ObjectMeta) -> Vec<String> {
        match check_metadata(m) {
            Ok(()) => vec![],
            Err(e) => e.field_errors().iter().map(|f| f.field.clone()).collect(),
        }
    }

    #[test]
    fn kubernetes_names_pass() {
        assert!(check_metadata(&meta("rack-7.a", Some("tenant-a"))).is_ok());
        assert!(check_metadata(&meta("demo", None)).is_ok());
    }

    #[test]
    fn injection_and_traversal_are_refused_naming_the_field() {
        assert_eq!(
            fields(&meta("inj\ndhcp-script=/tmp/pwn.sh\n#", None)),
            ["metadata.name"]
        );
        assert_eq!(fields(&meta("../../etc", None)), ["metadata.name"]);
        assert_eq!(fields(&meta("x", Some("/tmp/x"))), ["metadata.namespace"]);
        assert_eq!(fields(&meta("x", Some(".."))), ["metadata.namespace"]);
        assert_eq!(fields(&meta("", None)), ["metadata.name"]);
        assert_eq!(fields(&meta("Upper", None)), ["metadata.name"]);
    }

    #[test]
    fn a_long_hostile_value_is_quoted_short_and_escaped() {
        let long = format!("a\n{}", "b".repeat(100_000));
        let err = check_metadata(&meta(&long, None)).unwrap_err().to_string();
        assert!(err.len() < 300, "{} characters", err.len());
        assert!(!err.contains('\n'), "{err}");
    }
}
