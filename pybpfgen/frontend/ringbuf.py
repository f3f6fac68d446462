"""Type-checking ring buffer reservations: the verifier's rules for ``bpf_ringbuf_reserve`` made types.

``ev = events.reserve(Event)`` gives ``Optional[Ref[Event]]`` tied to the RingBuf ``events``; the flow facts of
:mod:`.flow` then make each of the verifier's rules a located compile error:

- the reservation fails when the buffer is full: ``ev`` must be checked against None before a field is used;
- it is submitted (``events.submit(ev)``) or discarded (``events.discard(ev)``) exactly once on every path that
  does not prove it None: a return, the end of a loop iteration, ``break`` / ``continue`` with a reservation
  outstanding, a second release, a use after the release are errors naming the line of the reservation;
- it never escapes: it cannot be copied into another name, stored, passed to a function or returned.

The records' type comes from the map (``RingBuf(event=Event)``) when it declares one; ``output(value)`` is
checked against it too (:mod:`.helper_calls`).
"""
from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from ..ir import nodes as N
from ..ir import types as T
from ..target import maps as MAPS
from ..target.helpers import DOCS

if TYPE_CHECKING:
    from .base import CheckerBase
else:
    CheckerBase = object  # the typed base of the mixins is for the type checker only (base.py)


# the raw helpers, which the DSL does not offer (a reservation is not a value a helper argument kind can carry)
RAW_RESERVATION = {
    "bpf_ringbuf_reserve": "write `ev = events.reserve(Event)` (None when the buffer is full)",
    "bpf_ringbuf_submit": "write `events.submit(ev)` for a reservation `ev = events.reserve(...)`",
    "bpf_ringbuf_discard": "write `events.discard(ev)` for a reservation `ev = events.reserve(...)`",
}


def reservation_helper(name: str) -> N.Helper:
    """``bpf_ringbuf_reserve`` / ``submit`` / ``discard``: their ids and the program types allowed to call them
    come from the generated helper table; their arguments are typed here (a reservation has no helper kind)."""
    d = DOCS[name]
    params = ("map", "u64", "u64") if name == "ringbuf_reserve" else ("ref", "u64")
    return N.Helper(name, d.id, "ptr" if name == "ringbuf_reserve" else "i64", params, frozenset(d.progtypes))


def ring_of(t: T.Type) -> str | None:
    """The RingBuf a reservation-typed value belongs to, or None."""
    return t.ring if isinstance(t, (T.RefT, T.OptRefT)) else None


