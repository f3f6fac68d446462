# Over 500 lines: the thirteen conformance cases, each a short function over the shared sandbox and judge.
"""The conformance cases of issue #5. Each runs its workload on the kernel path (a private cgroup with nothing
attached) and accelerated (a private cgroup with the object under test attached), inside private network
namespaces, and judges the accelerated run against the kernel run.

A case function takes ``(sb: Sandbox, prm: Params, say)`` and returns ``(status, detail, metrics)``.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from typing import Any

from .env import CaseError, MemSampler, Sandbox, delta, kill_proc, meminfo_kib, spawn_cmd, tcp_mem_pages, PAGE_KIB

MiB = 1 << 20
PORT = 7000            # the policy port, inside the case's private namespaces
CLIENT_PORT = 41000    # explicitly bound client port (case netns_collision)


def _env_int(name: str, default: int) -> int:
    v = os.environ.get(name)
    return int(float(v)) if v not in (None, "") else default


def _env_float(name: str, default: float) -> float:
    v = os.environ.get(name)
    return float(v) if v not in (None, "") else default


@dataclass
class Params:
    """Sizes and counts. Defaults keep the whole suite to a few minutes; raise them with PYBPFGEN_CONF_* env
    vars (or pass ``params={...}`` to run_conformance) for manual runs."""
    sizes: list = field(default_factory=lambda: [1, 2, 3, 7, 64, 100, 1000, 1448, 4096, 4097, 16384, 65535,
                                                 65536, 65537, 262144, 1 << 20])
    sizes_rounds: int = field(default_factory=lambda: _env_int("PYBPFGEN_CONF_SIZES_ROUNDS", 2))
    early_connections: int = field(default_factory=lambda: _env_int("PYBPFGEN_CONF_EARLY_CONNECTIONS", 300))
    early_defer_connections: int = field(default_factory=lambda: _env_int("PYBPFGEN_CONF_EARLY_DEFER", 20))
    sendfile_bytes: int = field(default_factory=lambda: _env_int("PYBPFGEN_CONF_SENDFILE_BYTES", 4 * MiB))
    splice_bytes: int = field(default_factory=lambda: _env_int("PYBPFGEN_CONF_SPLICE_BYTES", 1 * MiB))
    slow_bytes: int = field(default_factory=lambda: _env_int("PYBPFGEN_CONF_SLOW_BYTES", 64 * MiB))
    slow_seconds: float = field(default_factory=lambda: _env_float("PYBPFGEN_CONF_SLOW_SECONDS", 2.0))
    big_bytes: int = field(default_factory=lambda: _env_int("PYBPFGEN_CONF_BIG_BYTES", (2 << 30) + 64 * MiB))
    reqresp_rounds: int = field(default_factory=lambda: _env_int("PYBPFGEN_CONF_REQRESP_ROUNDS", 20))
    concurrent: int = field(default_factory=lambda: _env_int("PYBPFGEN_CONF_CONCURRENT", 200))
    concurrent_bytes: int = field(default_factory=lambda: _env_int("PYBPFGEN_CONF_CONCURRENT_BYTES", 256 << 10))
    churn_cycles: int = field(default_factory=lambda: _env_int("PYBPFGEN_CONF_CYCLES", 2000))
    flow_streams: int = field(default_factory=lambda: _env_int("PYBPFGEN_CONF_STREAMS", 100))
    flow_phase_s: float = field(default_factory=lambda: _env_float("PYBPFGEN_CONF_PHASE_SECONDS", 1.0))
    duplex_seconds: float = field(default_factory=lambda: _env_float("PYBPFGEN_CONF_DUPLEX_SECONDS", 2.0))
    duplex_configs: list = field(default_factory=lambda: [(64, 1), (64, 4), (1024, 1), (1024, 4)])
    duplex_min_ratio: float = field(default_factory=lambda: _env_float("PYBPFGEN_CONF_DUPLEX_MIN_RATIO", 0.5))
    slab_abort_mib: int = field(default_factory=lambda: _env_int("PYBPFGEN_CONF_SLAB_ABORT_MIB", 1536))
    mem_bound_mib: int = field(default_factory=lambda: _env_int("PYBPFGEN_CONF_MEM_BOUND_MIB", 256))
    waitall_sizes: list = field(default_factory=lambda: [2, 200, 65536, 1 << 20])
    waitall_rounds: int = field(default_factory=lambda: _env_int("PYBPFGEN_CONF_WAITALL_ROUNDS", 2))
    waitall_pause_s: float = field(default_factory=lambda: _env_float("PYBPFGEN_CONF_WAITALL_PAUSE_SECONDS", 0.05))
    waitall_demote_records: int = field(default_factory=lambda: _env_int("PYBPFGEN_CONF_WAITALL_DEMOTE_RECORDS", 300))
    oob_wait_s: float = field(default_factory=lambda: _env_float("PYBPFGEN_CONF_OOB_WAIT_SECONDS", 0.5))

    def override(self, d: dict | None) -> "Params":
        for k, v in (d or {}).items():
            if not hasattr(self, k):
                raise ValueError(f"unknown conformance parameter {k!r}")
            setattr(self, k, v)
        return self


MODES = ("kernel", "accel")


# ------------------------------------------------------------------------------------------ helpers
class Run:
    """One scenario run in one mode, with the accelerator's counters before/after."""

    def __init__(self, mode: str, result: dict, counters: dict, extra: dict | None = None):
        self.mode, self.result, self.counters = mode, result, counters
        self.extra = extra or {}
        self.problems: list[str] = list(result.get("problems", []))


