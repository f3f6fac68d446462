"""Stress mode, the pure part: seeds, the parameters of a round, and the byte plan of each stream.

Everything here is a deterministic function of a seed (no I/O, no clock), so that the orchestrator and the two
worker processes of a round compute the same plan, and ``--seed R --rounds 1`` repeats round R's parameters.

Seeds: round 0 of a run with seed S uses S itself; round i+1 uses ``next_seed(seed of round i)``. The seed a
failing round prints therefore reproduces it as the first round of a new run.
Standard library only.
"""
from __future__ import annotations

import hashlib
import math
import random
from dataclasses import asdict, dataclass, field

KiB, MiB = 1 << 10, 1 << 20
HEADER = 16                      # record header: magic, sequence number, payload length, CRC-32 of the payload
MIN_STREAM = HEADER + 1
SEED_MAX = 1 << 32

# the writes of the full-duplex case (issue 11): fixed sizes, and random ones up to 300 000 B
DUPLEX_WRITE_MIX = (1, 7, 64, 1000, 1460, 4 * KiB, 64 * KiB, 256 * KiB)
DUPLEX_RANDOM_MAX = 300_000
DUPLEX_RECV = 1 * MiB

STRESS_CASES = {
    "full_duplex": "each end writes N bytes in mixed sizes (1 B .. 300 000 B) while the other end reads "
                   "recv(1 MiB); two threads per connection, blocking, no timeouts",
    "stream": "one-way stream, writes of 1 B .. 1 MiB; the reader never answers (demotion, release)",
    "duplex": "both directions at once, writes of 1 B .. 1 MiB, 1-4 connections",
    "reqresp": "request/response turns of 1-8 writes of 1 B .. 1 MiB each way, 1-3 connections",
    "short_conns": "16-48 concurrent short connections (1-3 request/response turns of 1-3 writes of 1 B .. 4 KiB), "
                   "half the rounds writing right after connect(): pairing, early data, leftovers",
}
STRESS_CASE_NAMES = list(STRESS_CASES)
BUDGETS = ("both", "low", "default")
IO_MODES = ("blocking", "epoll")
HOGS = ("random", "always", "never")
PAUSE_BUDGET_S = 1.0


def derive_seed(seed: int, *parts) -> int:
    """A seed in [0, 2**32) derived from ``seed`` and ``parts`` (stable across Python versions and runs)."""
    text = ":".join([str(int(seed))] + [str(p) for p in parts])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def next_seed(seed: int) -> int:
    return derive_seed(seed, "next-round")


def round_seeds(seed: int, rounds: int) -> list[int]:
    """``[seed, next_seed(seed), next_seed(next_seed(seed)), ...]`` (``rounds`` of them)."""
    out, s = [], int(seed)
    for _ in range(rounds):
        out.append(s)
        s = next_seed(s)
    return out


def log_uniform(rng: random.Random, lo: int, hi: int) -> int:
    """An integer in [lo, hi], uniform in log scale (as many 1-10 B draws as 100 KiB-1 MiB ones)."""
    if hi <= lo:
        return lo
    return min(hi, max(lo, int(math.exp(rng.uniform(math.log(lo), math.log(hi + 1))))))


@dataclass
class StressOptions:
    """What the user chose for a run (command line / run_stress arguments); the rest is drawn per round."""
    budget: str = "both"             # both: each round draws low (2/3) or default; low; default
    duplex_bytes: int = 16 * MiB     # full_duplex: bytes each end sends
    max_bytes: int = 4 * MiB         # other cases: at most this many bytes per direction and connection
    stall_s: float = 5.0             # no byte moved for this long while an end wants to move bytes: a stall
    round_timeout_s: float = 300.0   # hard limit for one path of one round (then: a stall)
    hogs: str = "random"             # random (3 rounds in 4) | always | never
    low_msgs: int | None = None      # a low budget uses this many messages instead of a drawn number
    low_kib: int | None = None       # ... and this many KiB
    strict: bool = False             # known kernel hazards (blocking-recv-eagain) fail a round too

    def check(self) -> "StressOptions":
        if self.budget not in BUDGETS:
            raise ValueError(f"budget must be one of {', '.join(BUDGETS)}, not {self.budget!r}")
        if self.hogs not in HOGS:
            raise ValueError(f"hogs must be one of {', '.join(HOGS)}, not {self.hogs!r}")
        for name in ("low_msgs", "low_kib"):
            v = getattr(self, name)
            if v is not None and not 1 <= v < 1 << 32:
                raise ValueError(f"{name} must be from 1 to 4294967295")
        if self.duplex_bytes < MIN_STREAM or self.max_bytes < MIN_STREAM:
            raise ValueError(f"stream sizes must be at least {MIN_STREAM} B")
        if self.stall_s <= 0:
            raise ValueError("stall_s must be positive")
        return self


