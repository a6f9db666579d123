//! A bare HTTP/1.1 client for BMC tests that must see what a socket sees (refusals, waits,
//! closes): one authorized GET on a fresh connection.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use base64::Engine;

/// GETs `path` with HTTP Basic `user:password` on a new plain-HTTP connection to `addr`,
/// waiting at most `wait` for the answer. Returns its status (0 when the connection failed or
/// no answer came) and how long it all took.
pub fn authorized_get(
    addr: SocketAddr,
    path: &str,
    user: &str,
    password: &str,
    wait: Duration,
) -> (u16, Duration) {
    let began = Instant::now();
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_secs(5)) else {
        return (0, began.elapsed());
    };
    s.set_read_timeout(Some(wait)).unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let _ = write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: bmc\r\nAuthorization: Basic {auth}\r\nConnection: close\r\n\r\n"
    );
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let status = answer
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, began.elapsed())
}
