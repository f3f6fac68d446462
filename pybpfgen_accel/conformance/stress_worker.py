"""Stress mode, one end of a round: ``python -m pybpfgen_accel.conformance.stress_worker '<json spec>'``, run by the
orchestrator (stress.py) inside the round's network namespace and that end's cgroups.

Spec: ``{"role": "server"|"client", "port": N, "round": RoundParams.to_dict(), "timeout": S}``. The server
listens (event ``listening``) and accepts ``conns`` connections; the client connects them one after the other.
Each end then sends its direction of every connection (writes as planned, random pauses before system calls,
request/response gates) and reads the other direction until EOF:

* ``blocking``: two threads per connection (one writes, one reads), blocking sockets, no timeouts;
* ``epoll``: non-blocking sockets driven by one epoll loop (level-triggered, waits without a timeout).

Every ~0.25 s the end reports ``{"event": "progress", "moved": bytes sent + received, "want": bool}``; the
orchestrator decides whether the round stalled and then writes ``abort`` on stdin (sockets are shut down, what
happens after that is not counted). The last line is ``{"event": "result", ...}`` with, per connection, the bytes
and SHA-256 sent, the receiver's record counts (stress_stream.StreamChecker), and every spurious error:
EAGAIN/EWOULDBLOCK on a blocking socket, ECONNRESET, EPIPE, any other errno, a blocking send() that returned
short, and EOF before the whole stream arrived. Standard library only.
"""
from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import select
import signal
import socket
import struct
import sys
import threading
import time

from .stress_plan import RoundParams, derive_seed, direction_plan, gates, pause_rng
from .stress_stream import StreamChecker, StreamSource

HOST = "127.0.0.1"
_out_lock = threading.Lock()
MAX_ERRORS = 200


def emit(event: str, **kw) -> None:
    with _out_lock:
        sys.stdout.write(json.dumps({"event": event, **kw}) + "\n")
        sys.stdout.flush()


def blocking_state(sock: socket.socket) -> str:
    """Proof that a socket is blocking when it returned EAGAIN: O_NONBLOCK and SO_RCVTIMEO/SO_SNDTIMEO as the
    kernel sees them."""
    try:
        nb = bool(fcntl.fcntl(sock.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK)
        tv = struct.calcsize("ll")
        rcv = struct.unpack("ll", sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, tv))
        snd = struct.unpack("ll", sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, tv))
        return (f"on a blocking socket (O_NONBLOCK {'set' if nb else 'clear'}, SO_RCVTIMEO {rcv[0]}.{rcv[1]:06d} s, "
                f"SO_SNDTIMEO {snd[0]}.{snd[1]:06d} s)")
    except OSError as e:
        return f"on a blocking socket (flags unreadable: {e})"


def errname(e: BaseException) -> str:
    if isinstance(e, OSError) and e.errno:
        return errno.errorcode.get(e.errno, str(e.errno))
    return type(e).__name__


class Conn:
    """One connection as this end sees it: its sending and receiving half."""

    def __init__(self, end: "End", idx: int, sock: socket.socket):
        rp, role = end.rp, end.role
        self.end, self.idx, self.sock = end, idx, sock
        tx_dir, rx_dir = ("c2s", "s2c") if role == "client" else ("s2c", "c2s")
        self.plan = direction_plan(rp, idx, tx_dir)
        rx_plan = direction_plan(rp, idx, rx_dir)
        self.src = StreamSource(self.plan, derive_seed(rp.seed, "src", idx, tx_dir))
        self.chk = StreamChecker(rx_plan.n_records, rx_plan.total)
        self.gates = gates(rp, idx, role)
        self.turn_of_write = self._turns()
        self.wi = 0                       # next write
        self.pending = memoryview(b"")    # epoll: the rest of the current write
        self.sent = 0
        self.tx_done = not self.plan.writes
        self.rx_done = False
        self.cv = threading.Condition()
        self.rng_tx = pause_rng(rp, idx, role + "-tx")
        self.rng_rx = pause_rng(rp, idx, role + "-rx")
        self.paused: dict[int, float] = {}

    def _turns(self) -> list[int]:
        if not self.plan.turn_ends:
            return [0] * len(self.plan.writes)
        out, t, acc = [], 0, 0
        for w in self.plan.writes:
            out.append(t)
            acc += w
            if t < len(self.plan.turn_ends) and acc >= self.plan.turn_ends[t]:
                t += 1
        return out

    def gate_open(self) -> bool:
        if self.gates is None or self.wi >= len(self.plan.writes):
            return True
        return self.chk.bytes >= self.gates[self.turn_of_write[self.wi]]

    def pause(self, rng) -> None:
        """A random pause before a system call, at most ``pause_budget_s`` in all per direction (so that small
        reads with frequent pauses do not make a round last minutes)."""
        rp = self.end.rp
        if rp.pause_p and rng.random() < rp.pause_p:
            d = rng.uniform(0, rp.pause_max_s)
            key = id(rng)
            if self.paused.get(key, 0.0) + d <= rp.pause_budget_s:
                self.paused[key] = self.paused.get(key, 0.0) + d
                time.sleep(d)