def run_scenario(sb: Sandbox, netns: str, mode: str, scenario: str, args: dict, *, timeout: float = 120,
                 checkpoints=None, say=None, label: str = "", require_accel: bool = True) -> Run:
    before = sb.accel.counters()
    w = sb.worker(scenario, args, netns=netns, mode=mode, timeout=timeout, label=label or f"{scenario}/{mode}")

    def on_event(wk, msg):
        if msg.get("event") == "checkpoint":
            if checkpoints:
                checkpoints(msg.get("name"), msg)
            wk.send("ok")
        elif msg.get("event") == "progress" and say:
            say(f"  {scenario}/{mode}: " + ", ".join(f"{k}={v}" for k, v in msg.items() if k != "event"))
    try:
        res = w.expect("result", timeout, on_event)
    finally:
        w.kill()
    res.pop("event", None)
    r = Run(mode, res, delta(sb.accel.counters(), before))
    _check_acceleration(sb, r, require=require_accel)
    return r


def _check_acceleration(sb: Sandbox, r: Run, require: bool = True) -> None:
    red = r.counters.get("redirected")
    if red is None:
        return
    if r.mode == "accel" and red == 0 and require:
        r.problems.append("not accelerated: the redirect counter did not move")
    if r.mode == "kernel" and red != 0:
        r.problems.append(f"kernel-path run was redirected {red} times (cgroup without programs!)")


def metrics_of(runs: list[Run], prefix: str = "") -> dict:
    m = {}
    for r in runs:
        for k, v in r.result.items():
            if k != "problems" and isinstance(v, (int, float, str, bool)):
                m[f"{prefix}{r.mode}.{k}"] = v
        for k, v in r.counters.items():
            m[f"{prefix}{r.mode}.{k}"] = v
        for k, v in r.extra.items():
            m[f"{prefix}{r.mode}.{k}"] = v
    return m


def judge(runs: list[Run], ok_detail: str, hazard_if=None) -> tuple[str, str]:
    kern = [f"{r.mode}: {p}" for r in runs if r.mode == "kernel" for p in r.problems]
    acc = [p for r in runs if r.mode == "accel" for p in r.problems]
    if kern:
        return "fail", f"kernel path fails too (test or environment problem): {kern[0]}"
    if acc:
        if hazard_if and all(hazard_if(p) for p in acc):
            return "kernel-hazard", acc[0]
        more = f" (+{len(acc) - 1} more)" if len(acc) > 1 else ""
        return "fail", f"accelerated: {acc[0]}{more}"
    return "pass", ok_detail


def _both(sb, ns, scenario, args, say, **kw) -> list[Run]:
    runs = []
    for mode in MODES:
        say(f"  {scenario}: {mode} path")
        runs.append(run_scenario(sb, ns, mode, scenario, args, say=say, **kw))
    return runs


# ------------------------------------------------------------------------------------------ 1
def case_sizes(sb: Sandbox, prm: Params, say):
    ns = sb.new_netns()
    runs = _both(sb, ns, "sizes", {"port": PORT, "sizes": prm.sizes, "rounds": prm.sizes_rounds}, say)
    a = runs[1].result
    st, det = judge(runs, f"{a['messages_each_way']} messages each way (1 B .. {max(prm.sizes)} B, single and "
                          f"iovec, both directions at once), {a['bytes_each_way']} B each way, SHA-256 equal")
    return st, det, metrics_of(runs)


