# Over 500 lines: the whole DSL surface that `from pybpfgen.lang import *` brings, in one file that editors and mypy read; half is the generated helper list.
"""The pybpfgen DSL: what a BPF program module imports.

A DSL module is ordinary Python. Importing it only declares things (types, maps,
programs); ``pybpfgen compile`` reads its source and compiles the programs to BPF.
Everything here is real Python, so editors and type checkers understand it::

    from pybpfgen.lang import *

    class Key(Struct):
        port: u32

    counts = Hash(key=Key, value=u64, max_entries=1024)

    @sock_ops
    def count(ctx: SockOps) -> int:
        ...
"""
from __future__ import annotations

from enum import IntEnum
from typing import Any, Callable, Generic, NoReturn, Optional, TypeVar, overload

from .target.contexts import CONTEXTS as _CONTEXTS, SOCK as _SOCK
from .target.maps import BY_CLASS as _MAP_KINDS

__all__ = [
    "u8", "u16", "u32", "u64", "i8", "i16", "i32", "i64",
    "Struct", "Ref", "IntEnum", "Global", "Config", "Sock",
    "Hash", "LRUHash", "PerCPUHash", "LRUPerCPUHash", "Array", "PerCPUArray", "LPMTrie", "SockHash", "SockMap", "RingBuf",
    "SkStorage",
    "sock_ops", "sk_msg", "socket_filter", "cgroup_skb_ingress", "cgroup_skb_egress", "syscall",
    "cgroup_connect4", "cgroup_connect6", "cgroup_sendmsg4", "cgroup_sendmsg6", "cgroup_recvmsg4", "cgroup_recvmsg6",
    "cgroup_getpeername4", "cgroup_getpeername6", "cgroup_getsockname4", "cgroup_getsockname6",
    "cgroup_bind4", "cgroup_bind6", "cgroup_getsockopt", "cgroup_setsockopt",
    "sk_skb_stream_parser", "sk_skb_stream_verdict", "xdp", "tc_ingress", "tc_egress",
    "SockOps", "SkMsg", "SkBuff", "XdpMd", "SockAddr", "SockOpt",
    "bpf_printk", "atomic_add", "atomic_fetch_add", "atomic_xchg", "atomic_cmpxchg",
    "bpf_map_lookup_elem", "bpf_map_update_elem", "bpf_map_delete_elem",
    "bpf_sock_hash_update", "bpf_msg_redirect_hash",
]

# ----------------------------------------------------------------- integer types


class ArrayType:
    """``u32[4]``: a fixed-size array type, usable in annotations and struct fields."""

    def __init__(self, elem: Any, n: int):
        self.elem, self.n = elem, n

    def __call__(self, values: Any = ()) -> list:
        out = [v for v in values] + [self.elem() if isinstance(self.elem, type) else 0] * (self.n - len(values))
        return out[: self.n]

    def __repr__(self) -> str:
        return f"{getattr(self.elem, '__name__', self.elem)}[{self.n}]"


class _Indexable(type):
    def __getitem__(cls, n: int) -> ArrayType:
        return ArrayType(cls, n)


class _FixedInt(int, metaclass=_Indexable):
    """An integer of fixed width; constructing one wraps like a C conversion."""

    _bits = 64
    _signed = False

    def __new__(cls, value: int = 0):
        v = int(value) & ((1 << cls._bits) - 1)
        if cls._signed and v >> (cls._bits - 1):
            v -= 1 << cls._bits
        return super().__new__(cls, v)


class u8(_FixedInt):
    """8-bit unsigned integer."""
    _bits, _signed = 8, False


class u16(_FixedInt):
    """16-bit unsigned integer."""
    _bits, _signed = 16, False


class u32(_FixedInt):
    """32-bit unsigned integer."""
    _bits, _signed = 32, False


class u64(_FixedInt):
    """64-bit unsigned integer."""
    _bits, _signed = 64, False


class i8(_FixedInt):
    """8-bit signed integer."""
    _bits, _signed = 8, True


class i16(_FixedInt):
    """16-bit signed integer."""
    _bits, _signed = 16, True


class i32(_FixedInt):
    """32-bit signed integer."""
    _bits, _signed = 32, True


class i64(_FixedInt):
    """64-bit signed integer."""
    _bits, _signed = 64, True

# ----------------------------------------------------------------- structs


class Struct(metaclass=_Indexable):
    """Base class of C-layout structs: annotate fields with integer or struct types.

    Fields are laid out in order with natural alignment; padding is zero.
    Construct with positional or keyword arguments; missing fields are zero.
    """

    def __init__(self, *args: Any, **kwargs: Any):
        names = list(getattr(type(self), "__annotations__", {}))
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes at most {len(names)} fields")
        values = dict(zip(names, args))
        for k, v in kwargs.items():
            if k not in names:
                raise TypeError(f"{type(self).__name__} has no field {k!r}")
            values[k] = v
        for n in names:
            setattr(self, n, values.get(n, 0))

    def _key(self) -> tuple:
        return tuple(getattr(self, n) for n in getattr(type(self), "__annotations__", {}))

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._key() == other._key()  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash((type(self), self._key()))

    def __repr__(self) -> str:
        body = ", ".join(f"{n}={getattr(self, n)!r}" for n in getattr(type(self), "__annotations__", {}))
        return f"{type(self).__name__}({body})"


# ----------------------------------------------------------------- maps

K = TypeVar("K")
V = TypeVar("V")
_C = TypeVar("_C", bound=type)


class Ref(Generic[V]):
    """A reference to a map value, returned by ``lookup``; read or write it through ``.value``."""

    def __init__(self, value: V):
        self.value = value


def _map_kind(cls: _C) -> _C:
    """The BPF map type of a map class, from pybpfgen/target/maps.py (the one table of map kinds)."""
    cls.map_type = _MAP_KINDS[cls.__name__].map_type  # type: ignore[attr-defined]
    return cls


class _Map:
    """A map declaration. Its methods are what programs call; they run in a compiled program (or in
    pybpfgen.testing, the one simulation of maps and helpers), not in plain Python."""

    map_type = 0  # BPF_MAP_TYPE_*: set by @_map_kind

    def __init__(self, *, key: Any, value: Any, max_entries: int, flags: int = 0):
        self.key, self.value, self.max_entries, self.flags = key, value, max_entries, flags

    def lookup(self, key: Any) -> Optional[Ref[Any]]:
        """``bpf_map_lookup_elem``: a reference to the value, or None. Check it before use."""
        _compiled_only(f"{type(self).__name__}.lookup")

    def update(self, key: Any, value: Any, flags: int = 0) -> int:
        """``bpf_map_update_elem``: 0 on success, a negative errno otherwise."""
        _compiled_only(f"{type(self).__name__}.update")

    def delete(self, key: Any) -> int:
        """``bpf_map_delete_elem``: 0 on success, -ENOENT when absent."""
        _compiled_only(f"{type(self).__name__}.delete")

    def __contains__(self, key: Any) -> bool:
        """``key in m``: whether ``m.lookup(key)`` would find an entry."""
        _compiled_only(f"`in` {type(self).__name__}")


