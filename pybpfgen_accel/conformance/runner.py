"""run_conformance: run the selected cases one by one, each in its own sandbox, and report."""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import traceback
from typing import Callable

from . import CASE_NAMES
from .cases import CASES, Params, PORT
from .env import CaseError, Sandbox


def _check_root() -> str | None:
    if os.geteuid() != 0:
        return "needs root (network namespaces, cgroups, bpf)"
    return None


@contextlib.contextmanager
def _sigterm_as_interrupt():
    """SIGTERM -> KeyboardInterrupt while cases run (so cleanup runs); main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def run_conformance(object_path: str, cases: list[str] | None = None, progress: Callable[[str], None] | None = None,
                    pin_root: str | None = None, *, params: dict | None = None) -> list[dict]:
    say = progress or (lambda s: None)
    names = list(cases) if cases else list(CASE_NAMES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        raise ValueError(f"unknown conformance case(s) {', '.join(unknown)}; known: {', '.join(CASE_NAMES)}")
    if pin_root is None:
        raise ValueError("pin_root is required (a private directory under /sys/fs/bpf)")
    object_path = os.path.abspath(object_path)
    if not os.path.isfile(object_path):
        raise FileNotFoundError(object_path)
    prm = Params().override(params)
    why = _check_root()
    results = []
    with _sigterm_as_interrupt():
        for i, name in enumerate(names, 1):
            fn, title = CASES[name]
            say(f"[{i}/{len(names)}] {name}: {title}")
            if why:
                results.append({"name": name, "status": "skipped", "detail": why, "metrics": {}})
                continue
            t0 = time.monotonic()
            sb = None
            try:
                sb = Sandbox(object_path, pin_root, [PORT], progress=say)
                sb.accel.load()
                status, detail, metrics = fn(sb, prm, say)
            except KeyboardInterrupt:
                say(f"[{i}/{len(names)}] {name}: interrupted, cleaning up")
                raise
            except CaseError as e:
                status, detail, metrics = "fail", f"could not run: {e}", {}
            except Exception as e:  # noqa: BLE001 - reported, never swallowed silently
                tb = traceback.format_exc(limit=3).strip().splitlines()
                status, detail, metrics = "fail", f"error: {type(e).__name__}: {e} ({tb[-3] if len(tb) > 2 else ''})", {}
            finally:
                if sb is not None:
                    try:
                        sb.close()
                    except Exception as e:  # noqa: BLE001
                        if "status" in locals():
                            detail = f"{detail}; cleanup failed: {e}"
            metrics = dict(metrics)
            metrics["seconds"] = round(time.monotonic() - t0, 1)
            detail = " ".join(str(detail).split())
            results.append({"name": name, "status": status, "detail": detail, "metrics": metrics})
            say(f"[{i}/{len(names)}] {name}: {status.upper()} ({metrics['seconds']} s) - {detail}")
    return results
