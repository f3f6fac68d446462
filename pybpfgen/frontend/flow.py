"""Flow facts of program bodies, tracked per path: which locals are definitely assigned, which optional
map-lookup results and packet views are proven non-None (so that using a lookup result or reading packet bytes
without a check is a compile error, not a verifier rejection), which ring buffer reservations may still be
outstanding or may already have been submitted / discarded (so that a reservation that is not released exactly
once on every path is a compile error: see :mod:`.ringbuf`), and which packet views a helper that moves packet
data has made stale since they were taken (:mod:`.packets`)."""
from __future__ import annotations

import ast

from ..ir import nodes as N
from ..ir._records import Record


class Flow(Record, frozen=True):
    defined: frozenset  # of Var
    nonnull: frozenset  # of Var
    reserved: frozenset = frozenset()  # of Var: ring buffer reservations outstanding on some path to here
    released: frozenset = frozenset()  # of Var: reservations submitted or discarded on some path to here
    stale: frozenset = frozenset()  # of Var: packet views taken before a helper moved the packet data

    def assign(self, var: N.Var, nonnull: bool) -> "Flow":
        nn = self.nonnull | {var} if nonnull else self.nonnull - {var}
        return Flow(self.defined | {var}, nn, self.reserved, self.released, self.stale - {var})

    def with_nonnull(self, vs) -> "Flow":
        return Flow(self.defined, self.nonnull | frozenset(vs), self.reserved, self.released, self.stale)

    def with_null(self, vs) -> "Flow":
        """On a path where ``vs`` are None, their reservations failed: there is nothing to release."""
        return Flow(self.defined, self.nonnull - frozenset(vs), self.reserved - frozenset(vs), self.released,
                    self.stale)

    def reserve(self, var: N.Var) -> "Flow":
        return Flow(self.defined | {var}, self.nonnull - {var}, self.reserved | {var}, self.released - {var},
                    self.stale - {var})

    def release(self, var: N.Var) -> "Flow":
        return Flow(self.defined, self.nonnull - {var}, self.reserved - {var}, self.released | {var}, self.stale)

    def invalidate(self, views) -> "Flow":
        """The packet data moved: these views (and every check of them) are no longer valid."""
        vs = frozenset(views)
        return Flow(self.defined, self.nonnull - vs, self.reserved, self.released, self.stale | vs)

    def replace(self, defined: frozenset | None = None, nonnull: frozenset | None = None) -> "Flow":
        return Flow(self.defined if defined is None else defined, self.nonnull if nonnull is None else nonnull,
                    self.reserved, self.released, self.stale)

    @staticmethod
    def merge(a: "Flow | None", b: "Flow | None") -> "Flow | None":
        if a is None:
            return b
        if b is None:
            return a
        return Flow(a.defined & b.defined, a.nonnull & b.nonnull, a.reserved | b.reserved, a.released | b.released,
                    a.stale | b.stale)


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


def _narrowable(e: N.Expr) -> N.Var | None:
    if isinstance(e, N.Narrow):
        e = e.value
    return e.var if isinstance(e, N.VarRef) else None


def _facts(cond: N.Expr, none: bool) -> tuple[set, set]:
    """Variables proven None (``none``) or non-None when ``cond`` is true, and when it is false."""
    if isinstance(cond, N.IsNull):
        v = _narrowable(cond.value)
        if v is None:
            return set(), set()
        return ({v}, set()) if cond.negate != none else (set(), {v})
    if isinstance(cond, N.Not):
        t, f = _facts(cond.value, none)
        return f, t
    if isinstance(cond, N.Logical):
        lt, lf = _facts(cond.left, none)
        rt, rf = _facts(cond.right, none)
        if cond.op == "and":
            return lt | rt, lf & rf
        return lt & rt, lf | rf
    return set(), set()


def facts(cond: N.Expr) -> tuple[set, set]:
    """Variables proven non-None when ``cond`` is true, and when it is false."""
    return _facts(cond, none=False)


def null_facts(cond: N.Expr) -> tuple[set, set]:
    """Variables proven None when ``cond`` is true, and when it is false."""
    return _facts(cond, none=True)
