#!/usr/bin/env python3
"""Wall time of `pybpfgen load` + attach and `pybpfgen unload` against the equivalent
bpftool sequence on the same object (issue #4 goal: <= 1.5x).

    sudo .venv/bin/python bench/load_bench.py [--object build/accel.bpf.o] [--runs 15] [--json]

bpftool sequence (what `pybpfgen load` / `unload` do, minus pinning the links):
    load:   bpftool prog loadall OBJ PIN pinmaps PIN/maps
            bpftool cgroup attach CG sock_ops pinned PIN/accel_sockops
            bpftool prog attach pinned PIN/accel_redirect msg_verdict pinned PIN/maps/socks
    unload: bpftool cgroup detach CG sock_ops pinned PIN/accel_sockops
            bpftool prog detach pinned PIN/accel_redirect msg_verdict pinned PIN/maps/socks
            rm -r PIN

Runs alternate (pybpfgen, bpftool, pybpfgen, ...) so background load hits both
alike; medians are reported.  Also prints where pybpfgen's time goes (interpreter
start, imports, parse, each load phase) measured in-process.  Uses a private
child cgroup and private pin roots, removed at the end.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CG_ROOT_CANDIDATES = ("/sys/fs/cgroup/unified", "/sys/fs/cgroup")


def cgroup2_root() -> str:
    with open("/proc/mounts") as f:
        for line in f:
            p = line.split()
            if len(p) >= 3 and p[2] == "cgroup2":
                return p[1]
    raise SystemExit("no cgroup2 mount")


def run(argv, **kw) -> float:
    t = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, **kw)
    dt = time.perf_counter() - t
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {r.stderr.strip()}")
    return dt


def pybpfgen_argv() -> list[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "pybpfgen")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "kernel_loader"]


def bench(obj: str, runs: int) -> dict:
    cg = os.path.join(cgroup2_root(), f"pybpfgen-bench-{uuid.uuid4().hex[:8]}")
    tag = uuid.uuid4().hex[:8]
    pin_py = f"/sys/fs/bpf/pybpfgen-bench-{tag}"
    pin_bt = f"/sys/fs/bpf/pybpfgen-bench-bt-{tag}"
    os.mkdir(cg)
    pyb = pybpfgen_argv()
    res = {"pybpfgen_load": [], "pybpfgen_unload": [], "bpftool_load": [], "bpftool_unload": []}
    try:
        for _ in range(runs):
            res["pybpfgen_load"].append(run([*pyb, "load", obj, "--cgroup", cg, "--pin-root", pin_py]))
            res["pybpfgen_unload"].append(run([*pyb, "unload", "--pin-root", pin_py]))
            t = time.perf_counter()
            run(["bpftool", "prog", "loadall", obj, pin_bt, "pinmaps", f"{pin_bt}/maps"])
            run(["bpftool", "cgroup", "attach", cg, "sock_ops", "pinned", f"{pin_bt}/accel_sockops"])
            run(["bpftool", "prog", "attach", "pinned", f"{pin_bt}/accel_redirect", "msg_verdict",
                 "pinned", f"{pin_bt}/maps/socks"])
            res["bpftool_load"].append(time.perf_counter() - t)
            t = time.perf_counter()
            run(["bpftool", "cgroup", "detach", cg, "sock_ops", "pinned", f"{pin_bt}/accel_sockops"])
            run(["bpftool", "prog", "detach", "pinned", f"{pin_bt}/accel_redirect", "msg_verdict",
                 "pinned", f"{pin_bt}/maps/socks"])
            shutil.rmtree(pin_bt)
            res["bpftool_unload"].append(time.perf_counter() - t)
    finally:
        subprocess.run([*pyb, "unload", "--pin-root", pin_py], capture_output=True)
        if os.path.exists(pin_bt):
            subprocess.run(["bpftool", "cgroup", "detach", cg, "sock_ops", "pinned", f"{pin_bt}/accel_sockops"],
                           capture_output=True)
            shutil.rmtree(pin_bt, ignore_errors=True)
        for _ in range(50):
            try:
                os.rmdir(cg)
                break
            except OSError:
                time.sleep(0.1)
    med = {k: statistics.median(v) for k, v in res.items()}
    return {"runs": runs, "median_s": med, "min_s": {k: min(v) for k, v in res.items()},
            "ratio_load": med["pybpfgen_load"] / med["bpftool_load"],
            "ratio_unload": med["pybpfgen_unload"] / med["bpftool_unload"],
            "ratio_total": (med["pybpfgen_load"] + med["pybpfgen_unload"]) / (med["bpftool_load"] + med["bpftool_unload"])}


BREAKDOWN = r"""
import json, os, sys, time
t0 = time.perf_counter()
import kernel_loader.lifecycle as lc
t1 = time.perf_counter()
from kernel_loader.elf import parse_object
o = parse_object(sys.argv[1]); t2 = time.perf_counter()
marks = []
lc_crash = lc.crash_point
def mark(phase):
    marks.append((phase, time.perf_counter()))
    lc_crash(phase)
