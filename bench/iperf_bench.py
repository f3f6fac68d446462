#!/usr/bin/env python3
"""iperf3 throughput and kernel memory: kernel path vs the pybpfgen accelerator (vs the C twin).

Setups (entirely inside network namespaces and a child cgroup that this script creates and deletes):
  loopback  iperf3 server and client in netns A, both bound to 127.0.0.1 (-B)
  veth      server in netns A bound to 198.18.0.1, client in netns B bound to 198.18.0.2 (veth pair)
Binding to the IPv4 address keeps iperf3's server off a dual-stack (::) socket.

Shapes: every combination of --streams (default 1,8: iperf3 -P), --directions (oneway, bidir: iperf3 --bidir)
and --lengths (default 64,1024,131072: iperf3 -l, the size of each write).

Modes (alternating order, round after round):
  kernel    nothing attached
  accel     the accelerator loaded with `pybpfgen load` into the child cgroup + `pybpfgen policy add --port P`,
            default budget (settings untouched); unloaded after each round
  c-twin    (--c-twin) the C reference twin (clang-19 + bpftool)
  floor     (--modes ...,floor) bench/twin/sockhash_floor.py: every socket of the port in a sockhash whose sk_msg
            program passes everything, redirecting nothing. The floor of a socket that must stay in the sockhash
            while it sends on the TCP path (its inbox was fed): the kernel's tcp_bpf send and receive paths alone

Per measurement: received throughput (Gbit/s; --bidir: both directions summed, and each one: "fwd" is the
client's streams, "rev" the server's, whose sockets had the client's 37-byte cookie redirected into them), the
peak growth of unreclaimable slab (SUnreclaim, /proc/meminfo) and of TCP memory (/proc/net/sockstat `TCP ... mem`, pages)
over the value just before the run, sampled every 50 ms, and the accelerator's counters. A run is killed when
SUnreclaim grows more than --slab-abort-mib (default 1536). Output: a table (median over rounds) with the
ratio to the kernel path and whether the issue's goal holds for shapes the accelerator actually redirected
(throughput never below the kernel path, kernel memory flat); --json prints everything. Progress on stderr.
Everything created is removed on exit (also Ctrl-C).

Example:  python3 bench/iperf_bench.py --rounds 2 --seconds 2
"""
from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "kernel"))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import kharness as kh  # noqa: E402
from redis_bench import RedisAccelMode as CountingAccelMode  # noqa: E402
from sockperf_bench import Mode, make_modes, wait_listening  # noqa: E402

PROCS: list[subprocess.Popen] = []
PAGE = os.sysconf("SC_PAGE_SIZE")
MEM_SLACK_MIB = 8.0          # "flat": accelerated peak growth at most the kernel path's + this
TPUT_NOISE = 0.95            # below 1.0 but above this: reported as "within noise", not as met


