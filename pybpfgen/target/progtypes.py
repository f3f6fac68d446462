"""Program types: the one table of what each BPF program type is (its ELF section, BPF program and attach types,
how the loader attaches it, its context struct and its return values).

The compiler (decorators, contexts, the ``.pybpfgen`` section) and the loader (``kernel_loader``: section names,
``PROG_LOAD``, attachment, status names) both read it. A new program type is one :class:`ProgType` here plus its
decorator in ``lang.py`` (see docs/architecture.md).

Plain data with no imports but :mod:`.contexts` (itself import-free), so that ``pybpfgen load`` and
``kernel_loader`` can read it without the compiler: the compiler's context fields (typed IR) are built on first use.

Context fields are read with full 32-bit (or 64-bit) loads: the verifier rejects
narrow loads of these fields. ``remote_port`` is stored by the kernel in network
byte order in a u32 (on little-endian hosts, in the upper 16 bits); pybpfgen
converts it so that programs see every port in host byte order.
"""
from __future__ import annotations

from . import contexts

TYPE_CHECKING = False  # typing is not imported at run time: the loader reads this table on every load

if TYPE_CHECKING:
    from ..ir.nodes import CtxField

BPF_F_SLEEPABLE = 1 << 4


class ProgType:
    __slots__ = ("name", "ctx_class", "c_struct", "section", "prog_type", "attach_type", "prog_flags", "attach",
                 "needs_map", "context", "returns", "returns_hint", "aliases", "packet", "_fields")

    def __init__(self, name: str, section: str, prog_type: int, attach_type: int, ctx: contexts.Context | None,
                 attach: str | None = None, needs_map: bool = False, prog_flags: int = 0,
                 returns: tuple[int, int] | None = None, returns_hint: str = "", aliases: tuple[str, ...] = (),
                 packet: str | None = None):
        self.name = name  # DSL name: "sock_ops"; the loader's kind of program
        self.ctx_class = ctx.dsl_class if ctx else ""  # DSL annotation: "SockOps"; "": a user-defined Struct
        self.c_struct = ctx.c_struct if ctx else ""  # "bpf_sock_ops"
        self.section = section  # ELF section libbpf recognises (the loader also accepts "<section>/...")
        self.prog_type = prog_type  # BPF_PROG_TYPE_*
        self.attach_type = attach_type  # BPF_* attach type (PROG_LOAD's expected_attach_type, LINK_CREATE's)
        self.prog_flags = prog_flags  # PROG_LOAD flags (BPF_F_SLEEPABLE)
        # what the loader attaches it to with a bpf_link: "cgroup" (--cgroup), "map" (the sock map named in the
        # decorator), "netdev" (a network interface: --ifname) or None (not attached, only pinned)
        self.attach = attach
        self.needs_map = needs_map  # attached to a sockmap/sockhash named in the decorator
        self.context = ctx  # None: the context is a user-defined Struct (syscall)
        self.returns = returns  # (lo, hi): the return values the kernel accepts, checked at compile time
        self.returns_hint = returns_hint  # what the values mean (the hint of a wrong return's diagnostic)
        self.aliases = aliases  # other spellings of the type in an object's .pybpfgen section / ELF section
        # direct access to its context's packet data (contexts.PacketData) the verifier allows: "read",
        # "write" (read and write) or None (none: the kernel's may_access_direct_pkt_data)
        self.packet = packet
        self._fields: dict[str, CtxField] | None = None

    def __repr__(self) -> str:
        return f"ProgType({self.name!r}, {self.section!r})"

    @property
    def fields(self) -> dict[str, CtxField]:
        """The compiler's context fields (typed IR; built on first use)."""
        if self._fields is None:
            self._fields = ctx_fields(self.context, self.name) if self.context else {}
        return self._fields


def ctx_fields(ctx: contexts.Context, progtype: str) -> dict[str, CtxField]:
    """The compiler's fields of a context struct of :mod:`.contexts` that ``progtype`` programs may read."""
    from ..ir.nodes import CtxField
    from ..ir.types import OPT_SOCK, SOCK, U32, U64, ArrayT

    from ..ir.types import I32

    types = {"u32": (U32, 32), "i32": (I32, 32), "u64": (U64, 64), "u32[4]": (ArrayT(U32, 4), 32),
             "sock": (SOCK, 64), "sock?": (OPT_SOCK, 64)}
    out = {}
    for f in ctx.fields:
        if progtype in f.unreadable_in or f.packet:  # packet pointers are not integers: packet access reads them
            continue
        typ, bits = types[f.type]
        out[f.name] = CtxField(f.name, f.offset, typ, bits, f.convert, f.writable_in(progtype), f.doc)
    return out


def _sock_addr(hook: str, family: int, attach_type: int, returns: tuple[int, int], hint: str) -> ProgType:
    """A BPF_PROG_TYPE_CGROUP_SOCK_ADDR hook: ``cgroup_connect4`` in ELF section ``cgroup/connect4``."""
    name = f"{hook}{family}"
    return ProgType(f"cgroup_{name}", f"cgroup/{name}", 18, attach_type, contexts.SOCK_ADDR, attach="cgroup",
                    returns=returns, returns_hint=hint)


