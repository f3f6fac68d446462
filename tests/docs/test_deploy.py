"""docs/deploy/: the systemd unit, the DaemonSet, the Containerfile and the entrypoint (no cluster, no systemd
as PID 1 here: the files are parsed and checked; the entrypoint's logic runs against a stub pybpfgen)."""
from __future__ import annotations

import configparser
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
    assert svc["Type"] == ["oneshot"] and svc["RemainAfterExit"] == ["yes"]
    (start,) = svc["ExecStart"]
    assert re.fullmatch(r"/usr/local/bin/pybpfgen load \$\{PYBPFGEN_OBJECT\} --cgroup \$\{PYBPFGEN_CGROUP\}", start)
    assert svc["ExecStop"] == ["/usr/local/bin/pybpfgen unload accel"]
    assert any("policy add --port" in c for c in svc["ExecStartPost"])
    assert "-/etc/pybpfgen/accel.env" in svc["EnvironmentFile"]
    caps = set(svc["CapabilityBoundingSet"][0].split())
    assert {"CAP_BPF", "CAP_NET_ADMIN"} <= caps
    assert u["Install"]["WantedBy"] == ["multi-user.target"]
    # the example environment file sets every variable the unit uses
    env = (DEPLOY / "pybpfgen-accel.env").read_text()
    for var in set(re.findall(r"\$\$?\{(PYBPFGEN_\w+)\}", UNIT.read_text())):
        assert re.search(rf"^{var}=", env, re.M), f"{var} not in pybpfgen-accel.env"


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


def test_unit_start_post_runs_the_policies(tmp_path):
    """ExecStartPost as systemd runs it ($$ -> $), with a stub pybpfgen that records its arguments."""
    (post,) = unit_sections()["Service"]["ExecStartPost"]
    log = tmp_path / "calls"
    stub = tmp_path / "pybpfgen"
    stub.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    stub.chmod(0o755)
    cmd = post.replace("$$", "$").replace("/usr/local/bin/pybpfgen", str(stub))
    m = re.fullmatch(r"/bin/sh -ec '(.*)'", cmd)
    assert m, cmd
    env = dict(os.environ, PYBPFGEN_PORTS="6379 8080", PYBPFGEN_CIDRS="10.0.0.0/8")
    subprocess.run(["/bin/sh", "-ec", m.group(1)], env=env, check=True, timeout=30)
    assert log.read_text().splitlines() == ["policy add --port 6379", "policy add --port 8080",
                                            "policy add --cidr 10.0.0.0/8"]
    log.unlink()
    subprocess.run(["/bin/sh", "-ec", m.group(1)], env=dict(os.environ, PYBPFGEN_PORTS="", PYBPFGEN_CIDRS=""),
                   check=True, timeout=30)
    assert not log.exists()


# ------------------------------------------------------------------ Kubernetes
def daemonset() -> dict:
    (doc,) = [d for d in yaml.safe_load_all((DEPLOY / "daemonset.yaml").read_text()) if d]
    return doc


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
    assert set(sc["capabilities"]["add"]) == {"BPF", "NET_ADMIN"}  # exactly what load/unload/policy need
    vols = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    bpf = mounts["/sys/fs/bpf"]
    assert vols[bpf["name"]]["hostPath"]["path"] == "/sys/fs/bpf"
    # Bidirectional is refused by the API server without privileged: true
    assert bpf.get("mountPropagation") in ("HostToContainer", None)
    cg = mounts["/sys/fs/cgroup"]
    assert vols[cg["name"]]["hostPath"]["path"] == "/sys/fs/cgroup" and cg.get("readOnly") is True
    assert vols[mounts["/run/pybpfgen"]["name"]]["hostPath"]["path"] == "/run/pybpfgen"  # the load journal
    env = {e["name"]: e.get("value") for e in c["env"]}
    assert env["PYBPFGEN_CGROUP"].startswith("/sys/fs/cgroup/")
    assert "PYBPFGEN_PORTS" in env
    # the readiness probe looks at the pin the loader creates
    probe = c["readinessProbe"]["exec"]["command"]
    assert probe[-1] == "/sys/fs/bpf/pybpfgen/accel/links/accel_sockops"


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
    assert "PYBPFGEN_OBJECT:=/usr/local/lib/pybpfgen/accel.bpf.o" in (DEPLOY / "entrypoint.sh").read_text()
    assert os.access(DEPLOY / "entrypoint.sh", os.X_OK)


@pytest.mark.parametrize("keep", ["0", "1"])
def test_entrypoint_loads_applies_policies_and_unloads_on_sigterm(tmp_path, keep):
    log = tmp_path / "calls"
    stub = tmp_path / "pybpfgen"
    stub.write_text(f'#!/bin/sh\necho "$@" >> {log}\n')
    stub.chmod(0o755)
    env = dict(os.environ, PYBPFGEN=str(stub), PYBPFGEN_OBJECT="/x/accel.bpf.o", PYBPFGEN_CGROUP="/sys/fs/cgroup/k",
               PYBPFGEN_PORTS="6379", PYBPFGEN_CIDRS="", PYBPFGEN_KEEP_ON_STOP=keep)
    p = subprocess.Popen(["/bin/sh", str(DEPLOY / "entrypoint.sh")], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (log.exists() and "status" in log.read_text()):
            time.sleep(0.05)
        assert p.poll() is None, p.stdout.read()
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    want = ["load /x/accel.bpf.o --cgroup /sys/fs/cgroup/k", "policy add --port 6379", "status accel"]
    if keep == "0":
        want.append("unload accel")
    assert log.read_text().splitlines() == want


def test_entrypoint_replaces_a_copy_it_cannot_upgrade(tmp_path):
    """The first load fails (a stale copy, no CAP_SYS_ADMIN to upgrade it): unload, then load afresh."""
    log = tmp_path / "calls"
    stub = tmp_path / "pybpfgen"
    stub.write_text(f'#!/bin/sh\necho "$@" >> {log}\n'
                    f'[ "$1" = load ] && [ ! -e {tmp_path}/once ] && touch {tmp_path}/once && exit 1\nexit 0\n')
    stub.chmod(0o755)
    env = dict(os.environ, PYBPFGEN=str(stub), PYBPFGEN_OBJECT="/o", PYBPFGEN_CGROUP="/c", PYBPFGEN_PORTS="",
               PYBPFGEN_CIDRS="")
    p = subprocess.Popen(["/bin/sh", str(DEPLOY / "entrypoint.sh")], env=env, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not (log.exists() and "status" in log.read_text()):
            time.sleep(0.05)
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert log.read_text().splitlines() == ["load /o --cgroup /c", "unload accel", "load /o --cgroup /c",
                                            "status accel", "unload accel"]
