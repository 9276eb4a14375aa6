#!/usr/bin/env bash
# The test command: installs and starts what the tests need when it is missing (PostgreSQL,
# an S3 API, a Kafka-protocol broker; see scripts/services.sh), then runs the whole suite.
# Extra arguments go to cargo nextest (e.g. `scripts/test.sh -E 'test(metric_1m)'`).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

# Tools: cargo-nextest runs the suite (installed from crates.io when missing).
if ! command -v cargo-nextest >/dev/null 2>&1; then
  cargo install cargo-nextest --locked
fi
# librdkafka is built from source by rdkafka-sys: it needs a C toolchain, make and zlib headers.
if ! command -v make >/dev/null 2>&1 || ! command -v cc >/dev/null 2>&1; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq build-essential
fi

eval "$(bash scripts/services.sh)"

# Build first (and once): two cores, so keep a single build job graph.
cargo build --workspace --all-targets --locked
exec cargo nextest run --workspace --locked --no-fail-fast "$@"
