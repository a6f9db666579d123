//! OpenStack `network_data.json` for a VM, as metal3 puts on its config drive and SIP parses
//! with `json.Unmarshal`.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use serde_json::{Map, Value, json};

/// One NIC's network data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NicData {
    /// Interface name: the link id and the network id SIP looks up.
    pub name: String,
    /// Vino network name.
    pub network: String,
    /// MAC address.
    pub mac: String,
    /// Static address.
    pub ip: Ipv4Addr,
    /// Netmask.
    pub netmask: Ipv4Addr,
    /// MTU, if set.
    pub mtu: Option<u32>,
    /// Extra link keys from the Vino.
    pub options: BTreeMap<String, String>,
    /// Routes (network, netmask, gateway), with `$vinobridge` already resolved.
    pub routes: Vec<(String, String, String)>,
    /// DNS servers.
    pub dns: Vec<IpAddr>,
}

/// Renders the JSON document (pretty-printed, keys sorted).
pub fn render(nics: &[NicData]) -> String {
    let mut links = Vec::new();
    let mut networks = Vec::new();
    let mut dns: Vec<String> = Vec::new();
    for n in nics {
        let mut link = Map::new();
        link.insert("id".into(), json!(n.name));
        link.insert("name".into(), json!(n.name));
        link.insert("type".into(), json!("phy"));
        link.insert("ethernet_mac_address".into(), json!(n.mac));
        if let Some(mtu) = n.mtu {
            link.insert("mtu".into(), json!(mtu));
        }
        for (k, v) in &n.options {
            link.entry(k.clone()).or_insert_with(|| json!(v));
        }
        links.push(Value::Object(link));
        let routes: Vec<Value> = n
            .routes
            .iter()
            .map(|(net, mask, gw)| json!({"network": net, "netmask": mask, "gateway": gw}))
            .collect();
        networks.push(json!({
            "id": n.name,
            "network_id": n.network,
            "link": n.name,
            "type": "ipv4",
            "ip_address": n.ip.to_string(),
            "netmask": n.netmask.to_string(),
            "routes": routes,
        }));
        for d in &n.dns {
            let d = d.to_string();
            if !dns.contains(&d) {
                dns.push(d);
            }
        }
    }
    let services: Vec<Value> = dns
        .iter()
        .map(|d| json!({"type": "dns", "address": d}))
        .collect();
    let doc = json!({"links": links, "networks": networks, "services": services});
    // A Value built from strings and numbers always serializes.
    serde_json::to_string_pretty(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sip_can_find_the_address() {
        let nic = NicData {
            name: "management".into(),
            network: "management".into(),
            mac: "52:54:00:06:00:01".into(),
            ip: "192.168.2.11".parse().unwrap(),
            netmask: "255.255.240.0".parse().unwrap(),
            mtu: Some(1500),
            options: BTreeMap::from([("id".into(), "ignored".into()), ("vlan".into(), "7".into())]),
            routes: vec![(
                "10.0.0.0".into(),
                "255.255.255.0".into(),
                "192.168.2.10".into(),
            )],
            dns: vec!["135.188.34.124".parse().unwrap()],
        };
        let v: Value = serde_json::from_str(&render(&[nic])).unwrap();
        let net = v["networks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["id"] == "management")
            .unwrap();
        assert_eq!(net["ip_address"], "192.168.2.11");
        assert_eq!(
            v["links"][0]["id"], "management",
            "options never override standard keys"
        );
        assert_eq!(v["links"][0]["vlan"], "7");
        assert_eq!(v["services"][0]["address"], "135.188.34.124");
        assert_eq!(net["routes"][0]["gateway"], "192.168.2.10");
    }
}
