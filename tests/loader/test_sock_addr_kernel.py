"""cgroup sock_addr and sockopt programs on the real kernel: all fourteen hooks of one object attached with bpf_links
to a private child cgroup; a client in the cgroup (and one outside it) in a private network namespace that has only
its loopback, against servers outside the cgroup:

- connect6 sends a connection to [2001:2::1]:80 (unroutable there) to a backend on [::1], getpeername6 shows the VIP;
- connect4 binds a connection to one server to 127.0.0.3 first (bpf_bind): the server sees that address;
- sendmsg4 sends a datagram for 198.18.201.1:53 to a local receiver, recvmsg4 shows its answer as from there;
- bind4 moves a bind() to another port and refuses one port (EPERM); getsockname4 shows 127.0.0.2 as 198.18.201.2;
- setsockopt ignores SO_RCVBUF (optlen = -1: the call succeeds, nothing changes), refuses SO_KEEPALIVE (EPERM) and
  an SO_SNDBUF above 64 KiB (reading the option's bytes, ``ctx.bytes(0, 4)``); getsockopt refuses SO_PRIORITY
  (EPERM), rewrites the bytes of SO_MARK's answer and turns the kernel's error for an unknown option into success
  (``retval = 0``, ``optlen = 4``: with ``optlen = 0`` the kernel would copy nothing back, not even the length).

The other hooks (sendmsg6, recvmsg6, getsockname6, bind6, getpeername4) are attached and let everything
through (they return 1): the client's IPv4 and IPv6 traffic crosses them.
"""
import json
import secrets
import subprocess
import sys
import textwrap

import pytest

import kernel_loader as kl
from kernel_loader import mapapi
from pybpfgen.driver import compile_file
from pybpfgen.target.progtypes import PROG_TYPES

pytestmark = pytest.mark.kernel

POLICY = """
from pybpfgen.lang import *

VIP6_0 = 0x02000120      # 2001:2::1, its first and last words as the kernel's u32 (network byte order)
VIP6_3 = 0x01000000
LOOP6_3 = 0x01000000     # ::1
UDP_VIP = 0x01C912C6     # 198.18.201.1
LOCAL = 0x0100007F       # 127.0.0.1
LOCAL2 = 0x0200007F      # 127.0.0.2
SHOWN = 0x02C912C6       # 198.18.201.2
LEVEL_SOCKET = 1         # SOL_SOCKET
OPT_RCVBUF = 8
OPT_KEEPALIVE = 9
OPT_PRIORITY = 12
OPT_UNKNOWN = 9999
BIND_FROM = 20001
BIND_TO = 20002
BIND_REFUSED = 20003
MAX_SNDBUF = 65536

LOCAL3 = 0x0300007F      # 127.0.0.3

ports = Array(value=u32, max_entries=3)  # [0]: the TCP backend on [::1], [1]: the UDP receiver on 127.0.0.1,
                                         # [2]: a TCP server on 127.0.0.1 that says who connected


class SockaddrIn(Struct):  # struct sockaddr_in: what bpf_bind takes (its size is passed for us)
    family: u16
    port: u16             # network byte order; 0: any
    addr: u32             # network byte order
    zero: u64


def port_of(i: u32) -> u32:
    p = ports.lookup(i)
    if p is None:
        return u32(0)
    return p.value


@cgroup_connect6
def connect6(ctx: SockAddr) -> int:
    if ctx.user_ip6[0] == VIP6_0 and ctx.user_ip6[3] == VIP6_3 and ctx.user_port == 80:
        loopback: u32[4] = [u32(0), u32(0), u32(0), u32(LOOP6_3)]
        ctx.user_ip6 = loopback
        ctx.user_port = port_of(0)
    return 1


@cgroup_getpeername6
def getpeername6(ctx: SockAddr) -> int:
    if ctx.user_ip6[0] == 0 and ctx.user_ip6[3] == LOOP6_3 and ctx.user_port == port_of(0):
        ctx.user_ip6[0] = VIP6_0
        ctx.user_ip6[3] = VIP6_3
        ctx.user_port = 80
    return 1


@cgroup_sendmsg4
def sendmsg4(ctx: SockAddr) -> int:
    if ctx.user_ip4 == UDP_VIP and ctx.user_port == 53:
        ctx.user_ip4 = LOCAL
        ctx.user_port = port_of(1)
    return 1


@cgroup_recvmsg4
def recvmsg4(ctx: SockAddr) -> int:
    if ctx.user_ip4 == LOCAL and ctx.user_port == port_of(1):
        ctx.user_ip4 = UDP_VIP
        ctx.user_port = 53
    return 1


@cgroup_bind4
def bind4(ctx: SockAddr) -> int:
    if ctx.user_port == BIND_REFUSED:
        return 0
    if ctx.user_port == BIND_FROM:
        ctx.user_port = BIND_TO
    return 1


@cgroup_getsockname4
def getsockname4(ctx: SockAddr) -> int:
    if ctx.user_ip4 == LOCAL2:
        ctx.user_ip4 = SHOWN
    return 1


@cgroup_setsockopt
def setsockopt(ctx: SockOpt) -> int:
    if ctx.level == LEVEL_SOCKET and ctx.optname == OPT_RCVBUF:
        ctx.optlen = -1
    if ctx.level == LEVEL_SOCKET and ctx.optname == OPT_KEEPALIVE:
        return 0
    if ctx.level == LEVEL_SOCKET and ctx.optname == SO_SNDBUF:
        size = ctx.bytes(0, 4)     # the value the application passes (an int)
        if size is not None and size.u32(0) > MAX_SNDBUF:
            return 0
    return 1


@cgroup_getsockopt
def getsockopt(ctx: SockOpt) -> int:
    if ctx.level == LEVEL_SOCKET and ctx.optname == OPT_PRIORITY:
        return 0
    if ctx.level == LEVEL_SOCKET and ctx.optname == OPT_UNKNOWN and ctx.retval < 0:
        ctx.retval = 0
        ctx.optlen = 4
    if ctx.level == LEVEL_SOCKET and ctx.optname == SO_MARK and ctx.retval == 0:
        mark = ctx.bytes(0, 4)     # what the kernel answered: rewritten to 0x00C0FFEE
        if mark is not None:
            mark[0] = 0xEE
            mark[1] = 0xFF
            mark[2] = 0xC0
            mark[3] = 0
    return 1


@cgroup_connect4
def connect4(ctx: SockAddr) -> int:
    if ctx.user_ip4 == LOCAL and ctx.user_port == port_of(2):
        bpf_bind(ctx, SockaddrIn(AF_INET, 0, LOCAL3))   # connect from 127.0.0.3
    return 1


@cgroup_getpeername4
def getpeername4(ctx: SockAddr) -> int:
    return 1


@cgroup_sendmsg6
def sendmsg6(ctx: SockAddr) -> int:
    return 1


@cgroup_recvmsg6
def recvmsg6(ctx: SockAddr) -> int:
    return 1


@cgroup_getsockname6
def getsockname6(ctx: SockAddr) -> int:
    return 1


@cgroup_bind6
def bind6(ctx: SockAddr) -> int:
    return 1
"""

