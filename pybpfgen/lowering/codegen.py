"""Typed IR → ``llvmlite.ir``.

Rules that keep the output verifier-friendly:
- every local lives in an alloca in the entry block (LLVM's O2 pipeline promotes them);
- context fields are read with full-width loads wrapped in ``llvm.bpf.passthrough``
  so that the optimiser cannot narrow them (the verifier rejects narrow ctx loads);
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
from ..ir.places import in_ctx, is_place
from ..target.progtypes import PROG_TYPES
from .debuginfo import DebugInfo

I1, I8, I32, I64 = ir.IntType(1), ir.IntType(8), ir.IntType(32), ir.IntType(64)
PTR = ir.PointerType()
DATA_LAYOUT = "e-m:e-p:64:64-i64:64-i128:128-n32:64-S128"


class HelperCallee:
    """A callee that prints as ``inttoptr (i64 <id> to ptr)``: a direct BPF helper call."""

    def __init__(self, helper_id: int, fnty: ir.FunctionType):
        self.function_type = fnty
        self.type = PTR
        self.helper_id = helper_id

    def get_reference(self) -> str:
        return f"inttoptr (i64 {self.helper_id} to ptr)"


def llvm_type(t: T.Type) -> ir.Type:
    if isinstance(t, T.IntT):
        return ir.IntType(t.bits)
    if isinstance(t, T.BoolT):
        return I1
    if isinstance(t, (T.RefT, T.OptRefT, T.CtxT)):
        return PTR
    if isinstance(t, (T.StructT, T.ArrayT)):
        return ir.ArrayType(I8, t.size)
    raise InternalCompilerError(f"no LLVM type for {t}")


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
    assert isinstance(g.type, T.IntT)
    return ir.Constant(ty, g.init & ((1 << g.type.bits) - 1))


class FunctionLowering:
    """Lowers one program or DSL function into the llvmlite function ``fn``."""

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
            self.b.debug_metadata = self.di.location(self.sp, 0, -1)  # shared by every return
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
        if isinstance(target, N.CtxLoad):
            ptr = self.b.gep(self.ctx_arg(target.ctx), [I64(target.field.offset)], source_etype=I8)
            self.b.store(self.value(value), ptr)
            return
        dst = self.address(target)
        if T.is_memory(target.type):
            self.init_memory(dst, value)
        else:
            self.b.store(self.value(value), dst)

    # ------------------------------------------------------------ memory
    def address(self, e: N.Expr) -> ir.Value:
        """The address of a place (a local, a field, an element, a map value, a global)."""
        if isinstance(e, N.VarRef):
            if e.var in self.params:  # memory-typed parameters are passed by pointer
                return self.params[e.var]
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

    def call(self, e: N.Call, sret: ir.Value | None = None) -> ir.Value:
        fn = self.symbols[id(e.func)]
        args = [self.pointer_to(a) if T.is_memory(a.type) else self.value(a) for a in e.args]
        if T.is_memory(e.type):
            if sret is None:
                raise InternalCompilerError("a struct result needs a destination")
            args = [sret] + args
        return self.b.call(fn, args)

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
        if isinstance(value, N.StructInit):
            self.memset0(dst, t.size, t.align)
            for f in t.fields:
                v = value.values.get(f.name)
                if v is not None:
                    self.store_at(self.b.gep(dst, [I64(f.offset)], source_etype=I8), v)
            return
        if isinstance(value, N.ArrayInit):
            self.memset0(dst, t.size, t.align)
            for i, v in enumerate(value.values):
                self.store_at(self.b.gep(dst, [I64(i * t.elem.size)], source_etype=I8), v)
            return
        if isinstance(value, N.CtxLoad) and isinstance(t, T.ArrayT):
            for i in range(t.n):
                self.b.store(self.ctx_load(value.ctx, value.field, i), self.b.gep(dst, [I64(4 * i)], source_etype=I8))
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
            return b.icmp_unsigned("!=" if e.negate else "==", p, ir.Constant(PTR, None))
        if isinstance(e, N.HelperCall):
            return self.helper_call(e)
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
        ty = ir.IntType(f.load_bits)
        off = f.offset + (4 * index if index is not None else 0)
        ptr = self.b.gep(self.ctx_arg(ctx), [I64(off)], source_etype=I8)
        raw = self.b.load(ptr, typ=ty)
        raw.align = f.load_bits // 8
        name = f"llvm.bpf.passthrough.i{f.load_bits}.i{f.load_bits}"
        keep = self.intrinsic(name, ty, [I32, ty])
        self.passthrough_seq += 1
        v = self.b.call(keep, [I32(self.passthrough_seq), raw])
        if f.convert == "bswap32":
            v = self.b.bswap(v)
        elem = f.type.elem if isinstance(f.type, T.ArrayT) else f.type
        return self.cast(v, T.IntT(f.load_bits, False), elem)

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

    def helper_call(self, e: N.HelperCall) -> ir.Value:
        h = e.helper
        args, types = [], []
        for kind, a in zip(h.params, e.args):
            if kind == "map":
                assert isinstance(a, N.MapRef)
                args.append(self.symbols[id(a.map)])
                types.append(PTR)
            elif kind == "ctx":
                args.append(self.ctx_arg(a.var))
                types.append(PTR)
            elif kind in ("key", "value", "ptr"):
                assert isinstance(a, N.AddrOf)
                args.append(self.pointer_to(a.value))
                types.append(PTR)
            elif kind == "data":  # pointer and size
                assert isinstance(a, N.AddrOf)
                args += [self.pointer_to(a.value), I64(a.value.type.size)]
                types += [PTR, I64]
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
        ret = PTR if h.ret == "ptr" else I64
        return self.b.call(HelperCallee(h.id, ir.FunctionType(ret, types)), args)

