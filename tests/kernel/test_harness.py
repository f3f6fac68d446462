"""The kernel-test harness itself: fixtures create what they promise, in the right
places, and remove it afterwards (also when the body raises)."""
from __future__ import annotations

import ipaddress
import json
import subprocess
import sys

import pytest

import kharness as kh

pytestmark = pytest.mark.kernel


def test_child_cgroup_is_a_private_child_and_is_removed():
    root = kh.cgroup2_root()
    with pytest.raises(RuntimeError):
        with kh.child_cgroup("pybpfgen-test") as cg:
            assert cg.parent == root and cg.name.startswith("pybpfgen-test-")
            p = kh.spawn(["sleep", "60"], cgroup=cg)
            for _ in range(100):
                if kh.cgroup_pids(cg):
                    break
                __import__("time").sleep(0.02)
            assert kh.cgroup_pids(cg), "process not moved into the cgroup"
            raise RuntimeError("boom")
    assert not cg.exists()
    assert p.wait(5) is not None  # killed by the cleanup


def test_pin_root_is_on_bpffs_and_removed():
    with kh.private_pin_root("pybpfgen-test") as pr:
        assert kh.is_bpffs(pr.parent) and pr.is_dir()
        (pr / "sub").mkdir()
    assert not pr.exists()


def test_netns_pair_addresses_and_cleanup():
    with kh.netns_pair("pbg") as ns:
        listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
        assert ns.a in listed and ns.b in listed
        net = ipaddress.ip_network(kh.ALLOWED_NET)
        for name, ip in ((ns.a, ns.ip_a), (ns.b, ns.ip_b)):
            assert ipaddress.ip_address(ip) in net
            addrs = json.loads(subprocess.run(["ip", "-n", name, "-j", "addr"], capture_output=True,
                                              text=True, check=True).stdout)
            v4 = {a["local"] for i in addrs for a in i.get("addr_info", []) if a.get("family") == "inet"}
            assert v4 == {"127.0.0.1", ip}, v4  # nothing else, and only 198.18.0.0/15 besides lo
            lo = [i for i in addrs if i["ifname"] == "lo"][0]
            assert "UP" in lo["flags"]
        # TCP across the veth (peer.py, 64 KiB each way, no cgroup, no BPF)
        r = kh.transfer(server_host=ns.ip_a, connect_host=ns.ip_a, port=kh.free_port(netns=ns.a), total=1 << 16,
                        server_netns=ns.a, client_netns=ns.b, timeout=20)
        assert r.server["sha256_sent"] == r.client["sha256_received"]
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert ns.a not in listed and ns.b not in listed


def test_run_python_lands_in_cgroup_and_netns(child_cgroup, netns_pair):
    code = ("import socket, json; s = socket.socket(); s.bind(('%s', 0)); "
            "print(json.dumps(open('/proc/self/cgroup').read()))") % netns_pair.ip_a
    p = kh.run_python(["-c", code], cgroup=child_cgroup, netns=netns_pair.a, stdout=subprocess.PIPE,
                      stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=30)
    assert p.returncode == 0, err  # binding 198.18.0.1 only works inside netns a
    assert f"::/{child_cgroup.name}" in json.loads(out), out
