"""The context structs of the program types: the one table of their fields.

:mod:`pybpfgen.lang`'s context classes (``SockOps``, ``SkMsg``, ``SkBuff``, ``XdpMd``, ``SockAddr``,
``SockOpt``) take their struct from here,
:mod:`.progtypes` builds the compiler's context fields from it, and :mod:`pybpfgen.testing` lays out its
simulated contexts with it. Offsets are those of the kernel UAPI ``linux/bpf.h``;
tests/compiler/test_contexts.py checks every one against the running kernel's BTF and checks that the
DSL classes declare exactly these fields.

Plain data with no imports and plain classes (a NamedTuple class costs ~0.3 ms to create), so that importing
:mod:`pybpfgen.lang` stays cheap.

A field is ``(name, offset, type, convert, writable, doc, c_name, unreadable_in, packet)``:

- ``type``: ``"u32"``, ``"i32"``, ``"u64"`` or ``"u32[4]"`` (an IPv6 address: four words in network byte order), or a
  socket pointer: ``"sock"`` (the verifier's PTR_TO_SOCKET, never null) or ``"sock?"`` (PTR_TO_SOCKET_OR_NULL,
  which a program must check for None before use); read with one 64-bit load;
- ``convert``: ``"bswap32"`` when the kernel gives a network-order port in a u32 (on little-endian hosts in
  its upper 16 bits), ``"bswap16"`` when it gives one in the low 16 bits (``bpf_sock.dst_port``,
  ``bpf_sock_addr.user_port``): programs see, and write (the conversion is applied back), every port in host
  byte order;
- ``c_name``: the member in the kernel's struct when it differs (``"args[0]"``: element 0 of ``args``);
- ``writable``: True (every program type that may read it may write it), False, or the tuple of program types
  whose programs may write it (``__sk_buff.mark``: cgroup_skb and tc, not sk_skb; ``bpf_sockopt.optname``:
  setsockopt, not getsockopt); a program assigns it (``ctx.user_port = 8080``) with one full-width store;
- ``unreadable_in``: program types whose programs the verifier does not let read it, with the reason
  (``invalid bpf_context access``); tests/compiler/test_contexts.py probes every field in the running kernel,
  reads and writes;
- ``packet``: ``"data"``, ``"data_end"`` or ``"data_meta"`` for the fields the verifier turns into packet
  pointers (``PTR_TO_PACKET``, ``PTR_TO_PACKET_END``, ``PTR_TO_PACKET_META``) when they are loaded: they are not
  integers, so the compiler's integer fields leave them out (``progtypes.ctx_fields``) and packet access reads
  them.

A context with packet pointers (``data``/``data_end``: sk_msg's message, an skb's packet, XDP's frame, a
sockopt's option value) gets its :class:`PacketData` from those two fields (their offsets and width); programs
reach the bytes through checked views (``ctx.bytes(offset, n)``, see pybpfgen/frontend/packets.py).
"""
from __future__ import annotations


class Field:
    __slots__ = ("name", "offset", "type", "convert", "writable", "doc", "c_name", "unreadable_in", "packet")

    def __init__(self, name: str, offset: int, type: str = "u32", convert: str | None = None,
                 writable: bool | tuple[str, ...] = False, doc: str = "", c_name: str | None = None,
                 unreadable_in: dict[str, str] | None = None, packet: str = ""):
        self.name, self.offset, self.type, self.convert = name, offset, type, convert
        self.writable, self.doc, self.c_name = writable, doc, c_name
        self.unreadable_in = unreadable_in or {}  # program type -> why the verifier refuses the read
        self.packet = packet  # "data" | "data_end" | "data_meta": a packet pointer once loaded; "": an integer

    def writable_in(self, progtype: str) -> bool:
        """Whether a ``progtype`` program may write this field."""
        return progtype in self.writable if isinstance(self.writable, tuple) else self.writable

    def __repr__(self) -> str:
        return f"Field({self.name!r}, {self.offset}, {self.type!r})"


class PacketData:
    """Where a context keeps its packet pointers: the members holding the first byte (``data``) and the end
    (``data_end``) of the bytes a program may access directly, and their width (``__bpf_md_ptr`` members are
    64-bit pointers; ``struct __sk_buff``'s and ``struct xdp_md``'s are u32 the verifier rewrites). Which
    program types may use them, and whether they may write, is :attr:`.progtypes.ProgType.packet`."""

    __slots__ = ("data", "data_end", "bits", "what", "c_data", "c_data_end")

    def __init__(self, data: int, data_end: int, bits: int, what: str, c_data: str = "data",
                 c_data_end: str = "data_end"):
        self.data, self.data_end, self.bits = data, data_end, bits  # offsets in the context, load width
        self.what = what  # in messages: "the message", "the packet", "the option value"
        self.c_data, self.c_data_end = c_data, c_data_end  # the members' names in the kernel's struct

    def __repr__(self) -> str:
        return f"PacketData({self.c_data}@{self.data}, {self.c_data_end}@{self.data_end}, {self.bits})"


