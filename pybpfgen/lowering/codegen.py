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
    if isinstance(t, T.StructT):
        return ir.ArrayType(I8, t.size)
    raise InternalCompilerError(f"no LLVM type for {t}")


def lower_module(module: N.Module, metadata: dict | None = None) -> ir.Module:
    m = ir.Module(name=module.name)
    m.triple = "bpfel"
    m.data_layout = DATA_LAYOUT
    di = DebugInfo(m, module)
    globals_: dict[int, ir.GlobalVariable] = {}
    for decl in module.maps:
        gty = ir.LiteralStructType([PTR] * (5 if decl.flags else 4))
        gv = ir.GlobalVariable(m, gty, decl.name)
        gv.section = ".maps"
        gv.initializer = ir.Constant(gty, None)
        gv.align = 8
        di.map_variable(gv, decl)
        globals_[id(decl)] = gv
    for prog in module.programs:
        FunctionLowering(m, di, globals_, prog).run()
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


class FunctionLowering:
    def __init__(self, m: ir.Module, di: DebugInfo, maps: dict, prog: N.Program):
        self.m, self.di, self.maps, self.prog = m, di, maps, prog
        self.pt = PROG_TYPES[prog.progtype]
        self.fn = ir.Function(m, ir.FunctionType(I32, [PTR]), prog.name)
        self.fn.section = self.pt.section
        self.fn.attributes.add("nounwind")  # no .eh_frame
        self.fn.args[0].name = prog.ctx.name
        self.sp = di.subprogram(self.fn, prog, self.pt.c_struct)
        self.entry = self.fn.append_basic_block("entry")
        self.alloca_b = ir.IRBuilder(self.entry)
        body = self.fn.append_basic_block("body")
        self.b = ir.IRBuilder(body)
        self.slots: dict[N.Var, ir.Value] = {}
        self.passthrough_seq = 0

    # ------------------------------------------------------------ plumbing
    def run(self) -> None:
        for var in self.prog.locals:
            self.slots[var] = self.alloca(var.type, var.name)
        self.b.debug_metadata = self.di.location(self.sp, self.prog.loc.line, self.prog.loc.col)
        self.block(self.prog.body)
        if not self.b.block.is_terminated:
            self.b.unreachable()  # the checker proved every path returns
        self.alloca_b.branch(self.fn.blocks[1])

    def alloca(self, t: T.Type, name: str = "") -> ir.Value:
        slot = self.alloca_b.alloca(llvm_type(t), name=name)
        slot.align = max(t.align, 1)
        slot.type = PTR  # use it as an opaque pointer (field stores go through byte offsets)
        return slot

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
            self.b.ret(self.value(s.value))
        elif isinstance(s, N.Assign):
            self.store(s.target, s.value)
        elif isinstance(s, N.ExprStmt):
            self.value(s.value)
        elif isinstance(s, N.If):
            self.if_(s)
        else:
            raise InternalCompilerError(f"cannot lower statement {type(s).__name__}")

    def if_(self, s: N.If) -> None:
        cond = self.value(s.cond)
        then_bb = self.fn.append_basic_block("if.then")
        else_bb = self.fn.append_basic_block("if.else") if s.orelse else None
        end_bb = self.fn.append_basic_block("if.end")
        self.b.cbranch(cond, then_bb, else_bb or end_bb)
        for bb, body in ((then_bb, s.then), (else_bb, s.orelse)):
            if bb is None:
                continue
            self.b.position_at_end(bb)
            self.block(body)
            if not self.b.block.is_terminated:
                self.b.debug_metadata = self.di.location(self.sp, s.loc.line, s.loc.col)
                self.b.branch(end_bb)
        self.b.position_at_end(end_bb)

    def store(self, target: N.Expr, value: N.Expr) -> None:
        if isinstance(target, N.CtxLoad):
            ptr = self.b.gep(self.fn.args[0], [I64(target.field.offset)], source_etype=I8)
            self.b.store(self.value(value), ptr)
            return
        dst = self.address(target)
        if isinstance(target.type, T.StructT):
            self.init_memory(dst, value)
        else:
            self.b.store(self.value(value), dst)

    # ------------------------------------------------------------ memory
    def address(self, e: N.Expr) -> ir.Value:
        """The address of a place (a local, a struct field, a map value)."""
        if isinstance(e, N.VarRef):
            return self.slots[e.var]
        if isinstance(e, N.FieldGet):
            return self.b.gep(self.address(e.base), [I64(e.field.offset)], source_etype=I8)
        if isinstance(e, N.Deref):
            return self.value(e.ref)
        raise InternalCompilerError(f"not a place: {type(e).__name__}")

    def init_memory(self, dst: ir.Value, value: N.Expr) -> None:
        """Write a struct value into memory at ``dst``."""
        st = value.type
        if isinstance(value, N.StructInit):
            memset = self.intrinsic("llvm.memset.p0.i64", ir.VoidType(), [PTR, I8, I64, I1])
            self.b.call(memset, [dst, I8(0), I64(st.size), I1(0)])
            for f in st.fields:
                v = value.values.get(f.name)
                if v is None:
                    continue
                fp = self.b.gep(dst, [I64(f.offset)], source_etype=I8)
                if isinstance(f.type, T.StructT):
                    self.init_memory(fp, v)
                else:
                    self.b.store(self.value(v), fp)
            return
        src = self.address(value)
        memcpy = self.intrinsic("llvm.memcpy.p0.p0.i64", ir.VoidType(), [PTR, PTR, I64, I1])
        self.b.call(memcpy, [dst, src, I64(st.size), I1(0)])

    def pointer_to(self, e: N.Expr) -> ir.Value:
        """A pointer to ``e``'s value: its own address if it is a place, else a stack temporary."""
        if isinstance(e, (N.VarRef, N.FieldGet, N.Deref)) and (not isinstance(e, N.FieldGet) or _is_place(e)):
            return self.address(e)
        tmp = self.alloca(e.type)
        if isinstance(e.type, T.StructT):
            self.init_memory(tmp, e)
        else:
            self.b.store(self.value(e), tmp)
        return tmp

    # ------------------------------------------------------------ expressions
    def value(self, e: N.Expr) -> ir.Value:
        b = self.b
        if isinstance(e, N.Const):
            return llvm_type(e.type)(e.value & ((1 << llvm_type(e.type).width) - 1))
        if isinstance(e, N.VarRef):
            if isinstance(e.type, T.StructT):
                raise InternalCompilerError("struct values are used through their address")
            return b.load(self.slots[e.var], typ=llvm_type(e.type))
        if isinstance(e, N.Narrow):
            return self.value(e.value)
        if isinstance(e, N.CtxRef):
            return self.fn.args[0]
        if isinstance(e, N.CtxLoad):
            return self.ctx_load(e.field)
        if isinstance(e, (N.FieldGet, N.Deref)):
            if isinstance(e.type, T.StructT):
                raise InternalCompilerError("struct values are used through their address")
            return b.load(self.address(e), typ=llvm_type(e.type))
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
        if isinstance(e, N.StructInit):
            raise InternalCompilerError("struct values are used through their address")
        raise InternalCompilerError(f"cannot lower expression {type(e).__name__}")

    def ctx_load(self, f: N.CtxField) -> ir.Value:
        ty = ir.IntType(f.load_bits)
        ptr = self.b.gep(self.fn.args[0], [I64(f.offset)], source_etype=I8)
        raw = self.b.load(ptr, typ=ty)
        raw.align = f.load_bits // 8
        name = f"llvm.bpf.passthrough.i{f.load_bits}.i{f.load_bits}"
        keep = self.intrinsic(name, ty, [I32, ty])
        self.passthrough_seq += 1
        v = self.b.call(keep, [I32(self.passthrough_seq), raw])
        if f.convert == "bswap32":
            v = self.b.bswap(v)
        return self.cast(v, T.IntT(f.load_bits, False), f.type)

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
        rhs_bb = self.fn.append_basic_block(f"{e.op}.rhs")
        end_bb = self.fn.append_basic_block(f"{e.op}.end")
        if e.op == "and":
            b.cbranch(left, rhs_bb, end_bb)
        else:
            b.cbranch(left, end_bb, rhs_bb)
        b.position_at_end(rhs_bb)
        right = self.value(e.right)
        right_bb = b.block
        b.branch(end_bb)
        b.position_at_end(end_bb)
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
                args.append(self.maps[id(a.map)])
                types.append(PTR)
            elif kind == "ctx":
                args.append(self.fn.args[0])
                types.append(PTR)
            elif kind == "ptr":
                assert isinstance(a, N.AddrOf)
                args.append(self.pointer_to(a.value))
                types.append(PTR)
            else:
                args.append(self.value(a))
                types.append(I64)
        ret = PTR if h.ret == "ptr" else I64
        return self.b.call(HelperCallee(h.id, ir.FunctionType(ret, types)), args)


def _is_place(e: N.Expr) -> bool:
    if isinstance(e, (N.VarRef, N.Deref)):
        return True
    if isinstance(e, N.FieldGet):
        return _is_place(e.base)
    return False