lc.crash_point = mark
t3 = time.perf_counter()
lc.load(sys.argv[1], cgroup=sys.argv[2], pin_root=sys.argv[3])
t4 = time.perf_counter()
lc.unload(pin_root=sys.argv[3])
t5 = time.perf_counter()
prev = t3
phases = []
for name, t in marks:
    phases.append((name, round((t - prev) * 1e3, 2))); prev = t
print(json.dumps({"import_ms": round((t1 - t0) * 1e3, 2), "parse_ms": round((t2 - t1) * 1e3, 2),
                  "load_ms": round((t4 - t3) * 1e3, 2), "load_phases_ms": phases,
                  "unload_ms": round((t5 - t4) * 1e3, 2)}))
"""


def breakdown(obj: str) -> dict:
    cg = os.path.join(cgroup2_root(), f"pybpfgen-bench-{uuid.uuid4().hex[:8]}")
    pin = f"/sys/fs/bpf/pybpfgen-bench-{uuid.uuid4().hex[:8]}"
    os.mkdir(cg)
    try:
        t = time.perf_counter()
        run([sys.executable, "-c", "pass"])
        interp = time.perf_counter() - t
        r = subprocess.run([sys.executable, "-c", BREAKDOWN, obj, cg, pin], capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
        out = json.loads(r.stdout)
        out["interpreter_start_ms"] = round(interp * 1e3, 2)
        t = time.perf_counter()
        run([sys.executable, "-c", "import elftools.elf.elffile"])
        out["pyelftools_import_incl_start_ms"] = round((time.perf_counter() - t) * 1e3, 2)
        return out
    finally:
        subprocess.run([sys.executable, "-m", "kernel_loader", "unload", "--pin-root", pin], capture_output=True)
        os.rmdir(cg)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--object", help="BPF object (default: compile programs/ into a temp dir)")
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("needs root")
    tmp = None
    obj = a.object
    if obj is None:
        tmp = tempfile.mkdtemp(prefix="pybpfgen-bench-")
        subprocess.run([*pybpfgen_argv()[:1], "compile", os.path.join(REPO, "programs"), "-o", tmp, "-q"]
                       if pybpfgen_argv()[0].endswith("pybpfgen") else
                       [sys.executable, "-c", "import sys; from pybpfgen.cli import main; sys.exit(main())",
                        "compile", os.path.join(REPO, "programs"), "-o", tmp, "-q"], check=True)
        obj = os.path.join(tmp, "accel.bpf.o")
    try:
        out = {"object": obj, "bench": bench(obj, a.runs), "breakdown": breakdown(obj),
               "loadavg": os.getloadavg(), "cpus": os.cpu_count()}
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    if a.json:
        print(json.dumps(out, indent=2))
        return 0
    b = out["bench"]
    print(f"object {obj}, {b['runs']} alternating runs, load average {out['loadavg'][0]:.2f} on {out['cpus']} CPUs")
    print(f"{'':<10}{'pybpfgen':>12}{'bpftool':>12}{'ratio':>8}")
    for k in ("load", "unload"):
        print(f"{k:<10}{b['median_s']['pybpfgen_' + k]:>11.3f}s{b['median_s']['bpftool_' + k]:>11.3f}s"
              f"{b['ratio_' + k]:>7.2f}x")
    print(f"{'total':<10}{'':>12}{'':>12}{b['ratio_total']:>7.2f}x")
    bd = out["breakdown"]
    print(f"breakdown (in-process, one run): interpreter start {bd['interpreter_start_ms']} ms, "
          f"kernel_loader imports {bd['import_ms']} ms, parse {bd['parse_ms']} ms, load {bd['load_ms']} ms, "
          f"unload {bd['unload_ms']} ms; pyelftools import (with start) {bd['pyelftools_import_incl_start_ms']} ms")
    print("load phases (ms): " + ", ".join(f"{n} {ms}" for n, ms in bd["load_phases_ms"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