@_map_kind
class Hash(_Map):
    """``BPF_MAP_TYPE_HASH``."""


@_map_kind
class LRUHash(_Map):
    """``BPF_MAP_TYPE_LRU_HASH``: a hash that evicts the least recently used entry when full."""


@_map_kind
class PerCPUHash(_Map):
    """``BPF_MAP_TYPE_PERCPU_HASH``: a hash with one value per CPU."""


@_map_kind
class LRUPerCPUHash(_Map):
    """``BPF_MAP_TYPE_LRU_PERCPU_HASH``: a hash with one value per CPU that evicts the least recently used
    entry when full."""


@_map_kind
class LPMTrie(_Map):
    """``BPF_MAP_TYPE_LPM_TRIE``: longest-prefix match. The key is a Struct whose first field is
    ``prefixlen: u32`` followed by the address bytes (e.g. ``addr: u32`` for IPv4, network order).
    ``BPF_F_NO_PREALLOC`` is added to the flags (the kernel requires it)."""


_E = TypeVar("_E")
_R = TypeVar("_R")


@_map_kind
class RingBuf(Generic[_E]):
    """``BPF_MAP_TYPE_RINGBUF``: a ring buffer of ``max_entries`` bytes (a power of 2, multiple of
    the page size) that programs write records into, with ``output(value)`` (a copy) or
    ``ev = reserve(Event)`` / ``submit(ev)`` (in place). ``event=``: the records' type (a Struct, an
    integer or an array), checked by the compiler and recorded in the object for user space
    (``pybpfgen events``)."""

    map_type = 0  # BPF_MAP_TYPE_*: set by @_map_kind

    # (for type checkers and editors: RingBuf(event=Event) is a RingBuf[Event], whose reserve() is an
    # Optional[Event], so that a misspelt field of a reservation is reported; the compiler checks the rest)
    @overload
    def __init__(self: "RingBuf[Any]", *, max_entries: int) -> None: ...

    @overload
    def __init__(self, *, max_entries: int, event: type[_E]) -> None: ...

    def __init__(self, *, max_entries: int, event: Any = None) -> None:
        self.max_entries = max_entries
        self.event = event

    def output(self, value: Any, flags: int = 0) -> int:
        """``bpf_ringbuf_output``: copy ``value`` (a struct or integer) into the ring buffer."""
        _compiled_only("RingBuf.output")

    @overload
    def reserve(self, event: type[_R]) -> Optional[_R]: ...

    @overload
    def reserve(self) -> Optional[_E]: ...

    def reserve(self, event: Any = None) -> Any:
        """``bpf_ringbuf_reserve``: room for one record in the ring buffer, or None when it is full. Check it
        against None, fill its fields, then ``submit`` it (or ``discard`` it) exactly once on every path."""
        _compiled_only("RingBuf.reserve")

    def submit(self, event: Any, flags: int = 0) -> None:
        """``bpf_ringbuf_submit``: publish a record obtained from ``reserve``."""
        _compiled_only("RingBuf.submit")

    def discard(self, event: Any, flags: int = 0) -> None:
        """``bpf_ringbuf_discard``: give back a record obtained from ``reserve`` without publishing it."""
        _compiled_only("RingBuf.discard")


@_map_kind
class Array(_Map):
    """``BPF_MAP_TYPE_ARRAY``: u32 keys 0..max_entries-1, zero-initialised values."""

    def __init__(self, *, value: Any, max_entries: int, flags: int = 0):
        super().__init__(key=u32, value=value, max_entries=max_entries, flags=flags)


@_map_kind
class PerCPUArray(Array):
    """``BPF_MAP_TYPE_PERCPU_ARRAY``: one value per CPU; no atomics needed to update it."""


@_map_kind
class SockHash(_Map):
    """``BPF_MAP_TYPE_SOCKHASH``: sockets by key, for redirecting messages between them."""

    def __init__(self, *, key: Any, max_entries: int, value: Any = u32, flags: int = 0):
        super().__init__(key=key, value=value, max_entries=max_entries, flags=flags)

    def update(self, ctx: "SockOps", key: Any, flags: int = 0) -> int:  # type: ignore[override]
        """``bpf_sock_hash_update``: add the socket of a sock_ops context under ``key``."""
        _compiled_only("SockHash.update")

    def redirect(self, msg: "SkMsg", key: Any, flags: int = 0) -> int:
        """``bpf_msg_redirect_hash``: send this message to the socket under ``key``.

        Returns SK_PASS when the socket was found (the message will be redirected),
        SK_DROP otherwise. With ``BPF_F_INGRESS`` the message lands in the peer's
        receive queue.
        """
        _compiled_only("SockHash.redirect")


@_map_kind
class SockMap(_Map):
    """``BPF_MAP_TYPE_SOCKMAP``: sockets by u32 index."""

    def __init__(self, *, max_entries: int, value: Any = u32, flags: int = 0):
        super().__init__(key=u32, value=value, max_entries=max_entries, flags=flags)

    def update(self, ctx: "SockOps", key: int, flags: int = 0) -> int:  # type: ignore[override]
        """``bpf_sock_map_update``: add the socket of a sock_ops context at index ``key``."""
        _compiled_only("SockMap.update")

    def redirect(self, msg: "SkMsg", key: int, flags: int = 0) -> int:
        """``bpf_msg_redirect_map``: send this message to the socket at index ``key``."""
        _compiled_only("SockMap.redirect")


class Sock:
    """A socket (``struct bpf_sock *``): what ``ctx.sk`` of a sock_ops or sk_msg program gives. Read its fields
    (ports in host byte order, addresses in network byte order), pass it to ``SkStorage`` methods and to helpers
    that take a socket; it cannot be stored in a map or a struct, compared or computed with (the verifier forbids
    it). sock_ops' ``ctx.sk`` may be None: check it first."""

    bound_dev_if: u32
    family: u32
    type: u32
    protocol: u32
    mark: u32
    priority: u32
    src_ip4: u32
    src_ip6: list[u32]  # u32[4]
    src_port: u32
    dst_port: u32
    dst_ip4: u32
    dst_ip6: list[u32]  # u32[4]
    state: u32
    rx_queue_mapping: u32
    __ctx__ = _SOCK  # its fields: pybpfgen/target/contexts.py (pybpfgen.testing.Socket simulates one)


@_map_kind
class SkStorage:
    """``BPF_MAP_TYPE_SK_STORAGE``: one ``value`` per socket, stored with the socket and freed with it
    (no key to choose, no max_entries, nothing to evict). ``BPF_F_NO_PREALLOC`` is added to the flags (the
    kernel requires it)."""

    map_type = 0  # BPF_MAP_TYPE_*: set by @_map_kind

    def __init__(self, *, value: Any, flags: int = 0):
        self.value, self.flags = value, flags

    def get(self, sk: Sock, create: bool = False) -> Optional[Ref[Any]]:
        """``bpf_sk_storage_get``: a reference to this socket's value, or None; with ``create=True`` a zeroed
        value is created when the socket has none (``BPF_SK_STORAGE_GET_F_CREATE``; the result can still be
        None, e.g. out of memory). Check it before use."""
        _compiled_only("SkStorage.get")

    def get_or_create(self, sk: Sock, init: Any = None) -> Optional[Ref[Any]]:
        """``bpf_sk_storage_get`` with ``BPF_SK_STORAGE_GET_F_CREATE`` and ``init`` as the new value."""
        _compiled_only("SkStorage.get_or_create")

    def delete(self, sk: Sock) -> int:
        """``bpf_sk_storage_delete``: 0, or -ENOENT when the socket has no value."""
        _compiled_only("SkStorage.delete")


