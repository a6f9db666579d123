//! The Kubernetes side of a host: IP claims in pools shared by every host and Vino, publication
//! of BareMetalHosts and Secrets, this host's `VinoNode` (its membership of a Vino and its
//! status there), the summary of the Vinos it coordinates, events, and the shared finalizer. Every write names this host: server-side apply uses the field manager
//! `vinod/<node>`, and every object vinod publishes carries `vino.airshipit.org/node`.
//!
//! Each function does one round of API calls and returns; the daemon loop decides when to call
//! them. Retries are bounded ([`MAX_ATTEMPTS`]) and only for optimistic-concurrency conflicts.

pub mod claims;
pub mod finalizer;
pub mod hardware;
pub mod membership;
pub mod publish;
pub mod recorder;
pub mod source;
pub mod status;
pub mod summary;
pub mod vm_events;

use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

use crate::plan::names::label_value;
use crate::reconcile::source::{Failure, FailureKind};

/// How often a read-modify-write is attempted before giving up on conflicts.
pub const MAX_ATTEMPTS: u32 = 40;

/// Errors of the Kubernetes layer.
#[derive(Debug, thiserror::Error)]
pub enum KubeError {
    /// An API request failed.
    #[error("{what}")]
    Api {
        /// What was being done, naming the object.
        what: String,
        /// The client's error (the API status, or the transport error).
        #[source]
        source: kube::Error,
    },
    /// Other writers kept changing the object between this host's read and write.
    #[error("{what}: still conflicting after {attempts} attempts")]
    Contended {
        /// What was being done.
        what: String,
        /// Attempts made.
        attempts: u32,
    },
    /// An object with the name vinod wants exists but is not this host's (no takeover).
    #[error("{kind} {namespace}/{name} exists and is not vinod's for this host and Vino: {why}")]
    Clash {
        /// Object kind.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// What does not match.
        why: String,
    },
    /// A planned object breaks a rule its admission webhook enforces (BMO's for hosts).
    #[error("{kind} {namespace}/{name} would be rejected: {problems}")]
    Rejected {
        /// Object kind.
        kind: &'static str,
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The broken rules, by field.
        problems: String,
    },
    /// An object the API server returned does not have the shape vinod reads.
    #[error("{what} is unreadable: {reason}")]
    Decode {
        /// The object.
        what: String,
        /// Why.
        reason: String,
    },
    /// The Vino lacks metadata the cluster always sets (name, namespace, uid).
    #[error("Vino {0} has no {1}: was it read from the API server?")]
    Incomplete(String, &'static str),
    /// The watch caches of Nodes and Vinos have not been filled yet.
    #[error("the watches of Nodes and Vinos have not listed them yet")]
    NotCached,
    /// This host's Node does not exist.
    #[error("Node {0} does not exist")]
    NoNode(String),
    /// A Vino being deleted still has `VinoNode`s of hosts that have not finished (or of Nodes
    /// that are gone and whose `VinoNode`s the garbage collector has not deleted yet).
    #[error("Vino {owner} waits for the teardown of hosts {hosts:?}")]
    Waiting {
        /// The Vino.
        owner: String,
        /// The hosts whose `VinoNode`s are left.
        hosts: Vec<String>,
    },
    /// Objects of a Vino that left this host are not all withdrawn yet.
    #[error("objects of {owner} not withdrawn yet: pending {pending:?}, {} failed", .errors.len())]
    NotWithdrawn {
        /// The Vino.
        owner: String,
        /// Objects waiting for a BareMetalHost being deleted.
        pending: Vec<String>,
        /// What failed.
        errors: Vec<KubeError>,
    },
}

impl Failure for KubeError {
    fn kind(&self) -> FailureKind {
        match self {
            KubeError::Api {
                source: kube::Error::Api(s),
                ..
            } if s.code == 400 || s.code == 422 => FailureKind::InvalidInput,
            KubeError::Api { .. }
            | KubeError::Contended { .. }
            | KubeError::NotCached
            | KubeError::NoNode(_)
            | KubeError::Waiting { .. }
            | KubeError::NotWithdrawn { .. } => FailureKind::ApiUnreachable,
            KubeError::Clash { .. }
            | KubeError::Rejected { .. }
            | KubeError::Incomplete(..)
            | KubeError::Decode { .. } => FailureKind::InvalidInput,
        }
    }
}

impl KubeError {
    fn api(what: impl Into<String>, source: kube::Error) -> Self {
        KubeError::Api {
            what: what.into(),
            source,
        }
    }
}

/// The server-side apply field manager of host `node`: `vinod/<node>`.
pub fn field_manager(node: &str) -> String {
    format!("vinod/{node}")
}

/// The prefix of every host's finalizer on a Vino (earlier versions; see
/// [`membership::FINALIZER`] for the one used now).
pub const HOST_FINALIZER_PREFIX: &str = "vino.airshipit.org/";

/// Host `node`'s finalizer on a Vino in earlier versions: `vino.airshipit.org/<node>` (the node part bounded to a
/// valid qualified name, hashed if the node name is longer than 63 characters).
pub fn finalizer_name(node: &str) -> String {
    format!("{HOST_FINALIZER_PREFIX}{}", label_value(node))
}

/// Whether the error is an API status with `code`.
pub(crate) fn is_status(e: &kube::Error, code: u16) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == code)
}

/// Sleeps before attempt `attempt + 1` of a contended write: 5–25 ms growing to 100–500 ms,
/// randomised so that hosts that collided once do not collide again in step.
pub(crate) async fn backoff(attempt: u32) {
    let base = 5u64 << attempt.min(6);
    let jitter = RandomState::new().hash_one(attempt) % (base * 4);
    tokio::time::sleep(Duration::from_millis(base.min(100) + jitter.min(400))).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_have_kinds() {
        let clash = KubeError::Clash {
            kind: "BareMetalHost",
            namespace: "ns".into(),
            name: "h".into(),
            why: "not vinod's".into(),
        };
        assert_eq!(clash.kind(), FailureKind::InvalidInput);
        let contended = KubeError::Contended {
            what: "x".into(),
            attempts: 3,
        };
        assert_eq!(contended.kind(), FailureKind::ApiUnreachable);
        let status = |code| {
            KubeError::api(
                "read",
                kube::Error::Api(
                    kube::core::Status::failure("no", "Reason")
                        .with_code(code)
                        .boxed(),
                ),
            )
        };
        assert_eq!(status(403).kind(), FailureKind::ApiUnreachable);
        assert_eq!(status(422).kind(), FailureKind::InvalidInput);
    }

    #[test]
    fn names_per_host() {
        assert_eq!(field_manager("node-a"), "vinod/node-a");
        assert_eq!(finalizer_name("node-a"), "vino.airshipit.org/node-a");
        let long = "n".repeat(80);
        let f = finalizer_name(&long);
        let name = f.strip_prefix("vino.airshipit.org/").unwrap();
        assert!(name.len() <= 63 && !name.is_empty(), "{f}");
        assert_ne!(finalizer_name(&"n".repeat(81)), f);
    }
}
