//! Slows down credential guessing. Each client address has a budget of failed
//! authentications ([`BURST`], refilled at [`PER_SECOND`]); a failure beyond it is answered
//! only after the client's debt is paid off, and a client deeper in debt than [`MAX_WAIT`] is
//! refused at once without its credentials being checked. Failures are logged at warn, at
//! most once per [`WARN_EVERY`] per address, with how many there were.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Failed authentications a client may make at once.
pub const BURST: f64 = 10.0;
/// Failed authentications a client regains per second.
pub const PER_SECOND: f64 = 2.0;
/// Longest a failure is held back; a client further in debt is refused unheard.
pub const MAX_WAIT: Duration = Duration::from_secs(5);
/// How often failures of one address are logged at most.
pub const WARN_EVERY: Duration = Duration::from_secs(10);
/// Addresses tracked at most; the ones with a full budget are forgotten first.
const MAX_CLIENTS: usize = 4096;

/// What to do with a request that carries credentials.
#[derive(Debug, PartialEq)]
pub enum Admission {
    /// Check its credentials.
    Check,
    /// Refuse it without checking: the client failed too often.
    Refuse(Duration),
}

#[derive(Debug)]
struct Budget {
    tokens: f64,
    at: Instant,
    failures_unlogged: u64,
    warned: Option<Instant>,
}

/// Failed authentications per client address.
#[derive(Debug, Default)]
pub struct Guessing {
    clients: Mutex<HashMap<IpAddr, Budget>>,
}

impl Guessing {
    /// Whether a request from `client` may have its credentials checked.
    pub fn admit(&self, client: IpAddr) -> Admission {
        let now = Instant::now();
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        match clients.get_mut(&client) {
            Some(b) => {
                refill(b, now);
                let debt = Duration::from_secs_f64((-b.tokens).max(0.0) / PER_SECOND);
                if debt > MAX_WAIT {
                    Admission::Refuse(debt)
                } else {
                    Admission::Check
                }
            }
            None => Admission::Check,
        }
    }

    /// Records a failed authentication of `client`; returns how long to hold the answer.
    pub fn failed(&self, client: IpAddr) -> Duration {
        let now = Instant::now();
        let mut clients = self.clients.lock().unwrap_or_else(PoisonError::into_inner);
        if clients.len() >= MAX_CLIENTS && !clients.contains_key(&client) {
            clients.retain(|_, b| {
                refill(b, now);
                b.tokens < BURST
            });
        }
        let b = clients.entry(client).or_insert(Budget {
            tokens: BURST,
            at: now,
            failures_unlogged: 0,
            warned: None,
        });
        refill(b, now);
        b.tokens -= 1.0;
        b.failures_unlogged += 1;
        if b.warned.is_none_or(|w| now.duration_since(w) >= WARN_EVERY) {
            tracing::warn!(%client, failures = b.failures_unlogged, "Redfish BMC: failed authentication");
            b.failures_unlogged = 0;
            b.warned = Some(now);
        }
        Duration::from_secs_f64((-b.tokens).max(0.0) / PER_SECOND).min(MAX_WAIT)
    }
}

fn refill(b: &mut Budget, now: Instant) {
    let gained = now.duration_since(b.at).as_secs_f64() * PER_SECOND;
    b.tokens = (b.tokens + gained).min(BURST);
    b.at = now;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_is_free_then_failures_wait_then_they_are_refused() {
        let g = Guessing::default();
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..BURST as usize {
            assert_eq!(g.admit(a), Admission::Check);
            assert_eq!(g.failed(a), Duration::ZERO);
        }
        let wait = g.failed(a);
        assert!(wait > Duration::from_millis(400), "{wait:?}");
        for _ in 0..20 {
            g.failed(a);
        }
        assert!(matches!(g.admit(a), Admission::Refuse(_)));
        // Another client is not affected.
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert_eq!(g.admit(b), Admission::Check);
        assert_eq!(g.failed(b), Duration::ZERO);
    }
}
