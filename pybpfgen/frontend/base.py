"""What the mixins of :class:`~.body.BodyChecker` share, for the type checker.

Each mixin (:mod:`.statements`, :mod:`.expressions`, :mod:`.operators`, :mod:`.calls`, :mod:`.atomics`,
:mod:`.helper_calls`, :mod:`.ringbuf`, :mod:`.conversions`) derives from :class:`CheckerBase` only while type checking
(``if TYPE_CHECKING: from .base import CheckerBase`` / ``else: CheckerBase = object``), so mypy checks each
mixin's use of the state and of the other mixins' methods against these declarations, each mixin's
definitions against them (an override must be compatible), and ``BodyChecker`` for implementing every
method (they are abstract here: instantiating a class that lacks one is an error). At run time the mixins
derive from ``object`` and this module is never imported.

A plain class, not a ``Protocol``: in an explicit subclass of a protocol, ``self.flow = ...`` would declare a
new attribute with an inferred type instead of being checked against ``flow: Flow``.
"""
from __future__ import annotations

import ast
from abc import abstractmethod
from typing import Callable

from ..diagnostics import Loc, UserError
from ..ir import nodes as N
from ..ir import types as T
from .flow import Flow
from .module import ModuleBuilder


class CheckerBase:
    # ------------------------------------------------------------ state (body.BodyChecker.__init__)
    mb: ModuleBuilder
    func: N.Program | N.Function
    prog: N.Program | N.Function  # the same object as func (for messages and the return type of programs)
    is_program: bool
    ret: T.Type
    vars: dict[str, N.Var]
    flow: Flow
    loop_depth: int
    loop_vars: dict[N.Var, int]  # loop variable -> exclusive upper bound
    broken: set[str]  # locals whose assignment was an error (body.BodyChecker)
    loop_reserved: list[frozenset]  # per enclosing loop: the reservations outstanding at its start
    reserve_lines: dict[N.Var, int]
    release_lines: dict[N.Var, int]
    reported: set[N.Var]
    stale_why: dict[N.Var, str]  # packet view -> the call that made it stale

    # ------------------------------------------------------------ body.BodyChecker
    @abstractmethod
    def loc(self, node: ast.AST) -> Loc: ...

    @abstractmethod
    def error(self, node: ast.AST, msg: str, hint: str | None = None) -> UserError: ...

    # ------------------------------------------------------------ expressions.Expressions
    @abstractmethod
    def condition(self, node: ast.expr) -> N.Expr: ...

    @abstractmethod
    def truth(self, v: N.Expr, node: ast.AST) -> N.Expr: ...

    @abstractmethod
    def expr(self, node: ast.expr) -> N.Expr: ...

    @abstractmethod
    def ctx_var(self, node: ast.expr) -> N.Var | None: ...

    @abstractmethod
    def check_not_broken(self, node: ast.Name) -> None: ...

    @abstractmethod
    def index(self, node: ast.Subscript) -> N.Expr: ...

    @abstractmethod
    def bounded(self, idx: N.Expr, n: int) -> bool: ...

    @abstractmethod
    def array_literal(self, node: ast.List | ast.Tuple, t: T.ArrayT) -> N.Expr: ...

    @abstractmethod
    def attribute(self, node: ast.Attribute) -> N.Expr: ...

    @abstractmethod
    def ctx_field(self, node: ast.Attribute, ctx: N.Var) -> N.CtxField: ...

    @abstractmethod
    def field(self, base: N.Expr, node: ast.Attribute) -> N.Expr: ...

    @abstractmethod
    def deref(self, base: N.Expr, node: ast.Attribute) -> N.Expr: ...

    # ------------------------------------------------------------ operators.Operators
    @abstractmethod
    def arith_operand(self, v: N.Expr, node: ast.AST) -> None: ...

    @abstractmethod
    def binary(self, op: str, left: N.Expr, right: N.Expr, node: ast.AST) -> N.Expr: ...

    @abstractmethod
    def unary(self, node: ast.UnaryOp) -> N.Expr: ...

    @abstractmethod
    def boolop(self, node: ast.BoolOp) -> N.Expr: ...

    @abstractmethod
    def compare(self, node: ast.Compare) -> N.Expr: ...

    # ------------------------------------------------------------ calls.Calls, atomics.Atomics
    @abstractmethod
    def call(self, node: ast.Call) -> N.Expr: ...

    @abstractmethod
    def atomic(self, fn: Callable[..., object], node: ast.Call) -> N.Expr: ...

    # ------------------------------------------------------------ helper_calls.HelperCalls
    @abstractmethod
    def use_helper(self, h: N.Helper, what: str, node: ast.AST) -> None: ...

    @abstractmethod
    def args_of(self, node: ast.Call, names: list[str], required: int, what: str) -> list[ast.expr | None]: ...

    @abstractmethod
    def map_method(self, m: N.MapRef, method: str, node: ast.Call) -> N.Expr: ...

    @abstractmethod
    def map_lookup(self, m: N.MapRef, key: ast.expr, node: ast.AST) -> N.Expr: ...

    @abstractmethod
    def raw_helper(self, h: N.Helper, node: ast.Call) -> N.Expr: ...

    # ------------------------------------------------------------ ringbuf.RingBufs
    @abstractmethod
    def reservation_call(self, node: ast.expr) -> N.MapDecl | None: ...

    @abstractmethod
    def reserve_into(self, target: ast.expr, call: ast.Call, decl: N.MapDecl, out: list[N.Stmt]) -> None: ...

    @abstractmethod
    def reserved_at(self, var: N.Var) -> int: ...

    @abstractmethod
    def release(self, decl: N.MapDecl, method: str, node: ast.Call) -> N.Expr: ...

    @abstractmethod
    def check_reservation_use(self, var: N.Var, node: ast.AST) -> None: ...

    @abstractmethod
    def outstanding(self, node: ast.stmt, where: str, keep: frozenset = frozenset()) -> None: ...

    @abstractmethod
    def check_no_escape(self, v: N.Expr, node: ast.AST, what: str) -> None: ...

    @abstractmethod
    def reservation_attribute(self, base: N.Expr, node: ast.Attribute) -> N.Expr | None: ...

    # ------------------------------------------------------------ packets.Packets
    @abstractmethod
    def ctx_method(self, f: ast.Attribute, node: ast.Call, ctx: N.Var) -> N.Expr: ...

    @abstractmethod
    def view_index(self, v: N.Expr, node: ast.Subscript) -> N.Expr: ...

    @abstractmethod
    def view_method(self, var: N.Var, node: ast.Call) -> N.Expr: ...

    @abstractmethod
    def view_store_target(self, e: N.PacketLoad, node: ast.AST) -> N.Expr: ...

    @abstractmethod
    def view_set(self, v: N.Expr, pk: T.PacketT, var: N.Var, f: ast.Attribute, node: ast.Call) -> N.Expr: ...

    @abstractmethod
    def view_load(self, v: N.Expr, pk: T.PacketT, off: int, bits: int, be: bool, where: ast.AST,
                  shown: str) -> N.Expr: ...

    @abstractmethod
    def stale_view(self, var: N.Var, node: ast.AST) -> None: ...

    @abstractmethod
    def packet_moved(self, why: str) -> None: ...

    @abstractmethod
    def function_moves_packet(self, fn: N.Function, seen: set | None = None) -> str | None: ...

    @abstractmethod
    def loop_packet_flow(self, body: list[ast.stmt], head: Flow) -> Flow: ...

    @abstractmethod
    def check_arg_rules(self, h: N.Helper, what: str, out: list[N.Expr]) -> None: ...

    @abstractmethod
    def buffer_arg(self, a: ast.expr | None, what: str, param: str) -> N.Expr: ...

    @abstractmethod
    def length_arg(self, a: ast.expr | None, buf: N.Expr, what: str, param: str, node: ast.AST) -> N.Expr: ...

    # ------------------------------------------------------------ conversions.Conversions
    @abstractmethod
    def cast(self, v: N.Expr, t: T.IntT, loc: Loc | None = None) -> N.Expr: ...

    @abstractmethod
    def convert(self, v: N.Expr, t: T.Type, node: ast.AST, explicit: bool = False) -> N.Expr: ...
