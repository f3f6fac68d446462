"""Type-checking statements: return, for-range loops, if, assignments and their targets (places), with the
flow facts of each path (definite assignment, None-narrowing)."""
from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from ..diagnostics import FollowOnError, Loc, UserError
from ..ir import nodes as N
from ..ir import types as T
from ..ir.places import is_place, root as place_root
from .flow import Flow, assigned_names, facts, null_facts
from .expressions import as_ctx
from . import constructs
from .operators import ARITH
from ..target.progtypes import PROG_TYPES

if TYPE_CHECKING:
    from .base import CheckerBase
else:
    CheckerBase = object  # the typed base of the mixins is for the type checker only (base.py)


def value_range(e: N.Expr) -> tuple[int, int] | None:
    """What a value can be, as far as its form proves it: constants, booleans, masks, remainders, `|` with a
    constant, sums and conversions of those; None: nothing is known beyond its type."""
    t = e.type
    if isinstance(e, N.Const):
        return e.value, e.value
    if isinstance(t, T.BoolT):
        return 0, 1
    if not isinstance(t, T.IntT):
        return None
    whole = (-(1 << (t.bits - 1)), (1 << (t.bits - 1)) - 1) if t.signed else (0, (1 << t.bits) - 1)
    r: tuple[int, int] | None = None
    if isinstance(e, (N.Cast, N.Narrow)):
        r = value_range(e.value)
    elif isinstance(e, N.Binary):
        left, right = value_range(e.left), value_range(e.right)
        if e.op == "&" and not t.signed:
            bounds = [x[1] for x in (left, right) if x is not None and x[0] >= 0]
            r = (0, min(bounds)) if bounds else None
        elif e.op == "|" and not t.signed and right is not None and right[0] == right[1] and right[0] >= 0:
            r = (right[0], whole[1])
        elif e.op == "%" and not t.signed and right is not None and right[0] == right[1] and right[0] > 0:
            r = (0, right[0] - 1)
        elif e.op == "+" and left is not None and right is not None:
            r = (left[0] + right[0], left[1] + right[1])
    if r is None or r[0] < whole[0] or r[1] > whole[1]:  # unknown, or it may wrap around
        return None
    return r


