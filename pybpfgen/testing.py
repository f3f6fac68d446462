# Over 500 lines: the public pybpfgen.testing API (values, contexts, simulated maps, the IR interpreter) in the one module users import.
"""Run DSL programs in Python, with the semantics they have in the kernel.

``pybpfgen.testing`` interprets the compiler's typed IR directly (no LLVM, no
root), with the same integer semantics (C conversions, wrap-around, BPF division
by zero), the same memory layout (structs and map values are byte buffers, so
padding and aliasing behave as in the kernel), the kernel's context layouts
(``remote_port`` is stored in network byte order, exactly as the kernel gives it)
and simulated maps and helpers. Use it to unit-test policy logic::

    from pybpfgen import testing

    mod = testing.load("programs/accel.py")
    mod.map("policy_ports").update(6379, 1)
    ctx = testing.sock_ops(op=4, family=2, local_ip4=0x0100007F, remote_ip4=0x0100007F,
                           local_port=40000, remote_port=6379)
    assert mod.run("accel_sockops", ctx) == 1
    assert len(mod.map("socks")) == 1

The differential tests compile the same programs to BPF and run them in the kernel
with BPF_PROG_TEST_RUN; both must agree.
"""
from __future__ import annotations

import difflib
import itertools
import struct
import time
import weakref
from dataclasses import dataclass
from typing import Any, cast

from .diagnostics import CompileError
from .frontend.module import parse_module
from .ir import nodes as N
from .ir import semantics
from . import simpackets
from .ir import types as T
from .target import sockopts as SOCKOPTS
from .target.contexts import SOCK
from .target.maps import BY_KIND as MAP_KINDS
from .target.progtypes import PROG_TYPES

__all__ = ["load", "Module", "Context", "Socket", "sock_ops", "sk_msg", "skb", "cgroup_skb", "xdp", "tc", "sk_skb",
           "context", "SimMap", "SimulationError", "NotSimulated", "encode", "decode", "connect4", "connect6", "sendmsg4",
           "sendmsg6", "recvmsg4", "recvmsg6", "getpeername4", "getpeername6", "getsockname4", "getsockname6", "bind4",
           "bind6", "getsockopt", "setsockopt"]

SK_PASS, SK_DROP = 1, 0


class SimulationError(Exception):
    """A program did something the simulation cannot answer (the message says what to give it)."""
ENOENT, EEXIST, E2BIG, EINVAL = 2, 17, 7, 22


# ================================================================= values <-> bytes
def encode(t: T.Type, value: Any) -> bytes:
    """Python value → bytes in the kernel's layout. Structs accept a dict, a
    ``pybpfgen.lang.Struct`` instance or a tuple; arrays a list; missing fields are zero."""
    buf = bytearray(t.size)
    _store(buf, 0, t, value)
    return bytes(buf)


def decode(t: T.Type, data: bytes | bytearray, off: int = 0) -> Any:
    """Bytes → Python value: ints, bools, dicts for structs, lists for arrays."""
    if isinstance(t, T.IntT):
        return int.from_bytes(data[off:off + t.size], "little", signed=t.signed)
    if isinstance(t, T.BoolT):
        return data[off] != 0
    if isinstance(t, T.StructT):
        return {f.name: decode(f.type, data, off + f.offset) for f in t.fields}
    if isinstance(t, T.ArrayT):
        return [decode(t.elem, data, off + i * t.elem.size) for i in range(t.n)]
    raise TypeError(f"cannot decode {t}")


def _store(buf: bytearray, off: int, t: T.Type, value: Any) -> None:
    if isinstance(t, T.IntT):
        buf[off:off + t.size] = (int(value) & ((1 << t.bits) - 1)).to_bytes(t.size, "little")
    elif isinstance(t, T.BoolT):
        buf[off] = 1 if value else 0
    elif isinstance(t, T.StructT):
        if value is None or value == 0:
            return
        if isinstance(value, (tuple, list)):
            value = {f.name: v for f, v in zip(t.fields, value)}
        elif not isinstance(value, dict):
            value = {f.name: getattr(value, f.name) for f in t.fields}
        for f in t.fields:
            if f.name in value:
                _store(buf, off + f.offset, f.type, value[f.name])
    elif isinstance(t, T.ArrayT):
        for i, v in enumerate(value or []):
            _store(buf, off + i * t.elem.size, t.elem, v)
    else:
        raise TypeError(f"cannot encode {t}")


# ================================================================= memory and pointers
@dataclass(frozen=True)
class Ptr:
    """A pointer: a byte buffer and an offset into it."""

    buf: bytearray
    off: int = 0


# ================================================================= sockets
_cookies = itertools.count(1)


class Socket:
    """A simulated socket: what ``ctx.sk`` gives a program and what a SockHash stores. It carries its own
    socket-local storage (one value per ``SkStorage`` map), freed with it: when it is closed (:meth:`close`) or
    garbage-collected, as the kernel frees a socket's storage when the socket is destroyed."""

    def __init__(self, cookie: int | None = None, **fields: Any):
        self.cookie = next(_cookies) if cookie is None else cookie
        self.storage: dict[str, bytearray] = {}  # SkStorage map name -> this socket's value (bytes)
        # its options as bpf_setsockopt left them and bpf_getsockopt reads them: (level, optname) -> int or name
        self.sockopts: dict[tuple[int, int], int | str] = {}
        self.closed = False
        # what programs read through the pointer (struct bpf_sock): ports in host order, IPv4 addresses as the
        # kernel's u32 (network order), IPv6 addresses as 4 such words
        for f in SOCK.fields:
            setattr(self, f.name, [0, 0, 0, 0] if f.type == "u32[4]" else 0)
        for k, v in fields.items():
            if not any(f.name == k for f in SOCK.fields):
                raise TypeError(f"a socket has no field {k!r} (fields: {', '.join(f.name for f in SOCK.fields)})")
            setattr(self, k, v)

    def close(self) -> None:
        """Destroy the socket: its storage goes with it, and programs can no longer create any."""
        self.closed = True
        self.storage.clear()

    def __repr__(self) -> str:
        return f"Socket(cookie={self.cookie}{', closed' if self.closed else ''})"


