#!/usr/bin/env bash
# Downloads Tencent's Finance SDK library (x86-64 Linux build) from the PyPI wheel `pyweworkfinance`
# into a cache directory outside the repository, and prints the line that points the tests at it:
#
#   eval "$(scripts/fetch-sdk.sh)"     # sets WECOM_TEST_SDK_LIB
#
# The binary is Tencent's: it is downloaded for tests and never committed. Progress goes to stderr;
# stdout carries only the export line. Skips the download when the library is already cached.
set -euo pipefail

version="1.1.0"
cache="${WECOM_CACHE_DIR:-$HOME/.cache/wecom-archive}/sdk"
lib="$cache/pyweworkfinance-$version/libWeWorkFinanceSdk_C_x86.so"

if [[ ! -s "$lib" ]]; then
    mkdir -p "$cache"
    work="$(mktemp -d "$cache/fetch.XXXXXX")"
    trap 'rm -rf "$work"' EXIT
    echo "fetch-sdk: downloading pyweworkfinance==$version from PyPI" >&2
    python3 -m pip download --quiet --no-deps --disable-pip-version-check \
        "pyweworkfinance==$version" -d "$work" >&2
    wheel="$(find "$work" -maxdepth 1 -name 'pyweworkfinance-*.whl' | head -n 1)"
    if [[ -z "$wheel" ]]; then
        echo "fetch-sdk: no pyweworkfinance wheel was downloaded" >&2
        exit 1
    fi
    unzip -q -o "$wheel" 'pyweworkfinance/libs/linux/*' -d "$work/unpacked" >&2
    src="$work/unpacked/pyweworkfinance/libs/linux/libWeWorkFinanceSdk_C_x86.so"
    if [[ ! -s "$src" ]]; then
        echo "fetch-sdk: the wheel has no pyweworkfinance/libs/linux/libWeWorkFinanceSdk_C_x86.so" >&2
        exit 1
    fi
    mkdir -p "$(dirname "$lib")"
    # Copy then rename, so a half-written file is never taken for the library.
    cp "$src" "$lib.tmp"
    if [[ -f "$work/unpacked/pyweworkfinance/libs/linux/WeWorkFinanceSdk_C.h" ]]; then
        cp "$work/unpacked/pyweworkfinance/libs/linux/WeWorkFinanceSdk_C.h" "$(dirname "$lib")/"
    fi
    mv "$lib.tmp" "$lib"
    echo "fetch-sdk: cached $lib" >&2
fi

printf 'export WECOM_TEST_SDK_LIB=%q\n' "$lib"
