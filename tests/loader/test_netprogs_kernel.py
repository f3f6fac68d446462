"""xdp, tc (tcx) and sk_skb programs on the real kernel: the loader attaches xdp and tcx links to the interface of
--ifname (a veth in network namespaces these tests create, 198.18.41.0/24), sk_skb programs to their sock map
with sockmap links, pins the links so that status/unload work, upgrades them in place; tcx programs drop and count
real packets. Errors about interfaces are one clear line. (The gallery's tests exercise XDP and sk_skb further:
tests/examples/test_xdp_drop_counter.py, tests/examples/test_sk_skb_verdict.py.)"""
import os
import socket
import subprocess
import sys
import textwrap
import time

import pytest

import kernel_loader as kl
from kernel_loader import mapapi
from kernel_loader.errors import LoaderError
from pybpfgen.driver import compile_file

pytestmark = pytest.mark.kernel
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
IP_A, IP_B = "198.18.41.1", "198.18.41.2"

TC = """
from pybpfgen.lang import *

ETH_P_IP = 0x0008  # htons(ETH_P_IP): skb->protocol is in network byte order


class Counts(Struct):
    packets: u64
    bytes: u64


ingress = Array(value=Counts, max_entries=2)  # 0: let through, 1: dropped
egress = Array(value=Counts, max_entries=1)


@tc_ingress
def drop_big(skb: SkBuff) -> int:
    if skb.protocol != ETH_P_IP:
        return TC_ACT_OK
    if skb.len >= 1000:
        c = ingress.lookup(1)
        if c is not None:
            atomic_add(c.value.packets, 1)
            atomic_add(c.value.bytes, skb.len)
        return TC_ACT_SHOT
    c = ingress.lookup(0)
    if c is not None:
        atomic_add(c.value.packets, 1)
        atomic_add(c.value.bytes, skb.len)
    return TCX_NEXT


@tc_egress
def count_out(skb: SkBuff) -> int:
    if skb.protocol == ETH_P_IP:
        c = egress.lookup(0)
        if c is not None:
            atomic_add(c.value.packets, 1)
            atomic_add(c.value.bytes, skb.len)
    return TC_ACT_OK
"""

XDP = """
from pybpfgen.lang import *

seen = Array(value=u64, max_entries=1)


@xdp
def count_all(ctx: XdpMd) -> int:
    c = seen.lookup(0)
    if c is not None:
        atomic_add(c.value, 1)
    return XDP_PASS
"""

SK_SKB = """
from pybpfgen.lang import *

socks = SockMap(max_entries=4)


@sk_skb_stream_parser(socks)
def parser(skb: SkBuff) -> int:
    return i32(skb.len)


@sk_skb_stream_verdict(socks)
def verdict(skb: SkBuff) -> int:
    return SK_PASS
"""

FILTER = """
from pybpfgen.lang import *


@socket_filter
def keep(skb: SkBuff) -> int:
    return i32(skb.len)
"""


def _compile(tmp_path, name: str, src: str) -> str:
    path = tmp_path / f"{name}.py"
    path.write_text(textwrap.dedent(src))
    res = compile_file(str(path), str(tmp_path))
    assert res.output, [d.format() for d in res.diagnostics]
    return res.output


@pytest.fixture
def veth():
    import kharness as kh
    with kh.netns_pair("pbgnp", ip_a=IP_A, ip_b=IP_B) as pair:
        yield pair


def _udp(ns: str, bind: tuple[str, int]) -> socket.socket:
    import kharness as kh
    with kh.in_netns(ns):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(bind)
    s.settimeout(5)
    return s


