"""Shared pytest configuration.

Kernel gate
-----------
Tests marked ``@pytest.mark.kernel`` (and any test using one of the kernel
fixtures below) need root and a working bpf(2). When that is not available they
are skipped -- EXCEPT when ``CI=true`` and we run as root: then EVERY skip, of a
kernel test or any other (whatever raised it: the gate, a fixture, ``pytest.skip``
in the test body, a ``skip``/``skipif`` marker, ``importorskip`` or ``pytest.skip``
at module level), is reported as a FAILURE naming what is missing, so a CI run can
never go green by silently skipping what a missing package or tool would hide
(``scripts/setup.sh`` installs everything the tests use).

Fixtures
--------
``child_cgroup``  private child of the cgroup2 root (``pybpfgen-test-<rand>``);
                  processes left in it are killed, then it is removed.
``pin_root``      private directory under /sys/fs/bpf (bpffs mounted if needed).
``netns_pair``    two fresh netns ``pbg-<rand>-a/-b`` joined by a veth pair,
                  198.18.0.1/24 <-> 198.18.0.2/24, lo up in both.
``run_in``        ``run_in(argv, cgroup=..., netns=..., **popen_kw)`` -> Popen,
                  via ``sh -c 'echo $$ > CG/cgroup.procs; exec ip netns exec NS argv'``;
                  processes still running at teardown are killed.
``pybpfgen_cli``  a ``kharness.PybpfgenCLI`` bound to ``pin_root``.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

_KERNEL_DIR = Path(__file__).resolve().parent / "kernel"
if str(_KERNEL_DIR) not in sys.path:
    sys.path.insert(0, str(_KERNEL_DIR))

KERNEL_FIXTURES = {"child_cgroup", "pin_root", "netns_pair", "run_in", "pybpfgen_cli", "kernel_env"}


def skips_are_failures() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes") and os.geteuid() == 0


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "kernel: needs root and a BPF-capable kernel (fails instead of skipping when CI=true and root)")


def _is_kernel_item(item) -> bool:
    return item.get_closest_marker("kernel") is not None or bool(KERNEL_FIXTURES & set(getattr(item, "fixturenames", ())))


_kernel_ok: tuple[bool, str] | None = None


def kernel_capability() -> tuple[bool, str]:
    """(ok, reason): root + bpf(2) + cgroup2 + iproute2."""
    global _kernel_ok
    if _kernel_ok is None:
        if os.geteuid() != 0:
            _kernel_ok = (False, "kernel tests need root")
        elif shutil.which("ip") is None:
            _kernel_ok = (False, "iproute2 (ip) not installed")
        else:
            try:
                import kharness
                ok, why = kharness.bpf_available()
                if ok:
                    kharness.cgroup2_root()
                _kernel_ok = (ok, why)
            except Exception as e:  # noqa: BLE001
                _kernel_ok = (False, f"kernel environment unusable: {e}")
    return _kernel_ok


def pytest_runtest_setup(item):
    if _is_kernel_item(item):
        ok, why = kernel_capability()
        if not ok:
            pytest.skip(why)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and not hasattr(rep, "wasxfail") and skips_are_failures():
        _skip_to_failure(rep, f"{'kernel test' if _is_kernel_item(item) else 'test'} {item.nodeid}")


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    """A module skipped whole (``pytest.skip(allow_module_level=True)``, ``importorskip``) is a failure too."""
    outcome = yield
    rep = outcome.get_result()
    if rep.skipped and skips_are_failures():
        _skip_to_failure(rep, f"module {collector.nodeid}")


def _skip_to_failure(rep, what: str) -> None:
    reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) and len(rep.longrepr) == 3 else str(rep.longrepr)
    rep.outcome = "failed"
    rep.longrepr = (f"{what} was skipped while CI=true and running as root; skips are failures here "
                    f"(bash scripts/setup.sh installs every package the tests use). Skip reason: {reason}")


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------
@pytest.fixture
def kernel_env():
    ok, why = kernel_capability()
    if not ok:
        pytest.skip(why)


@pytest.fixture
def child_cgroup(kernel_env):
    import kharness
    with kharness.child_cgroup("pybpfgen-test") as cg:
        yield cg


@pytest.fixture
def pin_root(kernel_env):
    import kharness
    with kharness.private_pin_root("pybpfgen-test") as root:
        yield root


@pytest.fixture
def netns_pair(kernel_env):
    import kharness
    with kharness.netns_pair("pbg") as pair:
        yield pair


@pytest.fixture
def run_in(kernel_env):
    import kharness
    procs = []

    def _run(argv, cgroup=None, netns=None, **kw):
        p = kharness.spawn(list(argv), cgroup=cgroup, netns=netns, **kw)
        procs.append(p)
        return p

    yield _run
    for p in procs:
        kharness.kill_proc(p)


@pytest.fixture
def pybpfgen_cli(pin_root):
    import kharness
    return kharness.PybpfgenCLI(pin_root=pin_root)
