//! The per-host bindings of the `vinod-node-facts` admission policy, for fleets.
//!
//! As shipped, the policy's one binding takes every Node as a parameter, so the API server
//! evaluates it once per Node for every BareMetalHost and `VinoNode` a host writes: a write
//! costs more the more Nodes there are. [`bindings`] renders, for the named hosts, one binding
//! each that takes only that host's Node (`paramRef.name`) and matches only the objects
//! labelled for it (`vino.airshipit.org/node`, which `vinod-node-scope` makes equal to the
//! writer's identity), and the shipped binding again, now leaving those hosts' objects out.
//! A host left out of the list is still checked by the shipped binding, only slower.

use std::fmt::Write as _;

use crate::value::syntax::{is_dns_subdomain, label_value_error};

/// Why the bindings cannot be rendered.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BindingsError {
    /// No host was named.
    #[error("name at least one Node")]
    NoNodes,
    /// A Node name that cannot be a label value (the policy compares it with one).
    #[error("Node name {name:?}: {reason}")]
    BadNode {
        /// The name as given.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The label that names the host an object belongs to.
const NODE_LABEL: &str = "vino.airshipit.org/node";

/// YAML for `kubectl apply -f -`: a binding per Node of `nodes` (sorted, duplicates once), then
/// the shipped binding `vinod-node-facts` leaving their objects to them.
pub fn bindings(nodes: &[String]) -> Result<String, BindingsError> {
    let mut names: Vec<&str> = nodes.iter().map(String::as_str).collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        return Err(BindingsError::NoNodes);
    }
    for name in &names {
        let problem = label_value_error(name)
            .or_else(|| name.is_empty().then(|| "must not be empty".to_string()))
            .or_else(|| {
                (!is_dns_subdomain(&format!("vinod-node-facts.{name}")))
                    .then(|| "must be a lowercase DNS name (it names the binding)".to_string())
            });
        if let Some(reason) = problem {
            return Err(BindingsError::BadNode {
                name: name.to_string(),
                reason,
            });
        }
    }
    let mut out = String::new();
    for name in &names {
        // Names are label values here: letters, digits, '-', '_' and '.', nothing to quote.
        let _ = write!(
            out,
            "apiVersion: admissionregistration.k8s.io/v1\n\
             kind: ValidatingAdmissionPolicyBinding\n\
             metadata:\n  name: vinod-node-facts.{name}\n\
             spec:\n  policyName: vinod-node-facts\n  validationActions: [Deny]\n\
             \x20 paramRef:\n    name: \"{name}\"\n    parameterNotFoundAction: Allow\n\
             \x20 matchResources:\n    objectSelector:\n      matchLabels:\n\
             \x20       {NODE_LABEL}: \"{name}\"\n---\n"
        );
    }
    let _ = write!(
        out,
        "apiVersion: admissionregistration.k8s.io/v1\n\
         kind: ValidatingAdmissionPolicyBinding\n\
         metadata:\n  name: vinod-node-facts\n\
         spec:\n  policyName: vinod-node-facts\n  validationActions: [Deny]\n\
         \x20 paramRef:\n    selector: {{}}\n    parameterNotFoundAction: Allow\n\
         \x20 matchResources:\n    objectSelector:\n      matchExpressions:\n\
         \x20       - key: {NODE_LABEL}\n          operator: NotIn\n          values:\n"
    );
    for name in &names {
        let _ = writeln!(out, "            - \"{name}\"");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_binding_per_node_then_the_shared_one_without_them() {
        let yaml = bindings(&["node-b".into(), "node-a".into(), "node-b".into()]).unwrap();
        let docs: Vec<serde_yaml::Value> = yaml
            .split("\n---\n")
            .map(|d| serde_yaml::from_str(d).unwrap())
            .collect();
        assert_eq!(docs.len(), 3);
        let get = |d: &serde_yaml::Value, path: &[&str]| {
            path.iter()
                .fold(d.clone(), |v, k| v[*k].clone())
                .as_str()
                .map(String::from)
        };
        for (doc, node) in docs.iter().zip(["node-a", "node-b"]) {
            let name = format!("vinod-node-facts.{node}");
            assert_eq!(get(doc, &["metadata", "name"]), Some(name));
            assert_eq!(
                get(doc, &["spec", "policyName"]).unwrap(),
                "vinod-node-facts"
            );
            assert_eq!(get(doc, &["spec", "paramRef", "name"]).unwrap(), node);
            let labels = &doc["spec"]["matchResources"]["objectSelector"]["matchLabels"];
            assert_eq!(labels[NODE_LABEL].as_str(), Some(node));
        }
        let shared = &docs[2];
        assert_eq!(
            get(shared, &["metadata", "name"]).unwrap(),
            "vinod-node-facts"
        );
        let expr = &shared["spec"]["matchResources"]["objectSelector"]["matchExpressions"][0];
        assert_eq!(expr["operator"].as_str(), Some("NotIn"));
        let values: Vec<&str> = expr["values"]
            .as_sequence()
            .unwrap()
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        assert_eq!(values, ["node-a", "node-b"]);
    }

    #[test]
    fn names_that_are_not_label_values_are_refused() {
        assert_eq!(bindings(&[]), Err(BindingsError::NoNodes));
        for bad in [
            "",
            "a\nkind: ClusterRoleBinding",
            "a\"b",
            &"n".repeat(64),
            "-a",
            "Node_A",
        ] {
            assert!(
                matches!(
                    bindings(&[bad.to_string()]),
                    Err(BindingsError::BadNode { .. })
                ),
                "{bad:?}"
            );
        }
    }
}
