//! Who may reach which VM: the BMC credentials of each Vino (kept current by the daemon) and
//! the Redfish sessions logged in with them.
//!
//! A request authenticates with HTTP Basic or an `X-Auth-Token`, and sees the VMs of every
//! Vino whose credentials it presented. Credentials and tokens are kept only as SHA-256
//! digests and compared in constant time; neither is ever logged.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

use crate::render::objects::Credentials;
use crate::state::Owner;

/// Idle time after which a session ends (Redfish `SessionTimeout`).
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(1800);
/// Most sessions kept at once per set of credentials (a Vino's); the least recently used of
/// them goes first, so one tenant's logins never end another's sessions. The whole table is
/// bounded by this times the number of credentials in use: sessions of withdrawn credentials
/// go at the next login.
pub const MAX_SESSIONS_PER_CREDENTIALS: usize = 64;

type Digest32 = [u8; 32];

/// The BMC credentials of each Vino on this host, shared between the daemon (which replaces
/// them on every reconcile pass) and the Redfish server.
#[derive(Clone)]
pub struct BmcCredentials {
    table: Arc<RwLock<BTreeMap<Owner, Digest32>>>,
    /// Whether the table is current (see [`BmcCredentials::until_first_pass`]).
    current: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for BmcCredentials {
    /// An empty table, current at once: whoever fills it does so before serving.
    fn default() -> Self {
        Self {
            table: Arc::default(),
            current: Arc::new(tokio::sync::watch::Sender::new(true)),
        }
    }
}

impl std::fmt::Debug for BmcCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BmcCredentials")
            .field("vinos", &self.read().len())
            .finish()
    }
}