class Context:
    __slots__ = ("dsl_class", "c_struct", "size", "fields", "packet")

    def __init__(self, dsl_class: str, c_struct: str, size: int, fields: tuple[Field, ...],
                 packet_what: str = "the packet"):
        self.dsl_class = dsl_class  # the pybpfgen.lang class: "SockOps"
        self.c_struct = c_struct  # "bpf_sock_ops"
        self.size = size  # sizeof(struct c_struct)
        self.fields = fields
        # its data/data_end packet pointers (``ctx.bytes(...)``), from its fields marked packet="data"/"data_end"
        self.packet = _packet_data(fields, packet_what)

    def __repr__(self) -> str:
        return f"Context({self.dsl_class!r}, {self.c_struct!r})"


def _packet_data(fields: tuple[Field, ...], what: str) -> PacketData | None:
    data = next((f for f in fields if f.packet == "data"), None)
    end = next((f for f in fields if f.packet == "data_end"), None)
    if data is None or end is None:
        return None
    return PacketData(data.offset, end.offset, 64 if data.type == "u64" else 32, what, data.name, end.name)


_FAMILY = "AF_INET or AF_INET6"
_REMOTE_IP4 = "IPv4 peer address, network byte order"
_LOCAL_IP4 = "IPv4 local address, network byte order"
_REMOTE_IP6 = "IPv6 peer address, 4 words in network byte order"
_LOCAL_IP6 = "IPv6 local address, 4 words in network byte order"
_REMOTE_PORT = "peer port, host byte order"
_LOCAL_PORT = "local port, host byte order"
_TC = ("tc_ingress", "tc_egress")
_SK_SKB = ("sk_skb_stream_parser", "sk_skb_stream_verdict")
_CGROUP_SKB = ("cgroup_skb_ingress", "cgroup_skb_egress")


def _only(why: str, *progtypes: str) -> dict[str, str]:
    return {p: why for p in progtypes}


# the packet's socket (family .. local_port): cgroup_skb and sk_skb programs may read it, socket filters and tc not
_NO_SK = _only("the verifier lets socket_filter and tc programs read the packet, not its socket (family .. "
               "local_port are for cgroup_skb and sk_skb programs)", "socket_filter", *_TC)
_NO_PKT_SOCKET = _only("a socket filter reads the packet with bpf_skb_load_bytes, not through packet pointers",
                       "socket_filter")
_TC_ONLY = "only tc programs may read it"

SOCK_OPS = Context("SockOps", "bpf_sock_ops", 224, (
    Field("op", 0, doc="which callback: BPF_SOCK_OPS_*"),
    Field("reply", 4, writable=True, doc="value returned to the kernel for some callbacks"),
    Field("args0", 4, c_name="args[0]"), Field("args1", 8, c_name="args[1]"),
    Field("args2", 12, c_name="args[2]"), Field("args3", 16, c_name="args[3]"),
    Field("family", 20, doc=_FAMILY),
    Field("remote_ip4", 24, doc=_REMOTE_IP4),
    Field("local_ip4", 28, doc=_LOCAL_IP4),
    Field("remote_ip6", 32, "u32[4]", doc=_REMOTE_IP6),
    Field("local_ip6", 48, "u32[4]", doc=_LOCAL_IP6),
    Field("remote_port", 64, convert="bswap32", doc=_REMOTE_PORT),
    Field("local_port", 68, doc=_LOCAL_PORT),
    Field("is_fullsock", 72),
    Field("snd_cwnd", 76), Field("srtt_us", 80),
    Field("cb_flags", 84, doc="bpf_sock_ops_cb_flags", c_name="bpf_sock_ops_cb_flags"),
    Field("state", 88), Field("rtt_min", 92), Field("snd_ssthresh", 96), Field("rcv_nxt", 100),
    Field("snd_nxt", 104), Field("snd_una", 108), Field("mss_cache", 112), Field("ecn_flags", 116),
    Field("rate_delivered", 120), Field("rate_interval_us", 124),
    Field("bytes_received", 168, "u64"), Field("bytes_acked", 176, "u64"),
    Field("sk", 184, "sock?", doc="the socket (None when it is not a full socket, e.g. a request socket)"),
))

