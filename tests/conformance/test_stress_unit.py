"""Stress mode (issue 11), the parts that need no root: seeds, round parameters, stream plans, the record checker,
counting and judging, the report, and the command line."""
from __future__ import annotations

import random

import pytest

from pybpfgen_accel.conformance import stress_count as sc
from pybpfgen_accel.conformance import stress_plan as sp
from pybpfgen_accel.conformance.stress_stream import HDR, StreamChecker, StreamSource


# ------------------------------------------------------------------------------------------ seeds
def test_seeds_are_deterministic_and_distinct():
    a = sp.round_seeds(42, 50)
    assert a == sp.round_seeds(42, 50) and a[0] == 42
    assert len(set(a)) == 50 and all(0 <= s < sp.SEED_MAX for s in a)
    assert sp.round_seeds(43, 5) != a[:5]
    assert sp.derive_seed(1, "x", 2) == sp.derive_seed(1, "x", 2) != sp.derive_seed(1, "x", 3)


def test_a_failing_rounds_seed_reproduces_it_as_round_one():
    """`--seed R --rounds 1` with the seed round k printed runs round k's parameters again; the rounds after it too."""
    seeds = sp.round_seeds(7, 10)
    for k in (0, 3, 9):
        assert sp.round_seeds(seeds[k], 1) == [seeds[k]]
        assert sp.round_seeds(seeds[k], 10 - k) == seeds[k:]
        for case in sp.STRESS_CASE_NAMES:
            assert sp.draw_round(case, seeds[k]) == sp.draw_round(case, sp.round_seeds(seeds[k], 1)[0])


# ------------------------------------------------------------------------------------------ parameters
def test_draw_round_is_a_pure_function_of_case_seed_and_options():
    o = sp.StressOptions(duplex_bytes=1 << 20)
    assert sp.draw_round("duplex", 5, o) == sp.draw_round("duplex", 5, o)
    assert sp.draw_round("duplex", 5, o) != sp.draw_round("duplex", 6, o)
    with pytest.raises(ValueError, match="unknown stress case"):
        sp.draw_round("sizes", 1)


@pytest.mark.parametrize("case", sp.STRESS_CASE_NAMES)
def test_parameters_cover_the_adversarial_conditions(case):
    rps = [sp.draw_round(case, s) for s in sp.round_seeds(3, 300)]
    low = [r for r in rps if r.budget == "low"]
    assert 0.55 < len(low) / len(rps) < 0.8, "most rounds run with a low budget"
    assert all(1 < r.max_msgs <= 32 and r.max_kib >= 16 for r in low)
    assert all(r.max_msgs == r.max_kib == 0 for r in rps if r.budget == "default")
    assert {r.throttle for r in rps} == {None, "client", "server"}
    assert {r.hogs for r in rps} == {True, False}
    assert all(10 <= r.quota_pct <= 50 for r in rps)
    assert {r.pause_p for r in rps} >= {0.0, 0.3} and max(r.pause_max_s for r in rps) < 1.0
    if case == "full_duplex":
        assert {r.io for r in rps} == {"blocking"} and {r.conns for r in rps} == {1}
        assert {r.recv_size for r in rps} == {1 << 20}
        assert all(r.c2s_bytes == r.s2c_bytes == 16 << 20 for r in rps)
    else:
        assert {r.io for r in rps} == {"blocking", "epoll"}


def test_options_force_budget_and_hogs():
    o = sp.StressOptions(budget="low", low_msgs=8, hogs="always")
    rps = [sp.draw_round("full_duplex", s, o) for s in sp.round_seeds(1, 50)]
    assert all(r.budget == "low" and r.max_msgs == 8 and r.hogs for r in rps)
    base = [sp.draw_round("full_duplex", s) for s in sp.round_seeds(1, 50)]
    # forcing one condition does not change the others
    assert [(r.throttle, r.quota_pct, r.pause_p) for r in rps] == [(r.throttle, r.quota_pct, r.pause_p) for r in base]
    o = sp.StressOptions(budget="default", hogs="never")
    assert all(r.budget == "default" and r.max_msgs == 0 and not r.hogs
               for r in (sp.draw_round("stream", s, o) for s in range(50)))
    for bad in (dict(budget="none"), dict(hogs="sometimes"), dict(low_msgs=0), dict(duplex_bytes=3),
                dict(stall_s=0)):
        with pytest.raises(ValueError):
            sp.StressOptions(**bad).check()


