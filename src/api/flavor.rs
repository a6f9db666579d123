//! VM flavors: ViNO's built-in `master` and `worker` sizes plus those a Vino defines.

use std::collections::BTreeMap;

use super::vino::{Flavor, NodeSet, VinoSpec};

/// ViNO's `master` flavor: 1 vCPU, 4 GiB, 30 GiB root disk.
pub fn builtin_master() -> Flavor {
    Flavor {
        vcpus: 1,
        memory_mib: 4096,
        root_disk_gib: 30,
        hugepages: false,
    }
}

/// ViNO's `worker` flavor: 1 vCPU, 2 GiB, 10 GiB root disk.
pub fn builtin_worker() -> Flavor {
    Flavor {
        vcpus: 1,
        memory_mib: 2048,
        root_disk_gib: 10,
        hugepages: false,
    }
}

/// All flavors a Vino can use: the built-ins, overridden or extended by `spec.flavors`.
pub fn catalog(spec: &VinoSpec) -> BTreeMap<String, Flavor> {
    let mut all = BTreeMap::from([
        ("master".to_string(), builtin_master()),
        ("worker".to_string(), builtin_worker()),
    ]);
    all.extend(spec.flavors.iter().map(|(k, v)| (k.clone(), v.clone())));
    all
}

/// The flavor name a node set uses: `flavor`, or the set name as ViNO did.
pub fn flavor_name(set: &NodeSet) -> &str {
    set.flavor.as_deref().unwrap_or(&set.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_overrides_builtins() {
        let mut spec = VinoSpec::default();
        spec.flavors.insert(
            "master".into(),
            Flavor {
                vcpus: 4,
                memory_mib: 8192,
                root_disk_gib: 40,
                hugepages: true,
            },
        );
        let c = catalog(&spec);
        assert_eq!(c["master"].vcpus, 4);
        assert_eq!(c["worker"], builtin_worker());
        let set = NodeSet {
            name: "worker".into(),
            ..Default::default()
        };
        assert_eq!(flavor_name(&set), "worker");
    }
}