def test_tcx_ingress_drops_and_counts_egress_counts_on_a_veth(tmp_path, pin_root, veth):
    import kharness as kh
    obj = _compile(tmp_path, "tcnet", TC)
    with kh.in_netns(veth.a):
        [res] = kl.load(obj, pin_root=pin_root, ifname=veth.veth_a)
    assert {p.name: (p.attach_target, p.attach_mode) for p in res.programs.values()} == {
        "drop_big": (f"dev:{veth.veth_a}", "link"), "count_out": (f"dev:{veth.veth_a}", "link")}
    rx, tx = _udp(veth.a, (IP_A, 0)), _udp(veth.b, (IP_B, 0))
    out_rx, out_tx = _udp(veth.b, (IP_B, 0)), _udp(veth.a, (IP_A, 0))
    port = rx.getsockname()[1]
    try:
        small, big = b"s" * 100, b"b" * 1200
        tx.sendto(small, (IP_A, port))         # the first one also resolves the neighbour
        assert rx.recv(4096) == small
        for _ in range(4):
            tx.sendto(small, (IP_A, port))
            tx.sendto(big, (IP_A, port))
        got = [rx.recv(4096) for _ in range(4)]
        assert got == [small] * 4
        rx.settimeout(0.5)
        with pytest.raises(socket.timeout):    # the big ones were dropped at ingress
            rx.recv(4096)
        for _ in range(3):                     # and what the namespace sends is counted at egress
            out_tx.sendto(b"e" * 50, (IP_B, out_rx.getsockname()[1]))
        assert [out_rx.recv(4096) for _ in range(3)] == [b"e" * 50] * 3
    finally:
        for s in (rx, tx, out_rx, out_tx):
            s.close()
    # tc sees the frame from its Ethernet header: 14 + 20 (IPv4) + 8 (UDP) + payload
    counts = mapapi.map_dump(res.name, "ingress", pin_root=pin_root)
    assert [e["value"] for e in counts] == [{"packets": 5, "bytes": 5 * (42 + 100)},
                                            {"packets": 4, "bytes": 4 * (42 + 1200)}]
    assert mapapi.map_get(res.name, "egress", 0, pin_root=pin_root) == {"packets": 3, "bytes": 3 * (42 + 50)}

    # status: tcx links on the interface, pinned
    st = kl.status(pin_root=pin_root, name=res.name)
    links = {ln["name"]: ln for ln in st["objects"][0]["links"]}
    assert {n: (ln["type"], ln["attach_type"], ln["attached"]) for n, ln in links.items()} == {
        "drop_big": ("tcx", "tcx_ingress", True), "count_out": ("tcx", "tcx_egress", True)}
    with kh.in_netns(veth.a):                  # the text status names the interface (in its namespace)
        text = subprocess.run([sys.executable, "-m", "pybpfgen", "status", res.name, "--pin-root", pin_root],
                              capture_output=True, text=True, cwd=REPO, timeout=120).stdout
    assert f"-> interface {veth.veth_a} (tcx_ingress)" in text and f"-> interface {veth.veth_a} (tcx_egress)" in text

    # loading again (from any namespace: the interface is remembered) replaces the programs in their links
    with kh.in_netns(veth.a):
        [again] = kl.load(obj, pin_root=pin_root)
    assert {p.attach_mode for p in again.programs.values()} == {"link-update"}
    assert {p.link_id for p in again.programs.values()} == {p.link_id for p in res.programs.values()}
    assert kl.unload(res.name, pin_root=pin_root) == [res.name]
    assert not any(kh.link_exists(p.link_id) for p in res.programs.values())
    rx, tx = _udp(veth.a, (IP_A, 0)), _udp(veth.b, (IP_B, 0))
    try:                                       # detached: big datagrams arrive again
        tx.sendto(b"b" * 1200, (IP_A, rx.getsockname()[1]))
        assert rx.recv(4096) == b"b" * 1200
    finally:
        rx.close()
        tx.close()


