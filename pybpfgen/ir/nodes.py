"""Typed IR nodes. Every node carries the :class:`~pybpfgen.diagnostics.Loc` it came from."""
from __future__ import annotations

from ._records import DICT, LIST, Record
from typing import Any

from ..diagnostics import Loc
from .types import CtxT, StructField, StructT, Type, VoidT


# ----------------------------------------------------------------- declarations
class MapDecl(Record):
    name: str
    kind: str  # "hash" | "array" | "percpu_array" | "sockhash" | ...
    map_type: int  # BPF_MAP_TYPE_*
    key: Type
    value: Type
    max_entries: int
    flags: int
    loc: Loc

    @property
    def definition_fields(self) -> tuple[str, ...]:
        """The members of its libbpf-style definition in ``.maps`` (each a pointer; BTF says what they mean)."""
        kv = () if isinstance(self.key, VoidT) else ("key", "value")
        # local storage has max_entries 0, which libbpf leaves out
        return ("type",) + kv + (("max_entries",) if self.max_entries else ()) + (("map_flags",) if self.flags else ())


class GlobalDecl(Record):
    """A global variable: ``.bss`` (zero), ``.data`` (initialised) or ``.rodata`` (a Config the loader may set)."""

    name: str
    type: Type
    init: int | list | None
    section: str  # ".bss" | ".data" | ".rodata"
    loc: Loc


    @property
    def readonly(self) -> bool:
        return self.section == ".rodata"


class Var(Record):
    name: str
    type: Type
    loc: Loc
    is_param: bool = False


class CtxField(Record, frozen=True):
    name: str
    offset: int
    type: Type  # IntT, or ArrayT of u32 for IPv6 addresses
    load_bits: int = 32
    convert: str | None = None  # "bswap32": kernel gives network order in a u32
    writable: bool = False
    doc: str = ""


class Helper(Record, frozen=True):
    name: str  # the kernel's name without the bpf_ prefix
    id: int
    ret: str  # "i64" | "ptr"
    params: tuple[str, ...]  # "ctx" | "map" | "ptr" | "u64"
    progtypes: frozenset[str] | None  # None: every program type


# ----------------------------------------------------------------- expressions
class Expr(Record):
    loc: Loc
    type: Type


class Const(Expr):
    value: int
    literal: bool = True  # an untyped literal adopts the other operand's type in C rules


class VarRef(Expr):
    var: Var


class CtxRef(Expr):
    """The program's context pointer itself (passed to helpers)."""

    var: Var


class CtxLoad(Expr):
    ctx: Var
    field: CtxField
    index: int | None = None  # element of an array field (e.g. remote_ip6[2])


class SockLoad(Expr):
    """A field of ``struct bpf_sock`` read through a (non-null) socket pointer: one load at a constant offset."""

    sock: Expr
    field: CtxField
    index: int | None = None  # element of an array field (src_ip6[2])


class GlobalRef(Expr):
    """The address of a global variable (type RefT: always non-null)."""

    decl: GlobalDecl


class Index(Expr):
    """``base[index]`` on an array place or value."""

    base: Expr
    index: Expr


class ArrayInit(Expr):
    values: list[Expr]


class Call(Expr):
    """A call of a function written in the DSL (inlined by LLVM)."""

    func: "Function"
    args: list[Expr]


class FieldGet(Expr):
    base: Expr  # struct-typed: a place or a value
    field: StructField


class Deref(Expr):
    """``ref.value``: the map value a (non-null) reference points to."""

    ref: Expr
    volatile: bool = False


class StructInit(Expr):
    struct: StructT
    values: dict[str, Expr]


class Cast(Expr):
    value: Expr


class Unary(Expr):
    op: str  # "-" | "~"
    value: Expr


class Not(Expr):
    value: Expr


class Binary(Expr):
    op: str  # + - * // % & | ^ << >>
    left: Expr
    right: Expr


class Compare(Expr):
    op: str  # == != < <= > >=
    left: Expr
    right: Expr


class Logical(Expr):
    op: str  # "and" | "or"
    left: Expr
    right: Expr


class IsNull(Expr):
    value: Expr
    negate: bool = False


class Narrow(Expr):
    """An optional reference proven non-null by a dominating check."""

    value: Expr


class MapRef(Expr):
    map: MapDecl


class AddrOf(Expr):
    """Pointer to a value in memory: a place, or a stack temporary holding it."""

    value: Expr