# outside the cgroup: a TCP echo server on [::1] and a UDP one on 127.0.0.1 (answering in upper case)
SERVERS = textwrap.dedent("""
    import socket, threading
    tcp = socket.socket(socket.AF_INET6)
    tcp.bind(("::1", 0))
    tcp.listen(8)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    who = socket.socket()
    who.bind(("127.0.0.1", 0))
    who.listen(8)
    print(tcp.getsockname()[1], udp.getsockname()[1], who.getsockname()[1], flush=True)

    def serve_tcp():
        while True:
            c, _ = tcp.accept()
            c.sendall(c.recv(1024))
            c.close()

    def serve_who():
        while True:
            c, peer = who.accept()
            c.sendall(peer[0].encode())
            c.close()

    threading.Thread(target=serve_tcp, daemon=True).start()
    threading.Thread(target=serve_who, daemon=True).start()
    while True:
        data, peer = udp.recvfrom(1024)
        udp.sendto(data.upper(), peer)
""")

# what an application sees: one JSON line of results (errno numbers where a call failed)
CLIENT = textwrap.dedent("""
    import json, socket, sys

    def attempt(fn):
        try:
            return fn()
        except OSError as e:
            return {"errno": e.errno}

    out = {}

    def tcp6():
        s = socket.socket(socket.AF_INET6)
        s.settimeout(30)
        s.connect(("2001:2::1", 80))
        s.sendall(b"over v6")
        return {"echo": s.recv(1024).decode(), "peer": list(s.getpeername()[:2])}
    out["tcp6"] = attempt(tcp6)

    def who():
        s = socket.socket()
        s.settimeout(30)
        s.connect(("127.0.0.1", int(sys.argv[1])))
        return {"server_saw": s.recv(1024).decode(), "local": s.getsockname()[0]}
    out["who"] = attempt(who)

    def udp4():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.settimeout(30)
        s.sendto(b"query", ("198.18.201.1", 53))
        data, peer = s.recvfrom(1024)
        return {"answer": data.decode(), "from": list(peer)}
    out["udp4"] = attempt(udp4)

    def bind(port):
        s = socket.socket()
        s.bind(("127.0.0.1", port))
        return s.getsockname()[1]
    out["bind_moved"] = attempt(lambda: bind(20001))
    out["bind_refused"] = attempt(lambda: bind(20003))

    def shown():
        s = socket.socket()
        s.bind(("127.0.0.2", 0))
        return s.getsockname()[0]
    out["sockname"] = attempt(shown)

    fresh = socket.socket()
    s = socket.socket()
    out["rcvbuf_set"] = attempt(lambda: s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096))
    out["rcvbuf"] = [s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF),
                     fresh.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)]
    out["keepalive"] = attempt(lambda: s.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1))
    out["priority"] = attempt(lambda: s.getsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY))
    out["unknown"] = attempt(lambda: s.getsockopt(socket.SOL_SOCKET, 9999, 4).hex())
    out["mark"] = attempt(lambda: s.getsockopt(socket.SOL_SOCKET, socket.SO_MARK))
    out["sndbuf_big"] = attempt(lambda: s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20))
    out["sndbuf_small"] = attempt(lambda: s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16384))
    out["sndbuf"] = s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
    print(json.dumps(out))
""")

