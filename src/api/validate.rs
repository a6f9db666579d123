//! Validation of a Vino, in the same terms as the CRD's OpenAPI and CEL rules plus the checks
//! that need arithmetic CEL cannot do. It returns every problem at once, each naming its field,
//! and on success the typed pieces the planner needs.

use std::collections::{BTreeMap, BTreeSet};

use super::flavor::{catalog, flavor_name, inspection_problems};
use super::vino::{Flavor, Network, NodeSet, VinoSpec};
use super::{FieldError, SpecError};
use crate::ipam::Pool;
use crate::value::cpuset::CpuSet;
use crate::value::syntax::{
    is_dns_label, is_host, is_ifname, label_key_error, label_value_error, url_path_error,
};

mod metadata;
mod networks;

pub use metadata::check_metadata;

/// Default bridge name, as in ViNO.
pub const DEFAULT_BRIDGE: &str = "vm-infra-bridge";

/// Longest `spec.configuration.cpuExclude`, as the CRD's `maxLength`.
const MAX_CPU_EXCLUDE: usize = 1024;

/// Default DHCP block size exponent, as in ViNO.
pub const DEFAULT_BIT_STEP: u32 = 4;
/// Default MAC base, as in ViNO.
pub const DEFAULT_MAC_PREFIX: &str = "02:00:00:00:00:00";
/// Label prefix vinod owns on BareMetalHosts.
pub const LABEL_PREFIX: &str = "vino.airshipit.org/";
/// Labels vinod relies on to find its objects; `bmhLabels` may not set them.
pub const RESERVED_LABELS: [&str; 3] = [
    "vino.airshipit.org/cr-name",
    "vino.airshipit.org/cr-namespace",
    "vino.airshipit.org/node",
];

/// The parts of a valid Vino the planner consumes.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    /// Address pools by network name.
    pub pools: BTreeMap<String, Pool>,
    /// Bridge name by network name.
    pub bridges: BTreeMap<String, String>,
    /// CPUs VMs must avoid, when pinning is requested.
    pub cpu_exclude: Option<CpuSet>,
    /// Flavors by name.
    pub flavors: BTreeMap<String, Flavor>,
    /// Accepted but noteworthy input (reported in status, never fatal).
    pub warnings: Vec<FieldError>,
}

/// Validates `spec`, returning every problem found or the typed pieces for planning.
pub fn check(spec: &VinoSpec) -> Result<Checked, SpecError> {
    let mut v = Checker::default();
    v.top_level(spec);
    let pools = v.networks(spec);
    v.node_sets(spec, &pools);
    if v.errors.is_empty() {
        Ok(Checked {
            bridges: spec
                .networks
                .iter()
                .map(|n| (n.name.clone(), bridge_name(n).to_string()))
                .collect(),
            pools,
            cpu_exclude: v.cpu_exclude,
            flavors: catalog(spec),
            warnings: v.warnings,
        })
    } else {
        Err(SpecError::Invalid(v.errors))
    }
}

/// The bridge a network uses.
pub fn bridge_name(net: &Network) -> &str {
    net.bridge_name.as_deref().unwrap_or(DEFAULT_BRIDGE)
}

#[derive(Default)]
struct Checker {
    errors: Vec<FieldError>,
    warnings: Vec<FieldError>,
    cpu_exclude: Option<CpuSet>,
}

impl Checker {
    fn err(&mut self, field: impl Into<String>, reason: impl Into<String>) {
        self.errors.push(FieldError::new(field, reason));
    }

