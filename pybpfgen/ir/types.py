"""Types of the typed IR.

Integers follow C on BPF: fixed widths, two's complement wrap-around, the usual
arithmetic conversions. Struct layouts follow C natural alignment.
"""
from __future__ import annotations

from ._records import _FACTORY, _frozen_delattr, _frozen_setattr, _setattr

from ..diagnostics import Loc


class Type:
    size = 0
    align = 1

    def __str__(self) -> str:  # pragma: no cover - overridden
        return self.__class__.__name__


class IntT(Type):
    bits: int
    signed: bool

    def __init__(self, bits, signed):
        _setattr(self, 'bits', bits)
        _setattr(self, 'signed', signed)

    def __repr__(self):
        return f"{self.__class__.__qualname__}(bits={self.bits!r}, signed={self.signed!r})"

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return (self.bits, self.signed) == (other.bits, other.signed)
        return NotImplemented

    def __hash__(self):
        return hash((self.bits, self.signed))

    __setattr__ = _frozen_setattr
    __delattr__ = _frozen_delattr


    @property
    def size(self) -> int:  # type: ignore[override]
        return self.bits // 8

    @property
    def align(self) -> int:  # type: ignore[override]
        return self.bits // 8

    @property
    def min(self) -> int:
        return -(1 << (self.bits - 1)) if self.signed else 0

    @property
    def max(self) -> int:
        return (1 << (self.bits - 1)) - 1 if self.signed else (1 << self.bits) - 1

    def contains(self, value: int) -> bool:
        return self.min <= value <= self.max

    def wrap(self, value: int) -> int:
        value &= (1 << self.bits) - 1
        if self.signed and value >> (self.bits - 1):
            value -= 1 << self.bits
        return value

    @property
    def c_name(self) -> str:
        return f"__{'s' if self.signed else 'u'}{self.bits}"

    def __str__(self) -> str:
        return f"{'i' if self.signed else 'u'}{self.bits}"


U8, U16, U32, U64 = (IntT(b, False) for b in (8, 16, 32, 64))
I8, I16, I32, I64 = (IntT(b, True) for b in (8, 16, 32, 64))
INT_TYPES = {str(t): t for t in (U8, U16, U32, U64, I8, I16, I32, I64)}


class BoolT(Type):

    def __init__(self):
        pass

    def __repr__(self):
        return f"{self.__class__.__qualname__}()"

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return () == ()
        return NotImplemented

    def __hash__(self):
        return hash(())

    __setattr__ = _frozen_setattr
    __delattr__ = _frozen_delattr

    size = 1
    align = 1

    def __str__(self) -> str:
        return "bool"


BOOL = BoolT()


class StructField:
    name: str
    type: Type
    offset: int

    def __init__(self, name, type, offset):
        _setattr(self, 'name', name)
        _setattr(self, 'type', type)
        _setattr(self, 'offset', offset)

    def __repr__(self):
        return f"{self.__class__.__qualname__}(name={self.name!r}, type={self.type!r}, offset={self.offset!r})"

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return (self.name, self.type, self.offset) == (other.name, other.type, other.offset)
        return NotImplemented

    def __hash__(self):
        return hash((self.name, self.type, self.offset))

    __setattr__ = _frozen_setattr
    __delattr__ = _frozen_delattr



class StructT(Type):
    name: str
    fields: list[StructField]
    size: int  # type: ignore[assignment]
    align: int  # type: ignore[assignment]
    loc: Loc | None = None
    by_name: dict[str, StructField]

    def __init__(self, name, fields, size=0, align=1, loc=None, by_name=_FACTORY):
        self.name = name
        self.fields = fields
        self.size = size
        self.align = align
        self.loc = loc
        self.by_name = dict() if by_name is _FACTORY else by_name

    def __repr__(self):
        return f"{self.__class__.__qualname__}(name={self.name!r}, fields={self.fields!r}, size={self.size!r}, align={self.align!r}, loc={self.loc!r})"


    @classmethod
    def layout(cls, name: str, members: list[tuple[str, Type]], loc: Loc | None = None) -> "StructT":
        offset, align, fields = 0, 1, []
        for fname, ftype in members:
            offset = (offset + ftype.align - 1) // ftype.align * ftype.align
            fields.append(StructField(fname, ftype, offset))
            offset += ftype.size
            align = max(align, ftype.align)
        size = (offset + align - 1) // align * align
        st = cls(name, fields, size, align, loc)
        st.by_name = {f.name: f for f in fields}
        return st

    def __str__(self) -> str:
        return self.name


