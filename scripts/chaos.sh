#!/usr/bin/env bash
# The chaos campaign (tests/chaos): the binary against the simulator with every fault, SIGKILLed at random
# moments, its own broker restarted, SDK workers crashing, oversized items, a key added mid-way and a
# redrive; then a read-back of every output against the simulator's ground truth.
#
#   scripts/chaos.sh                 short mode (~2,000 items, 20 kills, 2 broker restarts), as CI runs it
#   scripts/chaos.sh --long          long mode (~11,000 items with 5 MiB ones, 100 kills, 6 broker restarts)
#   scripts/chaos.sh --seed N        the corpus, faults and kill schedule of an earlier campaign
#   scripts/chaos.sh --keep          keep the working directory (logs of every process, data, broker)
#   scripts/chaos.sh --release       optimized build
#
# The campaign starts and restarts a tansu broker of its own (with SQLite storage); like every Kafka test it
# runs only with the Kafka test env, so a shared broker is started here when WECOM_TEST_KAFKA_BROKERS is unset.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=()
while [ $# -gt 0 ]; do
  case "$1" in
    --long) export WECOM_CHAOS_LONG=1 ;;
    --seed) shift; export WECOM_CHAOS_SEED="${1:?--seed needs a number}" ;;
    --keep) export WECOM_CHAOS_KEEP=1 ;;
    --release) profile=(--release) ;;
    *) echo "usage: $0 [--long] [--seed N] [--keep] [--release]" >&2; exit 2 ;;
  esac
  shift
done

if [ -z "${WECOM_TEST_KAFKA_BROKERS:-}" ]; then
  trap 'scripts/kafka-broker.sh stop >/dev/null 2>&1 || true' EXIT
  eval "$(scripts/kafka-broker.sh start)"
fi
# the SDK cipher loads the stand-in library (a cdylib cannot be a dev-dependency, so build it first)
cargo build "${profile[@]}" -p wecom-sdk-standin --locked
cargo test "${profile[@]}" -p wecom-archive --locked --test chaos -- --nocapture