    fn top_level(&mut self, spec: &VinoSpec) {
        match &spec.node_selector {
            None => self.err(
                "spec.nodeSelector",
                "required: a Vino without it would select no host",
            ),
            Some(sel) => self.labels("spec.nodeSelector.matchLabels", &sel.match_labels, false),
        }
        if let Some(text) = spec
            .configuration
            .as_ref()
            .and_then(|c| c.cpu_exclude.as_deref())
        {
            // As the CRD's maxLength: a manifest never met the API server, and a long list is
            // costly to plan.
            if text.len() > MAX_CPU_EXCLUDE {
                self.err(
                    "spec.configuration.cpuExclude",
                    format!("{} characters; at most {MAX_CPU_EXCLUDE}", text.len()),
                );
            } else {
                match text.parse::<CpuSet>() {
                    Ok(set) => self.cpu_exclude = Some(set),
                    Err(e) => self.err("spec.configuration.cpuExclude", e),
                }
            }
        }
        match &spec.bmc_credentials {
            None => self.err(
                "spec.bmcCredentials",
                "required: give secretRef or username and password",
            ),
            Some(c) => {
                let inline = c.username.is_some() || c.password.is_some();
                match (&c.secret_ref, inline) {
                    (Some(_), true) => self.err(
                        "spec.bmcCredentials",
                        "give either secretRef or username and password, not both",
                    ),
                    (None, false) => self.err(
                        "spec.bmcCredentials",
                        "give secretRef or both username and password",
                    ),
                    (None, true) if c.username.as_deref().unwrap_or("").is_empty() => self.err(
                        "spec.bmcCredentials.username",
                        "required with an inline password, and not empty",
                    ),
                    (None, true) if c.password.as_deref().unwrap_or("").is_empty() => self.err(
                        "spec.bmcCredentials.password",
                        "required with an inline username, and not empty",
                    ),
                    (Some(r), false) if !crate::value::syntax::is_dns_subdomain(&r.name) => self
                        .err(
                            "spec.bmcCredentials.secretRef.name",
                            format!("{:?} is not a valid Secret name", r.name),
                        ),
                    _ => {}
                }
            }
        }
        for (i, key) in spec.node_label_keys_to_copy.iter().enumerate() {
            if let Some(e) = label_key_error(key) {
                self.err(format!("spec.nodeLabelKeysToCopy[{i}]"), e);
            }
        }
        if let Some(host) = &spec.pxe_boot_image_host
            && !is_host(host)
        {
            self.err(
                "spec.pxeBootImageHost",
                format!("{host:?} is not a host name or IP address"),
            );
        }
        if let Some(port) = spec.pxe_boot_image_host_port
            && !(1..=65535).contains(&port)
        {
            self.err(
                "spec.pxeBootImageHostPort",
                format!("{port} is not a TCP port (1-65535)"),
            );
        }
        if let Some(e) = spec.pxe_boot_image_path.as_deref().and_then(url_path_error) {
            self.err("spec.pxeBootImagePath", e);
        }
        for (name, f) in &spec.flavors {
            let field = format!("spec.flavors.{name}");
            if !is_dns_label(name) {
                self.err(
                    &field,
                    "flavor names must be DNS labels (lowercase alphanumerics and '-')",
                );
            }
            if f.vcpus == 0 || f.vcpus > 512 {
                self.err(
                    format!("{field}.vcpus"),
                    format!("{} is outside 1-512", f.vcpus),
                );
            }
            if !(64..=16_777_216).contains(&f.memory_mib) {
                self.err(
                    format!("{field}.memoryMiB"),
                    format!("{} is outside 64-16777216", f.memory_mib),
                );
            }
            if !(1..=65_536).contains(&f.root_disk_gib) {
                self.err(
                    format!("{field}.rootDiskGiB"),
                    format!("{} is outside 1-65536", f.root_disk_gib),
                );
            }
        }
    }

    fn labels(&mut self, field: &str, labels: &BTreeMap<String, String>, bmh: bool) {
        for (k, v) in labels {
            if let Some(e) = label_key_error(k) {
                self.err(format!("{field}[{k}]"), e);
            }
            if let Some(e) = label_value_error(v) {
                self.err(format!("{field}[{k}]"), e);
            }
            if bmh && RESERVED_LABELS.contains(&k.as_str()) {
                self.err(
                    format!("{field}[{k}]"),
                    "this label is set by vinod to find its objects and cannot be overridden",
                );
            }
        }
    }

    fn node_sets(&mut self, spec: &VinoSpec, pools: &BTreeMap<String, Pool>) {
        let flavors = catalog(spec);
        let mut names = BTreeSet::new();
        let mut per_network: BTreeMap<&str, u64> = BTreeMap::new();
        if spec.nodes.len() > 32 {
            self.err(
                "spec.nodes",
                format!("{} node sets; at most 32", spec.nodes.len()),
            );
        }
        for (i, set) in spec.nodes.iter().enumerate() {
            let f = format!("spec.nodes[{i}]");
            if set.name.len() > 32 || !is_dns_label(&set.name) {
                self.err(
                    format!("{f}.name"),
                    format!(
                        "{:?} must be a DNS label of at most 32 characters",
                        set.name
                    ),
                );
            }
            if !names.insert(set.name.as_str()) {
                self.err(
                    format!("{f}.name"),
                    format!("duplicate node set name {:?}", set.name),
                );
            }
            if set.count > 256 {
                self.err(format!("{f}.count"), format!("{} is above 256", set.count));
            }
            let flavor = flavor_name(set);
            for problem in flavors
                .get(flavor)
                .map(inspection_problems)
                .unwrap_or_default()
            {
                let field = format!("{f}.flavor ({flavor})");
                self.warnings.push(FieldError::new(field, problem));
            }
            if !flavors.contains_key(flavor) {
                let field = if set.flavor.is_some() {
                    format!("{f}.flavor")
                } else {
                    format!("{f}.name")
                };
                self.err(
                    field,
                    format!(
                        "no flavor {flavor:?}: define it in spec.flavors or use one of {:?}",
                        flavors.keys().collect::<Vec<_>>()
                    ),
                );
            }
            self.labels(&format!("{f}.bmhLabels"), &set.bmh_labels, true);
            self.interfaces(&f, set, spec, &mut per_network);
            self.disks(&f, set);
            if let Some(t) = &set.network_data_template {
                self.warnings.push(FieldError::new(
                    format!("{f}.networkDataTemplate"),
                    format!(
                        "template Secret {}/{} is not rendered: vinod writes network_data.json",
                        t.namespace, t.name
                    ),
                ));
            }
        }
        for (net, need) in per_network {
            let Some(pool) = pools.get(net) else { continue };
            let field = format!("spec.nodes (network {net})");
            if let Some(span) = pool.dhcp
                && need > span.block_size()
            {
                self.err(&field, format!("{need} VM NICs per host on network {net} exceed its DHCP block of {} addresses (2^instanceSubnetBitStep)", span.block_size()));
            }
            if need + 1 > pool.static_range.len() {
                self.err(&field, format!("{need} VM NICs plus the host bridge need {} static addresses per host; {} has {}", need + 1, pool.static_range, pool.static_range.len()));
            }
        }
    }

