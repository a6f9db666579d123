//! The CRD manifests committed under `packaging/crd/` must be exactly what `vinod crd` prints;
//! regenerate them with `vinod crd > packaging/crd/airship.airshipit.org_vinoes.yaml`,
//! `vinod crd --claims > packaging/crd/airship.airshipit.org_vinoipclaims.yaml`,
//! `vinod crd --pool-claims > packaging/crd/airship.airshipit.org_vinopoolclaims.yaml`,
//! `vinod crd --vino-nodes > packaging/crd/airship.airshipit.org_vinonodes.yaml` and
//! `vinod crd --bmh > packaging/crd/metal3.io_baremetalhosts.yaml`.

use vinod::api::crd::{
    bmh_crd_yaml, claim_crd_yaml, pool_claim_crd_yaml, vino_crd_yaml, vino_node_crd_yaml,
};

fn committed(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/packaging/crd/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_default()
}

#[test]
fn vino_crd_is_current() {
    assert!(
        committed("airship.airshipit.org_vinoes.yaml") == vino_crd_yaml(),
        "packaging/crd/airship.airshipit.org_vinoes.yaml is stale: regenerate it with `vinod crd`"
    );
}

#[test]
fn claim_crd_is_current() {
    assert!(
        committed("airship.airshipit.org_vinoipclaims.yaml") == claim_crd_yaml(),
        "packaging/crd/airship.airshipit.org_vinoipclaims.yaml is stale: regenerate it with `vinod crd --claims`"
    );
}

#[test]
fn pool_claim_crd_is_current() {
    assert!(
        committed("airship.airshipit.org_vinopoolclaims.yaml") == pool_claim_crd_yaml(),
        "packaging/crd/airship.airshipit.org_vinopoolclaims.yaml is stale: regenerate it with `vinod crd --pool-claims`"
    );
    let crd: serde_json::Value = serde_yaml::from_str(&pool_claim_crd_yaml()).unwrap();
    assert_eq!(crd["spec"]["scope"], "Cluster");
}

#[test]
fn vino_node_crd_is_current() {
    assert!(
        committed("airship.airshipit.org_vinonodes.yaml") == vino_node_crd_yaml(),
        "packaging/crd/airship.airshipit.org_vinonodes.yaml is stale: regenerate it with `vinod crd --vino-nodes`"
    );
    let crd: serde_json::Value = serde_yaml::from_str(&vino_node_crd_yaml()).unwrap();
    assert_eq!(crd["spec"]["scope"], "Namespaced");
}

#[test]
fn bmh_crd_is_current() {
    assert!(
        committed("metal3.io_baremetalhosts.yaml") == bmh_crd_yaml(),
        "packaging/crd/metal3.io_baremetalhosts.yaml is stale: regenerate it with `vinod crd --bmh`"
    );
}

#[test]
fn vino_crd_has_the_api_shape() {
    let crd: serde_json::Value = serde_yaml::from_str(&vino_crd_yaml()).unwrap();
    assert_eq!(crd["spec"]["group"], "airship.airshipit.org");
    assert_eq!(crd["spec"]["names"]["plural"], "vinoes");
    assert_eq!(crd["spec"]["scope"], "Namespaced");
    let v = &crd["spec"]["versions"][0];
    assert_eq!(v["name"], "v1");
    assert!(v["subresources"]["status"].is_object());
    let columns: Vec<&str> = v["additionalPrinterColumns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(columns, ["Ready", "Nodes", "VMs", "Age"]);
    let spec = &v["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"];
    for field in [
        "nodeSelector",
        "configuration",
        "networks",
        "nodes",
        "daemonSetOptions",
        "bmcCredentials",
        "bmcDriver",
        "nodeLabelKeysToCopy",
        "pxeBootImageHost",
        "pxeBootImageHostPort",
        "pxeBootImagePath",
        "flavors",
    ] {
        assert!(spec[field].is_object(), "spec.{field} missing");
    }
    let net = &spec["networks"]["items"]["properties"];
    for field in [
        "name",
        "subnet",
        "dhcpAllocationStart",
        "dhcpAllocationStop",
        "instanceSubnetBitStep",
        "type",
        "staticAllocationStart",
        "staticAllocationStop",
        "dns_servers",
        "routes",
        "macPrefix",
        "physicalInterface",
        "libvirtTemplate",
        "bridgeName",
    ] {
        assert!(net[field].is_object(), "networks[].{field} missing");
    }
    let set = &spec["nodes"]["items"]["properties"];
    for field in [
        "name",
        "count",
        "bmhLabels",
        "libvirtTemplate",
        "networkInterfaces",
        "diskDrives",
        "networkDataTemplate",
        "rootDeviceName",
        "bootInterfaceName",
        "enableVNC",
    ] {
        assert!(set[field].is_object(), "nodes[].{field} missing");
    }
    assert!(spec["networks"]["items"]["properties"]["macPrefix"]["pattern"].is_string());
    assert_eq!(spec["networks"]["x-kubernetes-list-type"], "map");
    assert_eq!(
        spec["bmcDriver"]["enum"],
        serde_json::json!(["redfish", "redfish-virtualmedia"])
    );
}
