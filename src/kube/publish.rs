//! Publication of a Vino's BareMetalHosts and Secrets for this host.
//!
//! vinod's objects are found by its ownership labels (`vino.airshipit.org/cr-name`,
//! `cr-namespace`, `node`) and written by server-side apply with the field manager
//! `vinod/<node>`, forced: vinod owns the fields it publishes, and a field it stops publishing
//! (a label removed from `bmhLabels`) is removed. Objects without those labels, or with another
//! host's, are never changed: a name taken by one is reported as a clash.
//!
//! An object is created whole with one plain create (so a foreign object of the same name is
//! never taken over: AlreadyExists is a clash), and later changed by server-side apply only
//! when what vinod publishes differs from what is stored ([`writer`]).
//!
//! Two BareMetalHost fields get special care:
//! - `spec.online` belongs to whoever powers the host (BMO's user, e.g. CAPM3). vinod sets it
//!   to `false` once, when it creates the host; its applies leave the field out and vinod
//!   gives up its ownership of it, so they never power a host off.
//! - `spec.bootMACAddress` cannot change once set (BMO's webhook). A host whose MAC changed is
//!   deleted and created again, and the report says so. While BMO's finalizer keeps the old one,
//!   the new one waits (`pending`).
//!
//! Hosts are checked against BMO's webhook rules first ([`webhook_check`]); one that would be
//! rejected is reported and not written.
//!
//! Secrets are applied before hosts (BMO reads them when a host appears) and deleted only once
//! the host that references them is gone (BMO still needs the credentials to deprovision).

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, stream};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::{Client, Resource, ResourceExt};
use serde_json::Value;
use tracing::{info, warn};

use super::{KubeError, field_manager};
use writer::Writer;

mod stored;
mod writer;
use crate::api::bmh::{BareMetalHost, webhook_check};
use crate::api::host_use::HostUse;
use crate::plan::{VinoPlan, credentials, ownership};
use crate::state::Owner;
use stored::{delete, list, list_hosts, users_of};

/// Object writes a publication keeps in flight at once.
const WRITES_IN_FLIGHT: usize = 8;

/// What one publication did.
#[derive(Debug, Default)]
pub struct PublishReport {
    /// BareMetalHosts created.
    pub created: Vec<String>,
    /// BareMetalHosts deleted and created again because their boot MAC changed.
    pub recreated: Vec<String>,
    /// BareMetalHosts deleted (no longer planned).
    pub deleted: Vec<String>,
    /// Secrets created.
    pub secrets_created: Vec<String>,
    /// Secrets deleted.
    pub secrets_deleted: Vec<String>,
    /// Objects waiting for a BareMetalHost that is still being deleted (finalizers); the next
    /// publication finishes them.
    pub pending: Vec<String>,
    /// What failed; every object was attempted.
    pub errors: Vec<KubeError>,
    /// How metal3 uses each of this host's BareMetalHosts of the Vino that is stored after
    /// the publication (read from the same list, so it costs no request).
    pub uses: BTreeMap<String, HostUse>,
    /// The UID of each of them not being deleted (from the list, or the create's answer):
    /// what its HardwareData's owner reference names.
    pub uids: BTreeMap<String, String>,
}

impl PublishReport {
    /// Whether everything is published as planned.
    pub fn is_complete(&self) -> bool {
        self.pending.is_empty() && self.errors.is_empty()
    }
}

/// Publishes `plan`'s BareMetalHosts and Secrets in the Vino's namespace and deletes those
/// this host published earlier for the Vino that the plan no longer has.
pub async fn publish(client: &Client, plan: &VinoPlan) -> Result<PublishReport, KubeError> {
    sync(
        client,
        &plan.owner,
        &plan.node,
        &plan.bare_metal_hosts,
        &plan.secrets,
        &BTreeSet::new(),
    )
    .await
}

/// Deletes everything this host published for the Vino (teardown or deselection).
pub async fn withdraw(
    client: &Client,
    owner: &Owner,
    node: &str,
) -> Result<PublishReport, KubeError> {
    sync(client, owner, node, &[], &[], &BTreeSet::new()).await
}

