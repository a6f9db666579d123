//! `vinod status`: asks the running daemon what it last saw and did.

use std::path::Path;

use anyhow::{Context, Result};

use vinod::api::Power;
use vinod::config::Config;
use vinod::daemon::status_socket::{self, Snapshot};

/// Prints the daemon's status as text or JSON.
pub fn show(config_path: &Path, json: bool) -> Result<()> {
    let text = std::fs::read_to_string(config_path)
        .with_context(|| format!("cannot read {}", config_path.display()))?;
    let config = Config::parse(&text, &config_path.display().to_string())?;
    let socket = config.run_dir.join(status_socket::SOCKET);
    let snap = status_socket::fetch(&socket)
        .with_context(|| "is vinod running? (the socket is root-only)")?;
    if json {
        println!("{}", serde_json::to_string_pretty(&snap)?);
    } else {
        print!("{}", render(&snap));
    }
    Ok(())
}

fn render(s: &Snapshot) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let when = if s.last_pass_unix == 0 {
        "no pass yet".to_string()
    } else {
        format!("last pass {}s ago", now.saturating_sub(s.last_pass_unix))
    };
    let mut out = format!(
        "node {}, {when}, {}\n",
        s.node,
        if s.converged {
            "converged"
        } else {
            "not converged"
        }
    );
    out.push_str(&format!(
        "\n{:<32} {:<12} {:<7} MESSAGE\n",
        "VINO", "PHASE", "VMS"
    ));
    for v in &s.vinos {
        let vms = format!("{}/{}", v.status.vms_ready, v.status.vms_total);
        out.push_str(&format!(
            "{:<32} {:<12} {:<7} {}\n",
            v.vino,
            format!("{:?}", v.status.phase),
            vms,
            v.status.message.as_deref().unwrap_or("")
        ));
    }
    out.push_str(&format!(
        "\n{:<40} {:<8} {:<6} {:<24} {:<6} IPS\n",
        "VM", "DEFINED", "POWER", "METAL3", "READY"
    ));
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    for vm in &s.vms {
        let power = match vm.power {
            Some(Power::On) => "on",
            Some(Power::Off) => "off",
            None => "-",
        };
        let metal3 = match vm.provisioning.as_deref() {
            None => "-",
            Some("") => "(no state yet)",
            Some(state) => state,
        };
        out.push_str(&format!(
            "{:<40} {:<8} {:<6} {:<24} {:<6} {}\n",
            vm.name,
            yes_no(vm.defined),
            power,
            metal3,
            yes_no(vm.ready),
            vm.ips.join(",")
        ));
        if let Some(why) = &vm.message {
            out.push_str(&format!("    {why}\n"));
        }
    }
    out.push_str(&format!(
        "\n{:<16} {:<16} {:<8} RESERVATIONS\n",
        "BRIDGE", "NETWORK", "DHCP"
    ));
    for d in &s.dhcp {
        out.push_str(&format!(
            "{:<16} {:<16} {:<8} {}\n",
            d.bridge,
            d.network,
            if d.running { "running" } else { "down" },
            d.reservations
        ));
    }
    if !s.errors.is_empty() {
        out.push_str("\nerrors:\n");
        for e in &s.errors {
            out.push_str(&format!("  {e}\n"));
        }
    }
    out
}
