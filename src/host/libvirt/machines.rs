//! [`Machines`] over libvirt: the BMC's power, boot and media operations on vinod-owned
//! domains.
//!
//! Boot override and media live in the persistent definition (boot order, firmware, CD
//! drive, and the `<bmc:bmc>` element written by [`bmc`](super::bmc)). A running domain keeps
//! the configuration it was started with, so they take effect at the next boot vinod performs:
//! power-on, `ForceRestart` (always a cold restart) and `GracefulRestart` (an ACPI reboot
//! when the domain already runs its persistent configuration, otherwise an ACPI power-off
//! followed by a power-on once the guest has stopped). A `Once` override is consumed by that
//! power-on: right after the domain starts, the persistent definition goes back to the
//! default order. A reboot the guest does on its own is a warm reset of the same process and
//! keeps the boot order the domain was started with. Secure boot is UEFI firmware selected by
//! its features (secure boot, enrolled keys, with SMM); a change of it also resets the NVRAM
//! from the new firmware's template at that boot.

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use tracing::warn;
use virt::connect::Connect;
use virt::domain::Domain as VirtDomain;
use virt::error::ErrorNumber;
use virt::sys;

use super::bmc::{self, BmcState};
use super::describe::{self, definition, describe};
use super::error::{VirtError, is};
use super::marker::{domain_error, lookup, marker};
use super::{Libvirt, Machines};
use crate::host::machine::{
    BiosSettings, BootMode, BootOverride, Disk, Machine, Media, PowerAction,
};
use crate::state::Owner;

/// How long a `GracefulRestart` that needs a cold boot waits for the guest to power off.
pub const GRACEFUL_RESTART_TIMEOUT: Duration = Duration::from_secs(300);
/// How often that wait checks the domain's state.
const RESTART_POLL: Duration = Duration::from_millis(200);
/// The persistent definition, with secrets, so rewriting it loses nothing.
pub(super) const INACTIVE_XML: sys::virDomainXMLFlags =
    sys::VIR_DOMAIN_XML_INACTIVE | sys::VIR_DOMAIN_XML_SECURE;

/// What a power action left to do.
#[derive(Debug, PartialEq, Eq)]
enum Followup {
    Nothing,
    /// The guest was asked to power off; start it once it has.
    StartWhenOff,
}

impl Machines for Libvirt {
    type Error = VirtError;

    async fn list(&self) -> Result<Vec<Machine>, VirtError> {
        self.run_shared(list).await
    }

    async fn get(&self, name: &str) -> Result<Option<Machine>, VirtError> {
        let name = name.to_string();
        self.run_shared(move |conn| match lookup(conn, &name)? {
            Some(dom) => describe(&dom, &name),
            None => Ok(None),
        })
        .await
    }

    async fn owner(&self, name: &str) -> Result<Option<Owner>, VirtError> {
        let name = name.to_string();
        self.run_shared(move |conn| match owned(conn, &name) {
            Ok((_, owner)) => Ok(Some(owner)),
            Err(VirtError::NoMachine { .. }) => Ok(None),
            Err(e) => Err(e),
        })
        .await
    }

    async fn power(&self, name: &str, action: PowerAction) -> Result<(), VirtError> {
        let n = name.to_string();
        let next = self.run_shared(move |conn| power(conn, &n, action)).await?;
        if next == Followup::StartWhenOff {
            let this = self.clone();
            let name = name.to_string();
            tokio::spawn(async move { this.start_when_off(name).await });
        }
        Ok(())
    }

    async fn set_boot(&self, name: &str, boot: BootOverride) -> Result<(), VirtError> {
        let name = name.to_string();
        self.run_shared(move |conn| {
            rewrite(conn, &name, |s| {
                s.boot = boot;
                if boot.mode == BootMode::Legacy {
                    secure_boot(s, false);
                }
            })
            .map(drop)
        })
        .await
    }

    async fn insert_media(&self, name: &str, media: &Media) -> Result<(), VirtError> {
        let name = name.to_string();
        let media = media.clone();
        self.run_shared(move |conn| {
            let media = media.clone();
            rewrite(conn, &name, move |s| s.media = Some(media)).map(drop)
        })
        .await
    }

    async fn eject_media(&self, name: &str) -> Result<Option<Media>, VirtError> {
        let name = name.to_string();
        self.run_shared(move |conn| rewrite(conn, &name, |s| s.media = None).map(|old| old.media))
            .await
    }

    async fn disks(&self, name: &str) -> Result<Option<Vec<Disk>>, VirtError> {
        let name = name.to_string();
        self.run_shared(move |conn| match owned(conn, &name) {
            Ok((dom, _)) => Ok(Some(describe::disks(conn, &definition(&dom, &name)?.1))),
            Err(VirtError::NoMachine { .. }) => Ok(None),
            Err(e) => Err(e),
        })
        .await
    }

    async fn set_bios(&self, name: &str, bios: BiosSettings) -> Result<(), VirtError> {
        let name = name.to_string();
        self.run_shared(move |conn| {
            let bios = bios.clone();
            rewrite(conn, &name, move |s| s.bios = bios).map(drop)
        })
        .await
    }

    async fn set_secure_boot(&self, name: &str, enabled: bool) -> Result<(), VirtError> {
        let name = name.to_string();
        self.run_shared(move |conn| rewrite(conn, &name, |s| secure_boot(s, enabled)).map(drop))
            .await
    }

