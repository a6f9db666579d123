//! How soon the watches reconnect after the API server went away.
//!
//! kube's default (client-go's reflector: 0.8 s doubling up to 30 s, with jitter up to twice
//! that) made a host see a one-minute outage's end up to a minute late: its passes read the
//! watch caches, stale until the watch is back. These delays double from 0.5 s up to 8 s, each
//! stretched by up to half again by a per-host, per-watch spread (so that hundreds of hosts do
//! not come back in step), and start over after two minutes without an error.

use std::time::Duration;

use kube::runtime::utils::{Backoff, ResetTimerBackoff};

const FIRST: Duration = Duration::from_millis(500);
const LONGEST: Duration = Duration::from_secs(8);
const RESET_AFTER: Duration = Duration::from_secs(120);

/// The reconnect delays of one watch of one host.
pub struct Reconnect {
    next: Duration,
    state: u64,
    seed: u64,
}

impl Reconnect {
    /// The delays of watch `what` of host `node`, reset after two minutes without an error.
    pub fn of(node: &str, what: &str) -> ResetTimerBackoff<Reconnect> {
        ResetTimerBackoff::new(Reconnect::new(node, what), RESET_AFTER)
    }

    fn new(node: &str, what: &str) -> Reconnect {
        // A spread that differs between hosts and watches (never 0: xorshift would stay there).
        let digest = crate::hash::digest16(&format!("{node}\0{what}"));
        let mut first = [0u8; 8];
        first.copy_from_slice(&digest[..8]);
        let seed = u64::from_le_bytes(first) | 1;
        Reconnect {
            next: FIRST,
            state: seed,
            seed,
        }
    }

    /// The next spread, in [0, 1) (xorshift64).
    fn spread(&mut self) -> f64 {
        self.state ^= self.state << 13;
        self.state ^= self.state >> 7;
        self.state ^= self.state << 17;
        (self.state >> 11) as f64 / (1u64 << 53) as f64
    }
}

impl Iterator for Reconnect {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let base = self.next;
        self.next = (self.next * 2).min(LONGEST);
        Some(base.mul_f64(1.0 + self.spread() / 2.0))
    }
}

impl Backoff for Reconnect {
    fn reset(&mut self) {
        self.next = FIRST;
        self.state = self.seed;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_eight_seconds_and_are_spread() {
        let delays: Vec<Duration> = Reconnect::new("host-a", "Nodes").take(10).collect();
        let bases = [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0, 8.0, 8.0, 8.0];
        for (d, base) in delays.iter().zip(bases) {
            let s = d.as_secs_f64();
            assert!(s >= base && s < base * 1.5, "{s} for base {base}");
        }
        let other: Vec<Duration> = Reconnect::new("host-b", "Nodes").take(10).collect();
        assert_ne!(delays, other, "two hosts reconnect in step");
        let mut r = Reconnect::new("host-a", "Nodes");
        r.by_ref().take(6).for_each(drop);
        r.reset();
        assert_eq!(r.take(10).collect::<Vec<_>>(), delays);
    }
}
