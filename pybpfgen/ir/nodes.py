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
class GlobalDecl:
    """A global variable: ``.bss`` (zero), ``.data`` (initialised) or ``.rodata`` (a Config the loader may set)."""

    name: str
    type: Type
    init: int | list | None
    section: str  # ".bss" | ".data" | ".rodata"
    loc: Loc

    @property
    def readonly(self) -> bool:
        return self.section == ".rodata"


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
    type: Type  # IntT, or ArrayT of u32 for IPv6 addresses
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
    index: int | None = None  # element of an array field (e.g. remote_ip6[2])


@dataclass(eq=False)
class GlobalRef(Expr):
    """The address of a global variable (type RefT: always non-null)."""

    decl: GlobalDecl


@dataclass(eq=False)
class Index(Expr):
    """``base[index]`` on an array place or value."""

    base: Expr
    index: Expr


@dataclass(eq=False)
class ArrayInit(Expr):
    values: list[Expr]


@dataclass(eq=False)
class Call(Expr):
    """A call of a function written in the DSL (inlined by LLVM)."""

    func: "Function"
    args: list[Expr]


@dataclass(eq=False)
class FieldGet(Expr):
    base: Expr  # struct-typed: a place or a value
    field: StructField


@dataclass(eq=False)
class Deref(Expr):
    """``ref.value``: the map value a (non-null) reference points to."""

    ref: Expr
    volatile: bool = False


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
    args: list[Expr]  # by helper parameter kind: CtxRef, MapRef, AddrOf (key/value/data), Const bytes (fmt), scalars


@dataclass(eq=False)
class FormatString(Expr):
    """A constant format string passed to a helper (stored on the stack)."""

    data: bytes


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
    value: Expr | None


@dataclass(eq=False)
class For(Stmt):
    var: Var
    start: int
    stop: int
    step: int
    body: list[Stmt]


@dataclass(eq=False)
class Break(Stmt):
    pass


@dataclass(eq=False)
class Continue(Stmt):
    pass


# ----------------------------------------------------------------- functions and modules
@dataclass(eq=False)
class Function:
    """A function written in the DSL and called from programs (inlined)."""

    name: str
    params: list[Var]
    ret: Type
    body: list[Stmt]
    loc: Loc
    locals: list[Var] = field(default_factory=list)
    calls: list["Function"] = field(default_factory=list)
    helper_uses: list[tuple[Helper, Loc, str]] = field(default_factory=list)


@dataclass(eq=False)
class Program:
    name: str
    progtype: str  # "sock_ops" | "sk_msg" | "syscall" | "socket_filter"
    ctx: Var
    body: list[Stmt]
    loc: Loc
    attach_map: MapDecl | None = None
    locals: list[Var] = field(default_factory=list)
    calls: list[Function] = field(default_factory=list)
    helper_uses: list[tuple[Helper, Loc, str]] = field(default_factory=list)

    @property
    def ctx_type(self) -> CtxT:
        return self.ctx.type  # type: ignore[return-value]

    @property
    def params(self) -> list[Var]:
        return [self.ctx]


@dataclass(eq=False)
class Module:
    name: str
    path: str
    source: str
    structs: list[StructT] = field(default_factory=list)
    maps: list[MapDecl] = field(default_factory=list)
    globals: list[GlobalDecl] = field(default_factory=list)
    functions: list[Function] = field(default_factory=list)
    programs: list[Program] = field(default_factory=list)
    constants: dict[str, Any] = field(default_factory=dict)
    license: str = "GPL"