def test_xdp_link_on_a_veth_and_one_xdp_program_per_interface(tmp_path, pin_root, veth):
    import kharness as kh
    obj = _compile(tmp_path, "xdpcount", XDP)
    other = _compile(tmp_path, "xdpother", XDP.replace("count_all", "count_other"))
    with kh.in_netns(veth.a):
        [res] = kl.load(obj, pin_root=pin_root, ifname=veth.veth_a)
        # a second XDP program on the same interface: refused, and nothing of the second object is left
        with pytest.raises(LoaderError, match=rf"cannot attach xdp program to interface {veth.veth_a}: another "
                                              "XDP program is attached to it"):
            kl.load(other, pin_root=pin_root, ifname=veth.veth_a)
    assert not os.path.exists(os.path.join(pin_root, "xdpother"))
    [link] = kl.status(pin_root=pin_root, name=res.name)["objects"][0]["links"]
    assert (link["type"], link["attached"], link["target"]["kind"]) == ("xdp", True, "interface")
    assert "attach_type" not in link          # an xdp link's info has none (BPF_XDP is implied)
    rx, tx = _udp(veth.a, (IP_A, 0)), _udp(veth.b, (IP_B, 0))
    try:
        for i in range(3):
            tx.sendto(b"%d" % i, (IP_A, rx.getsockname()[1]))
        assert sorted(rx.recv(100) for _ in range(3)) == [b"0", b"1", b"2"]
    finally:
        rx.close()
        tx.close()
    assert mapapi.map_get(res.name, "seen", 0, pin_root=pin_root) >= 3   # + the neighbour's ARP reply
    kl.unload(res.name, pin_root=pin_root)
    assert not kh.link_exists(res.programs["count_all"].link_id)
    with kh.in_netns(veth.a):                  # the interface is free again
        [res2] = kl.load(other, pin_root=pin_root, ifname=veth.veth_a)
    assert res2.programs["count_other"].attach_mode == "link"


def test_sk_skb_parser_and_verdict_link_to_their_sock_map(tmp_path, pin_root):
    obj = _compile(tmp_path, "skskb", SK_SKB)
    [res] = kl.load(obj, pin_root=pin_root)
    assert {p.name: (p.attach_target, p.attach_mode) for p in res.programs.values()} == {
        "parser": ("map:socks", "link"), "verdict": ("map:socks", "link")}
    links = {ln["name"]: ln for ln in kl.status(pin_root=pin_root, name=res.name)["objects"][0]["links"]}
    assert {n: (ln["type"], ln["attach_type"], ln["target"]["map_name"]) for n, ln in links.items()} == {
        "parser": ("sockmap", "sk_skb_stream_parser", "socks"), "verdict": ("sockmap", "sk_skb_stream_verdict", "socks")}
    [again] = kl.load(obj, pin_root=pin_root)
    assert {p.attach_mode for p in again.programs.values()} == {"link-update"}


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pybpfgen", *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120)


def test_interface_errors_are_one_clear_line(tmp_path, pin_root):
    xdp_obj = _compile(tmp_path, "xdpcount", XDP)
    filt = _compile(tmp_path, "keep", FILTER)
    cases = [
        ((xdp_obj,), "program count_all (xdp) attaches to a network interface; name it with --ifname DEV "
                     "(`ip link` lists them)"),
        ((xdp_obj, "--ifname", "pbgnope0"), "no network interface 'pbgnope0' in this network namespace; `ip link` "
                                            "lists them (pass one with --ifname)"),
        ((filt, "--ifname", "pbgnope0"), f"--ifname pbgnope0: no program of {filt} attaches to a network interface "
                                         "(xdp, tc_ingress, tc_egress programs do); leave --ifname out"),
    ]
    for args, message in cases:
        r = _cli("load", *args, "--pin-root", pin_root)
        assert r.returncode == 1, r
        assert r.stderr.strip().splitlines() == [f"pybpfgen: error: {message}"], r.stderr
    assert not os.listdir(pin_root) if os.path.isdir(pin_root) else True


