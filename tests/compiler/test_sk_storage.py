"""Socket-local storage and socket pointers in the language: ``SkStorage(value=T)`` (BPF_MAP_TYPE_SK_STORAGE),
``ctx.sk`` of sock_ops (may be None) and sk_msg (never None), the type rules that stand for the verifier's (a
socket must be checked for None, cannot be stored in memory, compared or computed with; a storage value must be
checked for None), what is emitted, and the simulation in pybpfgen.testing (a value per socket, freed with it).
The kernel's side: tests/loader/test_sk_storage_kernel.py."""
import pytest

from kernel_loader.elf import parse_object
from pybpfgen import testing

GOOD = """
class State(Struct):
    created: u32
    port: u32
    msgs: u64
    bytes: u64

store = SkStorage(value=State)
socks = SockHash(key=u32, max_entries=16)


@sock_ops
def track(ctx: SockOps) -> int:
    if ctx.op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB and ctx.op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB:
        return 1
    sk = ctx.sk
    if sk is None:
        return 1
    st = store.get(sk, create=True)
    if st is not None:
        st.value.created += 1
        st.value.port = ctx.local_port
        socks.update(ctx, ctx.local_port)
    return 1


@sk_msg(socks)
def count(msg: SkMsg) -> int:
    st = store.get(msg.sk)
    if st is None:
        return SK_PASS
    atomic_add(st.value.msgs, 1)
    st.value.bytes += msg.size
    if st.value.msgs >= 3:
        store.delete(msg.sk)
    return SK_PASS
"""


def test_sk_storage_compiles_to_its_map_and_helpers(compile_src, tmp_path):
    c = compile_src(GOOD)
    assert c.result.output, [d.format() for d in c.result.diagnostics]
    obj = parse_object(c.result.output)
    m = obj.maps["store"]
    # BPF_MAP_TYPE_SK_STORAGE, BTF key `int` (4 bytes: a socket fd for user space), max_entries 0,
    # BPF_F_NO_PREALLOC
    assert (m.type, m.key_size, m.value_size, m.max_entries, m.map_flags) == (24, 4, 24, 0, 1)
    assert m.key_type_id and m.value_type_id


