"""C integer conversions: explicit casts (truncate or extend) and the implicit conversions of assignments,
arguments and field values (only those that lose no value; constants must fit)."""
from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from ..diagnostics import Loc
from ..ir import nodes as N
from ..ir import types as T

if TYPE_CHECKING:
    from .base import CheckerBase
else:
    CheckerBase = object  # the typed base of the mixins is for the type checker only (base.py)


class Conversions(CheckerBase):
    """Mixin of :class:`~.body.BodyChecker`."""

    def cast(self, v: N.Expr, t: T.IntT, loc: Loc | None = None) -> N.Expr:
        """An explicit (C-style) conversion: truncates or extends, never fails for integers."""
        if v.type == t:
            return v
        if isinstance(v, N.Const):
            return N.Const(loc or v.loc, t, t.wrap(v.value), literal=False)
        return N.Cast(loc or v.loc, t, v)

    def convert(self, v: N.Expr, t: T.Type, node: ast.AST, explicit: bool = False) -> N.Expr:
        """An implicit conversion (assignment, argument, field value)."""
        src = v.type
        ring = src.ring if isinstance(src, (T.RefT, T.OptRefT)) else None
        if ring is not None and not (isinstance(t, (T.RefT, T.OptRefT)) and t.ring == ring):
            self.check_no_escape(v, node, "stored, passed or returned: it is valid only until it is submitted")
        if src == t:
            return v
        if isinstance(t, T.OptRefT) and isinstance(src, T.RefT) and src.target == t.target:
            return v
        if isinstance(t, T.OptSockT) and isinstance(src, T.SockT):
            return v
        if T.is_sock(src) and not T.is_sock(t):
            raise self.error(node, f"a socket cannot be stored as {t}: the verifier does not let a program keep a "
                                   "socket pointer in memory (a map value, a struct) or turn it into an integer",
                             "keep per-socket state in an SkStorage map (`storage.get(sk)`), or identify the socket "
                             "by its cookie")
        if isinstance(src, T.OptSockT) and isinstance(t, T.SockT):
            shown = ast.unparse(node)
            raise self.error(node, f"`{shown}` may be None here: {SOCK_MAY_BE_NONE}",
                             sock_check_hint(shown))
        if isinstance(t, (T.IntT, T.BoolT)) and isinstance(src, (T.IntT, T.BoolT)):
            if isinstance(t, T.BoolT):
                return self.truth(v, node)
            if explicit:
                return self.cast(v, t)
            if isinstance(v, N.Const):
                if t.contains(v.value):
                    return N.Const(v.loc, t, v.value, literal=False)
                raise self.error(node, f"constant {v.value} does not fit in {t}",
                                 f"write `{t}({ast.unparse(node)})` to wrap it explicitly")
            if isinstance(src, T.BoolT) or widens(src, t):
                return N.Cast(v.loc, t, v)
            raise self.error(node, f"cannot implicitly convert {src} to {t}: values may be lost",
                             f"write `{t}({ast.unparse(node)})` to convert explicitly")
        ps, pt = T.packet_of(src), T.packet_of(t)
        if ps is not None and pt is not None and ps.n != pt.n:
            raise self.error(node, f"`{ast.unparse(node)}` is a view of {ps.n} bytes, where one of {pt.n} bytes is "
                                   "expected: a view's size is part of its type",
                             "give views of different sizes different names")
        if isinstance(src, T.OptRefT) and isinstance(t, T.RefT):
            shown = ast.unparse(node)
            raise self.error(node, f"`{shown}` may be None here", f"check it first: `if {shown} is not None:`")
        raise self.error(node, f"expected a value of type {t}, got {src}")


SOCK_MAY_BE_NONE = "sock_ops' ctx.sk is None when the socket is not a full socket"


def sock_check_hint(shown: str) -> str:
    if "." in shown:  # ctx.sk: narrowing applies to local names
        return f"copy it into a local and check that: `sk = {shown}` then `if sk is not None:`"
    return f"check it first: `if {shown} is not None:` (or return early when it is None)"


def widens(src: T.IntT, dst: T.IntT) -> bool:
    if src.signed == dst.signed:
        return dst.bits >= src.bits
    return not src.signed and dst.signed and dst.bits > src.bits