# ------------------------------------------------------------------------------------------ 2
def case_early_data(sb: Sandbox, prm: Params, say):
    ns = sb.new_netns()
    runs, metrics = [], {}
    # With TCP_DEFER_ACCEPT the server socket does not exist until the client's first data has arrived,
    # so the client's first message always misses: the connection must then keep the TCP path (in order),
    # and being accelerated is not required there.
    for sub, args, require in (
        ("race", {"conns": prm.early_connections, "msgs": 8, "msg_size": 64, "server_first": True}, True),
        ("defer_accept", {"conns": prm.early_defer_connections, "msgs": 8, "msg_size": 64,
                          "defer_accept": True, "gap_ms": 2.0, "server_first": False}, False),
    ):
        sub_runs = _both(sb, ns, "connect_burst", {"port": PORT, **args}, say, require_accel=require)
        for r in sub_runs:
            r.problems = [f"{sub}: {p}" for p in r.problems]
        metrics.update(metrics_of(sub_runs, prefix=f"{sub}."))
        runs += sub_runs
    st, det = judge(runs, f"{prm.early_connections} connections sending right after connect() (+"
                          f"{prm.early_defer_connections} with TCP_DEFER_ACCEPT): every record in order")
    if st == "fail":
        miss = metrics.get("defer_accept.accel.missed", metrics.get("race.accel.missed"))
        det += f" [missed={miss}: a miss followed by a redirect]" if miss else ""
    return st, det, metrics


# ------------------------------------------------------------------------------------------ 3
def case_shutdown(sb: Sandbox, prm: Params, say):
    ns = sb.new_netns()
    runs = []
    for mode in MODES:
        left: dict[str, int] = {}

        def cp(name, msg, left=left, mode=mode):
            if mode == "accel":
                left[name] = sb.accel.wait_sockmap_empty(3.0)
        say(f"  shutdown: {mode} path")
        r = run_scenario(sb, ns, mode, "shutdown", {"port": PORT}, checkpoints=cp, say=say)
        for name, n in left.items():
            r.extra[f"sockhash_entries_{name}"] = n
            # a reset socket stays in the sockhash until its owner closes it (the kernel has no unhash hook for
            # sockmap any more): recorded, not a failure; every entry must be gone once the sockets are closed
            if n and name.startswith("closed"):
                r.problems.append(f"sockhash still holds {n} entries 3 s after {name}")
        runs.append(r)
    st, det = judge(runs, "SHUT_WR -> peer EOF + epoll wakeup; close()/RST mid-stream: no hang; sockhash empties")
    return st, det, metrics_of(runs)


# ------------------------------------------------------------------------------------------ 4
def case_peek(sb: Sandbox, prm: Params, say):
    ns = sb.new_netns()
    runs = _both(sb, ns, "peek", {"port": PORT}, say)
    st, det = judge(runs, "MSG_PEEK, FIONREAD, non-blocking + epoll wakeup, SO_RCVTIMEO: same as the kernel path, "
                          "both directions")
    m = metrics_of(runs)
    for r in runs:
        for d in ("c2s", "s2c"):
            for k, v in (r.result.get(d) or {}).items():
                m[f"{r.mode}.{d}.{k}"] = v
    return st, det, m


# ------------------------------------------------------------------------------------------ 5
def case_sendfile_splice(sb: Sandbox, prm: Params, say):
    ns = sb.new_netns()
    sf = _both(sb, ns, "sendfile", {"port": PORT, "size": prm.sendfile_bytes}, say)
    sp = _both(sb, ns, "splice", {"port": PORT, "size": prm.splice_bytes}, say)
    for r in sp:
        r.problems = [f"HAZARD {p}" for p in r.problems]
    metrics = {**metrics_of(sf, "sendfile."), **metrics_of(sp, "splice.")}
    st, det = judge(sf + sp, f"sendfile {prm.sendfile_bytes} B each way and a splice(2) reader "
                             f"({prm.splice_bytes} B) intact", hazard_if=lambda p: p.startswith("HAZARD "))
    if st == "kernel-hazard":
        det = (f"kernel hazard: {det[7:]} on the accelerated path, while the kernel path got all "
               f"{prm.splice_bytes} B; sendfile intact")
    return st, det, metrics


# ------------------------------------------------------------------------------------------ 6
def case_backpressure(sb: Sandbox, prm: Params, say):
    ns = sb.new_netns()
    runs = []
    for mode in MODES:
        at_slow_end: dict[str, float] = {}

        def cp(name, msg, at=at_slow_end):
            # this iteration's baselines (assigned below, read when cp runs later in the same iteration)
            at["tcp_mem_mib"] = round((tcp_mem_pages() - base_tcp) * PAGE_KIB / 1024, 1)  # noqa: B023
            at["slab_mib"] = round((meminfo_kib() - base_slab) / 1024, 1)  # noqa: B023
        base_tcp, base_slab = tcp_mem_pages(), meminfo_kib()
        say(f"  backpressure: {mode} path")
        with MemSampler(slab_limit_kib=prm.slab_abort_mib * 1024, on_limit=sb.kill_all) as ms:
            r = run_scenario(sb, ns, mode, "slow_reader", {"port": PORT, "total": prm.slow_bytes,
                                                            "slow_seconds": prm.slow_seconds},
                             checkpoints=cp, say=say)
        r.extra.update(ms.metrics())
        r.extra.update({f"at_slow_end_{k}": v for k, v in at_slow_end.items()})
        runs.append(r)
    k, a = runs
    kq, aq = k.result["queued_unread_mib"], a.result["queued_unread_mib"]
    bound = max(16.0, 4 * kq)
    if aq > bound:
        a.problems.append(f"unbounded queueing: {aq} MiB written but unread during the slow phase "
                          f"(kernel path: {kq} MiB)")
    kt, at = k.extra["tcp_mem_growth_mib"], a.extra["tcp_mem_growth_mib"]
    if at > max(32.0, 4 * kt):
        a.problems.append(f"TCP mem grew {at} MiB (kernel path {kt} MiB)")
    st, det = judge(runs, f"writer blocked and resumed; unread backlog {aq} MiB (kernel {kq} MiB), "
                          f"TCP mem +{at} MiB (kernel +{kt} MiB)")
    return st, det, metrics_of(runs)


