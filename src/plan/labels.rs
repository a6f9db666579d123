//! BareMetalHost labels: ownership, location, role, flavor and networks, all under
//! `vino.airshipit.org/`, then copied Node labels, then the node set's `bmhLabels`.

use std::collections::BTreeMap;

use super::facts::NodeFacts;
use super::names::label_value;
use crate::api::validate::LABEL_PREFIX;
use crate::api::vino::{NodeSet, VinoSpec};
use crate::state::Owner;

/// vinod's ownership labels, also put on the Secrets: `cr-name`, `cr-namespace`, `node`.
pub fn ownership(owner: &Owner, node: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (format!("{LABEL_PREFIX}cr-name"), label_value(&owner.name)),
        (
            format!("{LABEL_PREFIX}cr-namespace"),
            label_value(&owner.namespace),
        ),
        (format!("{LABEL_PREFIX}node"), label_value(node)),
    ])
}

/// All labels of one VM's BareMetalHost.
pub fn bmh_labels(
    owner: &Owner,
    spec: &VinoSpec,
    node: &NodeFacts,
    rack_label: &str,
    set: &NodeSet,
    flavor: &str,
) -> BTreeMap<String, String> {
    let mut labels = ownership(owner, &node.name);
    if let Some(rack) = node.labels.get(rack_label) {
        labels.insert(format!("{LABEL_PREFIX}rack"), label_value(rack));
    }
    labels.insert(format!("{LABEL_PREFIX}node-type"), set.name.clone());
    labels.insert(format!("{LABEL_PREFIX}node-flavor"), flavor.to_string());
    for nic in &set.network_interfaces {
        labels.insert(
            format!("{LABEL_PREFIX}network-{}", nic.network),
            "true".into(),
        );
    }
    // Unlike ViNO, a key the Node lacks is skipped rather than published with an empty value.
    for key in &spec.node_label_keys_to_copy {
        if let Some(v) = node.labels.get(key) {
            labels.insert(key.clone(), v.clone());
        }
    }
    labels.extend(set.bmh_labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    labels
}
