#!/usr/bin/env bash
# Idempotent environment setup for pybpfgen's tests, benchmark and demo.
#   - Debian packages: bpftool, sockperf, iproute2, iperf3, redis-server (docs/tutorial.md), util-linux
#     (unshare, nsenter) (required); clang-19, llvm-19 (comparisons; optional)
#     `apt-get update` runs only when something is missing.
#   - .venv with `pip install -e '.[test,bench]'` (skipped when up to date; bench = matplotlib for bench/plots.py).
#   - bpffs mounted at /sys/fs/bpf (when root).
# Messages go to stderr so that callers can keep stdout clean.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "setup: $*" >&2; }
is_root() { [ "$(id -u)" -eq 0 ]; }
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# --- Debian packages -------------------------------------------------------
REQUIRED=(bpftool sockperf iproute2 iperf3 redis-server util-linux)
OPTIONAL=(clang-19 llvm-19)
missing_req=() missing_opt=()
if command -v dpkg-query >/dev/null; then
    for p in "${REQUIRED[@]}"; do have_pkg "$p" || missing_req+=("$p"); done
    for p in "${OPTIONAL[@]}"; do have_pkg "$p" || missing_opt+=("$p"); done
else
    say "not a Debian system: checking commands only"
    for c in bpftool sockperf ip ss iperf3 redis-server redis-benchmark; do command -v "$c" >/dev/null || missing_req+=("$c"); done
fi
if [ ${#missing_req[@]} -gt 0 ] || [ ${#missing_opt[@]} -gt 0 ]; then
    if is_root && command -v apt-get >/dev/null; then
        say "installing: ${missing_req[*]} ${missing_opt[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        if [ ${#missing_req[@]} -gt 0 ]; then
            apt-get install -y -qq --no-install-recommends "${missing_req[@]}" >&2
        fi
        if [ ${#missing_opt[@]} -gt 0 ]; then
            apt-get install -y -qq --no-install-recommends "${missing_opt[@]}" >&2 \
                || say "warning: optional packages not installed: ${missing_opt[*]} (C twin comparisons unavailable)"
        fi
    elif [ ${#missing_req[@]} -gt 0 ]; then
        say "error: missing packages ${missing_req[*]} and cannot install them (need root and apt-get)"
        exit 1
    else
        say "warning: optional packages missing: ${missing_opt[*]}"
    fi
fi

# --- virtualenv --------------------------------------------------------------
PY=${PYTHON:-}
if [ -z "$PY" ]; then
    for c in python3.11 python3; do
        if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            PY=$c; break
        fi
    done
fi
if [ ! -x .venv/bin/python ]; then
    [ -n "$PY" ] || { say "error: need Python >= 3.11"; exit 1; }
    say "creating .venv with $PY"
    "$PY" -m venv .venv
fi
stamp=.venv/.pybpfgen-setup-stamp
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ] \
   || ! .venv/bin/python -c 'import pybpfgen, kernel_loader, pytest, hypothesis, yaml, matplotlib, mypy' 2>/dev/null; then
    say "pip install -e '.[test,bench]'"
    if ! .venv/bin/python -m pip install -q -e '.[test,bench]' --config-settings editable_mode=compat >&2; then
        # offline? build isolation needs setuptools from the index; retry with the venv's own build tools
        say "retrying without build isolation"
        .venv/bin/python -m pip install -q --upgrade-strategy only-if-needed wheel >&2 || true
        .venv/bin/python -m pip install -q --no-build-isolation -e '.[test,bench]' --config-settings editable_mode=compat >&2
    fi
    echo "$want" > "$stamp"
fi
# Byte-compile the editable install, as a wheel install would: every `pybpfgen` command otherwise compiles
# its modules from source again when PYTHONDONTWRITEBYTECODE is set (~50 ms of a `pybpfgen load`).
.venv/bin/python -m compileall -q pybpfgen kernel_loader >/dev/null

# --- bpffs ---------------------------------------------------------------------
if is_root; then
    mountpoint -q /sys/fs/bpf || { say "mounting bpffs at /sys/fs/bpf"; mount -t bpf bpf /sys/fs/bpf; }
fi
say "ok"