def _hang_after(path: str, role: str) -> int | None:
    """Test hook ``PYBPFGEN_STRESS_HANG=<path>:<role>:<bytes>``: that end stops reading after <bytes> (a stall)."""
    spec = os.environ.get("PYBPFGEN_STRESS_HANG", "")
    bits = spec.split(":")
    if len(bits) == 3 and bits[0] == path and bits[1] == role:
        return int(bits[2])
    return None


class End:
    def __init__(self, role: str, rp: RoundParams, path: str = ""):
        self.role, self.rp = role, rp
        self.hang_after = _hang_after(path, role)
        self.conns: list[Conn] = []
        self.errors: list[dict] = []
        self.aborted = False
        self.threads: list[threading.Thread] = []
        self._wake_r, self._wake_w = os.pipe()

    def error(self, c: Conn, op: str, kind: str, detail: str = "") -> None:
        if self.aborted or len(self.errors) >= MAX_ERRORS:
            return
        self.errors.append({"conn": c.idx, "op": op, "kind": kind, "detail": detail,
                            "sent": c.sent, "received": c.chk.bytes, "t": round(time.monotonic(), 3)})

    def moved(self) -> int:
        return sum(c.sent + c.chk.bytes for c in self.conns)

    def want(self) -> bool:
        return any(not (c.tx_done and c.rx_done) for c in self.conns)

    # ---------------------------------------------------------------- blocking: a thread per direction
    def _send_blocking(self, c: Conn) -> None:
        sock = c.sock
        try:
            while c.wi < len(c.plan.writes) and not self.aborted:
                with c.cv:
                    while not c.gate_open() and not self.aborted and not c.rx_done:
                        c.cv.wait(0.5)
                if not c.gate_open():
                    self.error(c, "send", "gate", "the peer's stream ended before its turn was complete")
                    return
                data = c.src.take(c.plan.writes[c.wi])
                c.wi += 1
                view = memoryview(data)
                while view and not self.aborted:
                    c.pause(c.rng_tx)
                    try:
                        n = sock.send(view)
                    except BlockingIOError as e:      # never on a blocking socket
                        self.error(c, "send", errname(e), blocking_state(sock))
                        time.sleep(0.01)
                        continue
                    if n < len(view):
                        self.error(c, "send", "short_write", f"blocking send() returned {n} of {len(view)} B")
                    c.sent += n
                    view = view[n:]
            c.pause(c.rng_tx)
            sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            self.error(c, "send", errname(e))
        finally:
            c.tx_done = True

    def _recv_blocking(self, c: Conn) -> None:
        buf = bytearray(self.rp.recv_size)
        try:
            while not self.aborted:
                c.pause(c.rng_rx)
                try:
                    k = c.sock.recv_into(buf, len(buf))
                except BlockingIOError as e:          # the bug class this mode is for
                    self.error(c, "recv", errname(e), blocking_state(c.sock))
                    time.sleep(0.01)
                    continue
                if k == 0:
                    c.chk.eof = True
                    if c.chk.bytes < c.chk.total:
                        self.error(c, "recv", "early_eof", f"EOF after {c.chk.bytes} of {c.chk.total} B")
                    break
                c.chk.feed(memoryview(buf)[:k])
                self._maybe_hang(c)
                if c.gates is not None:
                    with c.cv:
                        c.cv.notify_all()
        except OSError as e:
            self.error(c, "recv", errname(e))
        finally:
            c.rx_done = True
            with c.cv:
                c.cv.notify_all()

    def _run_conn_blocking(self, c: Conn) -> None:
        t = threading.Thread(target=self._send_blocking, args=(c,), daemon=True)
        t.start()
        self._recv_blocking(c)
        t.join()
        c.sock.close()

    # ---------------------------------------------------------------- epoll: non-blocking, one loop
    def _run_epoll(self) -> None:
        ep = select.epoll()
        by_fd = {}
        masks: dict[int, int] = {}
        buf = bytearray(self.rp.recv_size)
        ep.register(self._wake_r, select.EPOLLIN)

        def want_mask(c: Conn) -> int:
            m = 0 if c.rx_done else select.EPOLLIN
            if not c.tx_done and (c.pending or c.gate_open()):
                m |= select.EPOLLOUT
            return m

        def update(c: Conn) -> None:
            fd = c.sock.fileno()
            if c.tx_done and c.rx_done:
                if fd in masks:
                    ep.unregister(fd)
                    del masks[fd]
                    c.sock.close()
                return
            m = want_mask(c)
            if masks.get(fd) != m:
                ep.modify(fd, m)
                masks[fd] = m

        for c in self.conns:
            c.sock.setblocking(False)
            fd = c.sock.fileno()
            by_fd[fd] = c
            masks[fd] = want_mask(c)
            ep.register(fd, masks[fd])
        try:
            while masks and not self.aborted:
                for fd, ev in ep.poll(-1):
                    if fd == self._wake_r or self.aborted:
                        break
                    c = by_fd[fd]
                    if ev & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR) and not c.rx_done:
                        self._epoll_read(c, buf)
                    if ev & (select.EPOLLOUT | select.EPOLLERR) and not c.tx_done:
                        self._epoll_write(c)
                    update(c)
        finally:
            ep.close()
            for c in self.conns:
                c.tx_done = c.rx_done = True
                c.sock.close()

    def _epoll_read(self, c: Conn, buf: bytearray) -> None:
        for _ in range(16):
            c.pause(c.rng_rx)
            try:
                k = c.sock.recv_into(buf, len(buf))
            except BlockingIOError:
                return
            except OSError as e:
                self.error(c, "recv", errname(e))
                c.rx_done = True
                return
            if k == 0:
                c.chk.eof = True
                c.rx_done = True
                if c.chk.bytes < c.chk.total:
                    self.error(c, "recv", "early_eof", f"EOF after {c.chk.bytes} of {c.chk.total} B")
                return
            c.chk.feed(memoryview(buf)[:k])
            self._maybe_hang(c)

    def _maybe_hang(self, c: Conn) -> None:
        if self.hang_after is not None and c.chk.bytes >= self.hang_after:
            while not self.aborted:
                time.sleep(0.05)

    def _epoll_write(self, c: Conn) -> None:
        for _ in range(16):
            if not c.pending:
                if c.wi >= len(c.plan.writes):
                    try:
                        c.sock.shutdown(socket.SHUT_WR)
                    except OSError as e:
                        self.error(c, "shutdown", errname(e))
                    c.tx_done = True
                    return
                if not c.gate_open():
                    return
                c.pending = memoryview(c.src.take(c.plan.writes[c.wi]))
                c.wi += 1
            c.pause(c.rng_tx)
            try:
                n = c.sock.send(c.pending)
            except BlockingIOError:
                return
            except OSError as e:
                self.error(c, "send", errname(e))
                c.tx_done = True
                return
            c.sent += n
            c.pending = c.pending[n:]

    # ---------------------------------------------------------------- orchestration
    def start(self) -> None:
        if self.rp.io == "epoll":
            t = threading.Thread(target=self._run_epoll, daemon=True)
            t.start()
            self.threads.append(t)
            return
        for c in self.conns:
            t = threading.Thread(target=self._run_conn_blocking, args=(c,), daemon=True)
            t.start()
            self.threads.append(t)

    def abort(self) -> None:
        self.aborted = True
        os.write(self._wake_w, b"x")
        for c in self.conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            with c.cv:
                c.cv.notify_all()

    def result(self) -> dict:
        conns = []
        for c in self.conns:
            rx = c.chk.counts(complete=not self.aborted)
            rx["eof"] = c.chk.eof
            rx["want"] = c.chk.total
            conns.append({"conn": c.idx, "tx": {"bytes": c.sent, "sha": c.src.sha.hexdigest(),
                                                "planned": c.plan.total, "writes": c.wi,
                                                "complete": c.sent == c.plan.total}, "rx": rx})
        return {"role": self.role, "aborted": self.aborted, "conns": conns, "errors": self.errors}


