# Over 500 lines: every conformance scenario's socket side, run as one worker module inside a namespace and a cgroup.
"""Socket side of the conformance cases, run as ``python -m pybpfgen_accel.conformance.worker '<json spec>'``
inside a network namespace and a cgroup (the orchestrator in env.py puts it there).

Spec: ``{"scenario": NAME, "args": {...}, "timeout": SECONDS}``. Output: JSON lines on stdout; the last one is
``{"event": "result", ...}`` (or ``{"event": "error", ...}``). ``checkpoint`` events wait for ``ok`` on stdin.
Every scenario checks data with SHA-256 and never blocks without a timeout; a watchdog ends the process.
Standard library only.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import hashlib
import json
import os
import random
import select
import selectors
import signal
import socket
import struct
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Sequence
from typing import Any

HOST = "127.0.0.1"
_POOL = os.urandom(4 << 20)          # payload source: random bytes, sliced at varying offsets
_out_lock = threading.Lock()


def emit(event: str, **kw) -> None:
    with _out_lock:
        sys.stdout.write(json.dumps({"event": event, **kw}) + "\n")
        sys.stdout.flush()


def checkpoint(name: str, timeout: float = 60.0, **kw) -> None:
    emit("checkpoint", name=name, **kw)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([sys.stdin], [], [], max(0.0, deadline - time.monotonic()))
        if r:
            line = sys.stdin.readline()
            if not line:
                raise EOFError("orchestrator went away")
            if line.strip() == "ok":
                return
    raise TimeoutError(f"checkpoint {name}: no ok")


def payload(n: int, rng: random.Random) -> bytes:
    """n pseudo-random bytes (n may exceed the pool: then it is repeated with different offsets)."""
    parts, left = [], n
    while left:
        k = min(left, len(_POOL) - 1)
        off = rng.randrange(0, len(_POOL) - k + 1)
        parts.append(_POOL[off:off + k])
        left -= k
    return b"".join(parts) if len(parts) != 1 else parts[0]


def tcp_pair(port: int, host: str = HOST, listener=None, bind_port: int | None = None, timeout: float = 10.0):
    """(client, server) connected over TCP; the listener is closed unless given."""
    own = listener is None
    if own:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(128)
    c = socket.socket()
    if bind_port:
        c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        c.bind((host, bind_port))
    c.settimeout(timeout)
    c.connect((host, port))
    listener.settimeout(timeout)
    s, _ = listener.accept()
    if own:
        listener.close()
    c.settimeout(None)
    s.settimeout(None)
    return c, s


def recv_exact(sock, n: int, h=None, timeout: float = 30.0, progress=None) -> int:
    """Receive up to n bytes (hashing them); returns the count (less on EOF or timeout)."""
    sock.settimeout(timeout)
    buf = bytearray(min(n, 1 << 20) or 1)
    view = memoryview(buf)
    got = 0
    try:
        while got < n:
            k = sock.recv_into(view, min(len(buf), n - got))
            if k == 0:
                break
            if h is not None:
                h.update(view[:k])
            got += k
            if progress:
                progress(got)
    except (socket.timeout, TimeoutError):
        pass
    finally:
        sock.settimeout(None)
    return got


class Threads:
    """Run callables in threads; collect results and exceptions."""

    def __init__(self):
        self.threads, self.errors, self.results = [], [], {}

    def start(self, name, fn, *a):
        def run():
            try:
                self.results[name] = fn(*a)
            except BaseException as e:  # noqa: BLE001
                self.errors.append(f"{name}: {type(e).__name__}: {e}")
        t = threading.Thread(target=run, daemon=True, name=name)
        t.start()
        self.threads.append(t)

    def join(self, timeout: float):
        deadline = time.monotonic() + timeout
        for t in self.threads:
            t.join(max(0.0, deadline - time.monotonic()))
            if t.is_alive():
                self.errors.append(f"{t.name}: did not finish within {timeout:.0f}s (hang)")
        return self


# =========================================================================== 1. message sizes
def sc_sizes(port: int, sizes: list[int], iov_parts: int = 4, rounds: int = 1, seed: int = 1) -> dict:
    c, s = tcp_pair(port)
    plan = [(n, mode) for _ in range(rounds) for n in sizes for mode in ("single", "iov")]
    total = sum(n for n, _ in plan)

    def sender(sock, salt):
        rng = random.Random(seed * 7 + salt)
        h = hashlib.sha256()
        calls = 0
        for n, mode in plan:
            data = payload(n, rng)
            h.update(data)
            if mode == "single":
                sock.sendall(data)
                calls += 1
            else:
                k = max(1, min(iov_parts, n))
                cuts = sorted(rng.sample(range(1, n), k - 1)) if n > 1 and k > 1 else []
                bounds = [0, *cuts, n]
                bufs = [memoryview(data)[bounds[i]:bounds[i + 1]] for i in range(len(bounds) - 1)]
                while bufs:
                    sent = sock.sendmsg(bufs)
                    calls += 1
                    while bufs and sent >= len(bufs[0]):
                        sent -= len(bufs[0])
                        bufs.pop(0)
                    if bufs and sent:
                        bufs[0] = bufs[0][sent:]
        return {"sha": h.hexdigest(), "bytes": total, "calls": calls}

    def receiver(sock):
        h = hashlib.sha256()
        got = recv_exact(sock, total, h, timeout=20)
        return {"sha": h.hexdigest(), "bytes": got}

    t = Threads()
    t.start("c2s_send", sender, c, 1)
    t.start("s2c_send", sender, s, 2)
    t.start("c2s_recv", receiver, s)
    t.start("s2c_recv", receiver, c)
    t.join(60)
    c.close()
    s.close()
    r = t.results
    problems = list(t.errors)
    for d in ("c2s", "s2c"):
        snd, rcv = r.get(f"{d}_send"), r.get(f"{d}_recv")
        if snd and rcv:
            if rcv["bytes"] != snd["bytes"]:
                problems.append(f"{d}: received {rcv['bytes']} of {snd['bytes']} bytes")
            elif rcv["sha"] != snd["sha"]:
                problems.append(f"{d}: SHA-256 mismatch (data corrupted or reordered)")
    return {"problems": problems, "bytes_each_way": total, "messages_each_way": len(plan),
            "send_calls": sum(r.get(k, {}).get("calls", 0) for k in ("c2s_send", "s2c_send"))}


# =========================================================================== 2. data right after connect()
REC = struct.Struct("!II")     # (connection id, sequence number) at the start of every record


def sc_connect_burst(port: int, conns: int, msgs: int = 8, msg_size: int = 64, defer_accept: bool = False,
                     gap_ms: float = 0.0, server_first: bool = True) -> dict:
    """Each client sends ``msgs`` sequence-numbered records right after connect(); optionally the server sends
    records right after accept() too. The receivers read only once everything was sent (so that a record
    that took the TCP path and a later one that was redirected are both queued), then check the order."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if defer_accept:
        ls.setsockopt(socket.IPPROTO_TCP, socket.TCP_DEFER_ACCEPT, 5)
    ls.bind((HOST, port))
    ls.listen(1024)
    ls.settimeout(15)
    accepted: list[socket.socket] = []
    clients: list[socket.socket] = []

    def rec(cid: int, seq: int) -> bytes:
        return REC.pack(cid, seq) + bytes([seq & 0xFF]) * (msg_size - REC.size)

    def acceptor():
        for _ in range(conns):
            s, _ = ls.accept()
            if server_first:
                for j in range(msgs):
                    s.send(rec(0x80000000 | len(accepted), j))
            accepted.append(s)

    t = Threads()
    t.start("accept", acceptor)
    for i in range(conns):
        c = socket.socket()
        c.settimeout(15)
        c.connect((HOST, port))
        for j in range(msgs):
            c.send(rec(i, j))
            if j == 0 and gap_ms:
                time.sleep(gap_ms / 1000)
        clients.append(c)
    t.join(30)
    problems = list(t.errors)

    def check(sock, who) -> tuple[str, int]:
        want = msgs * msg_size
        data = bytearray()
        sock.settimeout(3)
        try:
            while len(data) < want:
                k = sock.recv(want - len(data))
                if not k:
                    break
                data += k
        except (socket.timeout, TimeoutError):
            pass
        if len(data) != want:
            return f"{who}: {len(data)} of {want} bytes", 0
        seqs = [REC.unpack_from(data, off)[1] for off in range(0, want, msg_size)]
        if seqs != list(range(msgs)):
            return f"{who}: records out of order {seqs}", 1
        return "", 0

    reordered = lost = 0
    examples = []
    for i, s in enumerate(accepted):
        why, bad = check(s, f"server conn {i} (client->server)")
        if why:
            reordered += bad
            lost += 1 - bad
            examples.append(why)
    if server_first:
        for i, c in enumerate(clients[:len(accepted)]):
            why, bad = check(c, f"client conn {i} (server->client)")
            if why:
                reordered += bad
                lost += 1 - bad
                examples.append(why)
    for x in accepted + clients:
        x.close()
    ls.close()
    if reordered:
        problems.append(f"{reordered} connection directions received records out of order, e.g. {examples[0]}")
    if lost:
        problems.append(f"{lost} connection directions lost bytes, e.g. {[e for e in examples if 'bytes' in e][0]}")
    return {"problems": problems, "connections": len(accepted), "reordered": reordered, "incomplete": lost,
            "examples": examples[:3]}