ERRORS = [
    # the storage value must be checked for None, like a lookup
    ("""
     store = SkStorage(value=u64)
     socks = SockHash(key=u32, max_entries=4)

     @sk_msg(socks)
     def p(msg: SkMsg) -> int:
         v = store.get(msg.sk, create=True)
         v.value += 1
         return SK_PASS
     """, (9, 4), "`v` may be None here"),
    # sock_ops' ctx.sk may be None
    ("""
     store = SkStorage(value=u64)

     @sock_ops
     def p(ctx: SockOps) -> int:
         v = store.get(ctx.sk)
         return 1
     """, (7, 18), "`ctx.sk` may be None here: sock_ops' ctx.sk is None when the socket is not a full socket"),
    ("""
     store = SkStorage(value=u64)

     @sock_ops
     def p(ctx: SockOps) -> int:
         sk = ctx.sk
         store.delete(sk)
         return 1
     """, (8, 17), "`sk` may be None here"),
    # a socket cannot be stored in a map or a struct
    ("""
     seen = Hash(key=u32, value=u64, max_entries=4)
     socks = SockHash(key=u32, max_entries=4)

     @sk_msg(socks)
     def p(msg: SkMsg) -> int:
         seen.update(1, msg.sk)
         return SK_PASS
     """, (8, 19), "a socket cannot be stored as u64"),
    ("""
     class S(Struct):
         x: u64
     socks = SockHash(key=u32, max_entries=4)

     @sk_msg(socks)
     def p(msg: SkMsg) -> int:
         s = S(msg.sk)
         return SK_PASS
     """, (9, 10), "a socket cannot be stored as u64"),
    # nor compared or computed with
    ("""
     socks = SockHash(key=u32, max_entries=4)

     @sk_msg(socks)
     def p(msg: SkMsg) -> int:
         if msg.sk == msg.sk:
             return SK_DROP
         return SK_PASS
     """, (7, 7), "a socket is a pointer, not an integer"),
    ("""
     socks = SockHash(key=u32, max_entries=4)

     @sk_msg(socks)
     def p(msg: SkMsg) -> int:
         x = u64(msg.sk) + 1
         return SK_PASS
     """, (7, 12), "a socket is a pointer, not an integer"),
    # the context is not a socket
    ("""
     store = SkStorage(value=u64)
     socks = SockHash(key=u32, max_entries=4)

     @sk_msg(socks)
     def p(msg: SkMsg) -> int:
         store.delete(msg)
         return SK_PASS
     """, (8, 17), "takes a socket, not the program's context"),
    ("""
     store = SkStorage(value=u64)
     socks = SockHash(key=u32, max_entries=4)

     @sk_msg(socks)
     def p(msg: SkMsg) -> int:
         if 3 in store:
             return SK_DROP
         return SK_PASS
     """, (8, 7), "looking up sk_storage `store` is not supported"),
    # fields through the pointer: sock_ops' must be checked, and the names are bpf_sock's
    ("""
     @sock_ops
     def p(ctx: SockOps) -> int:
         if ctx.sk.state == BPF_TCP_ESTABLISHED:
             return 1
         return 1
     """, (5, 7), "`ctx.sk` may be None here"),
    ("""
     socks = SockHash(key=u32, max_entries=4)

     @sk_msg(socks)
     def p(msg: SkMsg) -> int:
         return i32(msg.sk.remote_port)
     """, (7, 15), "a socket has no field `remote_port`"),
    ("""
     class S(Struct):
         sk: Sock
     """, (4, 8), "a socket cannot be a struct field"),
    ("""
     store = SkStorage(value=u64, max_entries=100)
     """, (3, 41), "an SkStorage has no `max_entries`"),
    ("""
     store = SkStorage(value=u64)
     socks = SockHash(key=u32, max_entries=4)

     @sk_msg(socks)
     def p(msg: SkMsg) -> int:
         v = store.get(msg.sk, create=1)
         return SK_PASS
     """, (8, 33), "`create` is True or False"),
]


@pytest.mark.parametrize("src, where, message", ERRORS, ids=range(len(ERRORS)))
def test_socket_misuse_is_a_located_error(compile_src, src, where, message):
    c = compile_src(src)
    assert not c.result.output
    assert c.errors, c.result.diagnostics
    e = c.errors[0]
    assert message in e.message, e.format()
    assert (e.loc.line, e.loc.col) == where, e.format()
    assert e.hint


def test_unchecked_ctx_sk_hint_says_to_copy_it_into_a_local(compile_src):
    c = compile_src(ERRORS[1][0])
    assert "`sk = ctx.sk` then `if sk is not None:`" in c.errors[0].hint


# ==================================================================== pybpfgen.testing
@pytest.fixture
def mod(tmp_path):
    p = tmp_path / "skstate.py"
    p.write_text("from pybpfgen.lang import *\n" + GOOD)
    return testing.load(str(p))


def test_simulated_sockets_carry_their_storage(mod):
    store = mod.map("store")
    client, server = testing.Socket(), testing.Socket()
    assert mod.run("track", testing.sock_ops(op=4, local_port=40000, socket=client)) == 1
    assert mod.run("track", testing.sock_ops(op=5, local_port=6379, socket=server)) == 1
    assert store.lookup(client) == {"created": 1, "port": 40000, "msgs": 0, "bytes": 0}
    assert store.lookup(server)["port"] == 6379
    assert len(store) == 2
    msg = testing.sk_msg(size=100, socket=client)
    assert msg.sk is client
    mod.run("count", msg)
    mod.run("count", msg)
    assert store.lookup(client) == {"created": 1, "port": 40000, "msgs": 2, "bytes": 200}
    assert store.lookup(server)["msgs"] == 0
    mod.run("count", msg)  # the third message deletes the value (bpf_sk_storage_delete)
    assert store.lookup(client) is None and len(store) == 1


