"""Per-family and per-policy kernel tests of the pybpfgen-compiled accelerator (programs/accel.py).

The accelerator is compiled with the CLI, loaded into a private child cgroup with a private pin root, and
exercised with real TCP pairs (tests/kernel/peer.py, full duplex, SHA-256 of each direction) inside network
namespaces created here:

* families: IPv4 loopback, IPv6 loopback (``::1``), v4-mapped dual-stack (server on ``::`` with
  IPV6_V6ONLY=0, IPv4 client), IPv6 across a veth between two namespaces (2001:2::/48, RFC 5180);
  each: data intact, the sockhash holds exactly both ends (keyed by their socket cookies), ``paired`` +1,
  ``redirected`` > 0, ``missed`` == 0;
* the CIDR policy (only a matching CIDR is accelerated; ``--side`` respected), the tuple policy (only the
  listed connection, both ends), a client whose server is outside the cgroup (never paired, intact);
* MPTCP (IPPROTO_MPTCP) in the policy: intact and never redirected;
* the policy CLI against the real maps (key bytes read back with kharness's own bpf(2)).

Addresses: IPv4 only 127.0.0.0/8 and 198.18.0.0/15, IPv6 only ::1 and 2001:2::/48, all inside namespaces
that these tests create and delete.
"""
from __future__ import annotations

import ipaddress
import json
import os
import secrets
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import kharness as kh

pytestmark = pytest.mark.kernel

