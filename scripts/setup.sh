#!/usr/bin/env bash
# Idempotent environment setup for pybpfgen's tests, benchmarks, demo and tutorial. One line per step on stderr
# (stdout stays clean for callers); each failure is one line saying what to do, and a non-zero exit.
#   python  Python >= 3.11 (or $PYTHON)
#   apt     Debian packages that the tests, benchmarks, demo and tutorial use (none is optional: under CI=true a
#           test that would need a missing one fails): bpftool sockperf iproute2 iperf3 redis-server util-linux
#           (unshare, nsenter) clang-19 llvm-19 (C twins, insn counts) libbpf-dev (their bpf/bpf_helpers.h)
#           systemd (systemd-analyze checks docs/deploy's unit). `apt-get update` runs only when one is missing.
#   venv    .venv, then `pip install -e '.[test,bench]'` (skipped when pyproject.toml is unchanged)
#   bpffs   mounted at /sys/fs/bpf
#   kernel  `pybpfgen doctor`: BTF, sockmap, cgroup v2, bpf_links, ... (what `pybpfgen load` needs)
# Needs root (packages, bpffs, the kernel checks): re-runs itself with sudo when not root.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "setup: $*" >&2; }
die() { echo "setup: error: $*" >&2; exit 1; }
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then
        say "not root: re-running with sudo"
        exec sudo ${CI:+CI="$CI"} ${PYTHON:+PYTHON="$PYTHON"} bash "$PWD/scripts/setup.sh" "$@"
    fi
    die "needs root (Debian packages, bpffs, BPF): run it as root, or install sudo"
fi

# --- python ------------------------------------------------------------------------
PY=${PYTHON:-}
if [ -z "$PY" ]; then
    for c in python3.13 python3.12 python3.11 python3; do
        if command -v "$c" >/dev/null && "$c" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
            PY=$c; break
        fi
    done
    [ -n "$PY" ] || die "Python >= 3.11 is needed, found $(python3 --version 2>&1 || echo 'no python3'): install python3.11 (or set PYTHON=/path/to/python3.11)"
elif ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    die "PYTHON=$PY is not Python >= 3.11 ($("$PY" --version 2>&1))"
fi
say "python: $("$PY" --version 2>&1) ($(command -v "$PY"))"

# --- apt -----------------------------------------------------------------------------
PACKAGES=(bpftool sockperf iproute2 iperf3 redis-server util-linux clang-19 llvm-19 libbpf-dev systemd)
if command -v dpkg-query >/dev/null && command -v apt-get >/dev/null; then
    missing=()
    for p in "${PACKAGES[@]}"; do have_pkg "$p" || missing+=("$p"); done
    if [ ${#missing[@]} -gt 0 ]; then
        say "apt: installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        log=$(mktemp)
        if ! apt-get update -qq >"$log" 2>&1 || grep -qE '^(W|E): (Failed to fetch|Some index files failed)' "$log"; then
            tail -n 3 "$log" >&2; rm -f "$log"
            die "apt-get update cannot reach the package registries (no network?): install ${missing[*]} by hand, then run this again"
        fi
        if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$log" 2>&1; then
            tail -n 5 "$log" >&2; rm -f "$log"
            die "apt-get install ${missing[*]} failed (output above)"
        fi
        rm -f "$log"
    else
        say "apt: all ${#PACKAGES[@]} packages present"
    fi
else
    # not Debian: the commands the packages provide must be there already
    missing=()
    for c in bpftool sockperf ip ss iperf3 redis-server redis-benchmark unshare nsenter clang-19 llvm-objdump-19 systemd-analyze; do
        command -v "$c" >/dev/null || missing+=("$c")
    done
    [ -f /usr/include/bpf/bpf_helpers.h ] || missing+=("/usr/include/bpf/bpf_helpers.h (libbpf headers)")
    [ ${#missing[@]} -eq 0 ] || die "not a Debian system and missing: ${missing[*]}: install them with your package manager"
    say "apt: not a Debian system, the commands are present"
fi

# --- venv ------------------------------------------------------------------------------
if [ -x .venv/bin/python ] && ! .venv/bin/python -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    say "venv: .venv has an old Python: recreating it"
    rm -rf .venv
fi
if [ ! -x .venv/bin/python ]; then
    say "venv: creating .venv with $PY"
    "$PY" -m venv .venv 2>/dev/null || die "'$PY -m venv' failed: install the venv module (Debian: apt-get install python3-venv)"
else
    say "venv: .venv exists"
fi

# --- pip ---------------------------------------------------------------------------------
stamp=.venv/.pybpfgen-setup-stamp
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ] \
   || ! .venv/bin/python -c 'import pybpfgen, kernel_loader, pytest, hypothesis, yaml, matplotlib, mypy, elftools' 2>/dev/null; then
    say "pip: installing pybpfgen with its test and bench extras into .venv"
    log=$(mktemp)
    if ! .venv/bin/python -m pip install -q -e '.[test,bench]' --config-settings editable_mode=compat >"$log" 2>&1; then
        # offline with some packages cached? build isolation needs setuptools from the index: retry without it
        if ! .venv/bin/python -m pip install -q --no-build-isolation -e '.[test,bench]' \
                --config-settings editable_mode=compat >>"$log" 2>&1; then
            grep -vE '^WARNING: (Location|Retrying)' "$log" | tail -n 5 >&2; rm -f "$log"
            die "pip install -e '.[test,bench]' failed (output above): PyPI unreachable? Check the network or a pip proxy (PIP_INDEX_URL), then run this again"
        fi
    fi
    rm -f "$log"
    echo "$want" > "$stamp"
else
    say "pip: .venv is up to date"
fi
# Byte-compile the editable install, as a wheel install would: every `pybpfgen` command otherwise compiles
# its modules from source again when PYTHONDONTWRITEBYTECODE is set (~50 ms of a `pybpfgen load`).
.venv/bin/python -m compileall -q pybpfgen pybpfgen_accel kernel_loader >/dev/null

# --- bpffs ---------------------------------------------------------------------------------
if mountpoint -q /sys/fs/bpf; then
    say "bpffs: mounted at /sys/fs/bpf"
else
    say "bpffs: mounting at /sys/fs/bpf"
    mount -t bpf bpf /sys/fs/bpf || die "cannot mount bpffs at /sys/fs/bpf (mount -t bpf bpf /sys/fs/bpf failed)"
fi

# --- kernel ---------------------------------------------------------------------------------
# pybpfgen doctor checks the kernel version, BTF, sockmap links, cgroup v2, ... and exits 1 when `load` would fail
if report=$(.venv/bin/pybpfgen doctor 2>&1); then
    say "kernel: $(uname -sr): BTF, sockmap, cgroup v2 and bpf_links ok (pybpfgen doctor)"
else
    printf '%s\n' "$report" | grep -E '^\s*\[(FAIL|ERR|fail)' -A1 >&2 || printf '%s\n' "$report" | tail -n 15 >&2
    die "this kernel cannot run pybpfgen's programs (pybpfgen doctor above): Linux >= 6.10 with BTF, sockmap and cgroup v2 is needed"
fi
say "ok"
