//! The netlink bridge adapter against the real kernel. Root only: every test runs in a fresh
//! network namespace of its own thread and checks the result with `ip` from that thread, so
//! nothing in the host's namespace is touched.

#[path = "common/prereq.rs"]
mod prereq;

use std::future::Future;
use std::process::Command;
use std::time::{Duration, Instant};

use ipnet::Ipv4Net;
use nix::sched::{CloneFlags, unshare};
use serde_json::Value;
use vinod::host::Bridges;
use vinod::host::bridge::{BridgeError, NetlinkBridges};
use vinod::state::{Bridge, Owner};

/// Runs `body` on a current-thread runtime in a new network namespace, or skips when not root.
fn in_netns<F: Future<Output = ()>>(body: impl FnOnce() -> F + Send + 'static) {
    if !nix::unistd::geteuid().is_root() {
        prereq::skip("needs root (network namespaces)");
        return;
    }
    let thread = std::thread::spawn(move || {
        // Only this thread moves; the runtime is built afterwards so its I/O stays here too.
        unshare(CloneFlags::CLONE_NEWNET).expect("unshare(CLONE_NEWNET)");
        let names: Vec<String> = links()
            .iter()
            .map(|l| l["ifname"].as_str().unwrap().to_string())
            .collect();
        assert_eq!(names, ["lo"], "not a fresh network namespace");
        ip(&["link", "set", "lo", "up"]);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(body());
    });
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

fn ip(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn links() -> Vec<Value> {
    serde_json::from_str(&ip(&["-j", "-d", "link", "show"])).unwrap()
}

/// `ip -j -d link show` of one link, or `None` if it does not exist.
fn link(name: &str) -> Option<Value> {
    links().into_iter().find(|l| l["ifname"] == name)
}

fn index(name: &str) -> u64 {
    link(name).expect("link exists")["ifindex"]
        .as_u64()
        .unwrap()
}

fn is_up(link: &Value) -> bool {
    link["flags"].as_array().unwrap().iter().any(|f| f == "UP")
}

/// The link's IPv4 addresses as `address/prefix`.
fn ipv4(name: &str) -> Vec<String> {
    let shown: Vec<Value> =
        serde_json::from_str(&ip(&["-j", "addr", "show", "dev", name])).unwrap();
    let infos = shown[0]["addr_info"].as_array().unwrap();
    infos
        .iter()
        .filter(|a| a["family"] == "inet")
        .map(|a| format!("{}/{}", a["local"].as_str().unwrap(), a["prefixlen"]))
        .collect()
}

fn bridge(name: &str, address: &str, mtu: Option<u32>, uplink: Option<&str>) -> Bridge {
    Bridge {
        name: name.into(),
        address: address.parse().unwrap(),
        mtu,
        uplink: uplink.map(Into::into),
        owner: Owner {
            namespace: "lab".into(),
            name: "rack-1".into(),
        },
    }
}

#[test]
fn create_builds_an_up_marked_bridge_with_address_and_mtu() {
    in_netns(|| async {
        let bridges = NetlinkBridges::new().unwrap();
        let desired = bridge("vt1br", "192.168.101.1/24", Some(1400), None);
        bridges.create(&desired).await.unwrap();

        let observed = bridges.observe().await.unwrap();
        assert_eq!(
            observed.into_iter().collect::<Vec<_>>(),
            [(desired.name.clone(), desired.clone())]
        );
        let shown = link("vt1br").unwrap();
        assert!(is_up(&shown));
        assert_eq!(shown["ifalias"], "vinod:lab/rack-1");
        assert_eq!(shown["mtu"], 1400);
        assert_eq!(shown["linkinfo"]["info_kind"], "bridge");
        assert_eq!(shown["linkinfo"]["info_data"]["stp_state"], 0);
        assert_eq!(shown["linkinfo"]["info_data"]["forward_delay"], 0);
        assert_eq!(ipv4("vt1br"), ["192.168.101.1/24"]);
    });
}

#[test]
fn a_second_pass_finds_nothing_to_change() {
    in_netns(|| async {
        ip(&[
            "link", "add", "vt2up", "type", "veth", "peer", "name", "vt2peer",
        ]);
        let bridges = NetlinkBridges::new().unwrap();
        let desired = bridge("vt2br", "192.168.102.1/24", Some(1400), Some("vt2up"));
        bridges.create(&desired).await.unwrap();
        let before = (
            index("vt2br"),
            link("vt2br").unwrap()["ifalias"].clone(),
            ipv4("vt2br"),
        );

        for _ in 0..2 {
            assert_eq!(
                bridges.observe().await.unwrap().get("vt2br"),
                Some(&desired)
            );
        }
        let after = (
            index("vt2br"),
            link("vt2br").unwrap()["ifalias"].clone(),
            ipv4("vt2br"),
        );
        assert_eq!(before, after);
        assert_eq!(link("vt2up").unwrap()["master"], "vt2br");
        // Set explicitly, the MTU is not raised to the uplink's 1500 when the port joins.
        assert_eq!(link("vt2br").unwrap()["mtu"], 1400);
    });
}

#[test]
fn uplink_is_enslaved_released_and_survives_delete() {
    in_netns(|| async {
        // A VM tap with a lower ifindex than the uplink: it must never be taken for the uplink.
        ip(&["tuntap", "add", "dev", "vt3tap", "mode", "tap"]);
        ip(&[
            "link", "add", "vt3up", "type", "veth", "peer", "name", "vt3peer",
        ]);
        ip(&["link", "set", "vt3peer", "up"]);
        let bridges = NetlinkBridges::new().unwrap();
        let with_uplink = bridge("vt3br", "192.168.103.1/24", Some(1500), Some("vt3up"));
        bridges.create(&with_uplink).await.unwrap();
        ip(&["link", "set", "vt3tap", "master", "vt3br"]);

        let uplink = link("vt3up").unwrap();
        assert_eq!(uplink["master"], "vt3br");
        assert!(is_up(&uplink));
        wait_for_forwarding("vt3up");
        assert_eq!(bridges.observe().await.unwrap()["vt3br"], with_uplink);

        let without = Bridge {
            uplink: None,
            ..with_uplink.clone()
        };
        bridges.update(&without, &with_uplink).await.unwrap();
        let uplink = link("vt3up").expect("uplink survives release");
        assert_eq!(uplink.get("master"), None);
        assert!(is_up(&uplink), "release leaves the up state alone");
        assert_eq!(link("vt3tap").unwrap()["master"], "vt3br");
        assert_eq!(bridges.observe().await.unwrap()["vt3br"], without);

        bridges.update(&with_uplink, &without).await.unwrap();
        assert_eq!(link("vt3up").unwrap()["master"], "vt3br");
        assert_eq!(bridges.observe().await.unwrap()["vt3br"], with_uplink);

        bridges.delete(&with_uplink).await.unwrap();
        assert_eq!(link("vt3br"), None);
        let uplink = link("vt3up").expect("uplink survives delete");
        assert_eq!(uplink.get("master"), None);
        assert!(is_up(&uplink));
        assert!(link("vt3tap").is_some());
        assert!(bridges.observe().await.unwrap().is_empty());
    });
}

/// With STP off a port forwards as soon as it has carrier; carrier changes reach the bridge
/// asynchronously, hence the bounded wait.
fn wait_for_forwarding(port: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let state = link(port).unwrap()["linkinfo"]["info_slave_data"]["state"].clone();
        if state == "forwarding" {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "port {port} is {state}, not forwarding"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn an_unowned_bridge_is_never_touched() {
    in_netns(|| async {
        ip(&["link", "add", "vt4br", "type", "bridge"]);
        ip(&["addr", "add", "192.168.104.1/24", "dev", "vt4br"]);
        ip(&["link", "set", "vt4br", "alias", "operator's bridge"]);
        let before = (
            index("vt4br"),
            ipv4("vt4br"),
            link("vt4br").unwrap()["ifalias"].clone(),
        );
        let bridges = NetlinkBridges::new().unwrap();
        let ours = bridge("vt4br", "192.168.104.2/24", Some(1400), None);

        assert!(bridges.observe().await.unwrap().is_empty());
        let clash = bridges.create(&ours).await.unwrap_err();
        assert!(matches!(clash, BridgeError::Clash { .. }), "{clash:?}");
        assert!(clash.to_string().contains("vt4br"), "{clash}");
        let update = bridges
            .update(
                &ours,
                &bridge("vt4br", "192.168.104.1/24", Some(1500), None),
            )
            .await
            .unwrap_err();
        assert!(matches!(update, BridgeError::Unowned { .. }), "{update:?}");
        let delete = bridges.delete(&ours).await.unwrap_err();
        assert!(matches!(delete, BridgeError::Unowned { .. }), "{delete:?}");

        let after = (
            index("vt4br"),
            ipv4("vt4br"),
            link("vt4br").unwrap()["ifalias"].clone(),
        );
        assert_eq!(before, after);
        assert_eq!(link("vt4br").unwrap()["mtu"], 1500);

        // Nor are its ports: one cannot become the uplink of a new bridge.
        ip(&[
            "link", "add", "vt4nic", "type", "veth", "peer", "name", "vt4peer",
        ]);
        ip(&["link", "set", "vt4nic", "master", "vt4br"]);
        let taken = bridge("vt4new", "192.168.104.1/24", None, Some("vt4nic"));
        let err = bridges.create(&taken).await.unwrap_err();
        assert!(matches!(err, BridgeError::UplinkTaken { .. }), "{err:?}");
        assert_eq!(link("vt4new"), None);
        assert_eq!(link("vt4nic").unwrap()["master"], "vt4br");
    });
}

#[test]
fn missing_links_failures_and_other_owners_leave_nothing_behind() {
    in_netns(|| async {
        let bridges = NetlinkBridges::new().unwrap();
        let absent = bridge("vt5gone", "192.168.105.1/24", None, None);
        let err = bridges.delete(&absent).await.unwrap_err();
        assert!(matches!(err, BridgeError::Missing { .. }), "{err:?}");
        let err = bridges.update(&absent, &absent).await.unwrap_err();
        assert!(matches!(err, BridgeError::Missing { .. }), "{err:?}");

        let no_uplink = bridge("vt5br", "192.168.105.1/24", None, Some("vt5nic"));
        let err = bridges.create(&no_uplink).await.unwrap_err();
        assert!(matches!(err, BridgeError::UplinkMissing { .. }), "{err:?}");
        assert_eq!(
            link("vt5br"),
            None,
            "nothing is created when the uplink is missing"
        );

        let too_big = bridge("vt5big", "192.168.105.1/24", Some(70_000), None);
        let err = bridges.create(&too_big).await.unwrap_err();
        assert!(matches!(err, BridgeError::Netlink { .. }), "{err:?}");
        assert_eq!(link("vt5big"), None, "a failed create is rolled back");

        let ours = bridge("vt5br", "192.168.105.1/24", None, None);
        bridges.create(&ours).await.unwrap();
        let theirs = Bridge {
            owner: Owner {
                namespace: "lab".into(),
                name: "rack-2".into(),
            },
            ..ours.clone()
        };
        let err = bridges.delete(&theirs).await.unwrap_err();
        assert!(matches!(err, BridgeError::OtherOwner { .. }), "{err:?}");
        assert!(link("vt5br").is_some());
    });
}

#[test]
fn update_changes_address_and_mtu() {
    in_netns(|| async {
        let bridges = NetlinkBridges::new().unwrap();
        let first = bridge("vt6br", "192.168.106.1/24", Some(1500), None);
        bridges.create(&first).await.unwrap();
        let ifindex = index("vt6br");

        // Same subnet: the new address must survive removing the old primary.
        let second = bridge("vt6br", "192.168.106.2/24", Some(9000), None);
        bridges
            .update(&second, &bridges.observe().await.unwrap()["vt6br"])
            .await
            .unwrap();
        assert_eq!(ipv4("vt6br"), ["192.168.106.2/24"]);
        assert_eq!(link("vt6br").unwrap()["mtu"], 9000);
        assert_eq!(bridges.observe().await.unwrap()["vt6br"], second);

        let third = bridge("vt6br", "192.168.107.1/25", Some(1400), None);
        bridges.update(&third, &second).await.unwrap();
        assert_eq!(ipv4("vt6br"), ["192.168.107.1/25"]);
        assert_eq!(link("vt6br").unwrap()["mtu"], 1400);
        assert_eq!(bridges.observe().await.unwrap()["vt6br"], third);
        assert_eq!(index("vt6br"), ifindex);
    });
}

#[test]
fn a_missing_address_is_reported_and_restored() {
    in_netns(|| async {
        let bridges = NetlinkBridges::new().unwrap();
        let desired = bridge("vt7br", "192.168.108.1/24", Some(1500), None);
        bridges.create(&desired).await.unwrap();
        ip(&["-4", "addr", "flush", "dev", "vt7br"]);

        let observed = bridges.observe().await.unwrap()["vt7br"].clone();
        assert_eq!(observed.address, Ipv4Net::default());
        assert_eq!(observed.address.to_string(), "0.0.0.0/0");
        bridges.update(&desired, &observed).await.unwrap();
        assert_eq!(ipv4("vt7br"), ["192.168.108.1/24"]);
        assert_eq!(bridges.observe().await.unwrap()["vt7br"], desired);
    });
}
