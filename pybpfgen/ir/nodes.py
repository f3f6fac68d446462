"""Typed IR nodes. Every node carries the :class:`~pybpfgen.diagnostics.Loc` it came from."""
from __future__ import annotations

from ._records import _FACTORY, _frozen_delattr, _frozen_setattr, _setattr
from typing import Any

from ..diagnostics import Loc
from .types import CtxT, IntT, StructField, StructT, Type


# ----------------------------------------------------------------- declarations
class MapDecl:
    name: str
    kind: str  # "hash" | "array" | "percpu_array" | "sockhash" | ...
    map_type: int  # BPF_MAP_TYPE_*
    key: Type
    value: Type
    max_entries: int
    flags: int
    loc: Loc

    def __init__(self, name, kind, map_type, key, value, max_entries, flags, loc):
        self.name = name
        self.kind = kind
        self.map_type = map_type
        self.key = key
        self.value = value
        self.max_entries = max_entries
        self.flags = flags
        self.loc = loc

    def __repr__(self):
        return f"{self.__class__.__qualname__}(name={self.name!r}, kind={self.kind!r}, map_type={self.map_type!r}, key={self.key!r}, value={self.value!r}, max_entries={self.max_entries!r}, flags={self.flags!r}, loc={self.loc!r})"



class GlobalDecl:
    """A global variable: ``.bss`` (zero), ``.data`` (initialised) or ``.rodata`` (a Config the loader may set)."""

    name: str
    type: Type
    init: int | list | None
    section: str  # ".bss" | ".data" | ".rodata"
    loc: Loc

    def __init__(self, name, type, init, section, loc):
        self.name = name
        self.type = type
        self.init = init
        self.section = section
        self.loc = loc

    def __repr__(self):
        return f"{self.__class__.__qualname__}(name={self.name!r}, type={self.type!r}, init={self.init!r}, section={self.section!r}, loc={self.loc!r})"


    @property
    def readonly(self) -> bool:
        return self.section == ".rodata"


class Var:
    name: str
    type: Type
    loc: Loc
    is_param: bool = False

    def __init__(self, name, type, loc, is_param=False):
        self.name = name
        self.type = type
        self.loc = loc
        self.is_param = is_param

    def __repr__(self):
        return f"{self.__class__.__qualname__}(name={self.name!r}, type={self.type!r}, loc={self.loc!r}, is_param={self.is_param!r})"



class CtxField:
    name: str
    offset: int
    type: Type  # IntT, or ArrayT of u32 for IPv6 addresses
    load_bits: int = 32
    convert: str | None = None  # "bswap32": kernel gives network order in a u32
    writable: bool = False
    doc: str = ""

    def __init__(self, name, offset, type, load_bits=32, convert=None, writable=False, doc=""):
        _setattr(self, 'name', name)
        _setattr(self, 'offset', offset)
        _setattr(self, 'type', type)
        _setattr(self, 'load_bits', load_bits)
        _setattr(self, 'convert', convert)
        _setattr(self, 'writable', writable)
        _setattr(self, 'doc', doc)

    def __repr__(self):
        return f"{self.__class__.__qualname__}(name={self.name!r}, offset={self.offset!r}, type={self.type!r}, load_bits={self.load_bits!r}, convert={self.convert!r}, writable={self.writable!r}, doc={self.doc!r})"

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return (self.name, self.offset, self.type, self.load_bits, self.convert, self.writable, self.doc) == (other.name, other.offset, other.type, other.load_bits, other.convert, other.writable, other.doc)
        return NotImplemented

    def __hash__(self):
        return hash((self.name, self.offset, self.type, self.load_bits, self.convert, self.writable, self.doc))

    __setattr__ = _frozen_setattr
    __delattr__ = _frozen_delattr



class Helper:
    name: str  # the kernel's name without the bpf_ prefix
    id: int
    ret: str  # "i64" | "ptr"
    params: tuple[str, ...]  # "ctx" | "map" | "ptr" | "u64"
    progtypes: frozenset[str] | None  # None: every program type

    def __init__(self, name, id, ret, params, progtypes):
        _setattr(self, 'name', name)
        _setattr(self, 'id', id)
        _setattr(self, 'ret', ret)
        _setattr(self, 'params', params)
        _setattr(self, 'progtypes', progtypes)

    def __repr__(self):
        return f"{self.__class__.__qualname__}(name={self.name!r}, id={self.id!r}, ret={self.ret!r}, params={self.params!r}, progtypes={self.progtypes!r})"

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return (self.name, self.id, self.ret, self.params, self.progtypes) == (other.name, other.id, other.ret, other.params, other.progtypes)
        return NotImplemented

    def __hash__(self):
        return hash((self.name, self.id, self.ret, self.params, self.progtypes))

    __setattr__ = _frozen_setattr
    __delattr__ = _frozen_delattr