def log(msg: str) -> None:
    print(f"[iperf-bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def kernel_mem() -> tuple[float, float]:
    """(SUnreclaim MiB, TCP mem MiB)."""
    sunreclaim = 0.0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("SUnreclaim:"):
                sunreclaim = int(line.split()[1]) / 1024
                break
    tcp = 0.0
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                parts = line.split()
                tcp = int(parts[parts.index("mem") + 1]) * PAGE / (1 << 20)
    return sunreclaim, tcp


class MemSampler(threading.Thread):
    def __init__(self, abort_mib: float, on_abort):
        super().__init__(daemon=True)
        self.base = kernel_mem()
        self.peak = [0.0, 0.0]
        self.abort_mib, self.on_abort = abort_mib, on_abort
        self.aborted = False
        self.stop = threading.Event()

    def run(self):
        while not self.stop.wait(0.05):
            cur = kernel_mem()
            for i in (0, 1):
                self.peak[i] = max(self.peak[i], cur[i] - self.base[i])
            if self.peak[0] > self.abort_mib and not self.aborted:
                self.aborted = True
                self.on_abort()


class FloorMode(Mode):
    """bench/twin/sockhash_floor.py: the port's sockets in a sockhash, nothing redirected (see the docstring)."""
    name = "floor"

    def __init__(self, tmp: Path, pin_root: Path, cg: Path, port: int):
        self.cli = kh.PybpfgenCLI(pin_root=pin_root)
        self.cg, self.port = cg, port
        self.obj = tmp / "floor" / "sockhash_floor.bpf.o"
        self.cli.run("compile", str(REPO / "bench" / "twin" / "sockhash_floor.py"), "-o", str(self.obj.parent),
                     pin=False)

    def load(self):
        self.cli.load(self.obj, self.cg)
        self.cli.run("map", "set", "--pin-root", self.cli.pin_root, "sockhash_floor", "floor_ports", str(self.port),
                     "1", pin=False)

    def unload(self):
        self.cli.unload("sockhash_floor", check=False)


def measure(setup: str, ns: kh.NetnsPair, cg: Path, port: int, seconds: float, streams: int, bidir: bool,
            length: int, abort_mib: float) -> dict:
    if setup == "veth":
        srv_ns, cli_ns, sip, cip = ns.a, ns.b, ns.ip_a, ns.ip_b
    else:
        srv_ns, cli_ns, sip, cip = ns.a, ns.a, "127.0.0.1", "127.0.0.1"
    server = kh.spawn(["iperf3", "-s", "-1", "-B", sip, "-p", str(port)], cgroup=cg, netns=srv_ns,
                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    PROCS.append(server)
    try:
        wait_listening(srv_ns, port)
        cmd = ["iperf3", "-c", sip, "-B", cip, "-p", str(port), "-t", str(seconds), "-P", str(streams),
               "-l", str(length), "-J"] + (["--bidir"] if bidir else [])
        client = kh.spawn(cmd, cgroup=cg, netns=cli_ns, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        PROCS.append(client)
        sampler = MemSampler(abort_mib, lambda: kh.kill_proc(client))
        sampler.start()
        try:
            out, err = client.communicate(timeout=seconds + 60)
        finally:
            sampler.stop.set()
            sampler.join()
            kh.kill_proc(client)
        res = {"slab_mib": round(sampler.peak[0], 1), "tcp_mem_mib": round(sampler.peak[1], 1),
               "aborted": sampler.aborted}
        if sampler.aborted:
            res.update(gbps=None, fwd_gbps=None, rev_gbps=None)
            return res
        try:
            j = json.loads(out)
        except json.JSONDecodeError:
            raise RuntimeError(f"iperf3 rc={client.returncode}: {err[-800:]} {out[-800:]}") from None
        if "error" in j:
            raise RuntimeError(f"iperf3: {j['error']}")
        end = j["end"]
        fwd = end["sum_received"]["bits_per_second"] / 1e9
        rev = end["sum_received_bidir_reverse"]["bits_per_second"] / 1e9 if bidir else 0.0
        res.update(gbps=round(fwd + rev, 4), fwd_gbps=round(fwd, 4), rev_gbps=round(rev, 4) if bidir else None)
        return res
    finally:
        kh.kill_proc(server)


def shape_name(streams: int, bidir: bool, length: int) -> str:
    ln = f"{length // 1024}K" if length >= 1024 and length % 1024 == 0 else f"{length}B"
    return f"P{streams} {'bidir' if bidir else 'oneway'} {ln}"


def summarize(results: list[dict], modes: list[str]) -> dict:
    summary: dict = {}
    for key in dict.fromkeys((r["setup"], r["shape"]) for r in results):
        per: dict = {}
        for mode in modes:
            rows = [r for r in results if (r["setup"], r["shape"], r["mode"]) == (*key, mode)]
            if not rows:
                continue
            ok = [r for r in rows if r["gbps"] is not None]
            s = {"rounds": len(rows), "aborted": sum(r["aborted"] for r in rows),
                 "gbps": statistics.median(r["gbps"] for r in ok) if ok else None,
                 **{f"{d}_gbps": statistics.median(r[f"{d}_gbps"] for r in ok)
                    for d in ("fwd", "rev") if ok and all(r.get(f"{d}_gbps") is not None for r in ok)},
                 "slab_mib": statistics.median(r["slab_mib"] for r in rows),
                 "slab_mib_max": max(r["slab_mib"] for r in rows),
                 "tcp_mem_mib": statistics.median(r["tcp_mem_mib"] for r in rows),
                 "tcp_mem_mib_max": max(r["tcp_mem_mib"] for r in rows)}
            ctr = [r["counters"] for r in rows if r.get("counters")]
            if ctr:
                s["counters"] = {k: sum(c.get(k, 0) for c in ctr) for k in ctr[0]}
            per[mode] = s
        base = per.get("kernel")
        for mode, s in per.items():
            if mode == "kernel" or not base:
                continue
            s["ratio_vs_kernel"] = (round(s["gbps"] / base["gbps"], 3) if s["gbps"] and base["gbps"] else None)
            for d in ("fwd", "rev"):
                if s.get(f"{d}_gbps") and base.get(f"{d}_gbps"):
                    s[f"{d}_ratio_vs_kernel"] = round(s[f"{d}_gbps"] / base[f"{d}_gbps"], 3)
            if mode == "floor":
                continue  # a yardstick, not a goal
            redirected = (s.get("counters") or {}).get("redirected")
            s["accelerated"] = None if redirected is None else redirected > 0
            mem_flat = (s["slab_mib_max"] <= base["slab_mib_max"] + MEM_SLACK_MIB
                        and s["tcp_mem_mib_max"] <= base["tcp_mem_mib_max"] + MEM_SLACK_MIB and not s["aborted"])
            r = s["ratio_vs_kernel"]
            tput = "met" if r is not None and r >= 1.0 else ("within noise" if r is not None and r >= TPUT_NOISE
                                                              else "NOT met")
            s["goal"] = {"throughput": tput, "memory_flat": mem_flat}
        summary[f"{key[0]} {key[1]}"] = per
    return summary


def print_table(summary: dict, args) -> None:
    print(f"iperf3, {args.rounds} round(s) x {args.seconds}s; throughput received in Gbit/s (bidir: both "
          f"directions), peak growth of SUnreclaim / TCP mem in MiB (median over rounds, max in brackets)")
    hdr = (f"{'setup shape':26} {'mode':8} {'Gbit/s':>8} {'/kern':>6} {'slab':>14} {'tcp mem':>14} "
           f"{'fwd/k':>6} {'rev/k':>6} {'redirected':>11} {'missed':>9} {'demoted':>7} {'released':>8}  goal")
    print(hdr)
    print("-" * len(hdr))
    for test, per in summary.items():
        for mode, s in per.items():
            c = s.get("counters") or {}
            g = s.get("goal")
            goal = ""
            if g:
                goal = ("not accelerated" if s.get("accelerated") is False else
                        f"tput {g['throughput']}, mem {'flat' if g['memory_flat'] else 'NOT flat'}")
            gb = "aborted" if s["gbps"] is None else f"{s['gbps']:8.3f}"
            rat = f"{s['ratio_vs_kernel']:6.3f}" if s.get("ratio_vs_kernel") else ""
            fr = " ".join(f"{s[k]:6.3f}" if s.get(k) else f"{'':6}"
                          for k in ("fwd_ratio_vs_kernel", "rev_ratio_vs_kernel"))
            print(f"{test:26} {mode:8} {gb:>8} {rat:>6} {s['slab_mib']:7.1f} [{s['slab_mib_max']:5.0f}]"
                  f" {s['tcp_mem_mib']:7.1f} [{s['tcp_mem_mib_max']:5.0f}] {fr} {c.get('redirected', ''):>11} "
                  f"{c.get('missed', ''):>9} {c.get('demoted', ''):>7} {c.get('released', ''):>8}  {goal}")


def _on_signal(signum, _frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=3, help="alternating rounds (default 3)")
    ap.add_argument("--seconds", type=float, default=2.0, help="iperf3 -t per measurement (default 2)")
    ap.add_argument("--setups", default="loopback", help="comma list of loopback,veth (default loopback)")
    ap.add_argument("--streams", default="1,8", help="comma list of iperf3 -P values (default 1,8)")
    ap.add_argument("--directions", default="oneway,bidir", help="comma list of oneway,bidir (default both)")
    ap.add_argument("--lengths", default="64,1024,131072", help="comma list of iperf3 -l values in bytes")
    ap.add_argument("--modes", default="kernel,accel",
                    help="comma list of kernel,accel,floor (default kernel,accel; floor: see above)")
    ap.add_argument("--c-twin", action="store_true", help="also measure the C reference twin (clang-19 + bpftool)")
    ap.add_argument("--obj", type=Path, help="compiled accel.bpf.o (default: `pybpfgen compile programs` to a temp dir)")
    ap.add_argument("--port", type=int, default=0, help="TCP port (default: random, outside the ephemeral range)")
    ap.add_argument("--slab-abort-mib", type=float, default=1536, help="kill a run whose SUnreclaim grows more")
    ap.add_argument("--json", action="store_true", help="print JSON instead of the table")
    args = ap.parse_args(argv)

    def ints(text, what):
        try:
            return [int(x) for x in text.split(",") if x]
        except ValueError:
            ap.error(f"{what} wants a comma list of numbers")

    setups = [s for s in args.setups.split(",") if s]
    modes = [m for m in args.modes.split(",") if m]
    directions = [d for d in args.directions.split(",") if d]
    streams, lengths = ints(args.streams, "--streams"), ints(args.lengths, "--lengths")
    if args.c_twin and "c-twin" not in modes:
        modes.append("c-twin")
    for s in setups:
        if s not in ("loopback", "veth"):
            ap.error(f"unknown setup {s}")
    for d in directions:
        if d not in ("oneway", "bidir"):
            ap.error(f"unknown direction {d}")
    for m in modes:
        if m not in ("kernel", "accel", "c-twin", "floor"):
            ap.error(f"unknown mode {m}")
    if os.geteuid() != 0:
        ap.error("must run as root (network namespaces, cgroups, BPF)")
    for tool in ("iperf3", "ip", "ss") + (("bpftool",) if "c-twin" in modes else ()):
        if not shutil.which(tool):
            ap.error(f"{tool} not installed (run scripts/setup.sh)")
    shapes = [(p, d == "bidir", ln) for p, d, ln in itertools.product(streams, directions, lengths)]
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
            log(f"cgroup {cg}, pins {pins}, netns {ns.a}/{ns.b}, port {port}, {len(shapes)} shapes x "
                f"{len(setups)} setups x {len(modes)} modes x {args.rounds} rounds of {args.seconds}s")
            impl = make_modes(modes, args.obj, cg, pins, port, tmp, accel_mode=CountingAccelMode)
            if "floor" in modes:
                impl["floor"] = FloorMode(tmp, pins, cg, port)
            for rnd in range(args.rounds):
                order = modes if rnd % 2 == 0 else list(reversed(modes))
                for mode in order:
                    m = impl[mode]
                    m.load()
                    loaded.append(m)
                    try:
                        for setup in setups:
                            for p, bidir, ln in shapes:
                                shape = shape_name(p, bidir, ln)
                                time.sleep(0.3)   # let the previous run's sockets go
                                c0 = m.counters()
                                r = measure(setup, ns, cg, port, args.seconds, p, bidir, ln, args.slab_abort_mib)
                                c1 = m.counters()
                                r["counters"] = ({k: c1[k] - c0[k] for k in c1}
                                                 if c0 is not None and c1 is not None else None)
                                r.update(round=rnd + 1, mode=mode, setup=setup, shape=shape, streams=p,
                                         bidir=bidir, length=ln)
                                results.append(r)
                                gb = "ABORTED (slab limit)" if r["gbps"] is None else f"{r['gbps']:.3f} Gbit/s"
                                ctr = r["counters"] or {}
                                log(f"round {rnd + 1}/{args.rounds} {mode:7} {setup} {shape:18} {gb}  slab "
                                    f"+{r['slab_mib']} MiB  tcp +{r['tcp_mem_mib']} MiB"
                                    + (f"  redirected {ctr.get('redirected')} missed {ctr.get('missed')} "
                                       f"demoted {ctr.get('demoted')} released {ctr.get('released')}"
                                       if ctr else ""))
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
        print(json.dumps({"bench": "iperf3", "params": {"rounds": args.rounds, "seconds": args.seconds, "port": port,
                                     "setups": setups, "streams": streams, "directions": directions,
                                     "lengths": lengths, "modes": modes, "kernel": os.uname().release},
                          "summary": summary, "results": results}, indent=2))
    else:
        print_table(summary, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