# ----------------------------------------------------------------- global variables


class Global(Generic[V]):
    """A global variable shared by the programs of a module (``.bss`` when zero, else ``.data``).
    Read and write it through ``.value``; user space can read it from the pinned map."""

    def __init__(self, type: Any, value: Any = 0):
        self.type, self.value = type, value


class Config(Generic[V]):
    """A read-only global (``.rodata``) that the loader may set before loading
    (``pybpfgen load --set NAME=VALUE``). Programs read it through ``.value``."""

    def __init__(self, type: Any, value: Any = 0):
        self.type, self.value = type, value


# ----------------------------------------------------------------- raw helpers


def bpf_map_lookup_elem(map: _Map, key: Any) -> Optional[Ref]:
    return map.lookup(key)


def bpf_map_update_elem(map: _Map, key: Any, value: Any, flags: int = 0) -> int:
    return map.update(key, value, flags)


def bpf_map_delete_elem(map: _Map, key: Any) -> int:
    return map.delete(key)


def bpf_sock_hash_update(ctx: "SockOps", map: SockHash, key: Any, flags: int = 0) -> int:
    return map.update(ctx, key, flags)


def bpf_msg_redirect_hash(msg: "SkMsg", map: SockHash, key: Any, flags: int = 0) -> int:
    return map.redirect(msg, key, flags)


# ----------------------------------------------------------------- program types and contexts
# A context class names the kernel struct of pybpfgen/target/contexts.py (the one table of context fields, which
# the compiler reads); its annotations repeat the field names and types for editors and type checkers, and
# tests/compiler/test_contexts.py checks that they match the table.


def _context(cls: _C) -> _C:
    cls.__ctx__ = _CONTEXTS[cls.__name__]  # type: ignore[attr-defined]
    return cls


class View:
    """``n`` bytes of a message or packet, proved present: what ``ctx.bytes(offset, n)`` gives after its None check
    (docs/language.md, "Packet and message bytes"). Offsets are constants below ``n``, checked at compile time."""

    def __getitem__(self, i: int) -> int:
        """Byte ``i`` (a u8)."""
        raise NotImplementedError("views exist in compiled programs and in pybpfgen.testing")

    def __setitem__(self, i: int, value: int) -> None:
        """Write byte ``i`` (program types that may write their packet data: sk_msg)."""
        raise NotImplementedError("views exist in compiled programs and in pybpfgen.testing")

    def u8(self, offset: int) -> int:
        """The byte at ``offset``."""
        raise NotImplementedError

    def u16(self, offset: int) -> int:
        """The u16 at ``offset``, in the host's byte order (``u16be``: network byte order)."""
        raise NotImplementedError

    def u32(self, offset: int) -> int:
        """The u32 at ``offset``, in the host's byte order (``u32be``: network byte order)."""
        raise NotImplementedError

    def u64(self, offset: int) -> int:
        """The u64 at ``offset``, in the host's byte order (``u64be``: network byte order)."""
        raise NotImplementedError

    def u16be(self, offset: int) -> int:
        """The big-endian (network order) u16 at ``offset``."""
        raise NotImplementedError

    def u32be(self, offset: int) -> int:
        """The big-endian (network order) u32 at ``offset``: ``0x47455420`` for ``b"GET "``."""
        raise NotImplementedError

    def u64be(self, offset: int) -> int:
        """The big-endian (network order) u64 at ``offset``."""
        raise NotImplementedError

    def set_u8(self, offset: int, value: int) -> None:
        """Write the byte at ``offset`` (program types that may write their packet data)."""
        raise NotImplementedError

    def set_u16(self, offset: int, value: int) -> None:
        """Write a u16 at ``offset`` in the host's byte order."""
        raise NotImplementedError

    def set_u32(self, offset: int, value: int) -> None:
        """Write a u32 at ``offset`` in the host's byte order."""
        raise NotImplementedError

    def set_u64(self, offset: int, value: int) -> None:
        """Write a u64 at ``offset`` in the host's byte order."""
        raise NotImplementedError

    def set_u16be(self, offset: int, value: int) -> None:
        """Write a u16 at ``offset`` in network byte order (a port)."""
        raise NotImplementedError

    def set_u32be(self, offset: int, value: int) -> None:
        """Write a u32 at ``offset`` in network byte order."""
        raise NotImplementedError

    def set_u64be(self, offset: int, value: int) -> None:
        """Write a u64 at ``offset`` in network byte order."""
        raise NotImplementedError


@_context
class SockOps:
    """Context of a sock_ops program (``struct bpf_sock_ops``). Ports are in host byte order,
    IPv4/IPv6 addresses in network byte order. ``reply`` is writable."""

    op: u32
    reply: u32
    args0: u32
    args1: u32
    args2: u32
    args3: u32
    family: u32
    remote_ip4: u32
    local_ip4: u32
    remote_ip6: list[u32]  # u32[4]
    local_ip6: list[u32]  # u32[4]
    remote_port: u32
    local_port: u32
    is_fullsock: u32
    snd_cwnd: u32
    srtt_us: u32
    cb_flags: u32
    state: u32
    rtt_min: u32
    snd_ssthresh: u32
    rcv_nxt: u32
    snd_nxt: u32
    snd_una: u32
    mss_cache: u32
    ecn_flags: u32
    rate_delivered: u32
    rate_interval_us: u32
    bytes_received: u64
    bytes_acked: u64
    sk: Optional[Sock]


@_context
class SkMsg:
    """Context of an sk_msg program (``struct sk_msg_md``). Ports are in host byte order,
    IPv4/IPv6 addresses in network byte order. ``data``/``data_end`` are packet pointers: read the message's bytes
    with ``msg.bytes(offset, n)``."""

    data: u64
    data_end: u64
    family: u32
    remote_ip4: u32
    local_ip4: u32
    remote_ip6: list[u32]  # u32[4]
    local_ip6: list[u32]  # u32[4]
    remote_port: u32
    local_port: u32
    size: u32
    sk: Sock

    def bytes(self, offset: int, n: int) -> Optional[View]:
        """``n`` bytes of the message at ``offset`` from its data (after ``bpf_msg_pull_data(msg, start, end)``:
        from byte ``start``), or None when the data ends before them. Check it for None before reading."""
        raise NotImplementedError("views exist in compiled programs and in pybpfgen.testing")


