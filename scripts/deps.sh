#!/usr/bin/env bash
# Installs the Debian packages rebound needs to build and test, and only those
# that are missing. Works unattended as root (as CI runs it); as another user
# it uses sudo when it can, else prints the command to run. Says what it
# installs.
set -euo pipefail

packages=(
    build-essential cmake ninja-build pkg-config git
    libsqlite3-dev sqlite3       # the embedded store
    libjansson-dev               # JSON: scenarios, results, events
    libssl-dev                   # SHA-256 for the blob store (libcrypto)
    libcurl4-openssl-dev         # HTTP clients (LLM, tools, S3)
    libmicrohttpd-dev            # the world server
    libcmocka-dev                # unit tests
    libfaketime faketime         # clock skew
    iproute2 procps              # network namespaces; ps for tests
    clang-format                 # format-check
    clang libclang-rt-14-dev     # libFuzzer targets (scripts/fuzz.sh)
    jq util-linux curl           # e2e tests: JSON checks; setpriv, mount, fallocate; HTTP
    libxml2-utils                # xmllint: the JUnit report checked against its schema
    python3                      # the Python example agents (examples/, rebound audit tests)
)
# Wanted but not required: the HTML report's browser test
# (tests/e2e/test_report_html.sh) renders the page in headless Chromium and is
# skipped, not failed, where Chromium cannot be installed.
optional=(chromium)

missing=()
for p in "${packages[@]}"; do
    [[ $p == \#* ]] && continue
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

missing_optional=()
for p in "${optional[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing_optional+=("$p")
    fi
done

if [ ${#missing[@]} -eq 0 ] && [ ${#missing_optional[@]} -eq 0 ]; then
    echo "deps: all ${#packages[@]} packages present"
    exit 0
fi

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    elif [ ${#missing[@]} -eq 0 ]; then
        echo "deps: optional ${missing_optional[*]} not installed (needs root); tests that need it are skipped" >&2
        exit 0
    else
        echo "deps: not root and no password-less sudo; run as root:" >&2
        echo "  apt-get update && apt-get install -y ${missing[*]} ${missing_optional[*]}" >&2
        exit 1
    fi
fi
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq </dev/null
if [ ${#missing[@]} -gt 0 ]; then
    echo "deps: installing ${missing[*]}"
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" </dev/null
    echo "deps: installed ${#missing[@]} package(s)"
fi
for p in "${missing_optional[@]}"; do
    echo "deps: installing $p (optional)"
    if ! "${sudo[@]}" apt-get install -y -qq --no-install-recommends "$p" </dev/null; then
        echo "deps: could not install $p; the tests that need it will be skipped" >&2
    fi
done