class RingBufs(CheckerBase):
    """Mixin of :class:`~.body.BodyChecker`."""

    def reservation_call(self, node: ast.expr) -> N.MapDecl | None:
        """The RingBuf of ``<ringbuf>.reserve(...)``, or None when ``node`` is something else."""
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "reserve"):
            return None
        sym = self.mb.resolve(node.func.value) if isinstance(node.func.value, (ast.Name, ast.Attribute)) else None
        if sym is None or sym.kind != "map" or sym.value.kind != "ringbuf":
            return None
        return sym.value

    def reserve_into(self, target: ast.expr, call: ast.Call, decl: N.MapDecl, out: list[N.Stmt]) -> None:
        """``ev = events.reserve(Event)``."""
        what = f"`{decl.name}.reserve()`"
        if not isinstance(target, ast.Name):
            raise self.error(target, f"the result of {what} must be assigned to a local name",
                             f"write `ev = {decl.name}.reserve(...)`, fill `ev.field = ...`, then "
                             f"`{decl.name}.submit(ev)`")
        args = self.args_of(call, ["event"], 0, what)
        event = decl.value
        if args[0] is not None:
            given = self.mb.resolve_type(args[0], "event type")
            if not isinstance(event, T.VoidT) and given != event:
                raise self.error(args[0], f"`{decl.name}` carries {event} records "
                                 f"(RingBuf(event={event}) at line {decl.loc.line}), not {given}",
                                 f"reserve {event}, or declare another RingBuf for {given} records")
            event = given
        if isinstance(event, T.VoidT):
            raise self.error(call, f"{what} needs the type of the record to reserve",
                             f"write `{decl.name}.reserve(Event)`, or declare `RingBuf(event=Event, ...)`")
        if not isinstance(event, (T.StructT, T.IntT, T.ArrayT)):
            raise self.error(args[0] or call, f"a ring buffer record is a Struct, an integer or an array, not {event}")
        if event.size + 8 > decl.max_entries:
            raise self.error(call, f"a {event} record ({event.size} bytes and an 8-byte header) does not fit in "
                             f"the RingBuf `{decl.name}` of {decl.max_entries} bytes")
        h = reservation_helper("ringbuf_reserve")
        self.use_helper(h, what, call)
        t = T.OptRefT(event, decl.name)
        name, loc = target.id, self.loc(target)
        var = self.vars.get(name)
        if var is not None and var.is_param:
            raise self.error(target, f"cannot assign to the parameter `{name}`")
        if var is not None and var.type != t:
            raise self.error(target, f"`{name}` holds {var.type} (line {var.loc.line}), not a reservation of "
                             f"`{decl.name}`", "use a fresh name for the reservation")
        if var is not None and var in self.flow.reserved:
            self.flow = self.flow.release(var)  # reported here, not again where the path ends
            raise self.error(target, f"`{name}` still holds the reservation of line {self.reserved_at(var)}",
                             f"submit or discard it first: `{decl.name}.submit({name})`")
        if var is None:
            sym = self.mb.scope.lookup(name)
            if sym is not None and sym.kind in ("map", "type", "program"):
                raise self.error(target, f"`{name}` names a module-level {sym.kind}; pick another name for the local")
            var = N.Var(name, t, loc)
            self.vars[name] = var
            self.func.locals.append(var)
        size = N.Const(loc, T.U64, event.size, literal=False)
        flags = N.Const(loc, T.U64, 0, literal=False)
        value = N.HelperCall(self.loc(call), t, h, [N.MapRef(loc, T.NONE, decl), size, flags])
        out.append(N.Assign(self.loc(call), N.VarRef(loc, t, var), value))
        self.reserve_lines[var] = call.lineno
        self.flow = self.flow.reserve(var)

    def reserved_at(self, var: N.Var) -> int:
        return self.reserve_lines.get(var, var.loc.line)

    def release(self, decl: N.MapDecl, method: str, node: ast.Call) -> N.Expr:
        """``events.submit(ev)`` / ``events.discard(ev)``."""
        what = f"`{decl.name}.{method}()`"
        meth = MAPS.BY_KIND["ringbuf"].method(method)
        assert meth is not None  # called for the table's submit and discard
        args = self.args_of(node, list(meth.params), meth.required, what)
        a = args[0]
        assert a is not None  # required
        var = self.vars.get(a.id) if isinstance(a, ast.Name) else None
        if var is None or ring_of(var.type) is None:
            raise self.error(a, f"{what} takes a reservation made by `{decl.name}.reserve()`",
                             f"write `ev = {decl.name}.reserve(...)` and pass `ev`")
        name = var.name
        # the flags are computed before the call, while the record is still reserved: `events.submit(ev, ev.flags)`
        flags: N.Expr = N.Const(self.loc(node), T.U64, 0, literal=False)
        if args[1] is not None:
            fv = self.expr(args[1])
            self.arith_operand(fv, args[1])
            flags = self.cast(fv, T.U64)
        if var in self.flow.reserved:  # an error below is reported once: the reservation counts as released
            held, self.flow = self.flow, self.flow.release(var)
        else:
            held = self.flow
        if ring_of(var.type) != decl.name:
            raise self.error(a, f"`{name}` is a reservation of `{ring_of(var.type)}`, not of `{decl.name}`",
                             f"write `{ring_of(var.type)}.{method}({name})`")
        if var in held.released:
            raise self.error(node, f"`{name}` (reserved at line {self.reserved_at(var)}) may already have been "
                             f"submitted or discarded (line {self.release_lines.get(var, '?')}) on a path to here",
                             "release a reservation exactly once on every path")
        if var not in held.reserved:
            if var not in held.defined:
                raise self.error(a, f"`{name}` may be used before it is assigned")
            raise self.error(a, f"`{name}` is None here: the reservation failed and there is nothing to {method}",
                             f"{method} it only where it is not None")
        if var not in held.nonnull:
            raise self.error(a, f"`{name}` may be None here: reserving fails when the ring buffer is full",
                             f"check it first: `if {name} is None: return ...`")
        outer = self.loop_reserved[-1] if self.loop_reserved else frozenset()
        if var in outer:
            self.reported.add(var)  # not again where the path ends
            raise self.error(node, f"`{name}` was reserved (line {self.reserved_at(var)}) before this loop: "
                             f"releasing it inside the loop could release it twice",
                             "submit or discard it after the loop")
        h = reservation_helper(f"ringbuf_{method}")
        self.use_helper(h, what, node)
        loc = self.loc(a)
        ref = N.Narrow(loc, T.RefT(var.type.target, decl.name), N.VarRef(loc, var.type, var))  # type: ignore[attr-defined]
        self.release_lines[var] = node.lineno
        return N.HelperCall(self.loc(node), T.VOID, h, [ref, flags])

    def assume_checked(self, base: N.Expr) -> None:
        """After reporting a missing None check, go on as if it were there (one error, not one per use)."""
        if isinstance(base, N.VarRef):
            self.flow = self.flow.with_nonnull({base.var})

    def check_reservation_use(self, var: N.Var, node: ast.AST) -> None:
        """A reservation read after its release (a dangling pointer: the verifier's "invalid mem access")."""
        if var in self.flow.released and var not in self.flow.reserved and ring_of(var.type) is not None:
            raise self.error(node, f"`{var.name}` is used after it was submitted or discarded "
                             f"(line {self.release_lines.get(var, '?')})",
                             "fill in every field before submitting the record")

    def outstanding(self, node: ast.stmt, where: str, keep: frozenset = frozenset()) -> None:
        """Reservations still outstanding where a path ends (``where``: "return" ...) are errors."""
        left = sorted(self.flow.reserved - keep - self.reported, key=lambda v: v.name)
        if not left:
            return
        v = left[0]
        ring = ring_of(v.type)
        raise self.error(node, f"`{v.name}` (reserved from `{ring}` at line {self.reserved_at(v)}) is neither "
                         f"submitted nor discarded on the path that reaches this {where} (line {node.lineno})",
                         f"call `{ring}.submit({v.name})` or `{ring}.discard({v.name})` before it")

    def check_no_escape(self, v: N.Expr, node: ast.AST, what: str) -> None:
        ring = ring_of(v.type)
        if ring is not None:
            raise self.error(node, f"a reservation of `{ring}` cannot be {what}",
                             f"use it by name until `{ring}.submit(...)`; copy the record itself with "
                             f"`{ast.unparse(node)}.value`" if isinstance(node, ast.expr) else None)

    def reservation_attribute(self, base: N.Expr, node: ast.Attribute) -> N.Expr | None:
        """``ev.field`` for a reservation ``ev`` of a Struct record (``ev.value``: the whole record), else None."""
        t = base.type
        if ring_of(t) is None:
            return None
        assert isinstance(t, (T.RefT, T.OptRefT))  # ring_of says so
        if node.attr == "value" and not (isinstance(t.target, T.StructT) and "value" in t.target.by_name):
            return None  # the record itself: deref()
        if isinstance(t, T.OptRefT):
            self.assume_checked(base)
            shown = ast.unparse(node.value)
            raise self.error(node, f"`{shown}` may be None here: reserving fails when the ring buffer is full",
                             f"check it first: `if {shown} is None: return ...`")
        if not isinstance(t.target, T.StructT):
            raise self.error(node, f"a reservation of {t.target} has no attribute `{node.attr}`",
                             f"read or write the record through `{ast.unparse(node.value)}.value`")
        return self.field(N.Deref(self.loc(node), t.target, base), node)
