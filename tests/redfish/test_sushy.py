"""vinod's Redfish BMC driven by sushy, the client library Ironic uses."""

import os
import time

import pytest
import requests
import sushy
from sushy import exceptions


def connect(service, vino, auth=None):
    kwargs = {"verify": service["ca"]}
    if auth is None:
        kwargs.update(username=vino["username"], password=vino["password"])
    else:
        kwargs["auth"] = auth
    return sushy.Sushy(service["url"] + "/redfish/v1", **kwargs)


def system_path(name):
    return f"/redfish/v1/Systems/{name}"


@pytest.fixture
def vino(service):
    return service["vinos"][0]


@pytest.fixture
def root(service, vino):
    return connect(service, vino)


def wait_for(what, predicate, timeout=15):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def test_lists_exactly_the_vinos_systems(service, root, vino):
    members = root.get_system_collection().members_identities
    assert sorted(members) == sorted(system_path(s) for s in vino["systems"])
    other = service["vinos"][1]
    other_members = connect(service, other).get_system_collection().members_identities
    assert sorted(other_members) == sorted(system_path(s) for s in other["systems"])


def test_reads_a_system(root, vino):
    s = root.get_system(system_path(vino["systems"][0]))
    assert s.identity == vino["systems"][0]
    assert s.uuid
    assert s.json["ProcessorSummary"]["Count"] == 1
    assert s.json["ProcessorSummary"]["LogicalProcessorCount"] == 2
    assert s.memory_summary.size_gib == 2
    assert sushy.BOOT_SOURCE_TARGET_PXE in s.get_allowed_system_boot_source_values()
    assert sushy.RESET_FORCE_RESTART in s.get_allowed_reset_system_values()
    assert [m.identity for m in s.managers] == [vino["systems"][0]]
    macs = sorted(nic.mac_address for nic in s.ethernet_interfaces.get_members())
    assert len(macs) == 2 and all(m.startswith("52:54:00:") for m in macs)


def test_inventory_as_ironic_reads_it(root, vino):
    s = root.get_system(system_path(vino["systems"][0]))
    # The bed's VMs: one socket of two cores, one 12 GiB disk.
    assert s.processors.summary == (2, sushy.PROCESSOR_ARCH_x86)
    cpu = s.processors.get_members()[0]
    assert cpu.instruction_set == sushy.InstructionSet.X86_64
    assert (cpu.total_cores, cpu.total_threads) == (2, 2)
    assert s.simple_storage.disks_sizes_bytes == [12 * 2**30]
    assert s.storage.volumes_sizes_bytes == [12 * 2**30]
    assert s.storage.drives_sizes_bytes == [12 * 2**30]
    assert s.bios_version == "SeaBIOS"


def test_bios_settings_wait_for_a_boot(root, vino):
    s = root.get_system(system_path(vino["systems"][1]))
    assert s.bios.attributes["NumLock"] == "On"
    assert sushy.APPLY_TIME_ON_RESET in s.bios.supported_apply_times
    s.bios.set_attributes({"NumLock": "Off"}, apply_time=sushy.APPLY_TIME_ON_RESET)
    s.bios.refresh()
    assert s.bios.pending_attributes == {"NumLock": "Off"}
    assert s.bios.attributes["NumLock"] == "On"
    s.reset_system(sushy.RESET_FORCE_RESTART)
    s.bios.refresh()
    assert s.bios.attributes["NumLock"] == "Off"
    s.bios.reset_bios()
    s.reset_system(sushy.RESET_FORCE_OFF)
    s.reset_system(sushy.RESET_ON)
    s.bios.refresh()
    assert s.bios.attributes["NumLock"] == "On"


def test_secure_boot_as_ironic_reads_and_sets_it(root, vino):
    s = root.get_system(system_path(vino["systems"][0]))
    sb = s.secure_boot
    assert sb.enabled is False
    assert sb.current_boot == sushy.SecureBootCurrentBoot.DISABLED
    # The bed's VMs boot SeaBIOS: secure boot cannot be turned on, only (again) off.
    with pytest.raises(exceptions.BadRequestError):
        sb.set_enabled(True)
    sb.set_enabled(False)
    sb.refresh()
    assert sb.enabled is False