# =========================================================================== 3. shutdown / close / RST
def _epoll_read_to_eof(sock, want_max: int, timeout: float, h=None) -> dict:
    sock.setblocking(False)
    ep = select.epoll()
    ep.register(sock.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
    got, eof, wakeups = 0, False, 0
    deadline = time.monotonic() + timeout
    try:
        while not eof and time.monotonic() < deadline:
            ev = ep.poll(max(0.0, deadline - time.monotonic()))
            if not ev:
                break
            wakeups += 1
            while True:
                try:
                    d = sock.recv(1 << 16)
                except BlockingIOError:
                    break
                if not d:
                    eof = True
                    break
                got += len(d)
                if h is not None:
                    h.update(d)
    finally:
        ep.close()
        sock.setblocking(True)
    return {"bytes": got, "eof": eof, "wakeups": wakeups}


def sc_shutdown(port: int, size: int = 256 << 10) -> dict:
    problems = []
    out: dict = {}
    rng = random.Random(3)
    # (a) half-close: client sends, shutdown(SHUT_WR); server (epoll) reads to EOF, replies, half-closes too
    c, s = tcp_pair(port)
    req, resp = payload(size, rng), payload(size // 2, rng)
    c.sendall(req)
    c.shutdown(socket.SHUT_WR)
    hs = hashlib.sha256()
    t0 = time.monotonic()
    r = _epoll_read_to_eof(s, size, 5, hs)
    out["halfclose_server"] = {**r, "seconds": round(time.monotonic() - t0, 3)}
    if not r["eof"]:
        problems.append(f"half-close: server saw no EOF after SHUT_WR within 5 s (got {r['bytes']} of {size} B, "
                        f"{r['wakeups']} epoll wakeups)")
    elif hs.hexdigest() != hashlib.sha256(req).hexdigest():
        problems.append(f"half-close: server got {r['bytes']} of {size} B / SHA mismatch before EOF")
    s.sendall(resp)
    s.shutdown(socket.SHUT_WR)
    hc = hashlib.sha256()
    r = _epoll_read_to_eof(c, len(resp), 5, hc)
    out["halfclose_client"] = r
    if not r["eof"] or hc.hexdigest() != hashlib.sha256(resp).hexdigest():
        problems.append(f"half-close: client got {r['bytes']} of {len(resp)} B of the reply, eof={r['eof']}")
    c.close()
    s.close()
    checkpoint("closed_halfclose")

    # (b) close() by the reader mid-stream: the writer must get an error, not hang
    c, s = tcp_pair(port)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, struct.pack("ll", 5, 0))
    stop = threading.Event()
    res = {}

    def writer():
        blk = payload(1 << 16, rng)
        sent = 0
        try:
            while not stop.is_set():
                sent += c.send(blk)
        except (BrokenPipeError, ConnectionResetError) as e:
            res["error"] = type(e).__name__
        except (BlockingIOError, socket.timeout, TimeoutError):
            res["error"] = "timeout (writer blocked 5 s after the reader closed)"
        except OSError as e:
            res["error"] = f"{type(e).__name__}: {e}"
        res["sent"] = sent
    t = Threads()
    t.start("writer", writer)
    got = recv_exact(s, 1 << 20, None, timeout=5)
    t_close = time.monotonic()
    s.close()
    t.join(15)
    res["seconds_after_close"] = round(time.monotonic() - t_close, 3)
    out["close_midstream"] = {**res, "reader_got": got}
    if t.errors:
        problems.append(f"close mid-stream: {t.errors[0]}")
    elif res.get("error") not in ("BrokenPipeError", "ConnectionResetError"):
        problems.append(f"close mid-stream: writer did not get EPIPE/ECONNRESET: {res.get('error')}")
    c.close()
    checkpoint("closed_midstream")

    # (c) RST (SO_LINGER 0) mid-stream by the writer: the blocked reader must wake up (ECONNRESET or EOF)
    c, s = tcp_pair(port)
    rres = {}

    def reader():
        s.settimeout(5)
        n = 0
        try:
            while True:
                d = s.recv(1 << 16)
                if not d:
                    rres["end"] = "EOF"
                    break
                n += len(d)
        except ConnectionResetError:
            rres["end"] = "ECONNRESET"
        except (socket.timeout, TimeoutError):
            rres["end"] = "timeout (reader hung 5 s after the RST)"
        rres["got"] = n
    t = Threads()
    t.start("reader", reader)
    c.sendall(payload(size, rng))
    time.sleep(0.2)
    c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.close()
    t.join(15)
    out["rst_midstream"] = rres
    if t.errors:
        problems.append(f"RST mid-stream: {t.errors[0]}")
    elif rres.get("end") not in ("ECONNRESET", "EOF"):
        problems.append(f"RST mid-stream: reader: {rres.get('end')}")
    checkpoint("after_rst_reader_open")     # the reset socket is still open here
    s.close()
    checkpoint("closed_rst")
    return {"problems": problems, **out}


# =========================================================================== 4. MSG_PEEK, FIONREAD, epoll, SO_RCVTIMEO
def _fionread(sock) -> int:
    b = fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0\0\0\0")
    return struct.unpack("i", b)[0]


def sc_peek(port: int) -> dict:
    problems = []
    out = {}
    rng = random.Random(4)
    c, s = tcp_pair(port)
    for name, tx, rx in (("c2s", c, s), ("s2c", s, c)):
        d: dict[str, Any] = {}
        data = payload(1000, rng)
        ep = select.epoll()
        ep.register(rx.fileno(), select.EPOLLIN)
        tx.sendall(data)
        d["epoll_ready"] = bool(ep.poll(2))
        deadline = time.monotonic() + 2
        while (n := _fionread(rx)) < len(data) and time.monotonic() < deadline:
            time.sleep(0.01)
        d["fionread"] = n
        rx.settimeout(2)
        peeked = rx.recv(len(data), socket.MSG_PEEK | socket.MSG_WAITALL)
        d["peek_ok"] = peeked == data
        d["fionread_after_peek"] = _fionread(rx)
        rd = bytearray()
        while len(rd) < len(data):
            k = rx.recv(len(data) - len(rd))
            if not k:
                break
            rd += k
        d["recv_after_peek_ok"] = bytes(rd) == data
        if not d["recv_after_peek_ok"]:
            problems.append(f"{name}: recv after MSG_PEEK got {len(rd)} B / different data")
        d["fionread_after_recv"] = _fionread(rx)
        ep.close()
        if not d["epoll_ready"]:
            problems.append(f"{name}: epoll did not report EPOLLIN within 2 s")
        if d["fionread"] != len(data):
            problems.append(f"{name}: FIONREAD {d['fionread']} != {len(data)}")
        if not d["peek_ok"]:
            problems.append(f"{name}: MSG_PEEK returned {len(peeked)} B / different data")
        if d["fionread_after_peek"] != len(data):
            problems.append(f"{name}: FIONREAD after MSG_PEEK {d['fionread_after_peek']} != {len(data)}")
        if d["fionread_after_recv"] != 0:
            problems.append(f"{name}: FIONREAD after reading everything {d['fionread_after_recv']} != 0")
        # peek then read must give the same bytes
        data2 = payload(3000, rng)
        tx.sendall(data2)
        rx.settimeout(2)
        pk = rx.recv(3000, socket.MSG_PEEK | socket.MSG_WAITALL)
        rd = bytearray()
        while len(rd) < 3000:
            k = rx.recv(3000 - len(rd))
            if not k:
                break
            rd += k
        if pk != data2 or bytes(rd) != data2:
            problems.append(f"{name}: peek ({len(pk)} B, same={pk == data2}) / read ({len(rd)} B, "
                            f"same={bytes(rd) == data2}) mismatch")

        # non-blocking + epoll: EAGAIN when empty, wakeup when the peer writes later
        rx.setblocking(False)
        try:
            rx.recv(10)
            d["nonblock_empty"] = "data?!"
            problems.append(f"{name}: non-blocking recv on an empty socket returned data")
        except BlockingIOError:
            d["nonblock_empty"] = "EAGAIN"
        ep = select.epoll()
        ep.register(rx.fileno(), select.EPOLLIN)
        late = payload(500, rng)
        timer = threading.Timer(0.1, tx.sendall, (late,))
        timer.start()
        t0 = time.monotonic()
        d["epoll_wakeup"] = bool(ep.poll(3))
        d["epoll_wakeup_s"] = round(time.monotonic() - t0, 3)
        timer.join()
        got = b""
        deadline = time.monotonic() + 2
        while len(got) < 500 and time.monotonic() < deadline:
            try:
                k = rx.recv(500 - len(got))
                if not k:
                    break
                got += k
            except BlockingIOError:
                ep.poll(0.2)
        ep.close()
        rx.setblocking(True)
        if not d["epoll_wakeup"]:
            problems.append(f"{name}: epoll did not wake up when the peer wrote (3 s)")
        if got != late:
            problems.append(f"{name}: non-blocking read got {len(got)} of 500 B after the wakeup")

        # SO_RCVTIMEO: an empty socket times out after ~0.3 s; then data arrives and is read
        rx.settimeout(None)
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 300_000))
        t0 = time.monotonic()
        try:
            rx.recv(10)
            d["rcvtimeo"] = "data?!"
        except (BlockingIOError, socket.timeout, TimeoutError):
            d["rcvtimeo"] = "EAGAIN"
        d["rcvtimeo_s"] = round(time.monotonic() - t0, 3)
        if d["rcvtimeo"] != "EAGAIN" or not (0.2 <= d["rcvtimeo_s"] <= 2.0):
            problems.append(f"{name}: SO_RCVTIMEO 0.3 s: {d['rcvtimeo']} after {d['rcvtimeo_s']} s")
        timer = threading.Timer(0.1, tx.sendall, (b"0123456789",))
        timer.start()
        try:
            k = rx.recv(10)
        except OSError as e:
            k = repr(e).encode()
        timer.join()
        if k != b"0123456789":
            problems.append(f"{name}: recv with SO_RCVTIMEO did not get data sent 0.1 s later: {k[:40]!r}")
        rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", 0, 0))
        out[name] = d
    c.close()
    s.close()
    return {"problems": problems, **out}


