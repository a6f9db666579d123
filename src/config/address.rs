//! Addresses in the configuration, parsed when the file is read (an empty string means "not
//! set"), so that the rest of vinod only ever sees typed values. A value that does not parse
//! is refused naming its key, with at most 64 characters of it quoted.

use std::net::{IpAddr, SocketAddr};

use serde::de::Error;
use serde::{Deserialize, Deserializer, Serializer};

use super::shown;

/// `text` as an IP address, or an error naming `key`.
fn ip<E: Error>(key: &str, text: &str) -> Result<IpAddr, E> {
    text.parse()
        .map_err(|_| E::custom(format!("{key}: {} is not an IP address", shown(text))))
}

/// An optional IP address under `key`: serde `with` modules.
macro_rules! optional_ip {
    ($module:ident, $key:literal) => {
        #[doc = concat!("`", $key, "`: an IP address, or empty for none.")]
        pub mod $module {
            use super::*;

            pub fn serialize<S: Serializer>(v: &Option<IpAddr>, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&v.map(|a| a.to_string()).unwrap_or_default())
            }

            pub fn deserialize<'de, D: Deserializer<'de>>(
                d: D,
            ) -> Result<Option<IpAddr>, D::Error> {
                let text = String::deserialize(d)?;
                if text.is_empty() {
                    Ok(None)
                } else {
                    ip($key, &text).map(Some)
                }
            }
        }
    };
}

optional_ip!(redfish_listen_address, "redfish.listen_address");
optional_ip!(redfish_advertise_address, "redfish.advertise_address");

/// `vnc.listen`: an IP address.
pub mod vnc_listen {
    use super::*;

    pub fn serialize<S: Serializer>(v: &IpAddr, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<IpAddr, D::Error> {
        ip("vnc.listen", &String::deserialize(d)?)
    }
}

/// `metrics.listen`: `address:port`, or empty for off.
pub mod metrics_listen {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<SocketAddr>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&v.map(|a| a.to_string()).unwrap_or_default())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SocketAddr>, D::Error> {
        let text = String::deserialize(d)?;
        if text.is_empty() {
            return Ok(None);
        }
        text.parse().map(Some).map_err(|_| {
            D::Error::custom(format!(
                "metrics.listen: {} is not an address:port such as 127.0.0.1:9477",
                shown(&text)
            ))
        })
    }
}
