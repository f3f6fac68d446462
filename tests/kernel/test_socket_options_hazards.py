"""Socket options and flags that the sockmap paths (tcp_bpf) do not honour on Linux 6.18.

Each case runs one worker in a private child cgroup, on the kernel path and with the accelerator loaded (policy on
the worker's port), on loopback; a ping-pong first puts the accelerated pair on the redirect path. The kernel path
must behave as TCP defines (a plain assertion); the accelerated run is the same check marked
``xfail(strict=True)``: it documents a kernel hazard (docs/hazards.md, ``pybpfgen doctor``) and turns into a
failure (XPASS) the day the kernel honours the option, so that the hazard can be dropped.

* ``SO_PEEK_OFF``: successive ``MSG_PEEK`` reads must advance through the data; accelerated, every peek returns
  the start of the sockmap queue again (``sk_msg_recvmsg`` ignores the peek offset).
* ``SO_RCVLOWAT``: a reader must not be woken, nor ``recv`` return, with fewer bytes than the low-water mark while
  more are coming; accelerated, poll wakes and recv returns at the first redirected message.
* ``MSG_ZEROCOPY``: a sender that set ``SO_ZEROCOPY`` must get completion notifications on its error queue (it
  may reuse its buffers only then); accelerated, tcp_bpf copies the data and no notification ever comes, so a
  sender that waits for them waits forever. The data itself arrives intact.
* ``TCP_INFO`` byte counters (``tcpi_bytes_acked``, ``tcpi_bytes_received``; what ``ss -ti`` and monitoring
  agents report): redirected bytes never pass through TCP, so they are not counted.
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
    import json, select, socket, sys, threading, time
    case, port = sys.argv[1], int(sys.argv[2])
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(1)
    c = socket.create_connection(("127.0.0.1", port))
    s, _ = srv.accept()
    c.sendall(b"x"); s.recv(1); s.sendall(b"y"); c.recv(1)   # the first messages decide the path
    res = {}
    if case == "peek_off":
        c.sendall(b"0123456789")
        time.sleep(0.2)
        s.setsockopt(socket.SOL_SOCKET, 42, 0)                # SO_PEEK_OFF
        res["peeks"] = [s.recv(4, socket.MSG_PEEK).decode(), s.recv(4, socket.MSG_PEEK).decode()]
        res["read"] = s.recv(100).decode()
    elif case == "tcp_info":
        import struct
        n = 0
        for _ in range(100):
            c.sendall(b"z" * 1000)
            n += len(s.recv(2000))
            s.sendall(b"k")
            c.recv(1)
        time.sleep(0.2)
        acked = struct.unpack_from("<Q", c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232), 120)[0]
        received = struct.unpack_from("<Q", s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232), 128)[0]
        res.update(app_bytes=n, bytes_acked=acked, bytes_received=received)   # (+1: the first ping)
    elif case == "zerocopy":
        c.setsockopt(socket.SOL_SOCKET, 60, 1)                # SO_ZEROCOPY
        sent = sum(c.send(b"z" * 65536, 0x4000000) for _ in range(4))   # MSG_ZEROCOPY
        got = 0
        s.settimeout(5)
        while got < sent:
            k = s.recv(1 << 20)
            if not k:
                break
            got += len(k)
        comps = 0
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                c.recvmsg(0, 1024, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
                comps += 1
            except BlockingIOError:
                select.select([c], [], [], 0.1)
        res.update(sent=sent, received=got, completions=comps)
    else:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, 100)
        def send():
            c.sendall(b"a" * 50)
            time.sleep(0.3)
            c.sendall(b"b" * 60)
        t = threading.Thread(target=send)
        t.start()
        p = select.poll()
        p.register(s, select.POLLIN)
        t0 = time.monotonic()
        p.poll(2000)
        res["woken_after_s"] = round(time.monotonic() - t0, 3)
        res["first_recv"] = len(s.recv(200))
        t.join()
    print(json.dumps(res))
''')


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """{case: {mode: worker result}} for both cases and both modes."""
    obj = kh.PybpfgenCLI().compile(kh.REPO_ROOT / "programs", tmp_path_factory.mktemp("build"))
    worker = tmp_path_factory.mktemp("worker") / "sockopt_worker.py"
    worker.write_text(WORKER)
    out: dict = {"peek_off": {}, "rcvlowat": {}, "zerocopy": {}, "tcp_info": {}}
    with kh.child_cgroup("pybpfgen-test") as cg, kh.private_pin_root("pybpfgen-test") as pr:
        cli = kh.PybpfgenCLI(pin_root=pr)
        try:
            for mode in ("kernel", "accel"):
                if mode == "accel":
                    cli.load(obj, cg)
                for case in out:
                    port = kh.free_port()
                    if mode == "accel":
                        cli.policy_add(port)
                    p = kh.spawn([sys.executable, str(worker), case, str(port)], cgroup=cg,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    try:
                        o, e = p.communicate(timeout=30)
                    finally:
                        kh.kill_proc(p)
                    assert p.returncode == 0, e
                    out[case][mode] = json.loads(o.strip().splitlines()[-1])
        finally:
            cli.unload("accel", check=False)
    return out


def _peek_ok(r: dict) -> bool:
    return r["peeks"] == ["0123", "4567"] and r["read"] == "0123456789"


def _lowat_ok(r: dict) -> bool:
    return r["woken_after_s"] >= 0.2 and r["first_recv"] >= 100


def test_peek_off_on_the_kernel_path(runs):
    assert _peek_ok(runs["peek_off"]["kernel"]), runs["peek_off"]


@pytest.mark.xfail(strict=True, reason="kernel hazard: sk_msg_recvmsg ignores SO_PEEK_OFF (every peek starts at "
                   "the head of the sockmap queue)")
def test_peek_off_accelerated(runs):
    r = runs["peek_off"]["accel"]
    assert r["read"] == "0123456789", r   # no byte lost or reordered, whatever the peeks returned
    assert _peek_ok(r), r


def test_rcvlowat_on_the_kernel_path(runs):
    assert _lowat_ok(runs["rcvlowat"]["kernel"]), runs["rcvlowat"]


@pytest.mark.xfail(strict=True, reason="kernel hazard: the sockmap receive path ignores SO_RCVLOWAT (poll wakes and "
                   "recv returns at the first redirected message)")
def test_rcvlowat_accelerated(runs):
    assert _lowat_ok(runs["rcvlowat"]["accel"]), runs["rcvlowat"]


def test_zerocopy_completions_on_the_kernel_path(runs):
    r = runs["zerocopy"]["kernel"]
    assert r["received"] == r["sent"] and r["completions"] >= 1, runs["zerocopy"]


@pytest.mark.xfail(strict=True, reason="kernel hazard: tcp_bpf copies MSG_ZEROCOPY data and never posts the "
                   "completion notifications a zero-copy sender waits for")
def test_zerocopy_completions_accelerated(runs):
    r = runs["zerocopy"]["accel"]
    assert r["received"] == r["sent"], r   # the data itself arrives
    assert r["completions"] >= 1, r


def _counted(r: dict) -> bool:
    return r["bytes_acked"] >= r["app_bytes"] and r["bytes_received"] >= r["app_bytes"]


def test_tcp_info_counts_bytes_on_the_kernel_path(runs):
    assert _counted(runs["tcp_info"]["kernel"]), runs["tcp_info"]


@pytest.mark.xfail(strict=True, reason="observability hazard: redirected bytes bypass TCP, so TCP_INFO byte counters "
                   "(ss -ti, monitoring agents) do not count them")
def test_tcp_info_counts_bytes_accelerated(runs):
    assert _counted(runs["tcp_info"]["accel"]), runs["tcp_info"]
