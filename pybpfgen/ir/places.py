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


def root(e: N.Expr) -> N.Expr:
    """What a place is a field or element of (``e`` itself when it is neither)."""
    while isinstance(e, (N.FieldGet, N.Index)):
        e = e.base
    return e


def in_ctx(e: N.Expr) -> bool:
    """Is this place inside the program's context (a syscall program's struct)?"""
    e = root(e)
    return isinstance(e, N.Deref) and isinstance(e.ref, N.CtxRef)
