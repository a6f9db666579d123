//! Full reconciles on real components: bridges over netlink and dnsmasq in a private network
//! namespace, libvirt's test driver (`test:///default`). Root only.

mod common;

use std::process::Command;

use common::host::{NetNs, Reaper, config, in_netns, plan_of, skip_reason, vino};
use vinod::host::bridge::NetlinkBridges;
use vinod::host::dnsmasq::Dnsmasq;
use vinod::host::libvirt::Libvirt;
use vinod::plan::diff::diff;
use vinod::reconcile::{Adapters, Outcome};
use vinod::state::HostState;

fn no_hook(_: usize) {}

fn assert_clean(o: &Outcome) {
    let errors: Vec<String> = o
        .errors
        .iter()
        .map(|e| format!("{e}: {:?}", std::error::Error::source(e)))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
}

fn count(o: &Outcome, prefix: &str) -> usize {
    o.applied.iter().filter(|a| a.starts_with(prefix)).count()
}

#[test]
fn four_vms_idempotent_scale_flavor_and_teardown_on_the_test_driver() {
    if let Some(why) = skip_reason() {
        common::prereq::skip(why);
        return;
    }
    let ns = NetNs::new("rc-td");
    // Things vinod did not create: a bridge with an address and a dnsmasq serving it.
    ns.ip(&["link", "add", "foreign0", "type", "bridge"]);
    ns.ip(&["addr", "add", "192.168.62.1/24", "dev", "foreign0"]);
    ns.ip(&["link", "set", "foreign0", "up"]);
    let tmp = tempfile::tempdir().unwrap();
    let _reaper = Reaper(tmp.path().to_path_buf());
    let foreign_pid_file = tmp.path().join("foreign.pid");
    let foreign = ns.exec(&[
        "dnsmasq",
        "--port=0",
        "--interface=foreign0",
        "--bind-interfaces",
        "--dhcp-range=192.168.62.100,192.168.62.110,1h",
        &format!("--pid-file={}", foreign_pid_file.display()),
        &format!("--dhcp-leasefile={}/foreign.leases", tmp.path().display()),
    ]);
    assert!(
        foreign.status.success(),
        "{}",
        String::from_utf8_lossy(&foreign.stderr)
    );
    let foreign_pid: i32 = std::fs::read_to_string(&foreign_pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();

    let cfg = config(tmp.path(), "test:///default", "vinod-rc-td");
    let path = ns.path();
    in_netns(&path, move || async move {
        let a = Adapters {
            bridges: NetlinkBridges::new().unwrap(),
            dhcp: Dnsmasq::new(&cfg.dhcp.dnsmasq, &cfg.run_dir).unwrap(),
            hypervisor: Libvirt::new(&cfg.libvirt),
        };

        let four = plan_of(&vino("rctd", "vrctd0", 61, 4, 1), &cfg).host;
        let o = a.reconcile(&four, &no_hook).await.unwrap();
        assert_clean(&o);
        assert_eq!(o.applied.len(), 10, "{:?}", o.applied);
        let seen = a.observe().await.unwrap();
        assert!(diff(&four, &seen).is_empty());
        assert_eq!(seen.domains.len(), 4);
        assert_eq!(seen.dhcp["vrctd0"].hosts.len(), 4);

        let again = a.reconcile(&four, &no_hook).await.unwrap();
        assert_clean(&again);
        assert!(
            again.applied.is_empty(),
            "second pass changed {:?}",
            again.applied
        );

        let two = plan_of(&vino("rctd", "vrctd0", 61, 2, 1), &cfg).host;
        let o = a.reconcile(&two, &no_hook).await.unwrap();
        assert_clean(&o);
        assert_eq!(
            (
                count(&o, "delete domain"),
                count(&o, "delete volume"),
                count(&o, "update DHCP")
            ),
            (2, 2, 1),
            "{:?}",
            o.applied
        );
        assert_eq!(a.observe().await.unwrap().domains.len(), 2);

        let five = plan_of(&vino("rctd", "vrctd0", 61, 5, 1), &cfg).host;
        let o = a.reconcile(&five, &no_hook).await.unwrap();
        assert_clean(&o);
        assert_eq!(
            (
                count(&o, "define domain"),
                count(&o, "create volume"),
                count(&o, "update DHCP")
            ),
            (3, 3, 1),
            "{:?}",
            o.applied
        );
        // The two VMs that stayed were not touched.
        assert!(
            o.applied
                .iter()
                .all(|a| !a.contains("worker-0") && !a.contains("worker-1"))
        );

        let bigger = plan_of(&vino("rctd", "vrctd0", 61, 5, 2), &cfg).host;
        let o = a.reconcile(&bigger, &no_hook).await.unwrap();
        assert_clean(&o);
        assert_eq!(count(&o, "redefine domain"), 5, "{:?}", o.applied);
        assert_eq!(o.pending_restart.len(), 5);
        assert!(diff(&bigger, &a.observe().await.unwrap()).is_empty());

        let o = a.reconcile(&HostState::default(), &no_hook).await.unwrap();
        assert_clean(&o);
        assert_eq!(o.applied.len(), 12, "{:?}", o.applied);
        assert_eq!(a.observe().await.unwrap(), HostState::default());
        // The test driver's own domain was never touched (checked while the adapter's
        // connection keeps the driver's state alive).
        let conn = virt::connect::Connect::open(Some("test:///default")).unwrap();
        let own = conn
            .lookup_domain_by_name("test")
            .expect("the test driver's own domain is gone");
        assert!(own.is_active().unwrap());
    });
    let link = ns.ip(&["-4", "addr", "show", "foreign0"]);
    assert!(
        link.contains("192.168.62.1/24"),
        "the foreign bridge changed: {link}"
    );
    assert!(
        std::path::Path::new(&format!("/proc/{foreign_pid}")).exists(),
        "the foreign dnsmasq was stopped"
    );
    let _ = Command::new("kill").arg(foreign_pid.to_string()).status();
}
