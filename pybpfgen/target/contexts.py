"""The context structs of the program types: the one table of their fields.

:mod:`pybpfgen.lang`'s context classes (``SockOps``, ``SkMsg``, ``SkBuff``) take their struct from here,
:mod:`.progtypes` builds the compiler's context fields from it, and :mod:`pybpfgen.testing` lays out its
simulated contexts with it. Offsets are those of the kernel UAPI ``linux/bpf.h``;
tests/compiler/test_contexts.py checks every one against the running kernel's BTF and checks that the
DSL classes declare exactly these fields.

Plain data with no imports and plain classes (a NamedTuple class costs ~0.3 ms to create), so that importing
:mod:`pybpfgen.lang` stays cheap.

A field is ``(name, offset, type, convert, writable, doc, c_name, unreadable_in)``:

- ``type``: ``"u32"``, ``"u64"`` or ``"u32[4]"`` (an IPv6 address: four words in network byte order), or a
  socket pointer: ``"sock"`` (the verifier's PTR_TO_SOCKET, never null) or ``"sock?"`` (PTR_TO_SOCKET_OR_NULL,
  which a program must check for None before use); read with one 64-bit load;
- ``convert``: ``"bswap32"`` when the kernel gives a network-order port in a u32 (on little-endian hosts in
  its upper 16 bits), ``"bswap16"`` when it gives one in the low 16 bits (``bpf_sock.dst_port``): programs see
  every port in host byte order;
- ``c_name``: the member in the kernel's struct when it differs (``"args[0]"``: element 0 of ``args``);
- ``unreadable_in``: program types whose programs the verifier does not let read it, with the reason
  (``invalid bpf_context access``); tests/compiler/test_contexts.py probes every field in the running kernel.
"""
from __future__ import annotations


class Field:
    __slots__ = ("name", "offset", "type", "convert", "writable", "doc", "c_name", "unreadable_in")

    def __init__(self, name: str, offset: int, type: str = "u32", convert: str | None = None,
                 writable: bool = False, doc: str = "", c_name: str | None = None,
                 unreadable_in: dict[str, str] | None = None):
        self.name, self.offset, self.type, self.convert = name, offset, type, convert
        self.writable, self.doc, self.c_name = writable, doc, c_name
        self.unreadable_in = unreadable_in or {}  # program type -> why the verifier refuses the read

    def __repr__(self) -> str:
        return f"Field({self.name!r}, {self.offset}, {self.type!r})"


class Context:
    __slots__ = ("dsl_class", "c_struct", "size", "fields")

    def __init__(self, dsl_class: str, c_struct: str, size: int, fields: tuple[Field, ...]):
        self.dsl_class = dsl_class  # the pybpfgen.lang class: "SockOps"
        self.c_struct = c_struct  # "bpf_sock_ops"
        self.size = size  # sizeof(struct c_struct)
        self.fields = fields

    def __repr__(self) -> str:
        return f"Context({self.dsl_class!r}, {self.c_struct!r})"


_FAMILY = "AF_INET or AF_INET6"
_REMOTE_IP4 = "IPv4 peer address, network byte order"
_LOCAL_IP4 = "IPv4 local address, network byte order"
_REMOTE_IP6 = "IPv6 peer address, 4 words in network byte order"
_LOCAL_IP6 = "IPv6 local address, 4 words in network byte order"
_REMOTE_PORT = "peer port, host byte order"
_LOCAL_PORT = "local port, host byte order"
_SOCKET_FILTER_NO_SK = {"socket_filter": "the verifier lets a socket filter read the packet's fields, not its socket's "
                                         "(family .. local_port are for cgroup_skb, sk_skb and tc programs)"}

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
    Field("family", 16, doc=_FAMILY),
    Field("remote_ip4", 20, doc=_REMOTE_IP4),
    Field("local_ip4", 24, doc=_LOCAL_IP4),
    Field("remote_ip6", 28, "u32[4]", doc=_REMOTE_IP6),
    Field("local_ip6", 44, "u32[4]", doc=_LOCAL_IP6),
    Field("remote_port", 60, convert="bswap32", doc=_REMOTE_PORT),
    Field("local_port", 64, doc=_LOCAL_PORT),
    Field("size", 68, doc="bytes in this message"),
    Field("sk", 72, "sock", doc="the sending socket"),
))

SK_BUFF = Context("SkBuff", "__sk_buff", 192, (
    Field("len", 0), Field("pkt_type", 4), Field("mark", 8), Field("queue_mapping", 12), Field("protocol", 16),
    Field("vlan_present", 20), Field("vlan_tci", 24), Field("vlan_proto", 28), Field("priority", 32),
    Field("ingress_ifindex", 36), Field("ifindex", 40), Field("tc_index", 44), Field("hash", 68),
    # the packet's socket: the kernel lets cgroup_skb, sk_skb and tc programs read these, not socket filters
    Field("family", 88, doc=_FAMILY, unreadable_in=_SOCKET_FILTER_NO_SK),
    Field("remote_ip4", 92, doc=_REMOTE_IP4, unreadable_in=_SOCKET_FILTER_NO_SK),
    Field("local_ip4", 96, doc=_LOCAL_IP4, unreadable_in=_SOCKET_FILTER_NO_SK),
    Field("remote_port", 132, convert="bswap32", doc=_REMOTE_PORT, unreadable_in=_SOCKET_FILTER_NO_SK),
    Field("local_port", 136, doc=_LOCAL_PORT, unreadable_in=_SOCKET_FILTER_NO_SK),
))

# by the DSL class name
CONTEXTS: dict[str, Context] = {c.dsl_class: c for c in (SOCK_OPS, SK_MSG, SK_BUFF)}

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
