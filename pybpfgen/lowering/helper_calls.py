"""Lowering helper calls: arguments by parameter kind, and a direct ``call <id>`` through a constant
``inttoptr`` callee (never ``callx``)."""
from __future__ import annotations

from typing import TYPE_CHECKING

import llvmlite.ir as ir

from ..ir import nodes as N
from ..ir import types as T
from ..ir.places import in_ctx
from .types import I8, I32, I64, PTR

if TYPE_CHECKING:
    from .base import LoweringBase
else:
    LoweringBase = object  # the typed base of the mixins is for the type checker only (base.py)


class HelperCallee:
    """A callee that prints as ``inttoptr (i64 <id> to ptr)``: a direct BPF helper call."""

    def __init__(self, helper_id: int, fnty: ir.FunctionType):
        self.function_type = fnty
        self.type = PTR
        self.helper_id = helper_id

    def get_reference(self) -> str:
        return f"inttoptr (i64 {self.helper_id} to ptr)"


class HelperCalls(LoweringBase):
    """Mixin of :class:`~.codegen.FunctionLowering`."""

    def helper_call(self, e: N.HelperCall) -> ir.Value:
        h = e.helper
        args, types = [], []
        for kind, a in zip(h.params, e.args):
            if kind == "map":
                assert isinstance(a, N.MapRef)
                args.append(self.symbols[id(a.map)])
                types.append(PTR)
            elif kind == "bpf_socket" and not isinstance(a, N.CtxRef):  # the context's socket (SOCKET_ARG)
                args.append(self.value(a))
                types.append(PTR)
            elif kind in ("ctx", "bpf_socket"):
                assert isinstance(a, N.CtxRef)
                args.append(self.ctx_arg(a.var))
                types.append(PTR)
            elif kind == "value" and isinstance(a, N.Const):  # None: a NULL pointer (NULLABLE_VALUE)
                args.append(ir.Constant(PTR, None))
                types.append(PTR)
            elif kind == "sock":
                args.append(self.value(a))
                types.append(PTR)
            elif kind in ("key", "value", "ptr"):
                assert isinstance(a, N.AddrOf)
                args.append(self.memory_arg(a.value))
                types.append(PTR)
            elif kind == "ref":  # a ring buffer reservation (frontend/ringbuf.py)
                args.append(self.value(a))
                types.append(PTR)
            elif kind == "data":  # pointer and size
                assert isinstance(a, N.AddrOf)
                args += [self.memory_arg(a.value), I64(a.value.type.size)]
                types += [PTR, I64]
            elif kind == "buf":  # a place the helper fills: its own address (never a copy)
                assert isinstance(a, N.AddrOf)
                args.append(self.pointer_to(a.value))
                types.append(PTR)
            elif kind == "optval" and isinstance(a, N.AddrOf):  # an int option: the C int on the stack, 4
                args += [self.memory_arg(a.value), I32(a.value.type.size)]
                types += [PTR, I32]
            elif kind == "optval":  # a string option: the NUL-terminated name on the stack, and its length
                assert isinstance(a, N.FormatString)
                args += [self.words_on_stack(a.data), I32(len(a.data))]
                types += [PTR, I32]
            elif kind == "fmt":  # a constant string on the stack, and its size
                assert isinstance(a, N.FormatString)
                arr = ir.ArrayType(I8, len(a.data))
                slot = self.alloca_b.alloca(arr)
                slot.type = PTR
                self.b.store(ir.Constant(arr, bytearray(a.data)), slot)
                args += [slot, I64(len(a.data))]
                types += [PTR, I64]
            else:
                args.append(self.value(a))
                types.append(I64)
        if h.ret == "optref":  # the buffer the helper fills, or NULL when it failed
            assert isinstance(e.type, T.OptRefT) and h.params[len(e.args)] == "optout"
            buf = self.alloca(e.type.target)
            args += [buf, I32(e.type.target.size)]
            types += [PTR, I32]
            rc = self.b.call(HelperCallee(h.id, ir.FunctionType(I64, types)), args)
            ok = self.b.icmp_signed("==", rc, I64(0))
            return self.b.select(ok, buf, ir.Constant(PTR, None))
        ret = PTR if h.ret == "ptr" else I64
        return self.b.call(HelperCallee(h.id, ir.FunctionType(ret, types)), args)

    def words_on_stack(self, data: bytes) -> ir.Value:
        """``data`` zero-padded to whole words and stored a word at a time (one or two instructions per 8 bytes,
        where a byte array would take two per byte)."""
        wt = I32 if len(data) <= 4 else I64
        n = wt.width // 8
        padded = data + bytes(-len(data) % n)
        slot = self.alloca_b.alloca(ir.ArrayType(wt, len(padded) // n))
        slot.align = 8
        slot.type = PTR
        for i in range(0, len(padded), n):
            p = self.b.gep(slot, [I64(i // n)], source_etype=wt) if i else slot
            self.b.store(ir.Constant(wt, int.from_bytes(padded[i:i + n], "little")), p).align = n
        return slot

    def memory_arg(self, v: N.Expr) -> ir.Value:
        """A pointer to ``v`` for a helper to read or write. The verifier does not let helpers access the context
        as memory (``R2 type=ctx expected=fp, ...``), so a place inside a syscall program's context struct is
        copied to the stack first. So is a loop variable: were its own stack slot passed, the loop counter would
        live in memory, where the verifier does not follow its value, and it would reject a bounded loop as an
        "infinite loop detected"."""
        if in_ctx(v) or (isinstance(v, N.VarRef) and v.var in self.loop_vars):
            tmp = self.alloca(v.type)
            self.store_at(tmp, v)
            return tmp
        return self.pointer_to(v)
