#!/usr/bin/env bash
# Benchmarks (root): builds vinod in release mode and runs the host benchmarks; the results
# table is printed and written into docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/vinod/target}
scripts/dev.sh setup
cargo build --release --locked
VINOD_BIN="$CARGO_TARGET_DIR/release/vinod" cargo bench --locked --bench host
