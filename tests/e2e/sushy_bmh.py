"""Drive one BareMetalHost's BMC with sushy, the Redfish library Ironic uses, the way Ironic
does: the BMC address, the credentials Secret and the certificate policy are read from the
cluster (with kubectl), not given by the test.

    sushy_bmh.py KUBECTL KUBECONFIG NAMESPACE BMH pxe-once-on|off|state

Prints one JSON line: the system's id, power state and boot override after the action.
"""

import base64
import json
import subprocess
import sys
import time
import urllib.parse

import sushy

TIMEOUT = 30


def kubectl(binary, kubeconfig, *args):
    out = subprocess.run(
        [binary, "--kubeconfig", kubeconfig, *args, "-o", "json"],
        check=True,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    return json.loads(out.stdout)


def wait_power(system, state):
    deadline = time.monotonic() + TIMEOUT
    while True:
        system.refresh()
        if system.power_state == state:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"power state {system.power_state}, wanted {state}")
        time.sleep(0.2)


def main():
    binary, kubeconfig, namespace, name, action = sys.argv[1:6]
    bmh = kubectl(binary, kubeconfig, "get", "baremetalhost", name, "-n", namespace)
    bmc = bmh["spec"]["bmc"]
    driver, _, url = bmc["address"].partition("+")
    if driver != "redfish":
        raise SystemExit(f"unexpected BMC driver in {bmc['address']}")
    parsed = urllib.parse.urlparse(url)
    secret = kubectl(binary, kubeconfig, "get", "secret", bmc["credentialsName"], "-n", namespace)
    username = base64.b64decode(secret["data"]["username"]).decode()
    password = base64.b64decode(secret["data"]["password"]).decode()
    root = sushy.Sushy(
        f"{parsed.scheme}://{parsed.netloc}/redfish/v1",
        username=username,
        password=password,
        verify=not bmc.get("disableCertificateVerification", False),
    )
    system = root.get_system(parsed.path)
    if action == "pxe-once-on":
        system.set_system_boot_options(
            sushy.BOOT_SOURCE_TARGET_PXE, enabled=sushy.BOOT_SOURCE_ENABLED_ONCE
        )
        system.reset_system(sushy.RESET_ON)
        wait_power(system, sushy.POWER_STATE_ON)
    elif action == "off":
        system.reset_system(sushy.RESET_FORCE_OFF)
        wait_power(system, sushy.POWER_STATE_OFF)
    elif action != "state":
        raise SystemExit(f"unknown action {action}")
    system.refresh()
    print(
        json.dumps(
            {
                "system": system.identity,
                "power": str(system.power_state),
                "boot_target": str(system.boot.target),
                "boot_enabled": str(system.boot.enabled),
            }
        )
    )


if __name__ == "__main__":
    main()
