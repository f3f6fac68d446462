"""examples/gallery/xdp_drop_counter.py on the kernel: attached with an XDP link to a veth in network namespaces
this test creates (198.18.42.0/24), it drops the UDP datagrams and TCP SYNs sent to blocked ports before the
stack sees them and counts them per port; other traffic passes; unblocking a port (deleting it from the map) lets
its packets through again, and unloading detaches the program."""
import os
import socket

import pytest

import kernel_loader as kl
from kernel_loader import mapapi
from kernel_loader.elf import parse_object
from pybpfgen.driver import compile_file

pytestmark = pytest.mark.kernel
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(REPO, "examples", "gallery", "xdp_drop_counter.py")
IP_A, IP_B = "198.18.42.1", "198.18.42.2"
UDP_OPEN, UDP_BLOCKED, TCP_OPEN, TCP_BLOCKED = 40001, 40002, 40003, 40004
ETH_IP_UDP = 14 + 20 + 8


def _compile(tmp_path) -> str:
    res = compile_file(EXAMPLE, str(tmp_path))
    assert res.output, [d.format() for d in res.diagnostics]
    return res.output


def test_one_xdp_program(tmp_path):
    obj = parse_object(_compile(tmp_path))
    assert [(p.name, p.section, p.kind) for p in obj.programs] == [("drop_blocked_ports", "xdp", "xdp")]


def _socket(ns: str, kind: int, port: int) -> socket.socket:
    import kharness as kh
    with kh.in_netns(ns):
        s = socket.socket(socket.AF_INET, kind)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((IP_A if port else IP_B, port))
    s.settimeout(5)
    if kind == socket.SOCK_STREAM and port:
        s.listen(8)
    return s