# =========================================================================== 5. sendfile / splice
def _sendfile_all(sock, path: str, size: int) -> None:
    with open(path, "rb") as f:
        off = 0
        while off < size:
            n = os.sendfile(sock.fileno(), f.fileno(), off, size - off)
            if n == 0:
                raise ConnectionError("sendfile returned 0")
            off += n


def sc_sendfile(port: int, size: int = 4 << 20) -> dict:
    problems = []
    out = {}
    rng = random.Random(5)
    data = payload(size, rng)
    want = hashlib.sha256(data).hexdigest()
    fd, path = tempfile.mkstemp(prefix="pbgc-sendfile-")
    try:
        os.write(fd, data)
        os.close(fd)
        c, s = tcp_pair(port)
        for name, tx, rx in (("c2s", c, s), ("s2c", s, c)):
            t = Threads()
            t.start("sendfile", _sendfile_all, tx, path, size)
            h = hashlib.sha256()
            got = recv_exact(rx, size, h, timeout=10)
            t.join(15)
            out[f"sendfile_{name}_bytes"] = got
            if t.errors:
                problems.append(f"sendfile {name}: {t.errors[0]}")
            if got != size or h.hexdigest() != want:
                problems.append(f"sendfile {name}: received {got} of {size} B"
                                + ("" if got != size else " (SHA-256 mismatch)"))
        c.close()
        s.close()
    finally:
        os.unlink(path)
    return {"problems": problems, **out}