# ------------------------------------------------------------------------------------------ 7
def case_large(sb: Sandbox, prm: Params, say):
    ns = sb.new_netns()
    big = _both(sb, ns, "big_stream", {"port": PORT, "total": prm.big_bytes}, say, timeout=600)
    rr = _both(sb, ns, "reqresp", {"port": PORT, "rounds": prm.reqresp_rounds}, say, timeout=300)
    m = {**metrics_of(big, "stream."), **metrics_of(rr, "reqresp.")}
    st, det = judge(big + rr, f"{prm.big_bytes / 2**30:.2f} GiB stream at {m['stream.accel.gbit_s']} Gbit/s "
                              f"(kernel {m['stream.kernel.gbit_s']}), max gap {m['stream.accel.max_gap_s']} s; "
                              f"{prm.reqresp_rounds} x 1-4 MiB req/resp, max round "
                              f"{m['reqresp.accel.max_round_s']} s")
    return st, det, m


# ------------------------------------------------------------------------------------------ 8
def case_concurrency(sb: Sandbox, prm: Params, say):
    ns = sb.new_netns()
    conc = _both(sb, ns, "concurrent", {"port": PORT, "conns": prm.concurrent, "size": prm.concurrent_bytes}, say)
    churn = _both(sb, ns, "churn", {"port": PORT, "cycles": prm.churn_cycles}, say, timeout=600)
    left = sb.accel.wait_sockmap_empty(3.0)
    if left:
        churn[1].problems.append(f"sockhash holds {left} entries after every connection closed")
    m = {**metrics_of(conc, "concurrent."), **metrics_of(churn, "churn."), "sockhash_entries_after": left}
    st, det = judge(conc + churn, f"{prm.concurrent} concurrent connections x {prm.concurrent_bytes} B each way "
                                  f"and {prm.churn_cycles} connect/echo/close cycles: 0 B lost "
                                  f"({m['churn.accel.cycles_per_s']} vs {m['churn.kernel.cycles_per_s']} cycles/s)")
    return st, det, m


# ------------------------------------------------------------------------------------------ 9
def case_unload_reload(sb: Sandbox, prm: Params, say):
    ns = sb.new_netns()
    args = {"port": PORT, "streams": prm.flow_streams, "phase_s": prm.flow_phase_s}
    runs = []
    say("  flows: kernel path")
    runs.append(run_scenario(sb, ns, "kernel", "flows", args, say=say, timeout=300))
    info: dict = {}

    def cp(name, msg):
        c = sb.accel.counters()
        info[f"redirected_at_{name}"] = c.get("redirected", 0)
        info[f"received_at_{name}"] = msg.get("received")
        if name == "flowing":
            info["entries_before_unload"] = sb.accel.sockmap_entries()
            say(f"  flows: unloading with {prm.flow_streams} streams flowing")
            sb.accel.unload()
        elif name == "unloaded":
            say("  flows: loading again")
            sb.accel.load()
    say("  flows: accelerated path (unload + load mid-flow)")
    r = run_scenario(sb, ns, "accel", "flows", args, say=say, timeout=300, checkpoints=cp)
    r.extra.update(info)
    r.problems = [p for p in r.problems if not p.startswith("not accelerated")]
    if not info.get("redirected_at_flowing"):
        r.problems.append("not accelerated before the unload (redirect counter 0)")
    if info.get("redirected_at_new_done", 0) == info.get("redirected_at_reloaded", 0) and "redirected_at_new_done" in info:
        r.problems.append("connections opened after the reload were not accelerated")
    runs.append(r)
    a = r.result
    st, det = judge(runs, f"unload and load with {prm.flow_streams} streams flowing: {a.get('bytes')} B, 0 lost, "
                          f"new connections accelerated after the reload")
    return st, det, metrics_of(runs)


