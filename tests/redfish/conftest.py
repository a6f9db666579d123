"""Fixtures for the sushy interoperability suite.

The suite runs against a vinod Redfish server that `tests/redfish_interop.rs` starts (TLS on
127.0.0.1, VMs on libvirt's test driver) and describes in environment variables:

* VINOD_REDFISH_URL     https://127.0.0.1:PORT
* VINOD_REDFISH_CA      the server's certificate (self-signed, SAN 127.0.0.1)
* VINOD_REDFISH_STATE   the server's state directory
* VINOD_REDFISH_VINOS   JSON list of {"username", "password", "systems": [...]}
"""

import functools
import http.server
import json
import os
import threading

import pytest


def _env(name):
    value = os.environ.get(name)
    if not value:
        pytest.skip(f"{name} is not set: run through tests/redfish_interop.rs")
    return value


@pytest.fixture(scope="session")
def service():
    return {
        "url": _env("VINOD_REDFISH_URL"),
        "ca": _env("VINOD_REDFISH_CA"),
        "state": _env("VINOD_REDFISH_STATE"),
        "vinos": json.loads(_env("VINOD_REDFISH_VINOS")),
    }


@pytest.fixture(scope="session")
def image_server(tmp_path_factory):
    """A plain http.server on 127.0.0.1 serving a small ISO-like file."""
    root = tmp_path_factory.mktemp("images")
    payload = os.urandom(256 * 1024)
    (root / "boot.iso").write_bytes(payload)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield {"url": f"http://127.0.0.1:{server.server_address[1]}", "payload": payload}
    server.shutdown()
    server.server_close()