def test_status_names_the_interface_of_xdp_and_tcx_links_from_any_namespace(tmp_path, pin_root, veth,
                                                                              pybpfgen_cli):
    """The links' info gives an ifindex, which is per network namespace: status (run here, in the test's namespace,
    not the veth's) names the interface the object was loaded on, not whatever has that index here (before, the
    index was looked up where status runs: an unrelated host interface, e.g. "ifb0", or none)."""
    import kharness as kh
    xdp_obj, tc_obj = _compile(tmp_path, "xdpst", XDP), _compile(tmp_path, "tcst", TC)
    with kh.in_netns(veth.a):
        [x] = kl.load(xdp_obj, pin_root=pin_root, ifname=veth.veth_a)
        [t] = kl.load(tc_obj, pin_root=pin_root, ifname=veth.veth_a)
        ifindex = socket.if_nametoindex(veth.veth_a)
    try:
        links = {ln["name"]: ln for o in kl.status(pin_root=pin_root)["objects"] for ln in o["links"]}
        assert {n: (ln["type"], ln.get("attach_type"), ln["target"]) for n, ln in links.items()} == {
            "count_all": ("xdp", None, {"kind": "interface", "ifindex": ifindex, "ifname": veth.veth_a}),
            "drop_big": ("tcx", "tcx_ingress", {"kind": "interface", "ifindex": ifindex, "ifname": veth.veth_a}),
            "count_out": ("tcx", "tcx_egress", {"kind": "interface", "ifindex": ifindex, "ifname": veth.veth_a})}
        text = pybpfgen_cli.run("status", "--pin-root", pin_root, pin=False).stdout
        for prog, end in (("count_all", ""), ("drop_big", " (tcx_ingress)"), ("count_out", " (tcx_egress)")):
            line = next(ln for ln in text.splitlines() if ln.strip().startswith(prog + " ") and " -> " in ln)
            assert line.endswith(f"-> interface {veth.veth_a}{end}"), text
    finally:
        kl.unload(x.name, pin_root=pin_root)
        kl.unload(t.name, pin_root=pin_root)


def test_sk_skb_legacy_prog_attach_before_sockmap_links(tmp_path, pin_root, monkeypatch):
    """Kernels before 6.10 have no sockmap links: the parser and the verdict are attached with PROG_ATTACH to the
    map (each on its own attach type), shown by status as legacy, replaced by the next load and detached by unload
    (checked with PROG_QUERY on the map we hold open)."""
    from kernel_loader import features
    from kernel_loader.syscall import Syscall
    monkeypatch.setenv("PYBPFGEN_LOADER_DISABLE", "sk_msg_link")
    features.clear_cache()
    try:
        obj = _compile(tmp_path, "skskb", SK_SKB)
        [res] = kl.load(obj, pin_root=pin_root)
        assert {p.attach_mode for p in res.programs.values()} == {"legacy"}
        links = kl.status(pin_root=pin_root, name=res.name)["objects"][0]["links"]
        assert sorted((ln["type"], ln["attach_type"], ln["prog_id"]) for ln in links) == [
            ("legacy", "sk_skb_stream_parser", res.programs["parser"].id),
            ("legacy", "sk_skb_stream_verdict", res.programs["verdict"].id)]
        sc = Syscall()
        mfd = sc.obj_get(os.path.join(pin_root, "skskb", "maps", "socks"))
        try:
            [again] = kl.load(obj, pin_root=pin_root)
            assert sc.prog_query(mfd, 4)["prog_ids"] == [again.programs["parser"].id]
            assert sc.prog_query(mfd, 5)["prog_ids"] == [again.programs["verdict"].id]
            kl.unload(res.name, pin_root=pin_root)
            assert sc.prog_query(mfd, 4)["prog_ids"] == [] and sc.prog_query(mfd, 5)["prog_ids"] == []
        finally:
            sc.close(mfd)
    finally:
        features.clear_cache()


def test_interface_gone_before_unload(tmp_path, pin_root):
    """The namespace (and its veth) destroyed while the program is attached: status says the link is detached
    (ifindex 0), unload still removes everything."""
    import kharness as kh
    obj = _compile(tmp_path, "xdpgone", XDP)
    with kh.netns_pair("pbgng", ip_a="198.18.41.5", ip_b="198.18.41.6") as pair:
        with kh.in_netns(pair.a):
            [res] = kl.load(obj, pin_root=pin_root, ifname=pair.veth_a)
    deadline = time.monotonic() + 60   # the kernel dismantles a namespace asynchronously (a workqueue)
    while True:
        [link] = kl.status(pin_root=pin_root, name=res.name)["objects"][0]["links"]
        if not link["attached"] or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert (link["attached"], link["target"]) == (False, {"kind": "interface", "ifindex": 0, "ifname": None})
    assert kl.unload(res.name, pin_root=pin_root) == [res.name]
    assert not os.path.exists(os.path.join(pin_root, res.name))
    assert not kh.link_exists(res.programs["count_all"].link_id)
