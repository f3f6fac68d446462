"""Conformance suite of the sockmap accelerator (issue #5).

    from pybpfgen_accel.conformance import run_conformance, CASE_NAMES
    results = run_conformance("build/accel.bpf.o", cases=None, progress=print, pin_root="/sys/fs/bpf/pbg-conf")

Every case runs its workload on the kernel path and accelerated, in private network namespaces (loopback or
198.18.0.0/15 only) and private child cgroups, loads the object under test into ``pin_root`` and removes
everything afterwards (also on errors and Ctrl-C). Each result is ``{"name", "status", "detail", "metrics"}``
with status ``pass`` | ``fail`` | ``kernel-hazard`` | ``skipped``. Sizes: see ``cases.Params`` (env vars
``PYBPFGEN_CONF_*``). Needs root. Imports nothing heavy until called.

The stress mode (issue 11, ``run_stress``; ``pybpfgen doctor --conformance --stress``) runs its own cases round
after round under adversarial timing: see stress.py and docs/hazards.md, "Stress mode".
"""
from __future__ import annotations

CASE_NAMES = ["sizes", "early_data", "shutdown", "peek", "sendfile_splice", "backpressure", "large",
              "concurrency", "unload_reload", "netns_collision", "duplex_memory", "msg_waitall",
              "msg_oob"]
STATUSES = ("pass", "fail", "kernel-hazard", "skipped")


def run_conformance(object_path, cases=None, progress=None, pin_root=None, *, params=None):
    from .runner import run_conformance as _run
    return _run(object_path, cases, progress, pin_root, params=params)


def run_stress(object_path, cases=None, rounds=10, seed=None, progress=None, pin_root=None, *, opts=None):
    """The stress mode (issue 11): ``stress.run_stress``; cases ``stress_plan.STRESS_CASE_NAMES``."""
    from .stress import run_stress as _run
    return _run(object_path, cases, rounds, seed, progress, pin_root, opts=opts)


__all__ = ["run_conformance", "run_stress", "CASE_NAMES", "STATUSES"]
