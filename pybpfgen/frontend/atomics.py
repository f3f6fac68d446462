"""Type-checking atomic operations: atomic_add, atomic_fetch_add, atomic_xchg, atomic_cmpxchg on an integer in
memory shared between CPUs."""
from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Callable

from ..ir import nodes as N
from ..ir import types as T
from ..ir.places import in_ctx as ctx_based, root as place_root
from . import symbols as S

if TYPE_CHECKING:
    from .base import CheckerBase
else:
    CheckerBase = object  # the typed base of the mixins is for the type checker only (base.py)


class Atomics(CheckerBase):
    """Mixin of :class:`~.body.BodyChecker`."""

    def atomic(self, fn: Callable[..., object], node: ast.Call) -> N.Expr:
        """``atomic_add(place, value)``, ``atomic_fetch_add``, ``atomic_xchg``, ``atomic_cmpxchg(place, expected,
        new)``: one atomic operation on an integer in shared memory. The operands are converted to the place's
        type as an assignment to it would convert them."""
        op, fetch = S.ATOMICS[fn]
        name = fn.__name__
        operands = ["place", "expected", "new"] if op == "cmpxchg" else ["place", "value"]
        got = self.args_of(node, operands, len(operands), f"`{name}()`")
        args = [a for a in got if a is not None]
        assert len(args) == len(got)  # all required: args_of checked them
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
        root = place_root(place)
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