HOOKS = [name for name, pt in PROG_TYPES.items() if pt.prog_type in (18, 25)]


@pytest.fixture
def netns(kernel_env):
    import kharness
    ns = f"pbg-sa-{secrets.token_hex(3)}"
    subprocess.run(["ip", "netns", "add", ns], check=True, capture_output=True)
    try:
        subprocess.run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True, capture_output=True)
        yield ns
    finally:
        kharness.destroy_netns(ns)


def client(netns: str, who_port: int, cgroup=None) -> dict:
    import kharness
    r = subprocess.run(kharness.wrap_cmd([sys.executable, "-c", CLIENT, str(who_port)], cgroup=cgroup, netns=netns),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_every_hook_attached_to_the_cgroup_does_what_it_says(tmp_path, pin_root, child_cgroup, netns):
    import kharness
    src = tmp_path / "hooks.py"
    src.write_text(POLICY)
    result = compile_file(str(src), str(tmp_path / "out"))
    assert result.output, [d.format() for d in result.diagnostics]
    [res] = kl.load(result.output, cgroup=str(child_cgroup), pin_root=str(pin_root))
    assert set(res.programs) == {h[len("cgroup_"):] for h in HOOKS} and len(HOOKS) == 14
    assert {p.attach_mode for p in res.programs.values()} == {"link"}
    assert {p.attach_target for p in res.programs.values()} == {f"cgroup:{child_cgroup}"}
    # each program on its own attach type of the cgroup (the kernel's view, not the loader's)
    attached = kharness.cgroup_all_attached(child_cgroup)
    for hook in HOOKS:
        assert len(attached.get(PROG_TYPES[hook].attach_type, [])) == 1, (hook, attached)

    servers = kharness.spawn([sys.executable, "-c", SERVERS], netns=netns, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        tcp_port, udp_port, who_port = (int(x) for x in servers.stdout.readline().split())
        for i, port in enumerate((tcp_port, udp_port, who_port)):
            mapapi.map_set(res.name, "ports", i, port, pin_root=str(pin_root))

        inside = client(netns, who_port, cgroup=child_cgroup)
        assert inside["tcp6"] == {"echo": "over v6", "peer": ["2001:2::1", 80]}, inside
        assert inside["udp4"] == {"answer": "QUERY", "from": ["198.18.201.1", 53]}, inside
        # bpf_bind in connect4: the connection comes from 127.0.0.3, and the server sees it so
        assert inside["who"] == {"server_saw": "127.0.0.3", "local": "127.0.0.3"}, inside
        assert inside["bind_moved"] == 20002 and inside["bind_refused"] == {"errno": 1}, inside  # EPERM
        assert inside["sockname"] == "198.18.201.2", inside
        rcvbuf, default = inside["rcvbuf"]
        assert inside["rcvbuf_set"] is None and rcvbuf == default != 8192, inside  # ignored (4096 would be 8192)
        assert inside["keepalive"] == {"errno": 1} and inside["priority"] == {"errno": 1}, inside
        # ENOPROTOOPT hidden: success, with the 4 bytes the program says (what they hold is the kernel's buffer)
        assert isinstance(inside["unknown"], str) and len(inside["unknown"]) == 8, inside
        # the option's bytes: getsockopt's answer rewritten, setsockopt's value read (too big: refused)
        assert inside["mark"] == 0x00C0FFEE, inside
        assert inside["sndbuf_big"] == {"errno": 1} and inside["sndbuf_small"] is None, inside  # EPERM, then set
        assert inside["sndbuf"] == 2 * 16384, inside  # the kernel doubles what it is given

        outside = client(netns, who_port)
        assert outside["tcp6"] == {"errno": 101} and outside["udp4"] == {"errno": 101}, outside  # ENETUNREACH
        assert outside["bind_moved"] == 20001 and outside["bind_refused"] == 20003, outside
        assert outside["sockname"] == "127.0.0.2", outside
        assert outside["rcvbuf"][0] == 8192 and outside["keepalive"] is None, outside
        assert isinstance(outside["priority"], int) and outside["unknown"] == {"errno": 92}, outside  # ENOPROTOOPT
        assert outside["mark"] == 0 and outside["sndbuf_big"] is None, outside
        assert outside["who"] == {"server_saw": "127.0.0.1", "local": "127.0.0.1"}, outside
    finally:
        kharness.kill_proc(servers)
    kl.unload(res.name, pin_root=str(pin_root))
    assert kharness.cgroup_all_attached(child_cgroup) == {}
