#!/usr/bin/env bash
# pybpfgen demo: compile the sockmap accelerator from Python, load it into a PRIVATE child cgroup
# (nothing else on the machine is affected), accelerate one port, push traffic through it, compare
# sockperf latency kernel vs accelerated, show status, unload, clean up.
#   DEMO_SECONDS=3 (sockperf seconds per measurement)   DEMO_ROUNDS=1
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [ "$(id -u)" -ne 0 ]; then  # cgroups, BPF and network namespaces need root
    command -v sudo >/dev/null && exec sudo bash "$PWD/scripts/demo.sh" "$@"
    echo "demo.sh: run as root (cgroups, BPF, network namespaces)" >&2
    exit 1
fi

bash scripts/setup.sh
PY=.venv/bin/python
PBG=.venv/bin/pybpfgen
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

CG2=/sys/fs/cgroup/unified
[ -f "$CG2/cgroup.procs" ] || CG2=$(findmnt -n -t cgroup2 -o TARGET | head -n1)
TAG=$(od -An -N4 -tx1 /dev/urandom | tr -d ' \n')
CG="$CG2/pybpfgen-demo-$TAG"
PINS="/sys/fs/bpf/pybpfgen-demo-$TAG"
PORT=$(PYTHONPATH=tests/kernel "$PY" -c 'import kharness; print(kharness.free_port())')

cleanup() {
    set +e
    trap - EXIT INT TERM
    "$PBG" unload --pin-root "$PINS" >/dev/null 2>&1
    [ -d "$PINS" ] && rm -rf "$PINS"
    if [ -d "$CG" ]; then
        [ -f "$CG/cgroup.kill" ] && echo 1 > "$CG/cgroup.kill"
        for _ in $(seq 50); do [ -s "$CG/cgroup.procs" ] || break; sleep 0.1; done
        rmdir "$CG"
    fi
}
trap cleanup EXIT
trap 'echo "demo.sh: interrupted" >&2; exit 130' INT TERM

step "compile programs/accel.py -> build/accel.bpf.o"
"$PBG" compile programs/ -o build/

step "load into private cgroup $CG (pins under $PINS), accelerate port $PORT"
mkdir "$CG"
"$PBG" load build/accel.bpf.o --cgroup "$CG" --pin-root "$PINS"
"$PBG" policy add --port "$PORT" --pin-root "$PINS"
"$PBG" policy list --pin-root "$PINS"

step "16 MiB each way over loopback port $PORT, both processes inside the cgroup"
PYTHONPATH=tests/kernel "$PY" - "$CG" "$PORT" <<'PYEOF'
import sys, kharness as kh
cg, port = sys.argv[1], int(sys.argv[2])
r = kh.transfer(server_host="127.0.0.1", connect_host="127.0.0.1", port=port, cgroup=cg)
ok = (r.server["sha256_sent"] == r.client["sha256_received"] and r.client["sha256_sent"] == r.server["sha256_received"])
print(f"data intact both ways: {ok}; send calls {r.send_calls}; "
      f"{2 * r.server['bytes_sent'] / r.server['seconds'] / 1e9:.2f} GB/s duplex")
sys.exit(0 if ok else 1)
PYEOF

step "pybpfgen status (counters: redirected / missed)"
"$PBG" status --pin-root "$PINS"

step "sockperf ping-pong: kernel path vs accelerated (${DEMO_ROUNDS:-1} round(s) x ${DEMO_SECONDS:-3}s, own netns + cgroup)"
"$PY" bench/sockperf_bench.py --rounds "${DEMO_ROUNDS:-1}" --seconds "${DEMO_SECONDS:-3}" --obj build/accel.bpf.o

step "unload"
"$PBG" unload --pin-root "$PINS"
cleanup
echo "done: cgroup, pins and namespaces removed"