# ----------------------------------------------------------------- expressions
class Expr:
    loc: Loc
    type: Type

    def __init__(self, loc, type):
        self.loc = loc
        self.type = type

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, type={self.type!r})"



class Const(Expr):
    value: int
    literal: bool = True  # an untyped literal adopts the other operand's type in C rules

    def __init__(self, loc, type, value, literal=True):
        self.loc = loc
        self.type = type
        self.value = value
        self.literal = literal

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, type={self.type!r}, value={self.value!r}, literal={self.literal!r})"



class VarRef(Expr):
    var: Var

    def __init__(self, loc, type, var):
        self.loc = loc
        self.type = type
        self.var = var

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, type={self.type!r}, var={self.var!r})"



class CtxRef(Expr):
    """The program's context pointer itself (passed to helpers)."""

    var: Var

    def __init__(self, loc, type, var):
        self.loc = loc
        self.type = type
        self.var = var

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, type={self.type!r}, var={self.var!r})"



class CtxLoad(Expr):
    ctx: Var
    field: CtxField
    index: int | None = None  # element of an array field (e.g. remote_ip6[2])

    def __init__(self, loc, type, ctx, field, index=None):
        self.loc = loc
        self.type = type
        self.ctx = ctx
        self.field = field
        self.index = index

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, type={self.type!r}, ctx={self.ctx!r}, field={self.field!r}, index={self.index!r})"



class GlobalRef(Expr):
    """The address of a global variable (type RefT: always non-null)."""

    decl: GlobalDecl

    def __init__(self, loc, type, decl):
        self.loc = loc
        self.type = type
        self.decl = decl

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, type={self.type!r}, decl={self.decl!r})"



class Index(Expr):
    """``base[index]`` on an array place or value."""

    base: Expr
    index: Expr

    def __init__(self, loc, type, base, index):
        self.loc = loc
        self.type = type
        self.base = base
        self.index = index

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, type={self.type!r}, base={self.base!r}, index={self.index!r})"



class ArrayInit(Expr):
    values: list[Expr]

    def __init__(self, loc, type, values):
        self.loc = loc
        self.type = type
        self.values = values

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, type={self.type!r}, values={self.values!r})"



class Call(Expr):
    """A call of a function written in the DSL (inlined by LLVM)."""

    func: "Function"
    args: list[Expr]

    def __init__(self, loc, type, func, args):
        self.loc = loc
        self.type = type
        self.func = func
        self.args = args

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, type={self.type!r}, func={self.func!r}, args={self.args!r})"



class FieldGet(Expr):
    base: Expr  # struct-typed: a place or a value
    field: StructField

    def __init__(self, loc, type, base, field):
        self.loc = loc
        self.type = type
        self.base = base
        self.field = field

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, type={self.type!r}, base={self.base!r}, field={self.field!r})"



class Deref(Expr):
    """``ref.value``: the map value a (non-null) reference points to."""

    ref: Expr
    volatile: bool = False

    def __init__(self, loc, type, ref, volatile=False):
        self.loc = loc
        self.type = type
        self.ref = ref
        self.volatile = volatile

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, type={self.type!r}, ref={self.ref!r}, volatile={self.volatile!r})"



class StructInit(Expr):
    struct: StructT
    values: dict[str, Expr]

    def __init__(self, loc, type, struct, values):
        self.loc = loc
        self.type = type
        self.struct = struct
        self.values = values

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, type={self.type!r}, struct={self.struct!r}, values={self.values!r})"



class Cast(Expr):
    value: Expr

    def __init__(self, loc, type, value):
        self.loc = loc
        self.type = type
        self.value = value

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, type={self.type!r}, value={self.value!r})"



