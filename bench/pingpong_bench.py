#!/usr/bin/env python3
"""64-byte ping-pong round trip: AF_UNIX socketpair (the floor) vs TCP on loopback, kernel path and accelerated.

    sudo .venv/bin/python bench/pingpong_bench.py [--rounds 6] [--iters 100000] [--json]

Builds ../shared/reference/pingpong.c (or --source) with gcc, then per round, in alternating order:
  unix      ``pingpong unix N``: a socketpair, no TCP at all
  kernel    ``pingpong tcp N 127.0.0.1 P`` in a private child cgroup with nothing attached
  accel     the same with programs/accel.py (pybpfgen) loaded into that cgroup and P in its policy
  seed-twin (--seed-twin) the same with the seed design (bench/twin/accel_twin.py) loaded instead
Prints the median round trip per mode (µs) and accel / unix (issue 13: within 1.05×). The machine is shared:
compare ratios of one run, never absolutes. Everything created is removed on exit.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "kernel"))
import kharness as kh  # noqa: E402

PBG = [sys.executable, "-c", "import sys; from pybpfgen.cli import main; sys.exit(main())"]
OBJECTS = {"accel": (REPO / "programs" / "accel.py", "policy_ports"),
           "seed-twin": (REPO / "bench" / "twin" / "accel_twin.py", "accel_ports")}


def log(msg: str) -> None:
    print(f"[pingpong {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_pingpong(binary: Path, argv: list[str], cgroup: Path | None) -> float:
    p = kh.spawn([str(binary), *argv], cgroup=cgroup, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out, err = p.communicate(timeout=120)
    finally:
        kh.kill_proc(p)
    m = re.search(r"rtt_us=([\d.]+)", out)
    if p.returncode or not m:
        raise RuntimeError(f"pingpong {' '.join(argv)} failed (rc {p.returncode}): {err.strip() or out.strip()}")
    return float(m.group(1))


def measure(mode: str, binary: Path, objs: dict[str, Path], iters: int) -> float:
    if mode == "unix":
        return run_pingpong(binary, ["unix", str(iters)], None)
    import kernel_loader as kl
    with kh.child_cgroup("pybpfgen-bench") as cg:
        port = kh.free_port()
        argv = ["tcp", str(iters), "127.0.0.1", str(port)]
        if mode == "kernel":
            return run_pingpong(binary, argv, cg)
        with kh.private_pin_root("pybpfgen-bench") as pr:
            (loaded,) = kl.load(str(objs[mode]), cgroup=str(cg), pin_root=str(pr))
            try:
                with kl.open_pinned(loaded.name, pin_root=str(pr)) as o:
                    o.map(OBJECTS[mode][1]).update(struct.pack("I", port), struct.pack("I", 1))
                return run_pingpong(binary, argv, cg)
            finally:
                kl.unload(loaded.name, pin_root=str(pr))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--iters", type=int, default=100000, help="round trips per measurement (default 100000)")
    ap.add_argument("--source", type=Path, default=REPO.parent / "shared" / "reference" / "pingpong.c")
    ap.add_argument("--seed-twin", action="store_true", help="also measure the seed design (bench/twin/accel_twin.py)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("pingpong_bench.py: needs root (BPF, cgroups)")
    if not a.source.is_file():
        raise SystemExit(f"pingpong_bench.py: {a.source}: no such file (pass --source PATH to pingpong.c)")
    gcc = shutil.which("gcc") or shutil.which("cc")
    if not gcc:
        raise SystemExit("pingpong_bench.py: needs gcc (apt-get install gcc)")
    modes = ["unix", "kernel", "accel"] + (["seed-twin"] if a.seed_twin else [])
    with tempfile.TemporaryDirectory(prefix="pybpfgen-bench-") as tmp:
        binary = Path(tmp) / "pingpong"
        subprocess.run([gcc, "-O2", "-o", str(binary), str(a.source)], check=True)
        objs = {}
        for name in modes[2:]:
            src = OBJECTS[name][0]
            subprocess.run([*PBG, "compile", str(src), "-o", tmp, "-q"], check=True)
            objs[name] = Path(tmp) / (src.stem + ".bpf.o")
        rows: dict[str, list[float]] = {m: [] for m in modes}
        for rnd in range(a.rounds):
            for m in (modes if rnd % 2 == 0 else list(reversed(modes))):
                rows[m].append(measure(m, binary, objs, a.iters))
                log(f"round {rnd + 1}/{a.rounds} {m:9} {rows[m][-1]:.3f} us")
    med = {m: statistics.median(v) for m, v in rows.items()}
    if a.json:
        print(json.dumps({"bench": "pingpong", "rounds": a.rounds, "iters": a.iters, "median_us": med,
                          "rounds_us": rows}, indent=2))
        return 0
    print(f"64-byte ping-pong round trip (median of {a.rounds} alternating rounds, {a.iters} round trips each)")
    for m in modes:
        print(f"  {m:9} {med[m]:8.3f} us   (rounds: {', '.join(f'{x:.2f}' for x in rows[m])})")
    for m in modes[1:]:
        print(f"  {m} / unix: {med[m] / med['unix']:.3f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
