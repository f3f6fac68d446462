#!/usr/bin/env python3
"""Per-message cost of the sk_msg program: programs/accel.py vs the seed's design (bench/twin/accel_twin.py).

    sudo .venv/bin/python bench/prog_cost.py [--rounds 3] [--seconds 2] [--objects accel,seed-twin] [--json]
    sudo .venv/bin/python bench/prog_cost.py --objects accel,accel-c,seed-twin   # + the C twin of programs/accel.py

Each object is compiled (pybpfgen for a .py source, clang-19 -O2 -g -mcpu=v3 for a C twin) and loaded into a
private child cgroup and pin root; a sockperf ping-pong on loopback (server pinned to CPU 0, client to CPU 1) runs inside the cgroup on a policy port, and
`pybpfgen status --stats --interval S` measures, with the kernel's BPF run-time statistics enabled only for that
interval, how often each program ran and its average run time (``run_time_ns / run_cnt``, which includes the
helpers it calls: the map lookups and the redirect). Objects alternate round by round; medians are printed.

The accelerator's sk_msg program looks up its socket-local state (the socket's storage cache: no hashing), its
connection's `links` slot (an array index, inlined) and redirects with the 8-byte cookie key; the seed's design
builds a 16-byte 4-tuple key and redirects (docs/accel-design.md).
"""
from __future__ import annotations

import argparse
import json
import os
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
OBJECTS = {  # name: (source, policy port map)
    "accel": (REPO / "programs" / "accel.py", "policy_ports"),
    "seed-twin": (REPO / "bench" / "twin" / "accel_twin.py", "accel_ports"),
    # C twins, built with clang-19 (a yardstick: the same design without pybpfgen's code generation)
    "accel-c": (REPO / "bench" / "twin" / "accel.bpf.c", "policy_ports"),
    "seed-twin-c": (REPO / "bench" / "twin" / "accel_twin.bpf.c", "accel_ports"),
}


def log(msg: str) -> None:
    print(f"[prog-cost {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def compile_all(out: Path, names: list[str]) -> dict[str, Path]:
    objs = {}
    for name in names:
        src = OBJECTS[name][0]
        if src.suffix == ".c":
            clang = shutil.which("clang-19") or shutil.which("clang")
            if not clang:
                raise SystemExit(f"prog_cost.py: {name} needs clang-19 (apt-get install clang-19)")
            obj = out / f"{name}.bpf.o"
            subprocess.run([clang, "-O2", "-g", "-target", "bpf", "-mcpu=v3",
                            f"-I/usr/include/{os.uname().machine}-linux-gnu", "-c", str(src), "-o", str(obj)],
                           check=True)
            objs[name] = obj
            continue
        subprocess.run([*PBG, "compile", str(src), "-o", str(out), "-q"], check=True)
        objs[name] = out / (src.stem + ".bpf.o")
    return objs


def measure(obj: Path, policy_map: str, seconds: float) -> dict[str, dict]:
    """{program: {"run_cnt", "avg_ns"}} over one stats interval of a running ping-pong."""
    import kernel_loader as kl
    with kh.child_cgroup("pybpfgen-bench") as cg, kh.private_pin_root("pybpfgen-bench") as pr:
        (loaded,) = kl.load(str(obj), cgroup=str(cg), pin_root=str(pr))
        procs = []
        try:
            port = kh.free_port()
            with kl.open_pinned(loaded.name, pin_root=str(pr)) as o:
                o.map(policy_map).update(struct.pack("I", port), struct.pack("I", 1))
            procs.append(kh.spawn(["taskset", "-c", "0", "sockperf", "sr", "--tcp", "-i", "127.0.0.1", "-p",
                                   str(port)], cgroup=cg, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(0.5)
            procs.append(kh.spawn(["taskset", "-c", "1", "sockperf", "pp", "--tcp", "-i", "127.0.0.1", "-p",
                                   str(port), "-t", str(seconds + 3)], cgroup=cg,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            time.sleep(1.0)  # warm-up
            r = subprocess.run([*PBG, "status", loaded.name, "--stats", "--interval", str(seconds), "--json",
                                "--pin-root", str(pr)], capture_output=True, text=True, check=True)
            (st,) = json.loads(r.stdout)["objects"]
            out = {p["name"]: {"run_cnt": p["stats"]["run_cnt"], "avg_ns": p["stats"]["avg_ns"]}
                   for p in st["programs"]}
            # the accelerators count redirected messages (the seed's design has no counters): a design that stopped
            # redirecting would look cheap, so say how many it redirected
            counters = next((m["values"][0] for m in st["maps"] if m.get("pin_name") == "stats" and m.get("values")),
                            None)
            out["accel_redirect"]["redirected"] = counters.get("redirected") if counters else None
            return out
        finally:
            for p in procs:
                kh.kill_proc(p)
            kl.unload(loaded.name, pin_root=str(pr))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0, help="stats interval per measurement (default 2)")
    ap.add_argument("--objects", default="accel,seed-twin",
                    help=f"comma-separated, measured in this order each round (of: {', '.join(OBJECTS)}); "
                         "ratios are against seed-twin (default: accel,seed-twin)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    names = [n.strip() for n in a.objects.split(",") if n.strip()]
    unknown = [n for n in names if n not in OBJECTS]
    if unknown or "seed-twin" not in names:
        raise SystemExit(f"prog_cost.py: --objects: {', '.join(unknown) or 'seed-twin missing'} "
                         f"(choose from {', '.join(OBJECTS)}; seed-twin is the baseline and must be included)")
    if os.geteuid() != 0:
        raise SystemExit("prog_cost.py: needs root (BPF, cgroups)")
    with tempfile.TemporaryDirectory(prefix="pybpfgen-bench-") as tmp:
        objs = compile_all(Path(tmp), names)
        rows: dict[str, list[dict]] = {n: [] for n in objs}
        for rnd in range(a.rounds):
            for name, obj in objs.items():
                m = measure(obj, OBJECTS[name][1], a.seconds)["accel_redirect"]
                log(f"round {rnd + 1}/{a.rounds} {name:11} sk_msg {m['avg_ns']} ns/message ({m['run_cnt']} runs"
                    f"{'' if m['redirected'] is None else ', ' + str(m['redirected']) + ' redirected'})")
                if not m["run_cnt"]:
                    raise SystemExit(f"prog_cost.py: {name}: the sk_msg program did not run (sockperf failed to start "
                                     "on a busy machine?): run again")
                rows[name].append(m)
    res = {n: {"avg_ns_median": statistics.median(r["avg_ns"] for r in v), "avg_ns": [r["avg_ns"] for r in v]}
           for n, v in rows.items()}
    if a.json:
        print(json.dumps({"bench": "prog_cost", "rounds": a.rounds, "seconds": a.seconds, "result": res}, indent=2))
        return 0
    print(f"sk_msg program run time per message (sockperf ping-pong on loopback, median of {a.rounds} rounds)")
    for n, r in res.items():
        print(f"  {n:11} {r['avg_ns_median']:7.1f} ns   (rounds: {', '.join(f'{x:.0f}' for x in r['avg_ns'])})")
    base = res["seed-twin"]["avg_ns_median"]
    for n, r in res.items():
        if n != "seed-twin":
            print(f"  {n} / seed-twin: {r['avg_ns_median'] / base:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
