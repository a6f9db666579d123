//! A Vino's BMC credentials: the one place that decides where they come from (its
//! `spec.bmcCredentials.secretRef` Secret, else the inline user name and password) and decodes
//! the Secret.

use k8s_openapi::api::core::v1::Secret;

use super::PlanError;
use crate::api::Vino;
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
}