OBJECT_NAME = "accel"
TOTAL = 4 << 20
V6_A = "2001:2::1"        # RFC 5180 benchmarking range, only inside our namespaces
V6_B = "2001:2::2"
UNLIMITED = 0xFFFFFFFF
COUNTERS = kh.ACCEL_COUNTERS


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def accel_obj(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("build")
    return kh.PybpfgenCLI().compile(kh.REPO_ROOT / "programs", out)


@dataclass
class Accel:
    cli: kh.PybpfgenCLI
    cgroup: Path
    pin_root: Path
    snap: kh.AccelSnapshot

    def counters(self) -> dict:
        return kh.read_stats(self.snap.map_ids["stats"])

    def socks(self) -> list[bytes]:
        return kh.sockhash_keys(self.snap.map_ids["socks"])

    def wait_socks_empty(self, timeout: float = 5.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while (keys := self.socks()) and time.monotonic() < deadline:
            time.sleep(0.05)
        return keys

    def clear_policies(self) -> None:
        import kernel_loader as kl
        with kl.open_pinned(OBJECT_NAME, pin_root=str(self.pin_root)) as o:
            for name in ("policy_ports", "policy_cidrs", "policy_tuples"):
                m = o.map(name)
                for k in list(m.keys()):
                    m.delete(bytes(k))

    def policy(self, *args: str) -> subprocess.CompletedProcess:
        return self.cli.run("policy", *args)


@pytest.fixture(scope="module")
def accel_mod(accel_obj):
    with kh.child_cgroup("pybpfgen-test") as cg, kh.private_pin_root("pybpfgen-test") as pr:
        cli = kh.PybpfgenCLI(pin_root=pr)
        try:
            cli.load(accel_obj, cg)
            # bulk duplex transfers: lift the unanswered budget so that every message must be redirected
            cli.run("policy", "set", "--max-unanswered-msgs", str(UNLIMITED), "--max-unanswered-kib", str(UNLIMITED))
            snap = kh.snapshot_accel(cg)
            for name in ("socks", "stats", "policy_ports", "policy_cidrs", "policy_tuples", "settings"):
                assert name in snap.map_ids, f"map {name} not reachable from the attached programs: {snap.map_ids}"
            yield Accel(cli, cg, pr, snap)
        finally:
            cli.unload(OBJECT_NAME, check=False)


@pytest.fixture
def accel(accel_mod):
    accel_mod.clear_policies()
    assert accel_mod.wait_socks_empty() == [], "sockhash not empty before the test"
    yield accel_mod
    accel_mod.clear_policies()


@pytest.fixture
def ns6(netns_pair):
    """netns_pair plus IPv6 2001:2::1/64 (a) <-> 2001:2::2/64 (b) on the veth (no DAD)."""
    for ns, dev, addr in ((netns_pair.a, netns_pair.veth_a, V6_A), (netns_pair.b, netns_pair.veth_b, V6_B)):
        subprocess.run(["ip", "-n", ns, "addr", "add", f"{addr}/64", "dev", dev, "nodad"], check=True)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:   # neighbour reachable = the link is up for IPv6
        r = subprocess.run(["ip", "netns", "exec", netns_pair.b, "ping", "-6", "-c1", "-W1", V6_A],
                           capture_output=True)
        if r.returncode == 0:
            break
        time.sleep(0.1)
    return netns_pair


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------
@dataclass
class Result:
    server: dict
    client: dict
    server_est: dict
    client_est: dict
    socks_established: list
    socks_after: list


def _port() -> int:
    return 20000 + secrets.randbelow(10000)       # outside the ephemeral range; namespaces are fresh


def duplex(*, server_ns: str, client_ns: str, server_host: str, connect_host: str, port: int,
           server_cg, client_cg, server_extra=(), client_extra=(), total: int = TOTAL, inspect=None) -> Result:
    server = kh.Peer("server", server_host, port, seed=7, total=total, cgroup=server_cg, netns=server_ns,
                     timeout=60, extra=list(server_extra))
    client = None
    try:
        server.expect("listening")
        client = kh.Peer("client", connect_host, port, seed=7, total=total, cgroup=client_cg, netns=client_ns,
                         timeout=60, extra=list(client_extra))
        se = server.expect("established")
        ce = client.expect("established")
        before = inspect() if inspect else None
        server.send("go")
        client.send("go")
        rs = server.expect("done")
        rc = client.expect("done")
        after = inspect() if inspect else None
        server.send("close")
        client.send("close")
        assert server.finish() == 0, server.stderr_tail()
        assert client.finish() == 0, client.stderr_tail()
        return Result(rs, rc, se, ce, before, after)
    finally:
        server.kill()
        if client:
            client.kill()


def assert_intact(r: Result, total: int = TOTAL) -> None:
    s, c = r.server, r.client
    assert s["bytes_sent"] == c["bytes_received"] == total
    assert c["bytes_sent"] == s["bytes_received"] == total
    assert s["sha256_sent"] == c["sha256_received"], "server->client data corrupted"
    assert c["sha256_sent"] == s["sha256_received"], "client->server data corrupted"


def _ip16(text: str) -> bytes:
    ip = ipaddress.ip_address(text.strip("[]"))
    if ip.version == 4:
        return bytes(10) + b"\xff\xff" + ip.packed
    return ip.packed


def _split(hostport: str) -> tuple[str, int]:
    host, _, port = hostport.rpartition(":")
    return host, int(port)


def sock_id(est: dict) -> tuple[bytes, bytes, int, int]:
    """(local_ip16, remote_ip16, local_port, remote_port) of a peer's socket, as the program keys it."""
    lh, lp = _split(est["local"])
    rh, rp = _split(est["remote"])
    return _ip16(lh), _ip16(rh), lp, rp


def decode_sock_key(key: bytes) -> int:
    """A sockhash key: the socket's cookie (what SO_COOKIE reports to the peer process)."""
    return struct.unpack("<Q", key)[0]


def assert_both_ends_inserted(r: Result) -> None:
    for keys in (r.socks_established, r.socks_after):
        assert len(keys) == 2, f"sockhash should hold both ends, has {len(keys)}: {[k.hex() for k in keys]}"
        got = {decode_sock_key(k) for k in keys}
        assert got == {r.server_est["cookie"], r.client_est["cookie"]}, (got, r.server_est, r.client_est)


def delta(a: dict, b: dict) -> dict:
    return {k: b[k] - a[k] for k in COUNTERS}


def accelerated_pair(acc: Accel, **where) -> tuple[Result, dict]:
    c0 = acc.counters()
    r = duplex(server_cg=acc.cgroup, client_cg=acc.cgroup, inspect=acc.socks, **where)
    d = delta(c0, acc.counters())
    assert_intact(r)
    assert_both_ends_inserted(r)
    assert d["paired"] == 1, d
    assert d["redirected"] >= r.server["send_calls"] + r.client["send_calls"] > 0, d
    assert d["missed"] == 0 and d["refused"] == 0 and d["demoted"] == 0, d
    assert acc.wait_socks_empty() == [], "sockhash entries left after both sockets closed"
    return r, d


def untouched_pair(acc: Accel, **where) -> Result:
    c0 = acc.counters()
    r = duplex(server_cg=acc.cgroup, client_cg=acc.cgroup, inspect=acc.socks, **where)
    assert_intact(r)
    assert r.socks_established == [] and r.socks_after == [], [k.hex() for k in r.socks_after]
    assert acc.counters() == c0, "counters moved for a connection outside the policy"
    return r


# ---------------------------------------------------------------------------
# 1. families
# ---------------------------------------------------------------------------
def test_ipv4_loopback(accel, netns_pair):
    port = _port()
    accel.policy("add", "--port", str(port))
    accelerated_pair(accel, server_ns=netns_pair.a, client_ns=netns_pair.a, server_host="127.0.0.1",
                     connect_host="127.0.0.1", port=port)


def test_ipv6_loopback(accel, netns_pair):
    port = _port()
    accel.policy("add", "--port", str(port))
    r, _ = accelerated_pair(accel, server_ns=netns_pair.a, client_ns=netns_pair.a, server_host="::1",
                            connect_host="::1", port=port)
    assert sock_id(r.client_est)[0] == _ip16("::1")


def test_v4_mapped_dual_stack(accel, netns_pair):
    """Server on :: with IPV6_V6ONLY=0 (an AF_INET6 socket with ::ffff:127.0.0.1), IPv4 client (AF_INET)."""
    port = _port()
    accel.policy("add", "--port", str(port))
    r, _ = accelerated_pair(accel, server_ns=netns_pair.a, client_ns=netns_pair.a, server_host="::",
                            connect_host="127.0.0.1", port=port, server_extra=["--dualstack"])
    assert r.server_est["local"].startswith("::ffff:127.0.0.1"), r.server_est   # really a v4-mapped socket
    assert r.client_est["local"].startswith("127.0.0.1"), r.client_est


def test_ipv6_veth_between_namespaces(accel, ns6):
    port = _port()
    accel.policy("add", "--port", str(port))
    accelerated_pair(accel, server_ns=ns6.a, client_ns=ns6.b, server_host=V6_A, connect_host=V6_A, port=port)


def test_ipv4_veth_between_namespaces(accel, netns_pair):
    port = _port()
    accel.policy("add", "--port", str(port))
    r, _ = accelerated_pair(accel, server_ns=netns_pair.a, client_ns=netns_pair.b, server_host=netns_pair.ip_a,
                            connect_host=netns_pair.ip_a, port=port)
    # the two ends live in two namespaces: socket cookies are unique across them, so both keys are there
    assert {decode_sock_key(k) for k in r.socks_established} == {r.server_est["cookie"], r.client_est["cookie"]}


# ---------------------------------------------------------------------------
# 2. CIDR policy
# ---------------------------------------------------------------------------
def _v4_veth(ns):
    return dict(server_ns=ns.a, client_ns=ns.b, server_host=ns.ip_a, connect_host=ns.ip_a)


@pytest.mark.parametrize("cidr, side", [("198.18.0.1/32", "any"), ("198.18.0.0/24", "local"),
                                        ("198.18.0.0/24", "remote"), ("198.18.0.0/15", None)])
def test_cidr_policy_selects(accel, netns_pair, cidr, side):
    """Both sockets match: .1/32 either side (client by remote, server by local), or a /24 holding both."""
    accel.policy("add", "--cidr", cidr, *(["--side", side] if side else []))
    accelerated_pair(accel, port=_port(), **_v4_veth(netns_pair))


@pytest.mark.parametrize("cidr, side", [("198.19.0.0/16", "any"), ("2001:2::/48", "any"),
                                        ("198.18.0.1/32", "local"), ("198.18.0.2/32", "remote")])
def test_cidr_policy_leaves_others(accel, netns_pair, cidr, side):
    """Not matching at all, another family, or only the server's side matches (the client is not selected, so
    there is nobody to pair with): nothing is inserted, no counter moves."""
    accel.policy("add", "--cidr", cidr, "--side", side)
    untouched_pair(accel, port=_port(), **_v4_veth(netns_pair))


def test_cidr_policy_one_end_only(accel, netns_pair):
    """198.18.0.1/32 remote selects the client (remote .1) but not the server (remote .2): the client is
    inserted and waits, never paired; every message it sends takes the TCP path (missed), data intact."""
    accel.policy("add", "--cidr", "198.18.0.1/32", "--side", "remote")
    c0 = accel.counters()
    r = duplex(server_cg=accel.cgroup, client_cg=accel.cgroup, inspect=accel.socks, port=_port(),
               **_v4_veth(netns_pair))
    d = delta(c0, accel.counters())
    assert_intact(r)
    assert [decode_sock_key(k) for k in r.socks_established] == [r.client_est["cookie"]]
    assert d["paired"] == 0 and d["redirected"] == 0 and d["missed"] > 0, d


def test_cidr_policy_ipv6(accel, ns6):
    accel.policy("add", "--cidr", "2001:2::/48")
    port = _port()
    accelerated_pair(accel, server_ns=ns6.a, client_ns=ns6.b, server_host=V6_A, connect_host=V6_A, port=port)
    # the IPv4 addresses of the same namespaces stay on the TCP path
    untouched_pair(accel, port=_port(), **_v4_veth(ns6))


# ---------------------------------------------------------------------------
# 3. tuple policy
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("family", ["ipv4-veth", "ipv6-veth", "dual-stack"])
def test_tuple_policy_only_the_listed_connection(accel, ns6, family):
    port, listed, other = _port(), _port(), _port()
    while len({port, listed, other}) < 3:
        other = _port()
    if family == "ipv4-veth":
        where = _v4_veth(ns6)
        tup = f"{ns6.ip_b}:{listed}-{ns6.ip_a}:{port}"
        extra = ["--bind", ns6.ip_b]
    elif family == "ipv6-veth":
        where = dict(server_ns=ns6.a, client_ns=ns6.b, server_host=V6_A, connect_host=V6_A)
        tup = f"[{V6_B}]:{listed}-[{V6_A}]:{port}"
        extra = ["--bind", V6_B]
    else:   # IPv4 client, server socket v4-mapped: the tuple is written as the (IPv4) client sees it
        where = dict(server_ns=ns6.a, client_ns=ns6.a, server_host="::", connect_host="127.0.0.1")
        tup = f"127.0.0.1:{listed}-127.0.0.1:{port}"
        extra = ["--bind", "127.0.0.1"]
    dual = ["--dualstack"] if family == "dual-stack" else []
    accel.policy("add", "--tuple", tup)
    # same server, another client port: not accelerated
    untouched_pair(accel, port=port, client_extra=[*extra, "--client-port", str(other)], server_extra=dual, **where)
    # the listed connection: both ends accelerated
    accelerated_pair(accel, port=port, client_extra=[*extra, "--client-port", str(listed)], server_extra=dual,
                     **where)


# ---------------------------------------------------------------------------
# 4. server outside the cgroup
# ---------------------------------------------------------------------------
def test_server_outside_cgroup_never_paired(accel, netns_pair):
    port = _port()
    accel.policy("add", "--port", str(port))
    c0 = accel.counters()
    r = duplex(server_cg=None, client_cg=accel.cgroup, inspect=accel.socks, port=port, **_v4_veth(netns_pair))
    d = delta(c0, accel.counters())
    assert_intact(r)
    assert [decode_sock_key(k) for k in r.socks_established] == [r.client_est["cookie"]]
    assert d["paired"] == 0 and d["redirected"] == 0 and d["missed"] > 0, d
    # once its data was acknowledged, the client stopped waiting and left the sockhash (still connected)
    assert r.socks_after == [] and d["released"] == 1, (d, [k.hex() for k in r.socks_after])
    assert accel.wait_socks_empty() == []


# ---------------------------------------------------------------------------
# 5. MPTCP
# ---------------------------------------------------------------------------
def _mptcp_enabled(ns: str) -> bool:
    r = subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-n", "net.mptcp.enabled"], capture_output=True,
                       text=True)
    return r.returncode == 0 and r.stdout.strip() == "1"


def _mptcp_pair(accel, ns, where):
    if not _mptcp_enabled(ns.a):
        pytest.skip("net.mptcp.enabled is 0")
    port = _port()
    accel.policy("add", "--port", str(port))
    loc = (dict(server_ns=ns.a, client_ns=ns.a, server_host="127.0.0.1", connect_host="127.0.0.1")
           if where == "loopback" else _v4_veth(ns))
    c0 = accel.counters()
    r = duplex(server_cg=accel.cgroup, client_cg=accel.cgroup, inspect=accel.socks, port=port,
               server_extra=["--mptcp"], client_extra=["--mptcp"], **loc)
    return r, delta(c0, accel.counters())


@pytest.mark.parametrize("where", ["loopback", "veth"])
def test_mptcp_is_intact_and_never_redirected(accel, netns_pair, where):
    """Measured on Linux 6.18: sock_ops runs for MPTCP's TCP subflows (they inherit the cgroup, AF_INET,
    ESTABLISHED callbacks), but the sockhash refuses them (sk_psock_init rejects sockets with a ULP, and a
    subflow has the "mptcp" ULP): nothing is inserted, no sk_msg runs, nothing is redirected."""
    r, d = _mptcp_pair(accel, netns_pair, where)
    assert_intact(r)
    assert r.socks_established == [] and r.socks_after == [], \
        f"MPTCP subflows in the sockhash: {[k.hex() for k in r.socks_established]}"
    assert d["redirected"] == 0 and d["missed"] == 0, d


def test_mptcp_not_counted_as_paired(accel, netns_pair):
    r, d = _mptcp_pair(accel, netns_pair, "loopback")
    assert_intact(r)
    assert d["paired"] == 0, d


# ---------------------------------------------------------------------------
# 6. the policy CLI on the real maps
# ---------------------------------------------------------------------------
def test_policy_cli_real_maps(accel):
    cli = accel.cli
    cli.run("policy", "add", "--port", "6379")
    cli.run("policy", "add", "--cidr", "198.18.0.0/15", "--side", "local")
    cli.run("policy", "add", "--cidr", "198.18.0.0/15", "--side", "remote")
    cli.run("policy", "add", "--cidr", "2001:2::/48", "--side", "remote")
    cli.run("policy", "add", "--cidr", "198.18.0.0/16")
    cli.run("policy", "add", "--tuple", "198.18.0.2:40000-198.18.0.1:6379")
    cli.run("policy", "add", "--tuple", "[2001:2::2]:40000-[2001:2::1]:6379")
    mapped = bytes(10) + b"\xff\xff"
    with kh.MapHandle(accel.snap.map_ids["policy_cidrs"]) as m:
        raw = {k: m.lookup(k) for k in m.keys()}
    assert raw == {struct.pack("<I", 111) + mapped + bytes([198, 18, 0, 0]): struct.pack("<I", 3),
                   struct.pack("<I", 112) + mapped + bytes([198, 18, 0, 0]): struct.pack("<I", 3),
                   struct.pack("<I", 48) + bytes.fromhex("200100020000") + bytes(10): struct.pack("<I", 2)}
    with kh.MapHandle(accel.snap.map_ids["policy_tuples"]) as m:
        keys = set(m.keys())
    assert keys == {mapped + bytes([198, 18, 0, 2]) + mapped + bytes([198, 18, 0, 1]) + struct.pack("<II", 40000, 6379),
                    _ip16(V6_B) + _ip16(V6_A) + struct.pack("<II", 40000, 6379)}
    pol = json.loads(cli.run("policy", "list", "--json").stdout)
    assert pol["ports"] == [6379]
    assert pol["cidrs"] == [{"cidr": "198.18.0.0/15", "side": "any", "flags": 3},
                            {"cidr": "198.18.0.0/16", "side": "any", "flags": 3},
                            {"cidr": "2001:2::/48", "side": "remote", "flags": 2}]
    assert pol["tuples"] == ["198.18.0.2:40000-198.18.0.1:6379", "[2001:2::2]:40000-[2001:2::1]:6379"]
    assert pol["settings"]["max_unanswered_msgs"] == UNLIMITED
    # removing the /16 leaves the /15 (an LPM lookup would find the /15 for the /16: removal is exact)
    assert "removed" in cli.run("policy", "remove", "--cidr", "198.18.0.0/16").stdout
    assert "was not in the policy" in cli.run("policy", "remove", "--cidr", "198.18.0.0/16").stdout
    cli.run("policy", "remove", "--cidr", "198.18.0.0/15", "--side", "local")
    cli.run("policy", "remove", "--tuple", "[2001:2::2]:40000-[2001:2::1]:6379")
    pol = json.loads(cli.run("policy", "list", "--json").stdout)
    assert pol["cidrs"][0] == {"cidr": "198.18.0.0/15", "side": "remote", "flags": 2}
    assert pol["tuples"] == ["198.18.0.2:40000-198.18.0.1:6379"]
    # settings: set one, keep the other; the program reads it from the array
    cli.run("policy", "set", "--max-unanswered-msgs", "0")
    with kh.MapHandle(accel.snap.map_ids["settings"]) as m:
        assert m.lookup(struct.pack("<I", 0)) == struct.pack("<II", 0, UNLIMITED)
    cli.run("policy", "set", "--max-unanswered-msgs", str(UNLIMITED))
    # one clear error each (exit 2 from argparse, one line)
    for args, msg in ((["add", "--cidr", "198.18.0.1/15"], "host bits are set"),
                      (["add", "--tuple", "2001:2::2:1-[2001:2::1]:2"], "brackets"),
                      (["add", "--port", "70000"], "1 to 65535")):
        r = cli.run("policy", *args, check=False)
        assert r.returncode == 2 and msg in r.stderr, r.stderr


def test_policy_budget_demotes(accel, netns_pair):
    """`policy set` reaches the program: with a 1-message budget a one-way stream is demoted to the TCP path."""
    port = _port()
    accel.policy("add", "--port", str(port))
    accel.cli.run("policy", "set", "--max-unanswered-msgs", "1", "--max-unanswered-kib", "0")
    try:
        c0 = accel.counters()
        r = duplex(server_cg=accel.cgroup, client_cg=accel.cgroup, inspect=accel.socks, port=port, total=1 << 20,
                   server_ns=netns_pair.a, client_ns=netns_pair.a, server_host="127.0.0.1",
                   connect_host="127.0.0.1")
        d = delta(c0, accel.counters())
        assert_intact(r, 1 << 20)
        assert d["paired"] == 1 and d["demoted"] >= 1 and d["missed"] > 0, d
    finally:
        accel.cli.run("policy", "set", "--max-unanswered-msgs", str(UNLIMITED), "--max-unanswered-kib",
                      str(UNLIMITED))
