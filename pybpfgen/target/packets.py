"""Packet and message data: the BPF facts behind checked views (pybpfgen/frontend/packets.py).

Which context members are the ``data``/``data_end`` packet pointers is :class:`.contexts.PacketData` (one per
context struct); whether a program type may read or write them directly is :attr:`.progtypes.ProgType.packet`.
This module holds the rest:

- :data:`CHANGES_PACKET_DATA`: helpers after which the verifier forgets every packet pointer
  (``bpf_helper_changes_pkt_data`` in the kernel's net/core/filter.c): a view taken before a call of one of them
  is no longer valid after it (a compile error that says so);
- :data:`MAX_PACKET_OFF`: the verifier's ``MAX_PACKET_OFF``: a range check proves nothing for a pointer whose
  offset may exceed it, so a view's offset plus its size must provably stay below it;
- :data:`ARG_RULES`: constant arguments of the message and packet helpers checked at compile time (the kernel
  would refuse them at run time with -EINVAL, or read nothing);
- :data:`LOAD_BYTES`: helpers that copy packet bytes into a buffer of the program's (``bpf_skb_load_bytes``):
  which argument is the buffer and which its length, checked against the buffer's size at compile time.

Plain data with no imports.
"""
from __future__ import annotations

# the kernel's bpf_helper_changes_pkt_data(): every packet pointer is invalid after a call of one of these
CHANGES_PACKET_DATA = frozenset({
    "clone_redirect", "l3_csum_replace", "l4_csum_replace", "lwt_push_encap", "lwt_seg6_action",
    "lwt_seg6_adjust_srh", "lwt_seg6_store_bytes", "msg_pop_data", "msg_pull_data", "msg_push_data",
    "skb_adjust_room", "skb_change_head", "skb_change_proto", "skb_change_tail", "skb_pull_data",
    "skb_store_bytes", "skb_vlan_pop", "skb_vlan_push", "store_hdr_opt", "xdp_adjust_head", "xdp_adjust_meta",
    "xdp_adjust_tail",
})

MAX_PACKET_OFF = 0xFFFF  # include/linux/bpf_verifier.h (find_good_pkt_pointers ignores larger offsets)

# the widths a view reads (``view.u16be(off)``...): method name -> (bits, big-endian)
VIEW_LOADS: dict[str, tuple[int, bool]] = {
    "u8": (8, False), "u16": (16, False), "u32": (32, False), "u64": (64, False),
    "u16be": (16, True), "u32be": (32, True), "u64be": (64, True),
}


class ArgRule:
    """A check of a helper argument that is a constant: ``positive`` (not 0), ``zero`` (must be 0: reserved
    flags), ``u32`` (fits the kernel's u32 parameter), ``lt:<param>`` (below another constant argument)."""

    __slots__ = ("param", "rule", "why")

    def __init__(self, param: str, rule: str, why: str):
        self.param, self.rule, self.why = param, rule, why


_FLAGS0 = ArgRule("flags", "zero", "the kernel reserves flags: any other value fails with -EINVAL")
ARG_RULES: dict[str, tuple[ArgRule, ...]] = {
    "msg_pull_data": (ArgRule("start", "u32", "start is a u32 byte offset"),
                      ArgRule("end", "u32", "end is a u32 byte offset"),
                      ArgRule("start", "lt:end", "start must be before end (else -EINVAL)"), _FLAGS0),
    "msg_push_data": (ArgRule("start", "u32", "start is a u32 byte offset"),
                      ArgRule("len", "positive", "pushing 0 bytes does nothing"),
                      ArgRule("len", "u32", "len is a u32"), _FLAGS0),
    "msg_pop_data": (ArgRule("start", "u32", "start is a u32 byte offset"),
                     ArgRule("len", "positive", "popping 0 bytes does nothing"),
                     ArgRule("len", "u32", "len is a u32"), _FLAGS0),
    "msg_cork_bytes": (ArgRule("bytes", "u32", "bytes is a u32"),),
    "msg_apply_bytes": (ArgRule("bytes", "u32", "bytes is a u32"),),
    "skb_load_bytes": (ArgRule("offset", "u32", "offset is a u32"),),
    "skb_load_bytes_relative": (ArgRule("offset", "u32", "offset is a u32"),),
}

# helper -> (the buffer parameter, its length parameter): the length is a constant from 1 to the buffer's size
LOAD_BYTES: dict[str, tuple[str, str]] = {
    "skb_load_bytes": ("to", "len"),
    "skb_load_bytes_relative": ("to", "len"),
}
