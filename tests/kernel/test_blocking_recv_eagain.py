"""Issue 11, deterministic: a blocking recv() on a socket in the sockhash fails with EAGAIN (Linux 6.18).

``tcp_bpf_recvmsg`` sleeps once when both its queues are empty and returns -EAGAIN when that wakeup brought no
data; the write-space wakeup of the same socket's writer (sending on the TCP path, blocked for send space) is such
a wakeup. The worker builds exactly that, with no data ever coming to the reader:

1. the client sends 300 small messages that the server reads: the budget (256 unanswered messages) demotes the
   client; the server, which never sent, is fixed on the TCP path and stays in the sockhash (its sockmap queue
   held the redirected messages) — the accelerator's normal one-way behaviour;
2. a thread blocks in ``recv()`` on the server socket (nothing more will come);
3. another thread writes 8 MiB from the server socket, which the client does not read yet: it blocks for send
   space;
4. the client reads 1 MiB: the ACKs free send space on the server socket and wake its writer — and its reader.

On the kernel path the reader stays blocked until the client sends one byte (plain assertion). Accelerated it
returns EAGAIN (strict xfail: the kernel hazard of docs/hazards.md; an XPASS means the kernel was fixed, see
docs/upstream-tcp_bpf_recvmsg.md). Every byte of the 8 MiB arrives in both runs.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import kharness as kh

pytestmark = pytest.mark.kernel

WORKER = textwrap.dedent(r'''
    import hashlib, json, socket, sys, threading, time
    port = int(sys.argv[1])
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    c = socket.create_connection(("127.0.0.1", port))
    s, _ = srv.accept()
    for _ in range(300):                       # one-way burst: past the budget of 256 unanswered messages
        c.sendall(b"m" * 10)
    got = 0
    while got < 3000:
        got += len(s.recv(4096))
    res = {"burst": got}

    def reader():
        try:
            res["reader"] = s.recv(65536).decode()
        except BlockingIOError:
            res["reader"] = "EAGAIN"

    rt = threading.Thread(target=reader, daemon=True)
    rt.start()
    time.sleep(0.3)                            # the reader is asleep in recv()
    data = bytes(range(256)) * (8 << 12)       # 8 MiB
    wt = threading.Thread(target=lambda: s.sendall(data), daemon=True)
    wt.start()
    time.sleep(0.5)                            # the writer is blocked: the client does not read yet
    res["writer_blocked"] = wt.is_alive()
    h, n = hashlib.sha256(), 0
    c.settimeout(10)
    while n < (1 << 20):                       # the client reads 1 MiB: write space for the server socket
        b = c.recv(1 << 20)
        h.update(b)
        n += len(b)
    rt.join(1.0)
    res["reader_after_write_space"] = res.get("reader", "still blocked")
    c.sendall(b"z")                            # now real data for the reader
    rt.join(5)
    res["reader_final"] = res.get("reader", "still blocked")
    while n < len(data):
        b = c.recv(1 << 20)
        if not b:
            break
        h.update(b)
        n += len(b)
    wt.join(5)
    res["intact"] = n == len(data) and h.hexdigest() == hashlib.sha256(data).hexdigest()
    print(json.dumps(res))
''')


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{mode: worker result} for the kernel path and the accelerator (and its counters)."""
    obj = kh.PybpfgenCLI().compile(kh.REPO_ROOT / "programs", tmp_path_factory.mktemp("build"))
    worker = tmp_path_factory.mktemp("worker") / "eagain_worker.py"
    worker.write_text(WORKER)
    out: dict = {}
    with kh.child_cgroup("pybpfgen-test") as cg, kh.private_pin_root("pybpfgen-test") as pr:
        cli = kh.PybpfgenCLI(pin_root=pr)
        try:
            for mode in ("kernel", "accel"):
                port = kh.free_port()
                if mode == "accel":
                    cli.load(obj, cg)
                    cli.policy_add(port)
                p = kh.spawn([sys.executable, str(worker), str(port)], cgroup=cg,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                try:
                    o, e = p.communicate(timeout=60)
                finally:
                    kh.kill_proc(p)
                assert p.returncode == 0, e
                out[mode] = json.loads(o.strip().splitlines()[-1])
                if mode == "accel":
                    snap = kh.snapshot_accel(cg)
                    out["counters"] = kh.read_stats(snap.map_ids["stats"])
        finally:
            cli.unload("accel", check=False)
    return out


def _blocking_recv_ok(r: dict) -> bool:
    return r["writer_blocked"] and r["reader_after_write_space"] == "still blocked" and r["reader_final"] == "z"


def test_blocking_recv_waits_on_the_kernel_path(runs):
    assert _blocking_recv_ok(runs["kernel"]), runs
    assert runs["kernel"]["intact"], runs


def test_accelerated_connection_was_demoted_and_data_intact(runs):
    c = runs["counters"]
    assert c["paired"] == 1 and c["demoted"] == 1 and c["released"] == 1, runs
    assert runs["accel"]["burst"] == 3000 and runs["accel"]["intact"], runs


@pytest.mark.xfail(strict=True, reason="kernel hazard (issue 11): tcp_bpf_recvmsg sleeps once and returns EAGAIN "
                                       "after the write-space wakeup of the same socket's writer; "
                                       "docs/upstream-tcp_bpf_recvmsg.md")
def test_blocking_recv_waits_accelerated(runs):
    assert _blocking_recv_ok(runs["accel"]), runs


def test_accelerated_reader_gets_eagain_after_write_space(runs):
    """What the hazard looks like today (docs/hazards.md): EAGAIN exactly when the writer gets send space. (The
    day the kernel is fixed this fails together with the strict xfail above: drop both and the hazard.)"""
    assert runs["accel"]["writer_blocked"] and runs["accel"]["reader_after_write_space"] == "EAGAIN", runs
