"""pytest wrappers of the conformance suite (issue #5): pybpfgen_accel.conformance against the compiled
programs/accel.py. Each case runs accelerated and on the kernel path in private netns/cgroups/pins.

Every case must pass (cases 2, 6, 10 and 11 failed with the seed's 4-tuple design; see docs/hazards.md). The splice,
MSG_WAITALL and MSG_OOB cases must be *reported* as the kernel hazards they are (not silently pass). Progress goes to the terminal (capsys disabled).
Sizes: PYBPFGEN_CONF_* env vars (see pybpfgen_accel/conformance/cases.py, Params).
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from pybpfgen_accel.conformance import CASE_NAMES, STATUSES, run_conformance
from pybpfgen_accel.conformance.env import leftovers

REPO = Path(__file__).resolve().parents[2]
ISSUE = "issue #5"


@pytest.fixture
def conformance(accel_object, pin_root, capsys):
    def progress(line: str) -> None:
        with capsys.disabled():
            sys.stderr.write(f"\n  conformance: {line}")
            sys.stderr.flush()

    def run(name: str) -> dict:
        res = run_conformance(str(accel_object), [name], progress, str(pin_root))
        assert [r["name"] for r in res] == [name]
        r = res[0]
        assert r["status"] in STATUSES and isinstance(r["detail"], str) and "\n" not in r["detail"]
        assert isinstance(r["metrics"], dict)
        assert leftovers() == {"netns": [], "cgroups": []}, "the case left namespaces or cgroups behind"
        assert not (Path(pin_root) / "accel").exists(), "the case left pins behind"
        return r
    return run


def _why(r: dict) -> str:
    return f"{r['status']}: {r['detail']}\nmetrics: {json.dumps(r['metrics'], indent=1, sort_keys=True)}"


def _expect_pass(r: dict) -> None:
    assert r["status"] == "pass", _why(r)


pytestmark = pytest.mark.kernel


def test_sizes(conformance):
    _expect_pass(conformance("sizes"))


def test_early_data_order(conformance):
    _expect_pass(conformance("early_data"))


def test_shutdown_close_rst(conformance):
    _expect_pass(conformance("shutdown"))


def test_peek_fionread_epoll_rcvtimeo(conformance):
    _expect_pass(conformance("peek"))


def test_sendfile_ok_splice_is_reported_as_kernel_hazard(conformance):
    r = conformance("sendfile_splice")
    assert r["status"] == "kernel-hazard", _why(r)
    assert "splice" in r["detail"], r["detail"]
    m = r["metrics"]
    assert m["splice.kernel.spliced"] == m["splice.kernel.size"], _why(r)
    assert m["splice.accel.spliced"] < m["splice.accel.size"], _why(r)
    for d in ("c2s", "s2c"):
        assert m[f"sendfile.accel.sendfile_{d}_bytes"] == m[f"sendfile.kernel.sendfile_{d}_bytes"] > 0, _why(r)


def test_msg_waitall_short_reads_are_reported_as_kernel_hazard(conformance):
    """tcp_bpf_recvmsg returns as soon as the sockmap queue gave it anything: recv(n, MSG_WAITALL) of a record
    written in parts comes back short accelerated (full on the kernel path); the data stays complete and in order."""
    r = conformance("msg_waitall")
    assert r["status"] == "kernel-hazard", _why(r)
    assert "MSG_WAITALL" in r["detail"] and "short" in r["detail"], r["detail"]
    m = r["metrics"]
    assert m["split.kernel.reads"] > 0 and m["split.kernel.short_reads"] == 0, _why(r)
    assert 0 < m["split.accel.short_reads"] <= m["split.accel.reads"], _why(r)
    for d in ("c2s", "s2c"):
        assert m[f"split.accel.{d}_bytes"] == m[f"split.kernel.{d}_bytes"] > 0, _why(r)
    assert m["demoted.kernel.burst_first_read"] == m["demoted.kernel.burst_bytes"], _why(r)
    assert m["demoted.accel.demoted"] >= 1 and m["demoted.accel.bytes"] == m["demoted.kernel.bytes"], _why(r)


def test_msg_waitall_judgement(monkeypatch):
    """Short reads: a kernel hazard accelerated, a failure on the kernel path; lost bytes always fail."""
    from pybpfgen_accel.conformance import cases

    def result(short=0, burst_first=19200, problems=()):
        return {"problems": list(problems), "reads": 16, "short_reads": short, "bytes_asked_short": 2 * short,
                "bytes_returned_short": short, "first_reads": "1 of 2 B", "burst_bytes": 19200,
                "burst_first_read": burst_first, "after_reads": 2, "after_short_reads": 0, "after_first_reads": ""}

    def judge(kernel_split, accel_split, kernel_dm=None, accel_dm=None):
        runs = iter([[cases.Run("kernel", kernel_split, {}), cases.Run("accel", accel_split, {"redirected": 9})],
                     [cases.Run("kernel", kernel_dm or result(), {}),
                      cases.Run("accel", accel_dm or result(burst_first=16384), {"redirected": 9, "demoted": 1})]])
        monkeypatch.setattr(cases, "_both", lambda *a, **k: next(runs))
        sb = type("SB", (), {"new_netns": lambda self: "ns"})()
        st, det, _m = cases.case_msg_waitall(sb, cases.Params(), lambda s: None)
        return st, det

    st, det = judge(result(), result(short=16))
    assert st == "kernel-hazard" and "16 of 16 reads" in det and "16384 B (records 0-255)" in det, det
    assert judge(result(), result(), accel_dm=result())[0] == "pass"
    st, det = judge(result(short=1), result(short=16))
    assert st == "fail" and det.startswith("kernel path fails too"), det
    st, det = judge(result(), result(short=16, problems=["c2s: SHA-256 mismatch (bytes lost, duplicated or "
                                                          "reordered)"]))
    assert st == "fail" and "SHA-256 mismatch" in det and "short MSG_WAITALL" in det, det


def test_msg_oob_is_reported_as_kernel_hazard(conformance):
    """An sk_msg program cannot see MSG_OOB: accelerated, the urgent byte is redirected as ordinary data and
    recv(1, MSG_OOB) reads the sockmap queue like a plain recv; the kernel path follows TCP's urgent-data rules."""
    r = conformance("msg_oob")
    assert r["status"] == "kernel-hazard", _why(r)
    assert "MSG_OOB" in r["detail"] and "expected" in r["detail"] and "LOSS" not in r["detail"], r["detail"]
    m = r["metrics"]
    assert m["kernel.rounds_total"] == m["accel.rounds_total"] == 4 and m["kernel.rounds_wrong"] == 0, _why(r)
    assert m["accel.rounds_wrong"] > 0 and m["accel.redirected"] > 0, _why(r)
    assert m["kernel.bytes_lost"] == m["accel.bytes_lost"] == 0, _why(r)
    for d, urg in (("c2s", "!"), ("s2c", "#")):
        assert m[f"kernel.{d}.oob.oob"] == urg and m[f"kernel.{d}.oob.mark"] == 3, _why(r)
        assert m[f"kernel.{d}.inline.oob"] is None and urg in m[f"kernel.{d}.inline.inline"], _why(r)
        # the inline byte streams of SO_OOBINLINE receivers agree; only the urgent mark is gone
        assert m[f"accel.{d}.inline.inline"] == m[f"kernel.{d}.inline.inline"], _why(r)


