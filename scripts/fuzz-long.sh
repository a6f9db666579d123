#!/usr/bin/env bash
# The long fuzzing run of vinod's parsers of outside input (what the test suite runs briefly):
# Vino manifests, standalone manifest files and configuration files (tests/parser_fuzz.rs),
# and Redfish requests against the router (tests/redfish_proptest.rs). Release build; each
# input must end without a panic and within VINOD_FUZZ_LIMIT_MS.
#   scripts/fuzz-long.sh [CASES]      default 1000000 per parser property
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/vinod/target}
cases=${1:-1000000}
export VINOD_FUZZ_CASES=$cases VINOD_FUZZ_LIMIT_MS=${VINOD_FUZZ_LIMIT_MS:-1000}
start=$(date +%s)
cargo test --release --locked --test parser_fuzz -- --test-threads=2
# The Redfish properties drive a real (test-driver) libvirt per request: a tenth as many.
PROPTEST_CASES=$((cases / 10)) cargo test --release --locked --test redfish_proptest -- --test-threads=2
echo "fuzzed $cases inputs per parser property (Redfish: $((cases / 10))) in $(( $(date +%s) - start )) s, no panic, no input over ${VINOD_FUZZ_LIMIT_MS} ms"
