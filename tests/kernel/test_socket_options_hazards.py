"""Socket options and flags that the sockmap paths (tcp_bpf) do not honour on Linux 6.18.

Each case runs one worker in a private child cgroup, on the kernel path and with the accelerator loaded (policy on
the worker's port), on loopback; a ping-pong first puts the accelerated pair on the redirect path. Per case:

* ``..._on_the_kernel_path``: the kernel path behaves as TCP defines and no byte is lost (plain assertions);
* ``..._accelerated_keeps_the_data``: the accelerated run did go through the redirect path (the ``stats``
  counters moved) and no byte was lost or reordered (plain assertions: these must never be expected to fail);
* ``..._accelerated``: the hazard alone, ``xfail(strict=True, raises=KernelHazardObserved)``. It documents a
  kernel hazard (docs/hazards.md, ``pybpfgen doctor``): :func:`kharness.hazard_check` raises
  ``KernelHazardObserved`` only when the measured values are the documented misbehaviour, a plain
  ``AssertionError`` (a real failure) for anything else, and returns the day the kernel honours the option
  (XPASS, a failure under strict) so that the hazard can be dropped.

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
        n, intact = 0, True
        for i in range(100):
            msg = bytes([65 + i % 26]) * 1000
            c.sendall(msg)
            got = b""
            s.settimeout(5)
            while len(got) < len(msg):
                k = s.recv(len(msg) - len(got))
                if not k:
                    break
                got += k
            n += len(got)
            intact = intact and got == msg
            s.sendall(b"k")
            intact = intact and c.recv(1) == b"k"
        time.sleep(0.2)
        acked = struct.unpack_from("<Q", c.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232), 120)[0]
        received = struct.unpack_from("<Q", s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232), 128)[0]
        res.update(app_bytes=n, intact=intact, bytes_acked=acked, bytes_received=received)   # (+1: the first ping)
    elif case == "zerocopy":
        c.setsockopt(socket.SOL_SOCKET, 60, 1)                # SO_ZEROCOPY
        bufs = [bytes((i * 7 + j) % 251 for j in range(65536)) for i in range(4)]   # alive until the end:
        sent_data = b"".join(b[:c.send(b, 0x4000000)] for b in bufs)          # MSG_ZEROCOPY may not copy them
        sent = len(sent_data)
        got_data = b""
        s.settimeout(5)
        while len(got_data) < sent:
            k = s.recv(1 << 20)
            if not k:
                break
            got_data += k
        got = len(got_data)
        comps = 0
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                c.recvmsg(0, 1024, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
                comps += 1
            except BlockingIOError:
                select.select([c], [], [], 0.1)
        res.update(sent=sent, received=got, intact=got_data == sent_data, completions=comps)
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
        first = s.recv(200)
        res["first_recv"] = len(first)
        t.join()
        rest = b""
        s.settimeout(2)
        while len(first) + len(rest) < 110:
            k = s.recv(200)
            if not k:
                break
            rest += k
        res["received"] = len(first) + len(rest)
        res["intact"] = first + rest == b"a" * 50 + b"b" * 60
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
                stats_id = None
                if mode == "accel":
                    cli.load(obj, cg)
                    stats_id = kh.snapshot_accel(cg).map_ids["stats"]
                for case in out:
                    port = kh.free_port()
                    if mode == "accel":
                        cli.policy_add(port)
                    p = kh.spawn([sys.executable, str(worker), case, str(port)], cgroup=cg,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                    before = kh.read_stats(stats_id) if stats_id else {}
                    try:
                        o, e = p.communicate(timeout=30)
                    finally:
                        kh.kill_proc(p)
                    assert p.returncode == 0, e
                    res = json.loads(o.strip().splitlines()[-1])
                    if stats_id:
                        res["stats_delta"] = {k: v - before[k] for k, v in kh.read_stats(stats_id).items()}
                    out[case][mode] = res
                    print(case, mode, json.dumps(res), file=sys.stderr)
        finally:
            cli.unload("accel", check=False)
    return out


def _redirected(r: dict, at_least: int) -> None:
    """Precondition of every accelerated case: the pair went through the redirect path."""
    assert r["stats_delta"]["redirected"] >= at_least, f"the accelerated run was not redirected: {r}"


def _peek_ok(r: dict) -> bool:
    return r["peeks"] == ["0123", "4567"]


def _lowat_ok(r: dict) -> bool:
    return r["woken_after_s"] >= 0.2 and r["first_recv"] >= 100


def _counted(r: dict) -> bool:
    return r["bytes_acked"] >= r["app_bytes"] and r["bytes_received"] >= r["app_bytes"]


# -- SO_PEEK_OFF ----------------------------------------------------------------------------------------------
def test_peek_off_on_the_kernel_path(runs):
    r = runs["peek_off"]["kernel"]
    assert r["read"] == "0123456789", runs["peek_off"]
    assert _peek_ok(r), runs["peek_off"]


def test_peek_off_accelerated_keeps_the_data(runs):
    r = runs["peek_off"]["accel"]
    _redirected(r, 3)    # the ping, the pong, the ten bytes
    assert r["read"] == "0123456789", r   # no byte lost or reordered, whatever the peeks returned


@pytest.mark.xfail(strict=True, raises=kh.KernelHazardObserved,
                   reason="kernel hazard: sk_msg_recvmsg ignores SO_PEEK_OFF (every peek starts at the head of the "
                   "sockmap queue)")
def test_peek_off_accelerated(runs):
    r = runs["peek_off"]["accel"]
    kh.hazard_check(_peek_ok(r), r["peeks"] == ["0123", "0123"], f"two peeks returned {r['peeks']}")


# -- SO_RCVLOWAT ----------------------------------------------------------------------------------------------
def test_rcvlowat_on_the_kernel_path(runs):
    r = runs["rcvlowat"]["kernel"]
    assert r["received"] == 110 and r["intact"], runs["rcvlowat"]
    assert _lowat_ok(r), runs["rcvlowat"]


def test_rcvlowat_accelerated_keeps_the_data(runs):
    r = runs["rcvlowat"]["accel"]
    _redirected(r, 4)    # the ping, the pong, the two writes
    assert r["received"] == 110 and r["intact"], r


@pytest.mark.xfail(strict=True, raises=kh.KernelHazardObserved,
                   reason="kernel hazard: the sockmap receive path ignores SO_RCVLOWAT (poll wakes and recv returns at "
                   "the first redirected message)")
def test_rcvlowat_accelerated(runs):
    r = runs["rcvlowat"]["accel"]
    kh.hazard_check(_lowat_ok(r), r["woken_after_s"] < 0.2 and r["first_recv"] == 50,
                    f"SO_RCVLOWAT 100: poll woke after {r['woken_after_s']} s, recv returned {r['first_recv']} B")


# -- MSG_ZEROCOPY ---------------------------------------------------------------------------------------------
def test_zerocopy_completions_on_the_kernel_path(runs):
    r = runs["zerocopy"]["kernel"]
    assert r["sent"] > 0 and r["received"] == r["sent"] and r["intact"], runs["zerocopy"]
    assert r["completions"] >= 1, runs["zerocopy"]


def test_zerocopy_accelerated_keeps_the_data(runs):
    r = runs["zerocopy"]["accel"]
    _redirected(r, 3)
    assert r["sent"] > 0 and r["received"] == r["sent"] and r["intact"], r   # the data itself arrives


@pytest.mark.xfail(strict=True, raises=kh.KernelHazardObserved,
                   reason="kernel hazard: tcp_bpf copies MSG_ZEROCOPY data and never posts the completion "
                   "notifications a zero-copy sender waits for")
def test_zerocopy_completions_accelerated(runs):
    r = runs["zerocopy"]["accel"]
    kh.hazard_check(r["completions"] >= 1, r["completions"] == 0,
                    f"{r['sent']} B sent with MSG_ZEROCOPY, {r['completions']} completion notifications")


# -- TCP_INFO byte counters -----------------------------------------------------------------------------------
def test_tcp_info_counts_bytes_on_the_kernel_path(runs):
    r = runs["tcp_info"]["kernel"]
    assert r["app_bytes"] == 100_000 and r["intact"], runs["tcp_info"]
    assert _counted(r), runs["tcp_info"]


def test_tcp_info_accelerated_keeps_the_data(runs):
    r = runs["tcp_info"]["accel"]
    _redirected(r, 200)  # 100 ping-pongs
    assert r["app_bytes"] == 100_000 and r["intact"], r


@pytest.mark.xfail(strict=True, raises=kh.KernelHazardObserved,
                   reason="observability hazard: redirected bytes bypass TCP, so TCP_INFO byte counters (ss -ti, "
                   "monitoring agents) do not count them")
def test_tcp_info_counts_bytes_accelerated(runs):
    r = runs["tcp_info"]["accel"]
    # the hazard: not one of the 100 redirected 1000 B messages is counted (only the pings that went through TCP)
    kh.hazard_check(_counted(r), r["bytes_acked"] < 1000 and r["bytes_received"] < 1000,
                    f"{r['app_bytes']} B exchanged, tcpi_bytes_acked {r['bytes_acked']}, "
                    f"tcpi_bytes_received {r['bytes_received']}")
