"""Fixtures and kernel-test gating for the loader tests.

* ``twin_object``: THE object the loader tests run against (one place to
  switch to ``pybpfgen compile`` output later).  Today it is the clang build
  of the C twin (shared/reference/accel.bpf.c).
* ``features_object`` / ``bad_object``: small clang-built objects in
  tests/loader/bpf/ for loader features the twin does not use.
* Tests marked ``kernel`` skip when not root; with ``CI=true`` as root, a
  kernel test that cannot run fails instead of skipping.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
TWIN_CANDIDATES = [REPO / "bench" / "twin" / "accel_twin.bpf.c",  # the repo's copy of shared/reference/accel.bpf.c
                   REPO.parent / "shared" / "reference" / "accel.bpf.c"]
CLANG = os.environ.get("PYBPFGEN_CLANG") or shutil.which("clang-19") or shutil.which("clang")


def in_ci_as_root() -> bool:
    return os.environ.get("CI") == "true" and os.geteuid() == 0


def unavailable(reason: str):
    """Skip locally; fail in CI as root (a skipped kernel test there hides breakage)."""
    if in_ci_as_root():
        pytest.fail(f"cannot run in CI as root: {reason}", pytrace=False)
    pytest.skip(reason)


def build_bpf(src: Path, out_dir: Path, name: str | None = None) -> Path:
    if not CLANG:
        unavailable("clang-19 is not installed (needed to build test BPF objects): apt-get install clang-19, or run bash scripts/setup.sh")
    out = out_dir / (name or src.name[:-2] + ".o")   # x.bpf.c → x.bpf.o
    cmd = [CLANG, "-O2", "-g", "-target", "bpf", "-I/usr/include/x86_64-linux-gnu", "-I/usr/include/aarch64-linux-gnu",
           "-c", str(src), "-o", str(out)]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        if "bpf/bpf_helpers.h" in r.stderr:
            unavailable("libbpf headers (bpf/bpf_helpers.h) are not installed: apt-get install libbpf-dev, or run bash scripts/setup.sh")
        raise RuntimeError(f"building {src} failed:\n{r.stderr}")
    return out


@pytest.fixture(scope="session")
def bpf_build_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("bpfobj")


@pytest.fixture(scope="session")
def twin_object(bpf_build_dir) -> str:
    """Path of the accelerator object under test."""
    env = os.environ.get("PYBPFGEN_TWIN_OBJECT")
    if env:
        return env
    src = next((p for p in TWIN_CANDIDATES if p.exists()), None)
    if src is None:
        unavailable("bench/twin/accel_twin.bpf.c not found")
    return str(build_bpf(src, bpf_build_dir, "accel.bpf.o"))  # loaded (and pinned) as "accel"


def compile_dsl(src: Path, out_dir: Path) -> Path:
    """`pybpfgen compile` in a child process (the loader tests never import llvmlite)."""
    import sys
    r = subprocess.run([sys.executable, "-c", "import sys; from pybpfgen.cli import main; sys.exit(main())",
                        "compile", str(src), "-o", str(out_dir), "-q"], capture_output=True, text=True, cwd=REPO)
    if r.returncode != 0:
        raise RuntimeError(f"pybpfgen compile {src} failed:\n{r.stderr}")
    return out_dir / (src.stem + ".bpf.o")


@pytest.fixture(scope="session")
def accel_object(bpf_build_dir) -> str:
    """programs/accel.py compiled by pybpfgen (maps socks, policy_ports, stats)."""
    out = bpf_build_dir / "dsl"
    out.mkdir(exist_ok=True)
    return str(compile_dsl(REPO / "programs" / "accel.py", out))


@pytest.fixture(scope="session")
def accel_variant_object(bpf_build_dir) -> str:
    """accel.py with policy_ports max_entries 1024 -> 2048: an incompatible map definition."""
    d = bpf_build_dir / "variant"
    d.mkdir(exist_ok=True)
    src = (REPO / "programs" / "accel.py").read_text()
    line = "policy_ports = Hash(key=u32, value=u32, max_entries=1024)"
    assert line in src
    (d / "accel.py").write_text(src.replace(line, line.replace("1024", "2048")))
    out = d / "out"
    out.mkdir(exist_ok=True)
    return str(compile_dsl(d / "accel.py", out))


@pytest.fixture(scope="session")
def features_object(bpf_build_dir) -> str:
    return str(build_bpf(HERE / "bpf" / "features.bpf.c", bpf_build_dir))


@pytest.fixture(scope="session")
def bad_object(bpf_build_dir) -> str:
    return str(build_bpf(HERE / "bpf" / "bad.bpf.c", bpf_build_dir))


@pytest.fixture(autouse=True)
def private_state_dir(tmp_path, monkeypatch):
    """Each test gets its own loader journal directory (PYBPFGEN_STATE_DIR)."""
    d = tmp_path / "loader-state"
    monkeypatch.setenv("PYBPFGEN_STATE_DIR", str(d))
    return d


# ------------------------------------------------------------ kernel gating
_probe_result: str | None = None


def _probe_kernel() -> str:
    """'' when BPF works here, else the reason it does not."""
    global _probe_result
    if _probe_result is None:
        from kernel_loader import syscall as S
        from kernel_loader.manager import find_cgroup2_mount
        try:
            fd = S.Syscall().map_create(1, 4, 4, 1, name="probe")
            os.close(fd)
            _probe_result = "" if find_cgroup2_mount() else "no cgroup2 mount"
        except OSError as e:
            _probe_result = f"bpf(2) unusable: {e}"
    return _probe_result


def pytest_runtest_setup(item):
    if item.get_closest_marker("kernel") is None:
        return
    if os.geteuid() != 0:
        pytest.skip("needs root")
    reason = _probe_kernel()
    if reason:
        unavailable(reason)


@pytest.fixture
def pin_root():
    """A private pin root on bpffs, removed (with everything under it) afterwards."""
    from kernel_loader import manager, pins
    root = f"/sys/fs/bpf/pybpfgen-test-{uuid.uuid4().hex[:8]}"
    pins.ensure_bpffs(root)
    try:
        yield root
    finally:
        try:
            manager.unload(None, pin_root=root)
        finally:
            if os.path.isdir(root):
                for dirpath, _d, files in os.walk(root, topdown=False):
                    for f in files:
                        os.unlink(os.path.join(dirpath, f))
                    os.rmdir(dirpath)


@pytest.fixture
def test_cgroup():
    """A private child cgroup of the cgroup2 mount (never the root cgroup)."""
    from kernel_loader.manager import find_cgroup2_mount
    root = find_cgroup2_mount()
    path = os.path.join(root, f"pybpfgen-test-{uuid.uuid4().hex[:8]}")
    os.mkdir(path)
    try:
        yield path
    finally:
        for _ in range(50):
            try:
                os.rmdir(path)
                break
            except FileNotFoundError:
                break
            except OSError:
                # processes still leaving: move stragglers to the parent
                try:
                    with open(os.path.join(path, "cgroup.procs")) as f:
                        pids = f.read().split()
                    for pid in pids:
                        with open(os.path.join(root, "cgroup.procs"), "w") as f:
                            f.write(pid)
                except OSError:
                    pass
                time.sleep(0.1)
