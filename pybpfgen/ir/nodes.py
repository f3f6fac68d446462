"""Typed IR nodes. Every node carries the :class:`~pybpfgen.diagnostics.Loc` it came from."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..diagnostics import Loc
from .types import CtxT, IntT, StructField, StructT, Type


# ----------------------------------------------------------------- declarations
@dataclass(eq=False)
class MapDecl:
    name: str
    kind: str  # "hash" | "array" | "percpu_array" | "sockhash" | ...
    map_type: int  # BPF_MAP_TYPE_*
    key: Type
    value: Type
    max_entries: int
    flags: int
    loc: Loc


@dataclass(eq=False)
class Var:
    name: str
    type: Type
    loc: Loc
    is_param: bool = False


@dataclass(frozen=True)
class CtxField:
    name: str
    offset: int
    type: IntT
    load_bits: int = 32
    convert: str | None = None  # "bswap32": kernel gives network order in a u32
    writable: bool = False
    doc: str = ""


@dataclass(frozen=True)
class Helper:
    name: str  # the kernel's name without the bpf_ prefix
    id: int
    ret: str  # "i64" | "ptr"
    params: tuple[str, ...]  # "ctx" | "map" | "ptr" | "u64"
    progtypes: frozenset[str] | None  # None: every program type


# ----------------------------------------------------------------- expressions
@dataclass(eq=False)
class Expr:
    loc: Loc
    type: Type


@dataclass(eq=False)
class Const(Expr):
    value: int
    literal: bool = True  # an untyped literal adopts the other operand's type in C rules


@dataclass(eq=False)
class VarRef(Expr):
    var: Var


@dataclass(eq=False)
class CtxRef(Expr):
    """The program's context pointer itself (passed to helpers)."""

    var: Var


@dataclass(eq=False)
class CtxLoad(Expr):
    ctx: Var
    field: CtxField


@dataclass(eq=False)
class FieldGet(Expr):
    base: Expr  # struct-typed: a place or a value
    field: StructField


@dataclass(eq=False)
class Deref(Expr):
    """``ref.value``: the map value a (non-null) reference points to."""

    ref: Expr


@dataclass(eq=False)
class StructInit(Expr):
    struct: StructT
    values: dict[str, Expr]


@dataclass(eq=False)
class Cast(Expr):
    value: Expr


@dataclass(eq=False)
class Unary(Expr):
    op: str  # "-" | "~"
    value: Expr


@dataclass(eq=False)
class Not(Expr):
    value: Expr


@dataclass(eq=False)
class Binary(Expr):
    op: str  # + - * // % & | ^ << >>
    left: Expr
    right: Expr


@dataclass(eq=False)
class Compare(Expr):
    op: str  # == != < <= > >=
    left: Expr
    right: Expr


@dataclass(eq=False)
class Logical(Expr):
    op: str  # "and" | "or"
    left: Expr
    right: Expr


@dataclass(eq=False)
class IsNull(Expr):
    value: Expr
    negate: bool = False


@dataclass(eq=False)
class Narrow(Expr):
    """An optional reference proven non-null by a dominating check."""

    value: Expr


@dataclass(eq=False)
class MapRef(Expr):
    map: MapDecl


@dataclass(eq=False)
class AddrOf(Expr):
    """Pointer to a value in memory: a place, or a stack temporary holding it."""

    value: Expr


@dataclass(eq=False)
class HelperCall(Expr):
    helper: Helper
    args: list[Expr]


@dataclass(eq=False)
class ByteSwap(Expr):
    value: Expr


# ----------------------------------------------------------------- statements
@dataclass(eq=False)
class Stmt:
    loc: Loc


@dataclass(eq=False)
class Assign(Stmt):
    target: Expr  # VarRef | FieldGet(place) | Deref | CtxLoad (writable)
    value: Expr


@dataclass(eq=False)
class ExprStmt(Stmt):
    value: Expr


@dataclass(eq=False)
class If(Stmt):
    cond: Expr
    then: list[Stmt]
    orelse: list[Stmt]


@dataclass(eq=False)
class Return(Stmt):
    value: Expr


# ----------------------------------------------------------------- functions and modules
@dataclass(eq=False)
class Program:
    name: str
    progtype: str  # "sock_ops" | "sk_msg"
    ctx: Var
    body: list[Stmt]
    loc: Loc
    attach_map: MapDecl | None = None
    locals: list[Var] = field(default_factory=list)

    @property
    def ctx_type(self) -> CtxT:
        return self.ctx.type  # type: ignore[return-value]


@dataclass(eq=False)
class Module:
    name: str
    path: str
    source: str
    structs: list[StructT] = field(default_factory=list)
    maps: list[MapDecl] = field(default_factory=list)
    programs: list[Program] = field(default_factory=list)
    constants: dict[str, Any] = field(default_factory=dict)
    license: str = "GPL"
