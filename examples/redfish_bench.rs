//! A small Redfish load generator for `scripts/bench-redfish.sh`: N concurrent clients, each
//! on its own keep-alive HTTP/1.1 connection, send requests back to back for a fixed time and
//! record every latency. Prints one JSON line: requests, errors, throughput, p50, p99, and
//! what was measured against: the TLS version and cipher suite a handshake negotiates, the
//! server's `Server` header, whether requests carried credentials, the warm-up.
//!
//! ```text
//! redfish_bench --url https://127.0.0.1:8000 --path /redfish/v1/Systems/x [--ca cert.pem]
//!               [--user u --password p] [--clients 32] [--seconds 5] [--reset] [--flood N]
//! ```
//! With `--flood N`, N more connections to the server are opened before the warm-up and held
//! idle until the end (each one the server closes is opened again): the flood an authorized
//! client must be served through.
//! With `--reset`, each request is a `ComputerSystem.Reset` POST to `--path`, alternating
//! `ForceOff` and `On`; `--path` may hold `{i}`, replaced by the client number modulo
//! `--systems`.

use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// How long the clients run before the timed run.
const WARM_UP_MS: u64 = 300;

#[derive(Clone)]
struct Args {
    url: String,
    path: String,
    ca: Option<String>,
    auth: Option<String>,
    clients: usize,
    seconds: u64,
    reset: bool,
    systems: usize,
    flood: usize,
}

fn args() -> Args {
    let mut a = Args {
        url: String::new(),
        path: "/redfish/v1/".into(),
        ca: None,
        auth: None,
        clients: 1,
        seconds: 5,
        reset: false,
        systems: 1,
        flood: 0,
    };
    let mut user = None;
    let mut password = None;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => a.url = value(),
            "--path" => a.path = value(),
            "--ca" => a.ca = Some(value()),
            "--user" => user = Some(value()),
            "--password" => password = Some(value()),
            "--clients" => a.clients = value().parse().expect("--clients"),
            "--seconds" => a.seconds = value().parse().expect("--seconds"),
            "--systems" => a.systems = value().parse().expect("--systems"),
            "--reset" => a.reset = true,
            "--flood" => a.flood = value().parse().expect("--flood"),
            other => panic!("unknown argument {other}"),
        }
    }
    if let (Some(u), Some(p)) = (user, password) {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"));
        a.auth = Some(format!("Basic {token}"));
    }
    a
}

fn tls_config(ca: Option<&str>) -> rustls::ClientConfig {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(path) = ca {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        for cert in CertificateDer::pem_file_iter(path).expect("CA file") {
            roots
                .add(cert.expect("CA certificate"))
                .expect("CA certificate");
        }
    }
    rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth()
}

/// What one client measured: latencies (µs), failed requests, the first `Server` header.
struct Measured {
    latencies: Vec<u32>,
    errors: u64,
    server: Option<String>,
}

/// The TLS version and cipher suite a handshake with the server negotiates; `None` for
/// `http://`.
fn tls_negotiated(a: &Args) -> Option<String> {
    let authority = a.url.strip_prefix("https://")?.split('/').next()?;
    let host = authority.rsplit_once(':').map_or(authority, |(h, _)| h);
    let name = rustls::pki_types::ServerName::try_from(host.to_string()).ok()?;
    let config = Arc::new(tls_config(a.ca.as_deref()));
    let mut conn = rustls::ClientConnection::new(config, name).ok()?;
    let mut sock = std::net::TcpStream::connect(authority).ok()?;
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).ok()?;
    }
    let version = format!("{:?}", conn.protocol_version()?).replace("TLSv1_", "TLS 1.");
    let suite = conn.negotiated_cipher_suite()?.suite();
    Some(format!("{version}, {suite:?}"))
}

