//! The resource a request path names. Pure.

use super::inventory::Part;

/// Whether a virtual-media URI hangs under the System or its Manager.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// `/redfish/v1/Systems/{id}/VirtualMedia`.
    System,
    /// `/redfish/v1/Managers/{id}/VirtualMedia`.
    Manager,
}

/// A resource of the service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// `/redfish`: the version document.
    Versions,
    /// `/redfish/v1`.
    Root,
    /// `/redfish/v1/odata`.
    OData,
    /// `/redfish/v1/$metadata`.
    Metadata,
    /// The Systems collection.
    Systems,
    /// One System.
    System(String),
    /// Its reset action.
    Reset(String),
    /// The reset action's ActionInfo.
    ResetInfo(String),
    /// Its inventory or BIOS.
    Part(String, Part),
    /// Its BIOS's ResetBios action.
    ResetBios(String),
    /// Its EthernetInterfaces collection.
    Nics(String),
    /// One EthernetInterface (`nic<i>`).
    Nic(String, String),
    /// A VirtualMedia collection.
    MediaCollection(Via, String),
    /// The `Cd` VirtualMedia.
    Cd(Via, String),
    /// Its InsertMedia action.
    Insert(Via, String),
    /// Its EjectMedia action.
    Eject(Via, String),
    /// The Managers collection.
    Managers,
    /// One Manager (one per System, same id).
    Manager(String),
    /// The Chassis collection.
    Chassis,
    /// One Chassis (one per System, same id).
    ChassisMember(String),
    /// The SessionService.
    SessionService,
    /// The Sessions collection.
    Sessions,
    /// One Session.
    Session(String),
}

impl Target {
    /// The resource a request path names, if any. Trailing slashes are ignored; segments are
    /// percent-decoded.
    pub fn parse(path: &str) -> Option<Target> {
        let segs: Vec<String> = path
            .split('/')
            .filter(|s| !s.is_empty())
            .map(percent_decode)
            .collect::<Option<_>>()?;
        let s: Vec<&str> = segs.iter().map(String::as_str).collect();
        let id = |i: usize| s[i].to_string();
        Some(match s.as_slice() {
            ["redfish"] => Self::Versions,
            ["redfish", "v1"] => Self::Root,
            ["redfish", "v1", "odata"] => Self::OData,
            ["redfish", "v1", "$metadata"] => Self::Metadata,
            ["redfish", "v1", "Systems"] => Self::Systems,
            ["redfish", "v1", "Systems", _] => Self::System(id(3)),
            [
                "redfish",
                "v1",
                "Systems",
                _,
                "Actions",
                "ComputerSystem.Reset",
            ] => Self::Reset(id(3)),
            ["redfish", "v1", "Systems", _, "ResetActionInfo"] => Self::ResetInfo(id(3)),
            ["redfish", "v1", "Systems", _, "EthernetInterfaces"] => Self::Nics(id(3)),
            ["redfish", "v1", "Systems", _, "EthernetInterfaces", _] => Self::Nic(id(3), id(5)),
            [
                "redfish",
                "v1",
                "Systems",
                _,
                "Bios",
                "Actions",
                "Bios.ResetBios",
            ] => Self::ResetBios(id(3)),
            ["redfish", "v1", "Systems", _, rest @ ..] if Part::parse(rest).is_some() => {
                Self::Part(id(3), Part::parse(rest)?)
            }
            ["redfish", "v1", "Managers"] => Self::Managers,
            ["redfish", "v1", "Managers", _] => Self::Manager(id(3)),
            ["redfish", "v1", "Chassis"] => Self::Chassis,
            ["redfish", "v1", "Chassis", _] => Self::ChassisMember(id(3)),
            ["redfish", "v1", "SessionService"] => Self::SessionService,
            // POST to a collection's Members is a POST to the collection.
            ["redfish", "v1", "SessionService", "Sessions"]
            | ["redfish", "v1", "SessionService", "Sessions", "Members"] => Self::Sessions,
            ["redfish", "v1", "SessionService", "Sessions", _] => Self::Session(id(4)),
            [
                "redfish",
                "v1",
                kind @ ("Systems" | "Managers"),
                _,
                "VirtualMedia",
                rest @ ..,
            ] => {
                let via = if *kind == "Systems" {
                    Via::System
                } else {
                    Via::Manager
                };
                match rest {
                    [] => Self::MediaCollection(via, id(3)),
                    ["Cd"] => Self::Cd(via, id(3)),
                    ["Cd", "Actions", "VirtualMedia.InsertMedia"] => Self::Insert(via, id(3)),
                    ["Cd", "Actions", "VirtualMedia.EjectMedia"] => Self::Eject(via, id(3)),
                    _ => return None,
                }
            }
            _ => return None,
        })
    }

