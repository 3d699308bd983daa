#!/usr/bin/env bash
# The project's test command. Starts the real services the tests talk to — an S3-compatible server (moto)
# and a Kafka-protocol broker (tansu), both on loopback — fetches the official SDK library for the SDK tests,
# runs the whole workspace's tests, and stops the services again whatever the outcome.
# Slow things (the broker's first build, moto's virtualenv, the SDK wheel) are cached under
# ${WECOM_CACHE_DIR:-$HOME/.cache/wecom-archive} and reused.
set -euo pipefail
cd "$(dirname "$0")/.."

cleanup() {
  scripts/test-services.sh stop >/dev/null 2>&1 || true
  scripts/kafka-broker.sh stop >/dev/null 2>&1 || true
}
trap cleanup EXIT

eval "$(scripts/test-services.sh start)"
eval "$(scripts/kafka-broker.sh start)"
eval "$(scripts/fetch-sdk.sh)"
# The review console's browser test: Debian chromium + ffmpeg + a CJK font, playwright-core (npm) and
# schemathesis (PyPI venv), cached.
eval "$(scripts/console-test-deps.sh)"
# The SDK tests load the stand-in library (a cdylib cannot be a dev-dependency, so build it first).
cargo build -p wecom-sdk-standin --locked

log=$(mktemp)
status=0
cargo test --workspace --locked --no-fail-fast "$@" 2>&1 | tee "$log" || status=$?
# The fuzz targets stay compiling and every regression input and seed stays green (docs/fuzzing.md): a
# plain build beside the workspace's, each target's binary run once over its inputs; no fuzzing here.
scripts/fuzz.sh --replay || status=$?
# One closing line over every test binary (cargo's own last line is a crate's doc-tests, often 0 of them).
awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed\n", p, f }' "$log"
rm -f "$log"
exit "$status"
