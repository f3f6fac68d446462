"""Socket-local storage on the real kernel: an ``SkStorage`` map that a sock_ops program fills through ``ctx.sk``
(created when a connection is established) and an sk_msg program updates through ``msg.sk`` (per message), on
real loopback TCP connections opened in a private child cgroup. User space reads a socket's value by its fd
(the only key the kernel knows), so the lookups run in the process that owns the sockets."""
import json
import os
import struct
import subprocess
import sys
import textwrap
import time

import pytest

import kernel_loader as kl
from kernel_loader import manager, mapapi, pins
from kernel_loader.errors import LoaderError
from pybpfgen.driver import compile_file

pytestmark = pytest.mark.kernel
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

POLICY = textwrap.dedent("""
    from pybpfgen.lang import *

    class State(Struct):
        created: u32
        port: u32
        msgs: u64
        bytes: u64

    store = SkStorage(value=State)
    socks = SockHash(key=u32, max_entries=64)
    # 0: values created, 1: messages counted in a value, 2: messages of a socket without one,
    # 3: sockets that still had their value when they reached TCP_CLOSE
    stats = Array(value=u64, max_entries=4)


    def bump(i: u32) -> None:
        c = stats.lookup(i)
        if c is not None:
            atomic_add(c.value, 1)


    @sock_ops
    def track(ctx: SockOps) -> int:
        op = ctx.op
        if op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB or op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
            sk = ctx.sk
            if sk is None:
                return 1
            st = store.get(sk, create=True)
            if st is None:
                return 1
            st.value.created = 1
            st.value.port = ctx.local_port
            bump(0)
            socks.update(ctx, ctx.local_port, BPF_ANY)
            bpf_sock_ops_cb_flags_set(ctx, BPF_SOCK_OPS_STATE_CB_FLAG)
        elif op == BPF_SOCK_OPS_STATE_CB and ctx.args1 == BPF_TCP_CLOSE:
            sk = ctx.sk
            if sk is not None and store.get(sk) is not None:
                bump(3)
        return 1


    @sk_msg(socks)
    def count(msg: SkMsg) -> int:
        st = store.get(msg.sk)
        if st is None:
            bump(2)
            return SK_PASS
        atomic_add(st.value.msgs, 1)
        atomic_add(st.value.bytes, msg.size)
        bump(1)
        return SK_PASS
""")
STATE = struct.Struct("<IIQQ")

# joins the cgroup, opens a loopback TCP connection (both ends in the cgroup), sends 3 messages one way and 2
# back, then reads each socket's value through the pinned map by its fd
CLIENT = textwrap.dedent("""
    import json, os, socket, struct, sys
    sys.path.insert(0, sys.argv[3])
    from kernel_loader.syscall import Syscall
    cg, map_path = sys.argv[1], sys.argv[2]
    with open(os.path.join(cg, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))
    sc = Syscall()
    fd = sc.obj_get(map_path)

    def value(s):
        v = sc.map_lookup(fd, struct.pack("<i", s.fileno()), 24)
        return None if v is None else list(struct.unpack("<IIQQ", v))

    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen()
    c = socket.create_connection(ls.getsockname(), timeout=30)
    s, _ = ls.accept()
    s.settimeout(30)
    for m in (b"a" * 10, b"b" * 20, b"c" * 30):
        c.sendall(m)
    got = b""
    while len(got) < 60:
        got += s.recv(4096)
    for m in (b"x" * 7, b"y" * 8):
        s.sendall(m)
    back = b""
    while len(back) < 15:
        back += c.recv(4096)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    out = {"client": value(c), "server": value(s), "listener": value(ls), "udp": value(udp),
           "client_port": c.getsockname()[1], "server_port": s.getsockname()[1]}
    # the value belongs to the socket, not to its fd number: a new socket under the same fd has none
    cfd = c.fileno()
    c.close()
    fresh = socket.socket()
    if fresh.fileno() != cfd:
        os.dup2(fresh.fileno(), cfd)
        fresh.close()
        fresh = socket.socket(fileno=cfd)
    out["fresh_at_same_fd"] = value(fresh)
    s.close()
    print(json.dumps(out))
""")