class Unary(Expr):
    op: str  # "-" | "~"
    value: Expr

    def __init__(self, loc, type, op, value):
        self.loc = loc
        self.type = type
        self.op = op
        self.value = value

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, type={self.type!r}, op={self.op!r}, value={self.value!r})"



class Not(Expr):
    value: Expr

    def __init__(self, loc, type, value):
        self.loc = loc
        self.type = type
        self.value = value

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, type={self.type!r}, value={self.value!r})"



class Binary(Expr):
    op: str  # + - * // % & | ^ << >>
    left: Expr
    right: Expr

    def __init__(self, loc, type, op, left, right):
        self.loc = loc
        self.type = type
        self.op = op
        self.left = left
        self.right = right

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, type={self.type!r}, op={self.op!r}, left={self.left!r}, right={self.right!r})"



class Compare(Expr):
    op: str  # == != < <= > >=
    left: Expr
    right: Expr

    def __init__(self, loc, type, op, left, right):
        self.loc = loc
        self.type = type
        self.op = op
        self.left = left
        self.right = right

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, type={self.type!r}, op={self.op!r}, left={self.left!r}, right={self.right!r})"



class Logical(Expr):
    op: str  # "and" | "or"
    left: Expr
    right: Expr

    def __init__(self, loc, type, op, left, right):
        self.loc = loc
        self.type = type
        self.op = op
        self.left = left
        self.right = right

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, type={self.type!r}, op={self.op!r}, left={self.left!r}, right={self.right!r})"



class IsNull(Expr):
    value: Expr
    negate: bool = False

    def __init__(self, loc, type, value, negate=False):
        self.loc = loc
        self.type = type
        self.value = value
        self.negate = negate

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, type={self.type!r}, value={self.value!r}, negate={self.negate!r})"



class Narrow(Expr):
    """An optional reference proven non-null by a dominating check."""

    value: Expr

    def __init__(self, loc, type, value):
        self.loc = loc
        self.type = type
        self.value = value

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, type={self.type!r}, value={self.value!r})"



class MapRef(Expr):
    map: MapDecl

    def __init__(self, loc, type, map):
        self.loc = loc
        self.type = type
        self.map = map

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, type={self.type!r}, map={self.map!r})"



class AddrOf(Expr):
    """Pointer to a value in memory: a place, or a stack temporary holding it."""

    value: Expr

    def __init__(self, loc, type, value):
        self.loc = loc
        self.type = type
        self.value = value

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, type={self.type!r}, value={self.value!r})"



class HelperCall(Expr):
    helper: Helper
    args: list[Expr]  # by helper parameter kind: CtxRef, MapRef, AddrOf (key/value/data), Const bytes (fmt), scalars

    def __init__(self, loc, type, helper, args):
        self.loc = loc
        self.type = type
        self.helper = helper
        self.args = args

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, type={self.type!r}, helper={self.helper!r}, args={self.args!r})"



class FormatString(Expr):
    """A constant format string passed to a helper (stored on the stack)."""

    data: bytes

    def __init__(self, loc, type, data):
        self.loc = loc
        self.type = type
        self.data = data

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, type={self.type!r}, data={self.data!r})"



class ByteSwap(Expr):
    value: Expr

    def __init__(self, loc, type, value):
        self.loc = loc
        self.type = type
        self.value = value

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, type={self.type!r}, value={self.value!r})"



# ----------------------------------------------------------------- statements
class Stmt:
    loc: Loc

    def __init__(self, loc):
        self.loc = loc

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r})"



class Assign(Stmt):
    target: Expr  # VarRef | FieldGet(place) | Deref | CtxLoad (writable)
    value: Expr

    def __init__(self, loc, target, value):
        self.loc = loc
        self.target = target
        self.value = value

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, target={self.target!r}, value={self.value!r})"



class ExprStmt(Stmt):
    value: Expr

    def __init__(self, loc, value):
        self.loc = loc
        self.value = value

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, value={self.value!r})"



class If(Stmt):
    cond: Expr
    then: list[Stmt]
    orelse: list[Stmt]

    def __init__(self, loc, cond, then, orelse):
        self.loc = loc
        self.cond = cond
        self.then = then
        self.orelse = orelse

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, cond={self.cond!r}, then={self.then!r}, orelse={self.orelse!r})"



class Return(Stmt):
    value: Expr | None

    def __init__(self, loc, value):
        self.loc = loc
        self.value = value

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, value={self.value!r})"