def test_storage_is_freed_with_the_socket(mod):
    store = mod.map("store")
    sk = testing.Socket()
    mod.run("track", testing.sock_ops(op=4, socket=sk))
    assert store.lookup(sk) is not None
    sk.close()
    assert store.lookup(sk) is None and len(store) == 0
    mod.run("track", testing.sock_ops(op=4, socket=sk))  # a closed socket gets no new storage
    assert store.lookup(sk) is None
    other = testing.Socket()
    mod.run("count", testing.sk_msg(socket=other))  # no value: nothing created
    assert store.update(other, {"port": 7}) == 0 and len(store) == 1
    mod.run("count", testing.sk_msg(socket=testing.Socket()))  # the module forgets its last context (`other`)
    del other  # garbage-collected (a socket no sockhash holds): its value goes with it
    import gc
    gc.collect()
    assert len(store) == 0


def test_a_sock_ops_context_without_a_full_socket(mod):
    ctx = testing.sock_ops(op=4, sk=None)
    assert ctx.sk is None
    assert mod.run("track", ctx) == 1
    assert len(mod.map("store")) == 0


def test_user_space_updates_and_deletes_by_socket(mod):
    store = mod.map("store")
    sk = testing.Socket()
    assert store.update(sk, {"port": 1, "msgs": 1}) == 0
    mod.run("count", testing.sk_msg(size=5, socket=sk))
    assert store.lookup(sk) == {"created": 0, "port": 1, "msgs": 2, "bytes": 5}
    assert store.delete(sk) == 0 and store.delete(sk) == -2
    assert store.lookup(sk) is None


FIELDS = """
from pybpfgen.lang import *

class Seen(Struct):
    dport: u32
    state: u32
    d6: u32[4]

seen = SkStorage(value=Seen)
socks = SockHash(key=u32, max_entries=4)


def note(sk: Sock) -> None:
    v = seen.get(sk, create=True)
    if v is not None:
        v.value.dport = sk.dst_port
        v.value.state = sk.state
        v.value.d6 = sk.dst_ip6


@sk_msg(socks)
def m(msg: SkMsg) -> int:
    note(msg.sk)
    return SK_PASS


@sock_ops
def o(ctx: SockOps) -> int:
    sk = ctx.sk
    if sk is not None and sk.family == AF_INET6:
        note(sk)
    return 1
"""


def test_simulated_socket_fields(tmp_path):
    p = tmp_path / "fields.py"
    p.write_text(FIELDS)
    mod = testing.load(str(p))
    sk = testing.Socket(family=10, dst_port=6379, state=1, dst_ip6=[1, 2, 3, 4])
    mod.run("m", testing.sk_msg(socket=sk))
    assert mod.map("seen").lookup(sk) == {"dport": 6379, "state": 1, "d6": [1, 2, 3, 4]}
    v4 = testing.Socket(family=2)
    mod.run("o", testing.sock_ops(op=4, socket=v4))
    assert mod.map("seen").lookup(v4) is None
    mod.run("o", testing.sock_ops(op=4, socket=sk))
    with pytest.raises(TypeError, match="no field 'port'"):
        testing.Socket(port=1)


COOKIE = """
from pybpfgen.lang import *

store = SkStorage(value=u64)


@sock_ops
def o(ctx: SockOps) -> int:
    sk = ctx.sk
    if sk is not None:
        v = store.get(sk, create=True)
        if v is not None:
            v.value = bpf_get_socket_cookie(ctx)
    return 1
"""


def test_a_context_and_its_socket_share_the_cookie(tmp_path):
    p = tmp_path / "cookie.py"
    p.write_text(COOKIE)
    mod = testing.load(str(p))
    sk = testing.Socket(cookie=77)
    mod.run("o", testing.sock_ops(op=4, socket=sk))
    assert mod.map("store").lookup(sk) == 77
    ctx = testing.sock_ops(op=4, cookie=5)
    mod.run("o", ctx)
    assert ctx.sk.cookie == 5 and mod.map("store").lookup(ctx.sk) == 5
