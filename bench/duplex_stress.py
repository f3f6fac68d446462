#!/usr/bin/env python3
"""Full-duplex stress of the accelerator (issue 11): spurious EAGAIN from a *blocking* recv(), stalls, corruption.

Per round and per path, one loopback TCP connection with four threads: each end writes --bytes (16 MiB) in
writes of mixed sizes (1, 7, 64, 1000, 1460, 4096, 65536, 262144 B and random sizes up to 300 000 B, drawn
uniformly from these nine kinds) with blocking ``sendall``, while the other end reads concurrently with blocking
``recv(1 MiB)``; no socket timeouts. --hogs CPU-bound processes run beside it. Counted per round:

  eagain    a blocking recv() raised BlockingIOError (EAGAIN). The reader retries (as an application that
            treats EAGAIN as "try again" would) unless --no-retry, which mimics an application that gives up
            (its peer then blocks in sendmsg: a stall)
  stall     no byte moved in either direction for --stall seconds (the round is then aborted with shutdown())
  corrupt   SHA-256 of what a reader received differs from what its peer sent (or a short stream)

Paths, alternating round by round in one worker process inside a private child cgroup:
  accel     a listener whose port is in the accelerator's policy (loaded with `pybpfgen load` into the cgroup,
            private pin root)
  kernel    a listener on a port outside the policy (same process, same cgroup: the kernel path)

--object loads another program in place of the accelerator (bench/trace/passonly, bench/trace/nomsg: sockets in a
sockhash that never redirect); --sndbuf and --direction oneway take the writer's waits for send space away. Results
and the root cause: docs/hazards.md (*What the kernel gets wrong*), docs/upstream-tcp_bpf_recvmsg.md; the
deterministic case is tests/kernel/test_blocking_recv_eagain.py.

The budget is set with `pybpfgen policy set` (--budget-msgs / --budget-kib; 0 = the program's default). A low
budget (e.g. --budget-msgs 8) makes the budget demote a side in most rounds. Everything created (cgroup, pins,
processes) is removed on exit, also on Ctrl-C.

Examples:
  .venv/bin/python bench/duplex_stress.py --rounds 200 --budget-msgs 8
  .venv/bin/python bench/duplex_stress.py --rounds 200                 # default budget
  .venv/bin/python bench/duplex_stress.py --rounds 20 --budget-msgs 1000000 --budget-kib 4000000
Output: one line per round with problems (and every --every rounds), a summary per path, --json FILE for all.
Exit status 1 when the accelerated path had any eagain / stall / corrupt round (or the kernel path had any).
"""
from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SIZES = (1, 7, 64, 1000, 1460, 4096, 65536, 262144, None)  # None: random 1..300 000


# ---------------------------------------------------------------------------------------------- worker
def _writer(sock, data: bytes, seed: int, st: dict, key: str):
    rng = random.Random(seed)
    mv = memoryview(data)
    off = 0
    try:
        while off < len(data):
            n = rng.choice(SIZES)
            if n is None:
                n = rng.randint(1, 300_000)
            n = min(n, len(data) - off)
            sock.sendall(mv[off:off + n])
            off += n
            st["progress"] += n
    except OSError as e:
        st[key + "_err"] = f"{type(e).__name__}: {e}"
    st[key + "_sent"] = off


def _reader(sock, total: int, st: dict, key: str, retry: bool):
    h = hashlib.sha256()
    got = 0
    try:
        while got < total:
            try:
                b = sock.recv(1 << 20)
            except BlockingIOError:
                st["eagain"] += 1
                st.setdefault("eagain_at", []).append([key, got])
                if not retry:
                    raise
                continue
            if not b:
                break
            h.update(b)
            got += len(b)
            st["progress"] += len(b)
    except OSError as e:
        st[key + "_err"] = f"{type(e).__name__}: {e}"
    st[key + "_got"] = got
    st[key + "_sha"] = h.hexdigest()


