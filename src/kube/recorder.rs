//! Publishing `events.k8s.io/v1` Events, a repeat counted in the first one's series.
//!
//! An Event is a repeat only if everything it says is the same, its note included: a VM that
//! fails again with another error, or a second batch of other VMs, is an Event of its own, not
//! a count on one whose note says something else.

use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::{Event, EventSeries};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, Patch, PatchParams, PostParams};
pub use kube::runtime::events::EventType;
use kube::{Client, ResourceExt};
use serde_json::json;
use tokio::sync::Mutex;

use super::is_status;

/// How long after its last occurrence an Event can still be repeated (the same as
/// client-go's and kube's recorders).
const REPEAT_WINDOW: SignedDuration = SignedDuration::from_mins(6);

/// What makes two Events the same.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Key {
    regarding: (Option<String>, Option<String>, Option<String>),
    related: Option<(Option<String>, Option<String>)>,
    type_: &'static str,
    reason: String,
    action: String,
    note: String,
}

/// An Event published earlier: its name, how often it happened, when last.
#[derive(Clone, Debug)]
struct Published {
    name: String,
    count: i32,
    last: Timestamp,
}

/// Publishes Events as controller `controller`, instance `instance`.
#[derive(Clone)]
pub struct Recorder {
    client: Client,
    controller: String,
    instance: String,
    published: Arc<Mutex<HashMap<Key, Published>>>,
}

/// One Event to publish: about `regarding`, optionally related to `related`.
pub struct Occurrence<'a> {
    /// The object the Event is about.
    pub regarding: ObjectReference,
    /// Another object it involves.
    pub related: Option<ObjectReference>,
    /// Normal or Warning.
    pub type_: EventType,
    /// Why (PascalCase).
    pub reason: &'a str,
    /// What was done (PascalCase).
    pub action: &'a str,
    /// For people, at most 1024 bytes.
    pub note: String,
}

impl Recorder {
    /// A recorder with nothing published yet.
    pub fn new(client: Client, controller: &str, instance: &str) -> Self {
        Recorder {
            client,
            controller: controller.to_string(),
            instance: instance.to_string(),
            published: Arc::default(),
        }
    }

    /// Publishes `o`: a new Event, or one more in the series of the same Event published in
    /// the last six minutes (one request either way).
    pub async fn publish(&self, o: Occurrence<'_>) -> Result<(), kube::Error> {
        let now = Timestamp::now();
        let key = Key {
            regarding: (
                o.regarding.uid.clone(),
                o.regarding.namespace.clone(),
                o.regarding.name.clone(),
            ),
            related: o.related.as_ref().map(|r| (r.kind.clone(), r.name.clone())),
            type_: type_text(o.type_),
            reason: o.reason.to_string(),
            action: o.action.to_string(),
            note: o.note.clone(),
        };
        let namespace = o
            .regarding
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into());
        let api: Api<Event> = Api::namespaced(self.client.clone(), &namespace);
        let mut published = self.published.lock().await;
        published.retain(|_, p| p.last + REPEAT_WINDOW > now);
        if let Some(p) = published.get_mut(&key) {
            let series = EventSeries {
                count: p.count + 1,
                last_observed_time: MicroTime(now),
            };
            let patch = json!({ "series": series });
            match api
                .patch(&p.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {
                    p.count += 1;
                    p.last = now;
                    return Ok(());
                }
                // Deleted meanwhile (e.g. by its TTL): a new one.
                Err(e) if is_status(&e, 404) => {}
                Err(e) => return Err(e),
            }
        }
        let name = format!(
            "{}.{:x}",
            o.regarding.name.as_deref().unwrap_or(&self.controller),
            now.as_nanosecond()
        );
        let event = Event {
            metadata: ObjectMeta {
                name: Some(name),
                namespace: Some(namespace),
                ..Default::default()
            },
            action: Some(o.action.to_string()),
            reason: Some(o.reason.to_string()),
            type_: Some(type_text(o.type_).to_string()),
            note: Some(o.note),
            event_time: Some(MicroTime(now)),
            regarding: Some(o.regarding),
            related: o.related,
            reporting_controller: Some(self.controller.clone()),
            reporting_instance: Some(self.instance.clone()),
            ..Default::default()
        };
        let created = api.create(&PostParams::default(), &event).await?;
        published.insert(
            key,
            Published {
                name: created.name_any(),
                count: 1,
                last: now,
            },
        );
        Ok(())
    }
}

/// The API's spelling of an Event type.
fn type_text(t: EventType) -> &'static str {
    match t {
        EventType::Normal => "Normal",
        EventType::Warning => "Warning",
    }
}
