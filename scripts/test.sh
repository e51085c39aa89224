#!/usr/bin/env bash
# The whole test suite: unit tests (config, protocol, state machines), system tests
# with real children, integration tests that drive the built circusd, then the
# compatibility tests that run Python's circusctl (from PyPI) against it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build
# The system tests count the process's open descriptors to catch leaks, so they run
# on their own, without the other suites opening sockets in parallel.
CIRCUSD_BIN="$PWD/.build/debug/circusd" swift test --skip CircusSystemTests
swift test --filter CircusSystemTests
# The same compatibility scenarios against Python circusd 0.19 itself, so that what they
# assert is what Circus really does; then against ours.
.venv/bin/pytest compat -q -p no:cacheprovider
CIRCUSD="$PWD/.build/debug/circusd" .venv/bin/pytest compat -q -p no:cacheprovider
