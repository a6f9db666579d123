//! Serves vinod's Redfish BMC in front of VMs on libvirt's test driver, for interoperability
//! runs and the benchmark: `cargo run --example redfish_testbed -- PORT [VMS] [--http]`.
//! Prints one JSON line when ready (address, credentials, System ids, and what it runs on:
//! tokio worker threads, VM count, the libvirt driver that answered); stops on SIGTERM or
//! SIGINT.

#[path = "../tests/common/redfish_bed.rs"]
mod bed;
#[path = "../benches/shared/report.rs"]
mod report;

use tokio::signal::unix::{SignalKind, signal};

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let port: u16 = args.first().and_then(|p| p.parse().ok()).unwrap_or(0);
    let vms: u32 = args.get(1).and_then(|p| p.parse().ok()).unwrap_or(2);
    let tls = !args.iter().any(|a| a == "--http");
    let state = tempfile::tempdir().expect("temp dir");
    let vinos = bed::define_vinos("bench", &["a", "b"], vms).await;
    let table = bed::credentials(&vinos);
    let config = bed::config(state.path(), port, tls);
    let running = bed::serve(&config, table).await;
    let workers = tokio::runtime::Handle::current().metrics().num_workers();
    let ready = serde_json::json!({
        "workers": workers,
        "vms": vinos.iter().map(|v| v.vms.len()).sum::<usize>(),
        "libvirt": report::libvirt_driver(bed::URI),
        "cert": state.path().join("redfish/cert.pem"),
        "url": format!("{}://127.0.0.1:{}", if tls { "https" } else { "http" }, running.addr.port()),
        "vinos": vinos.iter().map(|v| serde_json::json!({
            "username": v.username, "password": v.password, "systems": v.vms,
        })).collect::<Vec<_>>(),
    });
    println!("{ready}");
    let mut term = signal(SignalKind::terminate()).expect("signal");
    let mut int = signal(SignalKind::interrupt()).expect("signal");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    running.stop().await;
}