class Statements(CheckerBase):
    """Mixin of :class:`~.body.BodyChecker`."""

    def check_function(self, fn: ast.FunctionDef) -> None:
        body = fn.body
        if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                and isinstance(body[0].value.value, str):
            body = body[1:]
        stmts, out = self.check_block(body, self.flow)
        self.func.body = stmts
        if out is not None and self.ret == T.VOID and fn.body:
            self.flow = out
            last = fn.body[-1]
            try:
                self.outstanding(last, "end of the function")
            except UserError as e:
                self.mb.diags.add(e.diag)
        if out is not None and self.ret != T.VOID:
            last = fn.body[-1]
            if isinstance(self.prog, N.Program):  # i.e. self.is_program
                default = "return SK_PASS" if self.prog.progtype == "sk_msg" else "return 1"
                what = "program"
            else:
                default, what = "return 0", "function"
            self.mb.diags.error(Loc(self.mb.path, getattr(last, "end_lineno", last.lineno), last.col_offset),
                                f"{what} `{fn.name}` can reach its end without returning a value",
                                f"end every path with a return statement, e.g. `{default}`")

    def check_block(self, stmts: list[ast.stmt], flow: Flow | None) -> tuple[list[N.Stmt], Flow | None]:
        out: list[N.Stmt] = []
        for stmt in stmts:
            if flow is None:
                self.mb.diags.warning(self.loc(stmt), "unreachable code after return")
                break
            self.flow = flow
            try:
                flow = self.check_stmt(stmt, out)
            except UserError as e:
                if not isinstance(e, FollowOnError):  # caused by an error reported before
                    self.mb.diags.add(e.diag)
                if self.mb.diags.too_many():
                    return out, None
                # keep going with what we know; a return still ends its path
                flow = None if isinstance(stmt, ast.Return) else self.flow
        return out, flow

    def check_return_range(self, v: N.Expr, node: ast.expr) -> None:
        """A return value outside the values the program type's kernel accepts (target/progtypes.py ``returns``)
        is a compile error when it is a constant or provably outside them (``x | 2`` from an sk_msg program); any
        other computed value is left to the verifier, whose complaint the object's line info places on the
        program's one computed `return` (lowering/codegen.py)."""
        if not isinstance(self.prog, N.Program):
            return
        pt = PROG_TYPES[self.prog.progtype]
        if pt.returns is None:
            return
        progtype = self.prog.progtype
        lo, hi = pt.returns
        allowed = (str(lo) if lo == hi else " or ".join(str(x) for x in range(lo, hi + 1)) if hi - lo < 2
                   else f"{lo}..{hi}")
        hint = pt.returns_hint or None
        if isinstance(v, N.Const):
            if not lo <= v.value <= hi:
                raise self.error(node, f"a {progtype} program returns {allowed}, not {v.value}", hint)
            return
        vr = value_range(v)
        if vr is not None and (vr[1] < lo or vr[0] > hi):
            shown = f"{vr[0]}" if vr[0] == vr[1] else f"{vr[0]}..{vr[1]}"
            raise self.error(node, f"a {progtype} program returns {allowed}, but this value is always {shown}", hint)

    def check_stmt(self, s: ast.stmt, out: list[N.Stmt]) -> Flow | None:
        loc = self.loc(s)
        if isinstance(s, ast.Pass):
            return self.flow
        if isinstance(s, ast.Return):
            self.outstanding(s, "return")
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
                if self.is_program:
                    self.check_return_range(v, s.value)
            out.append(N.Return(loc, self.convert(v, self.ret, s.value, explicit=self.is_program)))
            return None
        if isinstance(s, ast.For):
            return self.check_for(s, out)
        if isinstance(s, (ast.Break, ast.Continue)):
            if not self.loop_depth:
                raise self.error(s, f"`{type(s).__name__.lower()}` outside a loop")
            self.outstanding(s, f"`{type(s).__name__.lower()}`", self.loop_reserved[-1])
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
            typ = self.mb.resolve_type(s.annotation, "local type")
            return self.assign(s.target, s.value, typ, out, loc)
        if isinstance(s, ast.AugAssign):
            op = ARITH.get(type(s.op))
            if op is None:
                raise self.error(s, *constructs.unsupported_operator(s.op, augmented=True))
            target = self.place(s.target)
            value = self.binary(op, target, self.expr(s.value), s)
            out.append(N.Assign(loc, target, self.convert(value, target.type, s, explicit=True)))
            return self.flow
        if isinstance(s, ast.Expr):
            if isinstance(s.value, ast.Constant) and isinstance(s.value.value, str):
                return self.flow  # a string used as a comment
            v = self.expr(s.value)
            if not isinstance(v, (N.HelperCall, N.Call, N.AtomicRMW, N.AtomicCmpXchg, N.PacketStore)):
                self.mb.diags.warning(loc, "expression result is not used")
            out.append(N.ExprStmt(loc, v))
            return self.flow
        raise self.error(s, *constructs.unsupported_statement(s))

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
        head = start_flow.replace(start_flow.defined | {var},
                                  frozenset(v for v in start_flow.nonnull if v.name not in assigned))
        head = self.loop_packet_flow(s.body, head)  # views the body makes stale are stale at every iteration
        self.loop_depth += 1
        self.loop_vars[var] = stop
        self.loop_reserved.append(start_flow.reserved)
        try:
            body, end = self.check_block(s.body, head)
            if end is not None and s.body:  # the end of an iteration: what it reserved must be released
                self.flow = end
                try:
                    self.outstanding(s.body[-1], "end of the loop body", start_flow.reserved)
                except UserError as e:
                    self.mb.diags.add(e.diag)
        finally:
            self.loop_depth -= 1
            del self.loop_vars[var]
            self.loop_reserved.pop()
        out.append(N.For(loc, var, start, stop, step, body))
        after = start_flow.replace(start_flow.defined, head.nonnull)  # (reservations: as before the loop)
        after = Flow(after.defined, after.nonnull, after.reserved, after.released, head.stale)
        self.flow = after
        return after

    def check_if(self, s: ast.If, out: list[N.Stmt]) -> Flow | None:
        cond = self.condition(s.test)
        start = self.flow  # after the condition (a helper called in it may have made packet views stale)
        t_facts, f_facts = facts(cond)
        t_null, f_null = null_facts(cond)
        then, out_t = self.check_block(s.body, start.with_nonnull(t_facts).with_null(t_null))
        orelse, out_f = self.check_block(s.orelse, start.with_nonnull(f_facts).with_null(f_null))
        out.append(N.If(self.loc(s), cond, then, orelse))
        merged = Flow.merge(out_t, out_f)
        self.flow = merged if merged is not None else start
        return merged

    def assign(self, target: ast.expr, value_node: ast.expr, declared: T.Type | None,
               out: list[N.Stmt], loc: Loc) -> Flow:
        try:
            return self.assign_checked(target, value_node, declared, out, loc)
        except UserError:
            if isinstance(target, ast.Name):  # its later uses would only repeat this error
                self.broken.add(target.id)
                var = self.vars.get(target.id)
                if var is not None and not var.is_param:
                    self.flow = self.flow.assign(var, False)
            raise

    def assign_checked(self, target: ast.expr, value_node: ast.expr, declared: T.Type | None,
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
            ring = self.reservation_call(value_node)
            if ring is not None:
                if declared is not None:
                    raise self.error(target, "a reservation needs no annotation",
                                     f"write `{ast.unparse(target)} = {ast.unparse(value_node)}`")
                assert isinstance(value_node, ast.Call)  # reservation_call checked it
                self.reserve_into(target, value_node, ring, out)
                return self.flow
            value = self.expr(value_node)
            self.check_no_escape(value, value_node, "copied into another variable")
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
            self.flow = self.flow.assign(var, isinstance(conv.type, (T.RefT, T.SockT)))
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

    # ---------------------------------------------------------------- places (assignment targets)
    def place(self, node: ast.expr) -> N.Expr:
        if isinstance(node, ast.Name):
            var = self.vars.get(node.id)
            if var is None:
                self.check_not_broken(node)
                raise self.error(node, f"local variable `{node.id}` is not defined")
            if var.is_param:
                raise self.error(node, f"cannot assign to the context parameter `{node.id}`")
            if var not in self.flow.defined:
                self.check_not_broken(node)
                raise self.error(node, f"`{node.id}` may be used before it is assigned")
            return N.VarRef(self.loc(node), var.type, var)
        if isinstance(node, ast.Attribute):
            ctx = self.ctx_var(node.value)
            if ctx is not None and as_ctx(ctx.type).struct_t is None:
                f = self.ctx_field(node, ctx)
                self.check_ctx_writable(node, ctx, f)
                return N.CtxLoad(self.loc(node), f.type, ctx, f)
            if ctx is not None:  # syscall programs: fields of the user's struct, in memory
                return self.attribute(node)
            base = self.expr(node.value)
            rf = self.reservation_attribute(base, node)
            if rf is not None:
                return rf
            if node.attr == "value" and isinstance(base.type, (T.RefT, T.OptRefT)):
                d = self.deref(base, node)
                if isinstance(base, N.GlobalRef) and base.decl.readonly:
                    raise self.error(node, f"`{base.decl.name}` is a Config: programs can only read it",
                                     "use Global(...) for a variable the programs change")
                return d
            if isinstance(base.type, T.StructT):
                if not is_place(base):
                    raise self.error(node, "cannot assign to a field of a temporary value")
                fg = self.field(base, node)
                self.check_not_param(fg, node)
                return fg
        if isinstance(node, ast.Subscript):
            e = self.index(node)
            if isinstance(e, N.CtxLoad):  # ctx.user_ip6[i] = ...: one 32-bit store at a constant offset
                self.check_ctx_writable(node, e.ctx, e.field)
                return e
            if isinstance(e, N.PacketLoad):
                return self.view_store_target(e, node)
            if not is_place(e):
                raise self.error(node, "cannot assign to an element of a temporary value")
            self.check_not_param(e, node)
            return e
        raise self.error(node, f"cannot assign to `{ast.unparse(node)}`",
                         "assign to a local name, a struct field, an array element, `ref.value`, "
                         "or a writable context field")

    def check_ctx_writable(self, node: ast.expr, ctx: N.Var, f: N.CtxField) -> None:
        """Programs may assign only the context fields the verifier lets their program type write
        (target/contexts.py: ``writable``)."""
        if f.writable:
            return
        pt = PROG_TYPES[as_ctx(ctx.type).progtype]
        can = sorted(n for n, x in pt.fields.items() if x.writable)
        hint = f"fields it can write: {', '.join(can)}" if can else f"a {pt.name} program can write no context field"
        declared = next((d for d in pt.context.fields if d.name == f.name), None) if pt.context else None
        if declared is not None and isinstance(declared.writable, tuple):
            raise self.error(node, f"a {pt.name} program cannot write `{pt.ctx_class}.{f.name}`: only "
                                   f"{', '.join(declared.writable)} programs may", hint)
        raise self.error(node, f"context field `{pt.ctx_class}.{f.name}` is read-only", hint)

    def check_not_param(self, place: N.Expr, node: ast.AST) -> None:
        root = place_root(place)
        if isinstance(root, N.VarRef) and root.var.is_param:
            raise self.error(node, f"cannot modify the parameter `{root.var.name}`",
                             "parameters are read-only; copy it into a local variable first")
