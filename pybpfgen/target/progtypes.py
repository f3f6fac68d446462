"""Program types and their context structs (offsets from the kernel UAPI ``linux/bpf.h``).

Context fields are read with full 32-bit (or 64-bit) loads: the verifier rejects
narrow loads of these fields. ``remote_port`` is stored by the kernel in network
byte order in a u32 (on little-endian hosts, in the upper 16 bits); pybpfgen
converts it so that programs see every port in host byte order.
"""
from __future__ import annotations

from ..ir._records import Record

from ..ir.nodes import CtxField
from ..ir.types import U32, U64, ArrayT


class ProgType(Record, frozen=True):
    name: str  # DSL name: "sock_ops"
    ctx_class: str  # DSL annotation: "SockOps"
    c_struct: str  # "bpf_sock_ops"
    section: str  # ELF section libbpf recognises
    prog_type: int  # BPF_PROG_TYPE_*
    attach_type: int  # BPF_* attach type
    fields: dict[str, CtxField]
    needs_map: bool = False  # attached to a sockmap/sockhash named in the decorator

def _f(name, off, typ=U32, bits=32, convert=None, writable=False, doc=""):
    return name, CtxField(name, off, typ, bits, convert, writable, doc)


SOCK_OPS_FIELDS = dict([
    _f("op", 0, doc="which callback: BPF_SOCK_OPS_*"),
    _f("reply", 4, writable=True, doc="value returned to the kernel for some callbacks"),
    _f("args0", 4), _f("args1", 8), _f("args2", 12), _f("args3", 16),
    _f("family", 20, doc="AF_INET or AF_INET6"),
    _f("remote_ip4", 24, doc="IPv4 peer address, network byte order"),
    _f("local_ip4", 28, doc="IPv4 local address, network byte order"),
    _f("remote_ip6", 32, ArrayT(U32, 4), doc="IPv6 peer address, 4 words in network byte order"),
    _f("local_ip6", 48, ArrayT(U32, 4), doc="IPv6 local address, 4 words in network byte order"),
    _f("remote_port", 64, convert="bswap32", doc="peer port, host byte order"),
    _f("local_port", 68, doc="local port, host byte order"),
    _f("is_fullsock", 72),
    _f("snd_cwnd", 76), _f("srtt_us", 80),
    _f("cb_flags", 84, doc="bpf_sock_ops_cb_flags"),
    _f("state", 88), _f("rtt_min", 92), _f("snd_ssthresh", 96), _f("rcv_nxt", 100),
    _f("snd_nxt", 104), _f("snd_una", 108), _f("mss_cache", 112), _f("ecn_flags", 116),
    _f("rate_delivered", 120), _f("rate_interval_us", 124),
    _f("bytes_received", 168, U64, 64), _f("bytes_acked", 176, U64, 64),
])

SK_MSG_FIELDS = dict([
    _f("family", 16, doc="AF_INET or AF_INET6"),
    _f("remote_ip4", 20, doc="IPv4 peer address, network byte order"),
    _f("local_ip4", 24, doc="IPv4 local address, network byte order"),
    _f("remote_ip6", 28, ArrayT(U32, 4), doc="IPv6 peer address, 4 words in network byte order"),
    _f("local_ip6", 44, ArrayT(U32, 4), doc="IPv6 local address, 4 words in network byte order"),
    _f("remote_port", 60, convert="bswap32", doc="peer port, host byte order"),
    _f("local_port", 64, doc="local port, host byte order"),
    _f("size", 68, doc="bytes in this message"),
])

SKB_FIELDS = dict([
    _f("len", 0), _f("pkt_type", 4), _f("mark", 8), _f("queue_mapping", 12), _f("protocol", 16),
    _f("vlan_present", 20), _f("vlan_tci", 24), _f("vlan_proto", 28), _f("priority", 32),
    _f("ingress_ifindex", 36), _f("ifindex", 40), _f("tc_index", 44), _f("hash", 68),
])

PROG_TYPES: dict[str, ProgType] = {
    "sock_ops": ProgType("sock_ops", "SockOps", "bpf_sock_ops", "sockops", 13, 3, SOCK_OPS_FIELDS),
    "sk_msg": ProgType("sk_msg", "SkMsg", "sk_msg_md", "sk_msg", 16, 7, SK_MSG_FIELDS, needs_map=True),
    "socket_filter": ProgType("socket_filter", "SkBuff", "__sk_buff", "socket", 1, 0, SKB_FIELDS),
    # the context of a syscall program is a user-defined Struct (see CtxT.struct_t)
    "syscall": ProgType("syscall", "", "", "syscall", 31, 0, {}),
}
BY_CTX_CLASS = {p.ctx_class: p for p in PROG_TYPES.values() if p.ctx_class}
