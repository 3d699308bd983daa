#!/usr/bin/env bash
# Installs what the console's browser, voice and API-fuzz tests need, skipping what is already there, and
# prints the variables the tests read:   eval "$(scripts/console-test-deps.sh)"
#   Debian: chromium (the browser the tests drive; never a downloaded one), ffmpeg (AMR voice to Opus),
#           fonts-wqy-microhei (Chinese glyphs in screenshots)
#   npm:    playwright-core (drives Debian's chromium; it downloads no browser)
#   PyPI:   schemathesis, in a virtualenv
# npm and PyPI installs are cached under ${WECOM_CACHE_DIR:-$HOME/.cache/wecom-archive}.
set -euo pipefail

cache="${WECOM_CACHE_DIR:-$HOME/.cache/wecom-archive}"
mkdir -p "$cache"
log() { echo "console-test-deps: $*" >&2; }

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v ffmpeg >/dev/null 2>&1 || missing+=(ffmpeg)
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
dpkg -s fonts-wqy-microhei >/dev/null 2>&1 || missing+=(fonts-wqy-microhei)
if [ "${#missing[@]}" -gt 0 ]; then
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi

node_dir="$cache/console-node"
if [ ! -f "$node_dir/node_modules/playwright-core/package.json" ]; then
  log "npm install playwright-core into $node_dir"
  mkdir -p "$node_dir"
  [ -f "$node_dir/package.json" ] || echo '{ "private": true }' >"$node_dir/package.json"
  (cd "$node_dir" && npm install --no-audit --no-fund --loglevel=error playwright-core@1 >&2)
fi

venv="$cache/schemathesis-venv"
if [ ! -x "$venv/bin/schemathesis" ]; then
  log "pip install schemathesis into $venv"
  python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet --disable-pip-version-check 'schemathesis>=4,<5' >&2
fi

echo "export WECOM_TEST_CHROMIUM=$(command -v chromium)"
echo "export WECOM_TEST_PLAYWRIGHT_DIR=$node_dir"
echo "export WECOM_TEST_FFMPEG=$(command -v ffmpeg)"
echo "export WECOM_TEST_SCHEMATHESIS=$venv/bin/schemathesis"