@_context
class SkBuff:
    """Context of a socket_filter, cgroup_skb, tc or sk_skb program (``struct __sk_buff``). Ports are in host
    byte order, IPv4/IPv6 addresses in network byte order. Which fields a program type may read and write is the
    kernel's (target/contexts.py): tc programs may not read the socket fields (family .. local_port), sk_skb
    programs may not read ``mark``; tc programs may write ``mark``, ``priority``, ``tc_index``, ``tc_classid``,
    ``queue_mapping``. ``data``/``data_end``/``data_meta`` are packet pointers."""

    len: u32
    pkt_type: u32
    mark: u32
    queue_mapping: u32
    protocol: u32
    vlan_present: u32
    vlan_tci: u32
    vlan_proto: u32
    priority: u32
    ingress_ifindex: u32
    ifindex: u32
    tc_index: u32
    hash: u32
    tc_classid: u32
    data: u32
    data_end: u32
    napi_id: u32
    family: u32
    remote_ip4: u32
    local_ip4: u32
    remote_ip6: list[u32]  # u32[4]
    local_ip6: list[u32]  # u32[4]
    remote_port: u32
    local_port: u32
    data_meta: u32
    wire_len: u32
    gso_segs: u32
    gso_size: u32

    def bytes(self, offset: int, n: int) -> Optional[View]:
        """``n`` bytes of the packet at ``offset`` from its data (cgroup_skb: the IP header, read-only; tc: the
        Ethernet header, sk_skb: the stream's data, both writable), or None when the linear data ends before them.
        Check it for None before reading."""
        raise NotImplementedError("views exist in compiled programs and in pybpfgen.testing")


@_context
class XdpMd:
    """Context of an XDP program (``struct xdp_md``): ``data``/``data_end``/``data_meta`` are packet pointers;
    ``ingress_ifindex`` and ``rx_queue_index`` say where the packet arrived."""

    data: u32
    data_end: u32
    data_meta: u32
    ingress_ifindex: u32
    rx_queue_index: u32
    egress_ifindex: u32

    def bytes(self, offset: int, n: int) -> Optional[View]:
        """``n`` bytes of the frame at ``offset`` from its data (the Ethernet header), or None when it ends before
        them (readable and writable). Check it for None before reading."""
        raise NotImplementedError("views exist in compiled programs and in pybpfgen.testing")


@_context
class SockAddr:
    """Context of the cgroup sock_addr programs (``struct bpf_sock_addr``): the address an application passes
    to connect(), sendmsg() or bind(), or will see from getpeername(), getsockname() or recvmsg(). The program
    may change it: ``user_ip4``/``user_ip6`` (network byte order) and ``user_port`` (host byte order, like every
    port), and a sendmsg program the source address ``msg_src_ip4``/``msg_src_ip6``. An IPv4 hook (``*4``) reads
    the IPv4 fields only, an IPv6 hook the IPv6 ones."""

    user_family: u32
    user_ip4: u32
    user_ip6: list[u32]  # u32[4]
    user_port: u32
    family: u32
    type: u32
    protocol: u32
    msg_src_ip4: u32
    msg_src_ip6: list[u32]  # u32[4]
    sk: Sock


@_context
class SockOpt:
    """Context of cgroup getsockopt/setsockopt programs (``struct bpf_sockopt``): the option's ``level``,
    ``optname`` and ``optlen``, and for getsockopt the kernel's result ``retval``. A setsockopt program may
    change ``level``, ``optname`` and ``optlen`` (-1: the kernel skips its setsockopt), a getsockopt program
    ``optlen`` and ``retval``."""

    sk: Sock
    optval: u64  # packet pointers: the option's bytes (not integers programs may read)
    optval_end: u64
    level: i32
    optname: i32
    optlen: i32
    retval: i32


F = TypeVar("F", bound=Callable)


def sock_ops(fn: F) -> F:
    """Declare a sock_ops program (attached to a cgroup; runs on TCP events)."""
    fn.__pybpfgen_progtype__ = "sock_ops"  # type: ignore[attr-defined]
    return fn


def sk_msg(map: SockHash) -> Callable[[F], F]:
    """Declare an sk_msg program attached to ``map`` (a SockHash); runs on every sendmsg."""

    def deco(fn: F) -> F:
        fn.__pybpfgen_progtype__ = "sk_msg"  # type: ignore[attr-defined]
        fn.__pybpfgen_map__ = map  # type: ignore[attr-defined]
        return fn

    return deco


def socket_filter(fn: F) -> F:
    """Declare a socket_filter program (returns how many bytes of the packet to keep)."""
    fn.__pybpfgen_progtype__ = "socket_filter"  # type: ignore[attr-defined]
    return fn


def cgroup_skb_ingress(fn: F) -> F:
    """Declare a cgroup_skb program on the ingress of a cgroup (attached to it; runs on every packet its sockets
    receive). Return 1 to let the packet through, 0 to drop it."""
    fn.__pybpfgen_progtype__ = "cgroup_skb_ingress"  # type: ignore[attr-defined]
    return fn


def cgroup_skb_egress(fn: F) -> F:
    """Declare a cgroup_skb program on the egress of a cgroup (attached to it; runs on every packet its sockets
    send). Return 1 to let the packet through, 0 to drop it (the sender's call fails with EPERM)."""
    fn.__pybpfgen_progtype__ = "cgroup_skb_egress"  # type: ignore[attr-defined]
    return fn


def _progtype(fn: F, progtype: str) -> F:
    fn.__pybpfgen_progtype__ = progtype  # type: ignore[attr-defined]
    return fn


# cgroup sock_addr hooks: the context is SockAddr; each is attached (a bpf_link) to the cgroup of `load --cgroup`
def cgroup_connect4(fn: F) -> F:
    """Declare a program run on connect() of an IPv4 socket in the cgroup (TCP, or UDP), before the kernel
    connects: it may change the destination (``user_ip4``, ``user_port``). Return 1 to let connect() proceed,
    0 to refuse it (EPERM)."""
    return _progtype(fn, "cgroup_connect4")


def cgroup_connect6(fn: F) -> F:
    """Declare a program run on connect() of an IPv6 socket in the cgroup: it may change the destination
    (``user_ip6``, ``user_port``). Return 1 to let connect() proceed, 0 to refuse it (EPERM)."""
    return _progtype(fn, "cgroup_connect6")


def cgroup_sendmsg4(fn: F) -> F:
    """Declare a program run on every sendmsg()/sendto() of an unconnected IPv4 UDP socket in the cgroup: it
    may change the destination and the source (``msg_src_ip4``). Return 1 to send, 0 to refuse (EPERM)."""
    return _progtype(fn, "cgroup_sendmsg4")


def cgroup_sendmsg6(fn: F) -> F:
    """Declare a program run on every sendmsg()/sendto() of an unconnected IPv6 UDP socket in the cgroup (see
    :func:`cgroup_sendmsg4`)."""
    return _progtype(fn, "cgroup_sendmsg6")


def cgroup_recvmsg4(fn: F) -> F:
    """Declare a program run on recvmsg()/recvfrom() of an IPv4 UDP socket in the cgroup: it may change the
    source address the application sees. Return 1."""
    return _progtype(fn, "cgroup_recvmsg4")


