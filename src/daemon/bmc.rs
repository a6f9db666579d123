//! The BMC credentials of the manifest's Vinos, handed to the Redfish server on every pass.

use std::collections::BTreeMap;

use super::inputs::{Manifest, owner_of};
use crate::render::objects::Credentials;
use crate::state::Owner;

/// Each Vino's BMC credentials: from its `secretRef` Secret when it has one (a Vino whose
/// Secret is missing gets none), else inline. Vinos that cannot be planned keep theirs, so
/// their running VMs stay reachable.
pub fn bmc_credentials(manifest: &Manifest) -> BTreeMap<Owner, Credentials> {
    let mut out = BTreeMap::new();
    for vino in &manifest.vinos {
        let Some(c) = vino.spec.bmc_credentials.as_ref() else {
            continue;
        };
        let credentials = if c.secret_ref.is_some() {
            manifest.credentials(vino)
        } else {
            c.username
                .clone()
                .zip(c.password.clone())
                .map(|(username, password)| Credentials { username, password })
        };
        if let Some(credentials) = credentials {
            out.insert(owner_of(vino), credentials);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_and_secret_credentials() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.yaml");
        let vino = |name: &str, creds: &str| {
            format!(
                "apiVersion: airship.airshipit.org/v1\nkind: Vino\nmetadata:\n  name: {name}\n  namespace: ns\nspec:\n  nodeSelector:\n    matchLabels: {{}}\n  bmcCredentials:\n{creds}\n"
            )
        };
        let text = [
            vino("inline", "    username: admin\n    password: secret"),
            vino("ref", "    secretRef:\n      name: bmc"),
            vino("missing", "    secretRef:\n      name: nope"),
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: bmc\n  namespace: ns\nstringData:\n  username: root\n  password: hunter2\n".to_string(),
        ]
        .join("---\n");
        std::fs::write(&path, text).unwrap();
        let m = Manifest::read(&path).unwrap();
        let t = bmc_credentials(&m);
        let get = |n: &str| {
            t.get(&Owner {
                namespace: "ns".into(),
                name: n.into(),
            })
        };
        assert_eq!(get("inline").unwrap().password, "secret");
        assert_eq!(get("ref").unwrap().username, "root");
        assert!(get("missing").is_none());
    }
}