    async fn secure_boot_now(&self, name: &str) -> Result<Option<bool>, VirtError> {
        let name = name.to_string();
        self.run_shared(move |conn| {
            let dom = match owned(conn, &name) {
                Ok((dom, _)) => dom,
                Err(VirtError::NoMachine { .. }) => return Ok(None),
                Err(e) => return Err(e),
            };
            let name = name.as_str();
            let err = |action| move |e| domain_error(name, action, e);
            if !dom.is_active().map_err(err("query"))? {
                return Ok(Some(false));
            }
            let live = dom.xml_desc(0).map_err(err("read the definition of"))?;
            let live = bmc::view(&live).map_err(|source| VirtError::Xml {
                domain: name.to_string(),
                source,
            })?;
            Ok(Some(live.efi && live.secure_boot))
        })
        .await
    }
}

/// Turns secure boot on or off in `s`; a change makes the next boot reset the NVRAM, whose
/// variables (keys included) come from the firmware's template.
fn secure_boot(s: &mut BmcState, enabled: bool) {
    if s.secure_boot != enabled {
        s.secure_boot = enabled;
        s.nvram_reset = true;
    }
}

impl Libvirt {
    /// Like `run`, but the session lock is held only to fetch the connection: BMC requests
    /// make their libvirt calls concurrently (a libvirt connection is thread-safe). A lost
    /// connection is reopened and the call retried once, as `run` does.
    async fn run_shared<T, F>(&self, op: F) -> Result<T, VirtError>
    where
        T: Send + 'static,
        F: Fn(&Connect) -> Result<T, VirtError> + Send + 'static,
    {
        let session = Arc::clone(&self.session);
        tokio::task::spawn_blocking(move || {
            let lock = || session.lock().unwrap_or_else(PoisonError::into_inner);
            let conn = lock().connection()?.clone();
            match op(&conn) {
                Err(e) if e.is_connection_lost() => {
                    drop(conn);
                    let mut s = lock();
                    s.conn = None;
                    s.call(|c| op(c))
                }
                result => result,
            }
        })
        .await
        .map_err(VirtError::Task)?
    }

    /// Polls until `name` is off, then starts it; gives up after
    /// [`GRACEFUL_RESTART_TIMEOUT`] and leaves the guest as it is.
    async fn start_when_off(&self, name: String) {
        let deadline = tokio::time::Instant::now() + GRACEFUL_RESTART_TIMEOUT;
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(RESTART_POLL).await;
            let n = name.clone();
            match self.run_shared(move |conn| start_if_off(conn, &n)).await {
                Ok(true) => return,
                Ok(false) => {}
                Err(e) => {
                    warn!(domain = %name, error = %e, "graceful restart: cannot power on");
                    return;
                }
            }
        }
        warn!(domain = %name, timeout = ?GRACEFUL_RESTART_TIMEOUT, "graceful restart: the guest did not power off; left running");
    }
}

/// Every vinod-owned domain, by name.
fn list(conn: &Connect) -> Result<Vec<Machine>, VirtError> {
    let all = conn
        .list_all_domains(0)
        .map_err(|source| VirtError::ListDomains { source })?;
    let mut out = Vec::new();
    for dom in all {
        let name = match dom.name() {
            Ok(name) => name,
            Err(e) if is(&e, ErrorNumber::NoDomain) => continue,
            Err(source) => return Err(VirtError::ListDomains { source }),
        };
        match describe(&dom, &name) {
            Ok(Some(machine)) => out.push(machine),
            Ok(None) => {}
            // Undefined while being listed.
            Err(e) if e.libvirt().is_some_and(|e| is(e, ErrorNumber::NoDomain)) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// The vinod-owned domain `name` and its owner.
fn owned(conn: &Connect, name: &str) -> Result<(VirtDomain, Owner), VirtError> {
    let no = || VirtError::NoMachine {
        domain: name.to_string(),
    };
    let dom = lookup(conn, name)?.ok_or_else(no)?;
    let owner = marker(&dom, name)?.ok_or_else(no)?.owner;
    Ok((dom, owner))
}

/// Changes the BMC state of `name`'s persistent definition; returns the state before.
fn rewrite(
    conn: &Connect,
    name: &str,
    change: impl FnOnce(&mut BmcState),
) -> Result<BmcState, VirtError> {
    let (dom, _) = owned(conn, name)?;
    rewrite_domain(conn, &dom, name, change)
}

fn rewrite_domain(
    conn: &Connect,
    dom: &VirtDomain,
    name: &str,
    change: impl FnOnce(&mut BmcState),
) -> Result<BmcState, VirtError> {
    let (xml, view) = definition(dom, name)?;
    let before = BmcState::of(&view);
    let mut after = before.clone();
    change(&mut after);
    if after == before {
        return Ok(before);
    }
    let new = bmc::apply(&xml, &after, &view.machine).map_err(|source| VirtError::Xml {
        domain: name.to_string(),
        source,
    })?;
    conn.define_domain_xml(&new)
        .map_err(|e| domain_error(name, "redefine", e))?;
    Ok(before)
}

/// `xml` (a new definition from reconcile) with the BMC state of `dom`'s current one carried
/// over: the override, the firmware and the CD drive survive a redefinition.
pub(super) fn keep_bmc_state(dom: &VirtDomain, name: &str, xml: &str) -> Result<String, VirtError> {
    let (_, old) = definition(dom, name)?;
    if old.bmc.is_none() {
        return Ok(xml.to_string());
    }
    let xml_err = |source| VirtError::Xml {
        domain: name.to_string(),
        source,
    };
    let new = bmc::view(xml).map_err(xml_err)?;
    let mut state = BmcState::of(&old);
    state.default_boot = new.boot_devs;
    bmc::apply(xml, &state, &new.machine).map_err(xml_err)
}

mod power;

use power::{power, start_if_off};