# ------------------------------------------------------------------------------------------ plans
@pytest.mark.parametrize("case", sp.STRESS_CASE_NAMES)
def test_plans_add_up(case):
    for s in sp.round_seeds(9, 20):
        rp = sp.draw_round(case, s, sp.StressOptions(duplex_bytes=1 << 20, max_bytes=1 << 20))
        for conn in range(rp.conns):
            for d in ("c2s", "s2c"):
                p = sp.direction_plan(rp, conn, d)
                assert p == sp.direction_plan(rp, conn, d)
                if p.total == 0:
                    assert case in ("stream", "duplex") and d == "s2c" and case == "stream"
                    continue
                assert sum(p.writes) == p.total == sum(sp.HEADER + r for r in p.records) >= sp.MIN_STREAM
                assert all(w >= 1 for w in p.writes) and all(r >= 1 for r in p.records)
                if case == "full_duplex":
                    assert p.total >= 1 << 20
                    mix = set(sp.DUPLEX_WRITE_MIX)
                    assert all(w in mix or w <= sp.DUPLEX_RANDOM_MAX for w in p.writes)
                else:
                    assert max(p.writes) <= 1 << 20
                if rp.turns:
                    assert len(p.turn_ends) == rp.turns and p.turn_ends[-1] == p.total
                    assert p.turn_ends == sorted(p.turn_ends)
            if rp.turns:
                g = sp.gates(rp, conn, "client")
                assert g[0] == 0 and g[1:] == sp.direction_plan(rp, conn, "s2c").turn_ends[:-1]
                assert sp.gates(rp, conn, "server") == sp.direction_plan(rp, conn, "c2s").turn_ends


def test_full_duplex_write_mix_draws_every_size():
    rp = sp.draw_round("full_duplex", 1)
    writes = sp.direction_plan(rp, 0, "c2s").writes
    for size in sp.DUPLEX_WRITE_MIX:
        assert size in writes
    assert any(w not in sp.DUPLEX_WRITE_MIX for w in writes)
    assert max(writes) <= max(sp.DUPLEX_RANDOM_MAX, max(sp.DUPLEX_WRITE_MIX))


def test_log_uniform_spans_the_range():
    rng = random.Random(1)
    xs = [sp.log_uniform(rng, 1, 1 << 20) for _ in range(5000)]
    assert min(xs) == 1 and max(xs) > 500_000 and all(1 <= x <= 1 << 20 for x in xs)
    assert sum(x < 100 for x in xs) > 1000, "small sizes are as likely as large ones in log scale"


# ------------------------------------------------------------------------------------------ streams
def _stream(seed=1, total=300_000):
    rng = random.Random(seed)
    plan = sp.DirPlan([total], sp._records_for(rng, total), total)
    src = StreamSource(plan, seed)
    return plan, src.take(total), src


def _cuts(data: bytes, rng: random.Random):
    i = 0
    while i < len(data):
        k = rng.choice((1, 7, 16, 17, 1000, 65536))
        yield data[i:i + k]
        i += k


def test_checker_accepts_the_stream_cut_anywhere():
    plan, data, src = _stream()
    assert len(data) == plan.total and src.taken == plan.total
    chk = StreamChecker(plan.n_records, plan.total)
    for part in _cuts(data, random.Random(2)):
        chk.feed(part)
    c = chk.counts()
    assert (c["lost"], c["dup"], c["reordered"], c["corrupt"]) == (0, 0, 0, 0)
    assert c["bytes"] == plan.total and c["sha"] == src.sha.hexdigest()


def _records(data: bytes) -> list[bytes]:
    out, i = [], 0
    while i < len(data):
        n = HDR.unpack_from(data, i)[2]
        out.append(data[i:i + 16 + n])
        i += 16 + n
    return out


