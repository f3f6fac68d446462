"""examples/gallery/egress_firewall.py: a cgroup_skb egress port firewall with a drop counter per port.

Unit-tested with pybpfgen.testing, then loaded into a private child cgroup and pin root: a process in the cgroup
sends real UDP datagrams over loopback to an allowed port and to two blocked ones; the blocked sends fail with
EPERM and nothing arrives, each blocked port's counter counts its drops, and a port blocked while the program runs
is blocked from then on."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import pytest

from pybpfgen import testing
from pybpfgen.driver import compile_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "examples", "gallery", "egress_firewall.py")

# joins the cgroup, then sends one datagram of SIZE bytes from a connected UDP socket to each port
SENDER = textwrap.dedent("""
    import json, os, socket, sys
    cg, size, ports = sys.argv[1], int(sys.argv[2]), [int(p) for p in sys.argv[3:]]
    with open(os.path.join(cg, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))
    errors = {}
    for port in ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # created in the cgroup: its packets are the cgroup's
        s.connect(("127.0.0.1", port))                        # connected: the socket has a remote port
        try:
            s.send(bytes([port & 0xFF]) * size)
            errors[port] = 0
        except OSError as e:
            errors[port] = e.errno
        s.close()
    print(json.dumps(errors))
""")


def test_firewall_logic_without_root():
    mod = testing.load(EXAMPLE)
    blocked = mod.map("blocked")
    blocked.update(6379, 0)
    assert mod.run("firewall", testing.cgroup_skb("egress", remote_port=80, len=60)) == 1
    assert mod.run("firewall", testing.cgroup_skb("egress", remote_port=6379, len=60)) == 0
    assert mod.run("firewall", testing.cgroup_skb("egress", remote_port=6379, len=60)) == 0
    assert blocked.lookup(6379) == 2 and blocked.lookup(80) is None


def _receiver() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)   # the receivers stay outside the cgroup
    s.bind(("127.0.0.1", 0))
    s.settimeout(5)
    return s


def _send(cgroup, size: int, *ports: int) -> dict[int, int]:
    r = subprocess.run([sys.executable, "-c", SENDER, str(cgroup), str(size), *map(str, ports)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return {int(k): v for k, v in json.loads(r.stdout).items()}


@pytest.mark.kernel
def test_firewall_drops_blocked_ports_and_counts_them(tmp_path, child_cgroup, pin_root):
    import kernel_loader as kl
    from kernel_loader import mapapi

    obj = compile_file(EXAMPLE, str(tmp_path)).output
    assert obj
    [res] = kl.load(obj, cgroup=str(child_cgroup), pin_root=str(pin_root))
    assert {p.attach_target for p in res.programs.values()} == {f"cgroup:{child_cgroup}"}
    allowed, blocked_a, blocked_b = _receiver(), _receiver(), _receiver()
    ports = [s.getsockname()[1] for s in (allowed, blocked_a, blocked_b)]
    try:
        mapapi.map_set(res.name, "blocked", ports[1], 0, pin_root=str(pin_root))
        size = 200
        errors = _send(child_cgroup, size, ports[0], ports[1], ports[1], ports[2])
        assert errors == {ports[0]: 0, ports[1]: 1, ports[2]: 0}  # EPERM for the blocked port
        assert allowed.recv(65536) == bytes([ports[0] & 0xFF]) * size
        assert blocked_b.recv(65536) == bytes([ports[2] & 0xFF]) * size
        blocked_a.settimeout(0.5)
        with pytest.raises(socket.timeout):
            blocked_a.recv(65536)
        assert mapapi.map_get(res.name, "blocked", ports[1], pin_root=str(pin_root)) == 2  # sent twice, dropped twice

        # block another port while the program runs
        mapapi.map_set(res.name, "blocked", ports[2], 0, pin_root=str(pin_root))
        assert _send(child_cgroup, size, ports[2], ports[0]) == {ports[2]: 1, ports[0]: 0}
        assert allowed.recv(65536) == bytes([ports[0] & 0xFF]) * size
        dump = {e["key"]: e["value"] for e in mapapi.map_dump(res.name, "blocked", pin_root=str(pin_root))}
        assert dump == {ports[1]: 2, ports[2]: 1}
    finally:
        for s in (allowed, blocked_a, blocked_b):
            s.close()
    kl.unload(res.name, pin_root=str(pin_root))
    assert _send(child_cgroup, 10, ports[1]) == {ports[1]: 0}  # detached: the port is reachable again
