"""Predicates on places (expressions that denote memory), shared by the frontend, the lowering and the
interpreter."""
from __future__ import annotations

from . import nodes as N


def is_place(e: N.Expr) -> bool:
    """Does ``e`` denote memory with an address: a local, a dereferenced reference, or a field or element
    of one?"""
    if isinstance(e, (N.VarRef, N.Deref)):
        return True
    if isinstance(e, (N.FieldGet, N.Index)):
        return is_place(e.base)
    return False


def in_ctx(e: N.Expr) -> bool:
    """Is this place inside the program's context (a syscall program's struct)?"""
    while isinstance(e, (N.FieldGet, N.Index)):
        e = e.base
    return isinstance(e, N.Deref) and isinstance(e.ref, N.CtxRef)