/// Deletes what this host published for the Vino except the BareMetalHosts `keep` and their
/// Secrets, which stay as they are (metal3 holds them).
pub async fn withdraw_except(
    client: &Client,
    owner: &Owner,
    node: &str,
    keep: &BTreeSet<String>,
) -> Result<PublishReport, KubeError> {
    sync(client, owner, node, &[], &[], keep).await
}

async fn sync(
    client: &Client,
    owner: &Owner,
    node: &str,
    hosts: &[BareMetalHost],
    secrets: &[Secret],
    keep: &BTreeSet<String>,
) -> Result<PublishReport, KubeError> {
    let ns = owner.namespace.as_str();
    let labels = ownership(owner, node);
    let selector = labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",");
    let writer = Writer {
        manager: field_manager(node),
        labels,
        namespace: ns.to_string(),
    };
    let bmh_api: Api<BareMetalHost> = Api::namespaced(client.clone(), ns);
    let secret_api: Api<Secret> = Api::namespaced(client.clone(), ns);
    let (live_hosts, uses) = list_hosts(client, ns, &selector).await?;
    let live_secrets = list(&secret_api, &selector).await?;
    let (mut hosts, mut secrets) = (hosts.to_vec(), secrets.to_vec());
    credentials::keep_own_secrets(&mut hosts, &mut secrets, &live_hosts);
    let mut report = PublishReport {
        uses,
        uids: live_hosts
            .iter()
            .filter(|(_, h)| h.metadata.deletion_timestamp.is_none())
            .filter_map(|(name, h)| Some((name.clone(), h.uid()?)))
            .collect(),
        ..Default::default()
    };

    // Objects are written a few at a time: each costs one or two round trips, and the API
    // server serves several at once.
    // Futures collected first: a stream mapping a closure over borrowed data would make the
    // caller's future not `Send`.
    let writes: Vec<_> = secrets
        .iter()
        .map(|s| {
            let (writer, api, live) = (&writer, &secret_api, live_secrets.get(&s.name_any()));
            async move {
                let r = writer.ensure(api, s, live, secret_body(s), None).await;
                (s.name_any(), r)
            }
        })
        .collect();
    let results: Vec<_> = stream::iter(writes)
        .buffered(WRITES_IN_FLIGHT)
        .collect()
        .await;
    for (name, r) in results {
        match r {
            Ok(Some(_)) => report.secrets_created.push(name),
            Ok(None) => {}
            Err(e) => report.errors.push(e),
        }
    }

    let mut to_write = Vec::new();

    for h in &hosts {
        let name = h.name_any();
        let mut live = live_hosts.get(&name);
        if let Some(l) = live
            && let Some(old) = l.spec.boot_mac_address.as_deref().filter(|m| !m.is_empty())
            && Some(old) != h.spec.boot_mac_address.as_deref()
        {
            warn!(
                bmh = %name,
                old,
                new = h.spec.boot_mac_address.as_deref().unwrap_or(""),
                "bootMACAddress is immutable: deleting the BareMetalHost to create it again"
            );
            report.uids.remove(&name);
            match delete(&bmh_api, l).await {
                Ok(true) => {
                    report.recreated.push(name.clone());
                    live = None;
                }
                Ok(false) => {
                    report
                        .pending
                        .push(format!("BareMetalHost {ns}/{name} (new bootMACAddress)"));
                    continue;
                }
                Err(e) => {
                    report.errors.push(e);
                    continue;
                }
            }
        } else if live.is_some_and(|l| l.meta().deletion_timestamp.is_some()) {
            report
                .pending
                .push(format!("BareMetalHost {ns}/{name} (being deleted)"));
            continue;
        }
        let problems = webhook_check(h, live);
        if !problems.is_empty() {
            report.errors.push(KubeError::Rejected {
                kind: "BareMetalHost",
                namespace: ns.to_string(),
                name,
                problems: problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            });
            continue;
        }
        to_write.push((h, live));
    }
    let writes: Vec<_> = to_write
        .into_iter()
        .map(|(h, live)| {
            let (writer, api) = (&writer, &bmh_api);
            async move {
                let r = writer
                    .ensure(api, h, live, host_body(h), Some(("online", false.into())))
                    .await;
                (h.name_any(), r)
            }
        })
        .collect();
    let results: Vec<_> = stream::iter(writes)
        .buffered(WRITES_IN_FLIGHT)
        .collect()
        .await;
    for (name, r) in results {
        match r {
            Ok(Some(uid)) => {
                // Fresh: whatever metal3 said of an earlier host of this name is gone.
                report.uses.insert(name.clone(), HostUse::default());
                report.uids.insert(name.clone(), uid);
                if !report.recreated.contains(&name) {
                    report.created.push(name);
                }
            }
            Ok(None) => {}
            Err(e) => report.errors.push(e),
        }
    }

    // Withdrawals: hosts first; a host's Secrets once the host is gone.
    let wanted: BTreeSet<String> = hosts.iter().map(|h| h.name_any()).collect();
    let mut remaining: BTreeSet<String> = live_hosts.keys().cloned().collect();
    for (name, l) in &live_hosts {
        if wanted.contains(name) || keep.contains(name) {
            continue;
        }
        match delete(&bmh_api, l).await {
            Ok(gone) => {
                report.deleted.push(name.clone());
                report.uses.remove(name);
                report.uids.remove(name);
                if gone {
                    remaining.remove(name);
                }
            }
            Err(e) => report.errors.push(e),
        }
    }
    let wanted: BTreeSet<String> = secrets.iter().map(|s| s.name_any()).collect();
    for (name, s) in &live_secrets {
        let users = users_of(name, &live_hosts);
        if wanted.contains(name) || users.iter().any(|h| keep.contains(*h)) {
            continue;
        }
        if let Some(host) = users.into_iter().find(|h| remaining.contains(*h)) {
            report.pending.push(format!(
                "Secret {ns}/{name} (BareMetalHost {host} still exists)"
            ));
            continue;
        }
        match delete(&secret_api, s).await {
            Ok(_) => report.secrets_deleted.push(name.clone()),
            Err(e) => report.errors.push(e),
        }
    }
    if !(report.created.is_empty() && report.recreated.is_empty() && report.deleted.is_empty()) {
        info!(
            vino = %owner,
            created = report.created.len(),
            recreated = report.recreated.len(),
            deleted = report.deleted.len(),
            "BareMetalHosts published"
        );
    }
    Ok(report)
}

