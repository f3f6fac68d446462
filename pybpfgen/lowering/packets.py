"""Lowering packet views (frontend/packets.py): ``ctx.bytes(offset, n)`` and the loads and stores through them.

A view is ``data + offset``, or null when ``data + offset + n > data_end``: the comparison of two packet pointers
after which the verifier knows ``n`` bytes from the view are readable (``find_good_pkt_pointers``). Every use
then reads at a constant offset from the view's pointer, so the range applies.

- ``data``/``data_end`` are loaded from the context at the offsets of target/contexts.py ``PacketData``, with the
  member's full width (``__sk_buff``'s are u32 that the verifier rewrites into pointer loads: zero-extended).
- A variable offset goes through ``llvm.bpf.passthrough`` before ``+ n``: otherwise LLVM may compute
  ``data + (offset + n)`` as one addition, a pointer with a new id whose range check proves nothing about
  ``data + offset``, the pointer the reads use (the verifier would say "invalid access to packet").
- The null/non-null result is a ``select``: the BPF backend makes it a branch on the pointer comparison, and
  LLVM threads the program's own ``is None`` test into it (``llvm.assume(p != null)`` tells it that the view
  itself is never null, else it tests ``p == null`` too: one more instruction, and a 32-bit test of a packet
  pointer for ``__sk_buff``'s u32 members).
- Loads and stores use the natural alignment of their width, as C's ``*(__u32 *)p`` does: the BPF backend would
  split an under-aligned access into bytes; the verifier accepts unaligned packet access on this architecture.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import llvmlite.ir as ir

from ..ir import nodes as N
from ..ir import types as T
from ..target.progtypes import PROG_TYPES
from .types import I8, I32, I64, PTR

if TYPE_CHECKING:
    from .base import LoweringBase
else:
    LoweringBase = object  # the typed base of the mixins is for the type checker only (base.py)


class Packets(LoweringBase):
    """Mixin of :class:`~.codegen.FunctionLowering`."""

    def packet_pointer(self, ctx: N.Var, offset: int, bits: int) -> ir.Value:
        ty = ir.IntType(bits)
        ld = self.b.load(self.b.gep(self.ctx_arg(ctx), [I64(offset)], source_etype=I8), typ=ty)
        ld.align = bits // 8
        raw = ld if bits == 64 else self.b.zext(ld, I64)
        return self.b.inttoptr(raw, PTR)

    def packet_view(self, e: N.PacketView) -> ir.Value:
        b = self.b
        ctx_t = e.ctx.type
        assert isinstance(ctx_t, T.CtxT)
        pkt = PROG_TYPES[ctx_t.progtype].context.packet  # type: ignore[union-attr]  # checked by the frontend
        assert pkt is not None
        data = self.packet_pointer(e.ctx, pkt.data, pkt.bits)
        end = self.packet_pointer(e.ctx, pkt.data_end, pkt.bits)
        if isinstance(e.offset, N.Const):
            p = b.gep(data, [I64(e.offset.value)], source_etype=I8) if e.offset.value else data
        else:
            p = b.gep(data, [self.value(e.offset)], source_etype=I8)
            keep = self.intrinsic("llvm.bpf.passthrough.p0.p0", PTR, [I32, PTR])
            self.passthrough_seq += 1
            p = b.call(keep, [I32(self.passthrough_seq), p])
        # the kernel's data pointer is never null: without this LLVM tests `view is None` as `short or p == null`
        b.assume(b.icmp_unsigned("!=", p, ir.Constant(PTR, None)))
        past = b.gep(p, [I64(e.n)], source_etype=I8)
        short = b.icmp_unsigned(">", past, end)
        return b.select(short, ir.Constant(PTR, None), p)

    def packet_address(self, e: N.PacketLoad) -> ir.Value:
        base = self.value(e.view)
        return self.b.gep(base, [I64(e.offset)], source_etype=I8) if e.offset else base

    def packet_load(self, e: N.PacketLoad) -> ir.Value:
        assert isinstance(e.type, T.IntT)
        v = self.b.load(self.packet_address(e), typ=ir.IntType(e.type.bits))
        v.align = e.type.size
        if e.big_endian and e.type.bits > 8:
            v = self.b.bswap(v)
        return v

    def packet_set(self, e: N.PacketStore) -> ir.Value:
        v = self.value(e.value)
        if e.big_endian and e.bits > 8:
            v = self.b.bswap(v)
        base = self.value(e.view)
        ptr = self.b.gep(base, [I64(e.offset)], source_etype=I8) if e.offset else base
        st = self.b.store(v, ptr)
        st.align = e.bits // 8
        return st

    def packet_store(self, target: N.PacketLoad, value: N.Expr) -> None:
        assert isinstance(target.type, T.IntT)
        v = self.value(value)
        if target.big_endian and target.type.bits > 8:
            v = self.b.bswap(v)
        st = self.b.store(v, self.packet_address(target))
        st.align = target.type.size