def test_msg_oob_judgement(monkeypatch):
    """Urgent data mishandled: a kernel hazard accelerated (loss named first), a failure on the kernel path;
    anything else going wrong accelerated still fails."""
    from pybpfgen_accel.conformance import cases

    def rnd(d="c2s", inline=False, oob="!", got="abcdef", mark=3, pri=True):
        exp = {"oob": None if inline else "!", "inline": "abc!def" if inline else "abcdef", "mark": 3,
               "pollpri": True}
        x = {"dir": d, "oobinline": inline, "sent": "abc!def", "expected": exp, "oob": oob, "oob_error": None,
             "inline": got, "mark": mark, "pollpri": pri, "reads": []}
        x["lost"] = 7 - len(got) - len(oob or "")
        x["ok"] = all(x[k] == v for k, v in exp.items())
        return x

    def result(rounds, problems=()):
        return {"problems": list(problems), "rounds": rounds, "rounds_total": len(rounds),
                "rounds_wrong": sum(not x["ok"] for x in rounds), "bytes_lost": sum(x["lost"] for x in rounds)}

    good = [rnd(), rnd(inline=True, oob=None, got="abc!def")]
    bad = [rnd(oob="a", got="bc!def", mark=None, pri=False),
           rnd(inline=True, oob=None, got="abc!def", mark=None, pri=False)]

    def judge(kernel, accel):
        runs = [cases.Run("kernel", kernel, {}), cases.Run("accel", accel, {"redirected": 9})]
        monkeypatch.setattr(cases, "_both", lambda *a, **k: runs)
        sb = type("SB", (), {"new_netns": lambda self: "ns"})()
        st, det, _m = cases.case_msg_oob(sb, cases.Params(), lambda s: None)
        return st, det

    assert judge(result(good), result(good))[0] == "pass"
    st, det = judge(result(good), result(bad))
    assert st == "kernel-hazard" and "recv(1, MSG_OOB) returned 'a' (expected '!')" in det, det
    assert "inline 'bc!def' (expected 'abcdef')" in det and "SIOCATMARK never true" in det, det
    assert "no byte lost" in det and "2 of 2 rounds" in det, det
    st, det = judge(result(good), result([rnd(oob="a", got="bcdef", mark=None, pri=False)]))
    assert st == "kernel-hazard" and det.startswith("kernel hazard: 1 round(s) lost 1 B: LOSS: c2s"), det
    st, det = judge(result(bad), result(bad))
    assert st == "fail" and det.startswith("kernel path fails too"), det
    st, det = judge(result(good), result(bad, problems=["c2s: no acknowledgement from the receiver"]))
    assert st == "fail" and "no acknowledgement" in det and "urgent data mishandled" in det, det


def test_backpressure_slow_reader(conformance):
    _expect_pass(conformance("backpressure"))


def test_large_stream_and_request_response(conformance):
    _expect_pass(conformance("large"))


def test_concurrency_and_churn(conformance):
    _expect_pass(conformance("concurrency"))


def test_unload_and_reload_while_flowing(conformance):
    _expect_pass(conformance("unload_reload"))


def test_netns_identical_tuples(conformance):
    _expect_pass(conformance("netns_collision"))


def test_duplex_small_writes_memory(conformance):
    _expect_pass(conformance("duplex_memory"))


# ---------------------------------------------------------------------------------------- the runner itself
def test_every_case_has_a_test():
    here = Path(__file__).read_text()
    for name in CASE_NAMES:
        assert f'conformance("{name}")' in here, name


def test_unknown_case_is_rejected():
    with pytest.raises(ValueError, match="unknown conformance case"):
        run_conformance("/nonexistent.o", ["no-such-case"], None, "/sys/fs/bpf/x")


def test_interrupt_cleans_up(accel_object, pin_root):
    """Ctrl-C in the middle of a case (while its workers run): everything is removed, then it propagates."""
    def progress(line):
        if "accel path" in line:
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        run_conformance(str(accel_object), ["sizes"], progress, str(pin_root))
    assert leftovers() == {"netns": [], "cgroups": []}
    assert not (Path(pin_root) / "accel").exists()
