#!/usr/bin/env bash
# Run the test suite: setup, then pytest (extra arguments are passed to pytest).
# Exits non-zero on any failure; "no tests collected" (pytest exit code 5) is a failure too.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ "$(id -u)" -ne 0 ]; then  # the kernel tests (most of the suite) load BPF programs: root
    if command -v sudo >/dev/null; then
        exec sudo ${CI:+CI="$CI"} bash "$PWD/scripts/test.sh" "$@"
    fi
    echo "test.sh: not root and no sudo: the kernel tests will be skipped (run as root to run them)" >&2
fi
bash scripts/setup.sh
rc=0
.venv/bin/python -m pytest -q "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
    echo "test.sh: pytest collected no tests: treating as failure" >&2
    exit 5
fi
exit "$rc"
