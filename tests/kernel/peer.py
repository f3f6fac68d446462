#!/usr/bin/env python3
"""Full-duplex TCP traffic tool for the end-to-end accelerator tests (stdlib only).

    peer.py server --host 127.0.0.1 --port 23456 [--seed 1] [--bytes 16777216]
    peer.py client --host 127.0.0.1 --port 23456 [--seed 1] [--bytes 16777216]

IPv6 hosts (``::1``, ``2001:2::1``) use AF_INET6; ``--dualstack`` makes an IPv6 server socket accept IPv4
clients too (IPV6_V6ONLY=0, v4-mapped); the client can bind ``--bind IP`` / ``--client-port N`` first;
``--mptcp`` opens IPPROTO_MPTCP sockets.

Protocol with the orchestrator (JSON lines on stdout, commands on stdin):
  server prints {"event": "listening"} once listen() succeeded;
  each side prints {"event": "established"} once its socket is connected
  (server: accept() returned; client: connect() returned), then waits for
  "go" on stdin, so the orchestrator can release data only once BOTH sides are
  established. Then both directions send ``--bytes`` bytes concurrently as
  messages whose sizes are mixed between 1 B and 256 KiB (deterministic from the
  seed; the payload is pseudo-random bytes), and the side prints
  {"event": "done", sha256_sent, sha256_received, bytes_sent, bytes_received,
  send_calls, messages, ...}. It keeps the connection open until "close" (or EOF)
  on stdin. With --no-wait the "go"/"close" steps are skipped.

Every blocking step has a timeout; a watchdog kills the process if it is exceeded.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import socket
import struct
import sys
import threading
import time

MIN_MSG = 1
MAX_MSG = 256 * 1024
ROLE_SALT = {"server": 0x5EED_0001, "client": 0x5EED_0002}


SO_COOKIE = 57  # <asm-generic/socket.h>: the socket's cookie (what bpf_get_socket_cookie returns)


def emit(event: str, **kw) -> None:
    sys.stdout.write(json.dumps({"event": event, **kw}) + "\n")
    sys.stdout.flush()


def message_sizes(seed: int, total: int) -> list[int]:
    """Deterministic mix of sizes in [1, 256 KiB] summing to ``total``."""
    rng = random.Random(seed)
    sizes: list[int] = []
    left = total
    fixed = [MIN_MSG, MAX_MSG, 2, 3, 5, 64, 4096, 4097, 65536, 65537]  # edge cases first
    while left > 0:
        if fixed:
            n = fixed.pop(0)
        else:
            r = rng.random()
            if r < 0.45:
                n = rng.randint(1, 512)            # small messages
            elif r < 0.8:
                n = rng.randint(513, 16384)        # medium
            else:
                n = rng.randint(16385, MAX_MSG)    # large
        n = min(n, left)
        sizes.append(n)
        left -= n
    return sizes


def wait_cmd(expected: str, timeout: float) -> None:
    """Wait for a command line on stdin (EOF counts as 'close')."""
    import selectors
    sel = selectors.DefaultSelector()
    sel.register(sys.stdin, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {expected!r} on stdin within {timeout}s")
            if not sel.select(left):
                continue
            line = sys.stdin.readline()
            if not line:
                if expected == "close":
                    return
                raise EOFError(f"stdin closed while waiting for {expected!r}")
            if line.strip() == expected:
                return
    finally:
        sel.close()


def duplex(sock: socket.socket, role: str, seed: int, total: int, timeout: float,
           recv_total: int | None = None) -> dict:
    sock.settimeout(timeout)
    rng_seed = seed * 1_000_003 + ROLE_SALT[role]
    sizes = message_sizes(rng_seed, total)
    payload_rng = random.Random(rng_seed ^ 0xA5A5A5A5)
    result: dict = {}
    errors: list[BaseException] = []

    def sender():
        try:
            h = hashlib.sha256()
            calls = sent = 0
            for n in sizes:
                data = payload_rng.randbytes(n)
                h.update(data)
                view = memoryview(data)
                off = 0
                while off < n:
                    k = sock.send(view[off:])
                    calls += 1
                    off += k
                sent += n
            result.update(sha256_sent=h.hexdigest(), bytes_sent=sent, send_calls=calls, messages=len(sizes))
        except BaseException as e:  # noqa: BLE001 - reported to the orchestrator
            errors.append(e)

    def receiver():
        try:
            h = hashlib.sha256()
            buf = bytearray(MAX_MSG)
            view = memoryview(buf)
            got = calls = 0
            want = total if recv_total is None else recv_total
            while got < want:
                k = sock.recv_into(view, min(len(buf), want - got))
                if k == 0:
                    raise ConnectionError(f"EOF after {got} of {want} bytes")
                h.update(view[:k])
                got += k
                calls += 1
            result.update(sha256_received=h.hexdigest(), bytes_received=got, recv_calls=calls)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)

    t0 = time.monotonic()
    threads = [threading.Thread(target=sender, daemon=True), threading.Thread(target=receiver, daemon=True)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout * 4)
        if t.is_alive():
            errors.append(TimeoutError("transfer thread did not finish"))
    if errors:
        raise errors[0]
    result["seconds"] = round(time.monotonic() - t0, 4)
    return result


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["server", "client"])
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--bytes", type=int, default=16 << 20)
    ap.add_argument("--recv-bytes", type=int, default=None,
                    help="bytes to receive (default --bytes; e.g. --bytes 0 --recv-bytes N: a one-way reader)")
    ap.add_argument("--timeout", type=float, default=60.0, help="per-step timeout, seconds")
    ap.add_argument("--no-wait", action="store_true", help="do not wait for go/close on stdin")
    ap.add_argument("--dualstack", action="store_true", help="server on an IPv6 host: IPV6_V6ONLY=0")
    ap.add_argument("--bind", default=None, metavar="IP", help="client: bind to this local address")
    ap.add_argument("--client-port", type=int, default=0, metavar="N", help="client: bind to this local port")
    ap.add_argument("--mptcp", action="store_true", help="IPPROTO_MPTCP sockets")
    a = ap.parse_args(argv)
    fam = socket.AF_INET6 if ":" in a.host else socket.AF_INET
    proto = 262 if a.mptcp else 0     # IPPROTO_MPTCP

    # watchdog: never hang, whatever happens
    def _watchdog():
        time.sleep(a.timeout * 6)
        emit("error", error="watchdog timeout")
        os._exit(3)
    threading.Thread(target=_watchdog, daemon=True).start()

    sock = None
    try:
        if a.mode == "server":
            ls = socket.socket(fam, socket.SOCK_STREAM, proto)
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if fam == socket.AF_INET6:
                ls.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0 if a.dualstack else 1)
            ls.bind((a.host, a.port))
            ls.listen(1)
            ls.settimeout(a.timeout)
            emit("listening", host=a.host, port=a.port)
            sock, _ = ls.accept()
            ls.close()
        else:
            deadline = time.monotonic() + a.timeout
            while True:
                sock = socket.socket(fam, socket.SOCK_STREAM, proto)
                sock.settimeout(a.timeout)
                if a.bind or a.client_port:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind((a.bind or ("::" if fam == socket.AF_INET6 else "0.0.0.0"), a.client_port))
                try:
                    sock.connect((a.host, a.port))
                    break
                except (ConnectionRefusedError, OSError) as e:
                    sock.close()
                    if time.monotonic() > deadline or not isinstance(e, ConnectionRefusedError):
                        raise
                    time.sleep(0.05)
        lip, lport = sock.getsockname()[:2]
        rip, rport = sock.getpeername()[:2]
        cookie = struct.unpack("Q", sock.getsockopt(socket.SOL_SOCKET, SO_COOKIE, 8))[0]  # its sockhash key
        emit("established", local=f"{lip}:{lport}", remote=f"{rip}:{rport}", local_port=lport, remote_port=rport,
             cookie=cookie)
        if not a.no_wait:
            wait_cmd("go", a.timeout)
        res = duplex(sock, a.mode, a.seed, a.bytes, a.timeout, a.recv_bytes)
        emit("done", role=a.mode, **res)
        if not a.no_wait:
            wait_cmd("close", a.timeout)
        sock.close()
        return 0
    except BaseException as e:  # noqa: BLE001
        emit("error", error=f"{type(e).__name__}: {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
