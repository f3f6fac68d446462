"""Typed IR → ``llvmlite.ir``.

Rules that keep the output verifier-friendly:
- every local lives in an alloca in the entry block (LLVM's O2 pipeline promotes them);
- context fields are read with full-width loads wrapped in ``llvm.bpf.passthrough``
  so that the optimiser cannot narrow them (the verifier rejects narrow ctx loads);
- writable context fields are stored with full-width volatile stores (never merged nor narrowed);
- helpers are called directly through a constant ``inttoptr`` callee, which the BPF
  backend turns into ``call <id>`` (never ``callx``);
- struct temporaries are zero-filled before their fields are stored, so padding
  bytes in map keys are always zero.
"""
from __future__ import annotations

import json

import llvmlite.ir as ir

from ..diagnostics import InternalCompilerError
from ..ir import nodes as N
from ..ir import types as T
from ..ir.places import in_ctx
from ..target.progtypes import PROG_TYPES
from .debuginfo import DebugInfo
from .helper_calls import HelperCalls
from .memory import Memory
from .packets import Packets
from .types import I1, I8, I32, I64, PTR, llvm_type

DATA_LAYOUT = "e-m:e-p:64:64-i64:64-i128:128-n32:64-S128"


class VolatileStore(ir.instructions.StoreInstr):
    """``store volatile`` (llvmlite's StoreInstr cannot say it): LLVM keeps its width and never merges it."""

    def descr(self, buf: list[str]) -> None:
        super().descr(buf)
        buf[-1] = buf[-1].replace("store ", "store volatile ", 1)


def lower_module(module: N.Module, metadata: dict | None = None) -> ir.Module:
    m = ir.Module(name=module.name)
    m.triple = "bpfel"
    m.data_layout = DATA_LAYOUT
    di = DebugInfo(m, module)
    symbols: dict[int, ir.GlobalValue] = {}
    for decl in module.maps:
        gty = ir.LiteralStructType([PTR] * len(decl.definition_fields))
        gv = ir.GlobalVariable(m, gty, decl.name)
        gv.section = ".maps"
        gv.initializer = ir.Constant(gty, None)
        gv.align = 8
        di.map_variable(gv, decl)
        symbols[id(decl)] = gv
    for g in module.globals:
        ty = llvm_type(g.type)
        gv = ir.GlobalVariable(m, ty, g.name)
        gv.section = g.section
        gv.align = max(g.type.align, 1)
        gv.initializer = initializer(g)
        di.global_variable(gv, g)
        symbols[id(g)] = gv
    # functions first (programs call them); they are internal and always inlined
    for f in module.functions:
        params = [llvm_param_type(p.type) for p in f.params]
        if T.is_memory(f.ret):  # struct/array results are written through a hidden first pointer
            ret, params = ir.VoidType(), [PTR] + params
        else:
            ret = llvm_type(f.ret) if f.ret != T.VOID else ir.VoidType()
        fn = ir.Function(m, ir.FunctionType(ret, params), f.name)
        fn.linkage = "internal"
        fn.attributes.add("alwaysinline")
        fn.attributes.add("nounwind")
        symbols[id(f)] = fn
    for f in module.functions:
        FunctionLowering(m, di, symbols, f, symbols[id(f)]).run()
    for prog in module.programs:
        pt = PROG_TYPES[prog.progtype]
        fn = ir.Function(m, ir.FunctionType(I32, [PTR]), prog.name)
        fn.section = pt.section
        fn.attributes.add("nounwind")  # no .eh_frame
        FunctionLowering(m, di, symbols, prog, fn).run()
    di.finish()
    lic = bytearray(module.license.encode() + b"\0")
    gl = ir.GlobalVariable(m, ir.ArrayType(I8, len(lic)), "_license")
    gl.section = "license"
    gl.initializer = ir.Constant(ir.ArrayType(I8, len(lic)), lic)
    gl.global_constant = True
    gl.align = 1
    if metadata is not None:
        blob = bytearray(json.dumps(metadata, sort_keys=True, separators=(",", ":")).encode())
        gm = ir.GlobalVariable(m, ir.ArrayType(I8, len(blob)), "_pybpfgen_meta")
        gm.section = ".pybpfgen"
        gm.initializer = ir.Constant(ir.ArrayType(I8, len(blob)), blob)
        gm.global_constant = True
        gm.align = 1
    return m


