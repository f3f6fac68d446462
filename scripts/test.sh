#!/usr/bin/env bash
# Run the test suite: setup, then pytest (extra arguments are passed to pytest).
# Exits non-zero on any failure; "no tests collected" (pytest exit code 5) is a failure too.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
rc=0
.venv/bin/python -m pytest -q "$@" || rc=$?
if [ "$rc" -eq 5 ]; then
    echo "test.sh: pytest collected no tests: treating as failure" >&2
    exit 5
fi
exit "$rc"
