//! Exclusive CPU pinning: each VM's vCPUs on dedicated host CPUs of a single NUMA node,
//! avoiding `cpuExclude` and CPUs already pinned by other Vinos.

use std::collections::{BTreeMap, BTreeSet};

use super::facts::NumaNode;
use crate::state::{HostState, Owner};
use crate::value::cpuset::CpuSet;

/// The host's CPUs during one pass: what each Vino's existing VMs are pinned to and what the
/// plans made so far pin. A Vino still on the host (planned or frozen) keeps its VMs' CPUs
/// reserved against the others; the CPUs of Vinos that left are free.
#[derive(Clone, Debug, Default)]
pub struct CpuLedger {
    existing: BTreeMap<Owner, CpuSet>,
    current: BTreeMap<String, CpuSet>,
    planned: CpuSet,
}

impl CpuLedger {
    /// The ledger of a host in state `observed` whose Vinos are `present`.
    pub fn new<'a>(observed: &HostState, present: impl IntoIterator<Item = &'a Owner>) -> Self {
        let present: BTreeSet<&Owner> = present.into_iter().collect();
        let mut existing: BTreeMap<Owner, CpuSet> = BTreeMap::new();
        let mut current = BTreeMap::new();
        for d in observed.domains.values() {
            if d.pinned_cpus.is_empty() || !present.contains(&d.owner) {
                continue;
            }
            let held = existing.entry(d.owner.clone()).or_default();
            *held = held.union(&d.pinned_cpus);
            current.insert(d.name.clone(), d.pinned_cpus.clone());
        }
        Self {
            existing,
            current,
            planned: CpuSet::default(),
        }
    }

    /// The CPUs `owner` must not use: the plans made so far and the other Vinos' VMs.
    pub fn taken_for(&self, owner: &Owner) -> CpuSet {
        self.existing
            .iter()
            .filter(|(o, _)| *o != owner)
            .fold(self.planned.clone(), |all, (_, cpus)| all.union(cpus))
    }

    /// The existing domains' pins, by domain name.
    pub fn current(&self) -> &BTreeMap<String, CpuSet> {
        &self.current
    }

    /// Records the CPUs a plan pins.
    pub fn record(&mut self, cpus: &CpuSet) {
        self.planned = self.planned.union(cpus);
    }
}

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

/// One VM to pin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PinRequest<'a> {
    /// VM (domain) name.
    pub vm: &'a str,
    /// vCPUs it needs.
    pub vcpus: u32,
    /// The CPUs its existing domain is pinned to (empty for a new VM).
    pub current: &'a CpuSet,
}