# ------------------------------------------------------------------------------------------ 10
def case_netns_collision(sb: Sandbox, prm: Params, say):
    ns_a, ns_b = sb.new_netns("A"), sb.new_netns("B")
    runs = []
    for mode in MODES:
        say(f"  netns_collision: {mode} path")
        before = sb.accel.counters()
        common = {"port": PORT, "records": 4096, "read_s": 2.0}
        wa = sb.worker("tuple_pair", {**common, "client_port": CLIENT_PORT, "tag": "A"}, netns=ns_a, mode=mode,
                       timeout=60, label="A pair")
        wa.expect("checkpoint", 20)
        wbs = sb.worker("tuple_server", {**common, "tag": "B"}, netns=ns_b, mode="kernel", timeout=60,
                        label="B server (outside the attached cgroup)")
        wbs.expect("listening", 20)
        wbc = sb.worker("tuple_client", {**common, "client_port": CLIENT_PORT, "tag": "B"}, netns=ns_b, mode=mode,
                        timeout=60, label="B client")
        wbc.expect("checkpoint", 20)
        wbs.expect("checkpoint", 20)
        entries = sb.accel.sockmap_entries()
        for w in (wa, wbs, wbc):
            w.send("ok")
        ra, rbs, rbc = wa.result(30), wbs.result(30), wbc.result(30)
        for w in (wa, wbs, wbc):
            w.kill()
        recv = {"A server": (ra["server_got"], "A-c"), "A client": (ra["client_got"], "A-s"),
                "B server": (rbs["server_got"], "B-c"), "B client": (rbc["client_got"], "B-s")}
        res: dict[str, Any] = {"sockhash_entries_established": entries}
        problems = []
        for who, (got, want) in recv.items():
            tags = got.get("tags", {})
            res[f"{who.replace(' ', '_')}_got"] = json.dumps(tags, sort_keys=True)
            foreign = {t: n for t, n in tags.items() if t != want}
            if foreign:
                problems.append(f"{who} received {sum(foreign.values()) * 16} B from another namespace's socket "
                                f"({foreign}) and {tags.get(want, 0) * 16} of {4096 * 16} B from its own peer")
            elif tags.get(want, 0) != 4096:
                problems.append(f"{who} received {tags.get(want, 0) * 16} of {4096 * 16} B from its peer")
        res["problems"] = problems
        r = Run(mode, res, delta(sb.accel.counters(), before))
        _check_acceleration(sb, r)
        runs.append(r)
    st, det = judge(runs, "identical 4-tuples in two namespaces: every byte reached its own peer only")
    return st, det, metrics_of(runs)


# ------------------------------------------------------------------------------------------ 11
def _iperf_run(sb: Sandbox, ns: str, mode: str, length: int, parallel: int, seconds: float, prm: Params) -> dict:
    port = PORT
    cg = sb.cgroup(mode)
    srv = spawn_cmd(sb, ["iperf3", "-s", "-B", "127.0.0.1", "-p", str(port), "-1"], netns=ns, cgroup=cg,
                    stdout=__import__("subprocess").DEVNULL, stderr=__import__("subprocess").DEVNULL)
    time.sleep(0.3)
    out: dict = {}
    cli = None

    def abort():
        for p in (cli, srv):
            if p is not None:
                kill_proc(p, 1)
    sp = __import__("subprocess")
    base_slab = meminfo_kib()
    with MemSampler(interval=0.05, slab_limit_kib=prm.slab_abort_mib * 1024, on_limit=abort) as ms:
        cli = spawn_cmd(sb, ["iperf3", "-c", "127.0.0.1", "-p", str(port), "--bidir", "-l", str(length),
                             "-P", str(parallel), "-t", str(seconds), "-J"], netns=ns, cgroup=cg,
                        stdout=sp.PIPE, stderr=sp.PIPE, text=True)
        try:
            stdout, stderr = cli.communicate(timeout=seconds + 20)
        except sp.TimeoutExpired:
            kill_proc(cli)
            stdout, stderr = "", "iperf3 client timed out"
        kill_proc(srv, 1)
    out.update(ms.metrics())
    out["aborted"] = ms.aborted
    try:
        j = json.loads(stdout) if stdout.strip() else {}
    except ValueError:
        j = {}
    end = j.get("end", {})
    fwd = end.get("sum_received", {}).get("bits_per_second")
    rev = end.get("sum_received_bidir_reverse", {}).get("bits_per_second")
    out["mbit_c2s"] = round(fwd / 1e6, 1) if fwd else 0.0
    out["mbit_s2c"] = round(rev / 1e6, 1) if rev else 0.0
    out["mbit_rx_total"] = round(out["mbit_c2s"] + out["mbit_s2c"], 1)
    if not end and not ms.aborted:
        out["error"] = (j.get("error") or stderr or "no iperf3 result")[:200]
    out["slab_kib_base"] = base_slab
    return out