class For(Stmt):
    var: Var
    start: int
    stop: int
    step: int
    body: list[Stmt]

    def __init__(self, loc, var, start, stop, step, body):
        self.loc = loc
        self.var = var
        self.start = start
        self.stop = stop
        self.step = step
        self.body = body

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r}, var={self.var!r}, start={self.start!r}, stop={self.stop!r}, step={self.step!r}, body={self.body!r})"



class Break(Stmt):

    def __init__(self, loc):
        self.loc = loc

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r})"



class Continue(Stmt):

    def __init__(self, loc):
        self.loc = loc

    def __repr__(self):
        return f"{self.__class__.__qualname__}(loc={self.loc!r})"



# ----------------------------------------------------------------- functions and modules
class Function:
    """A function written in the DSL and called from programs (inlined)."""

    name: str
    params: list[Var]
    ret: Type
    body: list[Stmt]
    loc: Loc
    locals: list[Var]
    calls: list["Function"]
    helper_uses: list[tuple[Helper, Loc, str]]

    def __init__(self, name, params, ret, body, loc, locals=_FACTORY, calls=_FACTORY, helper_uses=_FACTORY):
        self.name = name
        self.params = params
        self.ret = ret
        self.body = body
        self.loc = loc
        self.locals = list() if locals is _FACTORY else locals
        self.calls = list() if calls is _FACTORY else calls
        self.helper_uses = list() if helper_uses is _FACTORY else helper_uses

    def __repr__(self):
        return f"{self.__class__.__qualname__}(name={self.name!r}, params={self.params!r}, ret={self.ret!r}, body={self.body!r}, loc={self.loc!r}, locals={self.locals!r}, calls={self.calls!r}, helper_uses={self.helper_uses!r})"



class Program:
    name: str
    progtype: str  # "sock_ops" | "sk_msg" | "syscall" | "socket_filter"
    ctx: Var
    body: list[Stmt]
    loc: Loc
    attach_map: MapDecl | None = None
    locals: list[Var]
    calls: list[Function]
    helper_uses: list[tuple[Helper, Loc, str]]

    def __init__(self, name, progtype, ctx, body, loc, attach_map=None, locals=_FACTORY, calls=_FACTORY, helper_uses=_FACTORY):
        self.name = name
        self.progtype = progtype
        self.ctx = ctx
        self.body = body
        self.loc = loc
        self.attach_map = attach_map
        self.locals = list() if locals is _FACTORY else locals
        self.calls = list() if calls is _FACTORY else calls
        self.helper_uses = list() if helper_uses is _FACTORY else helper_uses

    def __repr__(self):
        return f"{self.__class__.__qualname__}(name={self.name!r}, progtype={self.progtype!r}, ctx={self.ctx!r}, body={self.body!r}, loc={self.loc!r}, attach_map={self.attach_map!r}, locals={self.locals!r}, calls={self.calls!r}, helper_uses={self.helper_uses!r})"


    @property
    def ctx_type(self) -> CtxT:
        return self.ctx.type  # type: ignore[return-value]

    @property
    def params(self) -> list[Var]:
        return [self.ctx]


class Module:
    name: str
    path: str
    source: str
    structs: list[StructT]
    maps: list[MapDecl]
    globals: list[GlobalDecl]
    functions: list[Function]
    programs: list[Program]
    constants: dict[str, Any]
    license: str = "GPL"

    def __init__(self, name, path, source, structs=_FACTORY, maps=_FACTORY, globals=_FACTORY, functions=_FACTORY, programs=_FACTORY, constants=_FACTORY, license="GPL"):
        self.name = name
        self.path = path
        self.source = source
        self.structs = list() if structs is _FACTORY else structs
        self.maps = list() if maps is _FACTORY else maps
        self.globals = list() if globals is _FACTORY else globals
        self.functions = list() if functions is _FACTORY else functions
        self.programs = list() if programs is _FACTORY else programs
        self.constants = dict() if constants is _FACTORY else constants
        self.license = license

    def __repr__(self):
        return f"{self.__class__.__qualname__}(name={self.name!r}, path={self.path!r}, source={self.source!r}, structs={self.structs!r}, maps={self.maps!r}, globals={self.globals!r}, functions={self.functions!r}, programs={self.programs!r}, constants={self.constants!r}, license={self.license!r})"

