"""Type-checking helper calls: raw ``bpf_*`` helpers and map methods (their table is target/maps.py), each
argument by its parameter kind (target/helpers.py), and the program types allowed to call each helper."""
from __future__ import annotations

import ast
import keyword
from typing import TYPE_CHECKING

from ..ir import nodes as N
from ..ir import types as T
from ..diagnostics import UserError
from ..target import constants as K
from ..target import maps as MAPS
from ..target import sockopts as SO
from ..target.helpers import C_ARGS, DOCS, HELPERS, NULLABLE_VALUE, OPTIONAL_FLAGS, SOCKET_ARG
from ..target.packets import CHANGES_PACKET_DATA
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


def param_names(h: N.Helper) -> list[str]:
    """The DSL parameter names of a helper: its C prototype's (``bpf_msg_pull_data``: msg, start, end, flags)."""
    from .packets import c_param_names

    cnames = c_param_names(h.name) if h.name in DOCS else []
    names: list[str] = []
    ci = 0
    for k in h.params:
        if ci < len(cnames) and cnames[ci].isidentifier():
            n = cnames[ci]
        elif "fmt" in h.params:  # the variadic arguments after a format string: arg1..
            n = f"arg{len(names) - h.params.index('fmt')}"
        else:
            n = f"arg{len(names) + 1}"
        if keyword.iskeyword(n) or n in names:  # as the generated functions of lang_helpers.py name it
            n += "_"
        if k != "optout":  # an optout buffer is the compiler's: no DSL argument
            names.append(n)
        ci += C_ARGS[k]
    return names


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
        kinds = [k for k in h.params if k != "optout"]  # an optout buffer is the compiler's: no DSL argument
        names = param_names(h)
        required = len(kinds) - (1 if kinds and kinds[-1] == "u64" and h.name in OPTIONAL_FLAGS else 0)
        args = self.args_of(node, names, required, what)
        decl = None
        prepared: list = []
        for kind, a in zip(kinds, args):
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
        opt = self.sockopt(h, what, node, args) if "optval" in h.params or "optout" in h.params else None
        for kind, a, pname in zip([k for k in h.params if k != "optout"], args, names):
            if kind == "map":
                out.append(a if isinstance(a, N.MapRef) else self.expr(a))
            elif kind == "bpf_socket" and isinstance(self.prog, N.Program) and \
                    self.prog.progtype in SOCKET_ARG.get(h.name, ()):
                out.append(self.sock_arg(a, what, node))
            elif kind in ("ctx", "bpf_socket"):
                v = self.expr(a)
                if not isinstance(v, N.CtxRef):
                    if kind == "bpf_socket" and isinstance(v.type, (T.SockT, T.OptSockT)):
                        where = f"a {self.prog.progtype} program" if isinstance(self.prog, N.Program) else \
                            "a function (called from a program)"
                        raise self.error(a, f"argument `{pname}` of {what} is the socket: in {where} the kernel "
                                            "takes the program's context, not its socket",
                                         "pass the program's context parameter (`ctx.sk` only in a "
                                         "@cgroup_setsockopt program itself)")
                    if kind == "bpf_socket":
                        raise self.error(a, f"argument `{pname}` of {what} is the socket: the program's context, "
                                            f"not {v.type}", "pass the program's context parameter")
                    raise self.error(a, f"argument `{pname}` of {what} is the program's context, not {v.type}",
                                     "pass the program's context parameter")
                out.append(v)
            elif kind == "optval":
                assert opt is not None  # set above for helpers with an optval parameter
                out.append(self.sockopt_value(opt, h, a, node))
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
            elif kind == "buf":
                out.append(self.buffer_arg(a, what, "to"))
            elif kind == "len":
                out.append(self.length_arg(a, out[-1], what, "len", node))
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
        self.check_arg_rules(h, what, out)
        if h.name in CHANGES_PACKET_DATA:
            self.packet_moved(f"`bpf_{h.name}()` (line {self.loc(node).line})")
        if h.ret == "ptr":
            assert decl is not None  # the helpers returning a pointer are map lookups and local storage gets
            rt: T.Type = T.OptRefT(decl.value)
        elif h.ret == "optref":
            assert opt is not None  # set above for helpers with an optout parameter
            rt = T.OptRefT(sockopt_type(opt), why=f"bpf_{h.name} fails (returns None) when the socket "
                           "cannot give the option, e.g. before the connection is established")
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

    # -------------------------------------------------------------- socket options (target/sockopts.py)
    def sockopt(self, h: N.Helper, what: str, node: ast.AST, args: list) -> SO.SockOpt:
        """The option a bpf_setsockopt/bpf_getsockopt call names: its level and optname arguments must be
        constants, and the kernel must accept the pair (it refuses the others with -EINVAL at run time)."""
        kinds = [k for k in h.params if k != "optout"]
        i = kinds.index("u64")
        level_a, name_a = args[i], args[i + 1]
        assert level_a is not None and name_a is not None  # required: args_of checked them
        setting = "optval" in h.params
        level = self.sockopt_const(level_a, what, "level", "SOL_SOCKET, SOL_TCP, SOL_IP or SOL_IPV6")
        lname = SO.LEVELS.get(level)
        if lname is None:
            raise self.error(level_a, f"{shown_const(level_a, level)} is not a socket option level "
                             f"bpf_{h.name} accepts", "use SOL_SOCKET, SOL_TCP, SOL_IP or SOL_IPV6")
        optname = self.sockopt_const(name_a, what, "optname", "TCP_NODELAY, SO_SNDBUF, ...")
        shown = name_a.id if isinstance(name_a, ast.Name) else (
            name_a.attr if isinstance(name_a, ast.Attribute) else ast.unparse(name_a))
        named = [o for o in SO.OPTIONS.values() if o.name == shown and K.VALUES.get(shown) == optname]
        if named and named[0].level != level:
            right = SO.LEVELS[named[0].level]
            rest = ", ..." if setting else ""
            raise self.error(name_a, f"{shown} is a {right} option, not a {lname} one",
                             f"pass {right} as the level: `bpf_{h.name}(ctx, {right}, {shown}{rest})`")
        o = SO.lookup(level, optname)
        accepted = ", ".join(SO.names_for(level, setting))
        if o is None:
            raise self.error(name_a, f"{shown_const(name_a, optname)} is not a {lname} option bpf_{h.name} "
                             "accepts", f"{lname} options it accepts: {accepted}")
        if not (o.can_set if setting else o.can_get):
            raise self.error(name_a, f"{o.name} can only be {'read' if setting else 'set'}: the kernel's "
                             f"bpf_{h.name} refuses it", f"{lname} options it accepts: {accepted}")
        return o

    def sockopt_const(self, a: ast.expr, what: str, param: str, examples: str) -> int:
        if isinstance(a, ast.Name) and a.id in self.vars:
            value = None
        else:
            try:
                value = self.mb.consts.eval(a)
            except UserError:
                value = None
        if value is None:
            raise self.error(a, f"argument `{param}` of {what} must be a constant ({examples})",
                             "socket options are checked at compile time: write the constant itself")
        return value

    def sockopt_value(self, o: SO.SockOpt, h: N.Helper, a: ast.expr | None, node: ast.AST) -> N.Expr:
        """The value of ``bpf_setsockopt``: an int option's integer, spilled to the stack as a C int, or a string
        option's constant name (stored on the stack with its NUL)."""
        assert a is not None  # required: args_of checked it
        is_str = isinstance(a, ast.Constant) and isinstance(a.value, str)
        if o.kind == "int":
            if is_str:
                raise self.error(a, f"{o.name} takes an integer, not a string",
                                 f"e.g. `bpf_{h.name}(ctx, {SO.LEVELS[o.level]}, {o.name}, 1)`")
            v = self.expr(a)
            if not isinstance(v.type, (T.IntT, T.BoolT)):
                raise self.error(a, f"{o.name} takes an integer, not {v.type}")
            # a C int parameter: any integer of 32 bits or fewer (a u32 such as a mark keeps its bits, as in C);
            # a wider one needs an explicit conversion
            c = self.cast(v, T.I32) if isinstance(v.type, T.IntT) and v.type.bits <= 32 else self.convert(v, T.I32, a)
            return N.AddrOf(c.loc, c.type, c)
        if not is_str:
            self.expr(a)  # its own errors first
            raise self.error(a, f"{o.name} takes a name as a constant string, not an integer",
                             f'e.g. `bpf_{h.name}(ctx, {SO.LEVELS[o.level]}, {o.name}, "cubic")`'
                             if o.name == "TCP_CONGESTION" else "e.g. \"eth0\"")
        assert isinstance(a, ast.Constant) and isinstance(a.value, str)
        name = a.value
        if not name or not name.isascii() or "\0" in name or len(name) > o.size - 1:
            raise self.error(a, f"{o.name} takes a name of 1 to {o.size - 1} ASCII characters, not {name!r}")
        if o.name == "TCP_CONGESTION" and name == "cdg":
            raise self.error(a, "the kernel refuses to switch to cdg from BPF (bpf_setsockopt returns -ENOTSUPP)",
                             "choose another algorithm (see /proc/sys/net/ipv4/tcp_available_congestion_control)")
        return N.FormatString(self.loc(a), T.NONE, name.encode() + b"\0")


def shown_const(a: ast.expr, value: int) -> str:
    text = ast.unparse(a)
    return f"`{text}`" if text == str(value) else f"`{text}` ({value})"


def sockopt_type(o: SO.SockOpt) -> T.Type:
    """What bpf_getsockopt writes for an option: a C int (i32), or a NUL-terminated name (u8[size])."""
    return T.I32 if o.kind == "int" else T.ArrayT(T.U8, o.size)
