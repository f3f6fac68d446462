"""Type-checking calls: what a called name is (integer cast, Struct constructor, DSL function, bpf_printk,
atomic, kernel helper, map method), and the calls that are not helpers."""
from __future__ import annotations

import ast
import re
from typing import TYPE_CHECKING

from ..ir import nodes as N
from ..ir import types as T
from ..target.helpers import HELPERS, UNSUPPORTED
from .. import lang
from . import constructs
from . import symbols as S
from .expressions import as_ctx
from .ringbuf import RAW_RESERVATION

if TYPE_CHECKING:
    from .base import CheckerBase
else:
    CheckerBase = object  # the typed base of the mixins is for the type checker only (base.py)


class Calls(CheckerBase):
    """Mixin of :class:`~.body.BodyChecker`."""

    def call(self, node: ast.Call) -> N.Expr:
        f = node.func
        for a in node.args:
            if isinstance(a, ast.Starred):
                raise self.error(a, *constructs.unsupported_expression(a))
        for kw in node.keywords:
            if kw.arg is None:
                raise self.error(kw.value, "`**` unpacking is not supported in BPF programs",
                                 "pass each argument by name")
        if isinstance(f, ast.Attribute):
            ctx = self.ctx_var(f.value)
            if ctx is not None and as_ctx(ctx.type).struct_t is None:
                return self.ctx_method(f, node, ctx)  # ctx.bytes(offset, n)
            view = self.vars.get(f.value.id) if isinstance(f.value, ast.Name) else None
            if view is not None and T.packet_of(view.type) is not None:
                return self.view_method(view, node)  # view.u32be(offset)
        if isinstance(f, ast.Attribute) and self.ctx_var(f.value) is None:
            base_sym = self.mb.resolve(f.value) if isinstance(f.value, (ast.Name, ast.Attribute)) else None
            if isinstance(f.value, ast.Name) and f.value.id in self.vars:
                raise self.error(f, f"`{f.value.id}` has no methods")
            if base_sym is not None and base_sym.kind == "map":
                return self.map_method(N.MapRef(self.loc(f.value), T.NONE, base_sym.value), f.attr, node)
        sym = self.mb.resolve(f) if isinstance(f, (ast.Name, ast.Attribute)) else None
        if isinstance(f, ast.Name) and f.id in self.vars:
            sym = None
        if sym is not None:
            if sym.kind == "lang" and sym.value in S.INT_TYPES:
                return self.explicit_cast(S.INT_TYPES[sym.value], node)
            if sym.kind == "type":
                if isinstance(sym.value, T.StructT):
                    return self.struct_init(sym.value, node)
            if sym.kind == "function":
                return self.call_function(sym.value, node)
            if sym.kind == "lang" and (sym.value is lang.bpf_printk or S.helper_name(sym.value) == "trace_printk"):
                return self.printk(node)
            if sym.kind == "lang" and sym.value in S.ATOMICS:
                return self.atomic(sym.value, node)
            if sym.kind == "lang":
                hname = S.helper_name(sym.value)
                if hname is not None:
                    return self.raw_helper(HELPERS[hname], node)
            if sym.kind == "program":
                raise self.error(node, "programs cannot call other programs",
                                 "move the shared code into an undecorated function and call that")
        if isinstance(f, ast.Name) and f.id == "bool" and self.mb.scope.lookup("bool") is None:
            if len(node.args) != 1 or node.keywords:
                raise self.error(node, "bool(...) takes one value")
            return self.condition(node.args[0])
        if isinstance(f, ast.Name) and f.id in RAW_RESERVATION:
            raise self.error(node, f"`{f.id}` is called through the RingBuf's methods, which check the "
                             "verifier's rules for reservations", RAW_RESERVATION[f.id])
        name = f.id if isinstance(f, ast.Name) else (f.attr if isinstance(f, ast.Attribute) else "")
        if name.startswith("bpf_") and name[4:] in UNSUPPORTED:  # a kernel helper: say why pybpfgen has not got it
            raise self.error(node, f"`{name}` is a kernel helper that pybpfgen cannot call yet: "
                             f"{UNSUPPORTED[name[4:]]}", "docs/language.md, \"Helpers\", lists what it can call")
        raise self.error(node, f"`{ast.unparse(f)}` cannot be called in a BPF program",
                         "call a map method, a bpf_* helper, a function of this module, an integer type (cast) "
                         "or a Struct (constructor)")

    def no_keywords(self, node: ast.Call, what: str) -> None:
        if node.keywords:
            raise self.error(node.keywords[0].value, f"{what} takes no keyword arguments")

    def explicit_cast(self, t: T.IntT, node: ast.Call) -> N.Expr:
        self.no_keywords(node, str(t))
        if len(node.args) != 1:
            raise self.error(node, f"{t}(...) takes one value")
        v = self.expr(node.args[0])
        self.arith_operand(v, node.args[0])
        return self.cast(v, t, loc=self.loc(node))

    def struct_init(self, st: T.StructT, node: ast.Call) -> N.Expr:
        values: dict[str, N.Expr] = {}
        if len(node.args) > len(st.fields):
            raise self.error(node, f"{st.name} has {len(st.fields)} fields, got {len(node.args)} values")
        items = list(zip(st.fields, node.args))
        for kw in node.keywords:
            f = st.by_name.get(kw.arg or "")
            if f is None:
                raise self.error(kw.value, f"struct {st.name} has no field `{kw.arg}`",
                                 f"fields: {', '.join(x.name for x in st.fields)}")
            if any(f is g for g, _ in items):
                raise self.error(kw.value, f"field `{f.name}` is given twice")
            items.append((f, kw.value))
        for f, a in items:
            if isinstance(a, (ast.List, ast.Tuple)) and isinstance(f.type, T.ArrayT):
                values[f.name] = self.array_literal(a, f.type)
            else:
                values[f.name] = self.convert(self.expr(a), f.type, a)
        return N.StructInit(self.loc(node), st, st, values)

    def call_function(self, fn: N.Function, node: ast.Call) -> N.Expr:
        self.no_keywords(node, f"`{fn.name}()`")
        if len(node.args) != len(fn.params):
            raise self.error(node, f"`{fn.name}()` takes {len(fn.params)} argument(s), got {len(node.args)}")
        args: list[N.Expr] = []
        for p, a in zip(fn.params, node.args):
            if isinstance(p.type, T.CtxT):
                v = self.expr(a)
                if not isinstance(v, N.CtxRef) or as_ctx(v.type).progtype != p.type.progtype:
                    raise self.error(a, f"parameter `{p.name}` of `{fn.name}` is a {p.type} context")
                args.append(v)
            else:
                args.append(self.convert(self.expr(a), p.type, a))
        if fn not in self.func.calls:
            self.func.calls.append(fn)
        call = N.Call(self.loc(node), fn.ret, fn, args)
        why = self.function_moves_packet(fn)
        if why is not None:
            self.packet_moved(why)
        return call

    def printk(self, node: ast.Call) -> N.Expr:
        """``bpf_printk("fmt", a, b)``: bpf_trace_printk with a format checked here."""
        self.no_keywords(node, "bpf_printk()")
        if not node.args or not (isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
            raise self.error(node, "bpf_printk needs a constant format string first")
        fmt = node.args[0].value
        specs = re.findall(r"%(%|[-0-9]*(?:ll|l)?[diuxX]|[-0-9]*[a-zA-Z]+)", fmt)
        conv = [sp for sp in specs if sp != "%"]
        for sp in conv:
            if not re.fullmatch(r"[-0-9]*(ll|l)?[diuxX]", sp):
                raise self.error(node.args[0], f"bpf_printk does not support `%{sp}`",
                                 "use %d %i %u %x with an optional l or ll width")
        args = node.args[1:]
        if len(conv) != len(args):
            raise self.error(node, f"the format has {len(conv)} conversion(s) but {len(args)} argument(s) are given")
        if len(args) > 3:
            raise self.error(node, "bpf_printk takes at most 3 values")
        h = HELPERS["trace_printk"]
        self.use_helper(h, "bpf_printk()", node)
        data = fmt.encode() + b"\0"
        out: list[N.Expr] = [N.FormatString(self.loc(node.args[0]), T.NONE, data)]
        for i, a in enumerate(args):
            v = self.expr(a)
            if not T.is_arith(v.type):
                raise self.error(a, f"value {i + 1} of bpf_printk() (for `%{conv[i]}`) is an integer, not {v.type}")
            out.append(self.cast(v, T.U64))
        fixed = N.Helper(h.name, h.id, h.ret, ("fmt",) + ("u64",) * len(args), h.progtypes)
        return N.HelperCall(self.loc(node), T.I64, fixed, out)