impl BmcCredentials {
    /// An empty table that is not current until [`mark_current`](Self::mark_current): the
    /// daemon's, filled by its passes. The BMC accepts no connection before (they wait in the
    /// socket's backlog), so a restarted vinod never answers 401 or 404 for VMs it simply has
    /// not looked at yet.
    pub fn until_first_pass() -> Self {
        Self {
            table: Arc::default(),
            current: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }

    /// Marks the table current: a pass has filled it and brought the host in line.
    pub fn mark_current(&self) {
        self.current
            .send_if_modified(|c| !std::mem::replace(c, true));
    }

    /// Waits until the table is current.
    pub async fn current(&self) {
        let mut rx = self.current.subscribe();
        let _ = rx.wait_for(|c| *c).await;
    }

    /// Replaces the whole table. Entries with an empty user name or password never match.
    /// Sessions of credentials no longer in the table stop working.
    pub fn replace(&self, table: &BTreeMap<Owner, Credentials>) {
        let digests = table
            .iter()
            .filter(|(_, c)| !c.username.is_empty() && !c.password.is_empty())
            .map(|(o, c)| (o.clone(), credential_digest(&c.username, &c.password)))
            .collect();
        *self.table.write().unwrap_or_else(PoisonError::into_inner) = digests;
    }

    /// The Vinos whose credentials have this digest.
    fn owners(&self, digest: &Digest32) -> BTreeSet<Owner> {
        self.read()
            .iter()
            .filter(|(_, d)| constant_time_eq(d.as_slice(), digest))
            .map(|(o, _)| o.clone())
            .collect()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<Owner, Digest32>> {
        self.table.read().unwrap_or_else(PoisonError::into_inner)
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// User name presented.
    pub username: String,
    /// The Vinos whose VMs it reaches (never empty).
    pub owners: BTreeSet<Owner>,
    /// The session used, if any.
    pub session: Option<String>,
    digest: Digest32,
}

impl Principal {
    /// Whether the caller may reach VMs of `owner`.
    pub fn reaches(&self, owner: &Owner) -> bool {
        self.owners.contains(owner)
    }
}

/// One login.
#[derive(Clone, Debug)]
pub struct Session {
    /// Session id (in its URI).
    pub id: String,
    /// User name it logged in with.
    pub username: String,
    token: Digest32,
    credentials: Digest32,
    last_used: Instant,
}

/// The sessions of the service.
pub struct Sessions {
    by_id: Mutex<HashMap<String, Session>>,
    rng: SystemRandom,
}

impl Default for Sessions {
    fn default() -> Self {
        Self {
            by_id: Mutex::default(),
            rng: SystemRandom::new(),
        }
    }
}

/// What a login produced: the session and its token (shown once, in `X-Auth-Token`).
pub struct Login {
    /// The session.
    pub session: Session,
    /// The token.
    pub token: String,
}

impl Sessions {
    /// Logs in; `None` if the credentials match no Vino.
    pub fn login(&self, table: &BmcCredentials, username: &str, password: &str) -> Option<Login> {
        let credentials = credential_digest(username, password);
        if table.owners(&credentials).is_empty() {
            return None;
        }
        let token = random_hex(&self.rng, 32)?;
        let session = Session {
            id: random_hex(&self.rng, 12)?,
            username: username.to_string(),
            token: Sha256::digest(token.as_bytes()).into(),
            credentials,
            last_used: Instant::now(),
        };
        let mut all = self.lock();
        let now = Instant::now();
        all.retain(|_, s| {
            now.duration_since(s.last_used) < SESSION_TIMEOUT
                && !table.owners(&s.credentials).is_empty()
        });
        loop {
            let own = all
                .values()
                .filter(|s| constant_time_eq(&s.credentials, &credentials));
            if own.clone().count() < MAX_SESSIONS_PER_CREDENTIALS {
                break;
            }
            let Some(oldest) = own.min_by_key(|s| s.last_used).map(|s| s.id.clone()) else {
                break;
            };
            all.remove(&oldest);
        }
        all.insert(session.id.clone(), session.clone());
        Some(Login { session, token })
    }

    /// The caller of a token, if the session is live and its credentials still valid; touches
    /// the session. A session whose credentials were withdrawn is ended.
    pub fn principal(&self, table: &BmcCredentials, token: &str) -> Option<Principal> {
        let digest: Digest32 = Sha256::digest(token.as_bytes()).into();
        let mut all = self.lock();
        let now = Instant::now();
        let id = all
            .values()
            .find(|s| constant_time_eq(&s.token, &digest))
            .map(|s| s.id.clone())?;
        let session = all.get_mut(&id)?;
        let owners = table.owners(&session.credentials);
        if now.duration_since(session.last_used) >= SESSION_TIMEOUT || owners.is_empty() {
            all.remove(&id);
            return None;
        }
        session.last_used = now;
        Some(Principal {
            username: session.username.clone(),
            owners,
            session: Some(id),
            digest: session.credentials,
        })
    }

    /// The sessions logged in with the caller's credentials.
    pub fn of(&self, caller: &Principal) -> Vec<Session> {
        let mut out: Vec<Session> = self
            .lock()
            .values()
            .filter(|s| constant_time_eq(&s.credentials, &caller.digest))
            .cloned()
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Ends session `id` if it is the caller's; whether it was.
    pub fn logout(&self, caller: &Principal, id: &str) -> bool {
        let mut all = self.lock();
        match all.get(id) {
            Some(s) if constant_time_eq(&s.credentials, &caller.digest) => {
                all.remove(id);
                true
            }
            _ => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.by_id.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The caller of an `Authorization: Basic …` header value, if the credentials match a Vino.
pub fn basic(table: &BmcCredentials, header: &str) -> Option<Principal> {
    let (scheme, value) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let (username, password) = text.split_once(':')?;
    let digest = credential_digest(username, password);
    let owners = table.owners(&digest);
    (!owners.is_empty()).then(|| Principal {
        username: username.to_string(),
        owners,
        session: None,
        digest,
    })
}

fn credential_digest(username: &str, password: &str) -> Digest32 {
    let mut h = Sha256::new();
    h.update((username.len() as u64).to_be_bytes());
    h.update(username.as_bytes());
    h.update(password.as_bytes());
    h.finalize().into()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn random_hex(rng: &SystemRandom, bytes: usize) -> Option<String> {
    let mut buf = vec![0u8; bytes];
    rng.fill(&mut buf).ok()?;
    Some(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(n: &str) -> Owner {
        Owner {
            namespace: "ns".into(),
            name: n.into(),
        }
    }

    fn table() -> BmcCredentials {
        let t = BmcCredentials::default();
        let c = |u: &str, p: &str| Credentials {
            username: u.into(),
            password: p.into(),
        };
        t.replace(&BTreeMap::from([
            (owner("a"), c("admin", "pa")),
            (owner("b"), c("admin", "pb")),
            (owner("c"), c("admin", "pa")),
            (owner("empty"), c("admin", "")),
        ]));
        t
    }

    fn header(u: &str, p: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}"))
        )
    }

    #[test]
    fn basic_reaches_the_vinos_with_those_credentials() {
        let t = table();
        let p = basic(&t, &header("admin", "pa")).unwrap();
        assert_eq!(p.owners, BTreeSet::from([owner("a"), owner("c")]));
        assert!(basic(&t, &header("admin", "nope")).is_none());
        assert!(
            basic(&t, &header("admin", "")).is_none(),
            "empty never matches"
        );
        assert!(basic(&t, "Bearer x").is_none());
        assert!(basic(&t, "Basic !!!").is_none());
    }

    #[test]
    fn sessions_follow_the_credential_table() {
        let t = table();
        let s = Sessions::default();
        assert!(s.login(&t, "admin", "wrong").is_none());
        let login = s.login(&t, "admin", "pb").unwrap();
        let p = s.principal(&t, &login.token).unwrap();
        assert_eq!(p.owners, BTreeSet::from([owner("b")]));
        assert_eq!(s.of(&p).len(), 1);
        assert!(s.principal(&t, "not-a-token").is_none());
        // The Vino's password changes: the session ends.
        t.replace(&BTreeMap::new());
        assert!(s.principal(&t, &login.token).is_none());
        assert!(s.lock().is_empty());
    }

    #[test]
    fn logout_only_own_sessions_and_the_table_is_bounded() {
        let t = table();
        let s = Sessions::default();
        let a = s.login(&t, "admin", "pa").unwrap();
        let b = s.login(&t, "admin", "pb").unwrap();
        let pa = s.principal(&t, &a.token).unwrap();
        assert!(!s.logout(&pa, &b.session.id));
        assert!(s.logout(&pa, &a.session.id));
        assert!(s.principal(&t, &a.token).is_none());
        let kept = s.login(&t, "admin", "pb").unwrap();
        for _ in 0..MAX_SESSIONS_PER_CREDENTIALS * 4 {
            s.login(&t, "admin", "pa").unwrap();
        }
        assert_eq!(s.lock().len(), MAX_SESSIONS_PER_CREDENTIALS + 2);
        // Another Vino's logins ended none of b's sessions.
        assert!(s.principal(&t, &kept.token).is_some());
        assert!(s.principal(&t, &b.token).is_some());
    }
}
