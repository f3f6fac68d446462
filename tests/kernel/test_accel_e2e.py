"""End-to-end: pybpfgen-compiled accelerator, loaded by our loader, with real sockets.

compile (CLI) -> load into a private child cgroup with a private pin root ->
``policy add --port P`` -> full-duplex 16 MiB transfers with peer.py:
  (a) loopback pair, (b) across two netns joined by veth (198.18.0.1 <-> .2),
  (c) a port not in the policy (must not be touched),
  (d) unload leaves nothing behind;
plus a bpftool interoperability check of the produced object.

The kernel-side facts (what is attached, map contents, object ids) are read
with our own bpf(2) helpers in kharness.py, independently of kernel_loader.
"""
from __future__ import annotations

import re
import shutil
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

import kharness as kh

pytestmark = pytest.mark.kernel

TOTAL = 16 << 20
OBJECT_NAME = "accel"


# ---------------------------------------------------------------------------
# fixtures
# ---------------------------------------------------------------------------
@dataclass
class Loaded:
    cli: kh.PybpfgenCLI
    cgroup: Path
    pin_root: Path
    port: int
    snap: kh.AccelSnapshot

    @property
    def stats_id(self) -> int:
        return self.snap.map_ids["stats"]

    @property
    def socks_id(self) -> int:
        return self.snap.map_ids["socks"]

    def stats(self) -> dict:
        return kh.read_stats(self.stats_id)

    def socks(self) -> list[bytes]:
        return kh.sockhash_keys(self.socks_id)


def _load(cli: kh.PybpfgenCLI, obj: Path, cg: Path, port: int) -> kh.AccelSnapshot:
    cli.load(obj, cg)
    cli.policy_add(port)
    # These transfers are bulk streams: lift the unanswered-message budget (which would move a stream that
    # runs far ahead of its peer to the TCP path) so that every message must be redirected. The budget
    # itself is proven by the conformance suite (backpressure, duplex_memory).
    import kernel_loader as kl
    with kl.open_pinned(OBJECT_NAME, pin_root=str(cli.pin_root)) as o:
        o.map("settings").set(0, {"max_unanswered_msgs": 0xFFFFFFFF, "max_unanswered_kib": 0xFFFFFFFF})
    snap = kh.snapshot_accel(cg)
    assert len(snap.sockops_prog_ids) == 1, f"expected one sock_ops program on {cg}: {snap}"
    assert len(snap.skmsg_prog_ids) == 1, f"expected one sk_msg program on the sockhash: {snap}"
    for name in ("socks", "policy_ports", "stats"):
        assert name in snap.map_ids, f"map {name!r} not reachable from the attached programs: {snap.map_ids}"
    return snap


@pytest.fixture(scope="module")
def accel(accel_obj):
    with kh.child_cgroup("pybpfgen-test") as cg, kh.private_pin_root("pybpfgen-test") as pr:
        cli = kh.PybpfgenCLI(pin_root=pr)
        port = kh.free_port()
        try:
            snap = _load(cli, accel_obj, cg, port)
            yield Loaded(cli, cg, pr, port, snap)
        finally:
            cli.unload(OBJECT_NAME, check=False)


def _assert_intact(r: kh.TransferResult):
    s, c = r.server, r.client
    assert s["bytes_sent"] == c["bytes_received"] == TOTAL
    assert c["bytes_sent"] == s["bytes_received"] == TOTAL
    assert s["sha256_sent"] == c["sha256_received"], "server->client data corrupted"
    assert c["sha256_sent"] == s["sha256_received"], "client->server data corrupted"