def case_duplex_memory(sb: Sandbox, prm: Params, say):
    import shutil
    if not shutil.which("iperf3"):
        raise CaseError("iperf3 is not installed (scripts/setup.sh installs it)")
    ns = sb.new_netns()
    seconds = prm.duplex_seconds
    metrics: dict = {}
    runs = []
    sb.accel.unload()
    for length, par in prm.duplex_configs:
        cfg = f"l{length}_P{par}"
        res = {}
        for mode in MODES:
            if mode == "accel":
                sb.accel.load()
            before = sb.accel.counters()
            say(f"  duplex {cfg}: {mode} path, {seconds:g} s (abort if SUnreclaim grows > {prm.slab_abort_mib} MiB)")
            r = _iperf_run(sb, ns, mode, length, par, seconds, prm)
            r["counters"] = delta(sb.accel.counters(), before)
            if mode == "accel":
                t0 = time.monotonic()
                sb.accel.unload()
                deadline = time.monotonic() + 15
                while meminfo_kib() - r["slab_kib_base"] > 64 * 1024 and time.monotonic() < deadline:
                    time.sleep(0.2)
                r["slab_after_unload_mib"] = round((meminfo_kib() - r["slab_kib_base"]) / 1024, 1)
                r["reclaim_s"] = round(time.monotonic() - t0, 1)
            res[mode] = r
            say(f"    {cfg} {mode}: rx {r['mbit_rx_total']} Mbit/s, SUnreclaim +{r['slab_growth_mib']} MiB, "
                f"TCP mem +{r['tcp_mem_growth_mib']} MiB" + (" ABORTED" if r["aborted"] else ""))
        k, a = res["kernel"], res["accel"]
        for mode, r in res.items():
            for key, v in r.items():
                if key == "counters":
                    for ck, cv in v.items():
                        metrics[f"{cfg}.{mode}.{ck}"] = cv
                elif key != "slab_kib_base":
                    metrics[f"{cfg}.{mode}.{key}"] = v
        kp, ap = [], []
        if k.get("error") or k["mbit_rx_total"] == 0:
            kp.append(f"{cfg}: iperf3 on the kernel path: {k.get('error', 'no throughput')}")
        if a["aborted"]:
            ap.append(f"{cfg}: SUnreclaim grew > {prm.slab_abort_mib} MiB within {seconds:g} s "
                      f"(+{a['slab_growth_mib']} MiB; kernel path +{k['slab_growth_mib']} MiB); run aborted")
        else:
            bound = max(prm.mem_bound_mib, 4 * k["slab_growth_mib"] + 64)
            if a["slab_growth_mib"] > bound:
                ap.append(f"{cfg}: SUnreclaim +{a['slab_growth_mib']} MiB in {seconds:g} s "
                          f"(kernel path +{k['slab_growth_mib']} MiB)")
            tbound = max(prm.mem_bound_mib, 4 * k["tcp_mem_growth_mib"] + 64)
            if a["tcp_mem_growth_mib"] > tbound:
                ap.append(f"{cfg}: TCP mem +{a['tcp_mem_growth_mib']} MiB (kernel path +{k['tcp_mem_growth_mib']})")
        if k["mbit_rx_total"] and a["mbit_rx_total"] < prm.duplex_min_ratio * k["mbit_rx_total"]:
            ap.append(f"{cfg}: received {a['mbit_rx_total']} Mbit/s accelerated vs {k['mbit_rx_total']} on the "
                      f"kernel path")
        if not a["aborted"] and a["counters"].get("redirected", 1) == 0:
            ap.append(f"{cfg}: not accelerated (redirect counter did not move)")
        runs.append(Run("kernel", {"problems": kp}, {}))
        runs.append(Run("accel", {"problems": ap}, {}))
    summary = "; ".join(f"{l}B x{p}: {metrics[f'l{l}_P{p}.accel.mbit_rx_total']} vs "
                        f"{metrics[f'l{l}_P{p}.kernel.mbit_rx_total']} Mbit/s, slab "
                        f"+{metrics[f'l{l}_P{p}.accel.slab_growth_mib']} vs "
                        f"+{metrics[f'l{l}_P{p}.kernel.slab_growth_mib']} MiB" for l, p in prm.duplex_configs)
    st, det = judge(runs, f"full-duplex small writes (accel vs kernel): {summary}")
    if st == "fail":
        metrics["summary"] = summary
    return st, det, metrics


