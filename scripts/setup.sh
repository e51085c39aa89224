#!/usr/bin/env bash
# Installs what circus-swift needs on Debian/Ubuntu: libzmq (the control channel),
# libffi and pkg-config from apt, libcurl and hiredis (the http_observer and
# redis_observer plugins), redis-server (their tests' peer), and a local virtualenv
# (.venv) with Python Circus 0.19 from PyPI, whose circusctl the compatibility tests
# drive. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

sudo_if_needed() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

missing=()
pkg-config --exists libzmq 2>/dev/null || missing+=(libzmq3-dev)
[ -e /usr/include/ffi.h ] || [ -e /usr/include/x86_64-linux-gnu/ffi.h ] || [ -e /usr/include/aarch64-linux-gnu/ffi.h ] || missing+=(libffi-dev)
command -v pkg-config >/dev/null || missing+=(pkg-config)
[ -e /usr/include/x86_64-linux-gnu/curl/curl.h ] || [ -e /usr/include/aarch64-linux-gnu/curl/curl.h ] || [ -e /usr/include/curl/curl.h ] || missing+=(libcurl4-openssl-dev)
[ -e /usr/include/hiredis/hiredis.h ] || missing+=(libhiredis-dev)
command -v redis-server >/dev/null || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
command -v cc >/dev/null || missing+=(gcc)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    sudo_if_needed apt-get update -qq
    sudo_if_needed env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if ! .venv/bin/python -c 'import circus, zmq, pytest, psutil' 2>/dev/null; then
    echo "setup: creating .venv with circus 0.19.0 from PyPI" >&2
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check 'circus==0.19.0' pyzmq pytest psutil
fi