def cgroup_recvmsg6(fn: F) -> F:
    """Declare a program run on recvmsg()/recvfrom() of an IPv6 UDP socket in the cgroup (see
    :func:`cgroup_recvmsg4`). Return 1."""
    return _progtype(fn, "cgroup_recvmsg6")


def cgroup_getpeername4(fn: F) -> F:
    """Declare a program run on getpeername() of an IPv4 socket in the cgroup: it may change the peer address
    the application sees (show it the address it connected to, not the one a connect4 program chose). Return 1."""
    return _progtype(fn, "cgroup_getpeername4")


def cgroup_getpeername6(fn: F) -> F:
    """Declare a program run on getpeername() of an IPv6 socket in the cgroup (see
    :func:`cgroup_getpeername4`). Return 1."""
    return _progtype(fn, "cgroup_getpeername6")


def cgroup_getsockname4(fn: F) -> F:
    """Declare a program run on getsockname() of an IPv4 socket in the cgroup: it may change the local address
    the application sees. Return 1."""
    return _progtype(fn, "cgroup_getsockname4")


def cgroup_getsockname6(fn: F) -> F:
    """Declare a program run on getsockname() of an IPv6 socket in the cgroup. Return 1."""
    return _progtype(fn, "cgroup_getsockname6")


def cgroup_bind4(fn: F) -> F:
    """Declare a program run on bind() of an IPv4 socket in the cgroup: it may change the address bound to.
    Return 1 to let bind() proceed, 0 to refuse it (EPERM), 3 to also skip the CAP_NET_BIND_SERVICE check."""
    return _progtype(fn, "cgroup_bind4")


def cgroup_bind6(fn: F) -> F:
    """Declare a program run on bind() of an IPv6 socket in the cgroup (see :func:`cgroup_bind4`)."""
    return _progtype(fn, "cgroup_bind6")


# cgroup sockopt hooks: the context is SockOpt
def cgroup_getsockopt(fn: F) -> F:
    """Declare a program run after the kernel's getsockopt() for sockets in the cgroup: it may change the
    result (``retval``, ``optlen``). Return 1 to let the call return, 0 to make it fail with EPERM."""
    return _progtype(fn, "cgroup_getsockopt")


def cgroup_setsockopt(fn: F) -> F:
    """Declare a program run before the kernel's setsockopt() for sockets in the cgroup: it may change the
    option (``level``, ``optname``, ``optlen``; ``optlen = -1``: the kernel skips it and the call succeeds).
    Return 1 to let the call proceed, 0 to make it fail with EPERM."""
    return _progtype(fn, "cgroup_setsockopt")


def sk_skb_stream_parser(map: SockMap | SockHash) -> Callable[[F], F]:
    """Declare an sk_skb stream parser attached to ``map`` (a SockMap or SockHash): runs on the data its sockets
    receive and returns the length of the next message (``ctx.len``: all of it), 0 to wait for more data."""

    def deco(fn: F) -> F:
        fn.__pybpfgen_progtype__ = "sk_skb_stream_parser"  # type: ignore[attr-defined]
        fn.__pybpfgen_map__ = map  # type: ignore[attr-defined]
        return fn

    return deco


def sk_skb_stream_verdict(map: SockMap | SockHash) -> Callable[[F], F]:
    """Declare an sk_skb stream verdict attached to ``map`` (a SockMap or SockHash): runs on each message its
    sockets receive; SK_PASS delivers it (or redirects it after ``bpf_sk_redirect_map``), SK_DROP drops it."""

    def deco(fn: F) -> F:
        fn.__pybpfgen_progtype__ = "sk_skb_stream_verdict"  # type: ignore[attr-defined]
        fn.__pybpfgen_map__ = map  # type: ignore[attr-defined]
        return fn

    return deco


def xdp(fn: F) -> F:
    """Declare an XDP program (attached to a network interface: ``pybpfgen load --ifname DEV``); runs on every
    packet the interface receives, before the kernel's stack. Return XDP_PASS, XDP_DROP, XDP_TX, ..."""
    fn.__pybpfgen_progtype__ = "xdp"  # type: ignore[attr-defined]
    return fn


def tc_ingress(fn: F) -> F:
    """Declare a tc program on the ingress of a network interface (a tcx link: ``pybpfgen load --ifname DEV``).
    Return TC_ACT_OK to let the packet through, TC_ACT_SHOT to drop it, TCX_NEXT to let the next program decide."""
    fn.__pybpfgen_progtype__ = "tc_ingress"  # type: ignore[attr-defined]
    return fn


def tc_egress(fn: F) -> F:
    """Declare a tc program on the egress of a network interface (a tcx link: ``pybpfgen load --ifname DEV``).
    Return TC_ACT_OK to let the packet through, TC_ACT_SHOT to drop it, TCX_NEXT to let the next program decide."""
    fn.__pybpfgen_progtype__ = "tc_egress"  # type: ignore[attr-defined]
    return fn


def syscall(fn: F) -> F:
    """Declare a syscall program: its context is a pointer to a Struct of your choice (annotate
    the parameter with it); run it with BPF_PROG_TEST_RUN. Used to test logic in the kernel."""
    fn.__pybpfgen_progtype__ = "syscall"  # type: ignore[attr-defined]
    return fn


def bpf_printk(fmt: str, *args: int) -> int:
    """``bpf_trace_printk``: write to /sys/kernel/tracing/trace_pipe. At most 3 integer arguments;
    the format is checked at compile time (%d %i %u %x %ld %lu %lx %lld %llu %llx %%)."""
    print(fmt % tuple(args) if args else fmt)
    return 0


# ----------------------------------------------------------------- atomic memory operations
# ``place`` is an integer (u32, u64, i32 or i64) in memory shared between CPUs: a field or element of a map
# value reached through a checked lookup result (``r.value.hits``), or a Global (``g.value``). The compiler
# passes its address; plain Python only has its value, so these run only when compiled (or in
# pybpfgen.testing).


def _compiled_only(name: str) -> NoReturn:
    """What a DSL function does when called from plain Python: say where it runs (lang_helpers.NotInBPF)."""
    from .lang_helpers import NotInBPF

    raise NotInBPF(f"{name}() runs only in a compiled BPF program; to run a program in Python, use "
                   "pybpfgen.testing (docs/language.md: Testing policies without root)")


def atomic_add(place: int, value: int) -> None:
    """Atomically add ``value`` to ``place``, without a result (BPF's ``lock +=``). Wraps around.

    ``value`` is converted to the place's type as an assignment would be. The addition is atomic but
    unordered (relaxed): use it for counters updated from several CPUs at once."""
    _compiled_only("atomic_add")


def atomic_fetch_add(place: int, value: int) -> int:
    """Atomically add ``value`` to ``place`` and return the value it held before (BPF ``atomic_fetch_add``,
    fully ordered). Wraps around."""
    return _compiled_only("atomic_fetch_add")


def atomic_xchg(place: int, value: int) -> int:
    """Atomically store ``value`` into ``place`` and return the value it held before (BPF ``xchg``)."""
    return _compiled_only("atomic_xchg")


