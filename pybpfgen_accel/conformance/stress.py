"""Stress mode of the conformance suite (issue 11): every stress case, round after round, under adversarial
timing, on the kernel path and accelerated, counting what goes wrong on each.

    from pybpfgen_accel.conformance.stress import run_stress
    rep = run_stress("build/accel.bpf.o", cases=None, rounds=10, seed=1, progress=print,
                     pin_root="/sys/fs/bpf/pbg-stress", opts=StressOptions(duplex_bytes=2 << 20))

A round (seed R) draws its conditions from R (stress_plan.draw_round): CPU hogs, a CPU limit on one end, random
pauses, blocking or epoll I/O, sizes, the unanswered budget (low or default, written to the ``settings`` map as
``pybpfgen policy set`` does). It runs the same workload on the kernel path and then accelerated, each end in
its own process and cgroup, aborting a path when no byte moves for ``stall_s`` while an end still wants to move
some. A count the accelerated path shows and the kernel path does not fails the round (stress_count.judge).
"""
from __future__ import annotations

import contextlib
import json
import os
import queue
import secrets
import threading
import time

from .cases import PORT
from .env import CaseError, Sandbox, Worker, delta
from .runner import _check_root, _sigterm_as_interrupt
from .stress_count import ACCEL_INFO, judge, summarize, tally
from .stress_env import StressEnv
from .stress_plan import (STRESS_CASE_NAMES, STRESS_CASES, RoundParams, StressOptions, describe, draw_round,
                          round_seeds)

MODES = ("kernel", "accel")
WORKER = "pybpfgen_accel.conformance.stress_worker"


def reproduce_command(case: str, seed: int, opts: StressOptions, object_path: str) -> str:
    d = StressOptions()
    cmd = f"pybpfgen doctor --conformance --stress --cases {case} --seed {seed} --rounds 1"
    if opts.budget != d.budget:
        cmd += f" --budget {opts.budget}"
    if case == "full_duplex" and opts.duplex_bytes != d.duplex_bytes:
        cmd += f" --duplex-bytes {opts.duplex_bytes}"
    if case != "full_duplex" and opts.max_bytes != d.max_bytes:
        cmd += f" --max-bytes {opts.max_bytes}"
    if opts.hogs != d.hogs:
        cmd += f" --hogs {opts.hogs}"
    if opts.low_msgs is not None:
        cmd += f" --low-budget-msgs {opts.low_msgs}"
    if opts.low_kib is not None:
        cmd += f" --low-budget-kib {opts.low_kib}"
    if opts.stall_s != d.stall_s:
        cmd += f" --stall-seconds {opts.stall_s:g}"
    return cmd + f" --object {object_path}"


