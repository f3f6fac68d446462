"""The meaning of integer operations, in one place.

Used by the frontend's constant folding and by :mod:`pybpfgen.testing`'s interpreter, and matched by the
LLVM lowering (checked against the kernel by the differential tests): C conversions are applied by the
checker before these run, results wrap to the type's width, ``//`` and ``%`` are unsigned (signed division is
rejected), a zero divisor gives 0 for ``//`` and the dividend for ``%`` (the BPF instruction set's rule), and
shift counts are taken modulo the width. Atomic operations wrap like ``+`` and store like an assignment.
"""
from __future__ import annotations

from .types import IntT


def binary(op: str, a: int, b: int, t: IntT) -> int:
    mask = (1 << t.bits) - 1
    if op == "+":
        r = a + b
    elif op == "-":
        r = a - b
    elif op == "*":
        r = a * b
    elif op in ("//", "%"):
        ua, ub = a & mask, b & mask
        if ub == 0:
            r = 0 if op == "//" else ua
        else:
            r = ua // ub if op == "//" else ua % ub
    elif op == "&":
        r = a & b
    elif op == "|":
        r = a | b
    elif op == "^":
        r = a ^ b
    elif op == "<<":
        r = a << (b & (t.bits - 1))
    elif op == ">>":  # arithmetic for signed, logical for unsigned
        r = (a if t.signed else a & mask) >> (b & (t.bits - 1))
    else:
        raise ValueError(f"unknown operator {op}")
    return t.wrap(r)


def compare(op: str, a: int, b: int) -> bool:
    """Operands are already converted to a common type (signed values as negative ints)."""
    return {"==": a == b, "!=": a != b, "<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def atomic_rmw(op: str, old: int, value: int, t: IntT) -> int:
    """The new contents of a place after ``atomicrmw op`` (``atomic_add``, ``atomic_xchg``): wraps to ``t``."""
    if op == "add":
        return t.wrap(old + value)
    if op == "xchg":
        return t.wrap(value)
    raise ValueError(f"unknown atomic operation {op}")


def atomic_cmpxchg(old: int, expected: int, new: int, t: IntT) -> int:
    """The new contents of a place holding ``old`` after ``cmpxchg expected, new``."""
    return t.wrap(new) if t.wrap(old) == t.wrap(expected) else t.wrap(old)
