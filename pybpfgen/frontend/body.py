"""Type-checking program bodies: Python statements → typed IR.

Flow-sensitive facts are tracked per path: which locals are definitely assigned,
and which optional map-lookup results are proven non-None (so that using a lookup
result without a None check is a compile error, not a verifier rejection).
"""
from __future__ import annotations

import ast
import re
from typing import Callable
from ..ir._records import Record

from ..diagnostics import Loc, UserError
from ..ir import nodes as N
from ..ir import semantics
from ..ir import types as T
from ..target.helpers import HELPERS
from ..target import maps as MAPS
from ..target.progtypes import PROG_TYPES
from .. import lang
from . import symbols as S


class Flow(Record, frozen=True):
    defined: frozenset  # of Var
    nonnull: frozenset  # of Var

    def assign(self, var: N.Var, nonnull: bool) -> "Flow":
        nn = self.nonnull | {var} if nonnull else self.nonnull - {var}
        return Flow(self.defined | {var}, nn)

    def with_nonnull(self, vs) -> "Flow":
        return Flow(self.defined, self.nonnull | frozenset(vs))

    @staticmethod
    def merge(a: "Flow | None", b: "Flow | None") -> "Flow | None":
        if a is None:
            return b
        if b is None:
            return a
        return Flow(a.defined & b.defined, a.nonnull & b.nonnull)


_ARITH = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "//", ast.Mod: "%",
          ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>"}
_CMP = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}