class _Path:
    """One path of one round: the two worker processes and the stall watch."""

    def __init__(self, sb: Sandbox, env: StressEnv, netns: str, mode: str, rp: RoundParams, opts: StressOptions):
        self.sb, self.env, self.ns, self.mode, self.rp, self.opts = sb, env, netns, mode, rp, opts
        self.q: queue.Queue = queue.Queue()
        self.workers: dict[str, Worker] = {}
        self.stalled = False
        self.stall_note = ""

    def _spawn(self, role: str) -> Worker:
        spec = {"role": role, "path": self.mode, "port": PORT, "round": self.rp.to_dict(),
                "timeout": self.opts.round_timeout_s + 60}
        w = Worker(self.sb, f"stress-{role}", {}, netns=self.ns, cgroup=self.env.cgroups(self.mode, role),
                   timeout=self.opts.round_timeout_s, label=f"{self.mode} {role}", module=WORKER, spec=spec)
        self.workers[role] = w

        def pump():
            with contextlib.suppress(Exception):
                for line in w.proc.stdout:
                    with contextlib.suppress(ValueError):
                        self.q.put((role, json.loads(line)))
            self.q.put((role, None))
        threading.Thread(target=pump, daemon=True).start()
        return w

    def run(self) -> tuple[dict | None, dict | None]:
        results: dict[str, dict] = {}
        self._spawn("server")
        deadline = time.monotonic() + 60
        while "server" not in results:
            try:
                role, msg = self.q.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise CaseError(f"{self.mode} server: not listening within 60 s") from None
            if msg is None or msg.get("event") == "error":
                why = msg.get("error") if msg else f"exited: {self.workers['server'].stderr_tail()}"
                raise CaseError(f"{self.mode} server: {why}")
            if msg.get("event") == "listening":
                break
        self._spawn("client")
        moved = {"server": 0, "client": 0}
        want = {"server": True, "client": True}
        started: set[str] = set()
        t0 = last = time.monotonic()
        total, abort_at = 0, None
        while len(results) < 2:
            try:
                role, msg = self.q.get(timeout=0.2)
            except queue.Empty:
                role, msg = None, {}
            now = time.monotonic()
            if role is not None and msg is None:
                if role not in results:
                    w = self.workers[role]
                    time.sleep(0.1)
                    results[role] = {"crashed": f"exited rc={w.proc.poll()} without a result: {w.stderr_tail()}"}
            elif msg:
                ev = msg.get("event")
                if ev == "started":
                    started.add(role)
                    last = now
                elif ev == "progress":
                    moved[role], want[role] = msg["moved"], msg["want"]
                elif ev == "result":
                    results[role] = msg
                elif ev == "error":
                    results[role] = {"crashed": msg.get("error")}
            if sum(moved.values()) != total:
                total, last = sum(moved.values()), now
            if abort_at is None:
                wanting = [r for r in want if want[r] and r not in results]
                why = None
                if len(started) == 2 and wanting and now - last > self.opts.stall_s:
                    why = (f"no byte moved for {now - last:.1f} s while the {' and '.join(wanting)} still wanted "
                           f"to move bytes ({moved['client']} B moved by the client, {moved['server']} B by the "
                           f"server)")
                elif now - t0 > self.opts.round_timeout_s:
                    why = f"not finished after {self.opts.round_timeout_s:.0f} s"
                elif len(started) < 2 and now - t0 > 60:
                    why = "the ends did not start within 60 s"
                if why:
                    self.stalled, self.stall_note, abort_at = True, why, now
                    for w in self.workers.values():
                        w.send("abort")
            elif now - abort_at > 10:
                for r in ("server", "client"):
                    results.setdefault(r, {"crashed": "no result 10 s after abort"})
        for w in self.workers.values():
            w.kill()
        return results.get("server"), results.get("client")


def _leftovers(sb: Sandbox, before: int, timeout: float = 3.0) -> int:
    deadline = time.monotonic() + timeout
    while True:
        n = sb.accel.sockmap_entries() - before
        if n <= 0 or time.monotonic() > deadline:
            return max(0, n)
        time.sleep(0.1)


def run_round(sb: Sandbox, env: StressEnv, netns: str, rp: RoundParams, opts: StressOptions) -> dict:
    from pybpfgen_accel import spec as accel
    t0 = time.monotonic()
    accel.policy_set(rp.max_msgs, rp.max_kib, object=sb.accel.name, pin_root=sb.pin_root)
    rec: dict = {"seed": rp.seed, "budget": rp.budget, "params": rp.to_dict(), "notes": []}
    try:
        if rp.hogs:
            env.start_hogs(opts.round_timeout_s * 2 + 60)
        if not env.throttle(rp.throttle, rp.quota_pct):
            rec["notes"].append("no CPU controller: the throttle of this round was skipped")
        for mode in MODES:
            before, entries = sb.accel.counters(), sb.accel.sockmap_entries()
            p = _Path(sb, env, netns, mode, rp, opts)
            try:
                server, client = p.run()
            except CaseError as e:
                server = client = {"crashed": str(e)}
                for w in p.workers.values():
                    w.kill()
            left = _leftovers(sb, entries)
            counts = tally(server, client, stalled=p.stalled, leftovers=left)
            if p.stalled:
                counts["notes"].insert(0, f"stall: {p.stall_note}")
            if left:
                counts["notes"].append(f"{left} socket(s) still in the sockhash 3 s after every socket was closed")
            rec[mode] = counts
            d = delta(sb.accel.counters(), before)
            if mode == "accel":
                rec["accel_info"] = {k: d.get(k, 0) for k in ACCEL_INFO}
            elif d.get("redirected", 0):
                # the kernel path's cgroup has nothing attached: a harness problem, shown as a kernel-path error
                counts["errors"] += 1
                counts["error_kinds"]["harness:kernel-path-redirected"] = 1
                counts["notes"].append(f"the kernel path was redirected {d['redirected']} times")
    finally:
        env.stop_hogs()
        env.unthrottle()
    rec["why"] = judge(rec["kernel"], rec["accel"], strict=opts.strict)
    rec["notes"] += [f"accel: {n}" for n in rec["accel"]["notes"]] + [f"kernel: {n}" for n in rec["kernel"]["notes"]]
    rec["seconds"] = round(time.monotonic() - t0, 1)
    return rec


