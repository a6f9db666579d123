"""Runs DMTF's Redfish Protocol Validator with SSDP discovery switched off.

The validator multicasts SSDP M-SEARCH probes (239.255.255.250 and ff02::c) to find services;
vinod does not implement SSDP and tests must not send traffic beyond loopback, so discovery
is replaced by a stub that finds nothing (the SSDP assertions then report NOT_TESTED).
Arguments are the validator's own (rf_protocol_validator --help).
"""

import sys

from redfish_protocol_validator import console_scripts, utils


def _no_ssdp(*_args, **_kwargs):
    return set()


utils.discover_ssdp = _no_ssdp

if __name__ == "__main__":
    sys.argv[0] = "rf_protocol_validator"
    sys.exit(console_scripts.main())
