#!/usr/bin/env python3
"""redis-benchmark GET/SET latency: kernel path vs the pybpfgen accelerator (vs the C twin).

Setup (entirely inside a network namespace and a child cgroup that this script creates and deletes):
  a redis-server on 127.0.0.1:PORT in the namespace (no persistence: --save '' --appendonly no), and
  redis-benchmark in the same namespace, both in the private child cgroup, pinned to two CPUs.

Modes (alternating order, round after round, so drift hits all modes alike):
  kernel    nothing attached: the plain TCP stack
  accel     build/accel.bpf.o (or `pybpfgen compile programs`) loaded with `pybpfgen load` into the child
            cgroup, `pybpfgen policy add --port PORT` (private pin root; unloaded after each measurement set)
  c-twin    (--c-twin) bench/twin/accel_twin.bpf.c built with clang-19, loaded with bpftool

Each measurement: `redis-benchmark -t get,set -c C -n N --csv` for C in --clients (default 1,50); the
accelerator's counters (redirected / missed / paired / demoted) are read around it. Output: a table of p50 / p99
/ rps per command, client count and mode (median over rounds) with the ratio to the kernel path; --json prints
everything. Progress on stderr. Namespace, cgroup, pins and processes are removed on exit (also Ctrl-C).

Example:  python3 bench/redis_bench.py --rounds 3 --requests 100000 --c-twin
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "kernel"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import kharness as kh  # noqa: E402
from sockperf_bench import AccelMode, make_modes, pinned  # noqa: E402

PROCS: list[subprocess.Popen] = []


def log(msg: str) -> None:
    print(f"[redis-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def read_counters(stats_id: int | None) -> dict | None:
    """All AccelStats counters (the C twin has none: None)."""
    return kh.read_stats(stats_id) if stats_id else None


def parse_csv(out: str) -> dict:
    rows = {}
    for r in csv.DictReader(io.StringIO(out)):
        rows[r["test"].lower()] = {"rps": float(r["rps"]), "avg": float(r["avg_latency_ms"]) * 1000,
                                   "p50": float(r["p50_latency_ms"]) * 1000, "p99": float(r["p99_latency_ms"]) * 1000,
                                   "max": float(r["max_latency_ms"]) * 1000}
    if not rows:
        raise RuntimeError(f"cannot parse redis-benchmark output:\n{out[-1500:]}")
    return rows


def wait_redis(netns: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = subprocess.run(["ip", "netns", "exec", netns, "redis-cli", "-h", "127.0.0.1", "-p", str(port), "ping"],
                           capture_output=True, text=True)
        if r.stdout.strip() == "PONG":
            return
        time.sleep(0.1)
    raise TimeoutError(f"redis-server did not answer on 127.0.0.1:{port} in {netns}")


def run_benchmark(ns: str, cg: Path, port: int, clients: int, requests: int, cpu: int | None) -> dict:
    cmd = pinned(["redis-benchmark", "-h", "127.0.0.1", "-p", str(port), "-t", "get,set", "-c", str(clients),
                  "-n", str(requests), "--csv", "--precision", "3"], cpu)
    p = kh.spawn(cmd, cgroup=cg, netns=ns, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    PROCS.append(p)
    try:
        out, err = p.communicate(timeout=300)
    finally:
        kh.kill_proc(p)
    if p.returncode != 0:
        raise RuntimeError(f"redis-benchmark rc={p.returncode}: {err[-1500:]}")
    return parse_csv(out)


class RedisAccelMode(AccelMode):
    def counters(self):
        return read_counters(self.stats_id)


def summarize(results: list[dict], modes: list[str]) -> dict:
    summary: dict = {}
    keys = sorted({(r["command"], r["clients"]) for r in results})
    for cmd, clients in keys:
        per: dict = {}
        for mode in modes:
            rows = [r for r in results if (r["command"], r["clients"], r["mode"]) == (cmd, clients, mode)]
            if rows:
                per[mode] = {k: statistics.median(r[k] for r in rows) for k in ("p50", "p99", "avg", "rps")}
                per[mode]["rounds"] = len(rows)
        base = per.get("kernel")
        for mode, s in per.items():
            if mode != "kernel" and base:
                s["ratio_vs_kernel"] = {k: round(s[k] / base[k], 3) if base[k] else None
                                        for k in ("p50", "p99", "avg", "rps")}
                s["p99_improvement_pct"] = round(100 * (1 - s["p99"] / base["p99"]), 1) if base["p99"] else None
        summary[f"{cmd} c={clients}"] = per
    return summary


def print_table(summary: dict, args) -> None:
    print(f"redis-benchmark (redis-server on 127.0.0.1 in a private netns + cgroup), {args.rounds} round(s) x "
          f"{args.requests} requests per command; latency in usec (median over rounds)")
    hdr = (f"{'test':12} {'mode':8} {'p50':>8} {'p99':>8} {'avg':>8} {'rps':>10}   {'p50/kern':>8} {'p99/kern':>8} "
           f"{'rps/kern':>8} {'p99 gain':>8}")
    print(hdr)
    print("-" * len(hdr))
    for test, per in summary.items():
        for mode, s in per.items():
            rat = s.get("ratio_vs_kernel")
            rs = (f"{rat['p50']:8.3f} {rat['p99']:8.3f} {rat['rps']:8.3f} {s['p99_improvement_pct']:7.1f}%"
                  if rat else "")
            print(f"{test:12} {mode:8} {s['p50']:8.1f} {s['p99']:8.1f} {s['avg']:8.1f} {s['rps']:10.0f}   {rs}")


def _on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    ap.add_argument("--requests", type=int, default=100000, help="redis-benchmark -n per command (default 100000)")
    ap.add_argument("--clients", default="1,50", help="comma list of redis-benchmark -c values (default 1,50)")
    ap.add_argument("--modes", default="kernel,accel", help="comma list of kernel,accel (default both)")
    ap.add_argument("--c-twin", action="store_true", help="also measure the C reference twin (clang-19 + bpftool)")
    ap.add_argument("--obj", type=Path, help="compiled accel.bpf.o (default: `pybpfgen compile programs` to a temp dir)")
    ap.add_argument("--port", type=int, default=0, help="redis port (default: random, outside the ephemeral range)")
    ap.add_argument("--cpus", default="auto", help="SERVER,CLIENT cpus for taskset; auto = 0,1 when there are 2+ "
                                                   "CPUs; none")
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = ap.parse_args(argv)

    modes = [m for m in args.modes.split(",") if m]
    if args.c_twin and "c-twin" not in modes:
        modes.append("c-twin")
    for m in modes:
        if m not in ("kernel", "accel", "c-twin"):
            ap.error(f"unknown mode {m}")
    try:
        clients = [int(c) for c in args.clients.split(",") if c]
    except ValueError:
        ap.error("--clients wants a comma list of numbers")
    if os.geteuid() != 0:
        ap.error("must run as root (network namespaces, cgroups, BPF)")
    for tool in ("redis-server", "redis-benchmark", "redis-cli", "ip") + (("bpftool",) if "c-twin" in modes else ()):
        if not shutil.which(tool):
            ap.error(f"{tool} not installed (run scripts/setup.sh)")
    cpus = None
    if args.cpus == "auto":
        avail = sorted(os.sched_getaffinity(0))
        cpus = (avail[0], avail[1]) if len(avail) >= 2 and shutil.which("taskset") else None
    elif args.cpus != "none":
        try:
            a, b = (int(x) for x in args.cpus.split(","))
        except ValueError:
            ap.error("--cpus wants SERVER,CLIENT, auto or none")
        cpus = (a, b)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)
    port = args.port or kh.free_port()
    results: list[dict] = []
    loaded: list = []
    with contextlib.ExitStack() as stack:
        try:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pybpfgen-bench-")))
            cg = stack.enter_context(kh.child_cgroup("pybpfgen-bench"))
            pins = stack.enter_context(kh.private_pin_root("pybpfgen-bench"))
            ns = stack.enter_context(kh.netns_pair("pbg"))
            log(f"cgroup {cg}, pins {pins}, netns {ns.a}, port {port}, cpus (server, client) {cpus}")
            impl = make_modes(modes, args.obj, cg, pins, port, tmp, accel_mode=RedisAccelMode)
            server = kh.spawn(pinned(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--protected-mode", "no", "--daemonize", "no",
                                      "--dir", str(tmp), "--logfile", ""], cpus[0] if cpus else None),
                              cgroup=cg, netns=ns.a, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            PROCS.append(server)
            wait_redis(ns.a, port)
            for rnd in range(args.rounds):
                order = modes if rnd % 2 == 0 else list(reversed(modes))
                for mode in order:
                    m = impl[mode]
                    m.load()
                    loaded.append(m)
                    try:
                        for c in clients:
                            log(f"round {rnd + 1}/{args.rounds} {mode:7} -c {c} ...")
                            c0 = m.counters()
                            rows = run_benchmark(ns.a, cg, port, c, args.requests, cpus[1] if cpus else None)
                            c1 = m.counters()
                            ctr = ({k: c1[k] - c0[k] for k in c1} if c0 is not None and c1 is not None else None)
                            if ctr is not None and ctr.get("redirected", 0) == 0:
                                log(f"WARNING: {mode} redirected nothing")
                            for cmd, r in rows.items():
                                r.update(round=rnd + 1, mode=mode, clients=c, command=cmd, counters=ctr)
                                results.append(r)
                                log(f"  {cmd:4} p50 {r['p50']:.1f}  p99 {r['p99']:.1f} usec  {r['rps']:.0f} rps")
                            if ctr:
                                log(f"  counters {ctr}")
                    finally:
                        m.unload()
                        loaded.remove(m)
        except KeyboardInterrupt:
            log("interrupted: cleaning up")
            return 130
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            for m in loaded:
                with contextlib.suppress(Exception):
                    m.unload()
            for p in PROCS:
                kh.kill_proc(p)
    summary = summarize(results, modes)
    if args.json:
        print(json.dumps({"bench": "redis", "params": {"rounds": args.rounds, "requests": args.requests, "clients": clients,
                                     "port": port, "modes": modes, "cpus": cpus, "kernel": os.uname().release},
                          "summary": summary, "results": results}, indent=2))
    else:
        print_table(summary, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
