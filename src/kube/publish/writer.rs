//! How a host writes one object it publishes: created whole with one request, changed by
//! server-side apply only when it differs.
//!
//! The create names the host's field manager, so the fields it set belong to that manager (as
//! an `Update`). Before the first apply of a changed object, that ownership is handed to the
//! manager's `Apply` (one patch of `metadata.managedFields`), so a field vinod stops
//! publishing (a label removed from `bmhLabels`) is removed by the apply; the fields given at
//! creation only (`spec.online`) are left out of it, so nobody owns them but whoever changes
//! them next.
//!
//! Whether an object differs: the hash of what vinod would apply, kept in the annotation
//! [`APPLIED`], must match, and everything vinod applies must be there with the same values (so
//! an edit of one of vinod's fields is undone at the next pass).

use std::collections::BTreeMap;

use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::kube::{KubeError, is_status};
use crate::plan::names::short_hash;

/// Annotation with the hash of the configuration vinod last applied to an object.
pub const APPLIED: &str = "vino.airshipit.org/applied";

/// How this host writes objects.
pub(super) struct Writer {
    pub manager: String,
    pub labels: BTreeMap<String, String>,
    pub namespace: String,
}

impl Writer {
    /// Makes `desired` exist as published by this host: creates it from `body` (plus `initial`,
    /// a spec field set only at creation) if `live` is absent; applies `body` if `live`
    /// differs from it. Returns the UID of the object it created, `None` if it existed.
    pub async fn ensure<K>(
        &self,
        api: &Api<K>,
        desired: &K,
        live: Option<&K>,
        body: Value,
        initial: Option<(&str, Value)>,
    ) -> Result<Option<String>, KubeError>
    where
        K: Resource<DynamicType = ()> + Clone + Serialize + DeserializeOwned + std::fmt::Debug,
    {
        let name = desired.name_any();
        let kind = K::kind(&());
        let what = |verb: &str| format!("{verb} {kind} {}/{name}", self.namespace);
        let body = self.stamped(body);
        let Some(live) = live else {
            let mut create = body.clone();
            if let Some((field, value)) = initial {
                create["spec"][field] = value;
            }
            let obj: K = serde_json::from_value(create)
                .map_err(|e| KubeError::api(what("create"), kube::Error::SerdeError(e)))?;
            let pp = PostParams {
                field_manager: Some(self.manager.clone()),
                ..Default::default()
            };
            return match throttled(|| api.create(&pp, &obj)).await {
                Ok(created) => Ok(Some(created.uid().unwrap_or_default())),
                Err(e) if is_status(&e, 409) => {
                    // Not in this host's list, so not its own: never take it over.
                    let other = api
                        .get(&name)
                        .await
                        .map_err(|e| KubeError::api(what("get"), e))?;
                    Err(self.clash(&other))
                }
                Err(e) => Err(KubeError::api(what("create"), e)),
            };
        };
        let stored = serde_json::to_value(live).unwrap_or_default();
        if contains(&stored, &body) {
            return Ok(None);
        }
        if let Some(fields) = handed_over(&stored, &self.manager, initial.map(|(f, _)| f)) {
            let patch: json_patch::Patch = serde_json::from_value(json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": live.resource_version()},
                {"op": "replace", "path": "/metadata/managedFields", "value": fields},
            ]))
            .map_err(|e| KubeError::api(what("hand over"), kube::Error::SerdeError(e)))?;
            api.patch(&name, &PatchParams::default(), &Patch::Json::<()>(patch))
                .await
                .map_err(|e| KubeError::api(what("hand over the fields of"), e))?;
        }
        let pp = PatchParams::apply(&self.manager).force();
        let patch = Patch::Apply(&body);
        throttled(|| api.patch(&name, &pp, &patch))
            .await
            .map_err(|e| KubeError::api(what("apply"), e))?;
        Ok(None)
    }

    /// `body` with the ownership labels and the hash of itself in [`APPLIED`].
    fn stamped(&self, mut body: Value) -> Value {
        if !body["metadata"]["labels"].is_object() {
            body["metadata"]["labels"] = json!({});
        }
        for (k, v) in &self.labels {
            body["metadata"]["labels"][k] = json!(v);
        }
        if let Some(a) = body["metadata"]
            .get_mut("annotations")
            .and_then(Value::as_object_mut)
        {
            a.remove(APPLIED);
        }
        let hash = short_hash(&body.to_string());
        if !body["metadata"]["annotations"].is_object() {
            body["metadata"]["annotations"] = json!({});
        }
        body["metadata"]["annotations"][APPLIED] = json!(hash);
        body
    }

    /// The error for `other`, an object of the name this host wants that is not its own.
    pub fn clash<K: Resource<DynamicType = ()>>(&self, other: &K) -> KubeError {
        let theirs = other.meta().labels.clone().unwrap_or_default();
        let why = self
            .labels
            .iter()
            .find(|(k, v)| theirs.get(*k) != Some(*v))
            .map(|(k, v)| match theirs.get(k) {
                Some(t) => format!("label {k} is {t:?}, not {v:?}"),
                None => format!("label {k} is missing"),
            })
            .unwrap_or_else(|| "it was created meanwhile by someone else".into());
        KubeError::Clash {
            kind: match K::kind(&()).as_ref() {
                "Secret" => "Secret",
                _ => "BareMetalHost",
            },
            namespace: self.namespace.clone(),
            name: other.name_any(),
            why,
        }
    }
}