def _wait_socks_empty(acc: Loaded, timeout=5.0) -> list[bytes]:
    deadline = time.monotonic() + timeout
    while (keys := acc.socks()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return keys


# ---------------------------------------------------------------------------
# (a) loopback, (b) veth across namespaces
# ---------------------------------------------------------------------------
def _accelerated_transfer(acc: Loaded, **where) -> kh.TransferResult:
    assert _wait_socks_empty(acc) == [], "sockhash not empty before the transfer"
    before = acc.stats()
    r = kh.transfer(port=acc.port, total=TOTAL, cgroup=acc.cgroup, inspect=acc.socks, **where)
    after = acc.stats()
    _assert_intact(r)
    # the sockhash held exactly the two sockets of this connection while it was up
    for keys in (r.sockhash_established, r.sockhash_after):
        assert len(keys) == 2, f"sockhash should hold 2 entries while connected, has {len(keys)}"
        for k in keys:
            if kh.decode_key_ports(k):
                assert acc.port in kh.decode_key_ports(k), k.hex()
    redirected = after["redirected"] - before["redirected"]
    assert redirected >= r.send_calls, (
        f"redirected {redirected} < send calls {r.send_calls} (server {r.server['send_calls']}, "
        f"client {r.client['send_calls']})")
    assert after["missed"] == 0, f"missed = {after['missed']}"
    assert _wait_socks_empty(acc) == [], "sockhash entries left after both sockets closed"
    return r


def test_loopback_pair_is_redirected_and_intact(accel):
    _accelerated_transfer(accel, server_host="127.0.0.1", connect_host="127.0.0.1")


def test_veth_netns_pair_is_redirected_and_intact(accel, netns_pair):
    ns = netns_pair
    _accelerated_transfer(accel, server_host=ns.ip_a, connect_host=ns.ip_a, server_netns=ns.a, client_netns=ns.b)


def _set_budget(acc: Loaded, msgs: int, kib: int) -> None:
    import kernel_loader as kl
    with kl.open_pinned(OBJECT_NAME, pin_root=str(acc.pin_root)) as o:
        o.map("settings").set(0, {"max_unanswered_msgs": msgs, "max_unanswered_kib": kib})


@pytest.mark.parametrize("where", ["loopback", "veth"])
def test_one_way_stream_is_demoted_then_leaves_the_sockhash_intact(accel, netns_pair, where):
    """A one-way stream outruns the unanswered budget: it moves to the TCP path and, as its peer never
    redirected, the sender leaves the sockhash at its next RTT sample (so it stops paying tcp_bpf's send
    path) while the receiver first drains the redirected bytes. Every byte arrives, in order."""
    total = 64 << 20
    hosts = (dict(host="127.0.0.1") if where == "loopback" else
             dict(host=netns_pair.ip_a, server_netns=netns_pair.a, client_netns=netns_pair.b))
    assert _wait_socks_empty(accel) == []
    _set_budget(accel, 0, 0)  # the defaults: 256 messages / 4 MiB unanswered
    before = accel.stats()
    server = client = None
    try:
        server = kh.Peer("server", hosts["host"], accel.port, seed=7, total=0, cgroup=accel.cgroup,
                         netns=hosts.get("server_netns"), extra=["--recv-bytes", str(total)])
        server.expect("listening")
        client = kh.Peer("client", hosts["host"], accel.port, seed=7, total=total, cgroup=accel.cgroup,
                         netns=hosts.get("client_netns"), extra=["--recv-bytes", "0"])
        server.expect("established")
        client.expect("established")
        assert len(accel.socks()) == 2
        server.send("go")
        client.send("go")
        rs, rc = server.expect("done"), client.expect("done")
        left = accel.socks()  # still connected: only the receiver remains
        server.send("close")
        client.send("close")
        assert server.finish() == 0 and client.finish() == 0
    finally:
        for p in (server, client):
            if p:
                p.kill()
        _set_budget(accel, 0xFFFFFFFF, 0xFFFFFFFF)
    after = accel.stats()
    assert rc["bytes_sent"] == rs["bytes_received"] == total
    assert rc["sha256_sent"] == rs["sha256_received"], "client->server data corrupted"
    delta = {k: after[k] - before[k] for k in after}
    assert delta["paired"] == 1 and delta["demoted"] == 1, delta
    assert delta["released"] == 1, f"the demoted sender did not leave the sockhash: {delta}"
    assert 0 < delta["redirected"] < rc["send_calls"], delta  # redirected first, then the TCP path
    assert len(left) == 1, f"expected only the receiver in the sockhash, found {len(left)}"


# ---------------------------------------------------------------------------
# (c) a port outside the policy is left alone
# ---------------------------------------------------------------------------
def test_port_not_in_policy_is_untouched(accel):
    other = kh.free_port()
    while other == accel.port:
        other = kh.free_port()
    assert _wait_socks_empty(accel) == []
    before = accel.stats()
    r = kh.transfer(server_host="127.0.0.1", connect_host="127.0.0.1", port=other, total=TOTAL,
                    cgroup=accel.cgroup, inspect=accel.socks)
    _assert_intact(r)
    assert r.sockhash_established == [] and r.sockhash_after == [], \
        f"sockhash has entries for an un-policied port: {[k.hex() for k in r.sockhash_after]}"
    assert accel.stats() == before, "counters changed for traffic outside the policy"


# ---------------------------------------------------------------------------
# loader API and CLI agree with the kernel
# ---------------------------------------------------------------------------
def test_loader_api_reads_same_stats(accel):
    from kernel_loader import manager

    obj = manager.open_pinned(OBJECT_NAME, pin_root=str(accel.pin_root))
    vals = obj.map("stats").lookup_percpu(struct.pack("I", 0))
    if isinstance(vals, (bytes, bytearray)):
        vals = [bytes(vals[i:i + 16]) for i in range(0, len(vals), 16)]
    red = mis = 0
    for v in vals:
        if isinstance(v, (bytes, bytearray)):
            r_, m_ = struct.unpack_from("QQ", v, 0)
        elif isinstance(v, dict):
            r_, m_ = v["redirected"], v["missed"]
        else:
            r_, m_ = v
        red += r_
        mis += m_
    st = accel.stats()
    assert {"redirected": red, "missed": mis} == {"redirected": st["redirected"], "missed": st["missed"]}


def test_status_json_lists_the_object(accel):
    st = accel.cli.status_json()
    assert OBJECT_NAME in repr(st), st


# ---------------------------------------------------------------------------
# (d) unload leaves nothing behind
# ---------------------------------------------------------------------------
def test_unload_detaches_and_frees_everything(accel_obj, child_cgroup, pin_root, pybpfgen_cli):
    port = kh.free_port()
    snap = _load(pybpfgen_cli, accel_obj, child_cgroup, port)
    pins_before = sorted(str(p.relative_to(pin_root)) for p in pin_root.rglob("*"))
    assert pins_before, "the loader pinned nothing under the private pin root"
    # prove it is live first (small transfer, redirected)
    r = kh.transfer(server_host="127.0.0.1", connect_host="127.0.0.1", port=port, total=1 << 20,
                    cgroup=child_cgroup, inspect=lambda: kh.sockhash_keys(snap.map_ids["socks"]))
    assert len(r.sockhash_established) == 2
    assert kh.read_stats(snap.map_ids["stats"])["redirected"] >= r.send_calls

    ids = ([("prog", i) for i in snap.prog_ids] + [("link", i) for i in snap.link_ids]
           + [("map", i) for i in snap.map_ids.values()])
    pybpfgen_cli.unload(OBJECT_NAME)

    assert kh.cgroup_prog_ids(child_cgroup, kh.BPF_CGROUP_SOCK_OPS) == [], "sock_ops still attached"
    assert kh.cgroup_all_attached(child_cgroup) == {}, "programs still attached to the cgroup"
    assert not (pin_root / OBJECT_NAME).exists(), "pin dir still exists after unload"
    assert list(pin_root.rglob("*")) == [], f"pins left: {list(pin_root.rglob('*'))}"
    assert kh.wait_gone(ids) == [], "objects still alive after unload"
    # traffic on the port still works on the plain kernel path
    r = kh.transfer(server_host="127.0.0.1", connect_host="127.0.0.1", port=port, total=1 << 20,
                    cgroup=child_cgroup)
    assert r.server["sha256_sent"] == r.client["sha256_received"]
    assert r.client["sha256_sent"] == r.server["sha256_received"]


# ---------------------------------------------------------------------------
# interoperability: Debian bpftool accepts our object
# ---------------------------------------------------------------------------
def test_bpftool_loadall_accepts_object_with_line_info(accel_obj, pin_root):
    bpftool = shutil.which("bpftool")
    if not bpftool:
        pytest.skip("bpftool not installed (scripts/setup.sh installs it)")
    pins = pin_root / "bpftool"
    try:
        r = subprocess.run([bpftool, "prog", "loadall", str(accel_obj), str(pins)], capture_output=True, text=True)
        assert r.returncode == 0, f"bpftool prog loadall rejected our object:\n{r.stderr}"
        assert {"accel_sockops", "accel_redirect"} <= {p.name for p in pins.iterdir()}
        r = subprocess.run([bpftool, "prog", "dump", "xlated", "pinned", str(pins / "accel_sockops"), "linum"],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        lines = [int(n) for n in re.findall(r"\[file:[^\]]*accel\.py line_num:(\d+)", r.stdout)]
        assert lines, f"no accel.py line info in xlated dump:\n{r.stdout[:2000]}"
        assert all(n > 0 for n in lines) and len(set(lines)) > 1, lines
    finally:
        kh.rm_pins(pins)