/// The applied configuration of a BareMetalHost: everything planned but `spec.online`.
fn host_body(h: &BareMetalHost) -> Value {
    let mut v = serde_json::to_value(h).unwrap_or_default();
    if let Some(spec) = v.get_mut("spec").and_then(Value::as_object_mut) {
        spec.remove("online");
    }
    v
}

/// The applied configuration of a Secret, with `stringData` (write-only, so never equal to
/// what is stored) turned into `data`.
fn secret_body(s: &Secret) -> Value {
    let mut s = s.clone();
    if let Some(strings) = s.string_data.take() {
        let data = s.data.get_or_insert_with(BTreeMap::new);
        for (k, v) in strings {
            data.insert(k, ByteString(v.into_bytes()));
        }
    }
    serde_json::to_value(&s).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::bmh::BareMetalHostSpec;
    use crate::api::bmh::BmcDetails;

    #[test]
    fn host_body_leaves_online_to_the_power_owner() {
        let h = BareMetalHost::new(
            "h",
            BareMetalHostSpec {
                bmc: BmcDetails {
                    address: "redfish+http://10.0.0.2:8000/redfish/v1/Systems/x".into(),
                    credentials_name: "h-credentials".into(),
                    disable_certificate_verification: true,
                },
                boot_mac_address: Some("52:54:00:00:00:01".into()),
                online: false,
                ..Default::default()
            },
        );
        let body = host_body(&h);
        assert!(body["spec"].get("online").is_none());
        assert_eq!(body["spec"]["bootMACAddress"], "52:54:00:00:00:01");
        assert_eq!(body["apiVersion"], "metal3.io/v1alpha1");
    }

    #[test]
    fn secret_body_carries_data_not_string_data() {
        let s = Secret {
            string_data: Some(BTreeMap::from([("password".to_string(), "pw".to_string())])),
            ..Default::default()
        };
        let body = secret_body(&s);
        assert!(body.get("stringData").is_none());
        assert_eq!(body["data"]["password"], "cHc=");
        assert_eq!(body["kind"], "Secret");
    }
}
