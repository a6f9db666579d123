//! After P4: is any address, MAC or DHCP block used twice across hosts? Read back from what a
//! provisioner would use (every BareMetalHost's boot MAC and its network-data Secret) and from
//! the `VinoPoolClaim`s, independently of vinod's own bookkeeping.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::{Client, ResourceExt};
use vinod::api::bmh::BareMetalHost;
use vinod::api::pool_claim::VinoPoolClaim;

use crate::NS;
use crate::p4::list_all;

/// What the check found.
#[derive(Debug, Default)]
pub struct Check {
    bmhs: usize,
    ips: usize,
    macs: usize,
    claimed: usize,
    blocks: usize,
    ip_conflicts: usize,
    mac_conflicts: usize,
    claim_conflicts: usize,
    block_conflicts: usize,
    mismatched: usize,
    unreadable: usize,
}

/// Values held by more than one owner.
fn conflicts<K: Ord, V: Ord>(seen: &BTreeMap<K, BTreeSet<V>>) -> usize {
    seen.values().filter(|owners| owners.len() > 1).count()
}

/// Reads every BareMetalHost, Secret and claim of the namespace and checks them.
pub async fn run(client: &Client) -> Check {
    let bmhs = list_all(&Api::<BareMetalHost>::namespaced(client.clone(), NS)).await;
    let secrets: BTreeMap<String, Secret> =
        list_all(&Api::<Secret>::namespaced(client.clone(), NS))
            .await
            .into_iter()
            .map(|s| (s.name_any(), s))
            .collect();
    let mut c = Check {
        bmhs: bmhs.len(),
        ..Check::default()
    };
    let mut ips: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut macs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for h in &bmhs {
        let name = h.name_any();
        let data = h
            .spec
            .network_data
            .as_ref()
            .and_then(|r| secrets.get(&r.name))
            .and_then(|s| s.data.as_ref()?.get("networkData"))
            .and_then(|d| serde_json::from_slice::<serde_json::Value>(&d.0).ok());
        let Some(data) = data else {
            c.unreadable += 1;
            continue;
        };
        let link_macs: BTreeSet<String> = data["links"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| l["ethernet_mac_address"].as_str())
            .map(str::to_lowercase)
            .collect();
        let boot = h.spec.boot_mac_address.clone().unwrap_or_default();
        if !link_macs.contains(&boot.to_lowercase()) {
            c.mismatched += 1;
        }
        for mac in link_macs {
            macs.entry(mac).or_default().insert(name.clone());
        }
        for n in data["networks"].as_array().into_iter().flatten() {
            if let Some(ip) = n["ip_address"].as_str() {
                ips.entry(ip.to_string()).or_default().insert(name.clone());
            }
        }
    }
    c.ips = ips.len();
    c.macs = macs.len();
    c.ip_conflicts = conflicts(&ips);
    c.mac_conflicts = conflicts(&macs);

    let claims = list_all(&Api::<VinoPoolClaim>::all(client.clone())).await;
    let mut claimed: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut blocks: BTreeMap<(u32, u32), BTreeSet<String>> = BTreeMap::new();
    for o in &claims {
        if let Some(b) = o.spec.block {
            let start = u32::from(b.start);
            blocks
                .entry((start, start + b.size))
                .or_default()
                .insert(o.spec.node.clone());
        }
        if let Some(ip) = o.spec.address {
            claimed
                .entry(ip.to_string())
                .or_default()
                .insert(format!("{}/{}", o.spec.node, o.spec.key));
        }
    }
    c.claimed = claimed.len();
    c.blocks = blocks.len();
    c.claim_conflicts = conflicts(&claimed);
    // Blocks of different sizes have different names: count overlaps by range.
    let ranges: Vec<&(u32, u32)> = blocks.keys().collect();
    c.block_conflicts = conflicts(&blocks) + ranges.windows(2).filter(|w| w[1].0 < w[0].1).count();
    // Every address handed to a VM must be one of the claimed ones.
    c.mismatched += ips.keys().filter(|ip| !claimed.contains_key(*ip)).count();
    c
}

impl Check {
    /// One line for the table.
    pub fn summary(&self) -> String {
        format!(
            "{} IPs used twice ({} BareMetalHosts: {} distinct IPs and {} distinct MACs in their network data, \
             {} IPs used twice, {} MACs used twice; claims: {} addresses and {} DHCP blocks, \
             {} addresses and {} blocks held twice; {} not matching the claims or the boot MAC, \
             {} without readable network data)",
            self.ip_conflicts + self.claim_conflicts,
            self.bmhs,
            self.ips,
            self.macs,
            self.ip_conflicts,
            self.mac_conflicts,
            self.claimed,
            self.blocks,
            self.claim_conflicts,
            self.block_conflicts,
            self.mismatched,
            self.unreadable
        )
    }
}
