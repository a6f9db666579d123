//! Exclusive CPU pinning: each VM's vCPUs on dedicated host CPUs of a single NUMA node,
//! avoiding `cpuExclude` and CPUs already pinned by other Vinos.

use std::collections::BTreeSet;

use super::facts::NumaNode;
use crate::value::cpuset::CpuSet;

/// A VM that could not be pinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PinError {
    /// VM (domain) name.
    pub vm: String,
    /// vCPUs it needs.
    pub vcpus: u32,
    /// Free CPUs per NUMA node at that point, e.g. `node0: 1, node1: 0`.
    pub free: String,
}

/// Pins each `(vm, vcpus)` in order: first NUMA node (by id) with enough free CPUs, lowest CPUs
/// first. Returns the CPUs per VM, in the same order.
pub fn pin(
    numa: &[NumaNode],
    exclude: &CpuSet,
    taken: &CpuSet,
    vms: &[(String, u32)],
) -> Result<Vec<Vec<u32>>, PinError> {
    let mut nodes: Vec<&NumaNode> = numa.iter().collect();
    nodes.sort_by_key(|n| n.id);
    let mut free: Vec<BTreeSet<u32>> = nodes
        .iter()
        .map(|n| {
            n.cpus
                .iter()
                .filter(|c| !exclude.contains(*c) && !taken.contains(*c))
                .collect()
        })
        .collect();
    let mut out = Vec::with_capacity(vms.len());
    for (vm, vcpus) in vms {
        let n = *vcpus as usize;
        let Some(slot) = free.iter_mut().find(|f| f.len() >= n) else {
            let summary = nodes
                .iter()
                .zip(&free)
                .map(|(node, f)| format!("node{}: {}", node.id, f.len()))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(PinError {
                vm: vm.clone(),
                vcpus: *vcpus,
                free: if summary.is_empty() {
                    "no NUMA nodes known".into()
                } else {
                    summary
                },
            });
        };
        let cpus: Vec<u32> = slot.iter().take(n).copied().collect();
        for c in &cpus {
            slot.remove(c);
        }
        out.push(cpus);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn numa() -> Vec<NumaNode> {
        vec![
            NumaNode {
                id: 1,
                cpus: "4-7".parse().unwrap(),
            },
            NumaNode {
                id: 0,
                cpus: "0-3".parse().unwrap(),
            },
        ]
    }

    #[test]
    fn pins_within_one_node_avoiding_excluded() {
        let none = CpuSet::default();
        let vms = vec![
            ("a".to_string(), 2),
            ("b".to_string(), 2),
            ("c".to_string(), 1),
        ];
        let pins = pin(&numa(), &"0-1".parse().unwrap(), &none, &vms).unwrap();
        assert_eq!(pins, vec![vec![2, 3], vec![4, 5], vec![6]]);
        // Three vCPUs no longer fit on one node: never split a VM across nodes.
        let e = pin(
            &numa(),
            &"0-1".parse().unwrap(),
            &none,
            &[("a".into(), 2), ("b".into(), 2), ("c".into(), 3)],
        )
        .unwrap_err();
        assert_eq!(
            (e.vm.as_str(), e.free.as_str()),
            ("c", "node0: 0, node1: 2")
        );
    }

    #[test]
    fn reports_shortage() {
        let e = pin(
            &numa(),
            &CpuSet::default(),
            &"0-5".parse().unwrap(),
            &[("big".into(), 3)],
        )
        .unwrap_err();
        assert_eq!(e.vm, "big");
        assert_eq!(e.free, "node0: 0, node1: 2");
    }
}