_REWRITE = "; the address it leaves in the context is the one used"
# the return values the 6.18 verifier accepts per attach type (check_return_code): [0, 1] by default, [1, 1] for
# the hooks that only rewrite what the application sees, [0, 3] for bind (bit 1: no CAP_NET_BIND_SERVICE check)
_CONNECT = "return 1 to let connect() proceed, 0 to refuse it (EPERM)" + _REWRITE
_SENDMSG = "return 1 to let the datagram go, 0 to refuse it (EPERM)" + _REWRITE
_SEES = "return 1: this hook can only change the address the application sees"
_BIND = ("return 1 to let bind() proceed, 0 to refuse it (EPERM), 3 to also skip the CAP_NET_BIND_SERVICE check "
         "of ports below 1024") + _REWRITE
_SOCKOPT = "return 1 to let the call proceed (with the context's values), 0 to refuse it (EPERM)"
_TC_HINT = "return TC_ACT_OK to let the packet through, TC_ACT_SHOT to drop it, TCX_NEXT to let the next program decide"
SOCK_ADDR_TYPES = [
    _sock_addr("connect", 4, 10, (0, 1), _CONNECT), _sock_addr("connect", 6, 11, (0, 1), _CONNECT),
    _sock_addr("sendmsg", 4, 14, (0, 1), _SENDMSG), _sock_addr("sendmsg", 6, 15, (0, 1), _SENDMSG),
    _sock_addr("recvmsg", 4, 19, (1, 1), _SEES), _sock_addr("recvmsg", 6, 20, (1, 1), _SEES),
    _sock_addr("getpeername", 4, 29, (1, 1), _SEES), _sock_addr("getpeername", 6, 30, (1, 1), _SEES),
    _sock_addr("getsockname", 4, 31, (1, 1), _SEES), _sock_addr("getsockname", 6, 32, (1, 1), _SEES),
    _sock_addr("bind", 4, 8, (0, 3), _BIND), _sock_addr("bind", 6, 9, (0, 3), _BIND),
]
_SOCK_FIELDS: dict[str, CtxField] = {}


def sock_fields() -> dict[str, CtxField]:
    """The compiler's fields of ``struct bpf_sock`` (what a program reads through a socket pointer)."""
    if not _SOCK_FIELDS:
        _SOCK_FIELDS.update(ctx_fields(contexts.SOCK, "sock"))
    return _SOCK_FIELDS


