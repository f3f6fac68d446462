#!/bin/sh
# Container entrypoint (docs/deploy/Containerfile): load the accelerator into $PYBPFGEN_CGROUP, apply the
# policies from the environment (same variables as pybpfgen-accel.env), then wait; on SIGTERM (pod deleted)
# unload it, unless PYBPFGEN_KEEP_ON_STOP=1 (then it stays pinned for the next pod, see README.md).
set -eu
: "${PYBPFGEN_OBJECT:=/usr/local/lib/pybpfgen/accel.bpf.o}"
: "${PYBPFGEN_CGROUP:=/sys/fs/cgroup}"
: "${PYBPFGEN_PORTS:=}"
: "${PYBPFGEN_CIDRS:=}"
: "${PYBPFGEN_KEEP_ON_STOP:=0}"
PBG=${PYBPFGEN:-pybpfgen}

SLEEPER=
stop() {
    trap - TERM INT
    [ -z "$SLEEPER" ] || kill "$SLEEPER" 2>/dev/null || true
    if [ "$PYBPFGEN_KEEP_ON_STOP" = 1 ]; then
        echo "pybpfgen-entrypoint: leaving the accelerator loaded (PYBPFGEN_KEEP_ON_STOP=1)"
    else
        $PBG unload accel
    fi
    exit 0
}
trap stop TERM INT

if ! $PBG load "$PYBPFGEN_OBJECT" --cgroup "$PYBPFGEN_CGROUP"; then
    # A copy left by a killed pod: upgrading it in place reads its programs by id, which needs CAP_SYS_ADMIN.
    # Without that capability, remove it and load afresh (its connections fall back to TCP meanwhile).
    echo "pybpfgen-entrypoint: load failed; unloading the previous copy and loading afresh" >&2
    $PBG unload accel
    $PBG load "$PYBPFGEN_OBJECT" --cgroup "$PYBPFGEN_CGROUP"
fi
for p in $PYBPFGEN_PORTS; do $PBG policy add --port "$p"; done
for c in $PYBPFGEN_CIDRS; do $PBG policy add --cidr "$c"; done
$PBG status accel
# sleep in the background so that the trap runs as soon as the signal arrives
while :; do sleep 3600 & SLEEPER=$!; wait "$SLEEPER" || true; done
