"""Stress mode: the adversarial environment of a round: CPU hogs on every core, and a CPU limit on one end.

Each end of a round (``server``, ``client``) runs in its own child cgroup of the path's cgroup (so the programs
attached to the accelerated cgroup see both). The CPU limit is ``cpu.max`` when the cgroup v2 hierarchy has the
``cpu`` controller, else ``cpu.cfs_quota_us`` of a private cgroup v1 ``cpu`` directory the end also joins
(hybrid hierarchies, where ``cpu`` is bound to v1). Everything is removed by ``close()``; the hogs also die
with the orchestrator (PR_SET_PDEATHSIG) and after a deadline.
"""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from .env import CGROUP_PREFIX, CaseError, Sandbox, cgroup2_root, kill_proc, spawn_cmd

V1_CPU = Path("/sys/fs/cgroup/cpu")
PERIOD_US = 100_000
ROLES = ("server", "client")

HOG = """
import ctypes, os, sys, time
try:
    ctypes.CDLL(None).prctl(1, 9)      # PR_SET_PDEATHSIG SIGKILL
except Exception:
    pass
os.sched_setaffinity(0, {int(sys.argv[1])})
end = time.monotonic() + float(sys.argv[2])
while time.monotonic() < end:
    for _ in range(200000):
        pass
"""


def cpu_kind() -> str | None:
    """``v2`` (cpu.max), ``v1`` (cpu.cfs_quota_us) or None (no CPU limit possible here)."""
    with contextlib.suppress(OSError, CaseError):
        if "cpu" in (cgroup2_root() / "cgroup.controllers").read_text().split():
            return "v2"
    if (V1_CPU / "cpu.cfs_quota_us").exists():
        return "v1"
    return None


class StressEnv:
    """Per-end cgroups with a CPU limit, and the hogs, for one sandbox (one case)."""

    def __init__(self, sb: Sandbox, kind: str | None = "auto"):
        self.sb = sb
        self.kind = cpu_kind() if kind == "auto" else kind
        self.v1_dirs: list[Path] = []
        self._enabled: list[Path] = []
        self.ends: dict[tuple[str, str], tuple[list[Path], Path | None]] = {}
        self.hogs: list[subprocess.Popen] = []
        self.hog_cg = sb._cgroup(cgroup2_root() / f"{CGROUP_PREFIX}{sb.tag}-hogs")
        try:
            self._make_ends()
        except BaseException:
            self.close()           # the sandbox removes its own cgroups; the v1 directories are ours
            raise

    def _make_ends(self) -> None:
        sb = self.sb
        for mode in ("kernel", "accel"):
            parent = sb.cgroup(mode)
            if self.kind == "v2":
                self._enable_cpu(parent.parent)
                self._enable_cpu(parent)
            for role in ROLES:
                v2dir = sb._cgroup(parent / role)
                dirs, qfile = [v2dir], None
                if self.kind == "v2":
                    qfile = v2dir / "cpu.max"
                elif self.kind == "v1":
                    d = V1_CPU / f"{CGROUP_PREFIX}{sb.tag}-{mode}-{role}"
                    d.mkdir()
                    self.v1_dirs.append(d)
                    dirs.append(d)
                    qfile = d / "cpu.cfs_quota_us"
                self.ends[(mode, role)] = (dirs, qfile)

    def _enable_cpu(self, cg: Path) -> None:
        ctl = cg / "cgroup.subtree_control"
        if "cpu" not in ctl.read_text().split():
            ctl.write_text("+cpu")
            self._enabled.append(cg)

    def cgroups(self, mode: str, role: str) -> list[Path]:
        return self.ends[(mode, role)][0]

    def throttle(self, role: str | None, pct: int) -> bool:
        """Limit ``role``'s end (both paths) to ``pct`` % of one CPU; False when no CPU limit is possible."""
        if role is None or self.kind is None:
            return role is None
        quota = max(1000, PERIOD_US * pct // 100)
        for mode in ("kernel", "accel"):
            qfile = self.ends[(mode, role)][1]
            assert qfile is not None
            if self.kind == "v2":
                qfile.write_text(f"{quota} {PERIOD_US}")
            else:
                (qfile.parent / "cpu.cfs_period_us").write_text(str(PERIOD_US))
                qfile.write_text(str(quota))
        return True

    def unthrottle(self) -> None:
        for _dirs, qfile in self.ends.values():
            if qfile is not None and qfile.exists():
                with contextlib.suppress(OSError):
                    qfile.write_text(f"max {PERIOD_US}" if self.kind == "v2" else "-1")

    def start_hogs(self, seconds: float) -> int:
        cpus = sorted(os.sched_getaffinity(0))
        for cpu in cpus:
            self.hogs.append(spawn_cmd(self.sb, [sys.executable, "-c", HOG, str(cpu), str(seconds)],
                                       cgroup=self.hog_cg, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL))
        return len(cpus)

    def stop_hogs(self) -> None:
        for p in self.hogs:
            kill_proc(p, 1.0)
            with contextlib.suppress(ValueError):
                self.sb.procs.remove(p)
        self.hogs.clear()

    def close(self) -> None:
        """After Sandbox.kill_all (the ends' processes are gone): remove the v1 directories, undo +cpu."""
        self.stop_hogs()
        self.unthrottle()
        for d in reversed(self.v1_dirs):
            deadline = time.monotonic() + 10
            while d.exists():
                with contextlib.suppress(FileNotFoundError, ValueError):
                    for pid in (d / "cgroup.procs").read_text().split():
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(int(pid), signal.SIGKILL)
                try:
                    d.rmdir()
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        self.v1_dirs.clear()

    def undo_controllers(self) -> None:
        """After the sandbox's cgroups are gone: switch ``cpu`` off again where we switched it on."""
        for cg in reversed(self._enabled):
            with contextlib.suppress(OSError):
                (cg / "cgroup.subtree_control").write_text("-cpu")
        self._enabled.clear()


def v1_leftovers() -> list[str]:
    """Private cgroup v1 cpu directories a stress run might have left behind (for tests)."""
    with contextlib.suppress(OSError):
        return sorted(p.name for p in V1_CPU.iterdir() if p.name.startswith(CGROUP_PREFIX))
    return []
