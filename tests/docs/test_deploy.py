"""docs/deploy/: the systemd unit, the DaemonSet and its ConfigMap, the Containerfile, the entrypoint, the example
agent.toml and the metrics docs (no cluster, no systemd as PID 1 here: the files are parsed and checked; the
entrypoint runs against a stub pybpfgen, and against the real agent on the kernel, probed as the DaemonSet's
probes would)."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "docs" / "deploy"
UNIT = DEPLOY / "pybpfgen-accel.service"
yaml = pytest.importorskip("yaml", reason="PyYAML missing: pip install -e '.[test]' (scripts/setup.sh does)")


# ------------------------------------------------------------------ systemd
def unit_sections() -> dict[str, dict[str, list[str]]]:
    out: dict[str, dict[str, list[str]]] = {}
    cur = None
    for ln in UNIT.read_text().splitlines():
        s = ln.strip()
        if not s or s.startswith(("#", ";")):
            continue
        if s.startswith("["):
            cur = out.setdefault(s.strip("[]"), {})
            continue
        k, _, v = s.partition("=")
        cur.setdefault(k.strip(), []).append(v.strip())
    return out


def test_unit_semantics():
    u = unit_sections()
    svc = u["Service"]
    # the agent: readiness through sd_notify (READY=1 once loaded and reconciled), liveness through the watchdog
    assert svc["Type"] == ["notify"] and svc["NotifyAccess"] == ["main"]
    (start,) = svc["ExecStart"]
    assert start == ("/usr/local/bin/pybpfgen agent --config /etc/pybpfgen/agent.toml "
                     "--metrics-address 127.0.0.1:9473")
    assert svc["ExecReload"] == ["/bin/kill -HUP $MAINPID"]          # SIGHUP: reconcile now
    assert int(svc["WatchdogSec"][0]) > 5 and svc["Restart"] == ["on-failure"]
    assert svc["RestartPreventExitStatus"] == ["2"]                  # a bad file: restarting does not fix it
    assert svc["KillSignal"] == ["SIGTERM"]                          # on_exit in the file decides
    assert "ExecStop" not in svc                                     # no unload behind the agent's back
    caps = set(svc["CapabilityBoundingSet"][0].split())
    assert {"CAP_BPF", "CAP_NET_ADMIN", "CAP_SYS_ADMIN"} <= caps
    assert u["Install"]["WantedBy"] == ["multi-user.target"]


def test_example_config_is_valid():
    """docs/deploy/agent.toml (installed as /etc/pybpfgen/agent.toml, the image's default) parses with the agent's
    own parser and loads the object where the Containerfile puts it."""
    from kernel_loader.agent import config as C
    cfg = C.load_file(str(DEPLOY / "agent.toml"))
    (o,) = cfg.objects
    assert o.name == "accel" and o.path == "/usr/local/lib/pybpfgen/accel.bpf.o"
    assert cfg.on_exit == "keep" and o.section("policy") is not None and o.section("settings") is not None
    assert "COPY docs/deploy/agent.toml /etc/pybpfgen/agent.toml" in (DEPLOY / "Containerfile").read_text()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_unit_verifies(tmp_path):
    """systemd-analyze verify, with the binary path pointed at this checkout's pybpfgen (verify checks that
    the executables exist). Any warning fails: verify exits 0 on many parse errors."""
    # through a symlink at a path without spaces: systemd cuts an unquoted ExecStart path at a space, and this
    # checkout may sit under one
    exe = tmp_path / "bin" / "pybpfgen"
    exe.parent.mkdir()
    exe.symlink_to(REPO / ".venv" / "bin" / "pybpfgen")
    assert " " not in str(exe), f"pytest's tmp_path has a space: {exe}"
    text = UNIT.read_text().replace("/usr/local/bin/pybpfgen", str(exe))
    (tmp_path / UNIT.name).write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / UNIT.name)], capture_output=True, text=True,
                       timeout=60)
    msgs = [ln for ln in (r.stdout + r.stderr).splitlines() if UNIT.name in ln or "error" in ln.lower()]
    assert r.returncode == 0 and not msgs, r.stdout + r.stderr


# ------------------------------------------------------------------ Kubernetes
def manifests() -> dict[str, dict]:
    return {d["kind"]: d for d in yaml.safe_load_all((DEPLOY / "daemonset.yaml").read_text()) if d}


def daemonset() -> dict:
    return manifests()["DaemonSet"]


def test_daemonset_privileges_and_mounts():
    ds = daemonset()
    assert ds["apiVersion"] == "apps/v1" and ds["kind"] == "DaemonSet"
    spec = ds["spec"]["template"]["spec"]
    assert ds["spec"]["selector"]["matchLabels"].items() <= ds["spec"]["template"]["metadata"]["labels"].items()
    for flag in ("hostPID", "hostNetwork", "hostIPC"):
        assert not spec.get(flag), f"{flag} is not needed"
    (c,) = spec["containers"]
    sc = c["securityContext"]
    assert sc.get("privileged") in (None, False)
    assert sc.get("allowPrivilegeEscalation") is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    # load/attach, plus SYS_ADMIN for upgrade in place and the counters' BTF (README.md says why)
    assert set(sc["capabilities"]["add"]) == {"BPF", "NET_ADMIN", "SYS_ADMIN"}
    vols = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    bpf = mounts["/sys/fs/bpf"]
    assert vols[bpf["name"]]["hostPath"]["path"] == "/sys/fs/bpf"
    # Bidirectional is refused by the API server without privileged: true
    assert bpf.get("mountPropagation") in ("HostToContainer", None)
    cg = mounts["/sys/fs/cgroup"]
    assert vols[cg["name"]]["hostPath"]["path"] == "/sys/fs/cgroup" and cg.get("readOnly") is True
    # the load journal and the agent's records: a new pod adopts what the old one loaded
    assert vols[mounts["/run/pybpfgen"]["name"]]["hostPath"]["path"] == "/run/pybpfgen"


def test_daemonset_runs_the_agent_with_its_configmap_and_probes():
    m = manifests()
    ds, cm = m["DaemonSet"], m["ConfigMap"]
    spec = ds["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    env = {e["name"]: e.get("value") for e in c["env"]}
    # the ConfigMap is mounted where the entrypoint reads the configuration
    vols = {v["name"]: v for v in spec["volumes"]}
    cfg_dir, cfg_file = env["PYBPFGEN_CONFIG"].rsplit("/", 1)
    (mount,) = [mt for mt in c["volumeMounts"] if mt["mountPath"] == cfg_dir]
    assert vols[mount["name"]]["configMap"]["name"] == cm["metadata"]["name"]
    assert cm["metadata"]["namespace"] == ds["metadata"]["namespace"]
    # ... and it is a valid agent configuration
    from kernel_loader.agent import config as C
    cfg = C.parse_text(cm["data"][cfg_file], "configmap")
    (o,) = cfg.objects
    assert o.path == "/usr/local/lib/pybpfgen/accel.bpf.o" and o.cgroup.startswith("/sys/fs/cgroup/")
    assert cfg.on_exit == "keep"           # a rolling update must not detach the programs
    # probes on the agent's endpoint, which listens on the pod's address
    (port,) = c["ports"]
    assert env["PYBPFGEN_METRICS_ADDRESS"] == f"0.0.0.0:{port['containerPort']}"
    assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}
    ann = ds["spec"]["template"]["metadata"]["annotations"]
    assert ann["prometheus.io/port"] == str(port["containerPort"]) and ann["prometheus.io/path"] == "/metrics"


def test_containerfile_references_existing_files():
    text = (DEPLOY / "Containerfile").read_text()
    copies = re.findall(r"^COPY\s+(?!--from)(.+)$", text, re.M)
    assert copies
    for line in copies:
        *srcs, _dest = line.split()
        for s in srcs:
            assert (REPO / s).exists(), f"Containerfile copies {s}, which does not exist (build context: repo root)"
    assert re.search(r"^ENTRYPOINT \[\"/usr/local/bin/pybpfgen-entrypoint\"\]", text, re.M)
    assert "COPY docs/deploy/entrypoint.sh /usr/local/bin/pybpfgen-entrypoint" in text
    # the object the image ships is where the entrypoint and the unit look for it
    assert "/usr/local/lib/pybpfgen/accel.bpf.o" in text
    assert 'path = "/usr/local/lib/pybpfgen/accel.bpf.o"' in (DEPLOY / "agent.toml").read_text()
    assert "PYBPFGEN_CONFIG:=/etc/pybpfgen/agent.toml" in (DEPLOY / "entrypoint.sh").read_text()
    assert os.access(DEPLOY / "entrypoint.sh", os.X_OK)


def test_entrypoint_execs_the_agent(tmp_path):
    """The entrypoint replaces itself with `pybpfgen agent` (same pid: SIGTERM reaches the agent, which decides
    what to keep), with the configuration and the metrics address from the environment."""
    log = tmp_path / "calls"
    stub = tmp_path / "pybpfgen"
    stub.write_text(f'#!/bin/sh\necho "$$ $*" >> {log}\ntrap \'echo TERM >> {log}; exit 0\' TERM\n'
                    'while :; do sleep 0.05; done\n')
    stub.chmod(0o755)
    env = dict(os.environ, PYBPFGEN=str(stub), PYBPFGEN_CONFIG="/cfg/agent.toml")
    env.pop("PYBPFGEN_METRICS_ADDRESS", None)
    p = subprocess.Popen(["/bin/sh", str(DEPLOY / "entrypoint.sh")], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (log.exists() and log.read_text()):
            time.sleep(0.05)
        assert p.poll() is None, p.stdout.read()
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert log.read_text().splitlines() == [f"{p.pid} agent --config /cfg/agent.toml --metrics-address 0.0.0.0:9473",
                                            "TERM"]


@pytest.mark.kernel
def test_entrypoint_runs_a_real_agent_that_the_probes_see(tmp_path, child_cgroup, pin_root):
    """The entrypoint with the real pybpfgen and the ConfigMap's file (cgroup and pin root made private): the
    DaemonSet's readiness and liveness probes (their paths and port, from the YAML) answer 200 once it runs."""
    import json
    import urllib.request

    import kharness as kh
    obj = kh.PybpfgenCLI().compile(REPO / "programs", tmp_path / "build")
    m = manifests()
    text = m["ConfigMap"]["data"]["agent.toml"]
    text = text.replace('path = "/usr/local/lib/pybpfgen/accel.bpf.o"', f'path = "{obj}"')
    text = text.replace('cgroup = "/sys/fs/cgroup/kubepods.slice"', f'cgroup = "{child_cgroup}"')
    text = text.replace("[agent]\n", f'[agent]\npin_root = "{pin_root}"\n', 1)
    (tmp_path / "agent.toml").write_text(text)
    (c,) = m["DaemonSet"]["spec"]["template"]["spec"]["containers"]
    port = kh.free_port()
    # $PYBPFGEN is a command the entrypoint word-splits: a wrapper at a path without spaces runs this checkout's
    # pybpfgen, wherever the checkout is (its path may have a space)
    import shlex
    wrapper = tmp_path / "pybpfgen"
    wrapper.write_text("#!/bin/sh\nexec " + " ".join(shlex.quote(a) for a in kh.pybpfgen_argv()) + ' "$@"\n')
    wrapper.chmod(0o755)
    assert " " not in str(wrapper), f"pytest's tmp_path has a space: {wrapper}"
    env = dict(os.environ, PYBPFGEN=str(wrapper), PYBPFGEN_CONFIG=str(tmp_path / "agent.toml"),
               PYBPFGEN_METRICS_ADDRESS=f"127.0.0.1:{port}")
    p = subprocess.Popen(["/bin/sh", str(DEPLOY / "entrypoint.sh")], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        for probe in ("readinessProbe", "livenessProbe"):
            path = c[probe]["httpGet"]["path"]
            deadline, code = time.monotonic() + 60, None
            while time.monotonic() < deadline and code != 200:
                assert p.poll() is None, p.stderr.read()
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as r:
                        code = r.status
                except OSError:
                    time.sleep(0.1)
            assert code == 200, f"{probe} {path}"
        assert len(kh.cgroup_prog_ids(child_cgroup)) == 1
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0
        events = [json.loads(ln)["event"] for ln in p.stdout.read().splitlines()]
        assert events[-1] == "exit" and "load" in events
        assert len(kh.cgroup_prog_ids(child_cgroup)) == 1          # on_exit = "keep"
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        kh.PybpfgenCLI(pin_root=pin_root).unload("accel", check=False)
        from kernel_loader.agent import reconcile as R
        R.remove_record(str(pin_root), "accel")


# ------------------------------------------------------------------ metrics docs
def _exported_metric_names() -> set[str]:
    """Every sample name the agent's collector exports, for a loaded accelerator (fake status: no root)."""
    from prometheus_client import generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from kernel_loader.agent import metrics as M
    status = {"objects": [{
        "name": "accel", "pin_dir": "/p/accel", "state": "loaded", "cgroup": "/sys/fs/cgroup",
        "programs": [{"name": "accel_redirect", "id": 1, "type": "sk_msg", "tag": "00", "verified_insns": 1,
                      "run_cnt": 1, "run_time_ns": 1}],
        "links": [{"name": "accel_redirect", "attached": True, "target": {"kind": "map", "map_name": "socks"}}],
        "maps": [{"pin_name": "socks", "type": "sockhash", "entries": 2, "max_entries": 65536, "values": None},
                 {"pin_name": "policy_ports", "type": "hash", "entries": 1, "max_entries": 1024, "values": None},
                 {"pin_name": "settings", "type": "array", "entries": 1, "max_entries": 1,
                  "values": [{"max_unanswered_msgs": 0, "max_unanswered_kib": 0}]},
                 {"pin_name": "stats", "type": "percpu_array", "entries": 1, "max_entries": 1,
                  "values": [dict.fromkeys(("redirected", "missed", "paired", "refused", "demoted", "released"), 1)]}],
        "accelerator": {"sockets": 2}}]}
    agent = {"config_sha256": "00", "config_file": "/etc/pybpfgen/agent.toml"}
    col = M.StatusCollector(lambda: (["/p"], None, agent), status=lambda pr: status)
    text = generate_latest(M.registry_for(col)).decode()
    return {s.name for fam in text_string_to_metric_families(text) for s in fam.samples}


def _promql_block() -> list[str]:
    text = (DEPLOY / "README.md").read_text()
    block = text.split("```promql\n", 1)[1].split("```", 1)[0]
    return [ln for ln in block.splitlines() if ln.strip() and not ln.startswith("#")]


def test_promql_and_dashboard_use_exported_metrics():
    import json
    names = _exported_metric_names()
    queries = _promql_block()
    assert len(queries) >= 10
    dash = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert sorted(exprs) == sorted(queries), "the dashboard and README.md's PromQL differ"
    for q in queries:
        for metric in re.findall(r"\bpybpfgen_[a-z_]+", q):
            assert metric in names, f"{metric} (in {q!r}) is not exported"
    # the README's metric table names exported metrics only
    table = (DEPLOY / "README.md").read_text().split("## Metrics", 1)[1]
    for metric in set(re.findall(r"`(pybpfgen_[a-z_]+)`", table)):
        assert metric in names, f"README.md documents {metric}, which is not exported"
    assert dash["schemaVersion"] >= 30 and [i["name"] for i in dash["__inputs"]] == ["DS_PROMETHEUS"]
    assert all(p["datasource"]["uid"] == "${DS_PROMETHEUS}" for p in dash["panels"])