    fn interfaces<'a>(
        &mut self,
        f: &str,
        set: &'a NodeSet,
        spec: &VinoSpec,
        per_network: &mut BTreeMap<&'a str, u64>,
    ) {
        let mut seen = BTreeSet::new();
        if set.network_interfaces.len() > 8 {
            self.err(
                format!("{f}.networkInterfaces"),
                format!("{} interfaces; at most 8", set.network_interfaces.len()),
            );
        }
        for (j, nic) in set.network_interfaces.iter().enumerate() {
            let nf = format!("{f}.networkInterfaces[{j}]");
            if !is_ifname(&nic.name) {
                self.err(
                    format!("{nf}.name"),
                    format!(
                        "{:?} is not an interface name (1-15 of [A-Za-z0-9_.-])",
                        nic.name
                    ),
                );
            }
            if !seen.insert(nic.name.as_str()) {
                self.err(
                    format!("{nf}.name"),
                    format!("duplicate interface name {:?}", nic.name),
                );
            }
            if !spec.networks.iter().any(|n| n.name == nic.network) {
                self.err(
                    format!("{nf}.network"),
                    format!("no network {:?} in spec.networks", nic.network),
                );
            } else {
                *per_network.entry(nic.network.as_str()).or_default() += u64::from(set.count);
            }
            if let Some(mtu) = nic.mtu
                && !(68..=65535).contains(&mtu)
            {
                self.err(format!("{nf}.mtu"), format!("{mtu} is outside 68-65535"));
            }
            if let Some(t) = &nic.interface_type
                && t != "network"
                && t != "bridge"
            {
                self.err(
                    format!("{nf}.type"),
                    format!("{t:?}: only network and bridge are supported"),
                );
            }
        }
        if let Some(boot) = &set.boot_interface_name
            && !set.network_interfaces.iter().any(|n| &n.name == boot)
        {
            self.err(
                format!("{f}.bootInterfaceName"),
                format!("{boot:?} is not one of networkInterfaces[].name"),
            );
        }
        if let Some(root) = &set.root_device_name
            && !root.starts_with("/dev/")
        {
            self.err(
                format!("{f}.rootDeviceName"),
                format!("{root:?} must be under /dev/"),
            );
        }
    }

    fn disks(&mut self, f: &str, set: &NodeSet) {
        let mut names = BTreeSet::new();
        let mut paths = BTreeSet::new();
        for (j, d) in set.disk_drives.iter().enumerate() {
            let df = format!("{f}.diskDrives[{j}]");
            if !is_dns_label(&d.name) || d.name.len() > 32 {
                self.err(
                    format!("{df}.name"),
                    format!("{:?} must be a DNS label of at most 32 characters", d.name),
                );
            }
            if d.name == "root" {
                self.err(format!("{df}.name"), "\"root\" is the flavor's root disk");
            }
            if !names.insert(d.name.as_str()) {
                self.err(
                    format!("{df}.name"),
                    format!("duplicate disk name {:?}", d.name),
                );
            }
            if let Some(t) = &d.disk_type
                && t != "file"
            {
                self.err(
                    format!("{df}.type"),
                    format!("{t:?}: only \"file\" (a qcow2 volume) is supported"),
                );
            }
            if let Some(p) = &d.path {
                let ok = p.len() == 8
                    && p.starts_with("/dev/vd")
                    && matches!(p.as_bytes()[7], b'b'..=b'z');
                if !ok {
                    self.err(
                        format!("{df}.path"),
                        format!("{p:?} must be /dev/vdb../dev/vdz"),
                    );
                } else if !paths.insert(p.as_str()) {
                    self.err(format!("{df}.path"), format!("{p} is used by another disk"));
                }
            }
            match d.options.as_ref().and_then(|o| o.size_gb) {
                None => self.err(format!("{df}.options.sizeGb"), "required"),
                Some(0) => self.err(format!("{df}.options.sizeGb"), "must be at least 1"),
                Some(_) => {}
            }
        }
        if set.disk_drives.len() > 8 {
            self.err(
                format!("{f}.diskDrives"),
                format!("{} disks; at most 8", set.disk_drives.len()),
            );
        }
    }
}
