#!/usr/bin/env bash
# Benchmarks (root): builds vinod in release mode and runs the host benchmarks, then the
# cluster benchmarks against a real kube-apiserver (binaries from scripts/k8s-test-binaries.sh);
# each prints its results table and writes it into docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/vinod/target}
scripts/dev.sh setup
cargo build --release --locked
VINOD_BIN="$CARGO_TARGET_DIR/release/vinod" cargo bench --locked --bench host
VINOD_BIN="$CARGO_TARGET_DIR/release/vinod" cargo bench --locked --bench cluster