/// How often a write the API server throttled (429) is sent again.
const THROTTLED_ATTEMPTS: u32 = 8;

/// Runs `write`, again after a pause while the API server answers 429 (too many requests in
/// flight): a busy server is not a failure of the pass, and failing it would only bring the
/// pass's reads back sooner.
async fn throttled<T, F, Fut>(mut write: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 0;
    loop {
        match write().await {
            Err(e) if is_status(&e, 429) && attempt + 1 < THROTTLED_ATTEMPTS => {
                attempt += 1;
                // 0.5 s more each time, plus up to 0.5 s so that throttled hosts spread out.
                let jitter = std::hash::BuildHasher::hash_one(
                    &std::collections::hash_map::RandomState::new(),
                    attempt,
                ) % 500;
                let pause = 500 * u64::from(attempt) + jitter;
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
            other => return other,
        }
    }
}

/// Whether `stored` holds everything in `wanted`: every object member (recursively) with the
/// same value; anything else must be equal.
fn contains(stored: &Value, wanted: &Value) -> bool {
    match (stored, wanted) {
        (Value::Object(s), Value::Object(w)) => w
            .iter()
            .all(|(k, v)| s.get(k).is_some_and(|sv| contains(sv, v)) || v.is_null()),
        (Value::Array(s), Value::Array(w)) => {
            s.len() == w.len() && s.iter().zip(w).all(|(s, w)| contains(s, w))
        }
        _ => stored == wanted,
    }
}

/// The managed fields of `stored` with `manager`'s `Update` entry (its create) turned into
/// its `Apply` entry, less the field `initial` of the spec; `None` when there is nothing to
/// hand over (no such entry, or the manager already applies).
fn handed_over(stored: &Value, manager: &str, initial: Option<&str>) -> Option<Value> {
    let fields = stored["metadata"]["managedFields"].as_array()?;
    let mine = |op: &str| {
        fields.iter().position(|f| {
            f["manager"] == manager && f["operation"] == op && f["subresource"].is_null()
        })
    };
    if mine("Apply").is_some() {
        return None;
    }
    let i = mine("Update")?;
    let mut out = fields.clone();
    out[i]["operation"] = json!("Apply");
    if let Some(f) = initial
        && let Some(spec) = out[i]["fieldsV1"]["f:spec"].as_object_mut()
    {
        spec.remove(&format!("f:{f}"));
    }
    Some(Value::Array(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_objects_contain_what_is_applied() {
        let stored = json!({"metadata": {"name": "a", "labels": {"x": "1", "y": "2"}, "uid": "u"},
                            "spec": {"online": true, "list": [1, 2]}});
        assert!(contains(
            &stored,
            &json!({"metadata": {"labels": {"x": "1"}}, "spec": {"list": [1, 2]}})
        ));
        assert!(!contains(
            &stored,
            &json!({"metadata": {"labels": {"x": "2"}}})
        ));
        assert!(!contains(&stored, &json!({"spec": {"list": [1]}})));
        assert!(contains(&json!([{"a": 1, "b": 2}]), &json!([{"a": 1}])));
        assert!(!contains(&stored, &json!({"spec": {"other": 1}})));
    }

    #[test]
    fn the_create_is_handed_to_the_apply_without_the_initial_field() {
        let stored = json!({"metadata": {"managedFields": [
            {"manager": "vinod/a", "operation": "Update",
             "fieldsV1": {"f:spec": {"f:online": {}, "f:bmc": {}}}},
            {"manager": "capm3", "operation": "Update", "fieldsV1": {}},
        ]}});
        let out = handed_over(&stored, "vinod/a", Some("online")).unwrap();
        assert_eq!(out[0]["operation"], "Apply");
        assert_eq!(out[0]["fieldsV1"], json!({"f:spec": {"f:bmc": {}}}));
        assert_eq!(out[1], stored["metadata"]["managedFields"][1]);
        assert!(
            handed_over(
                &json!({"metadata": {"managedFields": [
            {"manager": "vinod/a", "operation": "Apply", "fieldsV1": {}}]}}),
                "vinod/a",
                None
            )
            .is_none()
        );
    }
}
