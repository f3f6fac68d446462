"""Lowering memory: addresses of places, struct and array values written into memory (zero-filled
temporaries, aligned copies, one scalar at a time from a syscall program's context)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import llvmlite.ir as ir

from ..diagnostics import InternalCompilerError
from ..ir import nodes as N
from ..ir import types as T
from ..ir.places import in_ctx, is_place
from .types import I8, I64, llvm_type

if TYPE_CHECKING:
    from .base import LoweringBase
else:
    LoweringBase = object  # the typed base of the mixins is for the type checker only (base.py)


class Memory(LoweringBase):
    """Mixin of :class:`~.codegen.FunctionLowering`."""

    def address(self, e: N.Expr) -> ir.Value:
        """The address of a place (a local, a field, an element, a map value, a global)."""
        if isinstance(e, N.VarRef):
            if e.var in self.params:  # memory-typed parameters are passed by pointer
                if T.is_memory(e.type):
                    return self.params[e.var]
                tmp = self.alloca(e.type)  # a scalar parameter whose address is needed (a map key): a copy
                self.b.store(self.params[e.var], tmp)
                return tmp
            return self.slots[e.var]
        if isinstance(e, N.FieldGet):
            return self.b.gep(self.pointer_to(e.base), [I64(e.field.offset)], source_etype=I8)
        if isinstance(e, N.Index):
            base = self.pointer_to(e.base)
            if isinstance(e.index, N.Const):
                return self.b.gep(base, [I64(e.index.value * e.type.size)], source_etype=I8)
            off = self.b.mul(self.value(e.index), I64(e.type.size))
            return self.b.gep(base, [off], source_etype=I8)
        if isinstance(e, N.Deref):
            if isinstance(e.ref, N.CtxRef):
                return self.ctx_memory_base(e.ref.var)
            return self.value(e.ref)
        raise InternalCompilerError(f"not a place: {type(e).__name__}")

    @staticmethod
    def chunks(size: int, align: int):
        """(offset, width) pieces covering ``size`` bytes with accesses no wider than ``align``."""
        off, out = 0, []
        width = min(max(align, 1), 8)
        while off < size:
            while width > size - off:
                width //= 2
            out.append((off, width))
            off += width
        return out

    def memset0(self, dst: ir.Value, size: int, align: int = 1) -> None:
        """Zero ``size`` bytes with aligned stores (llvm.memset with unknown alignment becomes byte stores)."""
        for off, w in self.chunks(size, align):
            st = self.b.store(ir.IntType(8 * w)(0), self.b.gep(dst, [I64(off)], source_etype=I8))
            st.align = w

    def memcpy(self, dst: ir.Value, src: ir.Value, size: int, align: int) -> None:
        for off, w in self.chunks(size, align):
            ty = ir.IntType(8 * w)
            v = self.b.load(self.b.gep(src, [I64(off)], source_etype=I8), typ=ty)
            v.align = w
            st = self.b.store(v, self.b.gep(dst, [I64(off)], source_etype=I8))
            st.align = w

    def init_memory(self, dst: ir.Value, value: N.Expr) -> None:
        """Write a struct or array value into memory at ``dst``."""
        t = value.type
        # a stack slot may be aligned more than its type (codegen.alloca): wider zeroing stores
        align = max(t.align, dst.align) if isinstance(dst, ir.AllocaInstr) and dst.align else t.align
        if isinstance(value, N.StructInit):
            assert isinstance(t, T.StructT)  # a StructInit's type is its struct
            self.memset0(dst, t.size, align)
            for f in t.fields:
                v = value.values.get(f.name)
                if v is not None:
                    self.store_at(self.b.gep(dst, [I64(f.offset)], source_etype=I8), v)
            return
        if isinstance(value, N.ArrayInit):
            assert isinstance(t, T.ArrayT)  # an ArrayInit's type is its array type
            self.memset0(dst, t.size, align)
            for i, v in enumerate(value.values):
                self.store_at(self.b.gep(dst, [I64(i * t.elem.size)], source_etype=I8), v)
            return
        if isinstance(value, N.CtxLoad) and isinstance(t, T.ArrayT):
            for i in range(t.n):
                self.b.store(self.ctx_load(value.ctx, value.field, i), self.b.gep(dst, [I64(4 * i)], source_etype=I8))
            return
        if isinstance(value, N.SockLoad) and isinstance(t, T.ArrayT):
            sk = self.value(value.sock)
            for i in range(t.n):
                self.b.store(self.field_load(sk, value.field, i), self.b.gep(dst, [I64(4 * i)], source_etype=I8))
            return
        if isinstance(value, N.Call):
            self.call(value, dst)
            return
        src = self.address(value)
        if in_ctx(value):
            self.copy_scalars(dst, src, t)  # no memcpy from the context: one constant-offset load each
            return
        self.memcpy(dst, src, t.size, t.align)

    def copy_scalars(self, dst: ir.Value, src: ir.Value, t: T.Type, off: int = 0) -> None:
        if isinstance(t, T.StructT):
            for f in t.fields:
                self.copy_scalars(dst, src, f.type, off + f.offset)
        elif isinstance(t, T.ArrayT):
            for i in range(t.n):
                self.copy_scalars(dst, src, t.elem, off + i * t.elem.size)
        else:
            ty = llvm_type(t) if not isinstance(t, T.BoolT) else I8
            v = self.b.load(self.b.gep(src, [I64(off)], source_etype=I8), typ=ty)
            self.b.store(v, self.b.gep(dst, [I64(off)], source_etype=I8))

    def store_at(self, ptr: ir.Value, v: N.Expr) -> None:
        if T.is_memory(v.type):
            self.init_memory(ptr, v)
        else:
            self.b.store(self.value(v), ptr)

    def pointer_to(self, e: N.Expr) -> ir.Value:
        """A pointer to ``e``'s value: its own address if it is a place, else a stack temporary."""
        if is_place(e):
            return self.address(e)
        tmp = self.alloca(e.type)
        self.store_at(tmp, e)
        return tmp
