"""Type-checking program bodies: Python statements → typed IR.

:class:`BodyChecker` checks one program or DSL function; each concept is a module of its own, mixed in here:
:mod:`.statements` (statements, assignment targets), :mod:`.flow` (definite assignment and None-narrowing per
path), :mod:`.expressions`, :mod:`.operators`, :mod:`.conversions` (C integer conversions), :mod:`.calls`,
:mod:`.atomics`, :mod:`.helper_calls` (helpers and map methods; their tables are in ``target/``),
:mod:`.ringbuf` (ring buffer reservations) and :mod:`.packets` (checked views of packet and message bytes).
"""
from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from ..diagnostics import Loc, UserError
from ..ir import nodes as N
from ..ir import types as T
from .atomics import Atomics
from .calls import Calls
from .conversions import Conversions
from .expressions import Expressions
from .flow import Flow
from .helper_calls import HelperCalls
from .operators import Operators
from .packets import Packets
from .ringbuf import RingBufs
from .statements import Statements

if TYPE_CHECKING:
    from .module import ModuleBuilder


class BodyChecker(Statements, Expressions, Operators, Calls, Atomics, HelperCalls, RingBufs, Packets, Conversions):
    """Checks one program or DSL function. ``func`` is a :class:`N.Program` or :class:`N.Function`."""

    def __init__(self, mb: ModuleBuilder, func: N.Program | N.Function) -> None:
        self.mb = mb
        self.func = func
        self.is_program = isinstance(func, N.Program)
        self.prog = func  # for messages and the return type of programs
        self.ret = T.I32 if isinstance(func, N.Program) else func.ret
        self.vars: dict[str, N.Var] = {v.name: v for v in func.params}
        self.flow = Flow(frozenset(func.params), frozenset())
        self.loop_depth = 0
        self.loop_vars: dict[N.Var, int] = {}  # loop variable -> exclusive upper bound
        self.broken: set[str] = set()  # locals whose assignment was an error: their uses are not reported again
        self.loop_reserved: list[frozenset] = []  # per enclosing loop: the reservations outstanding at its start
        self.reserve_lines: dict[N.Var, int] = {}  # reservation -> line of its last reserve()
        self.release_lines: dict[N.Var, int] = {}  # reservation -> line of its last submit() / discard()
        self.reported: set[N.Var] = set()  # reservations with an error reported: not again where paths end
        self.stale_why: dict[N.Var, str] = {}  # packet view -> the call that made it stale (frontend/packets.py)

    def loc(self, node: ast.AST) -> Loc:
        return Loc.of(self.mb.path, node)

    def error(self, node: ast.AST, msg: str, hint: str | None = None) -> UserError:
        return UserError(self.loc(node), msg, hint)
