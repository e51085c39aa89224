#!/usr/bin/env bash
# The whole test suite: unit tests (config, protocol, state machines), system tests
# with real children, integration tests that drive the built circusd, then the
# compatibility tests that run Python's circusctl (from PyPI) against it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
swift build
# Suites that count the process's open descriptors to catch leaks (the system tests,
# BusDescriptorTests) each run in a test process of their own: another suite opening or
# closing a socket in parallel would change the count.
CIRCUSD_BIN="$PWD/.build/debug/circusd" swift test --skip CircusSystemTests --skip BusDescriptorTests
swift test --skip-build --filter CircusSystemTests
swift test --skip-build --filter BusDescriptorTests
# The same compatibility scenarios against Python circusd 0.19 itself, so that what they
# assert is what Circus really does; then against ours.
.venv/bin/pytest compat -q -p no:cacheprovider
CIRCUSD="$PWD/.build/debug/circusd" .venv/bin/pytest compat -q -p no:cacheprovider
# One minute of chaos against the debug build: random SIGKILLs to children and
# grandchildren while four clients change the watchers; at the end every watcher is at
# its numprocesses, no zombie, no orphan, descriptors and anonymous memory flat
# (Benchmarks/soak.py --seconds 600 is the long run).
.venv/bin/python Benchmarks/soak.py --seconds 60 --circusd "$PWD/.build/debug/circusd"