PROG_TYPES: dict[str, ProgType] = {
    # sock_ops: the verifier accepts 0 or 1 (its default range); sk_msg: SK_DROP or SK_PASS (the kernel reads any
    # other value as SK_DROP, silently: the compiler rejects it)
    "sock_ops": ProgType("sock_ops", "sockops", 13, 3, contexts.SOCK_OPS, attach="cgroup", returns=(0, 1),
                         returns_hint="return 1; 0 makes the kernel ignore `ctx.reply`, a callback's answer"),
    "sk_msg": ProgType("sk_msg", "sk_msg", 16, 7, contexts.SK_MSG, attach="map", needs_map=True, packet="write",
                       returns=(0, 1), returns_hint="return SK_PASS (deliver or redirect the message) or SK_DROP"),
    "socket_filter": ProgType("socket_filter", "socket", 1, 0, contexts.SK_BUFF, aliases=("socket",)),
    # BPF_PROG_TYPE_CGROUP_SKB on BPF_CGROUP_INET_INGRESS / _EGRESS: 1 lets the packet through, 0 drops it
    "cgroup_skb_ingress": ProgType("cgroup_skb_ingress", "cgroup_skb/ingress", 8, 0, contexts.SK_BUFF,
                                   attach="cgroup", returns=(0, 1), packet="read",
                                   returns_hint="return 1 to let the packet through, 0 to drop it"),
    "cgroup_skb_egress": ProgType("cgroup_skb_egress", "cgroup_skb/egress", 8, 1, contexts.SK_BUFF,
                                  attach="cgroup", returns=(0, 1), packet="read",
                                  returns_hint="return 1 to let the packet through, 0 to drop it"),
    # BPF_PROG_TYPE_CGROUP_SOCK_ADDR: connect4 .. bind6, attached to a cgroup; the context is struct bpf_sock_addr
    **{p.name: p for p in SOCK_ADDR_TYPES},
    # BPF_PROG_TYPE_CGROUP_SOCKOPT on BPF_CGROUP_GETSOCKOPT / _SETSOCKOPT; optval .. optval_end readable and writable
    "cgroup_getsockopt": ProgType("cgroup_getsockopt", "cgroup/getsockopt", 25, 21, contexts.SOCKOPT,
                                  attach="cgroup", returns=(0, 1), returns_hint=_SOCKOPT, packet="write"),
    "cgroup_setsockopt": ProgType("cgroup_setsockopt", "cgroup/setsockopt", 25, 22, contexts.SOCKOPT,
                                  attach="cgroup", returns=(0, 1), returns_hint=_SOCKOPT, packet="write"),
    # BPF_PROG_TYPE_SK_SKB on a sock map's BPF_SK_SKB_STREAM_PARSER / _VERDICT: the parser returns the length of
    # the next message (any value: a length, 0 for "more data", negative to drop), the verdict SK_PASS or SK_DROP
    "sk_skb_stream_parser": ProgType("sk_skb_stream_parser", "sk_skb/stream_parser", 14, 4, contexts.SK_BUFF,
                                     attach="map", needs_map=True, packet="write"),
    "sk_skb_stream_verdict": ProgType("sk_skb_stream_verdict", "sk_skb/stream_verdict", 14, 5, contexts.SK_BUFF,
                                      attach="map", needs_map=True, returns=(0, 1), packet="write",
                                      returns_hint="return SK_PASS to deliver the data (or redirect it), SK_DROP "
                                                   "to drop it"),
    # BPF_PROG_TYPE_XDP on BPF_XDP: XDP_ABORTED 0, XDP_DROP 1, XDP_PASS 2, XDP_TX 3, XDP_REDIRECT 4
    "xdp": ProgType("xdp", "xdp", 6, 37, contexts.XDP_MD, attach="netdev", returns=(0, 4), packet="write",
                    returns_hint="return XDP_PASS, XDP_DROP, XDP_TX, XDP_REDIRECT or XDP_ABORTED"),
    # BPF_PROG_TYPE_SCHED_CLS on BPF_TCX_INGRESS / _EGRESS (tcx links, Linux 6.6+): TC_ACT_UNSPEC -1 (TCX_NEXT:
    # the next program decides) .. TC_ACT_TRAP 8; TC_ACT_OK 0 passes the packet, TC_ACT_SHOT 2 drops it
    "tc_ingress": ProgType("tc_ingress", "tcx/ingress", 3, 46, contexts.SK_BUFF, attach="netdev", returns=(-1, 8),
                           returns_hint=_TC_HINT, aliases=("tc/ingress",), packet="write"),
    "tc_egress": ProgType("tc_egress", "tcx/egress", 3, 47, contexts.SK_BUFF, attach="netdev", returns=(-1, 8),
                          returns_hint=_TC_HINT, aliases=("tc/egress",), packet="write"),
    # the context of a syscall program is a user-defined Struct (see CtxT.struct_t); BPF_F_SLEEPABLE is required
    "syscall": ProgType("syscall", "syscall", 31, 0, None, prog_flags=BPF_F_SLEEPABLE),
}
BY_CTX_CLASS: dict[str, list[ProgType]] = {}
for _p in PROG_TYPES.values():
    if _p.ctx_class:
        BY_CTX_CLASS.setdefault(_p.ctx_class, []).append(_p)
del _p


def by_section(section: str) -> ProgType | None:
    """The program type of an ELF section: its name, or its name followed by '/...' (libbpf's convention)."""
    for p in PROG_TYPES.values():
        for s in (p.section, *p.aliases):
            if section == s or section.startswith(s + "/"):
                return p
    return None


def by_name(name: str) -> ProgType | None:
    """The program type a ``.pybpfgen`` section names: its DSL name, its section or an alias."""
    for p in PROG_TYPES.values():
        if name == p.name or name == p.section or name in p.aliases:
            return p
    return None


# BPF_PROG_TYPE_* and BPF_* attach types the kernel may report (status of programs that are not ours too)
PROG_TYPE_NAMES: dict[int, str] = {
    **{p.prog_type: p.name for p in PROG_TYPES.values()},
    3: "sched_cls", 6: "xdp", 8: "cgroup_skb", 14: "sk_skb", 17: "raw_tracepoint", 18: "cgroup_sock_addr",
    25: "cgroup_sockopt", 26: "tracing"}
ATTACH_TYPE_NAMES: dict[int, str] = {0: "cgroup_inet_ingress", 1: "cgroup_inet_egress", 3: "cgroup_sock_ops",
                                     4: "sk_skb_stream_parser", 5: "sk_skb_stream_verdict", 7: "sk_msg_verdict",
                                     8: "cgroup_inet4_bind", 9: "cgroup_inet6_bind",
                                     10: "cgroup_inet4_connect", 11: "cgroup_inet6_connect",
                                     14: "cgroup_udp4_sendmsg", 15: "cgroup_udp6_sendmsg",
                                     19: "cgroup_udp4_recvmsg", 20: "cgroup_udp6_recvmsg",
                                     21: "cgroup_getsockopt", 22: "cgroup_setsockopt",
                                     29: "cgroup_inet4_getpeername", 30: "cgroup_inet6_getpeername",
                                     31: "cgroup_inet4_getsockname", 32: "cgroup_inet6_getsockname",
                                     37: "xdp", 38: "sk_skb_verdict", 46: "tcx_ingress", 47: "tcx_egress"}
