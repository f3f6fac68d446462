"""Packet and message bytes: checked views, the verifier's rule made part of the type system.

The design
----------
The verifier lets a program read a packet (an skb's data, an sk_msg's message, an XDP frame, a sockopt's
option value) only through the context's ``data`` pointer, and only bytes that a comparison with ``data_end``
has proved present on the path that reads them; a helper that may move the data (``bpf_msg_pull_data``,
``bpf_skb_pull_data``, ...) forgets every such proof. In C a missing or short comparison is a verifier log
("invalid access to packet, off=8 size=1, R2(id=0,off=8,r=4)"); here it is a compile error at the read:

- ``v = ctx.bytes(offset, n)`` asks for ``n`` bytes at ``offset`` from ``data``: it compares ``data + offset +
  n`` with ``data_end`` and gives a **view** (type ``bytes[n] | None``): None when the bytes are not there.
  ``n`` is a constant; ``offset`` a constant or a value provably bounded (a mask, ``%``, a loop variable) so
  that ``offset + n`` stays below the verifier's ``MAX_PACKET_OFF``.
- A view is used after a None check (``if v is None: return SK_PASS``), as a map lookup result is: ``v[i]``
  (a u8), ``v.u16be(off)``, ``v.u32be(off)``, ``v.u64be(off)`` (network byte order), ``v.u8/u16/u32/u64(off)``
  (the host's), all at constant offsets that the compiler checks against ``n``; ``v[i] = x`` where the program
  type may write its packet. Reading a view that may be None, a byte outside ``0..n-1``, or at a variable
  offset is a located error that says which check to add or which view to ask for.
- After a call that may move the data (target/packets.py ``CHANGES_PACKET_DATA``; also through a DSL function
  that makes one), every view taken before it is **stale**: using it is an error naming the call; ask again.

Generic: which context members are ``data``/``data_end`` is ``target/contexts.py`` (:class:`PacketData`), whether
a program type may read or write them directly is ``target/progtypes.py`` (``packet="read"|"write"``). A program
type that declares both gets views with nothing else to add. ``bpf_skb_load_bytes(skb, offset, buf, len)``
copies packet bytes into a buffer of the program's instead (``len`` a constant checked against the buffer), and
the message helpers' constant arguments are checked by target/packets.py ``ARG_RULES``.

Lowering (lowering/packets.py): ``data``/``data_end`` are loaded from the context, the view is ``data + offset``
(kept opaque when ``offset`` is not constant, so that LLVM cannot fold ``offset + n`` into one addition that
the verifier would not connect to the pointer read later), and None when ``view + n > data_end``: the
comparison of two packet pointers that the verifier understands.
"""
from __future__ import annotations

import ast
from typing import TYPE_CHECKING

from ..diagnostics import UserError
from ..ir import nodes as N
from ..ir import types as T
from ..ir.places import in_ctx, is_place, root
from ..target import packets as P
from ..target.helpers import C_ARGS, DOCS, HELPERS
from ..target.progtypes import PROG_TYPES
from . import symbols as S
from .flow import Flow

if TYPE_CHECKING:
    from .base import CheckerBase
else:
    CheckerBase = object  # the typed base of the mixins is for the type checker only (base.py)

CTX_METHODS = ("bytes",)


def c_param_names(helper: str) -> list[str]:
    """The parameter names of a helper's C prototype (``bpf_msg_pull_data``: msg, start, end, flags)."""
    sig = DOCS[helper].signature
    inside = sig[sig.index("(") + 1:sig.rindex(")")]
    return [p.strip().split()[-1].lstrip("*") for p in inside.split(",") if p.strip()]


def upper_bound(e: N.Expr, loop_vars: dict[N.Var, int]) -> int | None:
    """An exclusive upper bound of a non-negative integer expression, if one is evident: constants, loop
    variables, values of narrow unsigned types (a u8 is below 256), masks, ``%``, ``>>`` and sums of them
    (what the verifier's range tracking also knows)."""
    t = e.type
    if isinstance(e, N.Const):
        return e.value + 1 if e.value >= 0 else None
    # a u8 or u16 value is below 256 or 65536 whatever it is (a truncation u8(x) included)
    natural = 1 << t.bits if isinstance(t, T.IntT) and not t.signed and t.bits <= 16 else None
    if isinstance(e, N.Cast):
        inner = e.value.type
        if isinstance(inner, T.IntT) and not inner.signed and isinstance(t, T.IntT) and t.bits >= inner.bits:
            return upper_bound(e.value, loop_vars)
        return natural
    if isinstance(e, N.VarRef) and e.var in loop_vars:
        return loop_vars[e.var]
    if isinstance(e, N.Binary):
        lb, rb = upper_bound(e.left, loop_vars), upper_bound(e.right, loop_vars)
        if e.op == "&":
            bounds = [b for b in (lb, rb) if b is not None]
            return min(bounds) if bounds else None
        if e.op == "%" and isinstance(e.right, N.Const) and e.right.value > 0:
            return e.right.value
        if e.op == ">>" and isinstance(e.right, N.Const) and lb is not None:
            return ((lb - 1) >> e.right.value) + 1
        if e.op == "+" and lb is not None and rb is not None and isinstance(t, T.IntT) and lb + rb - 1 <= t.max:
            return lb + rb - 1
        if e.op == "*" and lb is not None and rb is not None and isinstance(t, T.IntT) \
                and (lb - 1) * (rb - 1) <= t.max:
            return (lb - 1) * (rb - 1) + 1
    return natural


