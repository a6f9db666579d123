//! What metal3 does with a BareMetalHost vinod published, read from the object as the API
//! server stores it (metal3's full CRD: `spec.consumerRef`, `spec.image`,
//! `status.provisioning.state`, `status.operationalStatus`), which vinod's own subset of the
//! type does not carry.

use serde::Serialize;
use serde_json::Value;

/// Provisioning states in which the host runs, or is being given, its user's image.
const HELD_STATES: &[&str] = &["provisioning", "provisioned", "externally provisioned"];

/// Longest provisioning state kept (BMO's are short words; anything longer is not one).
const MAX_STATE: usize = 64;

/// Longest error text kept from another component's status.
const MAX_ERROR: usize = 512;

/// How metal3 uses one BareMetalHost.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostUse {
    /// `status.provisioning.state` (empty before BMO's first report).
    pub state: String,
    /// `spec.consumerRef` as `Kind/name`, when something consumes the host.
    pub consumer: Option<String>,
    /// Whether `spec.image` is set (provisioning is asked for).
    pub has_image: bool,
    /// Whether the host is being deleted (BMO deprovisions it, then lets it go).
    pub deleting: bool,
    /// metal3's error for the host (`status.errorType: status.errorMessage`), when its
    /// `status.operationalStatus` is `error`.
    pub error: Option<String>,
}

impl HostUse {
    /// The use recorded in `object`, a BareMetalHost as JSON.
    pub fn of_object(object: &Value) -> Self {
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let consumer = &object["spec"]["consumerRef"];
        let status = &object["status"];
        let error = (status["operationalStatus"] == "error").then(|| {
            let kind = text(&status["errorType"]);
            let message = text(&status["errorMessage"]);
            let both = match (kind.is_empty(), message.is_empty()) {
                (false, false) => format!("{kind}: {message}"),
                (true, false) => message,
                (false, true) => kind,
                (true, true) => "error".to_string(),
            };
            bounded(&both, MAX_ERROR)
        });
        HostUse {
            state: bounded(&text(&status["provisioning"]["state"]), MAX_STATE),
            consumer: consumer
                .is_object()
                .then(|| format!("{}/{}", text(&consumer["kind"]), text(&consumer["name"]))),
            has_image: object["spec"]["image"]["url"]
                .as_str()
                .is_some_and(|u| !u.is_empty()),
            deleting: !object["metadata"]["deletionTimestamp"].is_null(),
            error,
        }
    }

    /// Why metal3 holds the host (its user's image is on it or on its way, or something
    /// consumes it), or `None`. A host being deleted is not held: its deletion was asked for.
    pub fn held(&self) -> Option<String> {
        if self.deleting {
            return None;
        }
        let mut why = Vec::new();
        if HELD_STATES.contains(&self.state.as_str()) {
            why.push(self.state.clone());
        } else if self.has_image {
            why.push("given an image".to_string());
        }
        if let Some(c) = &self.consumer {
            why.push(format!("consumed by {c}"));
        }
        (!why.is_empty()).then(|| why.join(", "))
    }
}

/// `text` cut to at most `max` bytes (on a character boundary), control characters replaced:
/// it comes from another component and ends up in vinod's status and log.
fn bounded(text: &str, max: usize) -> String {
    let mut out = String::new();
    for c in text.chars() {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(if c.is_control() { ' ' } else { c });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn provisioned_or_consumed_hosts_are_held() {
        let available = json!({"spec": {}, "status": {"provisioning": {"state": "available"}}});
        assert_eq!(HostUse::of_object(&available).held(), None);
        let provisioned = json!({
            "spec": {"image": {"url": "http://x/i.iso"},
                     "consumerRef": {"kind": "Metal3Machine", "name": "m-0"}},
            "status": {"provisioning": {"state": "provisioned"}},
        });
        assert_eq!(
            HostUse::of_object(&provisioned).held().as_deref(),
            Some("provisioned, consumed by Metal3Machine/m-0")
        );
        let asked = json!({"spec": {"image": {"url": "http://x/i.iso"}},
                           "status": {"provisioning": {"state": "available"}}});
        assert_eq!(
            HostUse::of_object(&asked).held().as_deref(),
            Some("given an image")
        );
        let mut deleting = provisioned.clone();
        deleting["metadata"] = json!({"deletionTimestamp": "2026-01-01T00:00:00Z"});
        let use_ = HostUse::of_object(&deleting);
        assert!(use_.deleting);
        assert_eq!(use_.held(), None);
        assert_eq!(HostUse::of_object(&json!({})), HostUse::default());
    }

    #[test]
    fn metal3_errors_are_kept_bounded() {
        let failed = json!({"status": {
            "operationalStatus": "error",
            "errorType": "registration error",
            "errorMessage": format!("Failed to get power state\n{}", "x".repeat(2000)),
            "provisioning": {"state": "registering"},
        }});
        let use_ = HostUse::of_object(&failed);
        let error = use_.error.unwrap();
        assert!(error.starts_with("registration error: Failed to get power state x"));
        assert!(error.len() <= MAX_ERROR);
        assert_eq!(use_.state, "registering");
        let ok = json!({"status": {"operationalStatus": "OK", "errorType": "",
                                   "provisioning": {"state": "available"}}});
        assert_eq!(HostUse::of_object(&ok).error, None);
        let bare = json!({"status": {"operationalStatus": "error"}});
        assert_eq!(HostUse::of_object(&bare).error.as_deref(), Some("error"));
        let long_state = json!({"status": {"provisioning": {"state": "é".repeat(100)}}});
        assert!(HostUse::of_object(&long_state).state.len() <= MAX_STATE);
    }
}