# ------------------------------------------------------------------------------------------ 12
def case_msg_waitall(sb: Sandbox, prm: Params, say):
    """recv(n, MSG_WAITALL) of records written in parts with a pause. On the kernel path every read must come
    back full (a short read there is a harness problem: fail). Accelerated, tcp_bpf_recvmsg returns as soon as
    the sockmap queue gave it anything (net/ipv4/tcp_bpf.c ignores MSG_WAITALL): a short read is reported as
    ``kernel-hazard`` with the numbers. In every mode the data must be complete and in order (fail otherwise)."""
    ns = sb.new_netns()
    sp = _both(sb, ns, "waitall", {"port": PORT, "sizes": prm.waitall_sizes, "rounds": prm.waitall_rounds,
                                   "pause_s": prm.waitall_pause_s}, say)
    dm = _both(sb, ns, "waitall_demoted", {"port": PORT, "records": prm.waitall_demote_records,
                                           "pause_s": prm.waitall_pause_s}, say)
    hazard: list[str] = []
    for r in sp:
        a = r.result
        if a.get("short_reads"):
            msg = (f"recv(n, MSG_WAITALL) returned short in {a['short_reads']} of {a['reads']} reads "
                   f"({a['bytes_returned_short']} of {a['bytes_asked_short']} B asked by those reads; smallest "
                   f"first reads: {a['first_reads']})")
            r.problems.append(f"HAZARD {msg}" if r.mode == "accel" else msg)
            if r.mode == "accel":
                hazard.append(msg)
    for r in dm:
        a = r.result
        if r.mode == "accel" and r.counters.get("demoted", 1) == 0:
            r.problems.append("the one-way stream was not demoted (demoted counter 0): the check after a "
                              "demotion did not run as intended")
        if "burst_first_read" in a and a["burst_first_read"] < a["burst_bytes"]:
            fr = a["burst_first_read"]
            msg = (f"after a demotion (a one-way stream of {prm.waitall_demote_records} 64 B records) recv("
                   f"{a['burst_bytes']}, MSG_WAITALL) returned {fr} B"
                   + (f" (records 0-{fr // 64 - 1})" if fr and fr % 64 == 0 else ""))
            r.problems.append(f"HAZARD {msg}" if r.mode == "accel" else msg)
            if r.mode == "accel":
                hazard.append(msg)
        if a.get("after_short_reads"):
            msg = (f"on the TCP path after the demotion {a['after_short_reads']} of {a['after_reads']} "
                   f"MSG_WAITALL reads came back short ({a['after_first_reads']})")
            r.problems.append(f"HAZARD {msg}" if r.mode == "accel" else msg)
            if r.mode == "accel":
                hazard.append(msg)
    metrics = {**metrics_of(sp, "split."), **metrics_of(dm, "demoted.")}
    runs = sp + dm
    k = sp[0].result
    st, det = judge(runs, f"recv(n, MSG_WAITALL) returned every record in full ({k.get('reads')} reads of "
                          f"{', '.join(map(str, prm.waitall_sizes))} B written in parts, both directions; after a "
                          f"demotion too); data complete and in order",
                    hazard_if=lambda p: p.startswith("HAZARD "))
    if st == "kernel-hazard":
        det = (f"kernel hazard: {'; '.join(hazard)} on the accelerated path, while the kernel path returned every "
               f"read in full; data complete and in order (SHA-256)")
    elif st == "fail" and det.startswith("accelerated"):
        real = [p for r in runs if r.mode == "accel" for p in r.problems if not p.startswith("HAZARD ")]
        more = f" (+{len(real) - 1} more)" if len(real) > 1 else ""
        det = f"accelerated: {real[0]}{more}" + (" (and short MSG_WAITALL reads)" if hazard else "")
    return st, det, metrics


# ------------------------------------------------------------------------------------------ 13
def _oob_round_text(r: dict) -> str:
    """What one urgent-data round got against what TCP defines (only the parts that differ)."""
    e = r["expected"]
    who = f"{r['dir']} {'with' if r['oobinline'] else 'without'} SO_OOBINLINE (sent {r['sent']!r}, urgent byte " \
          f"{r['sent'][e['mark']]!r})"
    bits = []
    if r["oob"] != e["oob"]:
        got = repr(r["oob"]) if r["oob"] is not None else (r["oob_error"] or "nothing")
        bits.append(f"recv(1, MSG_OOB) returned {got} (expected {e['oob']!r})")
    if r["inline"] != e["inline"]:
        bits.append(f"inline {r['inline']!r} (expected {e['inline']!r})")
    if r["mark"] != e["mark"]:
        bits.append("SIOCATMARK never true" if r["mark"] is None else f"SIOCATMARK at offset {r['mark']}")
        bits[-1] += f" (expected at offset {e['mark']})"
    if r["pollpri"] != e["pollpri"]:
        bits.append("no POLLPRI" if not r["pollpri"] else "POLLPRI without urgent data")
    return f"{who}: {', '.join(bits)}"