def atomic_cmpxchg(place: int, expected: int, new: int) -> int:
    """Atomically store ``new`` into ``place`` if it holds ``expected``; return the value it held before,
    so the store happened exactly when the result equals ``expected`` (BPF ``cmpxchg``)."""
    return _compiled_only("atomic_cmpxchg")


# ----------------------------------------------------------------- constants
# the kernel's constants (linux/bpf.h, linux/socket.h, linux/tcp.h, ...): one table, pybpfgen/target/constants.py
# listed, for type checkers and editors (tests/compiler/test_constants.py checks that the lists are whole)
from .target.constants import (  # noqa: E402
    SK_PASS, SK_DROP, XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT, TC_ACT_UNSPEC, TC_ACT_OK,
    TC_ACT_RECLASSIFY, TC_ACT_SHOT, TC_ACT_PIPE, TC_ACT_STOLEN, TC_ACT_QUEUED, TC_ACT_REPEAT, TC_ACT_REDIRECT,
    TC_ACT_TRAP, TCX_NEXT, TCX_PASS, TCX_DROP, TCX_REDIRECT, BPF_ANY, BPF_NOEXIST, BPF_EXIST, BPF_F_INGRESS, BPF_F_NO_PREALLOC, BPF_SK_STORAGE_GET_F_CREATE, BPF_RB_NO_WAKEUP,
    BPF_RB_FORCE_WAKEUP, BPF_SOCK_OPS_VOID, BPF_SOCK_OPS_TIMEOUT_INIT, BPF_SOCK_OPS_RWND_INIT,
    BPF_SOCK_OPS_TCP_CONNECT_CB, BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB, BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB,
    BPF_SOCK_OPS_NEEDS_ECN, BPF_SOCK_OPS_BASE_RTT, BPF_SOCK_OPS_RTO_CB, BPF_SOCK_OPS_RETRANS_CB,
    BPF_SOCK_OPS_STATE_CB, BPF_SOCK_OPS_TCP_LISTEN_CB, BPF_SOCK_OPS_RTT_CB, BPF_SOCK_OPS_PARSE_HDR_OPT_CB,
    BPF_SOCK_OPS_HDR_OPT_LEN_CB, BPF_SOCK_OPS_WRITE_HDR_OPT_CB, BPF_SOCK_OPS_TSTAMP_SCHED_CB,
    BPF_SOCK_OPS_TSTAMP_SND_SW_CB, BPF_SOCK_OPS_TSTAMP_SND_HW_CB, BPF_SOCK_OPS_TSTAMP_ACK_CB,
    BPF_SOCK_OPS_TSTAMP_SENDMSG_CB, BPF_SOCK_OPS_RTO_CB_FLAG, BPF_SOCK_OPS_RETRANS_CB_FLAG,
    BPF_SOCK_OPS_STATE_CB_FLAG, BPF_SOCK_OPS_RTT_CB_FLAG, BPF_SOCK_OPS_PARSE_ALL_HDR_OPT_CB_FLAG,
    BPF_SOCK_OPS_PARSE_UNKNOWN_HDR_OPT_CB_FLAG, BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG, BPF_SOCK_OPS_ALL_CB_FLAGS,
    BPF_TCP_ESTABLISHED, BPF_TCP_SYN_SENT, BPF_TCP_SYN_RECV, BPF_TCP_FIN_WAIT1, BPF_TCP_FIN_WAIT2,
    BPF_TCP_TIME_WAIT, BPF_TCP_CLOSE, BPF_TCP_CLOSE_WAIT, BPF_TCP_LAST_ACK, BPF_TCP_LISTEN, BPF_TCP_CLOSING,
    BPF_TCP_NEW_SYN_RECV, BPF_TCP_BOUND_INACTIVE, AF_UNSPEC, AF_UNIX, AF_INET, AF_INET6, AF_NETLINK, AF_PACKET,
    AF_VSOCK, AF_XDP, SOCK_STREAM, SOCK_DGRAM, IPPROTO_IP, IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, IPPROTO_IPV6, IPPROTO_ICMPV6,
    IPPROTO_MPTCP, SOL_IP, SOL_SOCKET, SOL_TCP, SOL_IPV6, SO_REUSEADDR, SO_SNDBUF, SO_RCVBUF, SO_KEEPALIVE,
    SO_PRIORITY, SO_REUSEPORT, SO_RCVLOWAT, SO_BINDTODEVICE, SO_MARK, SO_MAX_PACING_RATE, SO_BINDTOIFINDEX,
    SO_TXREHASH, TCP_NODELAY, TCP_MAXSEG, TCP_KEEPIDLE, TCP_KEEPINTVL, TCP_KEEPCNT, TCP_SYNCNT,
    TCP_WINDOW_CLAMP, TCP_CONGESTION, TCP_THIN_LINEAR_TIMEOUTS, TCP_USER_TIMEOUT, TCP_NOTSENT_LOWAT,
    TCP_SAVE_SYN, TCP_BPF_IW, TCP_BPF_SNDCWND_CLAMP, TCP_BPF_DELACK_MAX, TCP_BPF_RTO_MIN,
    TCP_BPF_SOCK_OPS_CB_FLAGS, TCP_CA_NAME_MAX, IP_TOS, IPV6_TCLASS, IPV6_AUTOFLOWLABEL,
)