async fn client_loop(a: Arc<Args>, id: usize, deadline: Instant) -> Measured {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls_config(a.ca.as_deref()))
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1)
        .build(connector);
    let path = a.path.replace("{i}", &(id % a.systems.max(1)).to_string());
    let uri = format!("{}{}", a.url, path);
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut server = None;
    let mut n: u64 = 0;
    while Instant::now() < deadline {
        let mut req = Request::builder().uri(&uri);
        let body = if a.reset {
            req = req
                .method(Method::POST)
                .header("content-type", "application/json");
            let kind = if n.is_multiple_of(2) {
                "ForceOff"
            } else {
                "On"
            };
            Full::new(Bytes::from(format!("{{\"ResetType\":\"{kind}\"}}")))
        } else {
            req = req.method(Method::GET);
            Full::new(Bytes::new())
        };
        if let Some(auth) = &a.auth {
            req = req.header("authorization", auth);
        }
        let began = Instant::now();
        let ok = match client.request(req.body(body).expect("request")).await {
            Ok(resp) => {
                let status = resp.status();
                if server.is_none() {
                    server = resp
                        .headers()
                        .get("server")
                        .and_then(|v| v.to_str().ok())
                        .map(String::from);
                }
                let drained = resp.into_body().collect().await.is_ok();
                drained && status.is_success()
            }
            Err(_) => false,
        };
        latencies.push(began.elapsed().as_micros().min(u32::MAX as u128) as u32);
        if !ok {
            errors += 1;
        }
        n += 1;
    }
    Measured {
        latencies,
        errors,
        server,
    }
}

/// Holds `n` idle connections to `url`'s server until `stop` is set, opening again each one the
/// server closes; returns how many it opened in all.
fn flood(url: &str, n: usize, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<usize> {
    let uri: hyper::Uri = url.parse().expect("--url");
    let host = uri
        .host()
        .expect("--url has a host")
        .trim_matches(['[', ']']);
    let addr = std::net::SocketAddr::new(
        host.parse().expect("--url names an IP"),
        uri.port_u16().expect("--url has a port"),
    );
    std::thread::spawn(move || {
        let open = || {
            TcpStream::connect(addr).ok().inspect(|s| {
                let _ = s.set_nonblocking(true);
            })
        };
        let mut held: Vec<Option<TcpStream>> = (0..n).map(|_| open()).collect();
        let mut opened = n;
        while !stop.load(Ordering::Relaxed) {
            for slot in &mut held {
                let closed = match slot {
                    None => true,
                    Some(s) => match s.peek(&mut [0u8; 1]) {
                        Ok(0) => true,
                        Ok(_) => false,
                        Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
                    },
                };
                if closed {
                    *slot = open();
                    opened += 1;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        opened
    })
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let a = Arc::new(args());
    let stop = Arc::new(AtomicBool::new(false));
    let flooding = (a.flood > 0).then(|| flood(&a.url, a.flood, Arc::clone(&stop)));
    // Warm-up: the clients run for a moment, on connections of their own, before timing starts.
    let warm = Instant::now() + Duration::from_millis(WARM_UP_MS);
    let tasks: Vec<_> = (0..a.clients)
        .map(|i| tokio::spawn(client_loop(Arc::clone(&a), i, warm)))
        .collect();
    for t in tasks {
        let _ = t.await;
    }
    let began = Instant::now();
    let deadline = began + Duration::from_secs(a.seconds);
    let tasks: Vec<_> = (0..a.clients)
        .map(|i| tokio::spawn(client_loop(Arc::clone(&a), i, deadline)))
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    let mut server = None;
    for t in tasks {
        let m = t.await.expect("client task");
        all.extend(m.latencies);
        errors += m.errors;
        server = server.or(m.server);
    }
    let elapsed = began.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let flood_opened = flooding.map(|f| f.join().expect("flood thread"));
    all.sort_unstable();
    let pct = |p: f64| {
        if all.is_empty() {
            0.0
        } else {
            all[((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1] as f64 / 1000.0
        }
    };
    println!(
        "{}",
        serde_json::json!({
            "requests": all.len(),
            "errors": errors,
            "seconds": elapsed,
            "rps": all.len() as f64 / elapsed,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "clients": a.clients,
            "warm_up_ms": WARM_UP_MS,
            "tls": tls_negotiated(&a),
            "server": server,
            "credentials": a.auth.is_some(),
            "flood": a.flood,
            "flood_opened": flood_opened,
        })
    );
}
