"""examples/gallery/cgroup_bytes.py: bytes and packets per cgroup, received and sent (cgroup_skb ingress and
egress).

Unit-tested with pybpfgen.testing, then loaded into a private child cgroup and pin root: a process in the cgroup
exchanges real UDP datagrams with itself over loopback (exact counts) and sends a TCP stream to a peer outside it
(at least its payload); the counters of the cgroup's id show both, and no other cgroup is counted."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading

import pytest

from pybpfgen import testing
from pybpfgen.driver import compile_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "examples", "gallery", "cgroup_bytes.py")
IP_UDP = 20 + 8  # cgroup_skb sees each packet from its IPv4 header

# joins the cgroup; sends COUNT datagrams of SIZE bytes to itself, then TCP_BYTES to the TCP port given
CLIENT = textwrap.dedent("""
    import json, os, socket, sys
    cg, count, size, tcp_port, tcp_bytes = sys.argv[1], *map(int, sys.argv[2:6])
    with open(os.path.join(cg, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(10)
    tx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for i in range(count):
        tx.sendto(bytes([i]) * size, rx.getsockname())
    got = [rx.recv(65536) for _ in range(count)]
    ok = got == [bytes([i]) * size for i in range(count)]
    echoed = b""
    if tcp_port:
        c = socket.create_connection(("127.0.0.1", tcp_port), timeout=10)
        c.sendall(b"x" * tcp_bytes)
        c.shutdown(socket.SHUT_WR)
        echoed = c.recv(16)
        c.close()
    print(json.dumps({"udp_ok": ok, "echoed": echoed.decode()}))
""")


def test_counting_logic_without_root():
    mod = testing.load(EXAMPLE)
    for n in (100, 60):
        assert mod.run("count_ingress", testing.cgroup_skb("ingress", len=n, cgroup_id=7)) == 1
    assert mod.run("count_egress", testing.cgroup_skb("egress", len=40, cgroup_id=7)) == 1
    assert mod.run("count_egress", testing.cgroup_skb("egress", len=52, cgroup_id=9)) == 1
    t = mod.map("traffic")
    assert t.lookup(7) == {"rx_bytes": 160, "rx_packets": 2, "tx_bytes": 40, "tx_packets": 1}
    assert t.lookup(9) == {"rx_bytes": 0, "rx_packets": 0, "tx_bytes": 52, "tx_packets": 1}


def _tcp_sink(srv: socket.socket, received: list[int]) -> None:
    conn, _ = srv.accept()
    with conn:
        conn.settimeout(30)
        total = 0
        while True:
            chunk = conn.recv(65536)
            if not chunk:
                break
            total += len(chunk)
        received.append(total)
        conn.sendall(b"done")


@pytest.mark.kernel
def test_bytes_per_cgroup_in_and_out(tmp_path, child_cgroup, pin_root):
    import kernel_loader as kl
    from kernel_loader import mapapi

    obj = compile_file(EXAMPLE, str(tmp_path)).output
    assert obj
    [res] = kl.load(obj, cgroup=str(child_cgroup), pin_root=str(pin_root))
    assert {p.attach_target for p in res.programs.values()} == {f"cgroup:{child_cgroup}"}
    assert {p.name for p in res.programs.values()} == {"count_ingress", "count_egress"}
    cg_id = os.stat(child_cgroup).st_ino

    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)   # the TCP peer stays outside the cgroup
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    srv.settimeout(60)
    received: list[int] = []
    sink = threading.Thread(target=_tcp_sink, args=(srv, received), daemon=True)
    sink.start()
    count, size, tcp_bytes = 12, 300, 200_000

    def client(tcp_port: int) -> dict:
        r = subprocess.run([sys.executable, "-c", CLIENT, str(child_cgroup), str(count), str(size), str(tcp_port),
                            str(tcp_bytes)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)

    def counters() -> dict:
        dump = {e["key"]: e["value"] for e in mapapi.map_dump(res.name, "traffic", pin_root=str(pin_root))}
        assert list(dump) == [cg_id], dump  # only the cgroup's sockets are counted
        return dump[cg_id]

    # UDP, exactly: each datagram is sent once and received once, both by sockets of the cgroup
    assert client(0) == {"udp_ok": True, "echoed": ""}
    udp = count * (IP_UDP + size)
    assert counters() == {"rx_bytes": udp, "rx_packets": count, "tx_bytes": udp, "tx_packets": count}
    try:
        assert client(srv.getsockname()[1]) == {"udp_ok": True, "echoed": "done"}
        sink.join(60)
        assert received == [tcp_bytes]
    finally:
        srv.close()
    t = counters()
    # then UDP again and a TCP stream out: at least its payload out, and packets both ways (segments out; ACKs
    # and the peer's reply in)
    count *= 2
    assert t["tx_packets"] > count and t["rx_packets"] > count, t
    assert t["tx_bytes"] >= count * (IP_UDP + size) + tcp_bytes, t
    assert t["rx_bytes"] >= count * (IP_UDP + size) + len(b"done"), t
    assert t["rx_bytes"] - count * (IP_UDP + size) < tcp_bytes  # what came back over TCP is ACKs and 4 bytes, not the stream
    kl.unload(res.name, pin_root=str(pin_root))