__all__ += [
    "SK_PASS", "SK_DROP", "XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT", "TC_ACT_UNSPEC",
    "TC_ACT_OK", "TC_ACT_RECLASSIFY", "TC_ACT_SHOT", "TC_ACT_PIPE", "TC_ACT_STOLEN", "TC_ACT_QUEUED",
    "TC_ACT_REPEAT", "TC_ACT_REDIRECT", "TC_ACT_TRAP", "TCX_NEXT", "TCX_PASS", "TCX_DROP", "TCX_REDIRECT", "BPF_ANY", "BPF_NOEXIST", "BPF_EXIST", "BPF_F_INGRESS",
    "BPF_F_NO_PREALLOC", "BPF_SK_STORAGE_GET_F_CREATE", "BPF_RB_NO_WAKEUP", "BPF_RB_FORCE_WAKEUP", "BPF_SOCK_OPS_VOID",
    "BPF_SOCK_OPS_TIMEOUT_INIT", "BPF_SOCK_OPS_RWND_INIT", "BPF_SOCK_OPS_TCP_CONNECT_CB",
    "BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB", "BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB", "BPF_SOCK_OPS_NEEDS_ECN",
    "BPF_SOCK_OPS_BASE_RTT", "BPF_SOCK_OPS_RTO_CB", "BPF_SOCK_OPS_RETRANS_CB", "BPF_SOCK_OPS_STATE_CB",
    "BPF_SOCK_OPS_TCP_LISTEN_CB", "BPF_SOCK_OPS_RTT_CB", "BPF_SOCK_OPS_PARSE_HDR_OPT_CB",
    "BPF_SOCK_OPS_HDR_OPT_LEN_CB", "BPF_SOCK_OPS_WRITE_HDR_OPT_CB", "BPF_SOCK_OPS_TSTAMP_SCHED_CB",
    "BPF_SOCK_OPS_TSTAMP_SND_SW_CB", "BPF_SOCK_OPS_TSTAMP_SND_HW_CB", "BPF_SOCK_OPS_TSTAMP_ACK_CB",
    "BPF_SOCK_OPS_TSTAMP_SENDMSG_CB", "BPF_SOCK_OPS_RTO_CB_FLAG", "BPF_SOCK_OPS_RETRANS_CB_FLAG",
    "BPF_SOCK_OPS_STATE_CB_FLAG", "BPF_SOCK_OPS_RTT_CB_FLAG", "BPF_SOCK_OPS_PARSE_ALL_HDR_OPT_CB_FLAG",
    "BPF_SOCK_OPS_PARSE_UNKNOWN_HDR_OPT_CB_FLAG", "BPF_SOCK_OPS_WRITE_HDR_OPT_CB_FLAG",
    "BPF_SOCK_OPS_ALL_CB_FLAGS", "BPF_TCP_ESTABLISHED", "BPF_TCP_SYN_SENT", "BPF_TCP_SYN_RECV",
    "BPF_TCP_FIN_WAIT1", "BPF_TCP_FIN_WAIT2", "BPF_TCP_TIME_WAIT", "BPF_TCP_CLOSE", "BPF_TCP_CLOSE_WAIT",
    "BPF_TCP_LAST_ACK", "BPF_TCP_LISTEN", "BPF_TCP_CLOSING", "BPF_TCP_NEW_SYN_RECV", "BPF_TCP_BOUND_INACTIVE",
    "AF_UNSPEC", "AF_UNIX", "AF_INET", "AF_INET6", "AF_NETLINK", "AF_PACKET", "AF_VSOCK", "AF_XDP",
    "SOCK_STREAM", "SOCK_DGRAM", "IPPROTO_IP", "IPPROTO_ICMP", "IPPROTO_TCP", "IPPROTO_UDP", "IPPROTO_IPV6", "IPPROTO_ICMPV6",
    "IPPROTO_MPTCP", "SOL_IP", "SOL_SOCKET", "SOL_TCP", "SOL_IPV6", "SO_REUSEADDR", "SO_SNDBUF", "SO_RCVBUF",
    "SO_KEEPALIVE", "SO_PRIORITY", "SO_REUSEPORT", "SO_RCVLOWAT", "SO_BINDTODEVICE", "SO_MARK",
    "SO_MAX_PACING_RATE", "SO_BINDTOIFINDEX", "SO_TXREHASH", "TCP_NODELAY", "TCP_MAXSEG", "TCP_KEEPIDLE",
    "TCP_KEEPINTVL", "TCP_KEEPCNT", "TCP_SYNCNT", "TCP_WINDOW_CLAMP", "TCP_CONGESTION",
    "TCP_THIN_LINEAR_TIMEOUTS", "TCP_USER_TIMEOUT", "TCP_NOTSENT_LOWAT", "TCP_SAVE_SYN", "TCP_BPF_IW",
    "TCP_BPF_SNDCWND_CLAMP", "TCP_BPF_DELACK_MAX", "TCP_BPF_RTO_MIN", "TCP_BPF_SOCK_OPS_CB_FLAGS",
    "TCP_CA_NAME_MAX", "IP_TOS", "IPV6_TCLASS", "IPV6_AUTOFLOWLABEL",
]

# one function per kernel helper, generated from the UAPI (pybpfgen/lang_helpers.py). Listed explicitly so
# that type checkers and editors see them; tests/compiler/test_helpers_table.py keeps the list in sync.
from .lang_helpers import (  # noqa: E402
    bpf_ktime_get_ns as bpf_ktime_get_ns,
    bpf_trace_printk as bpf_trace_printk,
    bpf_get_prandom_u32 as bpf_get_prandom_u32,
    bpf_get_smp_processor_id as bpf_get_smp_processor_id,
    bpf_skb_store_bytes as bpf_skb_store_bytes,
    bpf_l3_csum_replace as bpf_l3_csum_replace,
    bpf_l4_csum_replace as bpf_l4_csum_replace,
    bpf_tail_call as bpf_tail_call,
    bpf_clone_redirect as bpf_clone_redirect,
    bpf_get_current_pid_tgid as bpf_get_current_pid_tgid,
    bpf_get_current_uid_gid as bpf_get_current_uid_gid,
    bpf_get_current_comm as bpf_get_current_comm,
    bpf_get_cgroup_classid as bpf_get_cgroup_classid,
    bpf_skb_vlan_push as bpf_skb_vlan_push,
    bpf_skb_vlan_pop as bpf_skb_vlan_pop,
    bpf_perf_event_read as bpf_perf_event_read,
    bpf_redirect as bpf_redirect,
    bpf_get_route_realm as bpf_get_route_realm,
    bpf_perf_event_output as bpf_perf_event_output,
    bpf_skb_load_bytes as bpf_skb_load_bytes,
    bpf_get_stackid as bpf_get_stackid,
    bpf_skb_get_tunnel_opt as bpf_skb_get_tunnel_opt,
    bpf_skb_set_tunnel_opt as bpf_skb_set_tunnel_opt,
    bpf_skb_change_proto as bpf_skb_change_proto,
    bpf_skb_change_type as bpf_skb_change_type,
    bpf_skb_under_cgroup as bpf_skb_under_cgroup,
    bpf_get_hash_recalc as bpf_get_hash_recalc,
    bpf_get_current_task as bpf_get_current_task,
    bpf_current_task_under_cgroup as bpf_current_task_under_cgroup,
    bpf_skb_change_tail as bpf_skb_change_tail,
    bpf_skb_pull_data as bpf_skb_pull_data,
    bpf_set_hash_invalid as bpf_set_hash_invalid,
    bpf_get_numa_node_id as bpf_get_numa_node_id,
    bpf_skb_change_head as bpf_skb_change_head,
    bpf_xdp_adjust_head as bpf_xdp_adjust_head,
    bpf_get_socket_cookie as bpf_get_socket_cookie,
    bpf_get_socket_uid as bpf_get_socket_uid,
    bpf_set_hash as bpf_set_hash,
    bpf_setsockopt as bpf_setsockopt,
    bpf_skb_adjust_room as bpf_skb_adjust_room,
    bpf_redirect_map as bpf_redirect_map,
    bpf_sk_redirect_map as bpf_sk_redirect_map,
    bpf_sock_map_update as bpf_sock_map_update,
    bpf_xdp_adjust_meta as bpf_xdp_adjust_meta,
    bpf_getsockopt as bpf_getsockopt,
    bpf_sock_ops_cb_flags_set as bpf_sock_ops_cb_flags_set,
    bpf_msg_redirect_map as bpf_msg_redirect_map,
    bpf_msg_apply_bytes as bpf_msg_apply_bytes,
    bpf_msg_cork_bytes as bpf_msg_cork_bytes,
    bpf_msg_pull_data as bpf_msg_pull_data,
    bpf_bind as bpf_bind,
    bpf_xdp_adjust_tail as bpf_xdp_adjust_tail,
    bpf_get_stack as bpf_get_stack,
    bpf_skb_load_bytes_relative as bpf_skb_load_bytes_relative,
    bpf_sk_redirect_hash as bpf_sk_redirect_hash,
    bpf_skb_cgroup_id as bpf_skb_cgroup_id,
    bpf_get_current_cgroup_id as bpf_get_current_cgroup_id,
    bpf_skb_ancestor_cgroup_id as bpf_skb_ancestor_cgroup_id,
    bpf_map_push_elem as bpf_map_push_elem,
    bpf_map_pop_elem as bpf_map_pop_elem,
    bpf_map_peek_elem as bpf_map_peek_elem,
    bpf_msg_push_data as bpf_msg_push_data,
    bpf_msg_pop_data as bpf_msg_pop_data,
    bpf_skb_ecn_set_ce as bpf_skb_ecn_set_ce,
    bpf_sk_storage_get as bpf_sk_storage_get,
    bpf_sk_storage_delete as bpf_sk_storage_delete,
    bpf_send_signal as bpf_send_signal,
    bpf_send_signal_thread as bpf_send_signal_thread,
    bpf_jiffies64 as bpf_jiffies64,
    bpf_get_netns_cookie as bpf_get_netns_cookie,
    bpf_get_current_ancestor_cgroup_id as bpf_get_current_ancestor_cgroup_id,
    bpf_sk_assign as bpf_sk_assign,
    bpf_ktime_get_boot_ns as bpf_ktime_get_boot_ns,
    bpf_sk_cgroup_id as bpf_sk_cgroup_id,
    bpf_sk_ancestor_cgroup_id as bpf_sk_ancestor_cgroup_id,
    bpf_ringbuf_output as bpf_ringbuf_output,
    bpf_ringbuf_query as bpf_ringbuf_query,
    bpf_csum_level as bpf_csum_level,
    bpf_load_hdr_opt as bpf_load_hdr_opt,
    bpf_store_hdr_opt as bpf_store_hdr_opt,
    bpf_reserve_hdr_opt as bpf_reserve_hdr_opt,
    bpf_skb_cgroup_classid as bpf_skb_cgroup_classid,
    bpf_redirect_peer as bpf_redirect_peer,
    bpf_ktime_get_coarse_ns as bpf_ktime_get_coarse_ns,
    bpf_sys_bpf as bpf_sys_bpf,
    bpf_btf_find_by_name_kind as bpf_btf_find_by_name_kind,
    bpf_sys_close as bpf_sys_close,
    bpf_get_branch_snapshot as bpf_get_branch_snapshot,
    bpf_trace_vprintk as bpf_trace_vprintk,
    bpf_get_retval as bpf_get_retval,
    bpf_set_retval as bpf_set_retval,
    bpf_xdp_get_buff_len as bpf_xdp_get_buff_len,
    bpf_xdp_load_bytes as bpf_xdp_load_bytes,
    bpf_xdp_store_bytes as bpf_xdp_store_bytes,
    bpf_skb_set_tstamp as bpf_skb_set_tstamp,
    bpf_map_lookup_percpu_elem as bpf_map_lookup_percpu_elem,
    bpf_ktime_get_tai_ns as bpf_ktime_get_tai_ns,
)

