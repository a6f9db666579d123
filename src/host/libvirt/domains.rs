//! Domains carrying vinod's metadata element.
//!
//! A domain is vinod's when its persistent definition has the `<vinod:vm>` element (see
//! `marker`); its owner and spec hash come from that element's attributes. Any other domain
//! is never reported and never changed, and defining over it is refused.

use std::collections::BTreeMap;

use virt::connect::Connect;
use virt::domain::Domain as VirtDomain;
use virt::error::ErrorNumber;
use virt::sys;

use super::error::{VirtError, is};
use super::marker::{domain_error, lookup, marker};
use crate::state::Domain;

/// The owned domains, active and inactive, by name. `xml` is left empty.
pub(super) fn observe(conn: &Connect) -> Result<BTreeMap<String, Domain>, VirtError> {
    let list = conn
        .list_all_domains(0)
        .map_err(|source| VirtError::ListDomains { source })?;
    let mut domains = BTreeMap::new();
    for dom in list {
        let name = match dom.name() {
            Ok(name) => name,
            Err(e) if is(&e, ErrorNumber::NoDomain) => continue,
            Err(source) => return Err(VirtError::ListDomains { source }),
        };
        let marker = match marker(&dom, &name) {
            Ok(Some(marker)) => marker,
            Ok(None) => continue,
            Err(e) if e.libvirt().is_some_and(|e| is(e, ErrorNumber::NoDomain)) => continue,
            Err(e) => return Err(e),
        };
        let uuid = dom
            .uuid_string()
            .map_err(|e| domain_error(&name, "read the UUID of", e))?;
        let pinned_cpus = match super::describe::definition(&dom, &name) {
            Ok((_, view)) => view.pinned_cpus,
            Err(e) if e.libvirt().is_some_and(|e| is(e, ErrorNumber::NoDomain)) => continue,
            Err(e) => return Err(e),
        };
        let running = match dom.is_active() {
            Ok(active) => active,
            Err(e) if is(&e, ErrorNumber::NoDomain) => continue,
            Err(e) => return Err(domain_error(&name, "read the state of", e)),
        };
        domains.insert(
            name.clone(),
            Domain {
                name,
                uuid,
                owner: marker.owner,
                spec_hash: marker.spec_hash,
                xml: String::new(),
                pinned_cpus,
                running,
            },
        );
    }
    Ok(domains)
}

/// Defines `domain` (not started). Any existing domain with its name or UUID is a clash.
pub(super) fn define(conn: &Connect, domain: &Domain) -> Result<(), VirtError> {
    let by_uuid = || match conn.lookup_domain_by_uuid_string(&domain.uuid) {
        Ok(dom) => Ok(Some(dom)),
        Err(e) if is(&e, ErrorNumber::NoDomain) => Ok(None),
        Err(e) => Err(domain_error(&domain.name, "look up the UUID of", e)),
    };
    let clash = match lookup(conn, &domain.name)? {
        Some(_) => Some((domain.name.clone(), "name")),
        None => by_uuid()?.map(|dom| (dom.name().unwrap_or_else(|_| domain.uuid.clone()), "UUID")),
    };
    if let Some((existing, what)) = clash {
        return Err(VirtError::DomainClash {
            domain: domain.name.clone(),
            existing,
            what,
        });
    }
    tracing::info!(domain = %domain.name, "defining domain");
    conn.define_domain_xml(&domain.xml)
        .map(drop)
        .map_err(|e| domain_error(&domain.name, "define", e))
}

/// Replaces the persistent definition of an owned domain, keeping the BMC's state; a running
/// domain keeps running.
pub(super) fn redefine(conn: &Connect, domain: &Domain) -> Result<(), VirtError> {
    let Some(dom) = lookup(conn, &domain.name)? else {
        return Err(VirtError::NoDomain {
            domain: domain.name.clone(),
        });
    };
    require_owned(&dom, domain)?;
    // The BMC's boot override, firmware and CD drive are not part of the spec: keep them.
    let xml = super::machines::keep_bmc_state(&dom, &domain.name, &domain.xml)?;
    tracing::info!(domain = %domain.name, "redefining domain");
    conn.define_domain_xml(&xml)
        .map(drop)
        .map_err(|e| domain_error(&domain.name, "redefine", e))
}

/// Powers off (if running) and undefines an owned domain; one that is already gone is not an
/// error.
pub(super) fn undefine(conn: &Connect, domain: &Domain) -> Result<(), VirtError> {
    let Some(dom) = lookup(conn, &domain.name)? else {
        return Ok(());
    };
    require_owned(&dom, domain)?;
    let err = |action| move |e| domain_error(&domain.name, action, e);
    if dom.is_active().map_err(err("query"))? {
        tracing::info!(domain = %domain.name, "powering off domain");
        match dom.destroy() {
            // It stopped by itself in the meantime.
            Err(e) if is(&e, ErrorNumber::OperationInvalid) => {}
            other => other.map_err(err("power off"))?,
        }
    }
    forget_nvram_if_not_efi(conn, &dom, &domain.name);
    tracing::info!(domain = %domain.name, "undefining domain");
    match dom.undefine_flags(sys::VIR_DOMAIN_UNDEFINE_NVRAM) {
        // The test driver rejects every flag; a domain there has no NVRAM anyway.
        Err(e)
            if is(&e, ErrorNumber::InvalidArg)
                || is(&e, ErrorNumber::NoSupport)
                || is(&e, ErrorNumber::ArgumentUnsupported) =>
        {
            dom.undefine().map_err(err("undefine"))
        }
        other => other.map_err(err("undefine")),
    }
}

/// A domain that booted UEFI once and was switched to Legacy since (through the BMC or a new
/// `bootMode`) still has an NVRAM file, which libvirt deletes with the domain only if the
/// definition says UEFI. So a Legacy definition is made UEFI just before it is undefined; for
/// a domain that never had an NVRAM libvirt deletes nothing. Best effort: a failure (no UEFI
/// firmware installed, a driver without firmware selection) leaves the plain undefine.
fn forget_nvram_if_not_efi(conn: &Connect, dom: &VirtDomain, name: &str) {
    let Ok((xml, view)) = super::describe::definition(dom, name) else {
        return;
    };
    if view.efi {
        return;
    }
    let mut state = super::bmc::BmcState::of(&view);
    state.boot.mode = crate::host::machine::BootMode::Uefi;
    if let Ok(efi) = super::bmc::apply(&xml, &state, &view.machine)
        && let Err(e) = conn.define_domain_xml(&efi)
    {
        tracing::debug!(domain = %name, error = %e, "cannot mark the domain UEFI to delete an NVRAM with it");
    }
}

fn require_owned(dom: &VirtDomain, domain: &Domain) -> Result<(), VirtError> {
    match marker(dom, &domain.name)? {
        Some(m) if m.owner == domain.owner => Ok(()),
        _ => Err(VirtError::NotOwned {
            domain: domain.name.clone(),
            owner: domain.owner.clone(),
        }),
    }
}
