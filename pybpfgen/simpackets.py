"""pybpfgen.testing's packet and message bytes: the payload of a simulated context, views of it, and the helpers
that read or change it, with the kernel's checks.

A context made with ``data=b"..."`` (``testing.sk_msg(data=b"GET / HTTP/1.1\\r\\n")``, ``testing.cgroup_skb(
data=ip_packet)``) carries :class:`Payload`: the bytes, and the window ``[start, end)`` that ``data``/``data_end``
delimit. A view (``ctx.bytes(offset, n)``) is the payload at ``start + offset`` when ``start + offset + n <= end``,
else None, as the compiled range check decides. By default the window is the whole payload; ``linear=N`` makes it
the first ``N`` bytes (an sk_msg whose first scatterlist element holds N bytes, an skb with N bytes in its head).

Helpers (net/core/filter.c):

- ``bpf_msg_pull_data(msg, start, end, 0)``: ``-EINVAL`` (-22) for flags, ``end <= start``, ``start`` or ``end``
  beyond the message; else the window becomes exactly ``[start, end)``.
- ``bpf_msg_push_data(msg, start, len, 0)``: inserts ``len`` zero bytes at ``start`` (the kernel leaves them
  uninitialised), ``pop_data`` removes ``len`` bytes at ``start``; both update ``msg.size`` and reset the window
  to the whole message (the kernel: its first scatterlist element; views taken before are stale either way).
- ``bpf_skb_load_bytes(skb, offset, buf, len)``: copies from the whole packet (not only its linear head);
  ``-EFAULT`` (-14) and a zeroed buffer when the bytes are not there.
"""
from __future__ import annotations

from typing import Any

EINVAL, EFAULT, ENOMEM = 22, 14, 12


class Payload:
    def __init__(self, data: bytes, linear: int | None = None):
        self.buf = bytearray(data)
        self.start = 0
        self.end = len(self.buf) if linear is None else max(0, min(linear, len(self.buf)))

    def view(self, offset: int, n: int) -> int | None:
        """The offset in ``buf`` of ``n`` bytes at ``offset`` from ``data``, or None past ``data_end``."""
        at = self.start + offset
        return at if at + n <= self.end else None


def load(buf: bytearray, at: int, bits: int, big_endian: bool) -> int:
    return int.from_bytes(buf[at:at + bits // 8], "big" if big_endian else "little")


def store(buf: bytearray, at: int, bits: int, big_endian: bool, value: int) -> None:
    size = bits // 8
    buf[at:at + size] = (value & ((1 << bits) - 1)).to_bytes(size, "big" if big_endian else "little")


def _set_size(ctx: Any, p: Payload) -> None:
    from .target.progtypes import PROG_TYPES

    f = PROG_TYPES[ctx.progtype].fields.get("size")
    if f is not None:
        ctx.mem[f.offset:f.offset + 4] = len(p.buf).to_bytes(4, "little")


def msg_pull_data(ctx: Any, start: int, end: int, flags: int) -> int:
    p: Payload = ctx.payload
    if flags or end <= start or start >= len(p.buf) or end > len(p.buf):
        return -EINVAL
    p.start, p.end = start, end
    return 0


def msg_push_data(ctx: Any, start: int, length: int, flags: int) -> int:
    p: Payload = ctx.payload
    if flags or start > len(p.buf):
        return -EINVAL
    if length:
        p.buf[start:start] = bytes(length)
        p.start, p.end = 0, len(p.buf)
        _set_size(ctx, p)
    return 0


def msg_pop_data(ctx: Any, start: int, length: int, flags: int) -> int:
    p: Payload = ctx.payload
    if flags or not length or start + length > len(p.buf):
        return -EINVAL
    del p.buf[start:start + length]
    p.start, p.end = 0, len(p.buf)
    _set_size(ctx, p)
    return 0


def skb_load_bytes(ctx: Any, offset: int, to: bytearray, at: int, length: int) -> int:
    p: Payload = ctx.payload
    if offset + length > len(p.buf):
        to[at:at + length] = bytes(length)
        return -EFAULT
    to[at:at + length] = p.buf[offset:offset + length]
    return 0


def skb_pull_data(ctx: Any, length: int) -> int:
    """``bpf_skb_pull_data(skb, len)``: the first ``len`` bytes (0: the head as it is) become directly readable
    (``data_end`` moves); -ENOMEM when the packet is shorter (the kernel's ``pskb_may_pull`` fails)."""
    p: Payload = ctx.payload
    if length > len(p.buf):
        return -ENOMEM
    p.end = max(p.end, p.start + length)
    return 0