def test_sock_ops_and_sk_msg_keep_state_in_each_socket(tmp_path, pin_root, test_cgroup):
    src = tmp_path / "skstate.py"
    src.write_text(POLICY)
    res = compile_file(str(src), str(tmp_path))
    assert res.output, [d.format() for d in res.diagnostics]
    [loaded] = kl.load(res.output, cgroup=test_cgroup, pin_root=pin_root)
    map_path = os.path.join(pins.object_dir(pin_root, loaded.name), "maps", "store")
    r = subprocess.run([sys.executable, "-c", CLIENT, test_cgroup, map_path, REPO], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    # each end has its own value: created by sock_ops, counted by sk_msg through msg.sk
    assert out["client"] == [1, out["client_port"], 3, 60]
    assert out["server"] == [1, out["server_port"], 2, 15]
    # a listener, a UDP socket and a socket that never connected have none
    assert out["listener"] is None and out["udp"] is None and out["fresh_at_same_fd"] is None

    def stat(i):
        return mapapi.map_get(loaded.name, "stats", i, pin_root=pin_root)

    assert (stat(0), stat(1), stat(2)) == (2, 5, 0)
    deadline = time.monotonic() + 60  # both ends reach TCP_CLOSE with their value still attached
    while stat(3) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert stat(3) == 2

    # user space: what a map keyed by socket fds can show from another process, and a clear refusal to list it
    [shown] = mapapi.map_show(loaded.name, "store", pin_root=pin_root)["objects"][0]["maps"]
    assert (shown["type"], shown["max_entries"], shown["entries"], shown["flags"]) == ("sk_storage", 0, None, 1)
    assert shown["value"] == '{"created": u32, "port": u32, "msgs": u64, "bytes": u64}'
    for call in (lambda: mapapi.map_dump(loaded.name, "store", pin_root=pin_root),
                 lambda: mapapi.map_get(loaded.name, "store", 3, pin_root=pin_root)):
        with pytest.raises(LoaderError, match="only by a file descriptor of that socket in the calling process"):
            call()
    [obj] = manager.status(pin_root, name=loaded.name)["objects"]
    store = next(m for m in obj["maps"] if m["name"] == "store")
    assert (store["type"], store["entries"]) == ("sk_storage", None)
    kl.unload(loaded.name, pin_root=pin_root)


FIELDS_POLICY = textwrap.dedent("""
    from pybpfgen.lang import *

    class Seen(Struct):
        family: u32
        proto: u32
        src_port: u32
        dst_port: u32
        src_ip4: u32
        dst_ip4: u32
        state: u32
        ops_dst_port: u32      # the same field read by sock_ops through its (checked) ctx.sk
        dst_ip6: u32[4]

    seen = SkStorage(value=Seen)
    socks = SockHash(key=u32, max_entries=64)


    def record(sk: Sock) -> None:
        v = seen.get(sk, create=True)
        if v is not None:
            v.value.family = sk.family
            v.value.proto = sk.protocol
            v.value.src_port = sk.src_port
            v.value.dst_port = sk.dst_port
            v.value.src_ip4 = sk.src_ip4
            v.value.dst_ip4 = sk.dst_ip4
            v.value.state = sk.state
            v.value.dst_ip6 = sk.dst_ip6


    @sock_ops
    def track(ctx: SockOps) -> int:
        if ctx.op == BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB or ctx.op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
            sk = ctx.sk
            if sk is not None:
                v = seen.get_or_create(sk, Seen(ops_dst_port=sk.dst_port))
                socks.update(ctx, ctx.local_port)
        return 1


    @sk_msg(socks)
    def fields(msg: SkMsg) -> int:
        record(msg.sk)
        return SK_PASS
""")

FIELDS_CLIENT = textwrap.dedent("""
    import json, os, socket, struct, sys
    sys.path.insert(0, sys.argv[3])
    from kernel_loader.syscall import Syscall
    cg, map_path = sys.argv[1], sys.argv[2]
    with open(os.path.join(cg, "cgroup.procs"), "w") as f:
        f.write(str(os.getpid()))
    sc = Syscall()
    fd = sc.obj_get(map_path)
    ls = socket.socket()
    ls.bind(("127.0.0.1", 0))
    ls.listen()
    c = socket.create_connection(ls.getsockname(), timeout=30)
    s, _ = ls.accept()
    c.sendall(b"hello")
    s.recv(16)
    v = sc.map_lookup(fd, struct.pack("<i", c.fileno()), 48)
    print(json.dumps({"seen": list(struct.unpack("<8I4I", v)), "local": c.getsockname(), "peer": c.getpeername()}))
    c.close(); s.close(); ls.close()
""")


def test_programs_read_the_socket_fields_through_the_pointer(tmp_path, pin_root, test_cgroup):
    """family, protocol, ports (host order), IPv4/IPv6 addresses (network order) and TCP state, read through
    msg.sk by an sk_msg program (in a DSL function taking a Sock) and through ctx.sk by sock_ops."""
    src = tmp_path / "skfields.py"
    src.write_text(FIELDS_POLICY)
    res = compile_file(str(src), str(tmp_path))
    assert res.output, [d.format() for d in res.diagnostics]
    [loaded] = kl.load(res.output, cgroup=test_cgroup, pin_root=pin_root)
    map_path = os.path.join(pins.object_dir(pin_root, loaded.name), "maps", "seen")
    r = subprocess.run([sys.executable, "-c", FIELDS_CLIENT, test_cgroup, map_path, REPO], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    family, proto, sport, dport, src4, dst4, state, ops_dport, *dst6 = out["seen"]
    lo = struct.unpack("<I", bytes([127, 0, 0, 1]))[0]  # 127.0.0.1 as the kernel's u32
    assert (family, proto, state) == (2, 6, 1)  # AF_INET, IPPROTO_TCP, BPF_TCP_ESTABLISHED
    assert (sport, dport, ops_dport) == (out["local"][1], out["peer"][1], out["peer"][1])
    assert (src4, dst4) == (lo, lo)
    assert dst6 == [0, 0, 0xFFFF0000, lo]  # the kernel shows an IPv4 peer as ::ffff:127.0.0.1
    kl.unload(loaded.name, pin_root=pin_root)
