//! Counting API requests: `apiserver_request_total` from the API server's `/metrics`, read as
//! the admin before and after a measurement. The metric has no user label, so the requests the
//! benchmark itself makes during the window (its polling) are counted on the client side and
//! subtracted, and only the resources vinod works with are summed (the API server's own loopback
//! requests, e.g. for Leases, are left out).

use std::collections::BTreeMap;
use std::sync::Mutex;

use crate::common::kube_env::KubeEnv;

/// The resources vinod reads or writes.
const VINOD_RESOURCES: &[&str] = &[
    "nodes",
    "vinoes",
    "vinoipclaims",
    "vinopoolclaims",
    "vinonodes",
    "baremetalhosts",
    "hardwaredata",
    "secrets",
    "events",
];

/// Request counts by (resource, verb, HTTP code), over [`VINOD_RESOURCES`].
#[derive(Clone, Debug, Default)]
pub struct Counts(BTreeMap<(String, String, String), u64>);

impl Counts {
    /// Reads the API server's counters now.
    pub fn scrape(env: &KubeEnv) -> Counts {
        let text = env.kubectl_ok(&["get", "--raw", "/metrics"]);
        let mut out = BTreeMap::new();
        for line in text.lines() {
            let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
                continue;
            };
            let Some((labels, value)) = rest.rsplit_once("} ") else {
                continue;
            };
            let label = |k: &str| {
                labels
                    .split(',')
                    .find_map(|kv| kv.strip_prefix(&format!("{k}=\"")))
                    .map(|v| v.trim_end_matches('"').to_string())
                    .unwrap_or_default()
            };
            if !VINOD_RESOURCES.contains(&label("resource").as_str()) {
                continue;
            }
            let n = value.trim().parse::<f64>().unwrap_or(0.0) as u64;
            let resource = match label("subresource").as_str() {
                "" => label("resource"),
                sub => format!("{}/{sub}", label("resource")),
            };
            *out.entry((resource, label("verb"), label("code")))
                .or_default() += n;
        }
        Counts(out)
    }

    /// What was counted since `before`.
    pub fn since(&self, before: &Counts) -> Counts {
        let mut out = self.0.clone();
        for (k, v) in out.iter_mut() {
            *v = v.saturating_sub(before.0.get(k).copied().unwrap_or(0));
        }
        out.retain(|_, v| *v > 0);
        Counts(out)
    }

    /// These counts less the benchmark's own requests (all of which succeeded).
    pub fn less(&self, own: &Own) -> Counts {
        let mut out = self.0.clone();
        for ((resource, verb), n) in own.0.lock().unwrap().iter() {
            let code = if *verb == "POST" { "201" } else { "200" };
            let key = (resource.to_string(), verb.to_string(), code.to_string());
            if let Some(v) = out.get_mut(&key) {
                *v = v.saturating_sub(*n);
            }
        }
        out.retain(|_, v| *v > 0);
        Counts(out)
    }

    /// All requests.
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    /// Writes (every verb but GET, LIST and WATCH).
    pub fn writes(&self) -> u64 {
        self.0
            .iter()
            .filter(|((_, v, _), _)| !matches!(v.as_str(), "GET" | "LIST" | "WATCH"))
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests answered with `code`.
    pub fn with_code(&self, code: &str) -> u64 {
        self.0
            .iter()
            .filter(|((_, _, c), _)| c == code)
            .map(|(_, n)| n)
            .sum()
    }

    /// Requests by resource and verb, with the codes other than 2xx, e.g.
    /// `secrets APPLY 32, vinoes/status APPLY 5 (409: 2)`.
    pub fn by_kind(&self) -> String {
        // (resource, verb) → (requests, requests by code other than 2xx)
        type Tally<'a> = BTreeMap<(&'a str, &'a str), (u64, BTreeMap<&'a str, u64>)>;
        let mut kinds = Tally::new();
        for ((resource, verb, code), n) in &self.0 {
            let k = kinds.entry((resource, verb)).or_default();
            k.0 += n;
            if !code.starts_with('2') {
                *k.1.entry(code).or_default() += n;
            }
        }
        kinds
            .iter()
            .map(|((r, v), (n, odd))| {
                let odd: Vec<String> = odd.iter().map(|(c, n)| format!("{c}: {n}")).collect();
                if odd.is_empty() {
                    format!("{r} {v} {n}")
                } else {
                    format!("{r} {v} {n} ({})", odd.join(", "))
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// One line: total, by verb, conflicts and throttled requests.
    pub fn summary(&self) -> String {
        let mut s = format!("{} ({})", self.total(), self.by_kind());
        s.push_str(&format!("; 409 Conflict: {}", self.with_code("409")));
        let throttled = self.with_code("429");
        if throttled > 0 {
            s.push_str(&format!("; 429: {throttled}"));
        }
        s
    }
}

/// The benchmark's own requests to the counted resources during a window, by resource and
/// verb.
#[derive(Default)]
pub struct Own(Mutex<BTreeMap<(&'static str, &'static str), u64>>);

impl Own {
    /// Records one request for `resource` (e.g. `vinos`), `verb` as the metric names it.
    pub fn add(&self, resource: &'static str, verb: &'static str) {
        *self.0.lock().unwrap().entry((resource, verb)).or_default() += 1;
    }
}
