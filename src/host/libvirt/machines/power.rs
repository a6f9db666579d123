//! Power actions on a vinod-owned domain, and what a boot through the BMC consumes: a `Once`
//! override, pending BIOS settings, a requested NVRAM reset.

use tracing::info;
use virt::connect::Connect;
use virt::domain::Domain as VirtDomain;
use virt::error::{Error as LibvirtError, ErrorNumber};
use virt::sys;

use super::super::bmc;
use super::super::describe::definition;
use super::super::error::{VirtError, is};
use super::super::marker::domain_error;
use super::{Followup, owned, rewrite_domain};
use crate::host::machine::{BootEnabled, BootTarget, PowerAction};

pub(super) fn power(
    conn: &Connect,
    name: &str,
    action: PowerAction,
) -> Result<Followup, VirtError> {
    let (dom, _) = owned(conn, name)?;
    let err = |action| move |e| domain_error(name, action, e);
    let active = dom.is_active().map_err(err("query"))?;
    info!(domain = %name, action = action.as_str(), active, "BMC power action");
    match action {
        PowerAction::On | PowerAction::ForceOn if !active => start(conn, &dom, name)?,
        PowerAction::On | PowerAction::ForceOn => {}
        PowerAction::ForceOff if active => destroy(&dom, name)?,
        PowerAction::ForceOff => {}
        PowerAction::GracefulShutdown | PowerAction::PushPowerButton if active => {
            dom.shutdown().map_err(err("shut down"))?
        }
        PowerAction::GracefulShutdown => {}
        PowerAction::PushPowerButton => start(conn, &dom, name)?,
        PowerAction::Nmi if active => inject_nmi(&dom).map_err(err("inject an NMI into"))?,
        PowerAction::Nmi => {
            return Err(VirtError::NotRunning {
                domain: name.to_string(),
                action: "inject an NMI into",
            });
        }
        PowerAction::ForceRestart => {
            if active {
                destroy(&dom, name)?;
            }
            start(conn, &dom, name)?;
        }
        PowerAction::GracefulRestart if !active => start(conn, &dom, name)?,
        PowerAction::GracefulRestart if boot_pending(&dom, name)? => {
            dom.shutdown().map_err(err("shut down"))?;
            return Ok(Followup::StartWhenOff);
        }
        PowerAction::GracefulRestart => {
            dom.reboot(0).map_err(err("reboot"))?;
            booted(conn, &dom, name)?;
        }
    }
    Ok(Followup::Nothing)
}

pub(super) fn start_if_off(conn: &Connect, name: &str) -> Result<bool, VirtError> {
    let (dom, _) = owned(conn, name)?;
    if dom
        .is_active()
        .map_err(|e| domain_error(name, "query", e))?
    {
        return Ok(false);
    }
    start(conn, &dom, name)?;
    Ok(true)
}

/// Starts the domain from its persistent definition (with a fresh NVRAM if the firmware
/// changed), then records the boot.
fn start(conn: &Connect, dom: &VirtDomain, name: &str) -> Result<(), VirtError> {
    let err = |e| domain_error(name, "power on", e);
    if bmc_element(dom, name)?.is_some_and(|e| e.contains(bmc::NVRAM_RESET)) {
        info!(domain = %name, "power on with the NVRAM reset from the firmware's template");
        match dom.create_with_flags(sys::VIR_DOMAIN_START_RESET_NVRAM) {
            // The test driver rejects every flag; a domain there has no NVRAM anyway.
            Err(e) if is(&e, ErrorNumber::InvalidArg) || is(&e, ErrorNumber::NoSupport) => {
                dom.create().map_err(err)?
            }
            other => other.map_err(err)?,
        }
    } else {
        dom.create().map_err(err)?;
    }
    booted(conn, dom, name)
}

/// The `<bmc:bmc>` element of the persistent definition, if there is one. Reading the
/// metadata element alone is much cheaper than the whole definition.
fn bmc_element(dom: &VirtDomain, name: &str) -> Result<Option<String>, VirtError> {
    match dom.metadata(
        sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
        Some(bmc::BMC_NS),
        sys::VIR_DOMAIN_AFFECT_CONFIG,
    ) {
        Ok(element) => Ok(Some(element)),
        Err(e) if is(&e, ErrorNumber::NoDomainMetadata) => Ok(None),
        Err(e) => Err(domain_error(name, "read the metadata of", e)),
    }
}

/// After a boot through the BMC: a `Once` override is consumed, pending BIOS settings are
/// in force and a requested NVRAM reset is done.
fn booted(conn: &Connect, dom: &VirtDomain, name: &str) -> Result<(), VirtError> {
    let Some(element) = bmc_element(dom, name)? else {
        return Ok(());
    };
    if !element.contains(BootEnabled::Once.as_str())
        && !element.contains("bios-pending")
        && !element.contains(bmc::NVRAM_RESET)
    {
        return Ok(());
    }
    rewrite_domain(conn, dom, name, |s| {
        if s.boot.enabled == BootEnabled::Once {
            s.boot.target = BootTarget::None;
            s.boot.enabled = BootEnabled::Disabled;
        }
        s.bios = s.bios.booted();
        s.nvram_reset = false;
    })
    .map(drop)
}

fn destroy(dom: &VirtDomain, name: &str) -> Result<(), VirtError> {
    match dom.destroy() {
        // It stopped by itself in the meantime.
        Err(e) if is(&e, ErrorNumber::OperationInvalid) => Ok(()),
        other => other.map_err(|e| domain_error(name, "power off", e)),
    }
}

/// Whether the running domain's boot configuration differs from its persistent one.
fn boot_pending(dom: &VirtDomain, name: &str) -> Result<bool, VirtError> {
    let live = dom
        .xml_desc(0)
        .map_err(|e| domain_error(name, "read the definition of", e))?;
    let live = bmc::view(&live).map_err(|source| VirtError::Xml {
        domain: name.to_string(),
        source,
    })?;
    let (_, config) = definition(dom, name)?;
    let secure = |v: &bmc::DomainView| v.efi && v.secure_boot;
    Ok((
        live.boot_devs.clone(),
        live.efi,
        secure(&live),
        live.cd_source.clone(),
    ) != (
        config.boot_devs.clone(),
        config.efi,
        secure(&config),
        config.cd_source.clone(),
    ))
}

/// `virDomainInjectNMI`, which the `virt` crate does not wrap.
#[allow(unsafe_code)]
fn inject_nmi(dom: &VirtDomain) -> Result<(), LibvirtError> {
    // SAFETY: `dom` owns a valid domain handle for the whole call, and the function takes no
    // other pointers; flags must be 0.
    let ret = unsafe { sys::virDomainInjectNMI(dom.as_ptr(), 0) };
    if ret < 0 {
        Err(LibvirtError::last_error())
    } else {
        Ok(())
    }
}