def sc_splice(port: int, size: int = 1 << 20, wait: float = 3.0) -> dict:
    """The server reads with splice(2) into a pipe; afterwards whatever splice did not get is read with recv."""
    rng = random.Random(6)
    data = payload(size, rng)
    c, s = tcp_pair(port)
    t = Threads()
    t.start("send", c.sendall, data)
    pr, pw = os.pipe()
    fcntl.fcntl(pr, fcntl.F_SETFL, os.O_NONBLOCK)
    h = hashlib.sha256()
    got = zero_returns = 0
    s.setblocking(False)
    deadline = time.monotonic() + wait
    poller = select.poll()
    poller.register(s.fileno(), select.POLLIN)
    while got < size and time.monotonic() < deadline:
        if not poller.poll(100):
            continue
        try:
            n = os.splice(s.fileno(), pw, 1 << 16, flags=os.SPLICE_F_NONBLOCK | os.SPLICE_F_MOVE)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        if n == 0:
            zero_returns += 1
            time.sleep(0.01)
            continue
        while n:
            chunk = os.read(pr, n)
            h.update(chunk)
            got += len(chunk)
            n -= len(chunk)
    spliced = got
    # fall back to recv for the rest: where did the bytes go?
    s.setblocking(True)
    rest = recv_exact(s, size - got, h, timeout=2)
    t.join(10)
    c.close()
    s.close()
    os.close(pr)
    os.close(pw)
    problems = []
    if spliced != size:
        problems.append(f"splice reader got {spliced} of {size} B in {wait:.0f} s "
                        f"(splice returned 0 {zero_returns} times; recv afterwards got {rest} B)")
    elif h.hexdigest() != hashlib.sha256(data).hexdigest():
        problems.append("splice reader: SHA-256 mismatch")
    return {"problems": problems, "spliced": spliced, "recv_after_splice": rest, "size": size,
            "splice_zero_returns": zero_returns}


# =========================================================================== 6. slow reader, fast writer
def sc_slow_reader(port: int, total: int = 64 << 20, slow_seconds: float = 2.0, slow_chunk: int = 4096,
                   slow_interval: float = 0.01, chunk: int = 1 << 16) -> dict:
    c, s = tcp_pair(port)
    rng = random.Random(7)
    blk = payload(chunk, rng)
    slow_end = threading.Event()
    w = {"eagain": 0, "eagain_slow": 0, "sent": 0, "sent_after_slow": 0, "blocked_s": 0.0}

    def writer():
        h = hashlib.sha256()
        c.setblocking(False)
        ep = select.epoll()
        ep.register(c.fileno(), select.EPOLLOUT)
        view = memoryview(blk)
        off_in_blk = 0
        deadline = time.monotonic() + 60
        while w["sent"] < total:
            if time.monotonic() > deadline:
                raise TimeoutError(f"writer stuck at {w['sent']} of {total} B")
            n = min(len(blk) - off_in_blk, total - w["sent"])
            try:
                k = c.send(view[off_in_blk:off_in_blk + n])
            except BlockingIOError:
                w["eagain"] += 1
                if not slow_end.is_set():
                    w["eagain_slow"] += 1
                t0 = time.monotonic()
                ep.poll(1.0)
                w["blocked_s"] += time.monotonic() - t0
                continue
            h.update(view[off_in_blk:off_in_blk + k])
            w["sent"] += k
            if slow_end.is_set():
                w["sent_after_slow"] += k
            off_in_blk = (off_in_blk + k) % len(blk)
        ep.close()
        w["sha"] = h.hexdigest()

    t = Threads()
    t.start("writer", writer)
    h = hashlib.sha256()
    got = 0
    s.settimeout(10)
    t_end = time.monotonic() + slow_seconds
    while time.monotonic() < t_end and got < total:
        d = s.recv(slow_chunk)
        if not d:
            break
        h.update(d)
        got += len(d)
        time.sleep(slow_interval)
    w["sent_during_slow"] = w["sent"]
    checkpoint("slow_phase_end", sent=w["sent"], read=got)
    slow_end.set()
    got_slow = got
    got += recv_exact(s, total - got, h, timeout=20)
    t.join(30)
    c.close()
    s.close()
    problems = list(t.errors)
    if got != total or w.get("sha") != h.hexdigest():
        problems.append(f"received {got} of {total} B" + (" (SHA-256 mismatch)" if got == total else ""))
    if w["eagain_slow"] == 0:
        problems.append(f"the writer never blocked while the reader was slow: it queued "
                        f"{w['sent_during_slow'] - got_slow} B unread ({w['sent_during_slow']} sent, "
                        f"{got_slow} read)")
    return {"problems": problems, "total": total, "read_during_slow": got_slow,
            "sent_during_slow": w["sent_during_slow"],
            "queued_unread_mib": round((w["sent_during_slow"] - got_slow) / 2**20, 1),
            "writer_eagain": w["eagain"], "writer_eagain_slow": w["eagain_slow"],
            "writer_blocked_s": round(w["blocked_s"], 2)}


# =========================================================================== 7. big stream, request/response
def sc_big_stream(port: int, total: int, block: int = 1 << 20, stall_s: float = 2.0) -> dict:
    c, s = tcp_pair(port)
    rng = random.Random(8)
    blk = payload(block, rng)

    def sender():
        h = hashlib.sha256()
        sent = 0
        i = 0
        view = memoryview(bytearray(blk))
        while sent < total:
            struct.pack_into("!Q", view, 0, i)      # every block differs (counter), so reordering is visible
            n = min(block, total - sent)
            c.sendall(view[:n])
            h.update(view[:n])
            sent += n
            i += 1
        return {"sha": h.hexdigest(), "bytes": sent}

    t = Threads()
    t.start("send", sender)
    h = hashlib.sha256()
    last = [time.monotonic()]
    gap = [0.0]
    step = [0]
    t0 = time.monotonic()

    def prog(got):
        now = time.monotonic()
        gap[0] = max(gap[0], now - last[0])
        last[0] = now
        if got >> 28 != step[0]:               # every 256 MiB
            step[0] = got >> 28
            emit("progress", received=got)
    got = recv_exact(s, total, h, timeout=max(stall_s * 5, 10), progress=prog)
    secs = time.monotonic() - t0
    t.join(30)
    c.close()
    s.close()
    snd = t.results.get("send", {})
    problems = list(t.errors)
    if got != total:
        problems.append(f"received {got} of {total} B (stalled or truncated)")
    elif snd.get("sha") != h.hexdigest():
        problems.append("SHA-256 mismatch")
    if gap[0] > stall_s:
        problems.append(f"stall: no data for {gap[0]:.1f} s")
    return {"problems": problems, "bytes": got, "seconds": round(secs, 2),
            "gbit_s": round(got * 8 / secs / 1e9, 2), "max_gap_s": round(gap[0], 3)}


