"""A pairing that finds no free `links` slot, on the real kernel: the connection keeps the TCP path, every byte
arrives, and both sockets leave the sockhash — the server at once, the client at its first RTT sample, because the
server marked the client's `pending` entry WITHDRAWN (nothing will be redirected into it). Before, the server
deleted the entry first and the client, unable to prove it was never paired, stayed in the sockhash sending on the
TCP path for the connection's life (docs/accel-design.md, "Pairing, claimed once").

Every slot is taken by hand (an owner word no connection has) before the connection is made, then freed."""
from __future__ import annotations

import json
import struct
import subprocess
import sys
import textwrap

import pytest

import kernel_loader as kl
import kharness as kh

pytestmark = pytest.mark.kernel

LINKS = 32768
TAKEN = struct.pack("<Q", 4 << 32 | 1)  # generation 4: even, which no client cookie gives (they are c | 1)

WORKER = textwrap.dedent(r'''
    import json, socket, sys, time
    import kernel_loader as kl

    pin_root, port = sys.argv[1], int(sys.argv[2])
    REC = 100
    obj = kl.open_pinned("accel", pin_root=pin_root)
    socks, pending = obj.map("socks"), obj.map("pending")

    def recv_exact(s, n):
        s.settimeout(10)
        buf = b""
        while len(buf) < n:
            chunk = s.recv(n - len(buf))
            if not chunk:
                break
            buf += chunk
        return buf

    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", port))
    srv.listen(8)
    c = socket.create_connection(("127.0.0.1", port))
    s, _ = srv.accept()
    time.sleep(0.2)
    out = {"socks_at_start": socks.count(), "pending_at_start": pending.count()}
    a = b"".join((b"C-%06d" % i).ljust(REC, b".") for i in range(50))
    b = b"".join((b"S-%06d" % i).ljust(REC, b".") for i in range(50))
    c.sendall(a)
    out["server_ok"] = recv_exact(s, len(a)) == a
    s.sendall(b)
    out["client_ok"] = recv_exact(c, len(b)) == b
    deadline = time.monotonic() + 10
    while (socks.count() or pending.count()) and time.monotonic() < deadline:
        c.sendall(b"x")          # TCP data, so that an ACK brings the client its RTT sample
        recv_exact(s, 1)
        time.sleep(0.05)
    out["socks_after"], out["pending_after"] = socks.count(), pending.count()
    print(json.dumps(out))
''')


def test_no_free_slot_keeps_the_tcp_path_and_both_sockets_leave(accel_obj, tmp_path):
    with kh.child_cgroup("pybpfgen-test") as cg, kh.private_pin_root("pybpfgen-test") as pr:
        cli = kh.PybpfgenCLI(pin_root=pr)
        port = kh.free_port()
        try:
            cli.load(accel_obj, cg)
            cli.policy_add(port)
            with kl.open_pinned("accel", pin_root=str(pr)) as obj:
                links = obj.map("links")
                size = links.info().value_size
                for i in range(LINKS):
                    links.update(struct.pack("<I", i), TAKEN.ljust(size, b"\0"))
            stats = kh.snapshot_accel(cg).map_ids["stats"]
            before = kh.read_stats(stats)
            worker = tmp_path / "worker.py"
            worker.write_text(WORKER)
            p = kh.run_python([str(worker), str(pr), str(port)], cgroup=cg, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
            try:
                out, err = p.communicate(timeout=120)
            finally:
                kh.kill_proc(p)
            assert p.returncode == 0, err
            r = json.loads(out.strip().splitlines()[-1])
            after = kh.read_stats(stats)
            r["delta"] = {k: after[k] - before[k] for k in after}
            print(json.dumps(r), file=sys.stderr)
        finally:
            cli.unload("accel", check=False)
    # the scenario: the server found no slot (refused, never paired), the client waited in `pending` and was
    # inserted; the server left the sockhash at once
    assert r["delta"]["paired"] == 0 and r["delta"]["refused"] == 1, r
    assert r["socks_at_start"] == 1 and r["pending_at_start"] == 1, r
    # every byte took the TCP path intact, both ways
    assert r["server_ok"] and r["client_ok"] and r["delta"]["redirected"] == 0, r
    # the promise: the client proved nothing was redirected into it and left; its entry went with it
    assert r["socks_after"] == 0 and r["pending_after"] == 0 and r["delta"]["released"] == 1, r