/// Pins each VM in order. A VM whose existing pins are still allowed (one NUMA node, not
/// excluded, not `taken`) keeps them (the lowest ones if it now needs fewer), so running VMs
/// never move and two VMs never share a CPU until the next power cycle. Any other VM gets free
/// CPUs: its own usable old CPUs first, then the lowest free CPUs of its old NUMA node, else of
/// the first NUMA node (by id) with enough free CPUs. CPUs another VM holds are never handed
/// out. Returns the CPUs per VM, in the same order.
pub fn pin(
    numa: &[NumaNode],
    exclude: &CpuSet,
    taken: &CpuSet,
    vms: &[PinRequest<'_>],
) -> Result<Vec<Vec<u32>>, PinError> {
    let mut nodes: Vec<&NumaNode> = numa.iter().collect();
    nodes.sort_by_key(|n| n.id);
    let usable = |c: u32| !exclude.contains(c) && !taken.contains(c);
    let held: CpuSet = vms.iter().flat_map(|r| r.current.iter()).collect();
    let mut free: Vec<BTreeSet<u32>> = nodes
        .iter()
        .map(|n| {
            n.cpus
                .iter()
                .filter(|c| usable(*c) && !held.contains(*c))
                .collect()
        })
        .collect();
    let node_of = |set: &CpuSet| {
        nodes
            .iter()
            .position(|n| !set.is_empty() && set.is_subset(&n.cpus))
    };
    let node_with = |c: u32| nodes.iter().position(|n| n.cpus.contains(c));
    let mut out: Vec<Option<Vec<u32>>> = vec![None; vms.len()];
    let mut kept = CpuSet::default();
    // Existing pins first, so a VM earlier in the order cannot take them.
    for (slot, r) in out.iter_mut().zip(vms) {
        let n = r.vcpus as usize;
        let fits = r.current.len() >= n && r.current.iter().all(|c| usable(c) && !kept.contains(c));
        if let (true, Some(node)) = (fits, node_of(r.current)) {
            free[node].extend(r.current.iter().skip(n));
            let keep: Vec<u32> = r.current.iter().take(n).collect();
            kept = kept.union(&keep.iter().copied().collect());
            *slot = Some(keep);
        }
    }
    for (slot, r) in out.iter_mut().zip(vms) {
        if slot.is_some() {
            continue;
        }
        // Its own old CPUs are free for it (and, if it moves, for the VMs after it).
        let own: Vec<u32> = r
            .current
            .iter()
            .filter(|c| usable(*c) && !kept.contains(*c))
            .collect();
        for c in &own {
            if let Some(node) = node_with(*c) {
                free[node].insert(*c);
            }
        }
        let n = r.vcpus as usize;
        let home = own.first().and_then(|c| node_with(*c));
        let Some(node) = home
            .filter(|h| free[*h].len() >= n)
            .or_else(|| free.iter().position(|f| f.len() >= n))
        else {
            return Err(shortage(&nodes, &free, r));
        };
        let mut cpus: Vec<u32> = own
            .iter()
            .copied()
            .filter(|c| free[node].contains(c))
            .collect();
        cpus.extend(free[node].iter().copied().filter(|c| !own.contains(c)));
        cpus.truncate(n);
        cpus.sort_unstable();
        for c in &cpus {
            free[node].remove(c);
        }
        *slot = Some(cpus);
    }
    Ok(out.into_iter().flatten().collect())
}

fn shortage(nodes: &[&NumaNode], free: &[BTreeSet<u32>], r: &PinRequest<'_>) -> PinError {
    let summary = nodes
        .iter()
        .zip(free)
        .map(|(node, f)| format!("node{}: {}", node.id, f.len()))
        .collect::<Vec<_>>()
        .join(", ");
    PinError {
        vm: r.vm.to_string(),
        vcpus: r.vcpus,
        free: if summary.is_empty() {
            "no NUMA nodes known".into()
        } else {
            summary
        },
    }
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

    fn fresh(vms: &[(&'static str, u32)]) -> Vec<PinRequest<'static>> {
        static NONE: CpuSet = CpuSet::new();
        vms.iter()
            .map(|(vm, vcpus)| PinRequest {
                vm,
                vcpus: *vcpus,
                current: &NONE,
            })
            .collect()
    }

    #[test]
    fn pins_within_one_node_avoiding_excluded() {
        let none = CpuSet::default();
        let vms = fresh(&[("a", 2), ("b", 2), ("c", 1)]);
        let pins = pin(&numa(), &"0-1".parse().unwrap(), &none, &vms).unwrap();
        assert_eq!(pins, vec![vec![2, 3], vec![4, 5], vec![6]]);
        // Three vCPUs no longer fit on one node: never split a VM across nodes.
        let e = pin(
            &numa(),
            &"0-1".parse().unwrap(),
            &none,
            &fresh(&[("a", 2), ("b", 2), ("c", 3)]),
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
            &fresh(&[("big", 3)]),
        )
        .unwrap_err();
        assert_eq!(e.vm, "big");
        assert_eq!(e.free, "node0: 0, node1: 2");
    }

    fn set(s: &str) -> CpuSet {
        s.parse().unwrap()
    }

    #[test]
    fn existing_pins_stay_and_new_vms_take_free_cpus() {
        // master-0 on 0, worker-0 on 1: a new master-1 ahead of worker-0 in the order gets 2.
        let (m0, w0, none) = (set("0"), set("1"), CpuSet::default());
        let vms = [
            PinRequest {
                vm: "master-0",
                vcpus: 1,
                current: &m0,
            },
            PinRequest {
                vm: "master-1",
                vcpus: 1,
                current: &none,
            },
            PinRequest {
                vm: "worker-0",
                vcpus: 1,
                current: &w0,
            },
        ];
        let pins = pin(&numa(), &none, &none, &vms).unwrap();
        assert_eq!(pins, vec![vec![0], vec![2], vec![1]]);
    }

    #[test]
    fn pins_that_are_no_longer_allowed_move() {
        let (a, b) = (set("0-1"), set("2"));
        let vms = [
            PinRequest {
                vm: "a",
                vcpus: 2,
                current: &a,
            },
            PinRequest {
                vm: "b",
                vcpus: 1,
                current: &b,
            },
        ];
        // CPU 1 is now excluded and CPU 2 is another Vino's: both move, never onto those.
        let pins = pin(&numa(), &set("1"), &set("2"), &vms).unwrap();
        assert_eq!(pins, vec![vec![0, 3], vec![4]]);
    }

    #[test]
    fn a_bigger_flavor_takes_free_cpus_or_is_reported() {
        let (a, b) = (set("0-1"), set("2-3"));
        let grow = |vcpus| {
            [
                PinRequest {
                    vm: "a",
                    vcpus,
                    current: &a,
                },
                PinRequest {
                    vm: "b",
                    vcpus: 2,
                    current: &b,
                },
            ]
        };
        // Node 0 is full: a moves to node 1 whole; b keeps 2-3 and the old 0-1 are free.
        assert_eq!(
            pin(&numa(), &CpuSet::default(), &CpuSet::default(), &grow(3)).unwrap(),
            vec![vec![4, 5, 6], vec![2, 3]]
        );
        // Nowhere has five: reported, b's CPUs are not taken.
        let e = pin(&numa(), &CpuSet::default(), &CpuSet::default(), &grow(5)).unwrap_err();
        assert_eq!((e.vm.as_str(), e.vcpus), ("a", 5));
        // A smaller flavor keeps the lowest of its CPUs.
        let pins = pin(&numa(), &CpuSet::default(), &CpuSet::default(), &grow(1)).unwrap();
        assert_eq!(pins, vec![vec![0], vec![2, 3]]);
    }

    #[test]
    fn a_bigger_flavor_grows_on_its_own_node() {
        let a = set("0");
        let none = CpuSet::default();
        let vms = [
            PinRequest {
                vm: "n",
                vcpus: 1,
                current: &none,
            },
            PinRequest {
                vm: "a",
                vcpus: 2,
                current: &a,
            },
        ];
        // a keeps CPU 0 and adds 2 (1 went to the new VM n first).
        assert_eq!(
            pin(&numa(), &none, &none, &vms).unwrap(),
            vec![vec![1], vec![0, 2]]
        );
    }
}
