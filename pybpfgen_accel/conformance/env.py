"""Sandbox for the conformance cases: private netns, private child cgroups, workers, memory sampling,
and the accelerator under test (loaded with kernel_loader into a private pin root).

Safety rules:
  * cgroups are always fresh children of the cgroup2 root, removed afterwards (processes killed first);
  * network namespaces are always fresh (``pbgc-<rand>``) and only get loopback or 198.18.0.0/15 addresses;
  * every process is started in its own session and killed (process group) at cleanup;
  * everything is undone by ``Sandbox.close()``, which runs on exceptions and KeyboardInterrupt too.
Standard library + kernel_loader only (no pytest, no llvmlite).
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import secrets
import selectors
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

PKG_ROOT = Path(__file__).resolve().parents[2]   # the directory holding pybpfgen_accel/ and kernel_loader/
DEFAULT_CGROUP2_ROOT = Path("/sys/fs/cgroup/unified")
NETNS_PREFIX = "pbgc-"
CGROUP_PREFIX = "pybpfgen-conf-"


class CaseError(Exception):
    """The case could not be run (environment problem, worker crashed, timeout)."""


# --------------------------------------------------------------------------- memory
def meminfo_kib(field: str = "SUnreclaim") -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def tcp_mem_pages() -> int:
    """The TCP ``mem`` of /proc/net/sockstat (pages; tcp_memory_allocated is global, not per-netns)."""
    for line in Path("/proc/net/sockstat").read_text().splitlines():
        if line.startswith("TCP:"):
            parts = line.split()
            return int(parts[parts.index("mem") + 1])
    return 0


PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


class MemSampler:
    """Samples SUnreclaim and TCP mem in a thread; calls ``on_limit`` once if SUnreclaim grows past the limit."""

    def __init__(self, interval: float = 0.05, slab_limit_kib: int | None = None, on_limit=None):
        self.interval, self.slab_limit_kib, self.on_limit = interval, slab_limit_kib, on_limit
        self.base_slab = meminfo_kib()
        self.base_tcp = tcp_mem_pages()
        self.peak_slab = self.base_slab
        self.peak_tcp = self.base_tcp
        self.aborted = False
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            s, t = meminfo_kib(), tcp_mem_pages()
            self.peak_slab = max(self.peak_slab, s)
            self.peak_tcp = max(self.peak_tcp, t)
            if (self.slab_limit_kib is not None and not self.aborted
                    and s - self.base_slab > self.slab_limit_kib):
                self.aborted = True
                if self.on_limit:
                    with contextlib.suppress(Exception):
                        self.on_limit()
            self._stop.wait(self.interval)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join(5)

    def metrics(self, prefix: str = "") -> dict:
        return {f"{prefix}slab_growth_mib": round((self.peak_slab - self.base_slab) / 1024, 1),
                f"{prefix}tcp_mem_growth_mib": round((self.peak_tcp - self.base_tcp) * PAGE_KIB / 1024, 1),
                f"{prefix}tcp_mem_peak_pages": self.peak_tcp}


# --------------------------------------------------------------------------- cgroups / netns
def cgroup2_root() -> Path:
    if (DEFAULT_CGROUP2_ROOT / "cgroup.procs").exists():
        return DEFAULT_CGROUP2_ROOT
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "cgroup2":
            return Path(parts[1])
    raise CaseError("no cgroup2 mount found")


def _cgroup_pids(cg: Path) -> list[int]:
    try:
        return [int(x) for x in (cg / "cgroup.procs").read_text().split()]
    except (FileNotFoundError, ValueError):
        return []


def destroy_cgroup(cg: Path, timeout: float = 10.0) -> None:
    cg = Path(cg)
    if not cg.exists():
        return
    root = cgroup2_root()
    if cg.resolve() == root.resolve():
        raise CaseError("refusing to destroy the cgroup2 root")
    deadline = time.monotonic() + timeout
    while _cgroup_pids(cg):
        if (cg / "cgroup.kill").exists():
            with contextlib.suppress(OSError):
                (cg / "cgroup.kill").write_text("1")
        else:
            for pid in _cgroup_pids(cg):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            for pid in _cgroup_pids(cg):
                with contextlib.suppress(OSError):
                    (root / "cgroup.procs").write_text(str(pid))
            break
        time.sleep(0.05)
    while True:
        try:
            cg.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline + 5:
                raise
            time.sleep(0.05)


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and r.returncode != 0:
        raise CaseError(f"ip {' '.join(args)}: {r.stderr.strip()}")
    return r


def destroy_netns(ns: str) -> None:
    for _ in range(50):
        r = _ip("netns", "pids", ns, check=False)
        pids = [int(x) for x in r.stdout.split()] if r.returncode == 0 else []
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.05)
    _ip("netns", "del", ns, check=False)


def wrap_cmd(argv: list[str], cgroup=None, netns: str | None = None) -> list[str]:
    """``sh -c 'echo $$ > CG/cgroup.procs && exec ip netns exec NS argv...'``; ``cgroup`` may be a list (e.g. a
    cgroup v2 directory and a cgroup v1 ``cpu`` directory): the process joins each."""
    inner = " ".join(shlex.quote(str(a)) for a in argv)
    if netns:
        inner = f"ip netns exec {shlex.quote(netns)} {inner}"
    script = f"exec {inner}"
    for cg in reversed(cgroup if isinstance(cgroup, (list, tuple)) else [cgroup] if cgroup else []):
        script = f"echo $$ > {shlex.quote(str(Path(cg) / 'cgroup.procs'))} && {script}"
    return ["sh", "-c", script]


def kill_proc(p: subprocess.Popen, timeout: float = 3.0) -> None:
    if p.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(p.pid, signal.SIGTERM)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(p.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout)


# --------------------------------------------------------------------------- workers
class Worker:
    """A ``python -m pybpfgen_accel.conformance.worker`` process running one scenario in a netns + cgroup.

    Protocol: JSON lines on stdout (``{"event": ...}``); commands (``ok``) on stdin. The scenario's final
    answer is the ``result`` event; ``checkpoint`` events wait for ``ok``.
    """

    def __init__(self, sandbox: "Sandbox", scenario: str, args: dict, *, netns: str | None, cgroup,
                 timeout: float, label: str = "", module: str = "pybpfgen_accel.conformance.worker",
                 spec: dict | None = None):
        self.label = label or scenario
        self.timeout = timeout
        spec_json = json.dumps(spec if spec is not None else {"scenario": scenario, "args": args, "timeout": timeout})
        env = dict(os.environ)
        env["PYTHONPATH"] = str(PKG_ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        argv = [sys.executable, "-u", "-m", module, spec_json]
        self.proc = subprocess.Popen(wrap_cmd(argv, cgroup, netns), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1, start_new_session=True,
                                     env=env, cwd="/")
        sandbox.procs.append(self.proc)
        self._stderr: list[str] = []
        self._errt = threading.Thread(target=self._drain_stderr, daemon=True)
        self._errt.start()

    def _drain_stderr(self):
        with contextlib.suppress(Exception):
            for line in self.proc.stderr:
                self._stderr.append(line)
                del self._stderr[:-40]

    def stderr_tail(self) -> str:
        return "".join(self._stderr)[-1500:].strip()

    def next_event(self, timeout: float) -> dict:
        stdout = self.proc.stdout
        assert stdout is not None  # Popen(stdout=PIPE) in __init__
        sel = selectors.DefaultSelector()
        sel.register(stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + timeout
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise CaseError(f"worker {self.label}: no event within {timeout:.0f}s")
                if not sel.select(left):
                    continue
                line = stdout.readline()
                if not line:
                    rc = self.proc.wait()
                    time.sleep(0.1)
                    raise CaseError(f"worker {self.label} exited rc={rc}: {self.stderr_tail()}")
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if msg.get("event") == "error":
                    raise CaseError(f"worker {self.label}: {msg.get('error')}")
                return msg
        finally:
            sel.close()

    def expect(self, event: str, timeout: float | None = None, on_event=None) -> dict:
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            msg = self.next_event(max(0.01, deadline - time.monotonic()))
            if msg.get("event") == event:
                return msg
            if on_event:
                on_event(self, msg)

    def send(self, cmd: str = "ok") -> None:
        stdin = self.proc.stdin
        assert stdin is not None  # Popen(stdin=PIPE) in __init__
        with contextlib.suppress(BrokenPipeError, ValueError, OSError):
            stdin.write(cmd + "\n")
            stdin.flush()

    def result(self, timeout: float | None = None, checkpoints=None) -> dict:
        """Run to the end; ``checkpoints(name, msg) -> None`` is called for each checkpoint, then ``ok`` is sent."""
        def on_event(w, msg):
            if msg.get("event") == "checkpoint":
                if checkpoints:
                    checkpoints(msg.get("name"), msg)
                w.send("ok")
        res = self.expect("result", timeout, on_event)
        stdin = self.proc.stdin
        assert stdin is not None  # Popen(stdin=PIPE) in __init__
        with contextlib.suppress(subprocess.TimeoutExpired):
            stdin.close()
            self.proc.wait(5)
        res.pop("event", None)
        return res

    def kill(self):
        kill_proc(self.proc)


def spawn_cmd(sandbox: "Sandbox", argv: list[str], *, netns=None, cgroup=None, **kw) -> subprocess.Popen:
    kw.setdefault("start_new_session", True)
    p = subprocess.Popen(wrap_cmd(argv, cgroup, netns), **kw)
    sandbox.procs.append(p)
    return p


# --------------------------------------------------------------------------- the accelerator
class Accel:
    """The object under test, loaded with kernel_loader into ``pin_root`` and attached to ``cgroup``."""

    def __init__(self, object_path: str, pin_root: str, cgroup: Path, ports: list[int]):
        self.object_path, self.pin_root, self.cgroup, self.ports = object_path, str(pin_root), cgroup, list(ports)
        self.name: str | None = None
        self.loaded = False

    def load(self) -> None:
        import kernel_loader as kl
        from pybpfgen_accel import spec as accel
        objs = kl.load(self.object_path, cgroup=str(self.cgroup), pin_root=self.pin_root)
        self.name = objs[0].name
        self.loaded = True
        for p in self.ports:
            accel.policy_add(p, object=self.name, pin_root=self.pin_root)

    def unload(self) -> None:
        import kernel_loader as kl
        if self.name is not None:
            with contextlib.suppress(Exception):
                kl.unload(self.name, pin_root=self.pin_root)
        self.loaded = False

    def _status_obj(self) -> dict | None:
        import kernel_loader as kl
        if not self.loaded:
            return None
        st = kl.status(self.pin_root, name=self.name)
        return st["objects"][0] if st["objects"] else None

    def counters(self) -> dict:
        """Summed integer fields of every decoded array map (e.g. ``redirected``, ``missed``)."""
        o = self._status_obj()
        out: dict[str, int] = {}
        if not o:
            return out
        for m in o["maps"]:
            for v in m.get("values") or []:
                if isinstance(v, dict):
                    for k, x in v.items():
                        if isinstance(x, int):
                            out[k] = out.get(k, 0) + x
        return out

    def sockmap_entries(self) -> int:
        o = self._status_obj()
        if not o:
            return 0
        return sum(m["entries"] for m in o["maps"] if m["type"] in ("sockhash", "sockmap"))

    def wait_sockmap_empty(self, timeout: float = 3.0) -> int:
        deadline = time.monotonic() + timeout
        while True:
            n = self.sockmap_entries()
            if n == 0 or time.monotonic() > deadline:
                return n
            time.sleep(0.05)


def delta(after: dict, before: dict) -> dict:
    return {k: after.get(k, 0) - before.get(k, 0) for k in set(after) | set(before)}


# --------------------------------------------------------------------------- sandbox
class Sandbox:
    """Everything one case creates; ``close()`` removes all of it (idempotent)."""

    def __init__(self, object_path: str, pin_root: str, ports: list[int], progress=None):
        self.tag = secrets.token_hex(3)
        self.object_path, self.pin_root = object_path, pin_root
        self.progress = progress or (lambda s: None)
        self.netns: list[str] = []
        self.cgroups: list[Path] = []
        self.procs: list[subprocess.Popen] = []
        root = cgroup2_root()
        self.cg_accel = self._cgroup(root / f"{CGROUP_PREFIX}{self.tag}-accel")
        self.cg_plain = self._cgroup(root / f"{CGROUP_PREFIX}{self.tag}-plain")
        self.accel = Accel(object_path, pin_root, self.cg_accel, ports)

    def _cgroup(self, path: Path) -> Path:
        path.mkdir()
        self.cgroups.append(path)
        return path

    def cgroup(self, mode: str) -> Path:
        return self.cg_accel if mode == "accel" else self.cg_plain

    def new_netns(self, suffix: str = "") -> str:
        ns = f"{NETNS_PREFIX}{self.tag}{suffix}"
        _ip("netns", "add", ns)
        self.netns.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")
        return ns

    def worker(self, scenario: str, args: dict, *, netns: str, mode: str | None = None, cgroup=None,
               timeout: float = 120.0, label: str = "") -> Worker:
        cg = cgroup if cgroup is not None else (self.cgroup(mode) if mode else None)
        return Worker(self, scenario, args, netns=netns, cgroup=cg, timeout=timeout, label=label)

    def kill_all(self) -> None:
        for p in self.procs:
            kill_proc(p)
        self.procs.clear()

    def close(self) -> None:
        errors = []
        for step in (self.kill_all, self.accel.unload):
            try:
                step()
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        for cg in reversed(self.cgroups):
            try:
                destroy_cgroup(cg)
            except Exception as e:  # noqa: BLE001
                errors.append(e)
        for ns in reversed(self.netns):
            destroy_netns(ns)
        self.cgroups.clear()
        self.netns.clear()
        if errors:
            raise CaseError(f"cleanup: {errors[0]}")


def leftovers() -> dict:
    """Anything a conformance run might have left behind (for tests)."""
    out: dict[str, list[str]] = {"netns": [], "cgroups": []}
    r = _ip("netns", "list", check=False)
    out["netns"] = [l.split()[0] for l in r.stdout.splitlines() if l.split() and l.split()[0].startswith(NETNS_PREFIX)]
    with contextlib.suppress(CaseError, OSError):
        out["cgroups"] = [p.name for p in cgroup2_root().iterdir() if p.name.startswith(CGROUP_PREFIX)]
    return out