def llvm_param_type(t: T.Type) -> ir.Type:
    """Memory-typed parameters (structs, arrays) are passed by pointer."""
    return PTR if T.is_memory(t) else llvm_type(t)


def initializer(g: N.GlobalDecl) -> ir.Constant:
    ty = llvm_type(g.type)
    if not g.init:
        return ir.Constant(ty, None)
    assert isinstance(g.type, T.IntT) and isinstance(g.init, int)  # only integer globals have initializers
    return ir.Constant(ty, g.init & ((1 << g.type.bits) - 1))


def loop_variables(stmts: list[N.Stmt]) -> set[N.Var]:
    out: set[N.Var] = set()
    for s in stmts:
        if isinstance(s, N.For):
            out.add(s.var)
            out |= loop_variables(s.body)
        elif isinstance(s, N.If):
            out |= loop_variables(s.then) | loop_variables(s.orelse)
    return out


class FunctionLowering(Memory, HelperCalls, Packets):
    """Lowers one program or DSL function into the llvmlite function ``fn`` (memory and helper calls are
    the mixins of :mod:`.memory` and :mod:`.helper_calls`)."""

    def __init__(self, m: ir.Module, di: DebugInfo, symbols: dict, func, fn: ir.Function):
        self.m, self.di, self.symbols, self.func, self.fn = m, di, symbols, func, fn
        self.is_program = isinstance(func, N.Program)
        self.sret = fn.args[0] if not self.is_program and T.is_memory(func.ret) else None
        self.args = list(fn.args[1:] if self.sret is not None else fn.args)
        for arg, p in zip(self.args, func.params):
            arg.name = p.name
        if self.is_program:
            self.sp = di.subprogram(fn, func, PROG_TYPES[func.progtype].c_struct or
                                    (func.ctx.type.struct_t.name if func.ctx.type.struct_t else "ctx"))
        else:
            self.sp = di.function(fn, func)
        self.entry = fn.append_basic_block("entry")
        self.alloca_b = ir.IRBuilder(self.entry)
        body = fn.append_basic_block("body")
        self.b = ir.IRBuilder(body)
        self.slots: dict[N.Var, ir.Value] = {}
        self.params: dict[N.Var, ir.Value] = {}
        self.passthrough_seq = 0
        self.loops: list[tuple[ir.Block, ir.Block]] = []  # (continue target, break target)
        self.ctx_bases: dict[N.Var, ir.Value] = {}
        # Every `return` stores its value into `ret_slot` and branches to `ret_bb`, one exit block that
        # is placed last (as clang does). Returning in place would leave it to SimplifyCFG to merge the
        # `ret`s into a block that it inserts *before* the first returning block, usually right after an
        # early exit's test: block placement then keeps that early exit as the fallthrough and the main
        # path pays an extra `goto` back to it.
        self.ret_bb: ir.Block | None = None
        self.ret_slot: ir.Value | None = None
        self.loop_vars = loop_variables(func.body)  # passed to helpers through a copy (helper_calls.memory_arg)

    # ------------------------------------------------------------ plumbing
    def run(self) -> None:
        for p, arg in zip(self.func.params, self.args):
            self.params[p] = arg
        for var in self.func.locals:
            self.slots[var] = self.alloca(var.type, var.name)
        self.b.debug_metadata = self.di.location(self.sp, self.func.loc.line, self.func.loc.col)
        self.block(self.func.body)
        void = self.fn.function_type.return_type == ir.VoidType()
        if not self.b.block.is_terminated:
            if void:
                self.b.branch(self.return_block())
            else:
                self.b.unreachable()  # the checker proved every path returns
        if self.ret_bb is not None:
            self.enter(self.ret_bb)  # last, after every block that returns
            # shared by every return: no line of its own, unless one return computes its value and the program
            # type's kernel checks return values (the others are constants checked at compile time): the
            # verifier's "At program exit the register R0 ..." then names that return's line
            computed = N.computed_returns(self.func.body) if self.is_program and \
                PROG_TYPES[self.func.progtype].returns is not None else []
            line, col = (computed[0].loc.line, computed[0].loc.col) if len(computed) == 1 else (0, -1)
            self.b.debug_metadata = self.di.location(self.sp, line, col)
            if void:
                self.b.ret_void()
            else:
                self.b.ret(self.b.load(self.ret_slot, typ=self.fn.function_type.return_type))
        self.alloca_b.branch(self.fn.blocks[1])

    def return_block(self) -> ir.Block:
        if self.ret_bb is None:
            self.ret_bb = self.new_block("return")
            rt = self.fn.function_type.return_type
            if rt != ir.VoidType():
                self.ret_slot = self.alloca_b.alloca(rt, name="retval")
                self.ret_slot.align = 8  # see alloca: a spill the verifier tracks at -O0
        return self.ret_bb

    def new_block(self, name: str) -> ir.Block:
        """A block not yet in the function: ``enter`` places it where its code is emitted, so the
        function's block order is source order (a statement's nested blocks before the blocks after
        it), as clang emits C. The BPF backend does not invert a conditional branch after instruction
        selection, so blocks that block placement has to reorder cost an ``if c goto +1; goto X`` pair
        where one inverted branch would do (programs/accel.py's sk_msg program had two of them)."""
        return ir.Block(parent=self.fn, name=name)

    def enter(self, bb: ir.Block) -> None:
        self.fn.blocks.append(bb)
        self.b.position_at_end(bb)

    def alloca(self, t: T.Type, name: str = "") -> ir.Value:
        slot = self.alloca_b.alloca(llvm_type(t), name=name)
        slot.align = max(t.align, 1)
        if T.is_memory(t):  # a struct/array slot aligned to its size (up to 8): zero-filled with the widest stores
            while slot.align < 8 and slot.align * 2 <= t.size:
                slot.align *= 2
        else:  # a scalar left on the stack (-O0) in its own 8-byte slot: the verifier tracks only aligned spills
            slot.align = 8
        slot.type = PTR  # use it as an opaque pointer (field stores go through byte offsets)
        return slot

    def ctx_arg(self, var: N.Var) -> ir.Value:
        return self.params[var]

    def ctx_memory_base(self, var: N.Var) -> ir.Value:
        """A syscall program's context as memory. ``llvm.preserve.static.offset`` makes the BPF
        backend keep every access as one load/store at a constant offset from the context
        pointer (the verifier rejects accesses through a modified context pointer)."""
        base = self.ctx_bases.get(var)
        if base is None:
            keep = self.intrinsic("llvm.preserve.static.offset", PTR, [PTR])
            base = self.alloca_b.call(keep, [self.params[var]])
            self.ctx_bases[var] = base
        return base

    def intrinsic(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        fn = self.m.globals.get(name)
        if fn is None:
            fn = ir.Function(self.m, ir.FunctionType(ret, args), name)
        return fn

    # ------------------------------------------------------------ statements
    def block(self, stmts: list[N.Stmt]) -> None:
        for s in stmts:
            if self.b.block.is_terminated:
                return
            self.b.debug_metadata = self.di.location(self.sp, s.loc.line, s.loc.col)
            self.stmt(s)

    def stmt(self, s: N.Stmt) -> None:
        if isinstance(s, N.Return):
            if self.sret is not None and s.value is not None:
                self.store_at(self.sret, s.value)
            elif s.value is not None:
                v = self.value(s.value)
                self.return_block()
                self.b.store(v, self.ret_slot)
            self.b.branch(self.return_block())
        elif isinstance(s, N.Assign):
            self.store(s.target, s.value)
        elif isinstance(s, N.ExprStmt):
            self.value(s.value)
        elif isinstance(s, N.If):
            self.if_(s)
        elif isinstance(s, N.For):
            self.for_(s)
        elif isinstance(s, N.Break):
            self.b.branch(self.loops[-1][1])
        elif isinstance(s, N.Continue):
            self.b.branch(self.loops[-1][0])
        else:
            raise InternalCompilerError(f"cannot lower statement {type(s).__name__}")

    def for_(self, s: N.For) -> None:
        b = self.b
        slot = self.slots[s.var]
        b.store(I32(s.start), slot)
        head, body, latch, end = (self.new_block(f"for.{n}") for n in ("head", "body", "latch", "end"))
        b.branch(head)
        self.enter(head)
        i = b.load(slot, typ=I32)
        b.cbranch(b.icmp_unsigned("<", i, I32(s.stop)), body, end)
        self.enter(body)
        self.loops.append((latch, end))
        self.block(s.body)
        self.loops.pop()
        if not self.b.block.is_terminated:
            self.b.branch(latch)
        self.enter(latch)
        b.debug_metadata = self.di.location(self.sp, s.loc.line, s.loc.col)
        nxt = b.add(b.load(slot, typ=I32), I32(s.step))
        b.store(nxt, slot)
        if s.start + s.step > s.start:  # no overflow past stop for unsigned bounds <= 2**32-1
            b.branch(head)
        self.enter(end)

    def if_(self, s: N.If) -> None:
        cond = self.value(s.cond)
        then_bb = self.new_block("if.then")
        else_bb = self.new_block("if.else") if s.orelse else None
        end_bb = self.new_block("if.end")
        self.b.cbranch(cond, then_bb, else_bb or end_bb)
        for bb, body in ((then_bb, s.then), (else_bb, s.orelse)):
            if bb is None:
                continue
            self.enter(bb)
            self.block(body)
            if not self.b.block.is_terminated:
                self.b.debug_metadata = self.di.location(self.sp, s.loc.line, s.loc.col)
                self.b.branch(end_bb)
        self.enter(end_bb)

    def store(self, target: N.Expr, value: N.Expr) -> None:
        if T.is_memory(target.type) and in_ctx(target):
            # build the value on the stack, then store it into the context one scalar at a time
            tmp = self.pointer_to(value)
            self.copy_scalars(self.address(target), tmp, target.type)
            return
        if isinstance(target, N.PacketLoad):
            self.packet_store(target, value)
            return
        if isinstance(target, N.CtxLoad):
            self.ctx_store(target, value)
            return
        dst = self.address(target)
        if T.is_memory(target.type):
            self.init_memory(dst, value)
        else:
            self.b.store(self.value(value), dst)

    def call(self, e: N.Call, sret: ir.Value | None = None) -> ir.Value:
        fn = self.symbols[id(e.func)]
        args = [self.pointer_to(a) if T.is_memory(a.type) else self.value(a) for a in e.args]
        if T.is_memory(e.type):
            if sret is None:
                raise InternalCompilerError("a struct result needs a destination")
            args = [sret] + args
        return self.b.call(fn, args)

    # ------------------------------------------------------------ expressions
    def value(self, e: N.Expr) -> ir.Value:
        b = self.b
        if isinstance(e, N.Const):
            return llvm_type(e.type)(e.value & ((1 << llvm_type(e.type).width) - 1))
        if isinstance(e, N.VarRef):
            if T.is_memory(e.type):
                raise InternalCompilerError("struct values are used through their address")
            if e.var in self.params:
                return self.params[e.var]
            return b.load(self.slots[e.var], typ=llvm_type(e.type))
        if isinstance(e, N.GlobalRef):
            return self.symbols[id(e.decl)]
        if isinstance(e, N.Call):
            return self.call(e)
        if isinstance(e, N.Narrow):
            return self.value(e.value)
        if isinstance(e, N.CtxRef):
            return self.ctx_arg(e.var)
        if isinstance(e, N.CtxLoad):
            return self.ctx_load(e.ctx, e.field, e.index)
        if isinstance(e, N.SockLoad):
            return self.field_load(self.value(e.sock), e.field, e.index)
        if isinstance(e, (N.FieldGet, N.Deref, N.Index)):
            if T.is_memory(e.type):
                raise InternalCompilerError("struct values are used through their address")
            v = b.load(self.address(e), typ=llvm_type(e.type))
            if isinstance(e, N.Deref) and e.volatile:
                v.volatile = True  # a Config in .rodata: the loader may change it before load
            return v
        if isinstance(e, N.Cast):
            return self.cast(self.value(e.value), e.value.type, e.type)
        if isinstance(e, N.Unary):
            v = self.value(e.value)
            return b.neg(v) if e.op == "-" else b.not_(v)
        if isinstance(e, N.Not):
            return b.xor(self.value(e.value), I1(1))
        if isinstance(e, N.Binary):
            return self.binary(e)
        if isinstance(e, N.Compare):
            l, r = self.value(e.left), self.value(e.right)
            t = e.left.type
            if isinstance(t, T.IntT) and t.signed:
                return b.icmp_signed(e.op, l, r)
            return b.icmp_unsigned(e.op, l, r)
        if isinstance(e, N.Logical):
            return self.logical(e)
        if isinstance(e, N.IsNull):
            p = self.value(e.value)
            c = b.icmp_unsigned("!=" if e.negate else "==", p, ir.Constant(PTR, None))
            t = e.value.type
            if isinstance(t, (T.OptRefT, T.RefT)) and isinstance(t.target, T.PacketT):
                return c  # a packet view: LLVM must fold `view is None` back into its range check (packets.py)
            # a helper's pointer (a lookup, a reservation): kept opaque, or LLVM folds two checks into
            # `(a | b) == 0`, which the verifier refuses ("pointer |= pointer prohibited")
            keep = self.intrinsic("llvm.bpf.passthrough.i1.i1", I1, [I32, I1])
            self.passthrough_seq += 1
            return b.call(keep, [I32(self.passthrough_seq), c])
        if isinstance(e, N.HelperCall):
            return self.helper_call(e)
        if isinstance(e, N.PacketView):
            return self.packet_view(e)
        if isinstance(e, N.PacketLoad):
            return self.packet_load(e)
        if isinstance(e, N.PacketStore):
            return self.packet_set(e)
        if isinstance(e, N.AtomicRMW):
            ptr = self.address(e.place)
            # a discarded result (atomic_add) is a relaxed add, which the BPF backend emits as the non-fetching
            # `lock +=`; a seq_cst atomicrmw becomes atomic_fetch_add even when its result is unused
            ordering = "monotonic" if e.type == T.VOID else "seq_cst"
            return b.atomic_rmw(e.op, ptr, self.value(e.value), ordering)
        if isinstance(e, N.AtomicCmpXchg):
            ptr = self.address(e.place)
            pair = b.cmpxchg(ptr, self.value(e.expected), self.value(e.new), "seq_cst", "seq_cst")
            return b.extract_value(pair, 0)  # the old value; the store happened iff it equals `expected`
        if isinstance(e, (N.StructInit, N.ArrayInit)):
            raise InternalCompilerError("struct values are used through their address")
        raise InternalCompilerError(f"cannot lower expression {type(e).__name__}")

    def ctx_load(self, ctx: N.Var, f: N.CtxField, index: int | None = None) -> ir.Value:
        return self.field_load(self.ctx_arg(ctx), f, index)

    def field_load(self, base: ir.Value, f: N.CtxField, index: int | None = None) -> ir.Value:
        """A field of a kernel struct the verifier rewrites (a context, a socket): a full-width load at a constant
        offset from ``base``, which the optimiser may not narrow."""
        off = f.offset + (4 * index if index is not None else 0)
        if T.is_sock(f.type):  # a socket pointer: one 64-bit load (which cannot be narrowed)
            raw = self.b.load(self.b.gep(base, [I64(off)], source_etype=I8), typ=PTR)
            raw.align = 8
            return raw
        ty = ir.IntType(f.load_bits)
        ptr = self.b.gep(base, [I64(off)], source_etype=I8)
        raw = self.b.load(ptr, typ=ty)
        raw.align = f.load_bits // 8
        name = f"llvm.bpf.passthrough.i{f.load_bits}.i{f.load_bits}"
        keep = self.intrinsic(name, ty, [I32, ty])
        self.passthrough_seq += 1
        v = self.b.call(keep, [I32(self.passthrough_seq), raw])
        v = self.ctx_convert(f, v)
        elem = f.type.elem if isinstance(f.type, T.ArrayT) else f.type
        return self.cast(v, T.IntT(f.load_bits, False), elem)

    def ctx_convert(self, f: N.CtxField, v: ir.Value) -> ir.Value:
        """The kernel's representation of a context field <-> the program's (each conversion is its own
        inverse): a network-order port becomes a host-order one and back."""
        if f.convert == "bswap32":
            return self.b.bswap(v)
        if f.convert == "bswap16":  # a network-order port in the low 16 bits
            return self.b.zext(self.b.bswap(self.b.trunc(v, ir.IntType(16))), v.type)
        return v

    def ctx_store(self, target: N.CtxLoad, value: N.Expr) -> None:
        """Assign a writable context field: full-width volatile stores (the verifier accepts no other size, and
        LLVM must neither merge nor narrow them), converted back to the kernel's representation."""
        f = target.field
        if isinstance(f.type, T.ArrayT) and target.index is None:  # a whole IPv6 address: four words
            src = self.pointer_to(value)
            words = [self.b.load(self.b.gep(src, [I64(4 * i)], source_etype=I8), typ=ir.IntType(32))
                     for i in range(f.type.n)]
            for i, w in enumerate(words):
                self.ctx_store_word(target.ctx, f, i, w)
            return
        elem = f.type.elem if isinstance(f.type, T.ArrayT) else f.type
        v = self.cast(self.value(value), elem, T.IntT(f.load_bits, False))
        self.ctx_store_word(target.ctx, f, target.index, v)

    def ctx_store_word(self, ctx: N.Var, f: N.CtxField, index: int | None, v: ir.Value) -> None:
        off = f.offset + (4 * index if index is not None else 0)
        ptr = self.b.gep(self.ctx_arg(ctx), [I64(off)], source_etype=I8)
        st = VolatileStore(self.b.block, self.ctx_convert(f, v), ptr)
        st.align = f.load_bits // 8
        self.b._insert(st)  # what IRBuilder.store does, with our instruction

    def cast(self, v: ir.Value, src: T.Type, dst: T.Type) -> ir.Value:
        if isinstance(src, T.BoolT):
            return self.b.zext(v, llvm_type(dst)) if isinstance(dst, T.IntT) else v
        assert isinstance(src, T.IntT) and isinstance(dst, T.IntT), (src, dst)
        if dst.bits == src.bits:
            return v
        if dst.bits < src.bits:
            return self.b.trunc(v, llvm_type(dst))
        return self.b.sext(v, llvm_type(dst)) if src.signed else self.b.zext(v, llvm_type(dst))

    def binary(self, e: N.Binary) -> ir.Value:
        b = self.b
        t = e.type
        assert isinstance(t, T.IntT)
        l, r = self.value(e.left), self.value(e.right)
        op = e.op
        if op == "+":
            return b.add(l, r)
        if op == "-":
            return b.sub(l, r)
        if op == "*":
            return b.mul(l, r)
        if op in ("&", "|", "^"):
            return {"&": b.and_, "|": b.or_, "^": b.xor}[op](l, r)
        if op in ("<<", ">>"):
            if not isinstance(e.right, N.Const):
                r = b.and_(r, llvm_type(t)(t.bits - 1))  # BPF semantics: the count is taken modulo the width
            if op == "<<":
                return b.shl(l, r)
            return b.ashr(l, r) if t.signed else b.lshr(l, r)
        if op in ("//", "%"):
            if isinstance(e.right, N.Const):
                return b.udiv(l, r) if op == "//" else b.urem(l, r)
            # BPF defines x / 0 == 0 and x % 0 == x; LLVM calls it undefined, so guard it.
            zero = b.icmp_unsigned("==", r, llvm_type(t)(0))
            safe = b.select(zero, llvm_type(t)(1), r)
            q = b.udiv(l, safe) if op == "//" else b.urem(l, safe)
            if isinstance(e.left, N.Const):
                # `x > C // y` is the overflow check LLVM rewrites to umul.with.overflow(x, y), a 128-bit
                # multiply the BPF backend can only lower to a __multi3 call (which BPF has not): keep the
                # quotient opaque to the optimiser (llvm.bpf.passthrough: no instruction)
                ty = llvm_type(t)
                keep = self.intrinsic(f"llvm.bpf.passthrough.i{t.bits}.i{t.bits}", ty, [I32, ty])
                self.passthrough_seq += 1
                q = b.call(keep, [I32(self.passthrough_seq), q])
            return b.select(zero, llvm_type(t)(0) if op == "//" else l, q)
        raise InternalCompilerError(f"unknown operator {op}")

    def logical(self, e: N.Logical) -> ir.Value:
        b = self.b
        left = self.value(e.left)
        left_bb = b.block
        rhs_bb = self.new_block(f"{e.op}.rhs")
        end_bb = self.new_block(f"{e.op}.end")
        if e.op == "and":
            b.cbranch(left, rhs_bb, end_bb)
        else:
            b.cbranch(left, end_bb, rhs_bb)
        self.enter(rhs_bb)
        right = self.value(e.right)
        right_bb = b.block
        b.branch(end_bb)
        self.enter(end_bb)
        phi = b.phi(I1)
        phi.add_incoming(I1(0) if e.op == "and" else I1(1), left_bb)
        phi.add_incoming(right, right_bb)
        return phi

