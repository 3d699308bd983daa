#!/usr/bin/env bash
# A real Kafka-protocol broker for tests: tansu (crates.io) on loopback with in-memory storage.
#
#   eval "$(scripts/kafka-broker.sh start)"   # builds tansu once into the cache, starts it, exports
#                                             # WECOM_TEST_KAFKA_BROKERS=127.0.0.1:PORT
#   scripts/kafka-broker.sh stop
#   scripts/kafka-broker.sh status
#
# Only the export line goes to stdout (it is meant for eval); notes and build output go to stderr.
# The binary lives in ${WECOM_CACHE_DIR:-$HOME/.cache/wecom-archive}/tansu/bin/tansu; the first build takes
# ~15-25 min on 2 cores and is skipped whenever the binary is there.
set -euo pipefail

cache="${WECOM_CACHE_DIR:-$HOME/.cache/wecom-archive}"
root="$cache/tansu"
bin="$root/bin/tansu"
run="$root/run"
pidfile="$run/broker.pid"
portfile="$run/broker.port"
logfile="$run/broker.log"
# tansu 0.6 is the version checked with rdkafka 0.39 (bundled librdkafka 2.12.1)
version="${WECOM_TANSU_VERSION:-}"

note() { echo "kafka-broker: $*" >&2; }

build() {
  [ -x "$bin" ] && return 0
  note "building tansu into $root (first time only; takes ~15-25 min on 2 cores)"
  mkdir -p "$root"
  local args=(install tansu --locked --features dynostore,libsql --root "$root")
  [ -n "$version" ] && args+=(--version "$version")
  # the target dir lives in the cache too, so an interrupted build resumes where it stopped
  CARGO_TARGET_DIR="$root/target" cargo "${args[@]}" >&2
  [ -x "$bin" ] || { note "build finished but $bin is missing"; exit 1; }
}

running() {
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

accepts() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

free_port() {
  python3 - <<'EOF' 2>/dev/null && return 0
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
EOF
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 40000))
    accepts "$p" || { echo "$p"; return 0; }
  done
  note "no free port found"; exit 1
}

start() {
  if running && [ -f "$portfile" ] && accepts "$(cat "$portfile")"; then
    note "already running (pid $(cat "$pidfile"))"
    echo "export WECOM_TEST_KAFKA_BROKERS=127.0.0.1:$(cat "$portfile")"
    return 0
  fi
  build
  mkdir -p "$run"
  local port; port="$(free_port)"
  note "starting tansu on 127.0.0.1:$port (log: $logfile)"
  # setsid: the broker outlives the eval'ing shell's process group; stop() kills it by pid
  setsid "$bin" broker \
    --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine "memory://tansu/" \
    </dev/null >"$logfile" 2>&1 &
  echo $! >"$pidfile"
  echo "$port" >"$portfile"
  for _ in $(seq 1 200); do
    if accepts "$port"; then
      echo "export WECOM_TEST_KAFKA_BROKERS=127.0.0.1:$port"
      return 0
    fi
    if ! running; then
      note "tansu exited at start; last log lines:"; tail -n 20 "$logfile" >&2; exit 1
    fi
    sleep 0.05
  done
  note "tansu did not accept connections on port $port within 10 s"; stop; exit 1
}

stop() {
  if running; then
    local pid; pid="$(cat "$pidfile")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    note "stopped tansu (pid $pid)"
  fi
  rm -f "$pidfile" "$portfile"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  build) build ;;
  status) if running; then note "running on 127.0.0.1:$(cat "$portfile")"; else note "not running"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status|build" >&2; exit 2 ;;
esac