_N_LANG = len(__all__)
__all__ += [
    'bpf_ktime_get_ns',
    'bpf_trace_printk',
    'bpf_get_prandom_u32',
    'bpf_get_smp_processor_id',
    'bpf_skb_store_bytes',
    'bpf_l3_csum_replace',
    'bpf_l4_csum_replace',
    'bpf_tail_call',
    'bpf_clone_redirect',
    'bpf_get_current_pid_tgid',
    'bpf_get_current_uid_gid',
    'bpf_get_current_comm',
    'bpf_get_cgroup_classid',
    'bpf_skb_vlan_push',
    'bpf_skb_vlan_pop',
    'bpf_perf_event_read',
    'bpf_redirect',
    'bpf_get_route_realm',
    'bpf_perf_event_output',
    'bpf_skb_load_bytes',
    'bpf_get_stackid',
    'bpf_skb_get_tunnel_opt',
    'bpf_skb_set_tunnel_opt',
    'bpf_skb_change_proto',
    'bpf_skb_change_type',
    'bpf_skb_under_cgroup',
    'bpf_get_hash_recalc',
    'bpf_get_current_task',
    'bpf_current_task_under_cgroup',
    'bpf_skb_change_tail',
    'bpf_skb_pull_data',
    'bpf_set_hash_invalid',
    'bpf_get_numa_node_id',
    'bpf_skb_change_head',
    'bpf_xdp_adjust_head',
    'bpf_get_socket_cookie',
    'bpf_get_socket_uid',
    'bpf_set_hash',
    'bpf_setsockopt',
    'bpf_skb_adjust_room',
    'bpf_redirect_map',
    'bpf_sk_redirect_map',
    'bpf_sock_map_update',
    'bpf_xdp_adjust_meta',
    'bpf_getsockopt',
    'bpf_sock_ops_cb_flags_set',
    'bpf_msg_redirect_map',
    'bpf_msg_apply_bytes',
    'bpf_msg_cork_bytes',
    'bpf_msg_pull_data',
    'bpf_bind',
    'bpf_xdp_adjust_tail',
    'bpf_get_stack',
    'bpf_skb_load_bytes_relative',
    'bpf_sk_redirect_hash',
    'bpf_skb_cgroup_id',
    'bpf_get_current_cgroup_id',
    'bpf_skb_ancestor_cgroup_id',
    'bpf_map_push_elem',
    'bpf_map_pop_elem',
    'bpf_map_peek_elem',
    'bpf_msg_push_data',
    'bpf_msg_pop_data',
    'bpf_skb_ecn_set_ce',
    'bpf_sk_storage_get',
    'bpf_sk_storage_delete',
    'bpf_send_signal',
    'bpf_send_signal_thread',
    'bpf_jiffies64',
    'bpf_get_netns_cookie',
    'bpf_get_current_ancestor_cgroup_id',
    'bpf_sk_assign',
    'bpf_ktime_get_boot_ns',
    'bpf_sk_cgroup_id',
    'bpf_sk_ancestor_cgroup_id',
    'bpf_ringbuf_output',
    'bpf_ringbuf_query',
    'bpf_csum_level',
    'bpf_load_hdr_opt',
    'bpf_store_hdr_opt',
    'bpf_reserve_hdr_opt',
    'bpf_skb_cgroup_classid',
    'bpf_redirect_peer',
    'bpf_ktime_get_coarse_ns',
    'bpf_sys_bpf',
    'bpf_btf_find_by_name_kind',
    'bpf_sys_close',
    'bpf_get_branch_snapshot',
    'bpf_trace_vprintk',
    'bpf_get_retval',
    'bpf_set_retval',
    'bpf_xdp_get_buff_len',
    'bpf_xdp_load_bytes',
    'bpf_xdp_store_bytes',
    'bpf_skb_set_tstamp',
    'bpf_map_lookup_percpu_elem',
    'bpf_ktime_get_tai_ns',
]
HELPER_EXPORTS = __all__[_N_LANG:]