SK_MSG = Context("SkMsg", "sk_msg_md", 80, (
    Field("data", 0, "u64", packet="data", doc="start of the message's data (a packet pointer)"),
    Field("data_end", 8, "u64", packet="data_end", doc="end of the message's data (a packet pointer)"),
    Field("family", 16, doc=_FAMILY),
    Field("remote_ip4", 20, doc=_REMOTE_IP4),
    Field("local_ip4", 24, doc=_LOCAL_IP4),
    Field("remote_ip6", 28, "u32[4]", doc=_REMOTE_IP6),
    Field("local_ip6", 44, "u32[4]", doc=_LOCAL_IP6),
    Field("remote_port", 60, convert="bswap32", doc=_REMOTE_PORT),
    Field("local_port", 64, doc=_LOCAL_PORT),
    Field("size", 68, doc="bytes in this message"),
    Field("sk", 72, "sock", doc="the sending socket"),
), packet_what="the message")

SK_BUFF = Context("SkBuff", "__sk_buff", 192, (
    Field("len", 0), Field("pkt_type", 4),
    Field("mark", 8, writable=(*_CGROUP_SKB, *_TC),
          unreadable_in=_only("sk_skb programs cannot read the mark", *_SK_SKB)),
    Field("queue_mapping", 12, writable=_TC), Field("protocol", 16),
    Field("vlan_present", 20), Field("vlan_tci", 24), Field("vlan_proto", 28),
    Field("priority", 32, writable=(*_CGROUP_SKB, *_TC, *_SK_SKB)),
    Field("ingress_ifindex", 36), Field("ifindex", 40), Field("tc_index", 44, writable=(*_TC, *_SK_SKB)),
    Field("hash", 68),
    Field("tc_classid", 72, writable=_TC, unreadable_in=_only(_TC_ONLY, "socket_filter", *_CGROUP_SKB, *_SK_SKB)),
    Field("data", 76, packet="data", doc="start of the packet data", unreadable_in=_NO_PKT_SOCKET),
    Field("data_end", 80, packet="data_end", doc="end of the packet data", unreadable_in=_NO_PKT_SOCKET),
    Field("napi_id", 84),
    Field("family", 88, doc=_FAMILY, unreadable_in=_NO_SK),
    Field("remote_ip4", 92, doc=_REMOTE_IP4, unreadable_in=_NO_SK),
    Field("local_ip4", 96, doc=_LOCAL_IP4, unreadable_in=_NO_SK),
    Field("remote_ip6", 100, "u32[4]", doc=_REMOTE_IP6, unreadable_in=_NO_SK),
    Field("local_ip6", 116, "u32[4]", doc=_LOCAL_IP6, unreadable_in=_NO_SK),
    Field("remote_port", 132, convert="bswap32", doc=_REMOTE_PORT, unreadable_in=_NO_SK),
    Field("local_port", 136, doc=_LOCAL_PORT, unreadable_in=_NO_SK),
    Field("data_meta", 140, packet="data_meta", doc="start of the metadata before the packet data",
          unreadable_in=_only(_TC_ONLY, "socket_filter", *_CGROUP_SKB, *_SK_SKB)),
    Field("wire_len", 160, doc="the packet's length on the wire",
          unreadable_in=_only(_TC_ONLY, "socket_filter", *_CGROUP_SKB, *_SK_SKB)),
    Field("gso_segs", 164), Field("gso_size", 176),
))

XDP_MD = Context("XdpMd", "xdp_md", 24, (
    Field("data", 0, packet="data", doc="start of the packet data"),
    Field("data_end", 4, packet="data_end", doc="end of the packet data"),
    Field("data_meta", 8, packet="data_meta", doc="start of the metadata before the packet data"),
    Field("ingress_ifindex", 12, doc="the interface the packet arrived on"),
    Field("rx_queue_index", 16, doc="its receive queue"),
    Field("egress_ifindex", 20, doc="the interface a devmap redirect sends it to",
          unreadable_in=_only("only XDP programs run from a devmap (BPF_XDP_DEVMAP) may read it", "xdp")),
))

# the cgroup sock_addr hooks (program types of target/progtypes.py), by the address family of their attach type
SOCK_ADDR_HOOKS = ("connect", "sendmsg", "recvmsg", "getpeername", "getsockname", "bind")
SOCK_ADDR4 = tuple(f"cgroup_{h}4" for h in SOCK_ADDR_HOOKS)
SOCK_ADDR6 = tuple(f"cgroup_{h}6" for h in SOCK_ADDR_HOOKS)


def _sock_addr_only(progtypes: tuple[str, ...], why: str) -> dict[str, str]:
    """``unreadable_in`` of a field that only ``progtypes`` (of the sock_addr hooks) may read."""
    return {p: why for p in SOCK_ADDR4 + SOCK_ADDR6 if p not in progtypes}


_IPV4_ONLY = _sock_addr_only(SOCK_ADDR4, "an IPv6 hook has no IPv4 address (use user_ip6, or the *4 hook)")
_IPV6_ONLY = _sock_addr_only(SOCK_ADDR6, "an IPv4 hook has no IPv6 address (use user_ip4, or the *6 hook)")

