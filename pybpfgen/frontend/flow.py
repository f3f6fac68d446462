"""Flow facts of program bodies, tracked per path: which locals are definitely assigned, which optional
map-lookup results and packet views are proven non-None (so that using a lookup result or reading packet bytes
without a check is a compile error, not a verifier rejection), and which packet views a helper that moves
packet data has made stale since they were taken (frontend/packets.py)."""
from __future__ import annotations

import ast

from ..ir import nodes as N
from ..ir._records import Record


class Flow(Record, frozen=True):
    defined: frozenset  # of Var
    nonnull: frozenset  # of Var
    stale: frozenset = frozenset()  # of Var: packet views taken before a helper moved the packet data

    def assign(self, var: N.Var, nonnull: bool) -> "Flow":
        nn = self.nonnull | {var} if nonnull else self.nonnull - {var}
        return Flow(self.defined | {var}, nn, self.stale - {var})

    def with_nonnull(self, vs) -> "Flow":
        return Flow(self.defined, self.nonnull | frozenset(vs), self.stale)

    def invalidate(self, views) -> "Flow":
        """The packet data moved: these views (and every check of them) are no longer valid."""
        vs = frozenset(views)
        return Flow(self.defined, self.nonnull - vs, self.stale | vs)

    @staticmethod
    def merge(a: "Flow | None", b: "Flow | None") -> "Flow | None":
        if a is None:
            return b
        if b is None:
            return a
        return Flow(a.defined & b.defined, a.nonnull & b.nonnull, a.stale | b.stale)


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