def test_drops_and_counts_packets_to_blocked_ports(tmp_path, pin_root):
    import kharness as kh
    obj = _compile(tmp_path)
    with kh.netns_pair("pbgxd", ip_a=IP_A, ip_b=IP_B) as pair:
        with kh.in_netns(pair.a):
            [res] = kl.load(obj, pin_root=pin_root, ifname=pair.veth_a)
        assert res.programs["drop_blocked_ports"].attach_target == f"dev:{pair.veth_a}"
        for port in (UDP_BLOCKED, TCP_BLOCKED):
            mapapi.map_set(res.name, "blocked", port, {"packets": 0, "bytes": 0}, pin_root=pin_root)
        socks = [_socket(pair.a, socket.SOCK_DGRAM, UDP_OPEN), _socket(pair.a, socket.SOCK_DGRAM, UDP_BLOCKED),
                 _socket(pair.a, socket.SOCK_STREAM, TCP_OPEN), _socket(pair.a, socket.SOCK_STREAM, TCP_BLOCKED),
                 _socket(pair.b, socket.SOCK_DGRAM, 0)]
        rx_open, rx_blocked, tcp_open, tcp_blocked, tx = socks
        try:
            for i in range(5):
                tx.sendto(b"o%d" % i, (IP_A, UDP_OPEN))
                tx.sendto(b"b%d" % i + b"." * 62, (IP_A, UDP_BLOCKED))
            assert [rx_open.recv(100) for _ in range(5)] == [b"o%d" % i for i in range(5)]
            rx_blocked.settimeout(0.5)
            with pytest.raises(socket.timeout):
                rx_blocked.recv(100)
            # TCP: a connection to the open port is accepted, the SYNs to the blocked one never arrive
            with kh.in_netns(pair.b):
                c_open, c_blocked = socket.socket(), socket.socket()
            c_blocked.settimeout(1.5)
            try:
                c_open.settimeout(10)
                c_open.connect((IP_A, TCP_OPEN))
                conn, _ = tcp_open.accept()
                conn.close()
                with pytest.raises((socket.timeout, TimeoutError)):
                    c_blocked.connect((IP_A, TCP_BLOCKED))
            finally:
                c_open.close()
                c_blocked.close()
            udp = mapapi.map_get(res.name, "blocked", UDP_BLOCKED, pin_root=pin_root)
            assert udp == {"packets": 5, "bytes": 5 * (ETH_IP_UDP + 64)}
            tcp = mapapi.map_get(res.name, "blocked", TCP_BLOCKED, pin_root=pin_root)
            assert tcp["packets"] >= 1 and tcp["bytes"] == tcp["packets"] * (tcp["bytes"] // tcp["packets"])
            assert tcp["bytes"] // tcp["packets"] >= 14 + 20 + 20          # a SYN: Ethernet, IPv4, TCP headers
            assert sorted(e["key"] for e in mapapi.map_dump(res.name, "blocked", pin_root=pin_root)) == \
                [UDP_BLOCKED, TCP_BLOCKED]                                 # nothing else was counted

            # unblocked: its datagrams arrive again
            mapapi.map_delete(res.name, "blocked", UDP_BLOCKED, pin_root=pin_root)
            tx.sendto(b"again", (IP_A, UDP_BLOCKED))
            rx_blocked.settimeout(5)
            assert rx_blocked.recv(100) == b"again"
            # unloaded: nothing is dropped any more
            tx.sendto(b"x", (IP_A, TCP_BLOCKED))   # (UDP to a TCP port: no receiver, nothing to check)
            assert kl.unload(res.name, pin_root=pin_root) == [res.name]
            assert not kh.link_exists(res.programs["drop_blocked_ports"].link_id)
            with kh.in_netns(pair.b):
                c = socket.socket()
            try:
                c.settimeout(10)
                c.connect((IP_A, TCP_BLOCKED))
            finally:
                c.close()
        finally:
            for s in socks:
                s.close()


def _frame(dport: int, payload: bytes = b"x" * 10, proto: int = 17, frag: int = 0, ihl: int = 5,
           ethertype: bytes = b"\x08\x00") -> bytes:
    import struct
    ip = bytes([0x40 | ihl, 0]) + struct.pack("!HHHBBH", 4 * ihl + 8 + len(payload), 1, frag, 64, proto, 0)
    ip += socket.inet_aton(IP_B) + socket.inet_aton(IP_A) + b"\x01" * (4 * ihl - 20)
    return b"\x02" * 12 + ethertype + ip + struct.pack("!HHHH", 40000, dport, 8 + len(payload), 0) + payload


def test_the_kernel_and_pybpfgen_testing_agree(tmp_path, pin_root):
    """The same frames through the loaded program (BPF_PROG_TEST_RUN) and through pybpfgen.testing: the same
    verdicts and the same counters."""
    import kharness as kh
    from kernel_loader.syscall import Syscall
    from pybpfgen import testing
    obj = _compile(tmp_path)
    frames = [_frame(UDP_BLOCKED), _frame(UDP_BLOCKED, proto=6), _frame(UDP_OPEN), _frame(UDP_BLOCKED, proto=1),
              _frame(UDP_BLOCKED, frag=8), _frame(UDP_BLOCKED, frag=0x4000), _frame(UDP_BLOCKED, ihl=7),
              _frame(UDP_BLOCKED, ethertype=b"\x86\xdd"), _frame(UDP_BLOCKED)[:36], _frame(UDP_BLOCKED)[:14],
              _frame(UDP_BLOCKED, payload=b"y" * 1000)]
    sim = testing.load(EXAMPLE)
    sim.map("blocked").update(UDP_BLOCKED, {"packets": 0, "bytes": 0})
    with kh.netns_pair("pbgxe", ip_a=IP_A, ip_b=IP_B) as pair:
        with kh.in_netns(pair.a):
            [res] = kl.load(obj, pin_root=pin_root, ifname=pair.veth_a)
        mapapi.map_set(res.name, "blocked", UDP_BLOCKED, {"packets": 0, "bytes": 0}, pin_root=pin_root)
        sc = Syscall()
        fd = sc.obj_get(res.programs["drop_blocked_ports"].pin)
        try:
            for f in frames:
                k_rv, _ = sc.prog_test_run(fd, data=f)
                assert k_rv == sim.run("drop_blocked_ports", testing.xdp(data=f)), f
        finally:
            sc.close(fd)
        got = mapapi.map_get(res.name, "blocked", UDP_BLOCKED, pin_root=pin_root)
        assert got == sim.map("blocked").lookup(UDP_BLOCKED)
        assert got["packets"] == 5                     # UDP, TCP, options, the first fragment, the big one
        kl.unload(res.name, pin_root=pin_root)