def run_round(listener: socket.socket, port: int, nbytes: int, seed: int, stall_s: float, retry: bool,
              duplex: bool = True, sndbuf: int = 0) -> dict:
    rng = random.Random(seed)
    data_c = rng.randbytes(nbytes)  # client -> server
    data_s = rng.randbytes(nbytes) if duplex else b""  # server -> client
    c = socket.create_connection(("127.0.0.1", port))
    s, _ = listener.accept()
    if sndbuf:
        for x in (c, s):
            x.setsockopt(socket.SOL_SOCKET, 32, sndbuf)  # SO_SNDBUFFORCE
    st = {"eagain": 0, "progress": 0}
    ts = [threading.Thread(target=_writer, args=(c, data_c, seed * 2 + 1, st, "c2s"), daemon=True),
          threading.Thread(target=_writer, args=(s, data_s, seed * 2 + 2, st, "s2c"), daemon=True),
          threading.Thread(target=_reader, args=(s, nbytes, st, "srv", retry), daemon=True),
          threading.Thread(target=_reader, args=(c, len(data_s), st, "cli", retry), daemon=True)]
    t0 = time.monotonic()
    for t in ts:
        t.start()
    last, last_t, stall = -1, time.monotonic(), False
    while any(t.is_alive() for t in ts):
        time.sleep(0.05)
        p = st["progress"]
        if p != last:
            last, last_t = p, time.monotonic()
        elif time.monotonic() - last_t > stall_s:
            stall = True
            for x in (c, s):
                with contextlib.suppress(OSError):
                    x.shutdown(socket.SHUT_RDWR)
            for t in ts:
                t.join(5)
            break
    elapsed = time.monotonic() - t0
    c.close()
    s.close()
    corrupt = (st.get("srv_sha") != hashlib.sha256(data_c).hexdigest()
               or st.get("cli_sha") != hashlib.sha256(data_s).hexdigest())
    errs = {k: v for k, v in st.items() if k.endswith("_err")}
    return {"eagain": st["eagain"], "eagain_at": st.get("eagain_at", []), "stall": stall,
            "corrupt": corrupt and not stall, "short": stall and corrupt, "errors": errs,
            "seconds": round(elapsed, 3)}


def worker_main(a) -> int:
    listeners = {}
    for name, port in (("accel", a.accel_port), ("kernel", a.kernel_port)):
        if port:
            ls = socket.socket()
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind(("127.0.0.1", port))
            ls.listen(8)
            listeners[name] = (ls, port)
    print(json.dumps({"event": "ready"}), flush=True)
    for i in range(a.rounds):
        for name, (ls, port) in listeners.items():
            r = run_round(ls, port, a.bytes, a.seed + i, a.stall, not a.no_retry, a.direction == "duplex", a.sndbuf)
            r.update(event="round", path=name, round=i)
            print(json.dumps(r), flush=True)
            sys.stdin.readline()  # the orchestrator has read the counters: next round
    return 0