class BodyChecker:
    """Checks one program or DSL function. ``func`` is a :class:`N.Program` or :class:`N.Function`."""

    def __init__(self, mb, func):
        self.mb = mb
        self.func = func
        self.is_program = isinstance(func, N.Program)
        self.prog = func  # for messages and the return type of programs
        self.ret = T.I32 if self.is_program else func.ret
        self.vars: dict[str, N.Var] = {v.name: v for v in func.params}
        self.flow = Flow(frozenset(func.params), frozenset())
        self.loop_depth = 0
        self.loop_vars: dict[N.Var, int] = {}  # loop variable -> exclusive upper bound

    def loc(self, node: ast.AST) -> Loc:
        return Loc.of(self.mb.path, node)

    def error(self, node: ast.AST, msg: str, hint: str | None = None) -> UserError:
        return UserError(self.loc(node), msg, hint)

    # ================================================================ statements
    def check_function(self, fn: ast.FunctionDef) -> None:
        body = fn.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            body = body[1:]
        stmts, out = self.check_block(body, self.flow)
        self.func.body = stmts
        if out is not None and self.ret != T.VOID:
            last = fn.body[-1]
            if self.is_program:
                default = "return SK_PASS" if self.prog.progtype == "sk_msg" else "return 1"
                what = "program"
            else:
                default, what = "return 0", "function"
            self.mb.diags.error(Loc(self.mb.path, getattr(last, "end_lineno", last.lineno), last.col_offset),
                                f"{what} `{fn.name}` can reach its end without returning a value",
                                f"end every path with a return statement, e.g. `{default}`")

    def check_block(self, stmts: list[ast.stmt], flow: Flow) -> tuple[list[N.Stmt], Flow | None]:
        out: list[N.Stmt] = []
        for stmt in stmts:
            if flow is None:
                self.mb.diags.warning(self.loc(stmt), "unreachable code after return")
                break
            self.flow = flow
            try:
                flow = self.check_stmt(stmt, out)
            except UserError as e:
                self.mb.diags.add(e.diag)
                if self.mb.diags.too_many():
                    return out, None
                # keep going with what we know; a return still ends its path
                flow = None if isinstance(stmt, ast.Return) else self.flow
        return out, flow

    def check_stmt(self, s: ast.stmt, out: list[N.Stmt]) -> Flow | None:
        loc = self.loc(s)
        if isinstance(s, ast.Pass):
            return self.flow
        if isinstance(s, ast.Return):
            if self.ret == T.VOID:
                if s.value is not None:
                    raise self.error(s.value, f"function `{self.func.name}` returns None",
                                     "annotate its return type (e.g. `-> u32`) to return a value")
                out.append(N.Return(loc, None))
                return None
            if s.value is None:
                raise self.error(s, "a BPF program must return a value" if self.is_program else
                                 f"function `{self.func.name}` must return a {self.ret}",
                                 "return SK_PASS / SK_DROP from sk_msg, 1 from sock_ops" if self.is_program else None)
            if isinstance(s.value, (ast.List, ast.Tuple)) and isinstance(self.ret, T.ArrayT):
                v = self.array_literal(s.value, self.ret)
            else:
                v = self.expr(s.value)
            out.append(N.Return(loc, self.convert(v, self.ret, s.value, explicit=self.is_program)))
            return None
        if isinstance(s, ast.For):
            return self.check_for(s, out)
        if isinstance(s, (ast.Break, ast.Continue)):
            if not self.loop_depth:
                raise self.error(s, f"`{type(s).__name__.lower()}` outside a loop")
            out.append(N.Break(loc) if isinstance(s, ast.Break) else N.Continue(loc))
            return None
        if isinstance(s, ast.If):
            return self.check_if(s, out)
        if isinstance(s, ast.Assign):
            if len(s.targets) != 1:
                raise self.error(s, "chained assignment (a = b = c) is not supported")
            return self.assign(s.targets[0], s.value, None, out, loc)
        if isinstance(s, ast.AnnAssign):
            if s.value is None:
                raise self.error(s, "a local variable needs a value", f"write `{ast.unparse(s.target)}: ... = 0`")
            if not isinstance(s.target, ast.Name):
                raise self.error(s.target, "only local variable names can be annotated")
            typ = self.mb.resolve_type(s.annotation, "type")
            return self.assign(s.target, s.value, typ, out, loc)
        if isinstance(s, ast.AugAssign):
            op = _ARITH.get(type(s.op))
            if op is None:
                raise self.error(s, f"operator `{ast.unparse(s).split()[1]}` is not supported")
            target = self.place(s.target)
            value = self.binary(op, target, self.expr(s.value), s)
            out.append(N.Assign(loc, target, self.convert(value, target.type, s, explicit=True)))
            return self.flow
        if isinstance(s, ast.Expr):
            if isinstance(s.value, ast.Constant) and isinstance(s.value.value, str):
                return self.flow  # a string used as a comment
            v = self.expr(s.value)
            if not isinstance(v, (N.HelperCall, N.Call, N.AtomicRMW, N.AtomicCmpXchg)):
                self.mb.diags.warning(loc, "expression result is not used")
            out.append(N.ExprStmt(loc, v))
            return self.flow
        if isinstance(s, ast.While):
            raise self.error(s, "`while` loops are not supported: BPF loops must be bounded",
                             "write `for i in range(N):` with a constant N, and `break` to leave early")
        raise self.error(s, f"`{type(s).__name__}` statements are not supported in BPF programs")

    def check_for(self, s: ast.For, out: list[N.Stmt]) -> Flow | None:
        loc = self.loc(s)
        if s.orelse:
            raise self.error(s.orelse[0], "`for ... else` is not supported")
        it = s.iter
        if not (isinstance(it, ast.Call) and isinstance(it.func, ast.Name) and it.func.id == "range"
                and self.mb.scope.lookup("range") is None and not it.keywords and 1 <= len(it.args) <= 3):
            raise self.error(it, "a BPF loop iterates over `range(...)` with constant bounds",
                             "write `for i in range(N):` where N is a constant")
        bounds = [self.mb.consts.eval(a) for a in it.args]
        start, stop, step = (0, bounds[0], 1) if len(bounds) == 1 else (bounds + [1])[:3]
        if step == 0:
            raise self.error(it, "range() step must not be zero")
        if not (0 <= start <= 0xFFFFFFFF and 0 <= stop <= 0xFFFFFFFF) or step < 0:
            raise self.error(it, "loop bounds must be between 0 and 2**32-1 with a positive step")
        if (stop - start + step - 1) // step > 1 << 20:
            raise self.error(it, "this loop runs more than 1048576 times; the verifier would reject it")
        if not isinstance(s.target, ast.Name):
            raise self.error(s.target, "the loop variable must be a plain name")
        name = s.target.id
        if name in self.vars:
            raise self.error(s.target, f"loop variable `{name}` is already a local variable",
                             "use a fresh name for every loop variable")
        var = N.Var(name, T.U32, self.loc(s.target))
        self.vars[name] = var
        self.func.locals.append(var)
        assigned = assigned_names(s.body)
        if name in assigned:
            raise self.error(s, f"the loop variable `{name}` must not be assigned in the loop")
        start_flow = self.flow
        # what is known at the top of every iteration: nothing about names the body assigns
        head = Flow(start_flow.defined | {var},
                    frozenset(v for v in start_flow.nonnull if v.name not in assigned))
        self.loop_depth += 1
        self.loop_vars[var] = stop
        try:
            body, _ = self.check_block(s.body, head)
        finally:
            self.loop_depth -= 1
            del self.loop_vars[var]
        out.append(N.For(loc, var, start, stop, step, body))
        after = Flow(start_flow.defined, head.nonnull)
        self.flow = after
        return after

    def check_if(self, s: ast.If, out: list[N.Stmt]) -> Flow | None:
        start = self.flow
        cond = self.condition(s.test)
        t_facts, f_facts = facts(cond)
        then, out_t = self.check_block(s.body, start.with_nonnull(t_facts))
        orelse, out_f = self.check_block(s.orelse, start.with_nonnull(f_facts))
        out.append(N.If(self.loc(s), cond, then, orelse))
        merged = Flow.merge(out_t, out_f)
        self.flow = merged if merged is not None else start
        return merged

    def assign(self, target: ast.expr, value_node: ast.expr, declared: T.Type | None,
               out: list[N.Stmt], loc: Loc) -> Flow:
        if isinstance(value_node, (ast.List, ast.Tuple)):
            want = declared
            if want is None and isinstance(target, ast.Name) and target.id in self.vars:
                want = self.vars[target.id].type
            if want is None and not isinstance(target, ast.Name):
                want = self.place(target).type
            if not isinstance(want, T.ArrayT):
                raise self.error(value_node, "a list literal needs an array type",
                                 f"annotate the variable, e.g. `{ast.unparse(target)}: u32[4] = [...]`")
            value = self.array_literal(value_node, want)
        else:
            value = self.expr(value_node)
        if isinstance(target, ast.Name):
            name = target.id
            sym = self.mb.scope.lookup(name)
            var = self.vars.get(name)
            if var is not None and var.is_param:
                raise self.error(target, f"cannot assign to the parameter `{name}`",
                                 "parameters are read-only; copy the value into a local variable")
            if var is None:
                if sym is not None and sym.kind in ("map", "type", "program"):
                    raise self.error(target, f"`{name}` names a module-level {sym.kind}; pick another name for the local")
                typ = declared or self.infer_local_type(value, value_node)
                var = N.Var(name, typ, loc)
                self.vars[name] = var
                self.prog.locals.append(var)
            elif declared is not None and declared != var.type:
                raise self.error(target, f"`{name}` was declared as {var.type} at line {var.loc.line}")
            conv = self.convert(value, var.type, value_node)
            out.append(N.Assign(loc, N.VarRef(loc, var.type, var), conv))
            self.flow = self.flow.assign(var, isinstance(conv.type, T.RefT))
            return self.flow
        if declared is not None:
            raise self.error(target, "only local variable names can be annotated")
        place = self.place(target)
        out.append(N.Assign(loc, place, self.convert(value, place.type, value_node)))
        return self.flow

    def infer_local_type(self, value: N.Expr, node: ast.expr) -> T.Type:
        t = value.type
        if isinstance(value, N.Const) and value.literal and isinstance(t, T.IntT):
            return T.I64 if T.I64.contains(value.value) else T.U64
        if isinstance(t, T.NoneT):
            raise self.error(node, "cannot infer a type from None")
        if isinstance(t, (T.CtxT,)):
            raise self.error(node, "the context cannot be copied into a local variable")
        if isinstance(t, T.VoidT):
            raise self.error(node, "this call returns nothing",
                             "atomic_fetch_add() returns the old value" if isinstance(value, N.AtomicRMW) else None)
        return t

    # ================================================================ places (assignment targets)
    def place(self, node: ast.expr) -> N.Expr:
        if isinstance(node, ast.Name):
            var = self.vars.get(node.id)
            if var is None:
                raise self.error(node, f"local variable `{node.id}` is not defined")
            if var.is_param:
                raise self.error(node, f"cannot assign to the context parameter `{node.id}`")
            if var not in self.flow.defined:
                raise self.error(node, f"`{node.id}` may be used before it is assigned")
            return N.VarRef(self.loc(node), var.type, var)
        if isinstance(node, ast.Attribute):
            ctx = self.ctx_var(node.value)
            if ctx is not None and ctx.type.struct_t is None:
                f = self.ctx_field(node, ctx)
                if not f.writable:
                    raise self.error(node, f"context field `{node.attr}` is read-only")
                return N.CtxLoad(self.loc(node), f.type, ctx, f)
            if ctx is not None:  # syscall programs: fields of the user's struct, in memory
                return self.attribute(node)
            base = self.expr(node.value)
            if node.attr == "value" and isinstance(base.type, (T.RefT, T.OptRefT)):
                d = self.deref(base, node)
                if isinstance(base, N.GlobalRef) and base.decl.readonly:
                    raise self.error(node, f"`{base.decl.name}` is a Config: programs can only read it",
                                     "use Global(...) for a variable the programs change")
                return d
            if isinstance(base.type, T.StructT):
                if not is_place(base):
                    raise self.error(node, "cannot assign to a field of a temporary value")
                f = self.field(base, node)
                self.check_not_param(f, node)
                return f
        if isinstance(node, ast.Subscript):
            e = self.index(node)
            if not is_place(e):
                raise self.error(node, "cannot assign to an element of a temporary value")
            self.check_not_param(e, node)
            return e
        raise self.error(node, f"cannot assign to `{ast.unparse(node)}`",
                         "assign to a local name, a struct field, an array element, `ref.value`, "
                         "or a writable context field")

    def check_not_param(self, place: N.Expr, node: ast.AST) -> None:
        root = place
        while isinstance(root, (N.FieldGet, N.Index)):
            root = root.base
        if isinstance(root, N.VarRef) and root.var.is_param:
            raise self.error(node, f"cannot modify the parameter `{root.var.name}`",
                             "parameters are read-only; copy it into a local variable first")

    # ================================================================ expressions
    def condition(self, node: ast.expr) -> N.Expr:
        return self.truth(self.expr(node), node)

    def truth(self, v: N.Expr, node: ast.AST) -> N.Expr:
        loc = self.loc(node)
        if isinstance(v.type, T.BoolT):
            return v
        if isinstance(v.type, T.IntT):
            return N.Compare(loc, T.BOOL, "!=", v, N.Const(loc, v.type, 0, literal=False))
        if isinstance(v.type, (T.OptRefT, T.RefT)):
            return N.IsNull(loc, T.BOOL, v, negate=True)
        raise self.error(node, f"a value of type {v.type} cannot be used as a condition")

    def expr(self, node: ast.expr) -> N.Expr:
        loc = self.loc(node)
        if isinstance(node, ast.Constant):
            v = node.value
            if isinstance(v, bool):
                return N.Const(loc, T.BOOL, int(v), literal=False)
            if isinstance(v, int):
                t = T.literal_type(v)
                if t is None:
                    raise self.error(node, f"integer literal {v} does not fit in 64 bits")
                return N.Const(loc, t, v)
            if v is None:
                return N.Const(loc, T.NONE, 0)
            raise self.error(node, f"{type(v).__name__} values are not supported in BPF programs")
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.Attribute):
            return self.attribute(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.BinOp):
            op = _ARITH.get(type(node.op))
            if op is None:
                hint = "use `//` for integer division" if isinstance(node.op, ast.Div) else None
                raise self.error(node, f"operator `{type(node.op).__name__}` is not supported on integers", hint)
            return self.binary(op, self.expr(node.left), self.expr(node.right), node)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node)
        if isinstance(node, ast.BoolOp):
            return self.boolop(node)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Subscript):
            return self.index(node)
        if isinstance(node, ast.IfExp):
            raise self.error(node, "conditional expressions (`a if c else b`) are not supported",
                             "use an if statement")
        raise self.error(node, f"`{type(node).__name__}` expressions are not supported in BPF programs")

    def ctx_var(self, node: ast.expr) -> N.Var | None:
        if isinstance(node, ast.Name):
            v = self.vars.get(node.id)
            if v is not None and isinstance(v.type, T.CtxT):
                return v
        return None

    def index(self, node: ast.Subscript) -> N.Expr:
        loc = self.loc(node)
        if isinstance(node.slice, ast.Slice):
            raise self.error(node, "slices are not supported")
        # ctx.remote_ip6[i]: one 32-bit load at a constant offset
        if isinstance(node.value, ast.Attribute):
            ctx = self.ctx_var(node.value.value)
            if ctx is not None and ctx.type.struct_t is None:
                f = self.ctx_field(node.value, ctx)
                if not isinstance(f.type, T.ArrayT):
                    raise self.error(node, f"context field `{f.name}` is not an array")
                i = self.mb.consts.eval(node.slice) if not isinstance(node.slice, ast.Name) or \
                    node.slice.id not in self.vars else None
                if i is None:
                    raise self.error(node.slice, "context arrays need a constant index",
                                     f"copy the array first: `a = {ast.unparse(node.value)}`, then index `a`")
                if not 0 <= i < f.type.n:
                    raise self.error(node.slice, f"index {i} is out of range for {f.type}")
                return N.CtxLoad(loc, f.type.elem, ctx, f, index=i)
        base = self.expr(node.value)
        if not isinstance(base.type, T.ArrayT):
            raise self.error(node.value, f"a value of type {base.type} cannot be indexed")
        n = base.type.n
        idx = self.expr(node.slice)
        self.arith_operand(idx, node.slice)
        if isinstance(idx, N.Const):
            if not 0 <= idx.value < n:
                raise self.error(node.slice, f"index {idx.value} is out of range for {base.type} (0..{n - 1})")
        elif ctx_based(base):
            raise self.error(node.slice, "the verifier allows only constant offsets into the program context",
                             f"copy the array into a local first: `a = {ast.unparse(node.value)}`, then index `a`")
        elif not self.bounded(idx, n):
            raise self.error(node.slice, f"the index of `{ast.unparse(node.value)}` must provably be below {n}",
                             f"index with a constant, a loop variable of `range(M)` with M <= {n}, "
                             f"or mask it: `i & {n - 1}` when {n} is a power of two")
        idx = self.cast(idx, T.U64) if not isinstance(idx, N.Const) else N.Const(idx.loc, T.U64, idx.value, False)
        return N.Index(loc, base.type.elem, base, idx)

    def bounded(self, idx: N.Expr, n: int) -> bool:
        """Is an (unsigned) index provably below n? Loop variables and masks are."""
        if isinstance(idx, N.Cast) and isinstance(idx.value.type, T.IntT) and not idx.value.type.signed:
            return self.bounded(idx.value, n)
        if isinstance(idx, N.VarRef) and idx.var in self.loop_vars:
            return self.loop_vars[idx.var] <= n
        if isinstance(idx, N.Binary) and idx.op == "&" and isinstance(idx.type, T.IntT):
            for side in (idx.left, idx.right):
                if isinstance(side, N.Const) and 0 <= side.value < n:
                    return True
        if isinstance(idx, N.Binary) and idx.op == "%" and isinstance(idx.right, N.Const) and 0 < idx.right.value <= n:
            return True
        return False

    def array_literal(self, node: ast.List | ast.Tuple, t: T.ArrayT) -> N.Expr:
        if len(node.elts) > t.n:
            raise self.error(node, f"{len(node.elts)} values for an array of {t.n}")
        vals = []
        for e in node.elts:
            if isinstance(e, (ast.List, ast.Tuple)) and isinstance(t.elem, T.ArrayT):
                vals.append(self.array_literal(e, t.elem))
            else:
                vals.append(self.convert(self.expr(e), t.elem, e))
        return N.ArrayInit(self.loc(node), t, vals)

    def name(self, node: ast.Name) -> N.Expr:
        loc = self.loc(node)
        var = self.vars.get(node.id)
        if var is not None:
            if isinstance(var.type, T.CtxT):
                return N.CtxRef(loc, var.type, var)
            if var not in self.flow.defined:
                raise self.error(node, f"`{node.id}` may be used before it is assigned",
                                 "assign it on every path before this line")
            ref = N.VarRef(loc, var.type, var)
            if isinstance(var.type, T.OptRefT) and var in self.flow.nonnull:
                return N.Narrow(loc, T.RefT(var.type.target), ref)
            return ref
        sym = self.mb.resolve(node)
        if sym is None:
            raise self.error(node, f"name `{node.id}` is not defined")
        return self.global_value(sym, node)

    def global_value(self, sym, node: ast.expr) -> N.Expr:
        loc = self.loc(node)
        if sym.kind == "const":
            t = T.literal_type(sym.value)
            if t is None:
                raise self.error(node, f"constant {sym.value} does not fit in 64 bits")
            return N.Const(loc, t, sym.value)
        if sym.kind == "map":
            return N.MapRef(loc, T.NONE, sym.value)
        if sym.kind == "global":
            return N.GlobalRef(loc, T.RefT(sym.value.type), sym.value)
        what = {"type": "a type", "program": "a program", "lang": "a pybpfgen.lang declaration",
                "langmod": "a module", "enum": "an enum type", "function": "a function"}.get(sym.kind, sym.kind)
        raise self.error(node, f"`{ast.unparse(node)}` is {what}, not a value")

    def attribute(self, node: ast.Attribute) -> N.Expr:
        loc = self.loc(node)
        ctx = self.ctx_var(node.value)
        if ctx is not None:
            if ctx.type.struct_t is not None:  # syscall programs: a pointer to the user's struct
                base = N.Deref(loc, ctx.type.struct_t, N.CtxRef(loc, ctx.type, ctx))
                return self.field(base, node)
            f = self.ctx_field(node, ctx)
            return N.CtxLoad(loc, f.type, ctx, f)
        sym = self.mb.resolve(node)
        if sym is not None:
            return self.global_value(sym, node)
        base = self.expr(node.value)
        if isinstance(base.type, T.StructT):
            return self.field(base, node)
        if isinstance(base.type, (T.RefT, T.OptRefT)):
            if node.attr != "value":
                if isinstance(base, N.GlobalRef):
                    raise self.error(node, f"a global has no attribute `{node.attr}`",
                                     f"read or write it through `.value`: `{ast.unparse(node.value)}.value`")
                raise self.error(node, f"a map value reference has no attribute `{node.attr}`",
                                 f"read or write the value through `.value`, e.g. `{ast.unparse(node.value)}.value`")
            return self.deref(base, node)
        if isinstance(base, N.MapRef):
            raise self.error(node, f"`{ast.unparse(node)}` is a map method; call it")
        raise self.error(node, f"a value of type {base.type} has no attribute `{node.attr}`")

    def ctx_field(self, node: ast.Attribute, ctx: N.Var) -> N.CtxField:
        pt = PROG_TYPES[ctx.type.progtype]
        f = pt.fields.get(node.attr)
        if f is None:
            known = ", ".join(sorted(pt.fields))
            raise self.error(node, f"{pt.ctx_class} has no field `{node.attr}`", f"fields: {known}")
        return f

    def field(self, base: N.Expr, node: ast.Attribute) -> N.Expr:
        st = base.type
        assert isinstance(st, T.StructT)
        f = st.by_name.get(node.attr)
        if f is None:
            raise self.error(node, f"struct {st.name} has no field `{node.attr}`",
                             f"fields: {', '.join(x.name for x in st.fields)}")
        return N.FieldGet(self.loc(node), f.type, base, f)

    def deref(self, base: N.Expr, node: ast.Attribute) -> N.Expr:
        if isinstance(base.type, T.OptRefT):
            shown = ast.unparse(node.value)
            raise self.error(node, f"`{shown}` may be None here: a map lookup finds nothing when the key is absent",
                             f"check it first: `if {shown} is not None:` (or return early when it is None)")
        volatile = isinstance(base, N.GlobalRef) and base.decl.readonly
        return N.Deref(self.loc(node), base.type.target, base, volatile=volatile)

    # ---------------------------------------------------------------- operators
    def arith_operand(self, v: N.Expr, node: ast.AST) -> None:
        if not T.is_arith(v.type):
            raise self.error(node, f"operand of type {v.type} is not an integer")

    def binary(self, op: str, left: N.Expr, right: N.Expr, node: ast.AST) -> N.Expr:
        loc = self.loc(node)
        self.arith_operand(left, node)
        self.arith_operand(right, node)
        if op in ("<<", ">>"):
            rt = T.promote(left.type)
            if isinstance(right, N.Const) and not 0 <= right.value < rt.bits:
                raise self.error(node, f"shift count {right.value} is outside 0..{rt.bits - 1} for {rt}")
        else:
            rt = T.common_type(left.type, right.type)
        if op in ("//", "%"):
            if isinstance(right, N.Const) and right.value == 0:
                raise self.error(node, "division by zero")
            if rt.signed:
                raise self.error(node, f"signed division ({rt}) is not supported on this BPF target",
                                 f"convert the operands to unsigned, e.g. `u{rt.bits}(x) {op} u{rt.bits}(y)`")
        l, r = self.cast(left, rt), self.cast(right, rt)
        if isinstance(l, N.Const) and isinstance(r, N.Const):
            return N.Const(loc, rt, semantics.binary(op, l.value, r.value, rt), literal=False)
        return N.Binary(loc, rt, op, l, r)

    def unary(self, node: ast.UnaryOp) -> N.Expr:
        loc = self.loc(node)
        if isinstance(node.op, ast.Not):
            v = self.condition(node.operand)
            if isinstance(v, N.Const):
                return N.Const(loc, T.BOOL, int(not v.value), literal=False)
            return N.Not(loc, T.BOOL, v)
        v = self.expr(node.operand)
        self.arith_operand(v, node)
        if isinstance(node.op, ast.UAdd):
            return self.cast(v, T.promote(v.type))
        if isinstance(v, N.Const) and v.literal and isinstance(node.op, ast.USub):
            t = T.literal_type(-v.value)
            if t is not None:
                return N.Const(loc, t, -v.value)
        rt = T.promote(v.type)
        v = self.cast(v, rt)
        op = "-" if isinstance(node.op, ast.USub) else "~"
        if isinstance(v, N.Const):
            return N.Const(loc, rt, rt.wrap(-v.value if op == "-" else ~v.value), literal=False)
        return N.Unary(loc, rt, op, v)

    def boolop(self, node: ast.BoolOp) -> N.Expr:
        op = "and" if isinstance(node.op, ast.And) else "or"
        saved = self.flow
        result = self.condition(node.values[0])
        for nxt in node.values[1:]:
            t, f = facts(result)
            self.flow = saved.with_nonnull(t if op == "and" else f)
            right = self.condition(nxt)
            result = N.Logical(self.loc(node), T.BOOL, op, result, right)
        self.flow = saved
        return result

    def compare(self, node: ast.Compare) -> N.Expr:
        if len(node.ops) != 1:
            raise self.error(node, "chained comparisons are not supported", "combine two comparisons with `and`")
        op, rnode = node.ops[0], node.comparators[0]
        loc = self.loc(node)
        if isinstance(op, (ast.Is, ast.IsNot)):
            if not (isinstance(rnode, ast.Constant) and rnode.value is None):
                raise self.error(node, "`is` compares only with None", "use == to compare values")
            v = self.expr(node.left)
            if not isinstance(v.type, (T.OptRefT, T.RefT)):
                raise self.error(node.left, f"a value of type {v.type} is never None")
            return N.IsNull(loc, T.BOOL, v, negate=isinstance(op, ast.IsNot))
        if isinstance(op, (ast.In, ast.NotIn)):
            m = self.expr(rnode)
            if not isinstance(m, N.MapRef):
                raise self.error(rnode, "`in` tests membership in a map", "write `key in some_map`")
            found = self.map_lookup(m, node.left, node)
            return N.IsNull(loc, T.BOOL, found, negate=isinstance(op, ast.In))
        sop = _CMP.get(type(op))
        left, right = self.expr(node.left), self.expr(rnode)
        self.arith_operand(left, node)
        self.arith_operand(right, node)
        ct = T.common_type(left.type, right.type)
        lt, rt = left.type, right.type
        if isinstance(lt, T.IntT) and isinstance(rt, T.IntT) and lt.signed != rt.signed \
                and not isinstance(left, N.Const) and not isinstance(right, N.Const) and not ct.signed:
            self.mb.diags.warning(loc, f"comparison of signed {lt if lt.signed else rt} with unsigned "
                                       f"{rt if lt.signed else lt}: the signed side is converted to unsigned",
                                  "cast one side explicitly to say which comparison you mean")
        l, r = self.cast(left, ct), self.cast(right, ct)
        if isinstance(l, N.Const) and isinstance(r, N.Const):
            return N.Const(loc, T.BOOL, int(semantics.compare(sop, l.value, r.value)), literal=False)
        return N.Compare(loc, T.BOOL, sop, l, r)

    # ---------------------------------------------------------------- calls
    def call(self, node: ast.Call) -> N.Expr:
        f = node.func
        if isinstance(f, ast.Attribute) and self.ctx_var(f.value) is None:
            base_sym = self.mb.resolve(f.value) if isinstance(f.value, (ast.Name, ast.Attribute)) else None
            if isinstance(f.value, ast.Name) and f.value.id in self.vars:
                raise self.error(f, f"`{f.value.id}` has no methods")
            if base_sym is not None and base_sym.kind == "map":
                return self.map_method(N.MapRef(self.loc(f.value), T.NONE, base_sym.value), f.attr, node)
        sym = self.mb.resolve(f) if isinstance(f, (ast.Name, ast.Attribute)) else None
        if isinstance(f, ast.Name) and f.id in self.vars:
            sym = None
        if sym is not None:
            if sym.kind == "lang" and sym.value in S.INT_TYPES:
                return self.explicit_cast(S.INT_TYPES[sym.value], node)
            if sym.kind == "type":
                if isinstance(sym.value, T.StructT):
                    return self.struct_init(sym.value, node)
            if sym.kind == "function":
                return self.call_function(sym.value, node)
            if sym.kind == "lang" and sym.value is lang.bpf_printk:
                return self.printk(node)
            if sym.kind == "lang" and sym.value in S.ATOMICS:
                return self.atomic(sym.value, node)
            if sym.kind == "lang":
                hname = S.helper_name(sym.value)
                if hname is not None:
                    return self.raw_helper(HELPERS[hname], node)
            if sym.kind == "program":
                raise self.error(node, "programs cannot call other programs",
                                 "move the shared code into an undecorated function and call that")
        if isinstance(f, ast.Name) and f.id == "bool" and self.mb.scope.lookup("bool") is None:
            if len(node.args) != 1 or node.keywords:
                raise self.error(node, "bool(...) takes one value")
            return self.condition(node.args[0])
        raise self.error(node, f"`{ast.unparse(f)}` cannot be called in a BPF program",
                         "call a map method, a bpf_* helper, a function of this module, an integer type (cast) "
                         "or a Struct (constructor)")

    def no_keywords(self, node: ast.Call, what: str) -> None:
        if node.keywords:
            raise self.error(node.keywords[0].value, f"{what} takes no keyword arguments")

    def explicit_cast(self, t: T.IntT, node: ast.Call) -> N.Expr:
        self.no_keywords(node, str(t))
        if len(node.args) != 1:
            raise self.error(node, f"{t}(...) takes one value")
        v = self.expr(node.args[0])
        self.arith_operand(v, node.args[0])
        return self.cast(v, t, loc=self.loc(node))

    def struct_init(self, st: T.StructT, node: ast.Call) -> N.Expr:
        values: dict[str, N.Expr] = {}
        if len(node.args) > len(st.fields):
            raise self.error(node, f"{st.name} has {len(st.fields)} fields, got {len(node.args)} values")
        items = list(zip(st.fields, node.args))
        for kw in node.keywords:
            f = st.by_name.get(kw.arg or "")
            if f is None:
                raise self.error(kw.value, f"struct {st.name} has no field `{kw.arg}`",
                                 f"fields: {', '.join(x.name for x in st.fields)}")
            if any(f is g for g, _ in items):
                raise self.error(kw.value, f"field `{f.name}` is given twice")
            items.append((f, kw.value))
        for f, a in items:
            if isinstance(a, (ast.List, ast.Tuple)) and isinstance(f.type, T.ArrayT):
                values[f.name] = self.array_literal(a, f.type)
            else:
                values[f.name] = self.convert(self.expr(a), f.type, a)
        return N.StructInit(self.loc(node), st, st, values)

    def call_function(self, fn: N.Function, node: ast.Call) -> N.Expr:
        self.no_keywords(node, f"`{fn.name}()`")
        if len(node.args) != len(fn.params):
            raise self.error(node, f"`{fn.name}()` takes {len(fn.params)} argument(s), got {len(node.args)}")
        args = []
        for p, a in zip(fn.params, node.args):
            if isinstance(p.type, T.CtxT):
                v = self.expr(a)
                if not isinstance(v, N.CtxRef) or v.type.progtype != p.type.progtype:
                    raise self.error(a, f"parameter `{p.name}` of `{fn.name}` is a {p.type} context")
                args.append(v)
            else:
                args.append(self.convert(self.expr(a), p.type, a))
        if fn not in self.func.calls:
            self.func.calls.append(fn)
        return N.Call(self.loc(node), fn.ret, fn, args)

    def printk(self, node: ast.Call) -> N.Expr:
        """``bpf_printk("fmt", a, b)``: bpf_trace_printk with a format checked here."""
        self.no_keywords(node, "bpf_printk()")
        if not node.args or not (isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            raise self.error(node, "bpf_printk needs a constant format string first")
        fmt = node.args[0].value
        specs = re.findall(r"%(%|[-0-9]*(?:ll|l)?[diuxX]|[-0-9]*[a-zA-Z]+)", fmt)
        conv = [sp for sp in specs if sp != "%"]
        for sp in conv:
            if not re.fullmatch(r"[-0-9]*(ll|l)?[diuxX]", sp):
                raise self.error(node.args[0], f"bpf_printk does not support `%{sp}`",
                                 "use %d %i %u %x with an optional l or ll width")
        args = node.args[1:]
        if len(conv) != len(args):
            raise self.error(node, f"the format has {len(conv)} conversion(s) but {len(args)} argument(s) are given")
        if len(args) > 3:
            raise self.error(node, "bpf_printk takes at most 3 values")
        h = HELPERS["trace_printk"]
        self.use_helper(h, "bpf_printk()", node)
        data = fmt.encode() + b"\0"
        out: list[N.Expr] = [N.FormatString(self.loc(node.args[0]), T.NONE, data)]
        for a in args:
            v = self.expr(a)
            self.arith_operand(v, a)
            out.append(self.cast(v, T.U64))
        fixed = N.Helper(h.name, h.id, h.ret, ("fmt",) + ("u64",) * len(args), h.progtypes)
        return N.HelperCall(self.loc(node), T.I64, fixed, out)

    def atomic(self, fn: Callable[..., object], node: ast.Call) -> N.Expr:
        """``atomic_add(place, value)``, ``atomic_fetch_add``, ``atomic_xchg``, ``atomic_cmpxchg(place, expected,
        new)``: one atomic operation on an integer in shared memory. The operands are converted to the place's
        type as an assignment to it would convert them."""
        op, fetch = S.ATOMICS[fn]
        name = fn.__name__
        operands = ["place", "expected", "new"] if op == "cmpxchg" else ["place", "value"]
        args = self.args_of(node, operands, len(operands), f"`{name}()`")
        place = self.atomic_place(args[0], name)
        values = [self.convert(self.expr(a), place.type, a) for a in args[1:]]
        loc = self.loc(node)
        if op == "cmpxchg":
            return N.AtomicCmpXchg(loc, place.type, place, values[0], values[1])
        return N.AtomicRMW(loc, place.type if fetch else T.VOID, op, place, values[0])

    def atomic_place(self, node: ast.expr, name: str) -> N.Expr:
        """The place of an atomic operation: a u32/u64/i32/i64 in a map value or a Global (what the verifier
        allows; there are no 8- or 16-bit atomics)."""
        shown = ast.unparse(node)
        place = self.expr(node)
        if isinstance(place.type, (T.RefT, T.OptRefT)):
            raise self.error(node, f"`{shown}` is a reference: atomics act on the integer it points to",
                             f"write `{shown}.value`, or `{shown}.value.<field>` for a struct value")
        root = place
        while isinstance(root, (N.FieldGet, N.Index)):
            root = root.base
        if isinstance(root, N.VarRef):
            raise self.error(node, f"`{shown}` is a local variable: atomics act on memory shared between CPUs "
                                   "(a map value field or a Global); a local variable needs none",
                             f"update it with ordinary arithmetic, e.g. `{shown} += 1`")
        if isinstance(root, (N.CtxLoad, N.CtxRef)) or ctx_based(place):
            raise self.error(node, f"`{shown}` is in the program context: atomics act on memory shared between "
                                   "CPUs (a map value field or a Global)",
                             "the verifier rejects atomic operations on the context; read and write it directly")
        if not isinstance(root, N.Deref):
            raise self.error(node, f"{name}() acts on an integer in memory shared between CPUs, not on `{shown}`",
                             "pass a field of a map value (`r.value.hits` where `r = m.lookup(k)` is checked for "
                             "None) or a Global (`g.value`)")
        if isinstance(root.ref, N.GlobalRef) and root.ref.decl.readonly:
            raise self.error(node, f"`{root.ref.decl.name}` is a Config: programs can only read it",
                             "use Global(...) for a variable the programs change")
        t = place.type
        if isinstance(t, T.IntT) and t.bits < 32:
            raise self.error(node, f"BPF has no {t.bits}-bit atomic operations: `{shown}` is a {t}",
                             "declare it as u32, u64, i32 or i64 to update it atomically")
        if not isinstance(t, T.IntT):
            raise self.error(node, f"{name}() acts on a u32, u64, i32 or i64, and `{shown}` is a {t}",
                             "name one integer field or element of it")
        return place

    def use_helper(self, h: N.Helper, what: str, node: ast.AST) -> None:
        """Programs check helpers at once; functions record them for each program that calls them."""
        if not self.is_program:
            self.func.helper_uses.append((h, self.loc(node), what))
            return
        if h.progtypes is not None and self.prog.progtype not in h.progtypes:
            raise self.error(node, f"{what} (bpf_{h.name}) cannot be called from a {self.prog.progtype} program",
                             f"it is available in: {', '.join(sorted(h.progtypes))} programs")

    def args_of(self, node: ast.Call, names: list[str], required: int, what: str) -> list[ast.expr | None]:
        if len(node.args) > len(names):
            raise self.error(node, f"{what} takes at most {len(names)} arguments ({', '.join(names)})")
        got: list[ast.expr | None] = list(node.args) + [None] * (len(names) - len(node.args))
        for kw in node.keywords:
            if kw.arg not in names:
                raise self.error(kw.value, f"{what} has no parameter `{kw.arg}`", f"parameters: {', '.join(names)}")
            i = names.index(kw.arg)
            if got[i] is not None:
                raise self.error(kw.value, f"argument `{kw.arg}` is given twice")
            got[i] = kw.value
        for i in range(required):
            if got[i] is None:
                raise self.error(node, f"{what} is missing argument `{names[i]}`")
        return got

    def map_method(self, m: N.MapRef, method: str, node: ast.Call) -> N.Expr:
        """``m.method(...)``: the map kind's table (target/maps.py) says which helper it calls, with which
        parameters."""
        decl = m.map
        what = f"`{decl.name}.{method}()`"
        kind = MAPS.BY_KIND[decl.kind]
        meth = kind.method(method)
        if meth is None:
            msg, hint = kind.refuses.get(method) or kind.no_method
            raise self.error(node.func, msg.format(kind=decl.kind, name=decl.name, method=method), hint)
        args = self.args_of(node, list(meth.params), meth.required, what)
        if meth.helper == "map_lookup_elem":
            return self.map_lookup(m, args[0], node)
        h = HELPERS[meth.helper]
        rest = iter(args)
        return self.helper_call(h, what, node, [m if k == "map" else next(rest) for k in h.params], decl)

    def map_lookup(self, m: N.MapRef, key: ast.expr, node: ast.AST) -> N.Expr:
        if not MAPS.BY_KIND[m.map.kind].lookup:
            raise self.error(node, f"looking up {m.map.kind} `{m.map.name}` is not supported in BPF programs",
                             "use redirect() to send a message to the socket under a key")
        return self.helper_call(HELPERS["map_lookup_elem"], f"`{m.map.name}.lookup()`", node, [m, key], m.map)

    def raw_helper(self, h: N.Helper, node: ast.Call) -> N.Expr:
        """``bpf_<helper>(...)``: arguments follow the helper's parameter kinds."""
        what = f"`bpf_{h.name}()`"
        names = [k if k not in ("ctx",) else "ctx" for k in h.params]
        required = len(names) - (1 if names and names[-1] == "u64" and h.name in _OPTIONAL_FLAGS else 0)
        args = self.args_of(node, [f"{k}{i}" if names.count(k) > 1 else k for i, k in enumerate(names)],
                            required, what)
        decl = None
        prepared: list = []
        for kind, a in zip(h.params, args):
            if kind == "map":
                mref = self.expr(a)  # type: ignore[arg-type]
                if not isinstance(mref, N.MapRef):
                    raise self.error(a, f"argument `map` of {what} must be a map declared at module level")
                decl = mref.map
                prepared.append(mref)
            else:
                prepared.append(a)
        if h.name == "map_lookup_elem":
            return self.map_lookup(prepared[0], args[1], node)  # type: ignore[arg-type]
        return self.helper_call(h, what, node, prepared, decl)

    def helper_call(self, h: N.Helper, what: str, node: ast.AST, args: list, decl: N.MapDecl | None) -> N.Expr:
        """Type the arguments of a helper by its parameter kinds. ``args`` holds AST nodes, None, or MapRef."""
        self.use_helper(h, what, node)
        if decl is not None:
            expected = MAPS.MAP_KINDS_FOR.get(h.name)
            if expected is not None and decl.kind not in expected:
                raise self.error(node, f"{what} needs a {' or '.join(expected)} map, not the {decl.kind} `{decl.name}`")
        out: list[N.Expr] = []
        for kind, a in zip(h.params, args):
            if kind == "map":
                out.append(a if isinstance(a, N.MapRef) else self.expr(a))
            elif kind == "ctx":
                v = self.expr(a)
                if not isinstance(v, N.CtxRef):
                    raise self.error(a, f"the first argument of {what} is the program's context",
                                     "pass the context parameter")
                out.append(v)
            elif kind in ("key", "value", "ptr"):
                if kind == "ptr":  # older table encoding: the first pointer is the key, the second the value
                    kind = "value" if any(isinstance(x, N.AddrOf) for x in out) else "key"
                want = decl.key if kind == "key" else decl.value
                if isinstance(a, (ast.List, ast.Tuple)) and isinstance(want, T.ArrayT):
                    v = self.array_literal(a, want)
                else:
                    v = self.convert(self.expr(a), want, a)
                out.append(N.AddrOf(v.loc, v.type, v))
            elif kind == "data":
                v = self.expr(a)
                if not isinstance(v.type, (T.IntT, T.StructT, T.ArrayT)):
                    raise self.error(a, f"{what} copies a struct, array or integer, not {v.type}")
                out.append(N.AddrOf(v.loc, v.type, v))
            elif kind == "u64":
                if a is None:
                    out.append(N.Const(self.loc(node), T.U64, 0, literal=False))
                else:
                    v = self.expr(a)
                    self.arith_operand(v, a)
                    out.append(self.cast(v, T.U64))
            else:
                raise self.error(node, f"{what} takes a `{kind}` argument, which pybpfgen cannot pass yet")
        if h.ret == "ptr":
            rt: T.Type = T.OptRefT(decl.value)
        elif h.ret == "u64":
            rt = T.U64
        else:
            rt = T.I64
        return N.HelperCall(self.loc(node), rt, h, out)

    # ================================================================ conversions
    def cast(self, v: N.Expr, t: T.IntT, loc: Loc | None = None) -> N.Expr:
        """An explicit (C-style) conversion: truncates or extends, never fails for integers."""
        if v.type == t:
            return v
        if isinstance(v, N.Const):
            return N.Const(loc or v.loc, t, t.wrap(v.value), literal=False)
        return N.Cast(loc or v.loc, t, v)

    def convert(self, v: N.Expr, t: T.Type, node: ast.AST, explicit: bool = False) -> N.Expr:
        """An implicit conversion (assignment, argument, field value)."""
        src = v.type
        if src == t:
            return v
        if isinstance(t, T.OptRefT) and isinstance(src, T.RefT) and src.target == t.target:
            return v
        if isinstance(t, (T.IntT, T.BoolT)) and isinstance(src, (T.IntT, T.BoolT)):
            if isinstance(t, T.BoolT):
                return self.truth(v, node)
            if explicit:
                return self.cast(v, t)
            if isinstance(v, N.Const):
                if t.contains(v.value):
                    return N.Const(v.loc, t, v.value, literal=False)
                raise self.error(node, f"constant {v.value} does not fit in {t}",
                                 f"write `{t}({ast.unparse(node)})` to wrap it explicitly")
            if isinstance(src, T.BoolT) or widens(src, t):
                return N.Cast(v.loc, t, v)
            raise self.error(node, f"cannot implicitly convert {src} to {t}: values may be lost",
                             f"write `{t}({ast.unparse(node)})` to convert explicitly")
        if isinstance(src, T.OptRefT) and isinstance(t, T.RefT):
            shown = ast.unparse(node)
            raise self.error(node, f"`{shown}` may be None here", f"check it first: `if {shown} is not None:`")
        raise self.error(node, f"expected a value of type {t}, got {src}")


# ==================================================================== helpers
_OPTIONAL_FLAGS = {"map_update_elem", "sock_hash_update", "msg_redirect_hash", "sock_map_update",
                   "msg_redirect_map", "ringbuf_output"}


def assigned_names(stmts: list[ast.stmt]) -> set[str]:
    """Names assigned anywhere in these statements (syntactically)."""
    out: set[str] = set()
    for s in stmts:
        for n in ast.walk(s):
            if isinstance(n, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                targets = n.targets if isinstance(n, ast.Assign) else [n.target]
                for t in targets:
                    if isinstance(t, ast.Name):
                        out.add(t.id)
            elif isinstance(n, ast.For) and isinstance(n.target, ast.Name):
                out.add(n.target.id)
    return out


def widens(src: T.IntT, dst: T.IntT) -> bool:
    if src.signed == dst.signed:
        return dst.bits >= src.bits
    return not src.signed and dst.signed and dst.bits > src.bits


def is_place(e: N.Expr) -> bool:
    if isinstance(e, (N.VarRef, N.Deref)):
        return True
    if isinstance(e, (N.FieldGet, N.Index)):
        return is_place(e.base)
    return False


def ctx_based(e: N.Expr) -> bool:
    """Is this place inside the program's context (a syscall program's struct)?"""
    while isinstance(e, (N.FieldGet, N.Index)):
        e = e.base
    return isinstance(e, N.Deref) and isinstance(e.ref, N.CtxRef)


def _narrowable(e: N.Expr) -> N.Var | None:
    if isinstance(e, N.Narrow):
        e = e.value
    return e.var if isinstance(e, N.VarRef) else None


def facts(cond: N.Expr) -> tuple[set, set]:
    """Variables proven non-None when ``cond`` is true, and when it is false."""
    if isinstance(cond, N.IsNull):
        v = _narrowable(cond.value)
        if v is None:
            return set(), set()
        return ({v}, set()) if cond.negate else (set(), {v})
    if isinstance(cond, N.Not):
        t, f = facts(cond.value)
        return f, t
    if isinstance(cond, N.Logical):
        lt, lf = facts(cond.left)
        rt, rf = facts(cond.right)
        if cond.op == "and":
            return lt | rt, lf & rf
        return lt & rt, lf | rf
    return set(), set()


