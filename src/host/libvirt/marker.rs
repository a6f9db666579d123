//! Which domains are vinod's: the `<vinod:vm>` element in [`METADATA_NS`] on a domain's
//! persistent definition, with its owner and spec hash; and looking a domain up by name.

use virt::connect::Connect;
use virt::domain::Domain as VirtDomain;
use virt::error::{Error as LibvirtError, ErrorNumber};
use virt::sys;

use super::error::{VirtError, is};
use super::xml;
use crate::render::domain::METADATA_NS;
use crate::state::Owner;

/// vinod's metadata on a domain.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Marker {
    pub(super) owner: Owner,
    pub(super) spec_hash: String,
}

/// The domain called `name`, if there is one.
pub(super) fn lookup(conn: &Connect, name: &str) -> Result<Option<VirtDomain>, VirtError> {
    match conn.lookup_domain_by_name(name) {
        Ok(dom) => Ok(Some(dom)),
        Err(e) if is(&e, ErrorNumber::NoDomain) => Ok(None),
        Err(e) => Err(domain_error(name, "look up", e)),
    }
}

/// vinod's metadata from the persistent definition (the one `redefine` changes), or `None` for
/// a domain without it. Transient domains are never vinod's: vinod only defines.
pub(super) fn marker(dom: &VirtDomain, name: &str) -> Result<Option<Marker>, VirtError> {
    if !dom
        .is_persistent()
        .map_err(|e| domain_error(name, "query", e))?
    {
        return Ok(None);
    }
    let element = match dom.metadata(
        sys::VIR_DOMAIN_METADATA_ELEMENT as i32,
        Some(METADATA_NS),
        sys::VIR_DOMAIN_AFFECT_CONFIG,
    ) {
        Ok(element) => element,
        Err(e) if is(&e, ErrorNumber::NoDomainMetadata) => return Ok(None),
        Err(e) => return Err(domain_error(name, "read the metadata of", e)),
    };
    let marker = parse_marker(&element);
    if marker.is_none() {
        // It is marked as vinod's, so it must not be taken for a stranger's; but without an
        // owner it cannot be matched to a Vino either. Leave it alone and say so.
        tracing::warn!(domain = %name, metadata = %element, "ignoring domain with malformed vinod metadata");
    }
    Ok(marker)
}

fn parse_marker(element: &str) -> Option<Marker> {
    let mut attrs = xml::attributes(element)?;
    let namespace = attrs.remove("vino-namespace").filter(|s| !s.is_empty())?;
    let name = attrs.remove("vino-name").filter(|s| !s.is_empty())?;
    let spec_hash = attrs.remove("spec-hash")?;
    Some(Marker {
        owner: Owner { namespace, name },
        spec_hash,
    })
}

pub(super) fn domain_error(domain: &str, action: &'static str, source: LibvirtError) -> VirtError {
    VirtError::Domain {
        domain: domain.to_string(),
        action,
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_marker_as_libvirt_returns_it() {
        let m = parse_marker(
            "<vm vino-namespace=\"ns\" vino-name=\"a&apos;b\" node=\"n1\" spec-hash=\"0123\"/>\n",
        )
        .unwrap();
        assert_eq!(m.owner.namespace, "ns");
        assert_eq!(m.owner.name, "a'b");
        assert_eq!(m.spec_hash, "0123");
        assert_eq!(
            parse_marker("<vm vino-namespace=\"ns\" spec-hash=\"0123\"/>"),
            None
        );
        assert_eq!(
            parse_marker("<vm vino-namespace=\"\" vino-name=\"v\" spec-hash=\"0123\"/>"),
            None
        );
    }
}
