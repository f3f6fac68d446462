"""cgroup_skb on the real kernel, as the loader sees it: the gallery's cgroup_skb examples (examples/gallery/
egress_firewall.py, cgroup_bytes.py) have the sections and attach types of their directions; the firewall, attached
(bpf_links) to a private child cgroup, drops what a process in it sends to a port while the rest goes through;
loading it again upgrades it in place (LINK_UPDATE); unloading detaches it. What each example counts is tested by
tests/examples/test_<name>.py."""
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
EXAMPLE = os.path.join(REPO, "examples", "gallery", "egress_firewall.py")
BYTES = os.path.join(REPO, "examples", "gallery", "cgroup_bytes.py")
BLOCKED_PORT = 40999  # added to the firewall's `blocked` map

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
    obj = parse_object(compile_file(BYTES, str(tmp_path)).output)
    progs = {p.name: (p.section, p.kind, p.prog_type, p.expected_attach_type) for p in obj.programs}
    assert progs == {"count_ingress": ("cgroup_skb/ingress", "cgroup_skb_ingress", 8, 0),
                     "count_egress": ("cgroup_skb/egress", "cgroup_skb_egress", 8, 1)}


def test_cgroup_skb_egress_drops_a_port_upgrades_and_unloads(tmp_path, pin_root, test_cgroup):
    obj = compile_file(EXAMPLE, str(tmp_path)).output
    [res] = kl.load(obj, cgroup=test_cgroup, pin_root=pin_root)
    mapapi.map_set(res.name, "blocked", BLOCKED_PORT, 0, pin_root=pin_root)
    assert {p.attach_mode for p in res.programs.values()} == {"link"}
    assert {p.attach_target for p in res.programs.values()} == {f"cgroup:{test_cgroup}"}

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

    # the drop was counted under its port, and nothing else (the unconnected sender has no remote port)
    assert mapapi.map_dump(res.name, "blocked", pin_root=pin_root) == [{"key": BLOCKED_PORT, "value": 1}]

    # loading again upgrades in place: LINK_UPDATE of the same cgroup links
    [again] = kl.load(obj, cgroup=test_cgroup, pin_root=pin_root)
    assert {p.attach_mode for p in again.programs.values()} == {"link-update"}
    assert {p.link_id for p in again.programs.values()} == {p.link_id for p in res.programs.values()}
    kl.unload(res.name, pin_root=pin_root)
    # detached: the port is reachable again from the cgroup
    r = subprocess.run([sys.executable, "-c", SENDER, test_cgroup, "9", str(BLOCKED_PORT), "0", str(size)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and json.loads(r.stdout)["blocked_errno"] == 0, r.stderr