def sc_reqresp(port: int, rounds: int, min_size: int = 1 << 20, max_size: int = 4 << 20,
               stall_s: float = 2.0) -> dict:
    c, s = tcp_pair(port)
    rng = random.Random(9)
    plan = [(rng.randint(min_size, max_size), rng.randint(min_size, max_size)) for _ in range(rounds)]

    def server():
        srng = random.Random(10)
        bad = 0
        for _req_n, resp_n in plan:
            h = hashlib.sha256()
            hdr = b""
            while len(hdr) < 40:
                d = s.recv(40 - len(hdr))
                if not d:
                    raise ConnectionError("EOF in request header")
                hdr += d
            n, want = struct.unpack("!Q32s", hdr)
            got = recv_exact(s, n, h, timeout=stall_s * 5)
            if got != n or h.digest() != want:
                bad += 1
            body = payload(resp_n, srng)
            s.sendall(struct.pack("!Q32s", resp_n, hashlib.sha256(body).digest()) + body)
        return bad

    t = Threads()
    t.start("server", server)
    crng = random.Random(11)
    lat = []
    problems = []
    for i, (req_n, _resp_n) in enumerate(plan):
        body = payload(req_n, crng)
        t0 = time.monotonic()
        c.sendall(struct.pack("!Q32s", req_n, hashlib.sha256(body).digest()) + body)
        hdr = b""
        c.settimeout(stall_s * 5)
        try:
            while len(hdr) < 40:
                d = c.recv(40 - len(hdr))
                if not d:
                    break
                hdr += d
        except (socket.timeout, TimeoutError):
            pass
        if len(hdr) < 40:
            problems.append(f"round {i}: no response header within {stall_s * 5:.0f} s (stall)")
            break
        n, want = struct.unpack("!Q32s", hdr)
        h = hashlib.sha256()
        got = recv_exact(c, n, h, timeout=stall_s * 5)
        lat.append(time.monotonic() - t0)
        if got != n or h.digest() != want:
            problems.append(f"round {i}: response {got} of {n} B" + (" SHA mismatch" if got == n else ""))
            break
    t.join(20)
    c.close()
    s.close()
    problems += t.errors
    if t.results.get("server"):
        problems.append(f"{t.results['server']} requests arrived corrupted or short")
    slow = [x for x in lat if x > stall_s]
    if slow:
        problems.append(f"{len(slow)} rounds took more than {stall_s} s (max {max(slow):.1f} s)")
    lat_sorted = sorted(lat) or [0]
    return {"problems": problems, "rounds": len(lat), "max_round_s": round(max(lat_sorted), 3),
            "median_round_ms": round(lat_sorted[len(lat_sorted) // 2] * 1000, 1)}


# =========================================================================== 8. concurrency and churn
class _Stream:
    __slots__ = ("sock", "out", "off", "h_in", "n_in", "want_in", "done_tx", "eof")

    def __init__(self, sock, out: bytes, want_in: int):
        self.sock, self.out, self.off = sock, memoryview(out), 0
        self.h_in, self.n_in, self.want_in = hashlib.sha256(), 0, want_in
        self.done_tx = self.eof = False


def _pump(streams: list[_Stream], timeout: float, stop=None) -> bool:
    """Drive non-blocking full-duplex streams until all sent and received (or stop/timeout)."""
    sel = selectors.DefaultSelector()
    for st in streams:
        st.sock.setblocking(False)
        sel.register(st.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, st)
    buf = bytearray(1 << 16)
    deadline = time.monotonic() + timeout
    pending = len(streams)
    try:
        while pending and time.monotonic() < deadline:
            for key, ev in sel.select(0.5):
                st = key.data
                if ev & selectors.EVENT_WRITE and not st.done_tx:
                    try:
                        st.off += st.sock.send(st.out[st.off:st.off + (1 << 16)])
                    except BlockingIOError:
                        pass
                    if st.off >= len(st.out):
                        st.done_tx = True
                        sel.modify(st.sock, selectors.EVENT_READ, st)
                if ev & selectors.EVENT_READ:
                    try:
                        k = st.sock.recv_into(buf)
                    except BlockingIOError:
                        k = -1
                    if k == 0:
                        st.eof = True
                    elif k > 0:
                        st.h_in.update(memoryview(buf)[:k])
                        st.n_in += k
                if st.done_tx and (st.n_in >= st.want_in or st.eof) and key.fileobj in sel.get_map():
                    sel.unregister(st.sock)
                    pending -= 1
    finally:
        sel.close()
    return pending == 0


def sc_concurrent(port: int, conns: int = 200, size: int = 256 << 10) -> dict:
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((HOST, port))
    ls.listen(conns + 16)
    rng = random.Random(12)
    pairs = []
    for _ in range(conns):
        pairs.append(tcp_pair(port, listener=ls))
    ls.close()
    streams = []
    for c, s in pairs:
        a, b = payload(size, rng), payload(size, rng)
        streams += [_Stream(c, a, size), _Stream(s, b, size)]
    expect = {id(st): hashlib.sha256(bytes(st.out)).hexdigest() for st in streams}
    t0 = time.monotonic()
    finished = _pump(streams, 60)
    secs = time.monotonic() - t0
    bad = 0
    for i in range(0, len(streams), 2):
        cs, ss = streams[i], streams[i + 1]
        if ss.n_in != size or ss.h_in.hexdigest() != expect[id(cs)]:
            bad += 1
        if cs.n_in != size or cs.h_in.hexdigest() != expect[id(ss)]:
            bad += 1
    lost = sum(max(0, size - st.n_in) for st in streams)
    for c, s in pairs:
        c.close()
        s.close()
    problems = []
    if not finished:
        problems.append("not all streams finished within 60 s (hang)")
    if bad:
        problems.append(f"{bad} of {2 * conns} directions incomplete or corrupted ({lost} B missing)")
    return {"problems": problems, "connections": conns, "bytes_total": 2 * conns * size, "bytes_lost": lost,
            "seconds": round(secs, 2)}


def sc_churn(port: int, cycles: int = 2000, size: int = 1024) -> dict:
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((HOST, port))
    ls.listen(128)
    ls.settimeout(10)

    def server():
        errs = 0
        for _ in range(cycles):
            s, _ = ls.accept()
            try:
                s.settimeout(10)
                d = bytearray()
                while len(d) < size:
                    k = s.recv(size - len(d))
                    if not k:
                        break
                    d += k
                s.sendall(bytes(d))
            except OSError:
                errs += 1
            finally:
                s.close()
        return errs

    t = Threads()
    t.start("server", server)
    rng = random.Random(13)
    bad, errors = 0, []
    t0 = time.monotonic()
    for i in range(cycles):
        data = payload(size, rng)
        try:
            c = socket.create_connection((HOST, port), timeout=10)
            c.sendall(data)
            back = bytearray()
            while len(back) < size:
                k = c.recv(size - len(back))
                if not k:
                    break
                back += k
            c.close()
            if bytes(back) != data:
                bad += 1
        except OSError as e:
            errors.append(f"cycle {i}: {type(e).__name__}: {e}")
        if i % 1000 == 999:
            emit("progress", cycles=i + 1)
    secs = time.monotonic() - t0
    t.join(30)
    ls.close()
    problems = list(t.errors) + errors[:3]
    if bad:
        problems.append(f"{bad} of {cycles} echoes came back short or different")
    if t.results.get("server"):
        problems.append(f"server: {t.results['server']} errors")
    return {"problems": problems, "cycles": cycles, "cycles_per_s": round(cycles / secs), "bad": bad,
            "errors": len(errors)}


# =========================================================================== 9. unload / load while flowing
def sc_flows(port: int, streams: int = 100, phases: Sequence[str] = ("flowing", "unloaded", "reloaded"),
             phase_s: float = 1.0, new_after_reload: int = 4, new_size: int = 1 << 20) -> dict:
    """``streams`` full-duplex connections send continuously (sequence-stamped blocks); after each phase a
    checkpoint lets the orchestrator unload / reload the accelerator; then every sender stops, half-closes,
    and every receiver checks its byte count and SHA-256 against the sender's."""
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((HOST, port))
    ls.listen(streams + 16)
    socks = []
    for _ in range(streams):
        socks += list(tcp_pair(port, listener=ls))
    rng = random.Random(14)
    blk = bytearray(payload(16 << 10, rng))
    state = {s.fileno(): {"sock": s, "h_out": hashlib.sha256(), "n_out": 0, "seq": 0, "pend": b"",
                          "h_in": hashlib.sha256(), "n_in": 0, "eof": False, "shut": False} for s in socks}
    peer = {}
    for i in range(0, len(socks), 2):
        peer[socks[i].fileno()] = socks[i + 1].fileno()
        peer[socks[i + 1].fileno()] = socks[i].fileno()
    stop = threading.Event()
    rx_total = [0]
    err = []

    def loop():
        sel = selectors.DefaultSelector()
        for s in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
        buf = bytearray(1 << 16)
        open_rx = len(socks)
        deadline = time.monotonic() + 120
        while open_rx and time.monotonic() < deadline:
            for key, ev in sel.select(0.2):
                st = state[key.fd]
                s = st["sock"]
                if ev & selectors.EVENT_READ and not st["eof"]:
                    try:
                        k = s.recv_into(buf)
                        if k == 0:
                            st["eof"] = True
                            open_rx -= 1
                        else:
                            st["h_in"].update(memoryview(buf)[:k])
                            st["n_in"] += k
                            rx_total[0] += k
                    except BlockingIOError:
                        pass
                    except OSError as e:
                        err.append(f"recv: {e}")
                        st["eof"] = True
                        open_rx -= 1
                if ev & selectors.EVENT_WRITE and not st["shut"]:
                    if not st["pend"]:
                        if stop.is_set():
                            s.shutdown(socket.SHUT_WR)
                            st["shut"] = True
                            sel.modify(s, selectors.EVENT_READ)
                            continue
                        struct.pack_into("!QQ", blk, 0, key.fd, st["seq"])
                        st["seq"] += 1
                        st["pend"] = memoryview(bytes(blk))
                    try:
                        k = s.send(st["pend"])
                        st["h_out"].update(st["pend"][:k])
                        st["n_out"] += k
                        st["pend"] = st["pend"][k:]
                    except BlockingIOError:
                        pass
                    except OSError as e:
                        err.append(f"send: {e}")
                        st["shut"] = True
                        sel.modify(s, selectors.EVENT_READ)
                if st["eof"] and st["shut"] and key.fileobj in sel.get_map():
                    sel.unregister(s)
        sel.close()
        if open_rx:
            err.append(f"{open_rx} receivers did not reach EOF within 120 s (hang)")

    t = Threads()
    t.start("loop", loop)
    phase_rx = {}
    for ph in phases:
        before = rx_total[0]
        time.sleep(phase_s)
        phase_rx[ph] = rx_total[0] - before
        checkpoint(ph, received=rx_total[0])
    new = {}
    if new_after_reload:
        # connections opened after the reload must work (and be accelerated again)
        nr = random.Random(15)
        ok = 0
        for _ in range(new_after_reload):
            c, s = tcp_pair(port, listener=ls)
            d = payload(new_size, nr)
            tt = Threads()
            tt.start("tx", c.sendall, d)
            h = hashlib.sha256()
            got = recv_exact(s, new_size, h, timeout=10)
            tt.join(10)
            ok += got == new_size and h.hexdigest() == hashlib.sha256(d).hexdigest()
            c.close()
            s.close()
        new = {"new_connections": new_after_reload, "new_ok": ok}
        checkpoint("new_done")
    stop.set()
    t.join(150)
    ls.close()
    problems = list(t.errors) + err[:3]
    lost = bad = 0
    for fd, st in state.items():
        src = state[peer[fd]]
        if st["n_in"] != src["n_out"]:
            bad += 1
            lost += src["n_out"] - st["n_in"]
        elif st["h_in"].hexdigest() != src["h_out"].hexdigest():
            bad += 1
    for s in socks:
        s.close()
    if bad:
        problems.append(f"{bad} of {len(socks)} directions differ: {lost} B lost (received != sent, or SHA-256)")
    if new and new["new_ok"] != new["new_connections"]:
        problems.append(f"only {new['new_ok']} of {new['new_connections']} new connections intact")
    idle = [p for p, n in phase_rx.items() if n == 0]
    if idle:
        problems.append(f"no data flowed during phase(s) {idle} (stall)")
    return {"problems": problems, "streams": streams, "bytes": sum(s["n_in"] for s in state.values()),
            "bytes_lost": lost, "directions_bad": bad, "phase_bytes": phase_rx, **new}


# =========================================================================== 10. identical 4-tuples
TAGREC = struct.Struct("!8sQ")


def _tagged(tag: str, n_records: int) -> bytes:
    t = tag.encode().ljust(8, b"_")[:8]
    return b"".join(TAGREC.pack(t, i) for i in range(n_records))


def _read_tags(sock, seconds: float) -> dict:
    sock.settimeout(0.2)
    data = bytearray()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            d = sock.recv(1 << 16)
        except (socket.timeout, TimeoutError):
            continue
        except OSError as e:
            return {"error": str(e), "tags": {}}
        if not d:
            break
        data += d
    tags: dict[str, int] = {}
    for off in range(0, len(data) - len(data) % TAGREC.size, TAGREC.size):
        tag = TAGREC.unpack_from(data, off)[0].decode(errors="replace").rstrip("_")
        tags[tag] = tags.get(tag, 0) + 1
    return {"bytes": len(data), "tags": tags, "sha": hashlib.sha256(data).hexdigest()}


def sc_tuple_pair(port: int, client_port: int, tag: str, records: int = 4096, read_s: float = 2.0) -> dict:
    """Both ends in this process (this netns): the pair of namespace A."""
    c, s = tcp_pair(port, bind_port=client_port)
    checkpoint("established")
    c.sendall(_tagged(tag + "-c", records))
    s.sendall(_tagged(tag + "-s", records))
    return {"server_got": _read_tags(s, read_s), "client_got": _read_tags(c, read_s),
            "sha_c": hashlib.sha256(_tagged(tag + "-c", records)).hexdigest(),
            "sha_s": hashlib.sha256(_tagged(tag + "-s", records)).hexdigest()}


def sc_tuple_server(port: int, tag: str, records: int = 4096, read_s: float = 2.0) -> dict:
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((HOST, port))
    ls.listen(4)
    ls.settimeout(20)
    emit("listening")
    s, _ = ls.accept()
    checkpoint("established")
    s.sendall(_tagged(tag + "-s", records))
    return {"server_got": _read_tags(s, read_s), "sha_s": hashlib.sha256(_tagged(tag + "-s", records)).hexdigest()}


def sc_tuple_client(port: int, client_port: int, tag: str, records: int = 4096, read_s: float = 2.0) -> dict:
    c = socket.socket()
    c.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    c.bind((HOST, client_port))
    c.settimeout(10)
    c.connect((HOST, port))
    checkpoint("established")
    c.sendall(_tagged(tag + "-c", records))
    return {"client_got": _read_tags(c, read_s), "sha_c": hashlib.sha256(_tagged(tag + "-c", records)).hexdigest()}


# =========================================================================== 12. MSG_WAITALL
def _recv_waitall(sock, n: int, h) -> tuple[int, int, int]:
    """``recv(n, MSG_WAITALL)`` as a fixed-size-record reader does it, then (when that came back short) more
    MSG_WAITALL reads for the rest, as a reader that checks the length would. Returns (bytes the first read
    returned, bytes received in all, recv calls). The socket must be blocking (Python's own timeouts make it
    non-blocking, where MSG_WAITALL means nothing): SO_RCVTIMEO bounds every wait instead."""
    first, got, calls = None, 0, 0
    while got < n:
        try:
            d = sock.recv(n - got, socket.MSG_WAITALL)
        except OSError:            # EAGAIN after SO_RCVTIMEO with nothing copied, or a reset
            break
        calls += 1
        if first is None:
            first = len(d)
        if not d:
            break
        h.update(d)
        got += len(d)
    return first or 0, got, calls


def _parts(n: int, k: int) -> list[tuple[int, int]]:
    k = max(1, min(k, n))
    bounds = [i * n // k for i in range(k)] + [n]
    return [(bounds[i], bounds[i + 1]) for i in range(k)]


def _rcvtimeo(sock, seconds: int) -> None:
    sock.settimeout(None)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, struct.pack("ll", seconds, 0))


def sc_waitall(port: int, sizes: list[int], rounds: int = 2, pause_s: float = 0.05, big_parts: int = 4,
               big: int = 1 << 20) -> dict:
    """Fixed-size records, each written in parts with a pause between them (2 parts; records of ``big`` bytes
    and more in ``big_parts`` parts); the reader asks for each record with one ``recv(n, MSG_WAITALL)`` and
    acknowledges it with one byte (request/response, so the unanswered budget never moves the connection to
    the TCP path). Both directions, one after the other. Short reads are counted, not judged (cases.py judges
    them by path); lost, extra or reordered bytes are problems."""
    c, s = tcp_pair(port)
    for x in (c, s):
        _rcvtimeo(x, 5)
    rng = random.Random(16)
    problems: list[str] = []
    out: dict = {}
    reads = short = asked_short = returned_short = 0
    smallest: dict[int, int] = {}      # record size -> smallest first read
    for d, tx, rx in (("c2s", c, s), ("s2c", s, c)):
        plan = [n for _ in range(rounds) for n in sizes]
        records = [payload(n, rng) for n in plan]
        want = hashlib.sha256(b"".join(records)).hexdigest()

        def sender(tx=tx, records=records):
            for rec in records:
                for i, (a, b) in enumerate(_parts(len(rec), big_parts if len(rec) >= big else 2)):
                    if i:
                        time.sleep(pause_s)
                    tx.sendall(rec[a:b])
                if tx.recv(1) != b"k":          # the reader's acknowledgement
                    raise ConnectionError("no acknowledgement from the reader")
        t = Threads()
        t.start("send", sender)
        h = hashlib.sha256()
        d_short = d_calls = d_got = 0
        for n in plan:
            first, got, calls = _recv_waitall(rx, n, h)
            reads += 1
            d_calls += calls
            d_got += got
            smallest[n] = min(smallest.get(n, n), first)
            if first < n:
                short += 1
                d_short += 1
                asked_short += n
                returned_short += first
            if got < n:
                problems.append(f"{d}: a {n} B record: only {got} B arrived within 5 s (lost or stalled)")
                break
            rx.sendall(b"k")
        t.join(30)
        problems += [f"{d}: {e}" for e in t.errors]
        total = sum(plan)
        if not any(p.startswith(d) for p in problems):
            if d_got != total:
                problems.append(f"{d}: received {d_got} of {total} B")
            elif h.hexdigest() != want:
                problems.append(f"{d}: SHA-256 mismatch (bytes lost, duplicated or reordered)")
        out[f"{d}_reads"] = len(plan)
        out[f"{d}_short_reads"] = d_short
        out[f"{d}_recv_calls"] = d_calls
        out[f"{d}_bytes"] = d_got
    c.close()
    s.close()
    return {"problems": problems, **out, "reads": reads, "short_reads": short, "bytes_asked_short": asked_short,
            "bytes_returned_short": returned_short,
            "first_reads": ", ".join(f"{smallest[n]} of {n} B" for n in sorted(smallest))}


def sc_waitall_demoted(port: int, records: int = 300, rec_size: int = 64, after: Sequence[int] = (200, 65536),
                       pause_s: float = 0.05) -> dict:
    """A one-way stream of ``records`` small records (past the unanswered budget: the accelerator moves the
    sender to the TCP path after 256 messages, so the reader holds redirected bytes in its sockmap queue and the
    newer ones in its TCP queue); then one ``recv(all, MSG_WAITALL)``. Afterwards records of ``after`` sizes,
    each in two parts with a pause, read with ``recv(n, MSG_WAITALL)`` (the stream is on the TCP path now)."""
    c, s = tcp_pair(port)
    _rcvtimeo(s, 5)
    rng = random.Random(17)
    recs = [REC.pack(7, i) + payload(rec_size - REC.size, rng) for i in range(records)]
    burst = b"".join(recs)
    later = [payload(n, rng) for n in after]
    want = hashlib.sha256(burst + b"".join(later)).hexdigest()
    for r in recs:
        c.sendall(r)
    time.sleep(0.3)                          # every byte of the burst has arrived (in one queue or the other)
    h = hashlib.sha256()
    first, got, calls = _recv_waitall(s, len(burst), h)
    problems: list[str] = []
    out = {"burst_bytes": len(burst), "burst_first_read": first, "burst_recv_calls": calls}
    if got < len(burst):
        problems.append(f"one-way burst: only {got} of {len(burst)} B arrived")
    go = threading.Event()

    def sender():
        for rec in later:
            if not go.wait(10):
                raise TimeoutError("reader did not ask for the next record")
            go.clear()
            half = len(rec) // 2
            c.sendall(rec[:half])
            time.sleep(pause_s)
            c.sendall(rec[half:])
    t = Threads()
    t.start("send", sender)
    after_short, after_firsts = 0, []
    for rec in later:
        if problems:
            break
        go.set()
        first, n_got, _ = _recv_waitall(s, len(rec), h)
        got += n_got
        after_firsts.append(f"{first} of {len(rec)} B")
        after_short += first < len(rec)
        if n_got < len(rec):
            problems.append(f"after the burst: a {len(rec)} B record: only {n_got} B arrived within 5 s")
    go.set()
    t.join(15)
    problems += t.errors
    total = len(burst) + sum(map(len, later))
    if not problems:
        if got != total:
            problems.append(f"received {got} of {total} B")
        elif h.hexdigest() != want:
            problems.append("SHA-256 mismatch (bytes lost, duplicated or reordered)")
    c.close()
    s.close()
    return {"problems": problems, **out, "after_reads": len(later), "after_short_reads": after_short,
            "after_first_reads": ", ".join(after_firsts), "bytes": got}


# =========================================================================== 13. TCP urgent data (MSG_OOB)
SIOCATMARK = 0x8905                 # <asm-generic/sockios.h>; not in Python's termios


def _at_mark(sock) -> bool:
    b = fcntl.ioctl(sock.fileno(), SIOCATMARK, b"\0\0\0\0")
    return struct.unpack("i", b)[0] != 0


def _oob_round(tx, rx, pre: bytes, urg: bytes, post: bytes, inline: bool, wait_s: float) -> dict:
    """One urgent byte in the middle of a stream: the sender writes ``pre``, ``send(urg, MSG_OOB)``, ``post``;
    the receiver (SO_OOBINLINE = ``inline``) waits for the exceptional condition (POLLPRI), calls
    ``recv(1, MSG_OOB)`` unless inline, then reads the rest, asking SIOCATMARK before every read. TCP: the last
    byte of ``urg`` is the urgent one; without SO_OOBINLINE it is read only with MSG_OOB (skipped inline), with it
    it stays inline; reads stop at the mark and SIOCATMARK is true there."""
    rx.setsockopt(socket.SOL_SOCKET, socket.SO_OOBINLINE, int(inline))
    tx.sendall(pre)
    tx.send(urg, socket.MSG_OOB)
    tx.sendall(post)
    total = len(pre) + len(urg) + len(post)
    p = select.poll()
    p.register(rx.fileno(), select.POLLPRI)
    pri = bool(p.poll(int(wait_s * 1000)))
    r: dict = {"pollpri": pri, "oob": None, "oob_error": None}
    if not inline:
        try:
            r["oob"] = rx.recv(1, socket.MSG_OOB).decode("latin-1")
        except OSError as e:
            r["oob_error"] = errno.errorcode.get(e.errno, str(e.errno)) if e.errno else type(e).__name__
    got, mark, reads = b"", None, []
    deadline = time.monotonic() + 2 * wait_s + 1
    while len(got) + len(r["oob"] or "") < total and time.monotonic() < deadline:
        if mark is None and _at_mark(rx):
            mark = len(got)
        try:
            d = rx.recv(4096)
        except OSError:          # EAGAIN after SO_RCVTIMEO
            break
        if not d:
            break
        reads.append(len(d))
        got += d
    r.update(inline=got.decode("latin-1"), mark=mark, reads=reads)
    return r


def sc_oob(port: int, wait_s: float = 0.5) -> dict:
    """TCP urgent data in the middle of a stream, both directions, the receiver without and with SO_OOBINLINE,
    after one ping-pong (so an accelerated connection is on the redirect path). Reports, per round, what the
    receiver got (the MSG_OOB byte or error, the inline stream, the SIOCATMARK offset, POLLPRI) and what TCP
    defines; cases.py judges the difference by path. Lost bytes (fewer received than sent) are counted."""
    c, s = tcp_pair(port)
    for x in (c, s):
        _rcvtimeo(x, 1)
    time.sleep(0.2)
    c.sendall(b"p")
    s.recv(1)
    s.sendall(b"q")
    c.recv(1)                       # the path is decided: redirect when accelerated
    problems: list[str] = []
    rounds: list[dict] = []
    plan = [("c2s", c, s, b"abc", b"!", b"def"), ("s2c", s, c, b"ABC", b"#", b"DEF")]
    for d, tx, rx, pre, urg, post in plan:
        for inline in (False, True):
            r = _oob_round(tx, rx, pre, urg, post, inline, wait_s)
            want_inline = pre + (urg if inline else urg[:-1]) + post
            exp = {"oob": None if inline else urg[-1:].decode(), "inline": want_inline.decode(),
                   "mark": len(pre) + len(urg) - 1, "pollpri": True}
            r.update(dir=d, oobinline=inline, sent=(pre + urg + post).decode(), expected=exp,
                     lost=len(pre) + len(urg) + len(post) - len(r["inline"]) - len(r["oob"] or ""))
            r["ok"] = all(r[k] == v for k, v in exp.items())
            rounds.append(r)
            rx.sendall(b"k")        # acknowledgement: request/response, the budget never demotes
            if tx.recv(1) != b"k":
                problems.append(f"{d}: no acknowledgement from the receiver")
                break
    c.close()
    s.close()
    return {"problems": problems, "rounds": rounds, "rounds_total": len(rounds),
            "rounds_wrong": sum(not r["ok"] for r in rounds), "bytes_lost": sum(max(0, r["lost"]) for r in rounds)}


SCENARIOS = {name[3:]: fn for name, fn in globals().items() if name.startswith("sc_") and callable(fn)}


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(argv[0])
    # die with the orchestrator, and never outlive the timeout
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001
        pass
    timeout = float(spec.get("timeout", 120))

    def watchdog():
        time.sleep(timeout)
        emit("error", error=f"watchdog: scenario still running after {timeout:.0f}s (hang)")
        os._exit(3)
    threading.Thread(target=watchdog, daemon=True).start()
    try:
        res = SCENARIOS[spec["scenario"]](**spec.get("args", {}))
        emit("result", **res)
        return 0
    except BaseException as e:  # noqa: BLE001
        emit("error", error=f"{type(e).__name__}: {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