    /// The methods the resource allows, for `Allow` and 405.
    pub fn allow(&self) -> &'static str {
        match self {
            Self::System(_)
            | Self::Part(_, Part::BiosSettings)
            | Self::Part(_, Part::SecureBoot) => "GET, HEAD, PATCH",
            Self::Reset(_) | Self::Insert(..) | Self::Eject(..) | Self::ResetBios(_) => "POST",
            Self::Sessions => "GET, HEAD, POST",
            Self::Session(_) => "GET, HEAD, DELETE",
            _ => "GET, HEAD",
        }
    }

    /// Whether `method` may be used without credentials: the service root and the documents
    /// describing the service, and logging in.
    pub fn is_public(&self, method: &str) -> bool {
        matches!(
            self,
            Self::Versions | Self::Root | Self::OData | Self::Metadata
        ) || (*self == Self::Sessions && method == "POST")
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_name_resources() {
        assert_eq!(Target::parse("/redfish/v1/"), Some(Target::Root));
        assert_eq!(Target::parse("/redfish/v1"), Some(Target::Root));
        assert_eq!(Target::parse("/redfish"), Some(Target::Versions));
        assert_eq!(
            Target::parse("/redfish/v1/Systems/ns.v.w-0"),
            Some(Target::System("ns.v.w-0".into()))
        );
        assert_eq!(
            Target::parse("/redfish/v1/Systems/ns%2Ev.w-0/Actions/ComputerSystem.Reset"),
            Some(Target::Reset("ns.v.w-0".into()))
        );
        assert_eq!(
            Target::parse("/redfish/v1/Managers/x/VirtualMedia/Cd/Actions/VirtualMedia.EjectMedia"),
            Some(Target::Eject(Via::Manager, "x".into()))
        );
        assert_eq!(
            Target::parse("/redfish/v1/Systems/x/VirtualMedia/Cd/"),
            Some(Target::Cd(Via::System, "x".into()))
        );
        assert_eq!(
            Target::parse("/redfish/v1/Systems/x/VirtualMedia/Floppy"),
            None
        );
        assert_eq!(
            Target::parse("/redfish/v1/Systems/x/Storage/1/Volumes/vda"),
            Some(Target::Part(
                "x".into(),
                Part::Volume("1".into(), "vda".into())
            ))
        );
        assert_eq!(
            Target::parse("/redfish/v1/Systems/x/Bios/Actions/Bios.ResetBios"),
            Some(Target::ResetBios("x".into()))
        );
        assert_eq!(
            Target::Part("x".into(), Part::BiosSettings).allow(),
            "GET, HEAD, PATCH"
        );
        assert_eq!(
            Target::parse("/redfish/v1/Systems/x/SecureBoot").map(|t| t.allow()),
            Some("GET, HEAD, PATCH")
        );
        assert_eq!(
            Target::parse("/redfish/v1/Systems/x/Processors/CPU0/Sub"),
            None
        );
        assert_eq!(Target::parse("/redfish/v1/EventService"), None);
        assert_eq!(Target::parse("/redfish/v1/Systems/%zz"), None);
        assert_eq!(Target::parse("/"), None);
        assert!(Target::Root.is_public("GET"));
        assert!(Target::Sessions.is_public("POST"));
        assert!(!Target::Sessions.is_public("GET"));
        assert!(!Target::Systems.is_public("GET"));
    }
}
