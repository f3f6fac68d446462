"""`pybpfgen doctor` and the `--conformance` interface."""
import argparse
import json
import sys
import types

import pytest

from kernel_loader import cli, doctor
from kernel_loader.errors import LoaderError
from loader_fakes import FakeSyscall


def parser():
    p = argparse.ArgumentParser(prog="pybpfgen")
    sub = p.add_subparsers(dest="command", required=True)
    cli.register(sub)
    return p


def test_doctor_reports_problems_with_what_to_do(tmp_path):
    sc = FakeSyscall(str(tmp_path / "bpffs"))
    (tmp_path / "bpffs").mkdir()
    sc.caps = 0
    rep = doctor.run_checks(str(tmp_path / "bpffs" / "pybpfgen"), cgroup=str(tmp_path / "nocg"),
                            object_path=str(tmp_path / "none.bpf.o"), sc=sc)
    by = {c["name"]: c for c in rep["checks"]}
    assert not rep["ok"]
    assert by["privileges"]["status"] == "fail" and "CAP_BPF" in by["privileges"]["detail"]
    assert by["cgroup"]["status"] == "fail" and by["object"]["status"] == "fail"
    assert all(c["fix"] for c in rep["checks"] if c["status"] == "fail")
    hz = by["hazard:splice-reader"]
    assert hz["status"] == "warn" and "splice" in hz["detail"] and "policy" in hz["fix"] and "hazards.md" in hz["fix"]
    hz = by["hazard:msg-waitall"]
    assert hz["status"] == "warn" and "MSG_WAITALL" in hz["detail"] and "16 of 16 reads short" in hz["detail"]
    assert "policy" in hz["fix"] and "cgroup" in hz["fix"] and "hazards.md" in hz["fix"]
    hz = by["hazard:msg-oob"]
    assert hz["status"] == "warn" and "MSG_OOB" in hz["detail"] and "'bc!def'" in hz["detail"]
    assert "urgent data" in hz["fix"] and "policy" in hz["fix"] and "cgroup" in hz["fix"] and "hazards.md" in hz["fix"]
    hz = by["hazard:tcp-counters"]
    assert hz["status"] == "info" and "TCP_INFO" in hz["detail"] and "pybpfgen status" in hz["fix"]
    hz = by["hazard:socket-options"]
    assert hz["status"] == "warn" and all(o in hz["detail"] for o in ("SO_PEEK_OFF", "SO_RCVLOWAT", "MSG_ZEROCOPY"))
    assert "policy" in hz["fix"] and "cgroup" in hz["fix"] and "hazards.md" in hz["fix"]
    hz = by["hazard:blocking-recv-eagain"]
    assert hz["status"] == "warn" and "EAGAIN" in hz["detail"] and "tcp_bpf_recvmsg" in hz["detail"]
    assert "9 of 1000" in hz["detail"] and "327 of 1080" in hz["detail"] and "retry EAGAIN" in hz["fix"]
    assert "upstream-tcp_bpf_recvmsg.md" in hz["fix"]
    text = doctor.format_checks(rep)
    assert "NOT READY" in text and "[FAIL] privileges" in text


def test_cases_need_conformance():
    a = parser().parse_args(["doctor", "--cases", "a,b"])
    assert a.cases == ["a", "b"]
    with pytest.raises(LoaderError, match="--cases needs --conformance"):
        a.func(a)


@pytest.mark.kernel
def test_doctor_json_on_this_kernel(capsys):
    a = parser().parse_args(["doctor", "--json"])
    rc = a.func(a)
    rep = json.loads(capsys.readouterr().out)
    assert rc == (0 if rep["ok"] else 1)
    assert rep["features"]["sk_msg_link"] is True and rep["kernel"]["version"] >= [6, 10]
    assert any(c["name"] == "hazard:splice-reader" and c["status"] == "warn" for c in rep["checks"])
    assert any(c["name"] == "hazard:msg-waitall" and c["status"] == "warn" for c in rep["checks"])
    assert any(c["name"] == "hazard:msg-oob" and c["status"] == "warn" for c in rep["checks"])


@pytest.mark.kernel
def test_conformance_interface(accel_object, monkeypatch, capsys):
    calls = []

    def run_conformance(object_path, cases, progress, pin_root):
        calls.append((object_path, cases, pin_root))
        progress("running")
        assert pin_root.startswith("/sys/fs/bpf/pybpfgen-conformance-")
        return [{"name": "redirect", "status": "pass", "detail": "ok"},
                {"name": "splice", "status": "kernel-hazard", "detail": "0 bytes"},
                {"name": "reload", "status": "fail" if cases == ["reload"] else "skipped", "detail": "x"}]

    monkeypatch.setitem(sys.modules, "pybpfgen_accel.conformance", types.SimpleNamespace(run_conformance=run_conformance))
    a = parser().parse_args(["doctor", "--conformance", "--object", accel_object])
    assert a.func(a) == 0
    out = capsys.readouterr()
    assert "kernel-hazard" in out.out and "PASS" in out.out and "running" in out.err
    a = parser().parse_args(["doctor", "--conformance", "--object", accel_object, "--cases", "reload", "--json"])
    assert a.func(a) == 1
    rep = json.loads(capsys.readouterr().out)
    assert rep["counts"] == {"pass": 1, "kernel-hazard": 1, "fail": 1} and not rep["ok"]
    assert calls[1][1] == ["reload"]
    import os
    assert not any(os.path.exists(c[2]) for c in calls)      # private pin roots removed


@pytest.mark.kernel
def test_doctor_fails_without_sockmap(tmp_path):
    """A kernel that refuses sockhash maps or sk_msg programs is a `fail` (scripts/setup.sh stops on it), probed on
    the real kernel with the probe switched off the way PYBPFGEN_LOADER_DISABLE does."""
    import os
    import subprocess
    r = subprocess.run([sys.executable, "-m", "kernel_loader", "doctor", "--json", "--pin-root",
                        str(tmp_path / "pins")], capture_output=True, text=True, timeout=60)
    by = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert by["sockmap"]["status"] == "ok", r.stdout
    r = subprocess.run([sys.executable, "-m", "kernel_loader", "doctor", "--json", "--pin-root",
                        str(tmp_path / "pins")], capture_output=True, text=True, timeout=60,
                       env={**os.environ, "PYBPFGEN_LOADER_DISABLE": "sockmap"})
    by = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert r.returncode == 1 and by["sockmap"]["status"] == "fail" and "sockmap" in by["sockmap"]["fix"], r.stdout
