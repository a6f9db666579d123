//! Events about a Vino's VMs on this host (`events.k8s.io/v1`).

use kube::{Client, Resource, ResourceExt};
use tracing::warn;

use super::KubeError;
use super::recorder::{EventType, Occurrence, Recorder};
use super::status::join;
use crate::api::Vino;

/// Events about a Vino's VMs on this host (`events.k8s.io/v1`, reporting controller `vinod`,
/// instance the node name). Each event is about the Vino, related to the VM's BareMetalHost,
/// so repeats of one event for one VM (the same note) are counted in a series rather than
/// duplicated.
#[derive(Clone)]
pub struct Events {
    recorder: Recorder,
    node: String,
}

impl Events {
    /// Events published as host `node`.
    pub fn new(client: Client, node: &str) -> Self {
        Events {
            recorder: Recorder::new(client, "vinod", node),
            node: node.to_string(),
        }
    }

    /// VM `vm` (domain name) was defined (`bmh`: the BareMetalHost it is published as, when
    /// known).
    pub async fn vm_created(
        &self,
        vino: &Vino,
        vm: &str,
        bmh: Option<&str>,
    ) -> Result<(), KubeError> {
        let note = match bmh {
            Some(bmh) => format!(
                "{}: VM {vm} defined, published as BareMetalHost {bmh}",
                self.node
            ),
            None => format!("{}: VM {vm} defined", self.node),
        };
        self.publish(vino, EventType::Normal, "VmCreated", "Create", note, bmh)
            .await
    }

    /// The VMs `vms` (domain name, BareMetalHost when known) were defined in one pass: one
    /// Event for all of them (one VM: as [`Events::vm_created`]).
    pub async fn vms_created(
        &self,
        vino: &Vino,
        vms: &[(String, Option<String>)],
    ) -> Result<(), KubeError> {
        self.batch(vino, vms, Batch::Created).await
    }

    /// The VMs `vms` were removed in one pass: one Event for all of them (one VM: as
    /// [`Events::vm_deleted`]).
    pub async fn vms_deleted(
        &self,
        vino: &Vino,
        vms: &[(String, Option<String>)],
    ) -> Result<(), KubeError> {
        self.batch(vino, vms, Batch::Deleted).await
    }

    async fn batch(
        &self,
        vino: &Vino,
        vms: &[(String, Option<String>)],
        what: Batch,
    ) -> Result<(), KubeError> {
        let (reason, action, done) = match what {
            Batch::Created => ("VmCreated", "Create", "defined"),
            Batch::Deleted => ("VmDeleted", "Delete", "deleted"),
        };
        match (vms, what) {
            ([], _) => Ok(()),
            ([(vm, bmh)], Batch::Created) => self.vm_created(vino, vm, bmh.as_deref()).await,
            ([(vm, bmh)], Batch::Deleted) => self.vm_deleted(vino, vm, bmh.as_deref()).await,
            _ => {
                let note = format!("{}: {} VMs {done}: {}", self.node, vms.len(), listed(vms));
                self.publish(vino, EventType::Normal, reason, action, note, None)
                    .await
            }
        }
    }

    /// The VMs `vms` (domain, BareMetalHost) could not be built or changed in one pass.
    pub async fn vms_failed(
        &self,
        vino: &Vino,
        vms: &[(String, String)],
        error: &str,
    ) -> Result<(), KubeError> {
        match vms {
            [] => Ok(()),
            [(vm, bmh)] => self.vm_failed(vino, vm, bmh, error).await,
            _ => {
                let names: Vec<&str> = vms.iter().map(|(vm, _)| vm.as_str()).collect();
                let note = format!(
                    "{}: {} VMs: {error}: {}",
                    self.node,
                    vms.len(),
                    join(&names)
                );
                self.publish(
                    vino,
                    EventType::Warning,
                    "VmFailed",
                    "Reconcile",
                    note,
                    None,
                )
                .await
            }
        }
    }

    /// VM `vm` was removed (`bmh`: the BareMetalHost it was published as, when known; not
    /// after a restart that came between its plan and its removal).
    pub async fn vm_deleted(
        &self,
        vino: &Vino,
        vm: &str,
        bmh: Option<&str>,
    ) -> Result<(), KubeError> {
        let note = match bmh {
            Some(bmh) => format!("{}: VM {vm} and BareMetalHost {bmh} deleted", self.node),
            None => format!("{}: VM {vm} deleted", self.node),
        };
        self.publish(vino, EventType::Normal, "VmDeleted", "Delete", note, bmh)
            .await
    }

    /// VM `vm` could not be built or changed.
    pub async fn vm_failed(
        &self,
        vino: &Vino,
        vm: &str,
        bmh: &str,
        error: &str,
    ) -> Result<(), KubeError> {
        let note = format!("{}: VM {vm}: {error}", self.node);
        self.publish(
            vino,
            EventType::Warning,
            "VmFailed",
            "Reconcile",
            note,
            Some(bmh),
        )
        .await
    }

    /// BareMetalHost `bmh` was deleted to be created again (its boot MAC changed).
    pub async fn host_recreated(&self, vino: &Vino, bmh: &str) -> Result<(), KubeError> {
        let note = format!(
            "{}: BareMetalHost {bmh} deleted and created again: bootMACAddress cannot change",
            self.node
        );
        self.publish(
            vino,
            EventType::Warning,
            "BareMetalHostRecreated",
            "Recreate",
            note,
            Some(bmh),
        )
        .await
    }

    async fn publish(
        &self,
        vino: &Vino,
        type_: EventType,
        reason: &str,
        action: &str,
        note: String,
        bmh: Option<&str>,
    ) -> Result<(), KubeError> {
        let related = bmh.map(|bmh| k8s_openapi::api::core::v1::ObjectReference {
            api_version: Some("metal3.io/v1alpha1".into()),
            kind: Some("BareMetalHost".into()),
            name: Some(bmh.to_string()),
            namespace: vino.namespace(),
            ..Default::default()
        });
        let occurrence = Occurrence {
            regarding: vino.object_ref(&()),
            related,
            type_,
            reason,
            action,
            note: join(&[note]),
        };
        self.recorder.publish(occurrence).await.map_err(|e| {
            warn!(reason, error = %e, "cannot publish an event");
            KubeError::api(format!("publish event {reason} for {}", vino.name_any()), e)
        })
    }
}

/// `vm (BareMetalHost bmh), …`, bounded like every message.
fn listed(vms: &[(String, Option<String>)]) -> String {
    let parts: Vec<String> = vms
        .iter()
        .map(|(vm, bmh)| match bmh {
            Some(b) => format!("{vm} (BareMetalHost {b})"),
            None => vm.clone(),
        })
        .collect();
    join(&parts).replace("; ", ", ")
}

/// What happened to a batch of VMs.
#[derive(Clone, Copy)]
enum Batch {
    Created,
    Deleted,
}