class ArrayT(Type):
    """A fixed-size array ``elem[n]``."""

    elem: Type
    n: int

    def __init__(self, elem, n):
        _setattr(self, 'elem', elem)
        _setattr(self, 'n', n)

    def __repr__(self):
        return f"{self.__class__.__qualname__}(elem={self.elem!r}, n={self.n!r})"

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return (self.elem, self.n) == (other.elem, other.n)
        return NotImplemented

    def __hash__(self):
        return hash((self.elem, self.n))

    __setattr__ = _frozen_setattr
    __delattr__ = _frozen_delattr


    @property
    def size(self) -> int:  # type: ignore[override]
        return self.elem.size * self.n

    @property
    def align(self) -> int:  # type: ignore[override]
        return self.elem.align

    def __str__(self) -> str:
        return f"{self.elem}[{self.n}]"


class RefT(Type):
    """A non-null pointer to a map value (the result of a checked lookup)."""

    target: Type

    def __init__(self, target):
        _setattr(self, 'target', target)

    def __repr__(self):
        return f"{self.__class__.__qualname__}(target={self.target!r})"

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return (self.target,) == (other.target,)
        return NotImplemented

    def __hash__(self):
        return hash((self.target,))

    __setattr__ = _frozen_setattr
    __delattr__ = _frozen_delattr

    size = 8
    align = 8

    def __str__(self) -> str:
        return f"Ref[{self.target}]"


class OptRefT(Type):
    """The result of a map lookup: a pointer that may be None."""

    target: Type

    def __init__(self, target):
        _setattr(self, 'target', target)

    def __repr__(self):
        return f"{self.__class__.__qualname__}(target={self.target!r})"

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return (self.target,) == (other.target,)
        return NotImplemented

    def __hash__(self):
        return hash((self.target,))

    __setattr__ = _frozen_setattr
    __delattr__ = _frozen_delattr

    size = 8
    align = 8

    def __str__(self) -> str:
        return f"Optional[Ref[{self.target}]]"


class CtxT(Type):
    """The context argument of a program (``struct bpf_sock_ops *`` ...).

    For ``syscall`` programs the context is a pointer to a user-defined struct
    (``struct_t``), read and written like memory."""

    progtype: str
    struct_t: "StructT | None" = None

    def __init__(self, progtype, struct_t=None):
        _setattr(self, 'progtype', progtype)
        _setattr(self, 'struct_t', struct_t)

    def __repr__(self):
        return f"{self.__class__.__qualname__}(progtype={self.progtype!r}, struct_t={self.struct_t!r})"

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return (self.progtype, self.struct_t) == (other.progtype, other.struct_t)
        return NotImplemented

    def __hash__(self):
        return hash((self.progtype, self.struct_t))

    __setattr__ = _frozen_setattr
    __delattr__ = _frozen_delattr

    size = 8
    align = 8

    def __str__(self) -> str:
        if self.struct_t is not None:
            return self.struct_t.name
        return {"sock_ops": "SockOps", "sk_msg": "SkMsg", "socket_filter": "SkBuff"}.get(self.progtype, self.progtype)


class VoidT(Type):

    def __init__(self):
        pass

    def __repr__(self):
        return f"{self.__class__.__qualname__}()"

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return () == ()
        return NotImplemented

    def __hash__(self):
        return hash(())

    __setattr__ = _frozen_setattr
    __delattr__ = _frozen_delattr

    def __str__(self) -> str:
        return "None"


VOID = VoidT()


class NoneT(Type):

    def __init__(self):
        pass

    def __repr__(self):
        return f"{self.__class__.__qualname__}()"

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return () == ()
        return NotImplemented

    def __hash__(self):
        return hash(())

    __setattr__ = _frozen_setattr
    __delattr__ = _frozen_delattr

    def __str__(self) -> str:
        return "None"


NONE = NoneT()


def is_int(t: Type) -> bool:
    return isinstance(t, IntT)


def is_arith(t: Type) -> bool:
    return isinstance(t, (IntT, BoolT))


def is_memory(t: Type) -> bool:
    """Types whose values live in memory and are used through their address."""
    return isinstance(t, (StructT, ArrayT))


def promote(t: Type) -> IntT:
    """C integer promotion: anything narrower than int becomes int (i32)."""
    if isinstance(t, BoolT):
        return I32
    assert isinstance(t, IntT)
    return I32 if t.bits < 32 else t


def common_type(a: Type, b: Type) -> IntT:
    """C's usual arithmetic conversions."""
    a, b = promote(a), promote(b)
    if a == b:
        return a
    if a.signed == b.signed:
        return a if a.bits >= b.bits else b
    u, s = (a, b) if not a.signed else (b, a)
    if u.bits >= s.bits:
        return u
    return s  # the signed type is wider and can represent every value of u


def literal_type(value: int) -> IntT | None:
    for t in (I32, U32, I64, U64):
        if t.contains(value):
            return t
    return None
