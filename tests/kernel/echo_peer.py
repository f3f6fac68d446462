#!/usr/bin/env python3
"""A ping-pong TCP transfer that runs until told to stop (stdlib only), for tests that change something
*while* a connection is busy (tests/kernel/test_agent.py: the agent reconciles across a live transfer).

    echo_peer.py server --host 127.0.0.1 --port N      echoes every byte back until EOF
    echo_peer.py client --host 127.0.0.1 --port N [--seed S]

The client sends messages of pseudo-random sizes (1 B .. 64 KiB, pseudo-random bytes) and reads each one back
before the next (every message is answered, so the accelerator's unanswered-message budget never moves the
connection to the TCP path). Protocol (JSON lines on stdout, commands on stdin):
  server: {"event": "listening"}, {"event": "established"} (accepted), then after EOF {"event": "done", "sha256_received", "bytes_received"}
  client: {"event": "established"}; "go" starts the transfer; on "mark" -> {"event": "mark", "rounds", "bytes"}; on "stop" it finishes
          the round, shuts down its sending side, and prints {"event": "done", "sha256_sent",
          "sha256_received", "bytes_sent", "bytes_received", "rounds"}.
A watchdog ends a process that hangs (--timeout per step).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import socket
import sys
import threading
import time


def emit(event: str, **kw) -> None:
    sys.stdout.write(json.dumps({"event": event, **kw}) + "\n")
    sys.stdout.flush()


def server(a) -> int:
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((a.host, a.port))
    ls.listen(1)
    ls.settimeout(a.timeout)
    emit("listening")
    s, _ = ls.accept()
    ls.close()
    emit("established")
    s.settimeout(a.timeout)
    h, n = hashlib.sha256(), 0
    buf = bytearray(1 << 16)
    while True:
        k = s.recv_into(buf)
        if k == 0:
            break
        h.update(buf[:k])
        n += k
        s.sendall(buf[:k])
    emit("done", sha256_received=h.hexdigest(), bytes_received=n)
    s.close()
    return 0


def client(a) -> int:
    s = socket.create_connection((a.host, a.port), timeout=a.timeout)
    emit("established", local_port=s.getsockname()[1])
    rng = random.Random(a.seed)
    hs, hr = hashlib.sha256(), hashlib.sha256()
    state = {"rounds": 0, "sent": 0, "received": 0, "stop": False, "error": None}
    lock = threading.Lock()

    def pump():
        try:
            buf = bytearray(1 << 16)
            while not state["stop"]:
                n = rng.randint(1, 1 << 16)
                data = rng.randbytes(n)
                s.sendall(data)
                hs.update(data)
                got = 0
                while got < n:
                    k = s.recv_into(memoryview(buf)[: n - got])
                    if k == 0:
                        raise ConnectionError(f"EOF after {got} of {n} echoed bytes")
                    hr.update(buf[:k])
                    got += k
                with lock:
                    state["rounds"] += 1
                    state["sent"] += n
                    state["received"] += got
        except BaseException as e:  # noqa: BLE001 - reported on stdout
            state["error"] = f"{type(e).__name__}: {e}"

    t = threading.Thread(target=pump, daemon=True)
    for line in sys.stdin:       # "go" first: both ends are established (paired) before the first byte
        if line.strip() == "go":
            break
    t.start()
    for line in sys.stdin:
        cmd = line.strip()
        if state["error"]:
            emit("error", error=state["error"])
            return 2
        if cmd == "mark":
            with lock:
                emit("mark", rounds=state["rounds"], bytes=state["sent"])
        elif cmd == "stop":
            break
    state["stop"] = True
    t.join(a.timeout)
    if state["error"] or t.is_alive():
        emit("error", error=state["error"] or "the transfer did not stop")
        return 2
    s.shutdown(socket.SHUT_WR)
    s.settimeout(a.timeout)
    if s.recv(1):
        emit("error", error="unexpected data after the last echo")
        return 2
    emit("done", sha256_sent=hs.hexdigest(), sha256_received=hr.hexdigest(), bytes_sent=state["sent"],
         bytes_received=state["received"], rounds=state["rounds"])
    s.close()
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["server", "client"])
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=60.0)
    a = ap.parse_args()

    def watchdog():
        time.sleep(a.timeout * 10)
        emit("error", error="watchdog timeout")
        os._exit(3)
    threading.Thread(target=watchdog, daemon=True).start()
    try:
        return server(a) if a.mode == "server" else client(a)
    except BaseException as e:  # noqa: BLE001
        emit("error", error=f"{type(e).__name__}: {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
