"""``pybpfgen doctor --conformance [--stress]``: the accelerator's conformance suite and its stress mode, each on
a private pin root (docs/cli.md, docs/hazards.md "Stress mode")."""
from __future__ import annotations

import contextlib
import json
import os
import sys
import uuid

from kernel_loader import pins as _pins
from kernel_loader import syscall as _syscall
from kernel_loader.errors import LoaderError

DEFAULT_CONFORMANCE_OBJECT = os.path.join("build", "accel.bpf.o")


@contextlib.contextmanager
def _private_pin_root(pin_parent: str, sc):
    """A fresh ``pybpfgen-conformance-<random>`` pin root; everything under it is unloaded and removed after."""
    from kernel_loader.lifecycle import unload
    pin_root = os.path.join(pin_parent, f"pybpfgen-conformance-{uuid.uuid4().hex[:8]}")
    _pins.ensure_bpffs(pin_root, sc)
    try:
        yield pin_root
    finally:
        try:
            unload(None, pin_root=pin_root, sc=sc)
        finally:
            if os.path.isdir(pin_root):
                for dirpath, _d, files in os.walk(pin_root, topdown=False):
                    for f in files:
                        os.unlink(os.path.join(dirpath, f))
                    os.rmdir(dirpath)


def run_stress_suite(object_path: str, args, progress, pin_parent: str = _pins.BPFFS, sc=None) -> dict:
    """``doctor --conformance --stress``: pybpfgen_accel.conformance.stress.run_stress on a private pin root."""
    from kernel_loader.lifecycle import check_privileges
    sc = sc or _syscall.get_default()
    from .conformance.env import CaseError
    from .conformance.stress import run_stress
    from .conformance.stress_plan import StressOptions
    if not os.path.exists(object_path):
        raise LoaderError(f"{object_path}: no such file; build it with `pybpfgen compile programs/ -o build/` "
                          "or pass --object PATH")
    try:
        opts = StressOptions(budget=args.budget, duplex_bytes=args.duplex_bytes, max_bytes=args.max_bytes,
                             stall_s=args.stall_seconds, hogs=args.hogs, low_msgs=args.low_budget_msgs,
                             low_kib=args.low_budget_kib, strict=args.strict).check()
    except ValueError as e:
        raise LoaderError(f"stress options: {e}") from None
    check_privileges(sc)
    with _private_pin_root(pin_parent, sc) as pin_root:
        try:
            return run_stress(os.path.abspath(object_path), args.cases, args.rounds, args.seed, progress, pin_root,
                              opts=opts)
        except (ValueError, CaseError) as e:
            raise LoaderError(f"stress: {e}") from None


def run_conformance_suite(object_path: str, cases: list[str] | None, progress, pin_parent: str = _pins.BPFFS,
                          sc=None) -> dict:
    from kernel_loader.lifecycle import check_privileges
    sc = sc or _syscall.get_default()
    from .conformance import run_conformance as run
    if not os.path.exists(object_path):
        raise LoaderError(f"{object_path}: no such file; build it with `pybpfgen compile programs/ -o build/` "
                          "or pass --object PATH")
    check_privileges(sc)
    with _private_pin_root(pin_parent, sc) as pin_root:
        results = run(os.path.abspath(object_path), cases, progress, pin_root)
    counts: dict[str, int] = {}
    for r in results:
        counts[r.get("status", "?")] = counts.get(r.get("status", "?"), 0) + 1
    return {"object": os.path.abspath(object_path), "cases": list(results), "counts": counts,
            "ok": not any(r.get("status") == "fail" for r in results)}


def format_conformance(rep: dict) -> str:
    rows = [(r.get("name", "?"), r.get("status", "?"), str(r.get("detail", "")).replace("\n", " ")) for r in rep["cases"]]
    w = max([len("case")] + [len(r[0]) for r in rows])
    out = [f"conformance of {rep['object']}", f"  {'case':<{w}}  {'status':<14} detail"]
    for name, status, detail in rows:
        out.append(f"  {name:<{w}}  {status:<14} {detail}")
    summary = ", ".join(f"{n} {k}" for k, n in sorted(rep["counts"].items())) or "no cases"
    out.append(("PASS" if rep["ok"] else "FAIL") + f": {summary}")
    return "\n".join(out)


def run_doctor(args) -> int | None:
    """The plugin's doctor handler: None unless --conformance (or a suite option) was given."""
    if args.cases and not args.conformance:
        raise LoaderError("--cases needs --conformance")
    if getattr(args, "stress", False):
        if not args.conformance:
            raise LoaderError("--stress needs --conformance (pybpfgen doctor --conformance --stress)")
        from .conformance.stress_count import format_report
        progress = lambda msg: print(f"pybpfgen: {msg}", file=sys.stderr, flush=True)   # noqa: E731
        rep = run_stress_suite(args.object or DEFAULT_CONFORMANCE_OBJECT, args, progress)
        print(json.dumps(rep, indent=2, sort_keys=True) if args.json else format_report(rep))
        return 0 if rep["ok"] else 1
    if args.conformance:
        progress = lambda msg: print(f"pybpfgen: {msg}", file=sys.stderr, flush=True)   # noqa: E731
        rep = run_conformance_suite(args.object or DEFAULT_CONFORMANCE_OBJECT, args.cases, progress)
        print(json.dumps(rep, indent=2, sort_keys=True) if args.json else format_conformance(rep))
        return 0 if rep["ok"] else 1
    return None
