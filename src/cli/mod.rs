//! Command line: argument parsing and the subcommands.

mod log;
mod run;
mod status_command;

use std::collections::BTreeMap;
use std::fs;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use k8s_openapi::api::core::v1::Secret;
use serde::Deserialize;

use vinod::api;
use vinod::config::{self, Config};
use vinod::ipam::NetworkClaims;
use vinod::plan::{self, NodeFacts, NumaNode, PlanInput};
use vinod::render::objects::Credentials;
use vinod::value::CpuSet;

/// vinod: builds the VMs of the Vinos that select this host and publishes them to metal3.
#[derive(Parser, Debug)]
#[command(name = "vinod", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the daemon.
    Run {
        /// Configuration file.
        #[arg(long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
        /// Run without a cluster, from a manifest of Vinos (and their Secrets) on disk. Without
        /// it vinod runs in cluster mode (KUBECONFIG or the in-cluster service account).
        #[arg(long, value_name = "FILE")]
        standalone: Option<PathBuf>,
        /// Reconcile once and exit: 0 if the host converged, 1 otherwise.
        #[arg(long)]
        once: bool,
    },
    /// Print what a Vino wants on a host: bridges, DHCP, volumes, domains, BareMetalHosts.
    /// Needs no root, no libvirt and no cluster.
    Plan(PlanArgs),
    /// Print the CustomResourceDefinition YAML.
    Crd {
        /// Print the BareMetalHost CRD subset (for clusters without metal3) instead.
        #[arg(long, conflicts_with_all = ["claims", "pool_claims", "vino_nodes"])]
        bmh: bool,
        /// Print the VinoIPClaim CRD (the per-Vino IP claims of earlier versions, read once
        /// to keep their addresses) instead.
        #[arg(long, conflicts_with_all = ["pool_claims", "vino_nodes"])]
        claims: bool,
        /// Print the VinoPoolClaim CRD (one claimed address or DHCP block) instead.
        #[arg(long, conflicts_with = "vino_nodes")]
        pool_claims: bool,
        /// Print the VinoNode CRD (one host's membership of a Vino and its status) instead.
        #[arg(long)]
        vino_nodes: bool,
    },
    /// Show what the running daemon last saw and did (Vinos, VMs, DHCP servers, errors).
    Status {
        /// Configuration file (to find the daemon's socket).
        #[arg(long, default_value = config::DEFAULT_PATH)]
        config: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Validate a configuration file. `vinod help check-config` lists every key with its
    /// default.
    #[command(after_long_help = concat!("Configuration keys (all optional; the values shown are the defaults):\n\n", include_str!("../../packaging/vinod.toml")))]
    CheckConfig {
        /// The file.
        #[arg(default_value = config::DEFAULT_PATH)]
        path: PathBuf,
    },
    /// Print per-host bindings of the admission policy vinod-node-facts, for
    /// `kubectl apply -f -`: each named host's BareMetalHosts and VinoNodes are then checked
    /// against its own Node only, so a write no longer costs more the more Nodes there are
    /// (see docs/kubernetes.md). Hosts not named stay checked by the shipped binding.
    PolicyBindings {
        /// The Node names of the vinod hosts.
        #[arg(required = true)]
        nodes: Vec<String>,
    },
    /// Print the version.
    Version,
}

#[derive(clap::Args, Debug)]
struct PlanArgs {
    /// Vino manifest (YAML or JSON).
    #[arg(long, value_name = "FILE")]
    vino: PathBuf,
    /// Node (host) name. Default: this machine's hostname.
    #[arg(long)]
    node: Option<String>,
    /// Node labels, `k=v,k2=v2`.
    #[arg(long, value_name = "LABELS", default_value = "")]
    node_labels: String,
    /// Node InternalIP (repeatable; the first is published as the BMC address).
    #[arg(long = "node-address", value_name = "IP")]
    node_addresses: Vec<IpAddr>,
    /// NUMA layout, `0:0-7;1:8-15`. Default: this machine's.
    #[arg(long, value_name = "LAYOUT")]
    numa: Option<String>,
    /// Configuration file. Default: the packaged one if present, else built-in defaults.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Secret manifests to resolve `bmcCredentials.secretRef` from (repeatable).
    #[arg(long = "secret", value_name = "FILE")]
    secrets: Vec<PathBuf>,
    /// Existing IP claims (YAML: network → host → claims), e.g. from other hosts.
    #[arg(long, value_name = "FILE")]
    claims: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Yaml)]
    output: Output,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Output {
    Yaml,
    Json,
}

