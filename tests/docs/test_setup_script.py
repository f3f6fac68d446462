"""scripts/setup.sh fails with one clear line, and exit 1, when it cannot do its job: run on a copy of the script,
with stand-ins for sudo, python and apt-get/dpkg-query on PATH (no package is touched)."""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def _copy(tmp_path: Path) -> Path:
    (tmp_path / "scripts").mkdir()
    script = tmp_path / "scripts" / "setup.sh"
    shutil.copy(REPO / "scripts" / "setup.sh", script)
    (tmp_path / "pyproject.toml").write_text("")
    for p in (tmp_path, tmp_path / "scripts"):
        p.chmod(0o755)
    script.chmod(0o755)
    return script


def _stub(bindir: Path, name: str, body: str) -> None:
    bindir.mkdir(exist_ok=True)
    (bindir / name).write_text("#!/bin/sh\n" + body + "\n")
    (bindir / name).chmod(0o755)


def _run(script: Path, env: dict, user: int | None = None) -> subprocess.CompletedProcess:
    argv = [shutil.which("bash"), str(script)]
    if user is not None:
        argv = [shutil.which("setpriv"), f"--reuid={user}", f"--regid={user}", "--clear-groups", *argv]
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=60, cwd="/")


def _error_lines(r: subprocess.CompletedProcess) -> list[str]:
    return [ln for ln in r.stderr.splitlines() if ln.startswith("setup: error:")]


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the script as another user")
def test_not_root_and_no_sudo():
    import tempfile
    tmp_path = Path(tempfile.mkdtemp(prefix="pybpfgen-setup-test-"))  # pytest's tmp_path: 0700, root's
    try:
        _check_not_root_and_no_sudo(tmp_path)
    finally:
        shutil.rmtree(tmp_path)


def _check_not_root_and_no_sudo(tmp_path: Path) -> None:
    script = _copy(tmp_path)
    bindir = tmp_path / "bin"  # a PATH without sudo: only what the script calls before it gives up
    bindir.mkdir()
    for tool in ("id", "dirname"):
        (bindir / tool).symlink_to(shutil.which(tool))
    bindir.chmod(0o755)
    r = _run(script, {"PATH": str(bindir)}, user=65534)
    assert r.returncode == 1, r.stderr
    assert _error_lines(r) == ["setup: error: needs root (Debian packages, bpffs, BPF): run it as root, or install "
                               "sudo"], r.stderr


def test_python_too_old(tmp_path):
    script = _copy(tmp_path)
    _stub(tmp_path / "bin", "oldpy", 'case "$*" in *--version*) echo "Python 3.9.2";; *) exit 1;; esac')
    env = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "PYTHON": str(tmp_path / "bin" / "oldpy")}
    r = _run(script, env)
    assert r.returncode == 1
    (line,) = _error_lines(r)
    assert "is not Python >= 3.11 (Python 3.9.2)" in line, r.stderr


@pytest.mark.skipif(shutil.which("dpkg-query") is None, reason="not a Debian system")
def test_no_network_to_the_package_registries(tmp_path):
    script = _copy(tmp_path)
    bindir = tmp_path / "bin"
    _stub(bindir, "dpkg-query", "exit 1")  # every package missing
    _stub(bindir, "apt-get", 'echo "E: Failed to fetch http://deb.example/dists/InRelease  Temporary failure '
                             'resolving" >&2; exit 100')
    env = {"PATH": f"{bindir}:{os.environ['PATH']}"}
    r = _run(script, env)
    assert r.returncode == 1
    (line,) = _error_lines(r)
    assert "apt-get update cannot reach the package registries (no network?)" in line and "clang-19" in line, r.stderr
    assert "setup: apt: installing bpftool sockperf" in r.stderr  # the step line came first
