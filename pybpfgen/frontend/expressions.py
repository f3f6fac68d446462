"""Type-checking expressions: constants, names (locals, module constants, maps, globals), attributes
(context fields, struct fields, `ref.value`), indexing (bounds the verifier can prove), array literals and
conditions."""
from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from ..diagnostics import FollowOnError
from ..ir import nodes as N
from ..ir import types as T
from ..ir.places import in_ctx as ctx_based
from ..target.progtypes import PROG_TYPES, sock_fields
from . import constructs
from .operators import ARITH

if TYPE_CHECKING:
    from .base import CheckerBase
else:
    CheckerBase = object  # the typed base of the mixins is for the type checker only (base.py)


def as_ctx(t: T.Type) -> T.CtxT:
    """The type of a context variable (what ``ctx_var`` found) or of a ``CtxRef``: a ``CtxT`` by construction."""
    assert isinstance(t, T.CtxT)
    return t


class Expressions(CheckerBase):
    """Mixin of :class:`~.body.BodyChecker`."""

    def condition(self, node: ast.expr) -> N.Expr:
        return self.truth(self.expr(node), node)

    def truth(self, v: N.Expr, node: ast.AST) -> N.Expr:
        loc = self.loc(node)
        if isinstance(v.type, T.BoolT):
            return v
        if isinstance(v.type, T.IntT):
            return N.Compare(loc, T.BOOL, "!=", v, N.Const(loc, v.type, 0, literal=False))
        if T.is_pointer(v.type):
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
            raise self.error(node, *constructs.unsupported_expression(node))
        if isinstance(node, ast.Name):
            return self.name(node)
        if isinstance(node, ast.Attribute):
            return self.attribute(node)
        if isinstance(node, ast.Call):
            return self.call(node)
        if isinstance(node, ast.BinOp):
            op = ARITH.get(type(node.op))
            if op is None:
                raise self.error(node, *constructs.unsupported_operator(node.op))
            return self.binary(op, self.expr(node.left), self.expr(node.right), node)
        if isinstance(node, ast.UnaryOp):
            return self.unary(node)
        if isinstance(node, ast.BoolOp):
            return self.boolop(node)
        if isinstance(node, ast.Compare):
            return self.compare(node)
        if isinstance(node, ast.Subscript):
            return self.index(node)
        raise self.error(node, *constructs.unsupported_expression(node))

    def ctx_var(self, node: ast.expr) -> N.Var | None:
        if isinstance(node, ast.Name):
            v = self.vars.get(node.id)
            if v is not None and isinstance(v.type, T.CtxT):
                return v
        return None

    def index(self, node: ast.Subscript) -> N.Expr:
        loc = self.loc(node)
        if isinstance(node.slice, ast.Slice):
            raise self.error(node.slice, *constructs.unsupported_expression(node.slice))
        # ctx.remote_ip6[i]: one 32-bit load at a constant offset
        if isinstance(node.value, ast.Attribute):
            ctx = self.ctx_var(node.value.value)
            if ctx is not None and as_ctx(ctx.type).struct_t is None:
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
        if T.packet_of(base.type) is not None:
            return self.view_index(base, node)
        if isinstance(base, N.SockLoad) and isinstance(base.type, T.ArrayT):  # sk.src_ip6[i]: a constant index
            i = self.mb.consts.eval(node.slice) if not isinstance(node.slice, ast.Name) or \
                node.slice.id not in self.vars else None
            if i is None or not 0 <= i < base.type.n:
                raise self.error(node.slice, f"a socket's `{base.field.name}` is indexed with a constant 0..{base.type.n - 1}")
            return N.SockLoad(loc, base.type.elem, base.sock, base.field, index=i)
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
                self.check_not_broken(node)
                raise self.error(node, f"`{node.id}` may be used before it is assigned",
                                 "assign it on every path before this line")
            if var in self.flow.stale:
                self.stale_view(var, node)
            self.check_reservation_use(var, node)
            ref = N.VarRef(loc, var.type, var)
            if T.is_optional(var.type) and var in self.flow.nonnull:
                return N.Narrow(loc, T.non_null(var.type), ref)
            return ref
        sym = self.mb.resolve(node)
        if sym is None:
            self.check_not_broken(node)
            raise self.error(node, f"name `{node.id}` is not defined")
        return self.global_value(sym, node)

    def check_not_broken(self, node: ast.Name) -> None:
        """A name whose assignment was an error (already reported): its uses are not errors of their own."""
        if node.id in self.broken:
            raise FollowOnError(self.loc(node), f"`{node.id}` was not assigned: see the error at its assignment")

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
            struct_t = as_ctx(ctx.type).struct_t
            if struct_t is not None:  # syscall programs: a pointer to the user's struct
                return self.field(N.Deref(loc, struct_t, N.CtxRef(loc, ctx.type, ctx)), node)
            f = self.ctx_field(node, ctx)
            return N.CtxLoad(loc, f.type, ctx, f)
        sym = self.mb.resolve(node)
        if sym is not None:
            return self.global_value(sym, node)
        base = self.expr(node.value)
        if isinstance(base.type, T.StructT):
            return self.field(base, node)
        if T.packet_of(base.type) is not None:
            raise self.error(node, f"a view has no attribute `{node.attr}`",
                             f"read its bytes with `{ast.unparse(node.value)}[i]` or `{ast.unparse(node.value)}"
                             ".u32be(offset)` (u8, u16, u32, u64, u16be, u32be, u64be)")
        rf = self.reservation_attribute(base, node)
        if rf is not None:
            return rf
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
        if T.is_sock(base.type):
            return N.SockLoad(loc, self.sock_field(base, node).type, base, self.sock_field(base, node))
        raise self.error(node, f"a value of type {base.type} has no attribute `{node.attr}`")

    def sock_field(self, base: N.Expr, node: ast.Attribute) -> N.CtxField:
        """A field of ``struct bpf_sock`` (target/contexts.py ``SOCK``) read through a socket proven non-None."""
        shown = ast.unparse(node.value)
        if isinstance(base.type, T.OptSockT):
            from .conversions import SOCK_MAY_BE_NONE, sock_check_hint
            raise self.error(node, f"`{shown}` may be None here: {SOCK_MAY_BE_NONE}", sock_check_hint(shown))
        f = sock_fields().get(node.attr)
        if f is None:
            raise self.error(node, f"a socket has no field `{node.attr}`", f"fields: {', '.join(sorted(sock_fields()))}")
        return f

    def ctx_field(self, node: ast.Attribute, ctx: N.Var) -> N.CtxField:
        pt = PROG_TYPES[as_ctx(ctx.type).progtype]
        f = pt.fields.get(node.attr)
        if f is None:
            known = ", ".join(sorted(pt.fields))
            declared = next((d for d in pt.context.fields if d.name == node.attr), None) if pt.context else None
            if declared is not None and pt.name in declared.unreadable_in:
                raise self.error(node, f"a {pt.name} program cannot read `{pt.ctx_class}.{node.attr}`: "
                                       f"{declared.unreadable_in[pt.name]}", f"fields it can read: {known}")
            if declared is not None and declared.packet:
                raise self.error(node, f"`{pt.ctx_class}.{node.attr}` is a packet pointer, not an integer",
                                 "the verifier refuses arithmetic on packet pointers as numbers; "
                                 f"integer fields: {known}")
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
        t = base.type
        if isinstance(t, T.OptRefT):
            shown = ast.unparse(node.value)
            if t.ring is not None:
                raise self.error(node, f"`{shown}` may be None here: reserving fails when the ring buffer is full",
                                 f"check it first: `if {shown} is None: return ...`")
            why = t.why or "a map lookup finds nothing when the key is absent"
            raise self.error(node, f"`{shown}` may be None here: {why}",
                             f"check it first: `if {shown} is not None:` (or return early when it is None)")
        assert isinstance(t, T.RefT)  # callers pass a Ref or an OptRef
        volatile = isinstance(base, N.GlobalRef) and base.decl.readonly
        return N.Deref(self.loc(node), t.target, base, volatile=volatile)