def _check(plan, recs, complete=True):
    chk = StreamChecker(plan.n_records, plan.total)
    for part in _cuts(b"".join(recs), random.Random(3)):
        chk.feed(part)
    return chk.counts(complete)


def test_checker_counts_lost_duplicated_reordered_corrupt():
    plan, data, _ = _stream()
    recs = _records(data)
    assert len(recs) == plan.n_records > 10
    c = _check(plan, recs[:3] + recs[5:])
    assert (c["lost"], c["dup"], c["reordered"], c["corrupt"]) == (2, 0, 0, 0)
    c = _check(plan, recs[:4] + recs[2:])
    assert (c["lost"], c["dup"], c["reordered"], c["corrupt"]) == (0, 2, 0, 0)
    c = _check(plan, recs[:2] + [recs[3], recs[2]] + recs[4:])
    assert (c["lost"], c["dup"], c["reordered"], c["corrupt"]) == (0, 0, 1, 0)
    flipped = bytearray(recs[4])
    flipped[-1] ^= 0xFF
    c = _check(plan, recs[:4] + [bytes(flipped)] + recs[5:])
    assert (c["lost"], c["dup"], c["reordered"], c["corrupt"]) == (0, 0, 0, 1)
    # a byte lost inside a record: the framing is lost from there on; everything after counts as lost
    c = _check(plan, recs[:4] + [recs[4][:-1]] + recs[5:])
    assert c["corrupt"] >= 1 and c["lost"] >= 1
    # an aborted (stalled) stream: what has not arrived is not lost
    c = _check(plan, recs[:4], complete=False)
    assert (c["lost"], c["dup"], c["reordered"], c["corrupt"]) == (0, 0, 0, 0)
    assert _check(plan, recs[:4])["lost"] == len(recs) - 4


# ------------------------------------------------------------------------------------------ counting
def _end(role, conns, errors=()):
    return {"event": "result", "role": role, "aborted": False, "errors": list(errors), "conns": conns}


def _conn(i, tx_bytes=100, rx_bytes=100, sha_tx="a", sha_rx="a", **rx):
    r = {"lost": 0, "dup": 0, "reordered": 0, "corrupt": 0, "bytes": rx_bytes, "sha": sha_rx, "eof": True, "want": 100}
    r.update(rx)
    return {"conn": i, "tx": {"bytes": tx_bytes, "sha": sha_tx, "planned": 100, "writes": 3, "complete": True},
            "rx": r}


def _err(kind, op="recv"):
    return {"conn": 0, "op": op, "kind": kind, "detail": "on a blocking socket", "sent": 5, "received": 7, "t": 1.0}


def test_tally_clean_round():
    c = sc.tally(_end("server", [_conn(0)]), _end("client", [_conn(0)]), stalled=False)
    assert all(c[k] == 0 for k in sc.COUNT_KEYS) and c["error_kinds"] == {}


def test_tally_counts_errors_by_kind_and_data_problems_per_direction():
    srv = _end("server", [_conn(0, lost=2), _conn(1)], [_err("EAGAIN", "send"), _err("EAGAIN", "send"),
                                                       _err("ECONNRESET", "send")])
    cli = _end("client", [_conn(0, dup=1, reordered=3), _conn(1, sha_rx="b")], [_err("early_eof")])
    c = sc.tally(srv, cli, stalled=False, leftovers=2)
    assert c["errors"] == 4 and c["error_kinds"] == {"EAGAIN": 2, "ECONNRESET": 1, "early_eof": 1}
    assert (c["lost"], c["dup"], c["reordered"], c["corrupt"], c["leftovers"]) == (2, 1, 3, 1, 2)
    assert any("EAGAIN on a blocking socket" in n for n in c["notes"])
    assert c["hazards"] == {}