class Packets(CheckerBase):
    """Mixin of :class:`~.body.BodyChecker`: views of packet data, and the helpers that read or move it."""

    # ------------------------------------------------------------ ctx.bytes(offset, n)
    def ctx_method(self, f: ast.Attribute, node: ast.Call, ctx: N.Var) -> N.Expr:
        pt = PROG_TYPES[ctx.type.progtype] if isinstance(ctx.type, T.CtxT) else None
        shown = ast.unparse(f.value)
        if pt is None or f.attr not in CTX_METHODS or pt.context is None:
            raise self.error(f, f"`{ast.unparse(f)}` cannot be called: a context has fields, and `bytes(offset, n)` "
                                "where its program type can read packet data")
        pkt = pt.context.packet
        if pkt is None:
            raise self.error(f, f"{pt.ctx_class} has no packet data: `{shown}.bytes()` is for contexts with "
                                "data/data_end (sk_msg messages, skb and XDP packets)")
        if pt.packet is None:
            load = "skb_load_bytes" if "skb_load_bytes" in HELPERS and pt.name in (
                HELPERS["skb_load_bytes"].progtypes or ()) else None
            raise self.error(f, f"a {pt.name} program cannot read {pkt.what} directly: the verifier refuses "
                                f"`{pt.c_struct}->{pkt.c_data}` there",
                             f"copy the bytes into a buffer: `bpf_skb_load_bytes({shown}, offset, buf, len)`"
                             if load else None)
        args = self.args_of(node, ["offset", "n"], 2, f"`{shown}.bytes()`")
        off_node, n_node = args
        assert off_node is not None and n_node is not None  # required: args_of checked them
        # a wrong size or offset is reported, and checking goes on with a view (no follow-on errors about it)
        n_e = self.expr(n_node)
        n = n_e.value if isinstance(n_e, N.Const) and isinstance(n_e.type, T.IntT) else 1
        if not isinstance(n_e, N.Const) or not isinstance(n_e.type, T.IntT):
            self.report(self.error(n_node, "the size of a view is a constant number of bytes",
                                   f"ask for the most bytes you read: `{shown}.bytes(0, 8)`"))
        elif not 1 <= n <= P.MAX_PACKET_OFF:
            self.report(self.error(n_node, f"a view has 1 to {P.MAX_PACKET_OFF} bytes, not {n}"))
            n = 1
        off = self.expr(off_node)
        self.arith_operand(off, off_node)
        limit = P.MAX_PACKET_OFF - n + 1  # offset + n must stay within MAX_PACKET_OFF
        if isinstance(off, N.Const):
            if not 0 <= off.value < limit:
                self.report(self.error(off_node, f"offset {off.value} is out of range: a view ends by byte "
                                                 f"{P.MAX_PACKET_OFF} of {pkt.what} (the verifier's MAX_PACKET_OFF)"))
            off = N.Const(off.loc, T.U64, off.value & 0xFFFF, literal=False)
        else:
            if not (self.bounded(off, limit) or (upper_bound(off, self.loop_vars) or limit + 1) <= limit):
                self.report(self.error(
                    off_node, f"the offset of `{shown}.bytes()` must be a constant or provably below {limit} "
                              f"(the verifier's MAX_PACKET_OFF minus the view's {n} bytes)",
                    f"mask it, e.g. `{ast.unparse(off_node)} & 0x3ff`, or use a loop variable of `range(M)`"))
            off = self.cast(off, T.U64)
        t = T.OptRefT(T.PacketT(n, pt.packet == "write", pkt.what, pt.name))
        return N.PacketView(self.loc(node), t, ctx, off, n)

    def report(self, e: UserError) -> None:
        self.mb.diags.add(e.diag)

    # ------------------------------------------------------------ using a view
    def checked_view(self, v: N.Expr, node: ast.expr, use: ast.AST) -> T.PacketT:
        pk = T.packet_of(v.type)
        assert pk is not None  # callers pass views
        if isinstance(v.type, T.OptRefT):
            shown = ast.unparse(node)
            raise self.error(use, f"`{shown}` may be None here: the range check of its `bytes()` call has not "
                                  f"been made on this path ({pk.what} may have fewer bytes)",
                             f"check it first: `if {shown} is None: return ...` (or `if {shown} is not None:`)")
        return pk

    def view_index(self, v: N.Expr, node: ast.Subscript) -> N.Expr:
        pk = self.checked_view(v, node.value, node)
        i = self.expr(node.slice)
        shown = ast.unparse(node.value)
        if not isinstance(i, N.Const):
            raise self.error(node.slice, f"`{shown}` is indexed with a constant: the verifier proves a view's range "
                                         "for constant offsets only",
                             f"for a variable position ask for a view there: `{self.ctx_name()}.bytes(offset + "
                             f"({ast.unparse(node.slice)}), 1)` with a bounded offset")
        return self.view_load(v, pk, i.value, 8, False, node.slice, shown)

    def view_load(self, v: N.Expr, pk: T.PacketT, off: int, bits: int, be: bool, where: ast.AST,
                  shown: str) -> N.Expr:
        size = bits // 8
        if not 0 <= off or off + size > pk.n:
            what = f"byte {off}" if size == 1 else f"bytes {off}..{off + size - 1}"
            raise self.error(where, f"{what} {'is' if size == 1 else 'are'} outside the {pk.n} bytes `{shown}` was "
                                    f"checked for (0..{pk.n - 1})",
                             f"ask for at least {off + size} bytes in its `bytes()` call" if off >= 0 else None)
        return N.PacketLoad(self.loc(where), T.IntT(bits, False), v, off, be)

    def view_method(self, var: N.Var, node: ast.Call) -> N.Expr:
        f = node.func
        assert isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name)
        v = self.expr(f.value)
        pk = self.checked_view(v, f.value, f)
        if f.attr.startswith("set_") and f.attr[4:] in P.VIEW_LOADS:
            return self.view_set(v, pk, var, f, node)
        spec = P.VIEW_LOADS.get(f.attr)
        if spec is None:
            raise self.error(f, f"a view has no method `{f.attr}`",
                             f"read it with `{var.name}[i]` or {', '.join(f'`{m}(offset)`' for m in P.VIEW_LOADS)}"
                             f"; write it with `{var.name}[i] = x` or `set_u16be(offset, x)`, ...")
        args = self.args_of(node, ["offset"], 1, f"`{ast.unparse(f)}()`")
        a = args[0]
        assert a is not None  # required: args_of checked it
        off = self.expr(a)
        if not isinstance(off, N.Const):
            raise self.error(a, f"`{ast.unparse(f)}()` reads at a constant offset: the verifier proves a view's "
                                "range for constant offsets only")
        bits, be = spec
        return self.view_load(v, pk, off.value, bits, be, a, var.name)

    def view_set(self, v: N.Expr, pk: T.PacketT, var: N.Var, f: ast.Attribute, node: ast.Call) -> N.Expr:
        """``view.set_u32be(offset, value)``: a store of the method's width at a constant offset."""
        bits, be = P.VIEW_LOADS[f.attr[4:]]
        if not pk.writable:
            raise self.error(f, f"a {pk.progtype} program can only read {pk.what}: the verifier refuses writes to its "
                                "packet data")
        args = self.args_of(node, ["offset", "value"], 2, f"`{ast.unparse(f)}()`")
        off_node, val_node = args
        assert off_node is not None and val_node is not None  # required: args_of checked them
        off = self.expr(off_node)
        if not isinstance(off, N.Const):
            raise self.error(off_node, f"`{ast.unparse(f)}()` writes at a constant offset: the verifier proves a "
                                       "view's range for constant offsets only")
        self.view_load(v, pk, off.value, bits, be, off_node, var.name)  # the same range check as a read
        value = self.convert(self.expr(val_node), T.IntT(bits, False), val_node)
        return N.PacketStore(self.loc(node), T.VOID, v, off.value, bits, value, be)

    def view_store_target(self, e: N.PacketLoad, node: ast.AST) -> N.Expr:
        pk = T.packet_of(e.view.type)
        assert pk is not None
        if not pk.writable:
            raise self.error(node, f"a {pk.progtype} program can only read {pk.what}: the verifier refuses writes "
                                   "to its packet data")
        return e

    def stale_view(self, var: N.Var, node: ast.AST) -> None:
        why = self.stale_why.get(var, "a helper that moves the packet data")
        raise self.error(node, f"`{var.name}` is no longer valid: {why} may have moved the data it pointed to, "
                               "and the verifier forgets every range check made before it",
                         f"ask for the bytes again after that call: `{var.name} = {self.ctx_name()}.bytes(...)`, then "
                         "check it")

    def ctx_name(self) -> str:
        return next((p.name for p in self.func.params if isinstance(p.type, T.CtxT)), "ctx")

    # ------------------------------------------------------------ helpers that move the data
    def packet_moved(self, why: str) -> None:
        """A call that may move the packet data: every view defined so far becomes stale."""
        views = [v for v in self.vars.values() if T.packet_of(v.type) is not None]
        for v in views:
            self.stale_why[v] = why
        self.flow = self.flow.invalidate(views)

    def function_moves_packet(self, fn: N.Function, seen: set | None = None) -> str | None:
        seen = seen if seen is not None else set()
        if id(fn) in seen:
            return None
        seen.add(id(fn))
        for h, loc, _ in fn.helper_uses:
            if h.name in P.CHANGES_PACKET_DATA:
                return f"`bpf_{h.name}()` (line {loc.line}, called through `{fn.name}()`)"
        for g in fn.calls:
            why = self.function_moves_packet(g, seen)
            if why is not None:
                return why
        return None

    def loop_packet_flow(self, body: list[ast.stmt], head: Flow) -> Flow:
        """Views a loop body may make stale are stale at the top of every iteration."""
        for n in (x for s in body for x in ast.walk(s)):
            if not isinstance(n, ast.Call) or not isinstance(n.func, (ast.Name, ast.Attribute)):
                continue
            sym = self.mb.resolve(n.func)
            why = None
            if sym is not None and sym.kind == "lang":
                name = S.helper_name(sym.value)
                if name in P.CHANGES_PACKET_DATA:
                    why = f"`bpf_{name}()` (line {n.lineno}, in a loop around this use)"
            elif sym is not None and sym.kind == "function":
                why = self.function_moves_packet(sym.value)
            if why is not None:
                views = [v for v in self.vars.values() if T.packet_of(v.type) is not None]
                for v in views:
                    self.stale_why[v] = why
                return head.invalidate(views)
        return head

    # ------------------------------------------------------------ helper arguments
    def check_arg_rules(self, h: N.Helper, what: str, out: list[N.Expr]) -> None:
        """target/packets.py ARG_RULES: constant arguments the kernel would refuse."""
        rules = P.ARG_RULES.get(h.name)
        if not rules:
            return
        names = c_param_names(h.name)
        by_name: dict[str, N.Expr] = {}
        ci = 0
        for kind, e in zip(h.params, out):
            if ci < len(names):
                by_name[names[ci]] = e
            ci += C_ARGS[kind]
        for r in rules:
            e = by_name.get(r.param)  # type: ignore[assignment]
            if not isinstance(e, N.Const):
                continue
            v = e.value
            bad = False
            if r.rule == "zero":
                bad = v != 0
            elif r.rule == "positive":
                bad = v == 0
            elif r.rule == "u32":
                bad = not 0 <= v <= 0xFFFFFFFF
            elif r.rule.startswith("lt:"):
                other = by_name.get(r.rule[3:])
                bad = isinstance(other, N.Const) and v >= other.value
            if bad:
                raise UserError(e.loc, f"argument `{r.param}` of {what} is {v}: {r.why}")

    def buffer_arg(self, a: ast.expr | None, what: str, param: str) -> N.Expr:
        """A ``buf`` argument: a place the helper writes (a local, a map value, a field or element of one)."""
        assert a is not None  # buffers are required arguments
        v = self.expr(a)
        if not is_place(v) or in_ctx(v) or not isinstance(v.type, (T.IntT, T.StructT, T.ArrayT)):
            raise self.error(a, f"argument `{param}` of {what} is the buffer it fills: a local variable (an array, "
                                "a struct or an integer) or a map value",
                             "declare one first, e.g. `buf: u8[16] = []`")
        r = root(v)
        if isinstance(r, N.VarRef) and r.var.is_param:
            raise self.error(a, f"cannot fill the parameter `{r.var.name}`", "copy it into a local variable first")
        if isinstance(r, N.Deref) and isinstance(r.ref, N.GlobalRef) and r.ref.decl.readonly:
            raise self.error(a, f"`{r.ref.decl.name}` is a Config: programs can only read it")
        return N.AddrOf(v.loc, v.type, v)

    def length_arg(self, a: ast.expr | None, buf: N.Expr, what: str, param: str, node: ast.AST) -> N.Expr:
        assert a is not None  # the length is required
        e = self.expr(a)
        size = buf.type.size
        if not isinstance(e, N.Const):
            raise self.error(a, f"argument `{param}` of {what} is a constant number of bytes",
                             f"the buffer holds {size}: pass a constant from 1 to {size}")
        if not 1 <= e.value <= size:
            raise self.error(a, f"{what} would write {e.value} bytes into a buffer of {size} ({buf.type})"
                             if e.value > 0 else f"argument `{param}` of {what} must be at least 1",
                             f"pass 1 to {size}, or make the buffer larger")
        return N.Const(e.loc, T.U64, e.value, literal=False)