SOCK_ADDR = Context("SockAddr", "bpf_sock_addr", 72, (
    Field("user_family", 0, doc="address family of the address the application passed: AF_INET or AF_INET6"),
    Field("user_ip4", 4, writable=True, unreadable_in=_IPV4_ONLY,
          doc="IPv4 address the application passed (connect, sendmsg, bind) or will see (getpeername, "
              "getsockname, recvmsg), network byte order"),
    Field("user_ip6", 8, "u32[4]", writable=True, unreadable_in=_IPV6_ONLY,
          doc="IPv6 address the application passed or will see, 4 words in network byte order"),
    Field("user_port", 24, convert="bswap16", writable=True,
          doc="port the application passed or will see, host byte order"),
    Field("family", 28, doc="the socket's address family: AF_INET or AF_INET6"),
    Field("type", 32, doc="the socket's type: SOCK_STREAM or SOCK_DGRAM"),
    Field("protocol", 36, doc="the socket's protocol: IPPROTO_TCP or IPPROTO_UDP"),
    Field("msg_src_ip4", 40, writable=True, unreadable_in=_sock_addr_only(("cgroup_sendmsg4",), "only sendmsg4 sets a source"),
          doc="IPv4 source address of a UDP message (sendmsg4), network byte order"),
    Field("msg_src_ip6", 44, "u32[4]", writable=True,
          unreadable_in=_sock_addr_only(("cgroup_sendmsg6",), "only sendmsg6 sets a source"),
          doc="IPv6 source address of a UDP message (sendmsg6), 4 words in network byte order"),
    Field("sk", 64, "sock", doc="the socket"),
))

_SOCKOPT_RETVAL = {"cgroup_setsockopt": "a setsockopt program runs before the kernel's setsockopt, there is no "
                                        "result yet (return 0 to refuse the call)"}

SOCKOPT = Context("SockOpt", "bpf_sockopt", 40, (
    Field("sk", 0, "sock", doc="the socket"),
    Field("optval", 8, "u64", packet="data", doc="the option's value (at most a page of it: optlen may be larger)"),
    Field("optval_end", 16, "u64", packet="data_end", doc="the end of the option's value"),
    # the option: only a setsockopt program may change which option the kernel sets
    Field("level", 24, "i32", writable=("cgroup_setsockopt",),
          doc="the option's level: SOL_SOCKET, IPPROTO_TCP, IPPROTO_IP, IPPROTO_IPV6"),
    Field("optname", 28, "i32", writable=("cgroup_setsockopt",), doc="the option: SO_*, TCP_*, IP_*"),
    Field("optlen", 32, "i32", writable=True,
          doc="bytes of the option's value; setsockopt: -1 makes the kernel skip its own setsockopt (the call "
              "succeeds and changes nothing), getsockopt: the length the application gets"),
    Field("retval", 36, "i32", writable=True, unreadable_in=_SOCKOPT_RETVAL,
          doc="getsockopt: what the kernel's getsockopt returned (0 or a negative errno); set it to change what "
              "the application gets"),
))

# by the DSL class name
CONTEXTS: dict[str, Context] = {c.dsl_class: c for c in (SOCK_OPS, SK_MSG, SK_BUFF, XDP_MD, SOCK_ADDR, SOCKOPT)}

# what a program reads through a socket pointer (``ctx.sk``: the verifier's PTR_TO_SOCKET, ``struct bpf_sock``);
# not a program's context, but the same kind of table (tests/compiler/test_contexts.py checks it the same ways)
SOCK = Context("Sock", "bpf_sock", 80, (
    Field("bound_dev_if", 0, doc="the interface the socket is bound to (0: none)"),
    Field("family", 4, doc=_FAMILY),
    Field("type", 8, doc="SOCK_STREAM, SOCK_DGRAM, ..."),
    Field("protocol", 12, doc="IPPROTO_TCP, ..."),
    Field("mark", 16, doc="SO_MARK"),
    Field("priority", 20, doc="SO_PRIORITY"),
    Field("src_ip4", 24, doc=_LOCAL_IP4),
    Field("src_ip6", 28, "u32[4]", doc=_LOCAL_IP6),
    Field("src_port", 44, doc=_LOCAL_PORT),
    Field("dst_port", 48, convert="bswap16", doc=_REMOTE_PORT),
    Field("dst_ip4", 52, doc=_REMOTE_IP4),
    Field("dst_ip6", 56, "u32[4]", doc=_REMOTE_IP6),
    Field("state", 72, doc="TCP state: BPF_TCP_ESTABLISHED, ..."),
    Field("rx_queue_mapping", 76, doc="the receive queue (-1: none), as an u32"),
))
