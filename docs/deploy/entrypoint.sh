#!/bin/sh
# Container entrypoint (docs/deploy/Containerfile): run the agent with the configuration the DaemonSet mounts
# from its ConfigMap. The agent loads (or adopts, or upgrades in place) the accelerator, keeps its policies
# equal to the file (a ConfigMap update is seen within poll_interval), serves /metrics, /healthz and /readyz,
# and on SIGTERM (pod deleted or replaced) keeps the programs attached or unloads them (on_exit in the file).
set -eu
: "${PYBPFGEN_CONFIG:=/etc/pybpfgen/agent.toml}"
# The pod's own network namespace (no hostNetwork): the kubelet's probes and Prometheus reach it on the pod IP.
: "${PYBPFGEN_METRICS_ADDRESS:=0.0.0.0:9473}"
PBG=${PYBPFGEN:-pybpfgen}
# exec: the agent is PID 1's replacement and receives SIGTERM itself
exec $PBG agent --config "$PYBPFGEN_CONFIG" --metrics-address "$PYBPFGEN_METRICS_ADDRESS" ${PYBPFGEN_AGENT_ARGS:-}
