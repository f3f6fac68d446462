"""Program types and their context structs (the fields come from :mod:`.contexts`).

Context fields are read with full 32-bit (or 64-bit) loads: the verifier rejects
narrow loads of these fields. ``remote_port`` is stored by the kernel in network
byte order in a u32 (on little-endian hosts, in the upper 16 bits); pybpfgen
converts it so that programs see every port in host byte order.
"""
from __future__ import annotations

from ..ir._records import Record

from ..ir.nodes import CtxField
from ..ir.types import U32, U64, ArrayT
from . import contexts


class ProgType(Record, frozen=True):
    name: str  # DSL name: "sock_ops"
    ctx_class: str  # DSL annotation: "SockOps"
    c_struct: str  # "bpf_sock_ops"
    section: str  # ELF section libbpf recognises
    prog_type: int  # BPF_PROG_TYPE_*
    attach_type: int  # BPF_* attach type
    fields: dict[str, CtxField]
    needs_map: bool = False  # attached to a sockmap/sockhash named in the decorator
    context: contexts.Context | None = None  # None: the context is a user-defined Struct (syscall)


_TYPES = {"u32": (U32, 32), "u64": (U64, 64), "u32[4]": (ArrayT(U32, 4), 32)}


def ctx_fields(ctx: contexts.Context, progtype: str) -> dict[str, CtxField]:
    """The compiler's fields of a context struct of :mod:`.contexts` that ``progtype`` programs may read."""
    out = {}
    for f in ctx.fields:
        if progtype in f.unreadable_in:
            continue
        typ, bits = _TYPES[f.type]
        out[f.name] = CtxField(f.name, f.offset, typ, bits, f.convert, f.writable, f.doc)
    return out




def _prog(name: str, section: str, prog_type: int, attach_type: int, ctx: contexts.Context,
          needs_map: bool = False) -> ProgType:
    return ProgType(name, ctx.dsl_class, ctx.c_struct, section, prog_type, attach_type, ctx_fields(ctx, name),
                    needs_map, ctx)


PROG_TYPES: dict[str, ProgType] = {
    "sock_ops": _prog("sock_ops", "sockops", 13, 3, contexts.SOCK_OPS),
    "sk_msg": _prog("sk_msg", "sk_msg", 16, 7, contexts.SK_MSG, needs_map=True),
    "socket_filter": _prog("socket_filter", "socket", 1, 0, contexts.SK_BUFF),
    # the context of a syscall program is a user-defined Struct (see CtxT.struct_t)
    "syscall": ProgType("syscall", "", "", "syscall", 31, 0, {}),
}
BY_CTX_CLASS = {p.ctx_class: p for p in PROG_TYPES.values() if p.ctx_class}