/// Runs the command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Run {
            config,
            standalone,
            once,
        } => {
            if run::run(&config, standalone, once)? {
                Ok(())
            } else {
                bail!("the host did not converge (see the log)")
            }
        }
        Command::Plan(args) => plan_cmd(&args),
        Command::PolicyBindings { nodes } => {
            print!("{}", vinod::render::policy_bindings::bindings(&nodes)?);
            Ok(())
        }
        Command::Status { config, json } => status_command::show(&config, json),
        Command::Crd {
            bmh,
            claims,
            pool_claims,
            vino_nodes,
        } => {
            print!(
                "{}",
                if bmh {
                    api::crd::bmh_crd_yaml()
                } else if claims {
                    api::crd::claim_crd_yaml()
                } else if pool_claims {
                    api::crd::pool_claim_crd_yaml()
                } else if vino_nodes {
                    api::crd::vino_node_crd_yaml()
                } else {
                    api::crd::vino_crd_yaml()
                }
            );
            Ok(())
        }
        Command::CheckConfig { path } => {
            load_config(&path)?;
            println!("{}: OK", path.display());
            Ok(())
        }
        Command::Version => {
            println!("vinod {}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
    }
}

fn load_config(path: &Path) -> Result<Config> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    Ok(Config::parse(&text, &path.display().to_string())?)
}

fn plan_cmd(args: &PlanArgs) -> Result<()> {
    let text = fs::read_to_string(&args.vino)
        .with_context(|| format!("cannot read {}", args.vino.display()))?;
    let vino = api::parse_vino(&text).with_context(|| args.vino.display().to_string())?;
    let config = match &args.config {
        Some(p) => load_config(p)?,
        None if Path::new(config::DEFAULT_PATH).exists() => {
            load_config(Path::new(config::DEFAULT_PATH))?
        }
        None => Config::parse("", "(defaults)")?,
    };
    let node = NodeFacts {
        name: args
            .node
            .clone()
            .unwrap_or_else(|| vinod::host::facts::node_name(&config.node_name)),
        labels: parse_labels(&args.node_labels)?,
        addresses: args.node_addresses.clone(),
        numa: match &args.numa {
            Some(layout) => parse_numa(layout)?,
            None => vinod::host::facts::numa_nodes(Path::new("/sys")),
        },
        down: false,
    };
    // A broken Vino is reported whether or not it selects this host.
    api::validate::check(&vino.spec)?;
    if !plan::selects(&vino, &node) {
        eprintln!(
            "Vino {} does not select node {}: its nodeSelector does not match the node's labels",
            vino.metadata.name.as_deref().unwrap_or(""),
            node.name
        );
        return Ok(());
    }
    let claims: BTreeMap<String, NetworkClaims> = match &args.claims {
        Some(p) => serde_yaml::from_str(
            &fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))?,
        )
        .with_context(|| format!("{}: not a claims file", p.display()))?,
        None => BTreeMap::new(),
    };
    let credentials = resolve_credentials(&vino, &args.secrets)?;
    let plan = plan::plan(PlanInput {
        vino: &vino,
        node: &node,
        config: &config,
        claims: &claims,
        credentials: credentials.as_ref(),
        taken_cpus: &CpuSet::default(),
        current_pins: &Default::default(),
        host_network: &Default::default(),
        retained: &[],
    })?;
    for w in &plan.warnings {
        eprintln!("warning: {w}");
    }
    let redacted = plan.redacted();
    match args.output {
        Output::Yaml => print!("{}", serde_yaml::to_string(&redacted)?),
        Output::Json => println!("{}", serde_json::to_string_pretty(&redacted)?),
    }
    Ok(())
}

fn parse_labels(text: &str) -> Result<BTreeMap<String, String>> {
    let mut labels = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some((k, v)) = item.split_once('=') else {
            bail!("--node-labels: {item:?} is not key=value")
        };
        if let Some(e) = vinod::value::syntax::label_key_error(k) {
            bail!("--node-labels: {e}");
        }
        labels.insert(k.to_string(), v.to_string());
    }
    Ok(labels)
}

fn parse_numa(text: &str) -> Result<Vec<NumaNode>> {
    text.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let (id, cpus) = item
                .split_once(':')
                .with_context(|| format!("--numa: {item:?} is not <node>:<cpulist>"))?;
            let id = id
                .trim()
                .parse()
                .with_context(|| format!("--numa: {id:?} is not a NUMA node number"))?;
            let cpus = cpus
                .parse::<CpuSet>()
                .map_err(|e| anyhow::anyhow!("--numa: {e}"))?;
            Ok(NumaNode { id, cpus })
        })
        .collect()
}

fn resolve_credentials(vino: &api::Vino, files: &[PathBuf]) -> Result<Option<Credentials>> {
    let Some((_, name)) = plan::credentials::secret_ref(vino) else {
        return Ok(None);
    };
    for f in files {
        let text = fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?;
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let secret = Secret::deserialize(doc)
                .with_context(|| format!("{}: not a Secret manifest", f.display()))?;
            if secret.metadata.name.as_deref() == Some(name.as_str()) {
                return Ok(Some(plan::credentials::decode(&secret)?));
            }
        }
    }
    Ok(None)
}
