//! The BMC under a connection flood from loopback, before any credential is checked: more
//! idle connections than its table holds, connections that send a request head slowly and
//! connections that send a body slowly. An authorized client is still answered, the slow ones
//! are closed at their deadlines, and the idle ones give way to newcomers.

#[path = "common/redfish_bed.rs"]
mod bed;
#[path = "common/bmc_client.rs"]
mod bmc_client;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use base64::Engine;
use vinod::redfish::listener::{BODY_TIME, Limits};

const IDLE: usize = 1500;
const SLOW_HEAD: usize = 200;
const SLOW_BODY: usize = 200;

fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).expect("connect")
}

/// One authorized GET on a fresh connection: its status and how long it took.
fn authorized_get(addr: SocketAddr, path: &str, user: &str, password: &str) -> (u16, Duration) {
    bmc_client::authorized_get(addr, path, user, password, Duration::from_secs(10))
}

/// Whether the server has closed `s` by now (a read sees the end, or a reset).
fn closed_by_server(s: &mut TcpStream) -> bool {
    s.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // A 408/400 answer before the close counts too; read on to the end.
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_idle_and_slow_connections_leaves_authorized_clients_served() {
    let vinos = bed::define_vinos("flood", &["fa"], 1).await;
    let state = tempfile::tempdir().unwrap();
    let config = bed::config(state.path(), 0, false);
    let running = bed::serve(&config, bed::credentials(&vinos)).await;
    let addr = running.addr;
    let v = vinos[0].clone();
    let system = format!("/redfish/v1/Systems/{}", v.vms[0]);
    let limits = Limits::default();
    assert!(
        IDLE > limits.max_connections,
        "the flood must overflow the table"
    );

    let flood = tokio::task::spawn_blocking(move || {
        let idle: Vec<TcpStream> = (0..IDLE).map(|_| connect(addr)).collect();
        let slow_head: Vec<TcpStream> = (0..SLOW_HEAD)
            .map(|_| {
                let mut s = connect(addr);
                s.write_all(b"GET /redfish/v1/ HTTP/1.1\r\nHost: bmc\r\n")
                    .unwrap();
                s
            })
            .collect();
        let slow_body: Vec<TcpStream> = (0..SLOW_BODY)
            .map(|_| {
                let mut s = connect(addr);
                s.write_all(
                    b"POST /redfish/v1/SessionService/Sessions HTTP/1.1\r\nHost: bmc\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"User",
                )
                .unwrap();
                s
            })
            .collect();
        (idle, slow_head, slow_body)
    });
    let (mut idle, mut slow_head, mut slow_body) = flood.await.unwrap();

    // Served throughout: every authorized request answers 200.
    let (user, password) = (v.username.clone(), v.password.clone());
    let latencies = tokio::task::spawn_blocking(move || {
        (0..20)
            .map(|_| authorized_get(addr, &system, &user, &password))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    for (status, took) in &latencies {
        assert_eq!(*status, 200, "an authorized GET during the flood");
        assert!(*took < Duration::from_secs(5), "answered after {took:?}");
    }

    // The table overflowed: the oldest silent connections were closed for the newcomers.
    let evicted = idle.iter_mut().map(closed_by_server).filter(|c| *c).count();
    assert!(
        evicted >= IDLE + SLOW_HEAD + SLOW_BODY - limits.max_connections,
        "only {evicted} idle connections gave way"
    );

    // Past the head and body deadlines every slow connection is closed.
    tokio::time::sleep(limits.head.max(BODY_TIME) + Duration::from_secs(2)).await;
    let heads = slow_head
        .iter_mut()
        .map(closed_by_server)
        .filter(|c| *c)
        .count();
    let bodies = slow_body
        .iter_mut()
        .map(closed_by_server)
        .filter(|c| *c)
        .count();
    assert_eq!(heads, SLOW_HEAD, "slow request heads still open");
    assert_eq!(bodies, SLOW_BODY, "slow request bodies still open");
    println!(
        "flood: {IDLE} idle, {SLOW_HEAD} slow-head, {SLOW_BODY} slow-body connections; {evicted} idle ones gave way; 20/20 authorized GETs answered, slowest {:?}",
        latencies.iter().map(|(_, t)| *t).max().unwrap()
    );
    running.stop().await;
}

/// `n` GETs of `path` with the given password, at once, each on its own connection from
/// `from`; their statuses.
async fn guesses(
    addr: SocketAddr,
    from: &str,
    path: &str,
    user: &str,
    password: &str,
    n: usize,
) -> Vec<u16> {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut tasks = Vec::new();
    for _ in 0..n {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: bmc\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n"
        );
        let from: std::net::IpAddr = from.parse().unwrap();
        tasks.push(tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(SocketAddr::new(from, 0)).unwrap();
            let mut s = socket.connect(addr).await.unwrap();
            s.write_all(request.as_bytes()).await.unwrap();
            let mut answer = String::new();
            let _ = s.read_to_string(&mut answer).await;
            answer
                .split_whitespace()
                .nth(1)
                .and_then(|c| c.parse().ok())
                .unwrap_or(0)
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_is_slowed_per_address() {
    use vinod::redfish::guessing::{BURST, MAX_WAIT, PER_SECOND};
    let vinos = bed::define_vinos("guess", &["ga"], 1).await;
    let state = tempfile::tempdir().unwrap();
    let running = bed::serve(
        &bed::config(state.path(), 0, false),
        bed::credentials(&vinos),
    )
    .await;
    let v = vinos[0].clone();
    let system = format!("/redfish/v1/Systems/{}", v.vms[0]);

    // 60 wrong passwords at once from 127.0.0.1: the burst is answered 401 at once, the next
    // ones only as the budget refills (held back at most MAX_WAIT), the rest refused unheard
    // (429).
    let began = Instant::now();
    let statuses = guesses(running.addr, "127.0.0.1", &system, &v.username, "wrong", 60).await;
    let took = began.elapsed();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    let unauthorized = statuses.iter().filter(|s| **s == 401).count();
    assert_eq!(refused + unauthorized, 60, "{statuses:?}");
    assert!(refused > 0, "no guess was refused: {statuses:?}");
    let checked = unauthorized as f64;
    let allowed = BURST + PER_SECOND * (took.as_secs_f64() + MAX_WAIT.as_secs_f64()) + 1.0;
    assert!(
        checked <= allowed,
        "{unauthorized} guesses checked in {took:?} (at most {allowed:.0})"
    );
    // Another address is served at once.
    let other = guesses(
        running.addr,
        "127.0.0.2",
        &system,
        &v.username,
        &v.password,
        3,
    )
    .await;
    assert_eq!(other, [200, 200, 200]);
    println!(
        "60 guesses at once: {unauthorized} checked (401), {refused} refused (429) in {took:?}; another address served"
    );
    running.stop().await;
}
