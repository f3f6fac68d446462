"""Type-checking helper calls: raw ``bpf_*`` helpers and map methods (their table is target/maps.py), each
argument by its parameter kind (target/helpers.py), and the program types allowed to call each helper."""
from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from ..diagnostics import UserError

from ..ir import nodes as N
from ..ir import types as T
from ..target import maps as MAPS
from ..target.helpers import HELPERS, NULLABLE_VALUE, OPTIONAL_FLAGS, dsl_param_names
from .conversions import SOCK_MAY_BE_NONE, sock_check_hint

if TYPE_CHECKING:
    from .base import CheckerBase
else:
    CheckerBase = object  # the typed base of the mixins is for the type checker only (base.py)


def _described(t: T.Type) -> str:
    if isinstance(t, T.StructT):
        return f"the struct {t}"
    if isinstance(t, T.ArrayT):
        return f"the array {t}"
    return str(t)


class HelperCalls(CheckerBase):
    """Mixin of :class:`~.body.BodyChecker`."""

    def use_helper(self, h: N.Helper, what: str, node: ast.AST) -> None:
        """Programs check helpers at once; functions record them for each program that calls them."""
        prog = self.prog
        if not isinstance(prog, N.Program):  # i.e. not self.is_program
            self.func.helper_uses.append((h, self.loc(node), what))
            return
        if h.progtypes is not None and prog.progtype not in h.progtypes:
            raise self.error(node, f"{what} (bpf_{h.name}) cannot be called from a {prog.progtype} program",
                             f"it is available in: {', '.join(sorted(h.progtypes))} programs")

    def args_of(self, node: ast.Call, names: list[str], required: int, what: str) -> list[ast.expr | None]:
        if len(node.args) > len(names):
            raise self.error(node, f"{what} takes at most {len(names)} arguments ({', '.join(names)})")
        got: list[ast.expr | None] = list(node.args) + [None] * (len(names) - len(node.args))
        for kw in node.keywords:
            if kw.arg not in names:
                raise self.error(kw.value, f"{what} has no parameter `{kw.arg}`", f"parameters: {', '.join(names)}")
            i = names.index(kw.arg)
            if got[i] is not None:
                raise self.error(kw.value, f"argument `{kw.arg}` is given twice")
            got[i] = kw.value
        for i in range(required):
            if got[i] is None:
                raise self.error(node, f"{what} is missing argument `{names[i]}`")
        return got

    def map_method(self, m: N.MapRef, method: str, node: ast.Call) -> N.Expr:
        """``m.method(...)``: the map kind's table (target/maps.py) says which helper it calls, with which
        parameters."""
        decl = m.map
        what = f"`{decl.name}.{method}()`"
        kind = MAPS.BY_KIND[decl.kind]
        meth = kind.method(method)
        if meth is None:
            msg, hint = kind.refuses.get(method) or kind.no_method
            raise self.error(node.func, msg.format(kind=decl.kind, name=decl.name, method=method), hint)
        if meth.helper in MAPS.RESERVATION_HELPERS:
            if meth.name == "reserve":
                raise self.error(node, f"the result of {what} must be assigned to a local name",
                                 f"write `ev = {decl.name}.reserve(...)`, check `if ev is None: return ...`, fill "
                                 f"`ev.field = ...`, then `{decl.name}.submit(ev)`")
            return self.release(decl, method, node)
        args = self.args_of(node, list(meth.params), meth.required, what)
        if meth.helper == "map_lookup_elem":
            key = args[0]
            assert key is not None  # required: args_of checked it
            return self.map_lookup(m, key, node)
        if "create" in meth.params:  # create=True/False: the helper's flags, BPF_SK_STORAGE_GET_F_CREATE or 0
            i = meth.params.index("create")
            c = args[i]
            if c is not None:
                if not (isinstance(c, ast.Constant) and isinstance(c.value, bool)):
                    raise self.error(c, "`create` is True or False", f"write `{decl.name}.get(sk, create=True)`")
                args[i] = ast.copy_location(ast.Constant(MAPS.BPF_SK_STORAGE_GET_F_CREATE if c.value else 0), c)
        h = HELPERS[meth.helper]
        rest, given = iter(args), iter(meth.params)
        out: list = []
        names: list[str] = []
        for k in h.params:
            name = "flags" if k == "u64" else k
            if k == "map":
                out.append(m)
                names.append("map")
            elif name in meth.fixed:  # supplied by the method: None (a NULL pointer) or a constant
                fixed = meth.fixed[name]
                out.append(None if fixed is None else ast.copy_location(ast.Constant(fixed), node))
                names.append(name)
            else:
                out.append(next(rest))
                names.append(next(given))
        return self.helper_call(h, what, node, out, decl, names)

    def map_lookup(self, m: N.MapRef, key: ast.expr, node: ast.AST) -> N.Expr:
        kind = MAPS.BY_KIND[m.map.kind]
        if not kind.lookup:
            hint = "use redirect() to send a message to the socket under a key" if kind.value == "socket" \
                else kind.no_method[1]
            raise self.error(node, f"looking up {m.map.kind} `{m.map.name}` is not supported in BPF programs", hint)
        return self.helper_call(HELPERS["map_lookup_elem"], f"`{m.map.name}.lookup()`", node, [m, key], m.map,
                                ["map", "key"])

    def raw_helper(self, h: N.Helper, node: ast.Call) -> N.Expr:
        """``bpf_<helper>(...)``: arguments follow the helper's parameter kinds."""
        what = f"`bpf_{h.name}()`"
        names = dsl_param_names(h)
        required = len(names) - (1 if h.params and h.params[-1] == "u64" and h.name in OPTIONAL_FLAGS else 0)
        if "fmt" in h.params:  # bpf_trace_printk(fmt, arg1..arg3): the integers may be left out
            required = h.params.index("fmt") + 1
        args = self.args_of(node, names, required, what)
        decl = None
        prepared: list = []
        for kind, a in zip(h.params, args):
            if kind == "map":
                assert a is not None  # only a trailing flags argument is optional
                mref = self.expr(a)
                if not isinstance(mref, N.MapRef):
                    raise self.error(a, f"argument `{names[len(prepared)]}` of {what} must be a map declared at "
                                        "module level")
                decl = mref.map
                prepared.append(mref)
            else:
                prepared.append(a)
        if h.name == "map_lookup_elem":
            key = args[1]
            assert key is not None  # required: args_of checked it
            return self.map_lookup(prepared[0], key, node)
        return self.helper_call(h, what, node, prepared, decl, names)

    def helper_call(self, h: N.Helper, what: str, node: ast.AST, args: list, decl: N.MapDecl | None,
                    names: list[str]) -> N.Expr:
        """Type the arguments of a helper by its parameter kinds. ``args`` holds AST nodes, None, or MapRef;
        ``names``: the parameters' names, for messages."""
        self.use_helper(h, what, node)
        if decl is not None:
            expected = MAPS.MAP_KINDS_FOR.get(h.name)
            if expected is not None and decl.kind not in expected:
                raise self.error(node, f"{what} needs a {' or '.join(expected)} map, not the {decl.kind} `{decl.name}`")
        out: list[N.Expr] = []
        for kind, a, pname in zip(h.params, args, names):
            if kind == "map":
                out.append(a if isinstance(a, N.MapRef) else self.expr(a))
            elif kind == "ctx":
                v = self.expr(a)
                if not isinstance(v, N.CtxRef):
                    raise self.error(a, f"argument `{pname}` of {what} is the program's context, not {v.type}",
                                     "pass the program's context parameter")
                out.append(v)
            elif kind == "sock":
                out.append(self.sock_arg(a, what, node))
            elif kind == "value" and h.name in NULLABLE_VALUE and \
                    (a is None or (isinstance(a, ast.Constant) and a.value is None)):
                out.append(N.Const(self.loc(a if a is not None else node), T.NONE, 0))  # a NULL pointer
            elif kind in ("key", "value", "ptr"):
                if kind == "ptr":  # older table encoding: the first pointer is the key, the second the value
                    kind = "value" if any(isinstance(x, N.AddrOf) for x in out) else "key"
                assert decl is not None  # every helper with key/value parameters takes a map (target/helpers.py)
                want = decl.key if kind == "key" else decl.value
                if isinstance(a, (ast.List, ast.Tuple)) and isinstance(want, T.ArrayT):
                    v = self.array_literal(a, want)
                else:
                    v = self.expr(a)
                    try:
                        v = self.convert(v, want, a)
                    except UserError as e:  # say which parameter of which helper
                        raise UserError(e.diag.loc, f"argument `{pname}` of {what}: {e.diag.message}",
                                        e.diag.hint) from None
                out.append(N.AddrOf(v.loc, v.type, v))
            elif kind == "data":
                v = self.expr(a)
                if decl is not None and decl.kind == "ringbuf" and not isinstance(decl.value, T.VoidT) \
                        and v.type != decl.value:
                    if not (isinstance(v.type, T.IntT) and isinstance(decl.value, T.IntT)):
                        raise self.error(a, f"`{decl.name}` carries {decl.value} records (RingBuf(event="
                                         f"{decl.value}) at line {decl.loc.line}), not {v.type}",
                                         f"output a {decl.value}, or declare another RingBuf for {v.type} records")
                    v = self.convert(v, decl.value, a)
                if not isinstance(v.type, (T.IntT, T.StructT, T.ArrayT)):
                    raise self.error(a, f"argument `{pname}` of {what} is a struct, array or integer (its address "
                                        f"and size are passed), not {v.type}")
                out.append(N.AddrOf(v.loc, v.type, v))
            elif kind == "u64":
                if a is None:
                    out.append(N.Const(self.loc(node), T.U64, 0, literal=False))
                else:
                    v = self.expr(a)
                    if not T.is_arith(v.type):
                        raise self.error(a, f"argument `{pname}` of {what} is an integer, not {_described(v.type)}")
                    out.append(self.cast(v, T.U64))
            else:
                raise self.error(node, f"{what} cannot be called yet: pybpfgen cannot pass its argument `{pname}` "
                                       f"(a `{kind}`)", "bpf_printk(\"format\", ...) writes formatted text"
                                 if kind == "fmt" else None)
        if h.ret == "ptr":
            assert decl is not None  # the helpers returning a pointer are map lookups and local storage gets
            rt: T.Type = T.OptRefT(decl.value)
        elif h.ret == "u64":
            rt = T.U64
        else:
            rt = T.I64
        return N.HelperCall(self.loc(node), rt, h, out)

    def sock_arg(self, a: ast.expr | None, what: str, node: ast.AST) -> N.Expr:
        """A socket argument: a ``Sock`` proven non-None (sk_msg's ``msg.sk``, or sock_ops' ``ctx.sk`` in a
        checked local)."""
        if a is None:
            raise self.error(node, f"{what} is missing its socket argument")
        v = self.expr(a)
        if isinstance(v.type, T.SockT):
            return v
        shown = ast.unparse(a)
        if isinstance(v.type, T.OptSockT):
            raise self.error(a, f"`{shown}` may be None here: {SOCK_MAY_BE_NONE}", sock_check_hint(shown))
        if isinstance(v, N.CtxRef):
            raise self.error(a, f"{what} takes a socket, not the program's context",
                             f"pass the context's socket: `{shown}.sk`")
        raise self.error(a, f"{what} takes a socket, not a value of type {v.type}",
                         "pass `ctx.sk` (sk_msg), or a local holding sock_ops' `ctx.sk` checked for None")
