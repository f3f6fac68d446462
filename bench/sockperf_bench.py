#!/usr/bin/env python3
"""sockperf TCP ping-pong latency: kernel path vs the pybpfgen accelerator (vs the C twin).

Setups (both entirely inside network namespaces this script creates and deletes):
  veth      server in netns A on 198.18.0.1, client in netns B -> 198.18.0.1 (veth pair)
  loopback  server and client in netns A on 127.0.0.1

Modes (measured in alternating order, round after round, so drift hits all modes alike):
  kernel    nothing attached: the plain TCP stack
  accel     build/accel.bpf.o loaded with `pybpfgen load` into a private child cgroup,
            `pybpfgen policy add --port P` (private pin root; unloaded after each round)
  c-twin    (--c-twin) bench/twin/accel_twin.bpf.c built with clang-19 and loaded with
            bpftool into the same child cgroup (reference yardstick)

All sockperf processes run inside the private child cgroup, so nothing outside it is affected.
Output: a table of avg/p50/p99 (usec, median over rounds) per setup and mode, and the ratio
mode/kernel; --json prints everything (including each round) as JSON instead. Progress goes to
stderr. Namespaces, cgroup, pins and processes are removed on exit, including on Ctrl-C.

Example:  python3 bench/sockperf_bench.py --rounds 3 --seconds 3 --c-twin
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
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
import kharness as kh  # noqa: E402

ANSI = re.compile(r"\x1b\[[0-9;]*m")
PROCS: list[subprocess.Popen] = []


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse_sockperf(out: str) -> dict:
    out = ANSI.sub("", out)
    m_avg = re.search(r"avg-latency=([\d.]+)", out)
    m_p50 = re.search(r"percentile 50\.000 =\s*([\d.]+)", out)
    m_p99 = re.search(r"percentile 99\.000 =\s*([\d.]+)", out)
    m_obs = re.search(r"Total (\d+) observations", out)
    if not (m_avg and m_p50 and m_p99):
        raise RuntimeError(f"cannot parse sockperf output:\n{out[-1500:]}")
    return {"avg": float(m_avg.group(1)), "p50": float(m_p50.group(1)), "p99": float(m_p99.group(1)),
            "observations": int(m_obs.group(1)) if m_obs else None}


def wait_listening(netns: str, port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = subprocess.run(["ip", "netns", "exec", netns, "ss", "-Hltn", f"sport = :{port}"],
                           capture_output=True, text=True)
        if r.stdout.strip():
            return
        time.sleep(0.05)
    raise TimeoutError(f"sockperf server did not listen on :{port} in {netns}")


def pinned(argv: list[str], cpu: int | None) -> list[str]:
    return ["taskset", "-c", str(cpu), *argv] if cpu is not None else argv


def measure(setup: str, ns: kh.NetnsPair, cg: Path, port: int, seconds: float, msg_size: int | None,
            cpus: tuple[int, int] | None = None) -> dict:
    if setup == "veth":
        srv_ns, cli_ns, ip = ns.a, ns.b, ns.ip_a
    else:
        srv_ns, cli_ns, ip = ns.a, ns.a, "127.0.0.1"
    srv_cpu, cli_cpu = cpus if cpus else (None, None)
    server = kh.spawn(pinned(["sockperf", "sr", "--tcp", "-i", ip, "-p", str(port)], srv_cpu), cgroup=cg, netns=srv_ns,
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    PROCS.append(server)
    try:
        wait_listening(srv_ns, port)
        cmd = ["sockperf", "pp", "--tcp", "-i", ip, "-p", str(port), "-t", str(seconds)]
        if msg_size:
            cmd += ["-m", str(msg_size)]
        client = kh.spawn(pinned(cmd, cli_cpu), cgroup=cg, netns=cli_ns, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        PROCS.append(client)
        try:
            out, _ = client.communicate(timeout=seconds + 30)
        finally:
            kh.kill_proc(client)
        if client.returncode != 0:
            raise RuntimeError(f"sockperf client rc={client.returncode}:\n{out[-1500:]}")
        return parse_sockperf(out)
    finally:
        kh.kill_proc(server)


class Mode:
    name = "?"

    def load(self):
        pass

    def unload(self):
        pass

    def counters(self):
        return None


class KernelMode(Mode):
    name = "kernel"

    def __init__(self, cg):
        self.cg = cg

    def load(self):
        attached = kh.cgroup_prog_ids(self.cg)
        if attached:
            raise RuntimeError(f"kernel mode but programs are attached to {self.cg}: {attached}")


class AccelMode(Mode):
    name = "accel"

    def __init__(self, obj: Path, cg: Path, pin_root: Path, port: int):
        self.obj, self.cg, self.port = obj, cg, port
        self.cli = kh.PybpfgenCLI(pin_root=pin_root)
        self.stats_id = None

    def load(self):
        self.cli.load(self.obj, self.cg)
        self.cli.policy_add(self.port)
        snap = kh.snapshot_accel(self.cg)
        self.stats_id = snap.map_ids.get("stats")

    def counters(self):
        return kh.read_stats(self.stats_id) if self.stats_id else None

    def unload(self):
        self.cli.unload("accel", check=False)
        self.stats_id = None


class TwinMode(Mode):
    name = "c-twin"

    def __init__(self, obj: Path, cg: Path, pin_root: Path, port: int):
        self.twin = kh.BpftoolTwin(obj, pin_root / "twin", cg)
        self.port = port

    def load(self):
        self.twin.load([self.port])

    def unload(self):
        self.twin.unload()


def make_modes(modes: list[str], obj, cg: Path, pins, port: int, tmp: Path, accel_mode=None) -> dict:
    """The measurement modes of a bench run (shared by sockperf_bench, redis_bench and iperf_bench).
    Removes "c-twin" from ``modes`` when clang is not installed."""
    impl: dict = {}
    if "kernel" in modes:
        impl["kernel"] = KernelMode(cg)
    if "accel" in modes:
        if obj is None:
            log("compiling programs/ with pybpfgen")
            obj = kh.PybpfgenCLI().compile(REPO / "programs", tmp / "build")
        impl["accel"] = (accel_mode or AccelMode)(Path(obj).resolve(), cg, pins, port)
    if "c-twin" in modes:
        if not (shutil.which("clang-19") or shutil.which("clang")):
            log("clang-19 not installed: skipping c-twin")
            modes.remove("c-twin")
        else:
            impl["c-twin"] = TwinMode(kh.build_c_twin(tmp), cg, pins, port)
    return impl


def summarize(results: list[dict], setups, modes) -> dict:
    summary: dict = {}
    for setup in setups:
        summary[setup] = {}
        for mode in modes:
            rows = [r for r in results if r["setup"] == setup and r["mode"] == mode]
            if not rows:
                continue
            summary[setup][mode] = {k: statistics.median(r[k] for r in rows) for k in ("avg", "p50", "p99")}
            summary[setup][mode]["rounds"] = len(rows)
        base = summary[setup].get("kernel")
        for mode in modes:
            if mode != "kernel" and base and mode in summary[setup]:
                summary[setup][mode]["ratio_vs_kernel"] = {
                    k: round(summary[setup][mode][k] / base[k], 3) for k in ("avg", "p50", "p99")}
    return summary


def print_table(summary: dict, args) -> None:
    print(f"sockperf ping-pong TCP, {args.rounds} round(s) x {args.seconds}s, latency in usec "
          f"(median over rounds; sockperf reports half the round trip)")
    hdr = f"{'setup':9} {'mode':8} {'avg':>8} {'p50':>8} {'p99':>8}   {'avg/kern':>8} {'p50/kern':>8} {'p99/kern':>8}"
    print(hdr)
    print("-" * len(hdr))
    for setup, per in summary.items():
        for mode, s in per.items():
            rat = s.get("ratio_vs_kernel")
            rs = (f"{rat['avg']:8.3f} {rat['p50']:8.3f} {rat['p99']:8.3f}" if rat else f"{'':8} {'':8} {'':8}")
            print(f"{setup:9} {mode:8} {s['avg']:8.3f} {s['p50']:8.3f} {s['p99']:8.3f}   {rs}")


def _on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    ap.add_argument("--seconds", type=float, default=3.0, help="sockperf run time per measurement (default 3)")
    ap.add_argument("--setups", default="veth,loopback", help="comma list of veth,loopback (default both)")
    ap.add_argument("--modes", default="kernel,accel", help="comma list of kernel,accel (default both)")
    ap.add_argument("--c-twin", action="store_true", help="also measure the C reference twin (clang-19 + bpftool)")
    ap.add_argument("--obj", type=Path, help="compiled accel.bpf.o (default: `pybpfgen compile programs` to a temp dir)")
    ap.add_argument("--port", type=int, default=0, help="TCP port (default: random, outside the ephemeral range)")
    ap.add_argument("--msg-size", type=int, help="sockperf -m message size")
    ap.add_argument("--cpus", default="auto",
                    help="SERVER,CLIENT cpu numbers to pin sockperf to with taskset; 'auto' = 0,1 when there are "
                         "at least 2 CPUs (same-vs-cross-CPU placement otherwise dominates the noise); 'none'")
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = ap.parse_args(argv)

    setups = [s for s in args.setups.split(",") if s]
    modes = [m for m in args.modes.split(",") if m]
    if args.c_twin and "c-twin" not in modes:
        modes.append("c-twin")
    for s in setups:
        if s not in ("veth", "loopback"):
            ap.error(f"unknown setup {s}")
    for m in modes:
        if m not in ("kernel", "accel", "c-twin"):
            ap.error(f"unknown mode {m}")
    if os.geteuid() != 0:
        ap.error("must run as root (network namespaces, cgroups, BPF)")
    for tool in ("sockperf", "ip", "ss") + (("bpftool",) if "c-twin" in modes else ()):
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
    loaded: list[Mode] = []
    with contextlib.ExitStack() as stack:
        try:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="pybpfgen-bench-")))
            cg = stack.enter_context(kh.child_cgroup("pybpfgen-bench"))
            pins = stack.enter_context(kh.private_pin_root("pybpfgen-bench"))
            ns = stack.enter_context(kh.netns_pair("pbg"))
            log(f"cgroup {cg}, pins {pins}, netns {ns.a}/{ns.b}, port {port}, cpus (server, client) {cpus}")
            impl = make_modes(modes, args.obj, cg, pins, port, tmp, accel_mode=AccelMode)
            for rnd in range(args.rounds):
                order = modes if rnd % 2 == 0 else list(reversed(modes))
                for mode in order:
                    m = impl[mode]
                    m.load()
                    loaded.append(m)
                    try:
                        for setup in setups:
                            c0 = m.counters()
                            log(f"round {rnd + 1}/{args.rounds} {setup:8} {mode:7} ...")
                            r = measure(setup, ns, cg, port, args.seconds, args.msg_size, cpus)
                            c1 = m.counters()
                            r.update(round=rnd + 1, setup=setup, mode=mode)
                            if c0 is not None and c1 is not None:
                                r["redirected"] = c1["redirected"] - c0["redirected"]
                                r["missed"] = c1["missed"] - c0["missed"]
                                if r["redirected"] == 0:
                                    log(f"WARNING: {mode} redirected nothing in {setup}")
                            results.append(r)
                            log(f"  avg {r['avg']:.3f}  p50 {r['p50']:.3f}  p99 {r['p99']:.3f} usec"
                                + (f"  redirected {r['redirected']}" if "redirected" in r else ""))
                    finally:
                        m.unload()
                        loaded.remove(m)
        except KeyboardInterrupt:
            log("interrupted: cleaning up")
            return 130
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # do not let a second Ctrl-C interrupt the cleanup
            for m in loaded:
                with contextlib.suppress(Exception):
                    m.unload()
            for p in PROCS:
                kh.kill_proc(p)
    summary = summarize(results, setups, modes)
    if args.json:
        print(json.dumps({"params": {"rounds": args.rounds, "seconds": args.seconds, "port": port,
                                     "setups": setups, "modes": modes, "msg_size": args.msg_size, "cpus": cpus,
                                     "kernel": os.uname().release},
                          "summary": summary, "results": results}, indent=2))
    else:
        print_table(summary, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
