#!/usr/bin/env bash
# pybpfgen demo: compile the sockmap accelerator from Python, load it into a PRIVATE child cgroup
# (nothing else on the machine is affected), accelerate one port, push traffic through it, compare
# sockperf latency kernel vs accelerated, show status and the agent's /metrics, unload, clean up.
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

AGENT_PID=
cleanup() {
    set +e
    trap - EXIT INT TERM
    if [ -n "$AGENT_PID" ]; then kill -TERM "$AGENT_PID" 2>/dev/null; wait "$AGENT_PID" 2>/dev/null; fi
    [ -n "${AGENT_DIR:-}" ] && rm -rf "$AGENT_DIR"
    "$PY" -c "import sys; from kernel_loader.agent.reconcile import remove_record; remove_record(sys.argv[1], 'accel')" "$PINS" 2>/dev/null
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

step "the agent: /metrics (Prometheus) for what is loaded - the counters after that transfer"
# The agent takes over the loaded accelerator (an upgrade in place: maps and counters kept), applies this
# file, and serves /metrics, /healthz and /readyz. on_exit = "keep": its SIGTERM leaves everything attached.
AGENT_DIR=$(mktemp -d)
MPORT=$(PYTHONPATH=tests/kernel "$PY" -c 'import kharness; print(kharness.free_port())')
cat > "$AGENT_DIR/agent.toml" <<EOF
[agent]
on_exit = "keep"
pin_root = "$PINS"
[objects.accel]
path = "$PWD/build/accel.bpf.o"
cgroup = "$CG"
[objects.accel.policy]
ports = [$PORT]
EOF
"$PBG" agent --config "$AGENT_DIR/agent.toml" --metrics-address "127.0.0.1:$MPORT" > "$AGENT_DIR/agent.log" &
AGENT_PID=$!
"$PY" - "$MPORT" <<'PYEOF'
import sys, time, urllib.request, urllib.error
base = f"http://127.0.0.1:{sys.argv[1]}"
deadline = time.monotonic() + 60
while True:
    try:
        with urllib.request.urlopen(base + "/readyz", timeout=5) as r:
            print(f"GET /readyz: {r.status} {r.read().decode().strip()}")
            break
    except (urllib.error.URLError, ConnectionError) as e:
        if time.monotonic() > deadline:
            sys.exit(f"demo.sh: the agent did not become ready: {e}")
        time.sleep(0.1)
with urllib.request.urlopen(base + "/metrics", timeout=30) as r:
    lines = r.read().decode().splitlines()
want = ("pybpfgen_accel_", 'pybpfgen_map_entries{map="socks"', "pybpfgen_agent_reconciles_total")
print("GET /metrics (excerpt):")
for ln in lines:
    if ln.startswith(want) or ln.startswith("# HELP pybpfgen_accel_redirected"):
        print("  " + ln)
PYEOF
echo "agent log (JSON lines):"
sed 's/^/  /' "$AGENT_DIR/agent.log"
kill -TERM "$AGENT_PID"; wait "$AGENT_PID" || true; AGENT_PID=

step "sockperf ping-pong: kernel path vs accelerated (${DEMO_ROUNDS:-1} round(s) x ${DEMO_SECONDS:-3}s, own netns + cgroup)"
"$PY" bench/sockperf_bench.py --rounds "${DEMO_ROUNDS:-1}" --seconds "${DEMO_SECONDS:-3}" --obj build/accel.bpf.o

step "unload"
"$PBG" unload --pin-root "$PINS"
cleanup
echo "done: cgroup, pins and namespaces removed"
