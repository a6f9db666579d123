//! The standalone [`VinoSource`]: Vinos and Secrets from a manifest file, IP claims in
//! `state_dir/claims.json`, BareMetalHosts, Secrets and status written under
//! `state_dir/standalone/`.

use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

use tracing::warn;

use super::files::{
    ClaimStore, FileError, Manifest, inside, multi_doc, read_claims, record_claims, save_claims,
    write_atomic, write_if_changed, yaml,
};
use super::report::VinoReport;
use super::source::{Finished, Inputs, Planner, Published, Unplanned, VinoSource};
use crate::api::Vino;
use crate::error_chain;
use crate::plan::{NodeFacts, VinoPlan};
use crate::state::Owner;

/// Vinos from a manifest file; results to files.
pub struct FileSource {
    node: NodeFacts,
    manifest_path: PathBuf,
    state_dir: PathBuf,
    last_good: Manifest,
    claims: ClaimStore,
}

impl FileSource {
    /// The Vinos of `manifest_path` on `node`, with claims and results under `state_dir`.
    pub fn new(node: NodeFacts, manifest_path: PathBuf, state_dir: PathBuf) -> Self {
        Self {
            node,
            manifest_path,
            state_dir,
            last_good: Manifest::default(),
            claims: ClaimStore::new(),
        }
    }

    /// The manifest file.
    pub fn manifest_path(&self) -> &std::path::Path {
        &self.manifest_path
    }

    fn claims_path(&self) -> PathBuf {
        self.state_dir.join("claims.json")
    }

    fn out_dir(&self) -> PathBuf {
        self.state_dir.join("standalone")
    }

    fn write_objects(&self, p: &VinoPlan) -> Result<usize, FileError> {
        // Metadata was validated before planning; this keeps a file path in its directory
        // whatever a name holds.
        let dir = inside(&self.out_dir(), &[&p.owner.namespace, &p.owner.name])?;
        let hosts = dir.join("baremetalhosts.yaml");
        let secrets = dir.join("secrets.yaml");
        let mut written = usize::from(write_if_changed(
            &hosts,
            multi_doc(&hosts, &p.bare_metal_hosts)?.as_bytes(),
            0o644,
        )?);
        // Secret manifests hold the BMC password: readable by root only.
        written += usize::from(write_if_changed(
            &secrets,
            multi_doc(&secrets, &p.secrets)?.as_bytes(),
            0o600,
        )?);
        Ok(written)
    }
}

impl VinoSource for FileSource {
    type Error = FileError;

    async fn read(&mut self) -> Result<Inputs, FileError> {
        let problem = match Manifest::read(&self.manifest_path) {
            Ok(m) => {
                self.last_good = m;
                None
            }
            Err(e) => {
                warn!(error = %error_chain(&e), "cannot read the manifest; keeping the last good one");
                Some(error_chain(&e))
            }
        };
        self.claims = read_claims(&self.claims_path())?;
        Ok(Inputs {
            node: self.node.clone(),
            vinos: self.last_good.vinos.clone(),
            leaving: Vec::new(),
            secrets: self.last_good.secrets.clone(),
            problem,
        })
    }

    async fn reserve(
        &mut self,
        vino: &Vino,
        plan: &mut Planner<'_>,
    ) -> Result<VinoPlan, Unplanned<FileError>> {
        let key = Owner::of(vino).to_string();
        let p = plan(&self.claims.get(&key).cloned().unwrap_or_default())?;
        record_claims(&mut self.claims, &p);
        save_claims(&self.claims_path(), &self.claims).map_err(Unplanned::Source)?;
        Ok(p)
    }

    async fn publish(
        &mut self,
        plans: &[VinoPlan],
        reports: &mut [VinoReport],
    ) -> Published<FileError> {
        let mut out = Published::default();
        for p in plans {
            match self.write_objects(p) {
                Ok(n) => out.written += n,
                Err(e) => {
                    if let Some(r) = reports.iter_mut().find(|r| r.vino == p.owner.to_string()) {
                        r.degrade(format!("publishing failed: {}", error_chain(&e)));
                    }
                    out.errors.push(e);
                }
            }
        }
        let path = self.out_dir().join("status.yaml");
        if let Err(e) = yaml(&path, reports).and_then(|t| write_atomic(&path, t.as_bytes(), 0o644))
        {
            out.errors.push(e);
        }
        out
    }

    async fn finish(&mut self, _pass: &Finished<'_>) -> Vec<FileError> {
        // Vinos that left the manifest: their claims are released, their objects withdrawn.
        let present: BTreeSet<Owner> = self.last_good.vinos.iter().map(Owner::of).collect();
        let keys: BTreeSet<String> = present.iter().map(ToString::to_string).collect();
        self.claims.retain(|k, _| keys.contains(k));
        let mut errors: Vec<FileError> = save_claims(&self.claims_path(), &self.claims)
            .err()
            .into_iter()
            .collect();
        let out = self.out_dir();
        for ns in fs::read_dir(&out).into_iter().flatten().flatten() {
            let namespace = ns.file_name().to_string_lossy().into_owned();
            for dir in fs::read_dir(ns.path()).into_iter().flatten().flatten() {
                let owner = Owner {
                    namespace: namespace.clone(),
                    name: dir.file_name().to_string_lossy().into_owned(),
                };
                let path = dir.path();
                if path.is_dir()
                    && !present.contains(&owner)
                    && let Err(source) = fs::remove_dir_all(&path)
                {
                    errors.push(FileError::Io { path, source });
                }
            }
        }
        errors
    }
}
