"""Types of the typed IR.

Integers follow C on BPF: fixed widths, two's complement wrap-around, the usual
arithmetic conversions. Struct layouts follow C natural alignment.
"""
from __future__ import annotations

from ._records import DICT, Record

from ..diagnostics import Loc


class Type(Record):
    size = 0
    align = 1

    def __str__(self) -> str:  # pragma: no cover - overridden
        return self.__class__.__name__


class IntT(Type, frozen=True):
    bits: int
    signed: bool


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


class BoolT(Type, frozen=True):

    size = 1
    align = 1

    def __str__(self) -> str:
        return "bool"


BOOL = BoolT()


class StructField(Record, frozen=True):
    name: str
    type: Type
    offset: int


class StructT(Type):
    name: str
    fields: list[StructField]
    size: int  # type: ignore[assignment]
    align: int  # type: ignore[assignment]
    loc: Loc | None = None
    by_name: dict[str, StructField] = DICT


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


class ArrayT(Type, frozen=True):
    """A fixed-size array ``elem[n]``."""

    elem: Type
    n: int


    @property
    def size(self) -> int:  # type: ignore[override]
        return self.elem.size * self.n

    @property
    def align(self) -> int:  # type: ignore[override]
        return self.elem.align

    def __str__(self) -> str:
        return f"{self.elem}[{self.n}]"


class RefT(Type, frozen=True):
    """A non-null pointer to a map value (the result of a checked lookup), or to a record reserved in a ring
    buffer (``ring``: the RingBuf's name; the reservation must be submitted or discarded: frontend/ringbuf.py)."""

    target: Type
    ring: str | None = None


    size = 8
    align = 8

    def __str__(self) -> str:
        return str(self.target) if isinstance(self.target, PacketT) else f"Ref[{self.target}]"


class OptRefT(Type, frozen=True):
    """The result of a map lookup, of a ring buffer reservation (``ring``) or of bpf_getsockopt (``why``): a pointer
    that may be None."""

    target: Type
    ring: str | None = None
    why: str = ""  # why it may be None, for the error on a use before the check ("": a map lookup)


    size = 8
    align = 8

    def __str__(self) -> str:
        if isinstance(self.target, PacketT):
            return f"{self.target} | None"
        return f"Optional[Ref[{self.target}]]"


class PacketT(Type, frozen=True):
    """``n`` bytes of a context's packet data (a message, a packet) that a range check proved present: what a
    view points to (``OptRefT(PacketT)`` before its check, ``RefT(PacketT)`` after; frontend/packets.py)."""

    n: int
    writable: bool
    what: str  # "the message", "the packet": for messages
    progtype: str

    size = 8
    align = 8

    def __str__(self) -> str:
        return f"bytes[{self.n}]"


def packet_of(t: "Type") -> "PacketT | None":
    """The packet bytes a view type (checked or not) points to."""
    if isinstance(t, (RefT, OptRefT)) and isinstance(t.target, PacketT):
        return t.target
    return None


class SockT(Type, frozen=True):
    """A pointer to a socket (``struct bpf_sock *``, the verifier's PTR_TO_SOCKET): what ``ctx.sk`` gives, proven
    non-null. It lives in registers and locals only: the verifier does not let a program store it in memory
    (a map value, a struct) or compute with it."""

    size = 8
    align = 8

    def __str__(self) -> str:
        return "Sock"


class OptSockT(Type, frozen=True):
    """A socket pointer that may be None (PTR_TO_SOCKET_OR_NULL: sock_ops' ``ctx.sk``)."""

    size = 8
    align = 8

    def __str__(self) -> str:
        return "Optional[Sock]"


SOCK = SockT()
OPT_SOCK = OptSockT()


class CtxT(Type, frozen=True):
    """The context argument of a program (``struct bpf_sock_ops *`` ...).

    For ``syscall`` programs the context is a pointer to a user-defined struct
    (``struct_t``), read and written like memory."""

    progtype: str
    struct_t: "StructT | None" = None


    size = 8
    align = 8

    def __str__(self) -> str:
        if self.struct_t is not None:
            return self.struct_t.name
        from ..target.progtypes import PROG_TYPES  # late: the target's tables are built from these types

        pt = PROG_TYPES.get(self.progtype)
        return (pt.ctx_class if pt is not None else "") or self.progtype


class VoidT(Type, frozen=True):

    def __str__(self) -> str:
        return "None"


VOID = VoidT()


class NoneT(Type, frozen=True):

    def __str__(self) -> str:
        return "None"


NONE = NoneT()


def is_optional(t: Type) -> bool:
    """A pointer that must be checked for None before use (a map lookup's result, sock_ops' ``ctx.sk``)."""
    return isinstance(t, (OptRefT, OptSockT))


def non_null(t: Type) -> Type:
    """The type an optional pointer has once proven non-None."""
    if isinstance(t, OptRefT):
        return RefT(t.target, t.ring)
    if isinstance(t, OptSockT):
        return SOCK
    return t


def is_pointer(t: Type) -> bool:
    """References and sockets: values that can be tested against None."""
    return isinstance(t, (OptRefT, RefT, OptSockT, SockT))


def is_sock(t: Type) -> bool:
    return isinstance(t, (SockT, OptSockT))


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