@dataclass
class RoundParams:
    case: str
    seed: int
    budget: str                      # low | default
    max_msgs: int                    # written to the settings map (0 = default 256)
    max_kib: int                     # (0 = default 4096)
    hogs: bool                       # a CPU hog on every core
    throttle: str | None             # None | "client" | "server": that end's cgroup gets cpu.max quota_pct %
    quota_pct: int
    io: str                          # blocking (a thread per direction) | epoll (non-blocking, one thread)
    conns: int
    pause_p: float                   # probability of a pause before a system call
    pause_max_s: float
    connect_delay_s: float           # the client waits this long after connect() before its first write
    recv_size: int
    c2s_bytes: int
    s2c_bytes: int                   # 0: one-way
    turns: int                       # reqresp: request/response turns; 0 otherwise
    extra: dict = field(default_factory=dict)
    pause_budget_s: float = PAUSE_BUDGET_S   # at most this much pausing per direction of a connection

    def to_dict(self) -> dict:
        return asdict(self)


def draw_round(case: str, seed: int, opts: StressOptions | None = None) -> RoundParams:
    """The adversarial conditions of one round of ``case``: a pure function of (case, seed, opts)."""
    if case not in STRESS_CASES:
        raise ValueError(f"unknown stress case {case!r}; known: {', '.join(STRESS_CASE_NAMES)}")
    opts = (opts or StressOptions()).check()
    rng = random.Random(derive_seed(seed, "round", case))
    # every draw happens whatever the options force, so that forcing one condition leaves the others as they are
    drawn_low = rng.random() < 2 / 3
    budget = opts.budget if opts.budget != "both" else ("low" if drawn_low else "default")
    max_msgs, max_kib = rng.choice((2, 4, 8, 8, 16, 32)), rng.choice((16, 64, 256, 1024))
    if budget == "low":
        max_msgs = opts.low_msgs or max_msgs
        max_kib = opts.low_kib or max_kib
    else:
        max_msgs = max_kib = 0
    hogs = rng.random() < 0.75
    hogs = hogs if opts.hogs == "random" else opts.hogs == "always"
    throttle = rng.choice((None, "client", "server"))
    quota_pct = rng.choice((10, 20, 30, 50))
    io = "blocking" if case == "full_duplex" else rng.choice(IO_MODES)
    pause_p = rng.choice((0.0, 0.02, 0.1, 0.3))
    pause_max_s = rng.choice((0.0005, 0.005, 0.05))
    connect_delay_s = 0.0 if rng.random() < 0.1 else 0.05
    turns = 0
    if case == "full_duplex":
        conns, recv_size = 1, DUPLEX_RECV
        c2s = s2c = opts.duplex_bytes
    else:
        recv_size = rng.choice((1 * MiB, 64 * KiB, 4 * KiB, 1000))
        top = opts.max_bytes
        if case == "stream":
            conns = rng.randint(1, 3)
            c2s, s2c = log_uniform(rng, max(MIN_STREAM, top // 16), top), 0
        elif case == "duplex":
            conns = rng.randint(1, 4)
            c2s, s2c = log_uniform(rng, max(MIN_STREAM, top // 16), top), log_uniform(rng, MIN_STREAM, top)
        elif case == "reqresp":
            conns = rng.randint(1, 3)
            turns = rng.randint(2, 24)
            c2s = s2c = 0                # decided by the turns (see direction_plan)
        else:
            conns = rng.randint(16, 48)
            turns = rng.randint(1, 3)
            c2s = s2c = 0
            connect_delay_s = 0.0 if rng.random() < 0.5 else connect_delay_s
    extra: dict = {} if case == "full_duplex" else {"max_bytes": opts.max_bytes}
    if case == "short_conns":
        extra.update(write_max=4 * KiB, writes_per_turn=3)
    return RoundParams(case=case, seed=int(seed), budget=budget, max_msgs=max_msgs, max_kib=max_kib, hogs=hogs,
                       throttle=throttle, quota_pct=quota_pct, io=io, conns=conns, pause_p=pause_p,
                       pause_max_s=pause_max_s, connect_delay_s=connect_delay_s, recv_size=recv_size,
                       c2s_bytes=c2s, s2c_bytes=s2c, turns=turns, extra=extra)


def describe(rp: RoundParams) -> str:
    """One line for progress output and failure reports."""
    bud = f"budget {rp.max_msgs} msgs/{rp.max_kib} KiB" if rp.budget == "low" else "default budget"
    thr = f"{rp.throttle} at {rp.quota_pct}% CPU" if rp.throttle else "no throttle"
    size = (f"{rp.turns} turns" if rp.turns else
            f"{rp.c2s_bytes} B" + (f" / {rp.s2c_bytes} B" if rp.s2c_bytes else " one-way"))
    return (f"{bud}, {'hogs' if rp.hogs else 'no hogs'}, {thr}, {rp.io}, {rp.conns} conn, {size}, "
            f"pauses p={rp.pause_p} <= {rp.pause_max_s * 1000:g} ms, recv({rp.recv_size})")


# ------------------------------------------------------------------------------------------ byte plans
@dataclass
class DirPlan:
    """One direction of one connection: the write sizes, the record payload sizes and, for request/response,
    where each turn ends (a byte offset, at a write boundary)."""
    writes: list
    records: list
    total: int
    turn_ends: list | None = None

    @property
    def n_records(self) -> int:
        return len(self.records)


def _duplex_write(rng: random.Random) -> int:
    k = rng.randrange(len(DUPLEX_WRITE_MIX) + 1)
    return DUPLEX_WRITE_MIX[k] if k < len(DUPLEX_WRITE_MIX) else rng.randint(1, DUPLEX_RANDOM_MAX)


def _writes_for(rng: random.Random, total: int, draw) -> list[int]:
    out, left = [], total
    while left > 0:
        w = min(left, draw(rng))
        out.append(w)
        left -= w
    return out


def _records_for(rng: random.Random, total: int) -> list[int]:
    """Payload sizes of records (HEADER + payload each) that fill exactly ``total`` bytes (>= MIN_STREAM)."""
    out, left = [], total
    while left:
        p = log_uniform(rng, 1, 64 * KiB)
        if left - (HEADER + p) < MIN_STREAM:
            p = left - HEADER
        out.append(p)
        left -= HEADER + p
    return out


def direction_plan(rp: RoundParams, conn: int, direction: str) -> DirPlan:
    """The plan of ``direction`` (``c2s`` | ``s2c``) of connection ``conn``; empty when that way is silent."""
    rng = random.Random(derive_seed(rp.seed, "plan", rp.case, conn, direction))
    if rp.turns:
        ends, writes = [], []
        top = rp.extra.get("write_max") or min(1 * MiB, rp.extra.get("max_bytes", 4 * MiB) // 4 or 1)
        for _ in range(rp.turns):
            writes += [log_uniform(rng, 1, top) for _ in range(rng.randint(1, rp.extra.get("writes_per_turn", 8)))]
            ends.append(sum(writes))
        short = MIN_STREAM - sum(writes)
        if short > 0:
            writes[-1] += short
            ends[-1] += short
        total = sum(writes)
        return DirPlan(writes, _records_for(rng, total), total, ends)
    want = rp.c2s_bytes if direction == "c2s" else rp.s2c_bytes
    if want <= 0:
        return DirPlan([], [], 0)
    draw = _duplex_write if rp.case == "full_duplex" else (lambda r: log_uniform(r, 1, 1 * MiB))
    writes = _writes_for(rng, max(MIN_STREAM, want), draw)
    total = sum(writes)
    return DirPlan(writes, _records_for(rng, total), total)


def gates(rp: RoundParams, conn: int, side: str) -> list[int] | None:
    """Request/response: before sending turn t, ``side`` must have received ``gates[t]`` bytes from its peer
    (the client waits for the whole previous response, the server for the whole request). None otherwise."""
    if not rp.turns:
        return None
    if side == "client":
        peer = direction_plan(rp, conn, "s2c").turn_ends or []
        return [0] + peer[:-1]
    return list(direction_plan(rp, conn, "c2s").turn_ends or [])


def pause_rng(rp: RoundParams, conn: int, who: str) -> random.Random:
    return random.Random(derive_seed(rp.seed, "pause", rp.case, conn, who))
