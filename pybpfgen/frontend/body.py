"""Type-checking program bodies: Python statements → typed IR.

Flow-sensitive facts are tracked per path: which locals are definitely assigned,
and which optional map-lookup results are proven non-None (so that using a lookup
result without a None check is a compile error, not a verifier rejection).
"""
from __future__ import annotations

import ast
from dataclasses import dataclass

from ..diagnostics import Loc, UserError
from ..ir import nodes as N
from ..ir import types as T
from ..target.helpers import HELPERS
from ..target.progtypes import PROG_TYPES
from . import symbols as S


@dataclass(frozen=True)
class Flow:
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
    def __init__(self, mb, prog: N.Program):
        self.mb = mb
        self.prog = prog
        self.pt = PROG_TYPES[prog.progtype]
        self.vars: dict[str, N.Var] = {prog.ctx.name: prog.ctx}
        self.flow = Flow(frozenset([prog.ctx]), frozenset())

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
        self.prog.body = stmts
        if out is not None:
            last = fn.body[-1]
            default = "return SK_PASS" if self.prog.progtype == "sk_msg" else "return 1"
            self.mb.diags.error(Loc(self.mb.path, getattr(last, "end_lineno", last.lineno), last.col_offset),
                                f"program `{fn.name}` can reach its end without returning a value",
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
            if s.value is None:
                raise self.error(s, "a BPF program must return a value",
                                 "return SK_PASS / SK_DROP from sk_msg, 1 from sock_ops")
            v = self.expr(s.value)
            out.append(N.Return(loc, self.convert(v, T.I32, s.value, explicit=True)))
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
            if not isinstance(v, N.HelperCall):
                self.mb.diags.warning(loc, "expression result is not used")
            out.append(N.ExprStmt(loc, v))
            return self.flow
        if isinstance(s, (ast.For, ast.While)):
            raise self.error(s, "loops are not supported in BPF programs yet",
                             "unroll the loop by hand; bounded `for i in range(N)` is planned")
        raise self.error(s, f"`{type(s).__name__}` statements are not supported in BPF programs")

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
        value = self.expr(value_node)
        if isinstance(target, ast.Name):
            name = target.id
            sym = self.mb.scope.lookup(name)
            if name == self.prog.ctx.name:
                raise self.error(target, f"cannot assign to the context parameter `{name}`")
            var = self.vars.get(name)
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
            if isinstance(node.value, ast.Name) and node.value.id == self.prog.ctx.name:
                f = self.ctx_field(node)
                if not f.writable:
                    raise self.error(node, f"context field `{node.attr}` is read-only")
                return N.CtxLoad(self.loc(node), f.type, self.prog.ctx, f)
            base = self.expr(node.value)
            if node.attr == "value" and isinstance(base.type, (T.RefT, T.OptRefT)):
                return self.deref(base, node)
            if isinstance(base.type, T.StructT):
                if not is_place(base):
                    raise self.error(node, "cannot assign to a field of a temporary value")
                return self.field(base, node)
        raise self.error(node, f"cannot assign to `{ast.unparse(node)}`",
                         "assign to a local name, a struct field, `ref.value`, or a writable context field")

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
        raise self.error(node, f"`{type(node).__name__}` expressions are not supported in BPF programs")

    def name(self, node: ast.Name) -> N.Expr:
        loc = self.loc(node)
        var = self.vars.get(node.id)
        if var is not None:
            if var.is_param:
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
        what = {"type": "a type", "program": "a program", "lang": "a pybpfgen.lang declaration",
                "langmod": "a module"}.get(sym.kind, sym.kind)
        raise self.error(node, f"`{ast.unparse(node)}` is {what}, not a value")

    def attribute(self, node: ast.Attribute) -> N.Expr:
        loc = self.loc(node)
        if isinstance(node.value, ast.Name) and node.value.id == self.prog.ctx.name:
            f = self.ctx_field(node)
            return N.CtxLoad(loc, f.type, self.prog.ctx, f)
        sym = self.mb.resolve(node)
        if sym is not None:
            return self.global_value(sym, node)
        base = self.expr(node.value)
        if isinstance(base.type, T.StructT):
            return self.field(base, node)
        if isinstance(base.type, (T.RefT, T.OptRefT)):
            if node.attr != "value":
                raise self.error(node, f"a map value reference has no attribute `{node.attr}`",
                                 f"read or write the value through `.value`, e.g. `{ast.unparse(node.value)}.value`")
            return self.deref(base, node)
        if isinstance(base, N.MapRef):
            raise self.error(node, f"`{ast.unparse(node)}` is a map method; call it")
        raise self.error(node, f"a value of type {base.type} has no attribute `{node.attr}`")

    def ctx_field(self, node: ast.Attribute) -> N.CtxField:
        f = self.pt.fields.get(node.attr)
        if f is None:
            known = ", ".join(sorted(self.pt.fields))
            raise self.error(node, f"{self.pt.ctx_class} has no field `{node.attr}`", f"fields: {known}")
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
        return N.Deref(self.loc(node), base.type.target, base)

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
            return N.Const(loc, rt, fold_binary(op, l.value, r.value, rt), literal=False)
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
            return N.Const(loc, T.BOOL, int(fold_compare(sop, l.value, r.value)), literal=False)
        return N.Compare(loc, T.BOOL, sop, l, r)

    # ---------------------------------------------------------------- calls
    def call(self, node: ast.Call) -> N.Expr:
        loc = self.loc(node)
        f = node.func
        if isinstance(f, ast.Attribute) and not (isinstance(f.value, ast.Name) and f.value.id == self.prog.ctx.name):
            base_sym = self.mb.resolve(f.value) if isinstance(f.value, (ast.Name, ast.Attribute)) else None
            if base_sym is None or base_sym.kind == "map":
                if base_sym is None and isinstance(f.value, ast.Name) and f.value.id in self.vars:
                    raise self.error(f, f"`{f.value.id}` has no methods")
                if base_sym is not None:
                    return self.map_method(N.MapRef(self.loc(f.value), T.NONE, base_sym.value), f.attr, node)
        sym = self.mb.resolve(f) if isinstance(f, (ast.Name, ast.Attribute)) else None
        if isinstance(f, ast.Name) and f.id in self.vars:
            sym = None
        if sym is not None:
            if sym.kind == "lang" and sym.value in S.INT_TYPES:
                return self.explicit_cast(S.INT_TYPES[sym.value], node)
            if sym.kind == "type":
                return self.struct_init(sym.value, node)
            if sym.kind == "lang" and sym.value in S.RAW_HELPERS:
                return self.raw_helper(S.RAW_HELPERS[sym.value], node)
            if sym.kind == "program":
                raise self.error(node, "programs cannot call other programs")
        raise self.error(node, f"`{ast.unparse(f)}` cannot be called in a BPF program",
                         "call a map method, a bpf_* helper, an integer type (cast) or a Struct (constructor)")

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
        for f, a in zip(st.fields, node.args):
            values[f.name] = self.convert(self.expr(a), f.type, a)
        for kw in node.keywords:
            f = st.by_name.get(kw.arg or "")
            if f is None:
                raise self.error(kw.value, f"struct {st.name} has no field `{kw.arg}`",
                                 f"fields: {', '.join(x.name for x in st.fields)}")
            if f.name in values:
                raise self.error(kw.value, f"field `{f.name}` is given twice")
            values[f.name] = self.convert(self.expr(kw.value), f.type, kw.value)
        return N.StructInit(self.loc(node), st, st, values)

    def helper_allowed(self, h: N.Helper, what: str, node: ast.AST) -> None:
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
        decl = m.map
        what = f"`{decl.name}.{method}()`"
        if decl.kind == "sockhash":
            if method == "update":
                ctx, key, flags = self.args_of(node, ["ctx", "key", "flags"], 2, what)
                return self.helper_call(HELPERS["sock_hash_update"], what, node, [ctx, m, key, flags], decl)
            if method == "redirect":
                msg, key, flags = self.args_of(node, ["msg", "key", "flags"], 2, what)
                return self.helper_call(HELPERS["msg_redirect_hash"], what, node, [msg, m, key, flags], decl)
            if method == "delete":
                (key,) = self.args_of(node, ["key"], 1, what)
                return self.helper_call(HELPERS["map_delete_elem"], what, node, [m, key], decl)
            raise self.error(node.func, f"SockHash `{decl.name}` has no method `{method}` in BPF programs",
                             "SockHash methods: update(ctx, key, flags), redirect(msg, key, flags), delete(key)")
        if method == "lookup":
            (key,) = self.args_of(node, ["key"], 1, what)
            return self.map_lookup(m, key, node)
        if method == "update":
            key, value, flags = self.args_of(node, ["key", "value", "flags"], 2, what)
            return self.helper_call(HELPERS["map_update_elem"], what, node, [m, key, value, flags], decl)
        if method == "delete":
            (key,) = self.args_of(node, ["key"], 1, what)
            return self.helper_call(HELPERS["map_delete_elem"], what, node, [m, key], decl)
        raise self.error(node.func, f"map `{decl.name}` has no method `{method}`", "map methods: lookup, update, delete")

    def map_lookup(self, m: N.MapRef, key: ast.expr, node: ast.AST) -> N.Expr:
        if m.map.kind == "sockhash":
            raise self.error(node, f"looking up SockHash `{m.map.name}` is not supported in BPF programs",
                             "use redirect() to send a message to the socket under a key")
        return self.helper_call(HELPERS["map_lookup_elem"], f"`{m.map.name}.lookup()`", node, [m, key], m.map)

    def raw_helper(self, h: N.Helper, node: ast.Call) -> N.Expr:
        names = {"map_lookup_elem": ["map", "key"], "map_update_elem": ["map", "key", "value", "flags"],
                 "map_delete_elem": ["map", "key"], "sock_hash_update": ["ctx", "map", "key", "flags"],
                 "msg_redirect_hash": ["msg", "map", "key", "flags"]}[h.name]
        what = f"`bpf_{h.name}()`"
        required = len(names) - (1 if names[-1] == "flags" else 0)
        args = self.args_of(node, names, required, what)
        mi = names.index("map")
        m = self.expr(args[mi])  # type: ignore[arg-type]
        if not isinstance(m, N.MapRef):
            raise self.error(args[mi], f"argument `map` of {what} must be a map declared at module level")
        want_sock = h.name in ("sock_hash_update", "msg_redirect_hash")
        if want_sock != (m.map.kind == "sockhash") and h.name != "map_delete_elem":
            raise self.error(args[mi], f"{what} does not take a {m.map.kind} map")
        if h.name == "map_lookup_elem":
            return self.map_lookup(m, args[1], node)  # type: ignore[arg-type]
        args[mi] = m  # type: ignore[call-overload]
        return self.helper_call(h, what, node, args, m.map)

    def helper_call(self, h: N.Helper, what: str, node: ast.AST, args: list, decl: N.MapDecl) -> N.Expr:
        """Type the arguments of a helper by its signature. ``args`` holds AST nodes, None, or MapRef."""
        self.helper_allowed(h, what, node)
        out: list[N.Expr] = []
        ptr_index = 0
        for kind, a in zip(h.params, args):
            if kind == "map":
                out.append(a if isinstance(a, N.MapRef) else self.expr(a))
            elif kind == "ctx":
                v = self.expr(a)
                if not isinstance(v, N.CtxRef):
                    raise self.error(a, f"the first argument of {what} is the program's context",
                                     f"pass `{self.prog.ctx.name}`")
                out.append(v)
            elif kind == "ptr":
                want = decl.key if ptr_index == 0 else decl.value
                ptr_index += 1
                v = self.convert(self.expr(a), want, a)
                out.append(N.AddrOf(v.loc, v.type, v))
            elif kind == "u64":
                v = N.Const(self.loc(node), T.U64, 0, literal=False) if a is None else self.convert(self.expr(a), T.U64, a)
                out.append(v)
        if h.ret == "ptr":
            rt: T.Type = T.OptRefT(decl.value)
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
def widens(src: T.IntT, dst: T.IntT) -> bool:
    if src.signed == dst.signed:
        return dst.bits >= src.bits
    return not src.signed and dst.signed and dst.bits > src.bits


def is_place(e: N.Expr) -> bool:
    if isinstance(e, (N.VarRef, N.Deref)):
        return True
    if isinstance(e, N.FieldGet):
        return is_place(e.base)
    return False


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


def fold_binary(op: str, a: int, b: int, t: T.IntT) -> int:
    mask = t.bits - 1
    if op == "+":
        r = a + b
    elif op == "-":
        r = a - b
    elif op == "*":
        r = a * b
    elif op in ("//", "%"):
        ua, ub = a & ((1 << t.bits) - 1), b & ((1 << t.bits) - 1)
        r = ua // ub if op == "//" else ua % ub
    elif op == "&":
        r = a & b
    elif op == "|":
        r = a | b
    elif op == "^":
        r = a ^ b
    elif op == "<<":
        r = a << (b & mask)
    else:  # >>: arithmetic for signed, logical for unsigned
        r = (a if t.signed else a & ((1 << t.bits) - 1)) >> (b & mask)
    return t.wrap(r)


def fold_compare(op: str, a: int, b: int) -> bool:
    return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]
