//! `vinod run`: wires the real adapters into the daemon loop.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use vinod::config::Config;
use vinod::daemon::{self, Cluster, Notifier, RunOptions, Standalone};
use vinod::host::bridge::NetlinkBridges;
use vinod::host::dnsmasq::Dnsmasq;
use vinod::host::facts;
use vinod::host::libvirt::Libvirt;
use vinod::plan::NodeFacts;
use vinod::reconcile::Adapters;
use vinod::redfish::{self, BmcCredentials};

/// Environment variable that makes vinod kill itself (SIGKILL) after that many operations of
/// a pass: the crash-safety tests use it to stop vinod at chosen points.
pub const CRASH_AFTER_OPS: &str = "VINOD_TEST_CRASH_AFTER_OPS";

/// Runs the daemon; returns whether the last pass converged.
pub fn run(config_path: &Path, standalone: Option<PathBuf>, once: bool) -> Result<bool> {
    let text = std::fs::read_to_string(config_path)
        .with_context(|| format!("cannot read {}", config_path.display()))?;
    let config = Config::parse(&text, &config_path.display().to_string())?;
    super::log::init(&config.log);
    let crash_after: Option<usize> = std::env::var(CRASH_AFTER_OPS)
        .ok()
        .and_then(|v| v.parse().ok());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let hook = move |n: usize| {
        if crash_after == Some(n) {
            let _ = nix::sys::signal::raise(nix::sys::signal::Signal::SIGKILL);
        }
    };
    let mut opts = RunOptions {
        once,
        config_path: Some(config_path.to_path_buf()),
        redfish_requests: None,
    };
    let Some(manifest) = standalone else {
        return rt.block_on(run_cluster(config, &mut opts, &hook));
    };
    rt.block_on(async {
        let node = node_facts(&config);
        tracing::info!(node = %node.name, manifest = %manifest.display(), "vinod starting (standalone)");
        let adapters = Adapters {
            bridges: NetlinkBridges::new().context("cannot open a netlink connection")?,
            dhcp: Dnsmasq::new(&config.dhcp.dnsmasq, &config.run_dir).context("cannot start the DHCP supervisor")?,
            hypervisor: Libvirt::new(&config.libvirt),
        };
        // The Redfish BMC runs beside the loop, on its own libvirt connection.
        let bmc_credentials = BmcCredentials::until_first_pass();
        let bmc = if once {
            None
        } else {
            let machines = Libvirt::new(&config.libvirt);
            Some(redfish::start(&config, machines, bmc_credentials.clone()).await.context("cannot start the Redfish BMC")?)
        };
        opts.redfish_requests = bmc.as_ref().map(|b| b.requests.clone());
        let mut d = Standalone::new(adapters, config, node, manifest).with_bmc_credentials(bmc_credentials);
        let converged = daemon::run_loop(&mut d, &opts, &Notifier::new(), &hook).await;
        if let Some(bmc) = bmc {
            bmc.stop().await;
        }
        Ok(converged?)
    })
}

/// Cluster mode: the Vinos and this host's Node from the API server (`KUBECONFIG` or the
/// in-cluster service account).
async fn run_cluster(
    config: Config,
    opts: &mut RunOptions,
    hook: &(dyn Fn(usize) + Sync),
) -> Result<bool> {
    let node = facts::node_name(&config.node_name);
    tracing::info!(node = %node, "vinod starting (cluster)");
    let client = kube::Client::try_default()
        .await
        .context("cannot configure the Kubernetes client (KUBECONFIG or in-cluster)")?;
    let adapters = Adapters {
        bridges: NetlinkBridges::new().context("cannot open a netlink connection")?,
        dhcp: Dnsmasq::new(&config.dhcp.dnsmasq, &config.run_dir)
            .context("cannot start the DHCP supervisor")?,
        hypervisor: Libvirt::new(&config.libvirt),
    };
    // The Redfish BMC runs beside the loop, on its own libvirt connection.
    let bmc_credentials = BmcCredentials::until_first_pass();
    let bmc = if opts.once {
        None
    } else {
        let machines = Libvirt::new(&config.libvirt);
        Some(
            redfish::start(&config, machines, bmc_credentials.clone())
                .await
                .context("cannot start the Redfish BMC")?,
        )
    };
    opts.redfish_requests = bmc.as_ref().map(|b| b.requests.clone());
    let mut d = Cluster::new(adapters, config, client, node).with_bmc_credentials(bmc_credentials);
    if !opts.once {
        d.watch();
    }
    let converged = daemon::run_loop(&mut d, opts, &Notifier::new(), hook).await;
    if let Some(bmc) = bmc {
        bmc.stop().await;
    }
    Ok(converged?)
}

fn node_facts(config: &Config) -> NodeFacts {
    let addresses = match config.redfish.advertise_address {
        Some(ip) => vec![ip],
        None => facts::ipv4_addresses(),
    };
    NodeFacts {
        name: facts::node_name(&config.node_name),
        labels: Default::default(),
        addresses,
        numa: facts::numa_nodes(Path::new("/sys")),
        down: false,
    }
}
