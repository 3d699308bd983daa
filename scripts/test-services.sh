#!/usr/bin/env bash
# Real services for the tests: an S3-compatible server (moto, from PyPI) on loopback, in memory.
#
#   eval "$(scripts/test-services.sh start)"   # installs moto once into the cache, starts it, exports
#                                              # WECOM_TEST_S3_ENDPOINT=http://127.0.0.1:PORT
#   scripts/test-services.sh stop
#   scripts/test-services.sh status
#
# Only export lines go to stdout (they are meant for eval); notes and pip output go to stderr.
# The virtual environment lives in ${WECOM_CACHE_DIR:-$HOME/.cache/wecom-archive}/moto-venv and is reused
# whenever moto_server is there.
set -euo pipefail

cache="${WECOM_CACHE_DIR:-$HOME/.cache/wecom-archive}"
venv="$cache/moto-venv"
bin="$venv/bin/moto_server"
run="$cache/moto-run"
pidfile="$run/moto.pid"
portfile="$run/moto.port"
logfile="$run/moto.log"

note() { echo "test-services: $*" >&2; }

install() {
  [ -x "$bin" ] && return 0
  note "installing moto[server] into $venv (first time only)"
  mkdir -p "$cache"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'moto[server]' >&2
  [ -x "$bin" ] || { note "pip finished but $bin is missing"; exit 1; }
}

running() {
  [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null
}

# moto answers any GET / with 200 once it serves requests.
answers() {
  python3 - "$1" <<'EOF' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/", timeout=1).read()
EOF
}

free_port() {
  python3 - <<'EOF'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
EOF
}

start() {
  if running && [ -f "$portfile" ] && answers "$(cat "$portfile")"; then
    note "moto already running (pid $(cat "$pidfile"))"
    echo "export WECOM_TEST_S3_ENDPOINT=http://127.0.0.1:$(cat "$portfile")"
    return 0
  fi
  install
  mkdir -p "$run"
  local port; port="$(free_port)"
  note "starting moto_server on 127.0.0.1:$port (log: $logfile)"
  # setsid: the server outlives the eval'ing shell's process group; stop() kills it by pid
  setsid "$bin" -H 127.0.0.1 -p "$port" </dev/null >"$logfile" 2>&1 &
  echo $! >"$pidfile"
  echo "$port" >"$portfile"
  for _ in $(seq 1 300); do
    if answers "$port"; then
      echo "export WECOM_TEST_S3_ENDPOINT=http://127.0.0.1:$port"
      return 0
    fi
    if ! running; then
      note "moto_server exited at start; last log lines:"; tail -n 20 "$logfile" >&2; exit 1
    fi
    sleep 0.1
  done
  note "moto_server did not answer on port $port within 30 s"; stop; exit 1
}

stop() {
  if running; then
    local pid; pid="$(cat "$pidfile")"
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    note "stopped moto_server (pid $pid)"
  fi
  rm -f "$pidfile" "$portfile"
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  install) install ;;
  status) if running; then note "running on 127.0.0.1:$(cat "$portfile")"; else note "not running"; exit 1; fi ;;
  *) echo "usage: $0 start|stop|status|install" >&2; exit 2 ;;
esac