def _round_line(case: str, i: int, n: int, rec: dict) -> str:
    a, k, info = rec["accel"], rec["kernel"], rec["accel_info"]

    def c(x):
        bits = [f"{key} {x[key]}" for key in ("errors", "stalls", "lost", "dup", "reordered", "corrupt", "leftovers")
                if x[key]]
        return ", ".join(bits) or "clean"
    return (f"{case} round {i}/{n} seed {rec['seed']}: {'FAIL' if rec['why'] else 'pass'} ({rec['seconds']} s) "
            f"kernel: {c(k)}; accel: {c(a)}; redirected {info['redirected']}, demoted {info['demoted']}, "
            f"released {info['released']}")


def run_stress(object_path: str, cases: list[str] | None = None, rounds: int = 10, seed: int | None = None,
               progress=None, pin_root: str | None = None, *, opts: StressOptions | None = None) -> dict:
    say = progress or (lambda s: None)
    names = list(cases) if cases else list(STRESS_CASE_NAMES)
    unknown = [n for n in names if n not in STRESS_CASES]
    if unknown:
        raise ValueError(f"unknown stress case(s) {', '.join(unknown)}; known: {', '.join(STRESS_CASE_NAMES)}")
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    if pin_root is None:
        raise ValueError("pin_root is required (a private directory under /sys/fs/bpf)")
    opts = (opts or StressOptions()).check()
    seed = secrets.randbelow(1 << 32) if seed is None else int(seed)
    object_path = os.path.abspath(object_path)
    if not os.path.isfile(object_path):
        raise FileNotFoundError(object_path)
    why = _check_root()
    rep: dict = {"object": object_path, "seed": seed, "rounds": rounds, "budget": opts.budget,
           "duplex_bytes": opts.duplex_bytes, "max_bytes": opts.max_bytes, "stall_s": opts.stall_s, "cases": [],
                 "sandboxes": []}  # the tags in the names of the run's netns and cgroups
    if why:
        raise CaseError(why)
    say(f"stress: seed {seed}, {rounds} round(s) per case, cases {', '.join(names)}")
    with _sigterm_as_interrupt():
        for name in names:
            say(f"{name}: {STRESS_CASES[name]}")
            recs = []
            sb = env = None
            try:
                sb = Sandbox(object_path, pin_root, [PORT], progress=say)
                rep["sandboxes"].append(sb.tag)
                env = StressEnv(sb)
                sb.accel.load()
                ns = sb.new_netns()
                for i, rs in enumerate(round_seeds(seed, rounds), 1):
                    rp = draw_round(name, rs, opts)
                    say(f"{name} round {i}/{rounds} seed {rs}: {describe(rp)}")
                    rec = run_round(sb, env, ns, rp, opts)
                    rec["round"] = i
                    rec["reproduce"] = reproduce_command(name, rs, opts, object_path)
                    recs.append(rec)
                    say(_round_line(name, i, rounds, rec))
            finally:
                if sb is not None:
                    try:
                        sb.kill_all()
                        if env is not None:
                            env.close()
                    finally:
                        sb.close()
                        if env is not None:
                            env.undo_controllers()
            summary = summarize(name, recs)
            summary["round_details"] = [{k: r[k] for k in ("round", "seed", "budget", "seconds", "why", "accel_info",
                                                           "params") if k in r}
                                        | {"kernel": _slim(r["kernel"]), "accel": _slim(r["accel"])} for r in recs]
            rep["cases"].append(summary)
    rep["ok"] = all(c["status"] == "pass" for c in rep["cases"])
    return rep


def _slim(c: dict) -> dict:
    return {k: v for k, v in c.items() if k != "notes"} | {"notes": c.get("notes", [])[:4]}
