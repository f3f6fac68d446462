"""Type-checking operators: arithmetic (C's usual conversions, constant folding with BPF semantics), unary
operators, `and`/`or` (which carry None-narrowing to their right operand), and comparisons (`is None`, `in`)."""
from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from ..ir import nodes as N
from ..ir import semantics
from ..ir import types as T
from .flow import facts

if TYPE_CHECKING:
    from .base import CheckerBase
else:
    CheckerBase = object  # the typed base of the mixins is for the type checker only (base.py)

ARITH = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.FloorDiv: "//", ast.Mod: "%",
          ast.BitAnd: "&", ast.BitOr: "|", ast.BitXor: "^", ast.LShift: "<<", ast.RShift: ">>"}
CMP = {ast.Eq: "==", ast.NotEq: "!=", ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">="}


class Operators(CheckerBase):
    """Mixin of :class:`~.body.BodyChecker`."""

    def arith_operand(self, v: N.Expr, node: ast.AST) -> None:
        if T.is_sock(v.type):
            raise self.error(node, "a socket is a pointer, not an integer: it cannot be compared or computed with "
                                   "(the verifier forbids arithmetic and comparisons on socket pointers)",
                             "compare sockets by their cookies: bpf_get_socket_cookie(ctx) in sock_ops, or keep "
                             "per-socket state in an SkStorage")
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
            if not T.is_pointer(v.type):
                raise self.error(node.left, f"a value of type {v.type} is never None")
            return N.IsNull(loc, T.BOOL, v, negate=isinstance(op, ast.IsNot))
        if isinstance(op, (ast.In, ast.NotIn)):
            m = self.expr(rnode)
            if not isinstance(m, N.MapRef):
                raise self.error(rnode, "`in` tests membership in a map", "write `key in some_map`")
            found = self.map_lookup(m, node.left, node)
            return N.IsNull(loc, T.BOOL, found, negate=isinstance(op, ast.In))
        sop = CMP[type(op)]  # the comparisons left after is/in
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