def case_msg_oob(sb: Sandbox, prm: Params, say):
    """TCP urgent data (``send(b, MSG_OOB)``) in the middle of a stream, both directions, the receiver without
    and with SO_OOBINLINE. On the kernel path the urgent byte, the inline stream, the mark (SIOCATMARK) and
    POLLPRI must be as TCP defines (a mismatch there is a harness problem: fail). Accelerated, an sk_msg program
    cannot see MSG_OOB: the sender's urgent byte is redirected as ordinary data (no urgent pointer) and the
    receiver's ``recv(1, MSG_OOB)`` reads the sockmap queue like a plain recv (tcp_bpf_recvmsg ->
    sk_msg_recvmsg look only at MSG_PEEK): a mismatch is reported as ``kernel-hazard`` with what was received
    against what was expected; bytes that never arrive at all are named first, as loss."""
    ns = sb.new_netns()
    runs = _both(sb, ns, "oob", {"port": PORT, "wait_s": prm.oob_wait_s}, say)
    loss: list[str] = []
    wrong: list[str] = []
    for r in runs:
        for x in r.result.get("rounds", []):
            key = f"{x['dir']}.{'inline' if x['oobinline'] else 'oob'}"
            for k in ("oob", "oob_error", "inline", "mark", "pollpri", "lost", "ok"):
                r.extra[f"{key}.{k}"] = x[k]
            if x["lost"] > 0:
                msg = (f"LOSS: {x['dir']} {'with' if x['oobinline'] else 'without'} SO_OOBINLINE: {x['lost']} of "
                       f"{len(x['sent'])} B never received (sent {x['sent']!r}, got MSG_OOB {x['oob']!r} and "
                       f"inline {x['inline']!r})")
                r.problems.append(f"HAZARD {msg}" if r.mode == "accel" else msg)
                if r.mode == "accel":
                    loss.append(msg)
            if not x["ok"]:
                msg = _oob_round_text(x)
                r.problems.append(f"HAZARD {msg}" if r.mode == "accel" else msg)
                if r.mode == "accel":
                    wrong.append(msg)
    metrics = metrics_of(runs)
    a = runs[-1].result
    st, det = judge(runs, f"urgent data as TCP defines in {a.get('rounds_total')} rounds (both directions, without "
                          f"and with SO_OOBINLINE): the MSG_OOB byte, the inline stream, SIOCATMARK and POLLPRI "
                          f"same as the kernel path", hazard_if=lambda p: p.startswith("HAZARD "))
    if st == "kernel-hazard":
        lost = sum(max(0, x["lost"]) for x in a.get("rounds", []))
        head = (f"{len(loss)} round(s) lost {lost} B: {'; '.join(loss)}; " if loss else "")
        det = (f"kernel hazard: {head}TCP urgent data is not urgent on the accelerated path ({a.get('rounds_wrong')} of "
               f"{a.get('rounds_total')} rounds differ): {'; '.join(wrong)}; "
               + ("" if loss else "no byte lost; ")
               + "the kernel path delivered the urgent byte, the mark and POLLPRI as TCP defines")
    elif st == "fail" and det.startswith("accelerated"):
        real = [p for r in runs if r.mode == "accel" for p in r.problems if not p.startswith("HAZARD ")]
        more = f" (+{len(real) - 1} more)" if len(real) > 1 else ""
        det = f"accelerated: {real[0]}{more}" + (" (and urgent data mishandled)" if loss or wrong else "")
    return st, det, metrics


CASES = {
    "sizes": (case_sizes, "1 B .. 1 MiB single sends and iovecs, both directions at once"),
    "early_data": (case_early_data, "data sent right after connect(), before the peer is in the sockhash: order"),
    "shutdown": (case_shutdown, "SHUT_WR -> EOF + epoll; close() and RST mid-stream; sockhash entries gone"),
    "peek": (case_peek, "MSG_PEEK, FIONREAD, non-blocking + epoll, SO_RCVTIMEO"),
    "sendfile_splice": (case_sendfile_splice, "sendfile() sender; splice() reader (kernel hazard)"),
    "backpressure": (case_backpressure, "slow reader, fast writer: bounded memory, writer blocks and resumes"),
    "large": (case_large, "one > 2 GiB stream; 1-4 MiB request/response; no stall"),
    "concurrency": (case_concurrency, "200 concurrent connections; connect/transfer/close churn; 0 B lost"),
    "unload_reload": (case_unload_reload, "unload and load again while 100 streams flow: 0 B lost"),
    "netns_collision": (case_netns_collision, "identical 4-tuples in two network namespaces"),
    "duplex_memory": (case_duplex_memory, "full-duplex small writes: throughput and kernel memory"),
    "msg_waitall": (case_msg_waitall, "recv(n, MSG_WAITALL) of records written in parts (kernel hazard)"),
    "msg_oob": (case_msg_oob, "TCP urgent data (MSG_OOB), with and without SO_OOBINLINE (kernel hazard)"),
}
