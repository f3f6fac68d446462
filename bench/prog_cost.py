#!/usr/bin/env python3
"""Per-message cost of the sk_msg program: programs/accel.py vs the seed's design (bench/twin/accel_twin.py).

    sudo .venv/bin/python bench/prog_cost.py [--rounds 3] [--seconds 2] [--json]

Each object is compiled with pybpfgen and loaded into a private child cgroup and pin root; a sockperf ping-pong on
loopback (server pinned to CPU 0, client to CPU 1) runs inside the cgroup on a policy port, and
`pybpfgen status --stats --interval S` measures, with the kernel's BPF run-time statistics enabled only for that
interval, how often each program ran and its average run time (``run_time_ns / run_cnt``, which includes the
helpers it calls: the map lookups and the redirect). Objects alternate round by round; medians are printed.

The accelerator's sk_msg program pays for namespace-safe 48-byte socket identities (one lookup of its own state,
the redirect, one lookup of its peer's state); the seed's design builds a 16-byte 4-tuple key and redirects.
"""
from __future__ import annotations

import argparse
import json
import os
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
}


def log(msg: str) -> None:
    print(f"[prog-cost {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def compile_all(out: Path) -> dict[str, Path]:
    objs = {}
    for name, (src, _) in OBJECTS.items():
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
            return {p["name"]: {"run_cnt": p["stats"]["run_cnt"], "avg_ns": p["stats"]["avg_ns"]}
                    for p in st["programs"]}
        finally:
            for p in procs:
                kh.kill_proc(p)
            kl.unload(loaded.name, pin_root=str(pr))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0, help="stats interval per measurement (default 2)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("prog_cost.py: needs root (BPF, cgroups)")
    with tempfile.TemporaryDirectory(prefix="pybpfgen-bench-") as tmp:
        objs = compile_all(Path(tmp))
        rows: dict[str, list[dict]] = {n: [] for n in objs}
        for rnd in range(a.rounds):
            for name, obj in objs.items():
                m = measure(obj, OBJECTS[name][1], a.seconds)["accel_redirect"]
                log(f"round {rnd + 1}/{a.rounds} {name:10} sk_msg {m['avg_ns']} ns/message ({m['run_cnt']} runs)")
                rows[name].append(m)
    res = {n: {"avg_ns_median": statistics.median(r["avg_ns"] for r in v), "avg_ns": [r["avg_ns"] for r in v]}
           for n, v in rows.items()}
    if a.json:
        print(json.dumps({"bench": "prog_cost", "rounds": a.rounds, "seconds": a.seconds, "result": res}, indent=2))
        return 0
    print(f"sk_msg program run time per message (sockperf ping-pong on loopback, median of {a.rounds} rounds)")
    for n, r in res.items():
        print(f"  {n:10} {r['avg_ns_median']:7.1f} ns   (rounds: {', '.join(f'{x:.0f}' for x in r['avg_ns'])})")
    base = res["seed-twin"]["avg_ns_median"]
    print(f"  accel / seed-twin: {res['accel']['avg_ns_median'] / base:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