class HelperCall(Expr):
    helper: Helper
    args: list[Expr]  # by helper parameter kind: CtxRef, MapRef, AddrOf (key/value/data), Const bytes (fmt), scalars


class FormatString(Expr):
    """A constant format string passed to a helper (stored on the stack)."""

    data: bytes


class PacketView(Expr):
    """``ctx.bytes(offset, n)``: a pointer to ``n`` bytes of the context's packet data at ``offset`` from its
    ``data``, or None when they end beyond ``data_end`` (type ``OptRefT(PacketT(n))``)."""

    ctx: Var
    offset: Expr  # u64: a constant or a provably bounded value
    n: int


class PacketLoad(Expr):
    """``view[i]`` / ``view.u32be(off)``: an integer at a constant offset inside a checked view (also the
    target of ``view[i] = v``)."""

    view: Expr  # of type RefT(PacketT)
    offset: int
    big_endian: bool = False


class PacketStore(Expr):
    """``view.set_u32be(off, value)``: an integer stored at a constant offset inside a checked view (type VOID)."""

    view: Expr  # of type RefT(PacketT), writable
    offset: int
    bits: int
    value: Expr  # converted to an unsigned integer of ``bits``
    big_endian: bool = False


class ByteSwap(Expr):
    value: Expr


class AtomicRMW(Expr):
    """``atomic_add`` / ``atomic_fetch_add`` / ``atomic_xchg``: one atomic read-modify-write of an integer
    place in shared memory (a map value or a Global). Its value is the old contents of the place; a VOID
    type means the result is discarded (``atomic_add``: BPF's non-fetching, relaxed ``lock +=``)."""

    op: str  # "add" | "xchg"
    place: Expr  # FieldGet/Index/Deref rooted at a map value or a Global, of type u32/u64/i32/i64
    value: Expr  # converted to place.type


class AtomicCmpXchg(Expr):
    """``atomic_cmpxchg(place, expected, new)``: stores ``new`` iff the place holds ``expected``; its value
    is the old contents either way."""

    place: Expr
    expected: Expr
    new: Expr


# ----------------------------------------------------------------- statements
class Stmt(Record):
    loc: Loc


class Assign(Stmt):
    target: Expr  # VarRef | FieldGet(place) | Deref | CtxLoad (writable)
    value: Expr


class ExprStmt(Stmt):
    value: Expr


class If(Stmt):
    cond: Expr
    then: list[Stmt]
    orelse: list[Stmt]


class Return(Stmt):
    value: Expr | None


class For(Stmt):
    var: Var
    start: int
    stop: int
    step: int
    body: list[Stmt]


class Break(Stmt):
    pass


class Continue(Stmt):
    pass


# ----------------------------------------------------------------- functions and modules
class Function(Record):
    """A function written in the DSL and called from programs (inlined)."""

    name: str
    params: list[Var]
    ret: Type
    body: list[Stmt]
    loc: Loc
    locals: list[Var] = LIST
    calls: list["Function"] = LIST
    helper_uses: list[tuple[Helper, Loc, str]] = LIST


class Program(Record):
    name: str
    progtype: str  # "sock_ops" | "sk_msg" | "syscall" | "socket_filter"
    ctx: Var
    body: list[Stmt]
    loc: Loc
    attach_map: MapDecl | None = None
    locals: list[Var] = LIST
    calls: list[Function] = LIST
    helper_uses: list[tuple[Helper, Loc, str]] = LIST


    @property
    def ctx_type(self) -> CtxT:
        return self.ctx.type  # type: ignore[return-value]

    @property
    def params(self) -> list[Var]:
        return [self.ctx]


class Module(Record):
    name: str
    path: str
    source: str
    structs: list[StructT] = LIST
    maps: list[MapDecl] = LIST
    globals: list[GlobalDecl] = LIST
    functions: list[Function] = LIST
    programs: list[Program] = LIST
    constants: dict[str, Any] = DICT
    license: str = "GPL"


def computed_returns(stmts: list[Stmt]) -> list[Return]:
    """The `return` statements whose value is not a constant, in source order."""
    out: list[Return] = []
    for s in stmts:
        if isinstance(s, Return) and s.value is not None and not isinstance(s.value, Const):
            out.append(s)
        elif isinstance(s, If):
            out += computed_returns(s.then) + computed_returns(s.orelse)
        elif isinstance(s, For):
            out += computed_returns(s.body)
    return out