# ================================================================= contexts
class Context:
    """A program context: the kernel's struct as bytes, plus what helpers record."""

    def __init__(self, progtype: str, mem: bytes, **attrs: Any):
        self.progtype = progtype
        self.mem = bytearray(mem)  # the context struct
        self.redirect: tuple | None = None  # (map name, key bytes, flags) after msg_redirect_*
        self.cb_flags: int | None = None
        sock = attrs.get("socket")
        self.cookie = attrs.pop("cookie", sock.cookie if isinstance(sock, Socket) else 1)
        self.netns_cookie = attrs.pop("netns_cookie", 1)
        # the context's socket: what a sockhash stores for it and what ctx.sk gives (sk=None: sock_ops without a
        # full socket)
        self.socket = attrs.pop("socket", None) or Socket(self.cookie)
        self.sk: Socket | None = attrs.pop("sk", self.socket if isinstance(self.socket, Socket) else Socket(self.cookie))
        # the packet or message bytes (``data=``): what ctx.bytes() views and the data helpers read
        self.payload = simpackets.Payload(attrs.pop("data", b""), attrs.pop("linear", None))
        # sockopts={(SOL_TCP, TCP_MAXSEG): 1400}: options of the socket that bpf_getsockopt reads (kept on the
        # testing.Socket: per simulated socket; on the context when a test gives another object as its socket)
        self._sockopts = self.socket.sockopts if isinstance(self.socket, Socket) else {}
        self._sockopts.update(attrs.pop("sockopts", {}))
        self.printk: list[str] = []
        self.optval = bytearray()  # a sockopt context's option value (testing.getsockopt(optval=...))
        self.bound: bytes | None = None  # the address bpf_bind bound the socket to (connect4/6)
        self.call_retval = attrs.pop("call_retval", 0)  # what bpf_get_retval returns and bpf_set_retval sets
        for k, v in attrs.items():
            setattr(self, k, v)

    @property
    def frame(self) -> bytearray:
        """A packet program's packet: what the xdp helpers read and write (the payload's bytes)."""
        return self.payload.buf

    @property
    def sockopts(self) -> dict[tuple[int, int], int | str]:
        """The options of the context's socket (:attr:`Socket.sockopts`)."""
        return self._sockopts

    def field(self, name: str) -> Any:
        """A context field as the program sees it (ports in host byte order; an IPv6 address as 4 words),
        e.g. after a run, what the program wrote into it."""
        fields = PROG_TYPES[self.progtype].fields
        f = fields.get(name)
        if f is None:
            raise AttributeError(f"a {self.progtype} context has no field {name!r} (fields: {', '.join(fields)})")
        if T.is_sock(f.type):
            return self.sk
        if isinstance(f.type, T.ArrayT):
            return [int.from_bytes(self.mem[f.offset + 4 * i:f.offset + 4 * i + 4], "little") for i in range(f.type.n)]
        raw = int.from_bytes(self.mem[f.offset:f.offset + f.load_bits // 8], "little")
        v = _from_ctx(f, raw)
        return f.type.wrap(v) if isinstance(f.type, T.IntT) else v

    def __getattr__(self, name: str) -> Any:  # ctx.user_port: the field (only called for other names)
        if name.startswith("__") or name not in PROG_TYPES[self.__dict__["progtype"]].fields:
            raise AttributeError(name)
        return self.field(name)


def _bswap32(v: int) -> int:
    return int.from_bytes((v & 0xFFFFFFFF).to_bytes(4, "little"), "big")


# Keyword arguments of the context constructors that are not context fields: what the simulated helpers return
# (``cookie=`` for bpf_get_socket_cookie, ...). A new input for a new simulated helper is added here; any other
# unknown name is an error, so that a misspelt field cannot leave the real one at 0 and a test pass for the wrong reason.
CONTEXT_INPUTS: dict[str, str] = {
    "cookie": "what bpf_get_socket_cookie returns",
    "netns_cookie": "what bpf_get_netns_cookie returns",
    "socket": "what a sockmap/sockhash stores for this context",
    "cgroup_id": "what bpf_skb_cgroup_id / bpf_get_current_cgroup_id return",
    "pid_tgid": "what bpf_get_current_pid_tgid returns",
    "sk": "the context's socket (`ctx.sk`): None for a sock_ops callback without a full socket",
    "data": "the packet's or message's bytes",
    "linear": "how many of the packet's bytes are directly readable",
    "sockopts": "the socket's options, as bpf_getsockopt reads them",
    "call_retval": "the error the application's call returns (what bpf_get_retval returns; 0: none)",
}


def _unknown_field(progtype: str, name: str, fields: dict) -> TypeError:
    """The error for a keyword that is neither a context field of ``progtype`` nor a helper input."""
    pt = PROG_TYPES[progtype]
    declared = {f.name for f in pt.context.fields} if pt.context is not None else set()
    if name in declared:  # a field of the struct that this program type may not read
        return TypeError(f"{pt.ctx_class} field `{name}` is not readable by {progtype} programs "
                         "(the kernel's verifier refuses the read), so it cannot be set in their context")
    close = difflib.get_close_matches(name, list(fields) + list(CONTEXT_INPUTS), n=1, cutoff=0.6)
    hint = f"; did you mean `{close[0]}`?" if close else f"; its fields: {', '.join(fields)}"
    return TypeError(f"{pt.ctx_class} ({progtype}) has no field `{name}`{hint}")


def _bswap16(v: int) -> int:
    return ((v & 0xFF) << 8) | ((v >> 8) & 0xFF)


def _from_ctx(f: N.CtxField, raw: int) -> int:
    """The kernel's representation of a context field -> the program's (target/contexts.py ``convert``)."""
    if f.convert == "bswap32":
        return _bswap32(raw)
    if f.convert == "bswap16":
        return _bswap16(raw)
    return raw


_to_ctx = _from_ctx  # each conversion is its own inverse


def _ctx(progtype: str, values: dict) -> Context:
    pt = PROG_TYPES[progtype]
    fields = pt.fields
    assert pt.context is not None  # the kernel's context structs (syscall contexts are user Structs)
    mem = bytearray(pt.context.size)
    extra = {}
    data = values.get("data")
    if isinstance(data, (bytes, bytearray)):  # the message's size / the packet's length follow its bytes
        for length in ("size", "len"):
            if length in fields and length not in values:
                values = {**values, length: len(data)}
    for k, v in values.items():
        f = fields.get(k)
        if f is None or T.is_sock(f.type):  # a socket pointer is the Context's `sk`, not bytes
            if f is None and k not in CONTEXT_INPUTS:
                raise _unknown_field(progtype, k, fields)
            extra[k] = v
            continue
        if isinstance(f.type, T.ArrayT):
            for i, w in enumerate(v):
                mem[f.offset + 4 * i:f.offset + 4 * i + 4] = (w & 0xFFFFFFFF).to_bytes(4, "little")
            continue
        raw = _to_ctx(f, v & ((1 << f.load_bits) - 1))
        mem[f.offset:f.offset + f.load_bits // 8] = (raw & ((1 << f.load_bits) - 1)).to_bytes(f.load_bits // 8, "little")
    return Context(progtype, bytes(mem), **extra)


# what a context may carry besides its fields: what the simulated helpers return for it
_HELPER_ATTRS = ("cookie", "netns_cookie", "socket", "pid_tgid", "cgroup_id", "sockopts", "call_retval")


def _checked_ctx(progtype: str, values: dict, attrs: tuple[str, ...] = _HELPER_ATTRS) -> Context:
    """A context whose fields a program of ``progtype`` can read; any other name is an error (a misspelt field
    would otherwise stay 0 and let a test pass for the wrong reason)."""
    pt = PROG_TYPES[progtype]
    assert pt.context is not None  # a kernel context struct
    for k in values:
        if k in pt.fields or k in attrs:
            continue
        declared = next((f for f in pt.context.fields if f.name == k), None)
        if declared is not None and progtype in declared.unreadable_in:
            raise TypeError(f"a {progtype} program cannot read {pt.ctx_class}.{k}: {declared.unreadable_in[progtype]}")
        raise TypeError(f"{pt.ctx_class} has no field {k!r}; its fields in a {progtype} program: "
                        f"{', '.join(pt.fields)} (and {', '.join(attrs)} for the helpers)")
    return _ctx(progtype, values)


def sock_ops(**fields: Any) -> Context:
    """A ``struct bpf_sock_ops`` context. Give ports in host byte order (as programs see them) and
    IPv4 addresses as the kernel's u32 (network byte order): 127.0.0.1 is ``0x0100007F``.
    Also ``cookie=``, ``netns_cookie=``, ``socket=`` (a :class:`Socket`; a new one by default) for the helpers;
    ``ctx.sk`` is that socket, or None with ``sk=None`` (a request socket, not a full one). ``sockopts=`` (a dict
    ``{(SOL_TCP, TCP_NODELAY): 1, (SOL_TCP, TCP_CONGESTION): "cubic"}``) gives the socket's options, which
    bpf_getsockopt reads and bpf_setsockopt changes (read them after a run in ``ctx.sockopts``)."""
    return _ctx("sock_ops", fields)


def sk_msg(**fields: Any) -> Context:
    """A ``struct sk_msg_md`` context (see :func:`sock_ops` for the conventions); ``msg.sk`` is its ``socket=``.
    ``data=b"..."``: the message's bytes (``size`` follows unless given); ``linear=N``: only its first N bytes are
    between ``data`` and ``data_end`` until ``bpf_msg_pull_data`` (pybpfgen/simpackets.py)."""
    return _ctx("sk_msg", fields)


def skb(**fields: Any) -> Context:
    """A ``struct __sk_buff`` context for socket_filter programs; ``data=b"..."``: the packet's bytes (what
    ``bpf_skb_load_bytes`` reads; ``len`` follows unless given)."""
    return _ctx("socket_filter", fields)


def context(progtype: str, **fields: Any) -> Context:
    """A context for a program of any type of the table (``testing.context("xdp", data=frame)``,
    ``testing.context("tc_ingress", data=frame, len=60)``), with the conventions of :func:`sock_ops`; ``data=``
    gives its packet bytes (pybpfgen/simpackets.py)."""
    if progtype not in PROG_TYPES or PROG_TYPES[progtype].context is None:
        raise ValueError(f"no program type {progtype!r} with a kernel context; one of: "
                         + ", ".join(p.name for p in PROG_TYPES.values() if p.context is not None))
    return _ctx(progtype, fields)


def cgroup_skb(direction: str = "egress", **fields: Any) -> Context:
    """A ``struct __sk_buff`` context for cgroup_skb programs (``direction``: "ingress" or "egress"); they may
    also read the packet's socket (family, addresses, ports). ``cgroup_id=N``: what bpf_skb_cgroup_id returns;
    ``data=b"..."``: the packet from its IP header on (``skb.bytes()``, ``bpf_skb_load_bytes``; ``len`` follows
    unless given), ``linear=N``: only its first N bytes are directly readable."""
    if direction not in ("ingress", "egress"):
        raise ValueError(f"direction is 'ingress' or 'egress', not {direction!r}")
    return _ctx(f"cgroup_skb_{direction}", fields)


def _sock_addr(hook: str) -> Any:
    def make(**fields: Any) -> Context:
        return _checked_ctx(f"cgroup_{hook}", fields)

    make.__name__ = make.__qualname__ = hook
    make.__doc__ = (f"A ``struct bpf_sock_addr`` context for ``@cgroup_{hook}`` programs. Give ``user_port`` in "
                    "host byte order and addresses as the kernel's u32 words (network byte order: 127.0.0.1 is "
                    "``0x0100007F``); ``user_family`` and ``family`` default to the hook's family. After a run, "
                    "``ctx.user_ip4``, ``ctx.user_port`` ... are what the program wrote. Also ``cookie=``, "
                    "``netns_cookie=`` for the helpers. A field the hook cannot read is an error.")
    return make


def _with_family(make: Any, family: int) -> Any:
    def with_family(**fields: Any) -> Context:
        fields.setdefault("user_family", family)
        fields.setdefault("family", family)
        return cast(Context, make(**fields))

    with_family.__name__ = with_family.__qualname__ = make.__name__
    with_family.__doc__ = make.__doc__
    return with_family


connect4 = _with_family(_sock_addr("connect4"), 2)
connect6 = _with_family(_sock_addr("connect6"), 10)
sendmsg4 = _with_family(_sock_addr("sendmsg4"), 2)
sendmsg6 = _with_family(_sock_addr("sendmsg6"), 10)
recvmsg4 = _with_family(_sock_addr("recvmsg4"), 2)
recvmsg6 = _with_family(_sock_addr("recvmsg6"), 10)
getpeername4 = _with_family(_sock_addr("getpeername4"), 2)
getpeername6 = _with_family(_sock_addr("getpeername6"), 10)
getsockname4 = _with_family(_sock_addr("getsockname4"), 2)
getsockname6 = _with_family(_sock_addr("getsockname6"), 10)
bind4 = _with_family(_sock_addr("bind4"), 2)
bind6 = _with_family(_sock_addr("bind6"), 10)


def getsockopt(optval: bytes = b"", **fields: Any) -> Context:
    """A ``struct bpf_sockopt`` context for ``@cgroup_getsockopt`` programs: ``level``, ``optname``, ``optlen``
    (default: ``len(optval)``), ``retval`` (what the kernel's getsockopt returned: 0 or a negative errno) and
    the option's bytes ``optval`` (what ``ctx.bytes(0, n)`` views). After a run, ``ctx.retval``, ``ctx.optlen``
    and ``ctx.optval`` are what the program left."""
    fields.setdefault("optlen", len(optval))
    fields.setdefault("call_retval", fields.get("retval", 0))  # bpf_get_retval: the kernel's result at first
    return _sockopt_bytes(_checked_ctx("cgroup_getsockopt", fields), optval)


def setsockopt(optval: bytes = b"", **fields: Any) -> Context:
    """A ``struct bpf_sockopt`` context for ``@cgroup_setsockopt`` programs: ``level``, ``optname``, ``optlen``
    (default: ``len(optval)``) and the bytes the application passes, ``optval`` (what ``ctx.bytes(0, n)``
    views). After a run, ``ctx.optval`` (its bytes), ``ctx.level``,
    ``ctx.optname``, ``ctx.optlen`` are what the program left (``optlen == -1``: the kernel skips the call)."""
    fields.setdefault("optlen", len(optval))
    return _sockopt_bytes(_checked_ctx("cgroup_setsockopt", fields), optval)


def _constructor(progtype: str) -> str:
    """The testing function that makes a context of ``progtype`` (``connect4`` for cgroup_connect4)."""
    if progtype.startswith("cgroup_skb"):
        return "cgroup_skb"
    return progtype[len("cgroup_"):] if progtype.startswith("cgroup_") else progtype


def _sockopt_bytes(ctx: Context, optval: bytes) -> Context:
    """The option's bytes are the context's packet data (``ctx.bytes(0, n)`` views them); ``ctx.optval`` is that
    buffer, so a test sees what the program wrote."""
    ctx.payload = simpackets.Payload(bytes(optval))
    ctx.optval = ctx.payload.buf
    return ctx


def _with_frame(progtype: str, fields: dict, len_field: bool) -> Context:
    """A context whose packet is ``data=`` (bytes): its payload (what views read, pybpfgen/simpackets.py), also
    ``ctx.frame`` (the same bytearray: what the xdp helpers read and write); ``len`` follows it unless given."""
    frame = bytes(fields.pop("data", b""))
    if len_field:
        fields.setdefault("len", len(frame))
    return _ctx(progtype, {**fields, "data": frame})


def xdp(**fields: Any) -> Context:
    """A ``struct xdp_md`` context: ``data=b"..."`` is the frame from its Ethernet header (what
    ``bpf_xdp_load_bytes`` reads and ``bpf_xdp_store_bytes`` writes, ``bpf_xdp_get_buff_len`` its length);
    ``ingress_ifindex=``, ``rx_queue_index=``."""
    return _with_frame("xdp", fields, False)


def tc(direction: str = "ingress", **fields: Any) -> Context:
    """A ``struct __sk_buff`` context for tc programs (``direction``: "ingress" or "egress"): ``data=b"..."`` is
    the frame from its Ethernet header (``len`` follows it unless given); ``protocol=0x0008`` is IPv4 (network
    byte order, as the kernel gives it); ``cgroup_id=N``: what bpf_skb_cgroup_id returns. Fields the program writes
    (``mark``, ``priority``, ...) are read back with ``ctx.field(name)``."""
    if direction not in ("ingress", "egress"):
        raise ValueError(f"direction is 'ingress' or 'egress', not {direction!r}")
    return _with_frame(f"tc_{direction}", fields, True)


def sk_skb(kind: str = "verdict", **fields: Any) -> Context:
    """A ``struct __sk_buff`` context for sk_skb programs (``kind``: "verdict" or "parser"): ``data=b"..."`` is the
    stream data received (``len`` follows it unless given), the socket fields (``family``, ``local_port``, ...)
    are the receiving socket's. After ``bpf_sk_redirect_hash``/``_map`` found its socket, ``ctx.redirect`` is
    ``(map name, key bytes, flags)``."""
    if kind not in ("verdict", "parser"):
        raise ValueError(f"kind is 'verdict' or 'parser', not {kind!r}")
    return _with_frame(f"sk_skb_stream_{kind}", fields, True)


# ================================================================= maps
class SimMap:
    """A simulated map. Keys and values are given and returned as Python values
    (see :func:`encode`/:func:`decode`); inside programs they are byte buffers."""

    def __init__(self, decl: N.MapDecl):
        self.decl = decl
        self.data: dict[bytes, Any] = {}  # key bytes -> bytearray (value) or a socket object
        self.kind = MAP_KINDS[decl.kind]
        if self.kind.array:
            for i in range(decl.max_entries):
                self.data[i.to_bytes(4, "little")] = bytearray(decl.value.size)
        self.records: list[bytes] = []  # ring buffer: the records output or submitted, oldest first
        self.reserved: list[bytearray] = []  # ring buffer: reservations not yet submitted or discarded
        self.used = 0  # ring buffer: bytes taken (records and reservations, 8-byte headers, 8-byte aligned)
        # local storage: the values live in the sockets; the map knows which sockets have one (weakly: a socket
        # that is garbage-collected takes its value with it)
        self.sockets: weakref.WeakSet[Socket] = weakref.WeakSet()

    # ---- local storage (SkStorage): a value per socket, in the socket
    def _storage_get(self, sk: Socket, init: bytes | None, flags: int) -> bytearray | None:
        v = sk.storage.get(self.decl.name)
        if v is None and flags & 1 and not sk.closed:  # BPF_SK_STORAGE_GET_F_CREATE
            v = sk.storage[self.decl.name] = bytearray(init if init is not None else self.decl.value.size)
            self.sockets.add(sk)
        return v

    def _storage_delete(self, sk: Socket) -> int:
        return 0 if sk.storage.pop(self.decl.name, None) is not None else -ENOENT

    def _live(self) -> list[Socket]:
        return [s for s in self.sockets if self.decl.name in s.storage]

    # ---- as programs see it (bytes)
    def _lookup(self, key: bytes) -> bytearray | None:
        if self.kind.key == "lpm":
            return self._lpm(key)
        v = self.data.get(bytes(key))
        if v is not None and self.kind.lru:
            self.data[bytes(key)] = self.data.pop(bytes(key))  # most recently used last
        return v if isinstance(v, bytearray) else None

    def _lpm(self, key: bytes) -> bytearray | None:
        want_len = int.from_bytes(key[:4], "little")
        addr = key[4:]
        best, best_len = None, -1
        for k, v in self.data.items():
            plen = int.from_bytes(k[:4], "little")
            if plen > want_len or plen <= best_len:
                continue
            if _prefix_equal(k[4:], addr, plen):
                best, best_len = v, plen
        return best

    def _update(self, key: bytes, value: bytes | Any, flags: int) -> int:
        key = bytes(key)
        if self.kind.array:
            if key not in self.data:
                return -E2BIG
            if flags == 1:  # BPF_NOEXIST
                return -EEXIST
            self.data[key][:] = value
            return 0
        exists = key in self.data
        if flags == 1 and exists:
            return -EEXIST
        if flags == 2 and not exists:
            return -ENOENT
        if not exists and len(self.data) >= self.decl.max_entries:
            if self.kind.lru:
                self.data.pop(next(iter(self.data)))
            else:
                return -E2BIG
        self.data[key] = bytearray(value) if isinstance(value, (bytes, bytearray)) else value
        return 0

    # ---- ring buffers: the kernel's accounting of room (a record takes an 8-byte header, rounded up to 8)
    @staticmethod
    def _room(size: int) -> int:
        return (size + 8 + 7) & ~7

    def _output(self, data: bytes) -> int:
        if self.used + self._room(len(data)) > self.decl.max_entries:
            return -11  # -EAGAIN: full, as bpf_ringbuf_output says
        self.records.append(bytes(data))
        self.used += self._room(len(data))
        return 0

    def _reserve(self, size: int) -> Ptr | None:
        if self.used + self._room(size) > self.decl.max_entries:
            return None
        buf = bytearray(size)
        self.reserved.append(buf)
        self.used += self._room(size)
        return Ptr(buf)

    def _release(self, buf: bytearray, submit: bool) -> int:
        self.reserved = [r for r in self.reserved if r is not buf]
        if submit:
            self.records.append(bytes(buf))
        else:
            self.used -= self._room(len(buf))
        return 0

    def events(self, consume: bool = True) -> list:
        """The records programs output or submitted to this RingBuf, oldest first, decoded with its event type
        (``RingBuf(event=...)``; bytes when it has none), as ``pybpfgen events`` reads them from the kernel.
        ``consume``: take them out of the buffer (as a reader does), making room again."""
        t = self.decl.value
        out = [bytes(r) if isinstance(t, T.VoidT) else decode(t, r) for r in self.records]
        if consume:
            self.used -= sum(self._room(len(r)) for r in self.records)
            self.records = []
        return out

    def _delete(self, key: bytes) -> int:
        if self.kind.array:
            return -22
        return 0 if self.data.pop(bytes(key), None) is not None else -ENOENT

    # ---- as tests see it (Python values)
    def _key(self, key: Any) -> bytes:
        return encode(self.decl.key, key)

    def lookup(self, key: Any) -> Any:
        if self.kind.key == "sock":  # key: the Socket (user space passes a socket fd to the kernel)
            sv = key.storage.get(self.decl.name)
            return None if sv is None else decode(self.decl.value, sv)
        v = self.data.get(self._key(key)) if self.kind.key != "lpm" else self._lpm(self._key(key))
        if v is None:
            return None
        return decode(self.decl.value, v) if isinstance(v, bytearray) else v

    def update(self, key: Any, value: Any, flags: int = 0) -> int:
        if self.kind.key == "sock":
            exists = self.decl.name in key.storage
            if (flags == 1 and exists) or (flags == 2 and not exists):
                return -EEXIST if exists else -ENOENT
            if key.closed:
                return -ENOENT
            key.storage[self.decl.name] = bytearray(encode(self.decl.value, value))
            self.sockets.add(key)
            return 0
        return self._update(self._key(key), encode(self.decl.value, value), flags)

    def delete(self, key: Any) -> int:
        if self.kind.key == "sock":
            return self._storage_delete(key)
        return self._delete(self._key(key))

    def keys(self) -> list:
        if self.kind.key == "sock":
            return self._live()
        return [decode(self.decl.key, k) for k in self.data]

    def __contains__(self, key: Any) -> bool:
        return self.lookup(key) is not None

    def __len__(self) -> int:
        return len(self._live()) if self.kind.key == "sock" else len(self.data)


def _prefix_equal(a: bytes, b: bytes, bits: int) -> bool:
    full, rest = divmod(bits, 8)
    if a[:full] != b[:full]:
        return False
    if rest:
        mask = (0xFF << (8 - rest)) & 0xFF
        return (a[full] & mask) == (b[full] & mask)
    return True


# ================================================================= the interpreter
class NotSimulated(Exception):
    """A program called a helper that pybpfgen.testing does not simulate: one line naming the helper and where
    it was called. Test that path on the kernel (BPF_PROG_TEST_RUN or a real attachment) instead."""


class _Return(Exception):
    def __init__(self, value):
        self.value = value


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


class Module:
    """A checked DSL module whose programs can be run."""

    last_context: Context  # the context of the last run (set by run)

    def __init__(self, ir: N.Module):
        self.ir = ir
        self.maps: dict[str, SimMap] = {m.name: SimMap(m) for m in ir.maps}
        self.globals: dict[str, bytearray] = {g.name: bytearray(encode(g.type, g.init or 0)) for g in ir.globals}
        self.programs = {p.name: p for p in ir.programs}
        self.printk: list[str] = []
        self.clock_ns = None  # set to an int to make bpf_ktime_get_ns deterministic

    def map(self, name: str) -> SimMap:
        return self.maps[name]

    def set_config(self, name: str, value: Any) -> None:
        """What ``pybpfgen load --set NAME=VALUE`` does for a Config."""
        g = next(g for g in self.ir.globals if g.name == name)
        self.globals[name][:] = encode(g.type, value)

    def global_value(self, name: str) -> Any:
        g = next(g for g in self.ir.globals if g.name == name)
        return decode(g.type, self.globals[name])

    def run(self, program: str, ctx: Context | bytes | dict | Any) -> int:
        """Run a program on a context; returns its return value. For syscall programs ``ctx``
        may be bytes, a dict or a Struct instance; read the results with :meth:`last_ctx`."""
        prog = self.programs[program]
        struct_t = prog.ctx_type.struct_t
        if struct_t is not None and not isinstance(ctx, Context):
            data = ctx if isinstance(ctx, (bytes, bytearray)) else encode(struct_t, ctx)
            ctx = Context("syscall", bytes(data))
        ctx = cast(Context, ctx)  # the other program types take a Context (from sock_ops_ctx() ...)
        self.last_context = ctx
        frame = _Frame(self, ctx)
        frame.bind(prog.ctx, ctx)
        try:
            frame.block(prog.body)
        except _Return as r:
            return T.I32.wrap(r.value)
        except NotSimulated as e:  # raised again here: one line, without the interpreter's frames
            raise NotSimulated(str(e)) from None
        raise RuntimeError(f"program {program} fell off its end")  # the checker prevents this

    def last_ctx(self) -> Any:
        """The context after the last run (for syscall programs: the struct as a dict)."""
        ctx = self.last_context
        prog_ctx = next((p.ctx_type.struct_t for p in self.ir.programs if p.ctx_type.struct_t), None)
        if ctx.progtype == "syscall" and prog_ctx is not None:
            return decode(prog_ctx, ctx.mem)
        return ctx


class _Frame:
    def __init__(self, mod: Module, ctx: Context):
        self.mod, self.ctx_obj = mod, ctx
        self.vals: dict[N.Var, Any] = {}

    def bind(self, var: N.Var, value: Any) -> None:
        self.vals[var] = value

    # ------------------------------------------------------------ statements
    def block(self, stmts: list[N.Stmt]) -> None:
        for s in stmts:
            self.stmt(s)

    def stmt(self, s: N.Stmt) -> None:
        if isinstance(s, N.Return):
            if s.value is not None and T.is_memory(s.value.type):
                raise _Return(self.memory(s.value))
            raise _Return(None if s.value is None else self.value(s.value))
        if isinstance(s, N.Assign):
            self.store(s.target, s.value)
        elif isinstance(s, N.ExprStmt):
            self.value(s.value)
        elif isinstance(s, N.If):
            self.block(s.then if self.value(s.cond) else s.orelse)
        elif isinstance(s, N.For):
            for i in range(s.start, s.stop, s.step):
                self.vals[s.var] = i
                try:
                    self.block(s.body)
                except _Break:
                    break
                except _Continue:
                    continue
        elif isinstance(s, N.Break):
            raise _Break()
        elif isinstance(s, N.Continue):
            raise _Continue()
        else:
            raise NotImplementedError(type(s).__name__)

    def store(self, target: N.Expr, value: N.Expr) -> None:
        if isinstance(target, N.PacketLoad):
            p = self.value(target.view)
            assert isinstance(target.type, T.IntT)
            simpackets.store(p.buf, p.off + target.offset, target.type.bits, target.big_endian, self.value(value))
            return
        if isinstance(target, N.CtxLoad):
            f, mem = target.field, self.ctx_mem(target.ctx)
            if isinstance(f.type, T.ArrayT) and target.index is None:  # a whole IPv6 address
                mem[f.offset:f.offset + f.type.size] = self.memory(value)
                return
            off, n = f.offset + 4 * (target.index or 0), f.load_bits // 8
            mem[off:off + n] = (_to_ctx(f, self.value(value) & ((1 << f.load_bits) - 1))).to_bytes(n, "little")
            return
        if isinstance(target, N.VarRef) and not T.is_memory(target.type):
            self.vals[target.var] = self.value(value)
            return
        p = self.address(target)
        self.write(p, target.type, value)

    def write(self, p: Ptr, t: T.Type, value: N.Expr) -> None:
        if T.is_memory(t):
            p.buf[p.off:p.off + t.size] = self.memory(value)
        else:
            _store(p.buf, p.off, t, self.value(value))

    # ------------------------------------------------------------ memory values
    def memory(self, e: N.Expr) -> bytes:
        """The bytes of a struct or array value."""
        t = e.type
        if isinstance(e, N.StructInit):
            assert isinstance(t, T.StructT)  # a StructInit's type is its struct
            buf = bytearray(t.size)
            for f in t.fields:
                v = e.values.get(f.name)
                if v is not None:
                    self.write(Ptr(buf, f.offset), f.type, v)
            return bytes(buf)
        if isinstance(e, N.ArrayInit):
            assert isinstance(t, T.ArrayT)  # an ArrayInit's type is its array type
            buf = bytearray(t.size)
            for i, v in enumerate(e.values):
                self.write(Ptr(buf, i * t.elem.size), t.elem, v)
            return bytes(buf)
        if isinstance(e, N.CtxLoad):
            cf = e.field
            return bytes(self.ctx_mem(e.ctx)[cf.offset:cf.offset + t.size])
        if isinstance(e, N.Call):
            return bytes(self.call(e))
        if isinstance(e, N.SockLoad):  # an array field of a socket: src_ip6, dst_ip6
            return encode(t, self.value(e))
        p = self.address(e)
        return bytes(p.buf[p.off:p.off + t.size])

    def address(self, e: N.Expr) -> Ptr:
        if isinstance(e, N.VarRef):
            v = self.vals.get(e.var)
            if v is None:
                v = self.vals[e.var] = Ptr(bytearray(e.type.size))
            return v
        if isinstance(e, N.FieldGet):
            if not isinstance(e.base, (N.VarRef, N.FieldGet, N.Index, N.Deref)):
                return Ptr(bytearray(self.memory(e.base)), e.field.offset)
            b = self.address(e.base)
            return Ptr(b.buf, b.off + e.field.offset)
        if isinstance(e, N.Index):
            i = self.value(e.index)
            if isinstance(e.base, (N.VarRef, N.FieldGet, N.Index, N.Deref)):
                b = self.address(e.base)
            else:
                b = Ptr(bytearray(self.memory(e.base)))
            return Ptr(b.buf, b.off + i * e.type.size)
        if isinstance(e, N.Deref):
            p = self.value(e.ref)
            return Ptr(p.mem) if isinstance(p, Context) else p  # a syscall program's context struct
        raise NotImplementedError(f"address of {type(e).__name__}")

    def ctx_mem(self, var: N.Var) -> bytearray:
        return self.vals[var].mem

    # ------------------------------------------------------------ scalar values
    def value(self, e: N.Expr) -> Any:
        t = e.type
        if isinstance(e, N.Const):
            return e.value
        if isinstance(e, N.VarRef):
            if T.is_memory(t):
                return self.address(e)
            return self.vals[e.var]
        if isinstance(e, N.Narrow):
            return self.value(e.value)
        if isinstance(e, N.CtxRef):
            return self.vals[e.var]
        if isinstance(e, N.CtxLoad) and T.is_sock(t):
            return self.vals[e.ctx].sk
        if isinstance(e, N.SockLoad):
            v = getattr(self.value(e.sock), e.field.name)
            v = v[e.index] if e.index is not None else v
            return [w & 0xFFFFFFFF for w in v] if isinstance(v, list) else v & 0xFFFFFFFF
        if isinstance(e, N.CtxLoad):
            f = e.field
            off = f.offset + (4 * e.index if e.index is not None else 0)
            raw = _from_ctx(f, int.from_bytes(self.ctx_mem(e.ctx)[off:off + f.load_bits // 8], "little"))
            return t.wrap(raw) if isinstance(t, T.IntT) else raw
        if isinstance(e, N.GlobalRef):
            return Ptr(self.mod.globals[e.decl.name])
        if isinstance(e, (N.FieldGet, N.Deref, N.Index)):
            p = self.address(e)
            return decode(t, p.buf, p.off)
        if isinstance(e, N.Cast):
            assert isinstance(t, T.IntT)  # casts are to integer types (conversions to bool are comparisons)
            v = self.value(e.value)
            return t.wrap(int(v))
        if isinstance(e, N.Unary):
            assert isinstance(t, T.IntT)  # - and ~ on promoted integers
            v = self.value(e.value)
            return t.wrap(-v if e.op == "-" else ~v)
        if isinstance(e, N.Not):
            return not self.value(e.value)
        if isinstance(e, N.Binary):
            return self.binary(e)
        if isinstance(e, N.Compare):
            return semantics.compare(e.op, self.value(e.left), self.value(e.right))
        if isinstance(e, N.Logical):
            if e.op == "and":
                return bool(self.value(e.left)) and bool(self.value(e.right))
            return bool(self.value(e.left)) or bool(self.value(e.right))
        if isinstance(e, N.IsNull):
            p = self.value(e.value)
            return (p is not None) if e.negate else (p is None)
        if isinstance(e, N.HelperCall):
            return self.helper(e)
        if isinstance(e, N.PacketView):
            payload = self.vals[e.ctx].payload
            at = payload.view(self.value(e.offset), e.n)
            return None if at is None else Ptr(payload.buf, at)
        if isinstance(e, N.PacketStore):
            p = self.value(e.view)
            simpackets.store(p.buf, p.off + e.offset, e.bits, e.big_endian, self.value(e.value))
            return None
        if isinstance(e, N.PacketLoad):
            p = self.value(e.view)
            assert isinstance(t, T.IntT)
            return simpackets.load(p.buf, p.off + e.offset, t.bits, e.big_endian)
        if isinstance(e, N.Call):
            return self.call(e)
        if isinstance(e, (N.AtomicRMW, N.AtomicCmpXchg)):
            return self.atomic(e)
        raise NotImplementedError(f"value of {type(e).__name__}")

    def atomic(self, e: N.AtomicRMW | N.AtomicCmpXchg) -> int | None:
        """One CPU: an atomic operation is a read and a write. Operands are evaluated before the read,
        as in the compiled code."""
        t = e.place.type
        assert isinstance(t, T.IntT)  # atomics act on u32/u64/i32/i64 (frontend/atomics.py)
        p = self.address(e.place)
        if isinstance(e, N.AtomicCmpXchg):
            expected, new = self.value(e.expected), self.value(e.new)
            old = decode(t, p.buf, p.off)
            _store(p.buf, p.off, t, semantics.atomic_cmpxchg(old, expected, new, t))
            return old
        value = self.value(e.value)
        old = decode(t, p.buf, p.off)
        _store(p.buf, p.off, t, semantics.atomic_rmw(e.op, old, value, t))
        return None if e.type == T.VOID else old

    def binary(self, e: N.Binary) -> int:
        assert isinstance(e.type, T.IntT)  # arithmetic is on (promoted) integers
        return semantics.binary(e.op, self.value(e.left), self.value(e.right), e.type)

    def call(self, e: N.Call) -> Any:
        frame = _Frame(self.mod, self.ctx_obj)
        for p, a in zip(e.func.params, e.args):
            if T.is_memory(p.type):
                frame.vals[p] = Ptr(bytearray(self.memory(a)))
            else:
                frame.vals[p] = self.value(a)
        try:
            frame.block(e.func.body)
        except _Return as r:
            if r.value is None:
                return None
            if T.is_memory(e.type):
                return bytearray(r.value)
            return e.type.wrap(r.value) if isinstance(e.type, T.IntT) else r.value
        return None

    # ------------------------------------------------------------ helpers
    def arg_bytes(self, a: N.Expr) -> bytes:
        assert isinstance(a, N.AddrOf)
        v = a.value
        if T.is_memory(v.type):
            return self.memory(v)
        return encode(v.type, self.value(v))

    def helper(self, e: N.HelperCall) -> Any:
        h, args = e.helper, e.args
        name = h.name
        m = next((self.mod.maps[a.map.name] for a in args if isinstance(a, N.MapRef)), None)
        if name == "map_lookup_elem":
            assert m is not None  # map helpers take a map
            v = m._lookup(self.arg_bytes(args[1]))
            return None if v is None else Ptr(v)
        if name == "map_update_elem":
            assert m is not None  # map helpers take a map
            return m._update(self.arg_bytes(args[1]), self.arg_bytes(args[2]), self.value(args[3]))
        if name == "map_delete_elem":
            assert m is not None  # map helpers take a map
            return m._delete(self.arg_bytes(args[1]))
        if name in ("sock_hash_update", "sock_map_update"):
            assert m is not None  # map helpers take a map
            ctx = self.value(args[0])
            return m._update(self.arg_bytes(args[2]), ctx.socket, self.value(args[3]))
        if name in ("msg_redirect_hash", "msg_redirect_map", "sk_redirect_hash", "sk_redirect_map"):
            assert m is not None  # map helpers take a map
            ctx = self.value(args[0])
            # msg_redirect_hash takes a pointer to the key; msg_redirect_map a u32 index by value
            key = self.arg_bytes(args[2]) if isinstance(args[2], N.AddrOf) else \
                (self.value(args[2]) & 0xFFFFFFFF).to_bytes(4, "little")
            flags = self.value(args[3])
            if key in m.data:
                ctx.redirect = (m.decl.name, key, flags)
                return SK_PASS
            return SK_DROP
        if name == "sk_storage_get":
            assert m is not None  # local storage helpers take a map
            init = None if isinstance(args[2], N.Const) else self.arg_bytes(args[2])
            v = m._storage_get(self.value(args[1]), init, self.value(args[3]))
            return None if v is None else Ptr(v)
        if name == "sk_storage_delete":
            assert m is not None  # local storage helpers take a map
            return m._storage_delete(self.value(args[1]))
        if name == "ringbuf_output":
            assert m is not None  # map helpers take a map
            return m._output(self.arg_bytes(args[1]))
        if name == "ringbuf_reserve":
            assert m is not None  # map helpers take a map
            return m._reserve(self.value(args[1]))
        if name in ("ringbuf_submit", "ringbuf_discard"):
            p = self.value(args[0])
            sim = next(s for s in self.mod.maps.values() if any(r is p.buf for r in s.reserved))
            return sim._release(p.buf, name == "ringbuf_submit")
        if name == "trace_printk":
            fmt_arg = args[0]
            assert isinstance(fmt_arg, N.FormatString)
            fmt = fmt_arg.data[:-1].decode()
            vals = [self.value(a) for a in args[1:]]
            text = fmt.replace("%ll", "%").replace("%l", "%") % tuple(vals) if vals else fmt
            self.mod.printk.append(text)
            return len(text)
        if name == "ktime_get_ns":
            return self.mod.clock_ns if self.mod.clock_ns is not None else time.monotonic_ns()
        if name == "get_socket_cookie":
            return self.value(args[0]).cookie
        if name == "get_netns_cookie":
            return self.value(args[0]).netns_cookie
        if name == "sock_ops_cb_flags_set":
            self.value(args[0]).cb_flags = self.value(args[1])
            return 0
        if name in ("msg_pull_data", "msg_push_data", "msg_pop_data", "skb_pull_data"):
            return getattr(simpackets, name)(self.value(args[0]), *(self.value(a) for a in args[1:]))
        if name == "skb_load_bytes":
            buf = args[2]
            assert isinstance(buf, N.AddrOf)
            skb, offset, length = self.value(args[0]), self.value(args[1]), self.value(args[3])
            place = buf.value
            if isinstance(place, N.VarRef) and not T.is_memory(place.type):  # an integer local: held as an int
                tmp = bytearray(place.type.size)
                rc = simpackets.skb_load_bytes(skb, offset, tmp, 0, length)
                self.vals[place.var] = decode(place.type, tmp)
                return rc
            to = self.address(place)
            return simpackets.skb_load_bytes(skb, offset, to.buf, to.off, length)
        if name in ("msg_apply_bytes", "msg_cork_bytes"):
            setattr(self.value(args[0]), name[4:], self.value(args[1]))
            return 0
        if name == "get_current_pid_tgid":
            return getattr(self.ctx_obj, "pid_tgid", 0)
        if name == "get_current_cgroup_id":
            return getattr(self.ctx_obj, "cgroup_id", 0)
        if name == "skb_cgroup_id":  # the cgroup of the packet's socket: testing.cgroup_skb(..., cgroup_id=N)
            return getattr(self.value(args[0]), "cgroup_id", 0)
        if name in ("setsockopt", "getsockopt"):
            return self.sockopt(e)
        if name in ("xdp_load_bytes", "xdp_store_bytes"):  # (ctx, offset, buf): the frame of testing.xdp(data=...)
            frame = self.value(args[0]).frame
            off, buf = self.value(args[1]), args[2]
            assert isinstance(buf, N.AddrOf)  # a "data" argument: a struct or array, its size passed with it
            n = buf.value.type.size
            if off < 0 or off + n > len(frame):
                return -14  # -EFAULT: outside the packet
            if name == "xdp_store_bytes":
                frame[off:off + n] = self.memory(buf.value)
            else:
                p = self.address(buf.value)
                p.buf[p.off:p.off + n] = frame[off:off + n]
            return 0
        if name == "xdp_get_buff_len":
            return len(self.value(args[0]).frame)
        if name == "bind":  # connect4/6: the address a program binds the socket to, as bytes (a sockaddr_in/_in6)
            addr = args[1]
            assert isinstance(addr, N.AddrOf)  # a "data" argument: a struct, its size passed with it
            self.value(args[0]).bound = self.memory(addr.value) if T.is_memory(addr.value.type) else \
                encode(addr.value.type, self.value(addr.value))
            return 0
        if name == "get_retval":  # the error the application's call will return (0: none); set_retval changes it
            return self.ctx_obj.call_retval
        if name == "set_retval":
            self.ctx_obj.call_retval = T.I32.wrap(self.value(args[0]))
            return 0
        raise NotSimulated(f"{e.loc}: bpf_{name} is not simulated by pybpfgen.testing; test this path on the "
                           "kernel (pybpfgen load, or BPF_PROG_TEST_RUN)")

    def sockopt(self, e: N.HelperCall) -> Any:
        """bpf_setsockopt records the value in the context's ``sockopts``; bpf_getsockopt reads it back (the
        compiler has checked the option and the value's type). Without a full socket (``sk=None``: a request
        socket, as in BPF_SOCK_OPS_TIMEOUT_INIT) both fail, as in the kernel: -EINVAL, and None. Where the kernel
        takes the context's socket (cgroup_setsockopt: ``bpf_setsockopt(ctx.sk, ...)``), the first argument is that
        :class:`Socket`, and the options are its own."""
        ctx, level, optname = self.value(e.args[0]), self.value(e.args[1]), self.value(e.args[2])
        key = (level, optname)
        if getattr(ctx, "sk", True) is None:
            return -EINVAL if e.helper.name == "setsockopt" else None
        if e.helper.name == "setsockopt":
            a = e.args[3]
            if isinstance(a, N.FormatString):  # a name: TCP_CONGESTION
                ctx.sockopts[key] = a.data[:-1].decode()
            else:
                assert isinstance(a, N.AddrOf)  # an int option's value (frontend/helper_calls.py)
                ctx.sockopts[key] = self.value(a.value)
            return 0
        o = SOCKOPTS.lookup(level, optname)
        assert o is not None and isinstance(e.type, T.OptRefT)  # the compiler checked the option
        if key not in ctx.sockopts:
            raise SimulationError(
                f"bpf_getsockopt({SOCKOPTS.LEVELS[level]}, {o.name}): the simulated socket has no value for "
                f"{o.name}; give one: testing.{_constructor(self.ctx_obj.progtype)}(..., sockopts={{({SOCKOPTS.LEVELS[level]}, {o.name}): "
                f"{'1' if o.kind == 'int' else repr('cubic')}}})")
        v = ctx.sockopts[key]
        if o.kind == "str":
            return Ptr(bytearray(str(v).encode()[:o.size - 1].ljust(o.size, b"\0")))
        return Ptr(bytearray(encode(e.type.target, v)))


def load(path: str) -> Module:
    """Parse and check a DSL module (raises CompileError on user errors) and return it ready to run."""
    return Module(parse_module(path))


__all__ += ["CompileError", "Ptr"]
_ = struct  # keep the import for users who build raw contexts
