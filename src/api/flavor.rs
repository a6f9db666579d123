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

/// The smallest disk Ironic's Redfish inspection counts (smaller ones are ignored).
const IRONIC_MIN_DISK_GIB: u64 = 4;

/// Why Ironic's Redfish inspection (as metal3 enrolls hosts) cannot report a VM of flavor `f`
/// truly: it reads the memory as a whole number of GiB and ignores disks under 4 GiB.
pub fn inspection_problems(f: &Flavor) -> Vec<String> {
    let mut out = Vec::new();
    if !f.memory_mib.is_multiple_of(1024) {
        let reported = f.memory_mib / 1024 * 1024;
        out.push(if reported == 0 {
            format!(
                "memoryMiB {} is under 1 GiB: Ironic's Redfish inspection finds no memory and fails",
                f.memory_mib
            )
        } else {
            format!(
                "memoryMiB {} is not a whole number of GiB: Ironic's Redfish inspection reports {reported} MiB",
                f.memory_mib
            )
        });
    }
    if f.root_disk_gib < IRONIC_MIN_DISK_GIB {
        out.push(format!(
            "rootDiskGiB {} is under {IRONIC_MIN_DISK_GIB} GiB: Ironic's Redfish inspection takes the VM for disk-less (local_gb 0)",
            f.root_disk_gib
        ));
    }
    out
}

/// The flavor name a node set uses: `flavor`, or the set name as ViNO did.
pub fn flavor_name(set: &NodeSet) -> &str {
    set.flavor.as_deref().unwrap_or(&set.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flavors_ironic_cannot_inspect_are_named() {
        assert!(inspection_problems(&builtin_worker()).is_empty());
        let mut f = builtin_worker();
        f.memory_mib = 1536;
        f.root_disk_gib = 3;
        let problems = inspection_problems(&f);
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains("reports 1024 MiB"), "{}", problems[0]);
        assert!(problems[1].contains("under 4 GiB"), "{}", problems[1]);
        f.memory_mib = 768;
        assert!(inspection_problems(&f)[0].contains("finds no memory"));
    }

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