def _stdin_lines(timeout: float):
    r, _, _ = select.select([sys.stdin], [], [], timeout)
    if not r:
        return []
    line = sys.stdin.readline()
    return ["eof"] if not line else [line.strip()]


def run(spec: dict) -> dict:
    rp = RoundParams(**spec["round"])
    role, port = spec["role"], int(spec["port"])
    end = End(role, rp, spec.get("path", ""))
    if role == "server":
        ls = socket.socket()
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind((HOST, port))
        ls.listen(64)
        emit("listening")
        ls.settimeout(30)
        for i in range(rp.conns):
            s, _ = ls.accept()
            s.settimeout(None)
            end.conns.append(Conn(end, i, s))
        ls.close()
    else:
        for i in range(rp.conns):
            s = socket.create_connection((HOST, port), timeout=30)
            s.settimeout(None)
            end.conns.append(Conn(end, i, s))
        time.sleep(rp.connect_delay_s)
    emit("started", conns=len(end.conns))
    end.start()
    while any(t.is_alive() for t in end.threads):
        for cmd in _stdin_lines(0.25):
            if cmd in ("abort", "eof"):
                end.abort()
        emit("progress", moved=end.moved(), want=end.want())
        if end.aborted:
            for t in end.threads:
                t.join(2.0)
            break
    return end.result()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    spec = json.loads(argv[0])
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG: die with the orchestrator
    except Exception:  # noqa: BLE001
        pass
    timeout = float(spec.get("timeout", 600))

    def watchdog():
        time.sleep(timeout)
        emit("error", error=f"watchdog: stress worker still running after {timeout:.0f}s")
        os._exit(3)
    threading.Thread(target=watchdog, daemon=True).start()
    rc = 0
    try:
        emit("result", **run(spec))
    except BaseException as e:  # noqa: BLE001
        emit("error", error=f"{type(e).__name__}: {e}")
        rc = 2
    sys.stdout.flush()
    os._exit(rc)        # threads still blocked in a system call (after an abort) must not keep the process


if __name__ == "__main__":
    sys.exit(main())