def test_other_vinos_system_is_not_found(service, root):
    other = service["vinos"][1]["systems"][0]
    with pytest.raises(exceptions.ResourceNotFoundError):
        root.get_system(system_path(other))


@pytest.mark.parametrize(
    "action,expected",
    [
        (sushy.RESET_FORCE_OFF, sushy.POWER_STATE_OFF),
        (sushy.RESET_ON, sushy.POWER_STATE_ON),
        (sushy.RESET_NMI, sushy.POWER_STATE_ON),
        (sushy.RESET_GRACEFUL_SHUTDOWN, sushy.POWER_STATE_OFF),
        (sushy.RESET_FORCE_ON, sushy.POWER_STATE_ON),
        (sushy.RESET_GRACEFUL_RESTART, sushy.POWER_STATE_ON),
        (sushy.RESET_FORCE_RESTART, sushy.POWER_STATE_ON),
        (sushy.RESET_PUSH_POWER_BUTTON, sushy.POWER_STATE_OFF),
        (sushy.RESET_PUSH_POWER_BUTTON, sushy.POWER_STATE_ON),
    ],
)
def test_every_reset_type(root, vino, action, expected):
    s = root.get_system(system_path(vino["systems"][1]))
    s.reset_system(action)

    def reached():
        s.refresh()
        return s.power_state == expected

    wait_for(f"{action} -> {expected}", reached)


def test_boot_once_is_consumed_by_the_next_boot(root, vino):
    s = root.get_system(system_path(vino["systems"][0]))
    s.reset_system(sushy.RESET_FORCE_OFF)
    s.refresh()
    s.set_system_boot_options(sushy.BOOT_SOURCE_TARGET_PXE, enabled=sushy.BOOT_SOURCE_ENABLED_ONCE)
    s.refresh()
    assert s.boot.target == sushy.BOOT_SOURCE_TARGET_PXE
    assert s.boot.enabled == sushy.BOOT_SOURCE_ENABLED_ONCE
    # Still pending across reads and while off.
    s.refresh()
    assert s.boot.enabled == sushy.BOOT_SOURCE_ENABLED_ONCE
    s.reset_system(sushy.RESET_ON)
    s.refresh()
    assert s.power_state == sushy.POWER_STATE_ON
    assert s.boot.enabled == sushy.BOOT_SOURCE_ENABLED_DISABLED
    assert s.boot.target == sushy.BOOT_SOURCE_TARGET_NONE
    # Once more across a restart: set, reboot, gone.
    s.set_system_boot_options(sushy.BOOT_SOURCE_TARGET_CD, enabled=sushy.BOOT_SOURCE_ENABLED_ONCE)
    s.refresh()
    assert s.boot.target == sushy.BOOT_SOURCE_TARGET_CD
    s.reset_system(sushy.RESET_FORCE_RESTART)
    s.refresh()
    assert s.boot.enabled == sushy.BOOT_SOURCE_ENABLED_DISABLED


def test_boot_continuous_survives_reboots(root, vino):
    s = root.get_system(system_path(vino["systems"][0]))
    s.set_system_boot_options(
        sushy.BOOT_SOURCE_TARGET_HDD,
        enabled=sushy.BOOT_SOURCE_ENABLED_CONTINUOUS,
        mode=sushy.BOOT_SOURCE_MODE_BIOS,
    )
    for action in (sushy.RESET_FORCE_RESTART, sushy.RESET_FORCE_OFF, sushy.RESET_ON):
        s.reset_system(action)
        s.refresh()
        assert s.boot.target == sushy.BOOT_SOURCE_TARGET_HDD
        assert s.boot.enabled == sushy.BOOT_SOURCE_ENABLED_CONTINUOUS
        assert s.boot.mode == sushy.BOOT_SOURCE_MODE_BIOS
    s.set_system_boot_options(sushy.BOOT_SOURCE_TARGET_NONE, enabled=sushy.BOOT_SOURCE_ENABLED_DISABLED)
    s.refresh()
    assert s.boot.enabled == sushy.BOOT_SOURCE_ENABLED_DISABLED