def test_tally_counts_a_blocking_recv_eagain_as_the_kernel_hazard_not_an_error():
    """tcp_bpf_recvmsg's single sleep (docs/upstream-tcp_bpf_recvmsg.md): a recv() EAGAIN is the known hazard,
    a send() EAGAIN is not, and neither hides lost bytes."""
    srv = _end("server", [_conn(0, lost=1)], [_err("EAGAIN"), _err("EAGAIN"), _err("EAGAIN", "send")])
    c = sc.tally(srv, _end("client", [_conn(0)]), stalled=False)
    assert c["hazards"] == {"blocking-recv-eagain": 2}
    assert c["errors"] == 1 and c["error_kinds"] == {"EAGAIN": 1} and c["lost"] == 1
    assert sc.judge(sc.empty_counts(), c) == ["1 x EAGAIN accelerated, none on the kernel path",
                                              "lost 1 accelerated, 0 on the kernel path"]
    only = sc.tally(_end("server", [_conn(0)], [_err("EAGAIN")]), _end("client", [_conn(0)]), stalled=False)
    assert sc.judge(sc.empty_counts(), only) == []
    assert sc.judge(sc.empty_counts(), only, strict=True) == [
        "1 x kernel hazard blocking-recv-eagain accelerated (strict)"]


def test_tally_stalled_round_does_not_count_missing_bytes_as_lost():
    srv = _end("server", [_conn(0, rx_bytes=40, sha_rx="x", lost=5)])
    c = sc.tally(srv, _end("client", [_conn(0)]), stalled=True)
    assert c["stalls"] == 1 and c["lost"] == 0 and c["corrupt"] == 0


def test_tally_crashed_worker_is_an_error():
    c = sc.tally({"crashed": "exited rc=2"}, _end("client", [_conn(0)]), stalled=False)
    assert c["error_kinds"] == {"worker:server": 1} and "exited rc=2" in c["notes"][0]


def _counts(**kw):
    c = sc.empty_counts()
    kinds = kw.pop("kinds", {})
    c.update(kw)
    c["error_kinds"] = kinds
    c["errors"] = sum(kinds.values())
    return c


def test_judge_fails_only_what_the_kernel_path_does_not_show():
    assert sc.judge(_counts(), _counts()) == []
    why = sc.judge(_counts(), _counts(kinds={"EAGAIN": 3}, stalls=1, lost=2, leftovers=1))
    assert why == ["3 x EAGAIN accelerated, none on the kernel path", "stalls 1 accelerated, 0 on the kernel path",
                   "lost 2 accelerated, 0 on the kernel path", "leftovers 1 accelerated, 0 on the kernel path"]
    # the kernel path shows the same: not the accelerator's doing
    assert sc.judge(_counts(kinds={"ECONNRESET": 1}, stalls=1), _counts(kinds={"ECONNRESET": 2}, stalls=1)) == []
    # another error kind than the kernel path's still fails
    assert sc.judge(_counts(kinds={"ECONNRESET": 1}), _counts(kinds={"EAGAIN": 1})) == [
        "1 x EAGAIN accelerated, none on the kernel path"]
    # problems of the kernel path alone never fail the round
    assert sc.judge(_counts(kinds={"EPIPE": 1}, dup=1), _counts()) == []


def _rec(i, why=(), budget="low", **accel):
    info = {"redirected": 5, "demoted": 1 if budget == "low" else 0, "released": 1 if budget == "low" else 0,
            "missed": 0}
    return {"round": i, "seed": 100 + i, "budget": budget, "kernel": _counts(), "accel": _counts(**accel),
            "accel_info": info, "why": list(why), "seconds": 2.0, "reproduce": f"pybpfgen ... --seed {100 + i}",
            "params": {}, "notes": ["accel: server conn 0 recv: EAGAIN"]}


