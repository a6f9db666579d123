use super::*;
use crate::host::machine::Processors;

fn machine(sockets: u32, cores: u32, threads: u32) -> Machine {
    let mut m = Machine::sample();
    m.vcpus = sockets * cores * threads;
    m.cpu = Processors {
        sockets,
        cores,
        threads,
        arch: "x86_64".into(),
        model: "Haswell".into(),
    };
    m.memory_mib = 2048;
    m
}

#[test]
fn one_processor_per_socket_with_its_cores_and_threads() {
    let m = machine(2, 3, 2);
    let all = processors(&m);
    assert_eq!(all["Members@odata.count"], 2);
    assert_eq!(
        all["Members"][1]["@odata.id"],
        "/redfish/v1/Systems/ns.v.w-0/Processors/CPU1"
    );
    let p = processor(&m, "CPU1").unwrap();
    assert_eq!(p["TotalCores"], 3);
    assert_eq!(p["TotalThreads"], 6);
    assert_eq!(p["ProcessorArchitecture"], "x86");
    assert_eq!(p["InstructionSet"], "x86-64");
    assert_eq!(p["Model"], "Haswell");
    assert!(processor(&m, "CPU2").is_none());
    let mut arm = machine(1, 1, 1);
    arm.cpu.arch = "aarch64".into();
    assert_eq!(
        processor(&arm, "CPU0").unwrap()["InstructionSet"],
        "ARM-A64"
    );
}

#[test]
fn disks_are_devices_drives_and_volumes_with_their_capacity() {
    let m = machine(1, 1, 1);
    let disks = [
        Disk {
            id: "vda".into(),
            bus: "virtio".into(),
            capacity_bytes: Some(10 << 30),
        },
        Disk {
            id: "vdb".into(),
            bus: "virtio".into(),
            capacity_bytes: None,
        },
    ];
    let simple = simple_storage(&m, &disks);
    assert_eq!(simple["Devices"][0]["CapacityBytes"], 10u64 << 30);
    assert_eq!(simple["Devices"][1]["Name"], "vdb");
    assert!(simple["Devices"][1]["CapacityBytes"].is_null());
    let s = storage(&m, &disks);
    assert_eq!(s["Drives@odata.count"], 2);
    assert_eq!(
        drive(&m, &disks[0])["Links"]["Volumes"][0]["@odata.id"],
        "/redfish/v1/Systems/ns.v.w-0/Storage/1/Volumes/vda"
    );
    let v = volumes(&m, &disks);
    assert_eq!(
        v["Members@odata.count"], 1,
        "a volume of unknown size is left out"
    );
    assert_eq!(volume(&m, &disks[0]).unwrap()["CapacityBytes"], 10u64 << 30);
    assert!(volume(&m, &disks[1]).is_none());
}

#[test]
fn parts_parse_from_path_segments() {
    assert_eq!(Part::parse(&["Processors"]), Some(Part::Processors));
    assert_eq!(
        Part::parse(&["Storage", "1", "Drives", "vda"]),
        Some(Part::Drive("1".into(), "vda".into()))
    );
    assert_eq!(Part::parse(&["Bios", "Settings"]), Some(Part::BiosSettings));
    assert_eq!(Part::parse(&["Storage", "1", "Drives"]), None);
    assert!(!Part::Bios.needs_disks());
    assert!(Part::Storages.needs_disks());
}