# ---------------------------------------------------------------------------------------------- orchestrator
def hog():
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
    x = 0
    while True:
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--bytes", type=int, default=16 << 20, help="per direction and round (default 16 MiB)")
    ap.add_argument("--paths", default="accel,kernel", help="accel, kernel or both (default)")
    ap.add_argument("--budget-msgs", type=int, default=0, help="pybpfgen policy set --max-unanswered-msgs")
    ap.add_argument("--budget-kib", type=int, default=0, help="pybpfgen policy set --max-unanswered-kib")
    ap.add_argument("--hogs", type=int, default=2, help="CPU-bound processes beside the workload (default 2)")
    ap.add_argument("--stall", type=float, default=5.0, help="seconds without progress that make a stall")
    ap.add_argument("--sndbuf", type=int, default=0,
                    help="SO_SNDBUFFORCE on both ends (bytes; 0 = autotuned): with a send buffer larger than "
                         "--bytes a writer never waits for send space, so no write-space wakeup ever happens")
    ap.add_argument("--no-retry", action="store_true", help="a reader that gets EAGAIN stops (as in issue 11)")
    ap.add_argument("--object", default=None,
                    help="BPF object to load (default: compile programs/ to a temp dir: the accelerator). Any object "
                         "with a policy_ports map works, e.g. the experiments bench/trace/passonly (in the sockhash, "
                         "sk_msg always SK_PASS) and bench/trace/nomsg (in the sockhash, no sk_msg program)")
    ap.add_argument("--direction", choices=("duplex", "oneway"), default="duplex",
                    help="oneway: only the client writes (the server socket never sends, so never waits for send "
                         "space)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--every", type=int, default=20, help="print a progress line every N rounds")
    ap.add_argument("--json", default=None, help="write every round's result to this file")
    ap.add_argument("--trace", action="store_true",
                    help="also run bench/trace/eagain_trace (fentry/fexit on tcp_bpf_recvmsg, tcp_msg_wait_data, "
                         "woken_wake_function): who woke a reader that then returned EAGAIN; needs clang-19, gcc, "
                         "libbpf, and a kernel that allows tracing programs (the 6.18 test VM refuses them: EPERM)")
    # worker mode (internal)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--accel-port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--kernel-port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--hog", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.hog:
        hog()
    if a.worker:
        return worker_main(a)

    sys.path.insert(0, str(REPO))
    sys.path.insert(0, str(REPO / "tests" / "kernel"))
    import tempfile

    import kharness as kh  # noqa: E402

    if os.geteuid() != 0:
        print("duplex_stress: needs root", file=sys.stderr)
        return 2
    paths = [p.strip() for p in a.paths.split(",") if p.strip()]
    procs: list[subprocess.Popen] = []
    results: list[dict] = []
    counters = {}
    with contextlib.ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="pbg-duplex-"))
        cg = stack.enter_context(kh.child_cgroup("pbg-duplex"))
        pins = stack.enter_context(kh.private_pin_root("pbg-duplex"))
        cli = kh.PybpfgenCLI(pins)
        obj = Path(a.object) if a.object else cli.compile(REPO / "programs", tmp)
        stack.callback(lambda: [kh.kill_proc(p) for p in procs])
        name = obj.name.split(".")[0]
        cli.load(obj, cg)
        stack.callback(lambda: cli.unload(name, check=False))
        accel_port = kh.free_port() if "accel" in paths else 0
        kernel_port = kh.free_port() if "kernel" in paths else 0
        if accel_port:
            cli.run("policy", "add", "--port", str(accel_port), "--object", name)
        if a.budget_msgs or a.budget_kib:
            cli.run("policy", "set", "--max-unanswered-msgs", str(a.budget_msgs),
                    "--max-unanswered-kib", str(a.budget_kib), "--object", name)
        tracer = start_tracer(tmp, cg) if a.trace else None
        if tracer:
            procs.append(tracer)
        for _ in range(a.hogs):
            procs.append(subprocess.Popen([sys.executable, __file__, "--hog"], start_new_session=True))
        w = kh.spawn([sys.executable, __file__, "--worker", "--rounds", str(a.rounds), "--bytes", str(a.bytes),
                      "--accel-port", str(accel_port), "--kernel-port", str(kernel_port), "--seed", str(a.seed),
                      "--stall", str(a.stall), "--direction", a.direction, "--sndbuf", str(a.sndbuf)] + (["--no-retry"] if a.no_retry else []),
                     cgroup=cg, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        procs.append(w)
        t0 = time.monotonic()
        prev = _read_counters(kh, cg)
        for line in w.stdout:
            ev = json.loads(line)
            if ev["event"] != "round":
                continue
            if ev["path"] == "accel":  # this round's demotions and releases (counters are cumulative)
                now = _read_counters(kh, cg)
                ev["counters"] = {k: now.get(k, 0) - prev.get(k, 0) for k in now}
                prev = now
            w.stdin.write("\n")
            w.stdin.flush()
            results.append(ev)
            bad = ev["eagain"] or ev["stall"] or ev["corrupt"] or ev["short"]
            if bad or (ev["round"] + 1) % a.every == 0 and ev["path"] == paths[-1]:
                cn = ev.get("counters", {})
                print(f"[{time.monotonic() - t0:7.1f}s] round {ev['round']:4d} {ev['path']:6s} eagain={ev['eagain']} "
                      f"stall={ev['stall']} corrupt={ev['corrupt'] or ev['short']} {ev['seconds']}s"
                      + (f" demoted={cn.get('demoted')} released={cn.get('released')}" if cn else "")
                      + (f" at={ev['eagain_at'][:4]} err={ev['errors']}" if bad else ""), flush=True)
        w.wait()
        trace = stop_tracer(tracer) if tracer else None
        if accel_port:
            with contextlib.suppress(Exception):
                counters = cli.status_json()
    summary = {}
    for p in paths:
        rs = [r for r in results if r["path"] == p]
        dem = [r for r in rs if r.get("counters", {}).get("demoted")]
        summary[p] = {"rounds": len(rs), "eagain_rounds": sum(1 for r in rs if r["eagain"]),
                      "eagain_total": sum(r["eagain"] for r in rs), "stall_rounds": sum(1 for r in rs if r["stall"]),
                      "corrupt_rounds": sum(1 for r in rs if r["corrupt"] or r["short"]),
                      "median_seconds": sorted(r["seconds"] for r in rs)[len(rs) // 2] if rs else None}
        if p == "accel" and any("counters" in r for r in rs):
            summary[p].update(demoted_rounds=len(dem), eagain_rounds_with_demotion=sum(1 for r in dem if r["eagain"]),
                              released_rounds=sum(1 for r in rs if r.get("counters", {}).get("released")))
    stats = _stats_of(counters)
    print(json.dumps({"summary": summary, "budget_msgs": a.budget_msgs, "budget_kib": a.budget_kib,
                      "hogs": a.hogs, "bytes": a.bytes, "accel_counters": stats}, indent=1))
    if a.trace:
        print_trace(trace)
    if a.json:
        Path(a.json).write_text(json.dumps({"summary": summary, "counters": stats, "rounds": results}, indent=1))
    failed = any(s["eagain_rounds"] or s["stall_rounds"] or s["corrupt_rounds"] for s in summary.values())
    return 1 if failed else 0


TRACE_DIR = REPO / "bench" / "trace"


def start_tracer(tmp: str, cgroup) -> subprocess.Popen:
    """Build and start the fentry/fexit tracer, counting only tasks in ``cgroup``."""
    arch_inc = f"/usr/include/{os.uname().machine}-linux-gnu"
    vmlinux_h = Path(tmp) / "vmlinux.h"
    with open(vmlinux_h, "w") as f:
        subprocess.run(["bpftool", "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"], stdout=f,
                       check=True)
    obj = Path(tmp) / "eagain_trace.bpf.o"
    subprocess.run(["clang-19", "-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_x86", f"-I{arch_inc}", f"-I{tmp}",
                    "-c", str(TRACE_DIR / "eagain_trace.bpf.c"), "-o", str(obj)], check=True)
    exe = Path(tmp) / "eagain_trace"
    subprocess.run(["gcc", "-O2", "-o", str(exe), str(TRACE_DIR / "eagain_trace.c"), "-lbpf", "-lelf", "-lz"],
                   check=True)
    p = subprocess.Popen([str(exe), str(obj), str(cgroup)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                         start_new_session=True)
    line = p.stdout.readline()
    if line.strip() != "attached":
        raise RuntimeError(f"eagain_trace did not attach: {line!r}")
    return p


def stop_tracer(p: subprocess.Popen) -> dict:
    out, _ = p.communicate(input="", timeout=30)
    return json.loads(out.strip().splitlines()[-1])


def _kallsyms():
    syms = []
    for line in Path("/proc/kallsyms").read_text().splitlines():
        addr, _, name = line.split()[:3]
        syms.append((int(addr, 16), name))
    syms.sort()
    return syms


def print_trace(trace: dict) -> None:
    import bisect
    syms = _kallsyms()
    addrs = [x for x, _ in syms]

    def sym(ip):
        i = bisect.bisect_right(addrs, ip) - 1
        return f"{syms[i][1]}+{ip - syms[i][0]:#x}" if i >= 0 else hex(ip)
    print(json.dumps({"trace_counters": trace["counters"]}, indent=1))
    for w in sorted(trace["empty_wakers"], key=lambda w: -w["count"])[:6]:
        print(f"{w['count']:6d} wakes of a tcp_msg_wait_data sleeper that then found both queues empty, waker:")
        for ip in w["stack"][:14]:
            print(f"         {sym(ip)}")


def _read_counters(kh, cg) -> dict:
    """The accelerator's counters (the object's ``stats`` map), {} when the object has none."""
    try:
        snap = kh.snapshot_accel(cg)
        return kh.read_stats(snap.map_ids["stats"]) if "stats" in snap.map_ids else {}
    except (OSError, KeyError):
        return {}


def _stats_of(status) -> dict:
    """The accelerator's counters out of `pybpfgen status --json` (whatever its exact nesting)."""
    found = {}

    def walk(x):
        if isinstance(x, dict):
            if "redirected" in x and "demoted" in x:
                found.update({k: v for k, v in x.items() if isinstance(v, int)})
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
    walk(status)
    return found


if __name__ == "__main__":
    sys.exit(main())