def test_summary_and_report():
    recs = [_rec(1), _rec(2, ["1 x EAGAIN accelerated, none on the kernel path"], kinds={"EAGAIN": 1}),
            _rec(3, budget="default")]
    s = sc.summarize("full_duplex", recs)
    assert s["status"] == "fail" and s["rounds"] == 3 and s["failed_rounds"] == 1 and s["low_budget_rounds"] == 2
    assert s["paths"]["accel"]["error_kinds"] == {"EAGAIN": 1} and s["paths"]["kernel"]["errors"] == 0
    assert s["accel_info"]["demoted"] == 2 and s["rounds_with"] == {"demoted": 2, "released": 2, "redirected": 3}
    assert s["failures"][0]["seed"] == 102 and s["seconds"] == 6.0
    rep = {"object": "/x.o", "seed": 100, "rounds": 3, "budget": "both", "duplex_bytes": 1 << 20, "ok": False,
           "cases": [s, sc.summarize("stream", [_rec(1)])]}
    text = sc.format_report(rep)
    assert "full_duplex" in text and "1 (EAGAIN:1)" in text and "2 (2 rnd)" in text and "2 low budget" in text
    assert "FAILED full_duplex round 2 (seed 102): 1 x EAGAIN" in text and "reproduce: pybpfgen ... --seed 102" in text
    assert text.splitlines()[-1] == "FAIL: 1 of 4 rounds failed; reproduce all with seed 100"
    assert sc.summarize("stream", [_rec(1)])["status"] == "pass"


# ------------------------------------------------------------------------------------------ command line
def _doctor_args(argv):
    import argparse

    from kernel_loader import cli
    p = argparse.ArgumentParser()
    sub = p.add_subparsers()
    cli.register(sub)
    return p.parse_args(["doctor", *argv])


def test_cli_stress_options():
    a = _doctor_args(["--conformance", "--stress", "--rounds", "3", "--seed", "0x10", "--cases", "full_duplex",
                      "--budget", "low", "--low-budget-msgs", "8", "--hogs", "always", "--duplex-bytes", "65536"])
    assert (a.stress, a.rounds, a.seed, a.cases, a.budget, a.low_budget_msgs, a.hogs, a.duplex_bytes) == (
        True, 3, 16, ["full_duplex"], "low", 8, "always", 65536)
    d = _doctor_args(["--conformance", "--stress"])
    assert (d.rounds, d.seed, d.budget, d.hogs, d.duplex_bytes, d.stall_seconds) == (10, None, "both", "random",
                                                                                      16 << 20, 5.0)
    for bad in (["--rounds", "0"], ["--seed", "-1"], ["--seed", str(1 << 32)], ["--budget", "tiny"]):
        with pytest.raises(SystemExit):
            _doctor_args(["--conformance", "--stress", *bad])


def test_stress_needs_conformance():
    from kernel_loader import doctor
    from kernel_loader.errors import LoaderError
    with pytest.raises(LoaderError, match="--stress needs --conformance"):
        doctor.main(_doctor_args(["--stress"]))


def test_reproduce_command_names_every_non_default_option():
    from pybpfgen_accel.conformance.stress import reproduce_command
    assert reproduce_command("stream", 5, sp.StressOptions(), "/o") == (
        "pybpfgen doctor --conformance --stress --cases stream --seed 5 --rounds 1 --object /o")
    o = sp.StressOptions(budget="low", duplex_bytes=1 << 20, hogs="always", low_msgs=8, stall_s=2)
    cmd = reproduce_command("full_duplex", 5, o, "/o")
    for part in ("--budget low", "--duplex-bytes 1048576", "--hogs always", "--low-budget-msgs 8",
                 "--stall-seconds 2"):
        assert part in cmd, cmd
    assert _doctor_args(cmd.split()[2:]).seed == 5


def test_run_stress_rejects_unknown_cases():
    from pybpfgen_accel.conformance.stress import run_stress
    with pytest.raises(ValueError, match="unknown stress case"):
        run_stress("/nonexistent.o", ["sizes"], 1, 1, None, "/sys/fs/bpf/x")


def test_short_conns_are_many_small_and_sometimes_early():
    rps = [sp.draw_round("short_conns", s) for s in sp.round_seeds(4, 100)]
    assert all(16 <= r.conns <= 48 and 1 <= r.turns <= 3 for r in rps)
    assert 0.3 < sum(r.connect_delay_s == 0 for r in rps) / len(rps) < 0.7
    for r in rps[:10]:
        for d in ("c2s", "s2c"):
            p = sp.direction_plan(r, 0, d)
            assert max(p.writes) <= 4096 and len(p.writes) <= 3 * r.turns