def test_unsupported_boot_target_is_rejected(root, vino):
    s = root.get_system(system_path(vino["systems"][0]))
    with pytest.raises(exceptions.InvalidParameterValueError):
        s.set_system_boot_options(sushy.BOOT_SOURCE_TARGET_FLOPPY)


def media_files(service):
    directory = os.path.join(service["state"], "redfish", "media")
    return [os.path.join(directory, f) for f in os.listdir(directory)]


@pytest.mark.parametrize("via", ["system", "manager"])
def test_virtual_media_insert_and_eject(service, root, vino, image_server, via):
    name = vino["systems"][1]
    s = root.get_system(system_path(name))
    if via == "system":
        collection = s.virtual_media
    else:
        collection = root.get_manager(f"/redfish/v1/Managers/{name}").virtual_media
    cd = collection.get_member(collection.members_identities[0])
    assert not cd.inserted
    url = image_server["url"] + "/boot.iso"
    cd.insert_media(url)
    cd.refresh()
    assert cd.inserted
    assert cd.image == url
    files = media_files(service)
    assert len(files) == 1
    with open(files[0], "rb") as f:
        assert f.read() == image_server["payload"]
    s.set_system_boot_options(sushy.BOOT_SOURCE_TARGET_CD, enabled=sushy.BOOT_SOURCE_ENABLED_ONCE)
    s.reset_system(sushy.RESET_FORCE_RESTART)
    cd.eject_media()
    cd.refresh()
    assert not cd.inserted
    assert media_files(service) == []


def test_missing_image_is_a_redfish_error(root, vino, image_server):
    s = root.get_system(system_path(vino["systems"][1]))
    cd = s.virtual_media.get_member(s.virtual_media.members_identities[0])
    with pytest.raises(exceptions.BadRequestError) as e:
        cd.insert_media(image_server["url"] + "/missing.iso")
    assert "404" in str(e.value)


def test_wrong_or_missing_credentials_are_rejected(service, vino):
    url = service["url"] + system_path(vino["systems"][0])
    r = requests.get(url, verify=service["ca"], timeout=10)
    assert r.status_code == 401
    assert r.json()["error"]["code"].endswith("NoValidSession")
    r = requests.get(url, auth=(vino["username"], "wrong"), verify=service["ca"], timeout=10)
    assert r.status_code == 401
    bad = sushy.Sushy(
        service["url"] + "/redfish/v1",
        verify=service["ca"],
        auth=sushy.auth.BasicAuth(vino["username"], "wrong"),
    )
    with pytest.raises(exceptions.AccessError):
        bad.get_system_collection()
    # sushy's default (session, falling back to basic) with a wrong password.
    with pytest.raises(exceptions.AccessError):
        connect(service, {**vino, "password": "wrong"}).get_system_collection()


def test_session_login_and_logout(service, vino):
    auth = sushy.auth.SessionAuth(vino["username"], vino["password"])
    root = connect(service, vino, auth=auth)
    assert root.get_system_collection().members_identities
    token = auth.get_session_key()
    location = auth.get_session_resource_id()
    assert token and location.startswith("/redfish/v1/SessionService/Sessions/")
    headers = {"X-Auth-Token": token}
    r = requests.get(service["url"] + location, headers=headers, verify=service["ca"], timeout=10)
    assert r.status_code == 200 and r.json()["UserName"] == vino["username"]
    auth.close()
    r = requests.get(service["url"] + "/redfish/v1/Systems", headers=headers, verify=service["ca"], timeout=10)
    assert r.status_code == 401


def test_session_login_with_wrong_password_fails(service, vino):
    r = requests.post(
        service["url"] + "/redfish/v1/SessionService/Sessions",
        json={"UserName": vino["username"], "Password": "wrong"},
        verify=service["ca"],
        timeout=10,
    )
    assert r.status_code == 401
    assert "X-Auth-Token" not in r.headers
