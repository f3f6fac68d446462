"""cgroup_skb on the real kernel: examples/cgroup_traffic.py's egress programs attached (bpf_links) to a private
child cgroup count the bytes a process in it sends over loopback, per cgroup, and drop what it sends to a port."""
import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

import kernel_loader as kl
from kernel_loader import mapapi
from kernel_loader.elf import parse_object
from pybpfgen.driver import compile_file

pytestmark = pytest.mark.kernel
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(REPO, "examples", "cgroup_traffic.py")
BLOCKED_PORT = 40999  # examples/cgroup_traffic.py

# joins the cgroup, then sends COUNT datagrams of SIZE bytes to the receiver and one to the blocked port
SENDER = textwrap.dedent("""
    import errno, json, os, socket, sys
    cg, port, blocked, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
    with open(os.path.join(cg, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # created in the cgroup: its packets are the cgroup's
    for i in range(count):
        s.sendto(bytes([i]) * size, ("127.0.0.1", port))
    b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    b.connect(("127.0.0.1", blocked))    # connected: the socket has a remote port (an unconnected one has none)
    try:
        b.send(b"x" * size)
        blocked_errno = 0
    except OSError as e:
        blocked_errno = e.errno
    print(json.dumps({"blocked_errno": blocked_errno}))
""")


def test_cgroup_skb_sections_and_attach_types(tmp_path):
    obj = parse_object(compile_file(EXAMPLE, str(tmp_path)).output)
    progs = {p.name: p for p in obj.programs}
    assert {p.section for p in progs.values()} == {"cgroup_skb/egress"}
    assert all((p.kind, p.prog_type, p.expected_attach_type) == ("cgroup_skb_egress", 8, 1) for p in progs.values())


def test_cgroup_skb_egress_counts_bytes_per_cgroup_and_drops_a_port(tmp_path, pin_root, test_cgroup):
    obj = compile_file(EXAMPLE, str(tmp_path)).output
    [res] = kl.load(obj, cgroup=test_cgroup, pin_root=pin_root)
    assert {p.attach_mode for p in res.programs.values()} == {"link"}
    assert {p.attach_target for p in res.programs.values()} == {f"cgroup:{test_cgroup}"}
    cg_id = os.stat(test_cgroup).st_ino

    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)        # the receivers stay outside the cgroup
    rx.bind(("127.0.0.1", 0))
    rx.settimeout(5)
    blocked_rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    blocked_rx.bind(("127.0.0.1", BLOCKED_PORT))
    blocked_rx.settimeout(0.5)
    count, size = 10, 100
    try:
        r = subprocess.run([sys.executable, "-c", SENDER, test_cgroup, str(rx.getsockname()[1]), str(BLOCKED_PORT),
                            str(count), str(size)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stderr
        got = [rx.recv(65536) for _ in range(count)]
        assert got == [bytes([i]) * size for i in range(count)]
        # the drop: the sender's sendto failed with EPERM and nothing arrived
        assert json.loads(r.stdout)["blocked_errno"] == 1  # EPERM
        with pytest.raises(socket.timeout):
            blocked_rx.recv(65536)
    finally:
        rx.close()
        blocked_rx.close()

    # every datagram counted with its IPv4 and UDP headers (cgroup_skb sees the packet from its network header);
    # the dropped one too (both programs run on every packet)
    packets = mapapi.map_get(res.name, "egress_packets", cg_id, pin_root=pin_root)
    sent = mapapi.map_get(res.name, "egress_bytes", cg_id, pin_root=pin_root)
    assert packets == count + 1, mapapi.map_dump(res.name, "egress_packets", pin_root=pin_root)
    assert sent == (count + 1) * (20 + 8 + size)
    # only this cgroup's sockets: nothing counted under any other cgroup id
    assert [e["key"] for e in mapapi.map_dump(res.name, "egress_packets", pin_root=pin_root)] == [cg_id]

    # loading again upgrades in place: LINK_UPDATE of the same cgroup links
    [again] = kl.load(obj, cgroup=test_cgroup, pin_root=pin_root)
    assert {p.attach_mode for p in again.programs.values()} == {"link-update"}
    assert {p.link_id for p in again.programs.values()} == {p.link_id for p in res.programs.values()}
    kl.unload(res.name, pin_root=pin_root)
    # detached: the port is reachable again from the cgroup
    r = subprocess.run([sys.executable, "-c", SENDER, test_cgroup, "9", str(BLOCKED_PORT), "0", str(size)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and json.loads(r.stdout)["blocked_errno"] == 0, r.stderr
