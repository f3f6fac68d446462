#!/usr/bin/env python3
"""Compile time: `pybpfgen compile programs/` vs `clang-19 -O2 -g -target bpf -c` on the C twin(s).

    .venv/bin/python bench/compile_bench.py [--runs N] [--json] [--programs PATH] [--c FILE ...]

Pairing: clang compiles the C twins of the modules being compiled: for each ``<module>.py`` under
``--programs`` (a directory or one file), ``bench/twin/<module>.bpf.c`` when it exists (programs/accel.py
-> bench/twin/accel.bpf.c, issue #3); when no module has a twin there, every ``bench/twin/*.bpf.c`` (the
earlier behaviour). ``--c FILE ...`` names the C files explicitly (``--c bench/twin/accel_twin.bpf.c``:
the seed design's twin, as measured before issue #3).

Per round (rounds interleave the three so that machine noise hits them alike):

- clang:  ``clang-19 -O2 -g -target bpf -mcpu=v3 -c <twin>.bpf.c`` (v3, the ISA pybpfgen targets) (one process per file, summed);
- cold:   ``pybpfgen compile programs/ -o <fresh dir> -q`` (nothing cached: a full build);
- no-op:  the same command again on the directory just built (everything up to date).

Medians over the rounds, and ratios to clang. Goals: cold <= 2.5x clang, no-op <= 0.5x clang.
Also reports the interpreter's own start-up (``python -c pass``) and a phase breakdown of one cold
build (``pybpfgen compile --timings``).

Bytecode: this development VM sets PYTHONDONTWRITEBYTECODE=1, which makes every Python process
recompile every module it imports (~100 ms for pybpfgen + llvmlite). Installed packages always have
their bytecode cached, so the benchmark runs pybpfgen with PYTHONDONTWRITEBYTECODE unset and
PYTHONPYCACHEPREFIX pointing at a private directory (warmed by an untimed run; the repository stays
clean); ``--no-bytecode-cache`` measures the VM's setting instead.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
GOAL_COLD, GOAL_NOOP = 2.5, 0.5


def timed(argv: list[str], env: dict | None = None) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    dt = time.perf_counter() - t0
    if r.returncode:
        sys.exit(f"failed ({r.returncode}): {' '.join(argv)}\n{r.stderr}")
    return dt


def pybpfgen_cmd() -> list[str]:
    """The installed console script if there is one (what users run), else ``python -m pybpfgen``."""
    script = os.path.join(os.path.dirname(sys.executable), "pybpfgen")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "pybpfgen"]


def phases(cmd: list[str], programs: str, env: dict, tmp: str) -> dict[str, float]:
    r = subprocess.run(cmd + ["compile", programs, "-o", os.path.join(tmp, "phases"), "-q", "--force", "--timings"],
                       env=env, capture_output=True, text=True)
    out: dict[str, float] = {}
    for m in re.finditer(r"^\s+(.+?):\s+([\d.]+) ms$", r.stderr, re.M):
        out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
    return out


def c_twins(programs: str, explicit: list[str] | None) -> list[str]:
    """The C files paired with ``programs`` (see the module docstring)."""
    if explicit:
        return [os.path.abspath(c) for c in explicit]
    mods = [programs] if programs.endswith(".py") else sorted(glob.glob(os.path.join(programs, "*.py")))
    paired = [t for t in (os.path.join(HERE, "twin", os.path.basename(m)[:-3] + ".bpf.c") for m in mods)
              if os.path.isfile(t)]
    return paired or sorted(glob.glob(os.path.join(HERE, "twin", "*.bpf.c")))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=9, help="rounds (default 9)")
    ap.add_argument("--programs", default=os.path.join(ROOT, "programs"),
                    help="what pybpfgen compiles: a directory or a .py file (default programs/)")
    ap.add_argument("--c", nargs="+", metavar="FILE", default=None,
                    help="the C files clang compiles (default: bench/twin/<module>.bpf.c for each module of "
                         "--programs, else every bench/twin/*.bpf.c)")
    ap.add_argument("--no-bytecode-cache", action="store_true",
                    help="keep PYTHONDONTWRITEBYTECODE from the environment (every import recompiles)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    clang = shutil.which("clang-19")
    twins = c_twins(args.programs, args.c)
    if not clang or not twins:
        sys.exit("needs clang-19 and bench/twin/*.bpf.c")
    missing = [t for t in twins if not os.path.isfile(t)]
    if missing:
        sys.exit(f"no such C file: {', '.join(missing)}")
    cmd = pybpfgen_cmd()
    tmp = tempfile.mkdtemp(prefix="pybpfgen-compile-bench-")
    env = dict(os.environ)
    if not args.no_bytecode_cache:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = os.path.join(tmp, "pycache")
    try:
        def clang_all() -> float:
            return sum(timed([clang, "-O2", "-g", "-target", "bpf", "-mcpu=v3", "-I/usr/include/x86_64-linux-gnu", "-c", c,
                              "-o", os.path.join(tmp, os.path.basename(c)[:-2] + ".o")]) for c in twins)

        # warm up: bytecode cache, page cache, clang's first run
        clang_all()
        timed(cmd + ["compile", args.programs, "-o", os.path.join(tmp, "warm"), "-q"], env)
        timed([sys.executable, "-c", "pass"], env)

        rows = {"clang": [], "cold": [], "noop": [], "python -c pass": []}
        for i in range(args.runs):
            out = os.path.join(tmp, f"run{i}")
            rows["clang"].append(clang_all())
            rows["cold"].append(timed(cmd + ["compile", args.programs, "-o", out, "-q"], env))
            rows["noop"].append(timed(cmd + ["compile", args.programs, "-o", out, "-q"], env))
            rows["python -c pass"].append(timed([sys.executable, "-c", "pass"], env))
            print(f"round {i + 1}/{args.runs}: clang {rows['clang'][-1] * 1e3:.0f} ms, cold "
                  f"{rows['cold'][-1] * 1e3:.0f} ms, no-op {rows['noop'][-1] * 1e3:.0f} ms", file=sys.stderr)
        med = {k: statistics.median(v) for k, v in rows.items()}
        res = {
            "command": " ".join(os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in cmd)
                       + f" compile {os.path.relpath(args.programs, ROOT)}",
            "clang_command": f"clang-19 -O2 -g -target bpf -mcpu=v3 -c ({', '.join(os.path.basename(t) for t in twins)})",
            "c_files": [os.path.relpath(t, ROOT) if t.startswith(ROOT) else t for t in twins],
            "runs": args.runs,
            "bytecode_cache": not args.no_bytecode_cache,
            "median_ms": {k: round(v * 1e3, 1) for k, v in med.items()},
            "ratio_cold": round(med["cold"] / med["clang"], 2),
            "ratio_noop": round(med["noop"] / med["clang"], 2),
            "goals": {"cold": GOAL_COLD, "noop": GOAL_NOOP},
            "phases_ms": {k: round(v, 1) for k, v in phases(cmd, args.programs, env, tmp).items()},
        }
        res["meets_goals"] = {"cold": res["ratio_cold"] <= GOAL_COLD, "noop": res["ratio_noop"] <= GOAL_NOOP}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    if args.json:
        print(json.dumps(res, indent=2))
        return 0
    m = res["median_ms"]
    print(f"pybpfgen compile time ({res['runs']} rounds, medians; bytecode cache "
          f"{'on' if res['bytecode_cache'] else 'off'})")
    print(f"  clang-19 (C twin):       {m['clang']:7.1f} ms   ({', '.join(res['c_files'])})")
    print(f"  pybpfgen cold build:     {m['cold']:7.1f} ms   {res['ratio_cold']:.2f}x clang (goal <= {GOAL_COLD})")
    print(f"  pybpfgen no-op rebuild:  {m['noop']:7.1f} ms   {res['ratio_noop']:.2f}x clang (goal <= {GOAL_NOOP})")
    print(f"  python -c pass:          {m['python -c pass']:7.1f} ms   (interpreter start-up floor)")
    print("  phases of one cold build (in-process, ms): "
          + ", ".join(f"{k} {v:.1f}" for k, v in res["phases_ms"].items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
