//! A Vino's BMC credentials: the one place that decides where they come from (its
//! `spec.bmcCredentials.secretRef` Secret, else the inline user name and password) and decodes
//! the Secret.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::Secret;

use super::{PlanError, names};
use crate::api::Vino;
use crate::api::bmh::BareMetalHost;
use crate::render::objects::Credentials;
use crate::state::Owner;

const FIELD: &str = "spec.bmcCredentials.secretRef";

/// The (namespace, name) of the Secret `vino` takes its BMC credentials from, if any.
pub fn secret_ref(vino: &Vino) -> Option<(String, String)> {
    let r = vino.spec.bmc_credentials.as_ref()?.secret_ref.as_ref()?;
    Some((Owner::of(vino).namespace, r.name.clone()))
}

/// The credentials in a Secret's `username` and `password` keys (`stringData` or `data`).
pub fn decode(secret: &Secret) -> Result<Credentials, PlanError> {
    let name = secret.metadata.name.clone().unwrap_or_default();
    let get = |key: &str| {
        let text = secret
            .string_data
            .as_ref()
            .and_then(|d| d.get(key).cloned())
            .or_else(|| {
                let bytes = secret.data.as_ref()?.get(key)?;
                String::from_utf8(bytes.0.clone()).ok()
            });
        text.ok_or_else(|| PlanError::SecretKey {
            field: FIELD.into(),
            name: name.clone(),
            key: key.into(),
        })
    };
    Ok(Credentials {
        username: get("username")?,
        password: get("password")?,
    })
}

/// The credentials of `vino`: `from_secret` (its decoded `secretRef` Secret, `None` if that is
/// missing) when it has a `secretRef`, else the inline ones.
pub fn resolve(vino: &Vino, from_secret: Option<&Credentials>) -> Result<Credentials, PlanError> {
    let c = vino.spec.bmc_credentials.as_ref();
    if let Some((namespace, name)) = secret_ref(vino) {
        return from_secret.cloned().ok_or(PlanError::MissingSecret {
            field: FIELD.into(),
            name,
            namespace,
        });
    }
    Ok(Credentials {
        username: c.and_then(|c| c.username.clone()).unwrap_or_default(),
        password: c.and_then(|c| c.password.clone()).unwrap_or_default(),
    })
}

/// Keeps BareMetalHosts of earlier versions on their own credentials Secret.
///
/// `live` are the stored BareMetalHosts by name. A planned host stored pointing at its own
/// Secret (`<name>-credentials`) keeps it, with the planned credentials: changing
/// `credentialsName` under BMO would leave the old Secret to BMO's finalizer for good. A
/// shared Secret that no planned host points at any more is left out.
pub fn keep_own_secrets(
    hosts: &mut [BareMetalHost],
    secrets: &mut Vec<Secret>,
    live: &BTreeMap<String, BareMetalHost>,
) {
    let mut replaced = BTreeSet::new();
    for h in hosts.iter_mut() {
        let name = h.metadata.name.clone().unwrap_or_default();
        let own = names::credentials_secret(&name);
        let stored = live.get(&name).map(|l| &l.spec.bmc.credentials_name);
        if stored != Some(&own) || h.spec.bmc.credentials_name == own {
            continue;
        }
        let shared = std::mem::replace(&mut h.spec.bmc.credentials_name, own.clone());
        let copy = secrets
            .iter()
            .find(|s| s.metadata.name.as_deref() == Some(shared.as_str()))
            .cloned();
        if let Some(mut copy) = copy {
            copy.metadata.name = Some(own);
            secrets.push(copy);
        }
        replaced.insert(shared);
    }
    secrets.retain(|s| {
        let name = s.metadata.name.as_deref().unwrap_or_default();
        !replaced.contains(name) || hosts.iter().any(|h| h.spec.bmc.credentials_name == name)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vino(creds: serde_json::Value) -> Vino {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "airship.airshipit.org/v1", "kind": "Vino",
            "metadata": {"name": "v", "namespace": "ns"},
            "spec": {"bmcCredentials": creds}
        }))
        .unwrap()
    }

    #[test]
    fn inline_secret_and_missing_secret() {
        let inline = vino(serde_json::json!({"username": "admin", "password": "pw"}));
        assert_eq!(resolve(&inline, None).unwrap().password, "pw");
        let by_ref = vino(serde_json::json!({"secretRef": {"name": "bmc"}}));
        assert_eq!(secret_ref(&by_ref), Some(("ns".into(), "bmc".into())));
        assert!(matches!(
            resolve(&by_ref, None),
            Err(PlanError::MissingSecret { .. })
        ));
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "bmc"},
            "data": {"username": "cm9vdA=="},
            "stringData": {"password": "hunter2"}
        }))
        .unwrap();
        let c = decode(&secret).unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("root", "hunter2")
        );
        assert_eq!(resolve(&by_ref, Some(&c)).unwrap(), c);
        let partial: Secret =
            serde_json::from_value(serde_json::json!({"metadata": {"name": "bmc"}})).unwrap();
        assert!(
            matches!(decode(&partial), Err(PlanError::SecretKey { key, .. }) if key == "username")
        );
    }

    fn host(name: &str, credentials: &str) -> BareMetalHost {
        let mut h = BareMetalHost::new(name, Default::default());
        h.spec.bmc.credentials_name = credentials.into();
        h
    }

    fn stored(hosts: &[(&str, &str)]) -> BTreeMap<String, BareMetalHost> {
        hosts
            .iter()
            .map(|(name, credentials)| (name.to_string(), host(name, credentials)))
            .collect()
    }

    fn secret(name: &str) -> Secret {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "stringData": {"username": "admin", "password": "pw"}
        }))
        .unwrap()
    }

    fn names_of(secrets: &[Secret]) -> Vec<&str> {
        secrets
            .iter()
            .filter_map(|s| s.metadata.name.as_deref())
            .collect()
    }

    #[test]
    fn hosts_of_earlier_versions_keep_their_own_secret() {
        let shared = "v.n.credentials";
        let mut hosts = vec![host("v-n-w-0", shared), host("v-n-w-1", shared)];
        let mut secrets = vec![secret(shared), secret("v-n-w-0-network-data")];
        // Nothing stored: every host shares the one Secret.
        keep_own_secrets(&mut hosts, &mut secrets, &BTreeMap::new());
        assert_eq!(names_of(&secrets), [shared, "v-n-w-0-network-data"]);

        // v-n-w-0 was published by an earlier version with its own Secret; v-n-w-1 shares.
        let live = stored(&[("v-n-w-0", "v-n-w-0-credentials"), ("v-n-w-1", shared)]);
        keep_own_secrets(&mut hosts, &mut secrets, &live);
        assert_eq!(hosts[0].spec.bmc.credentials_name, "v-n-w-0-credentials");
        assert_eq!(hosts[1].spec.bmc.credentials_name, shared);
        assert_eq!(
            names_of(&secrets),
            [shared, "v-n-w-0-network-data", "v-n-w-0-credentials"]
        );
        assert_eq!(
            decode(&secrets[2]).unwrap(),
            decode(&secrets[0]).unwrap(),
            "the kept Secret carries the planned credentials"
        );

        // Every host on its own Secret: the shared one is not published.
        let mut hosts = vec![host("v-n-w-0", shared)];
        let mut secrets = vec![secret(shared)];
        let live = stored(&[("v-n-w-0", "v-n-w-0-credentials")]);
        keep_own_secrets(&mut hosts, &mut secrets, &live);
        assert_eq!(names_of(&secrets), ["v-n-w-0-credentials"]);
    }
}
