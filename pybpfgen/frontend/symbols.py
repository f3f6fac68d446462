"""What the names of :mod:`pybpfgen.lang` mean to the compiler.

Names are resolved by the identity of the object they import, never by spelling,
so ``from pybpfgen.lang import Hash as H`` works as well as ``lang.Hash``.
"""
from __future__ import annotations

from typing import Any

from .. import lang
from ..ir import types as T
from ..target.helpers import HELPERS
from ..target.maps import KINDS as MAP_KIND_TABLE, MapKind
from ..target.progtypes import PROG_TYPES


INT_TYPES = {lang.u8: T.U8, lang.u16: T.U16, lang.u32: T.U32, lang.u64: T.U64,
             lang.i8: T.I8, lang.i16: T.I16, lang.i32: T.I32, lang.i64: T.I64}
MAP_KINDS: dict[Any, MapKind] = {getattr(lang, k.dsl_class): k for k in MAP_KIND_TABLE}
RAW_HELPERS = {
    lang.bpf_map_lookup_elem: "map_lookup_elem",
    lang.bpf_map_update_elem: "map_update_elem",
    lang.bpf_map_delete_elem: "map_delete_elem",
    lang.bpf_sock_hash_update: "sock_hash_update",
    lang.bpf_msg_redirect_hash: "msg_redirect_hash",
}
# atomic builtin -> (LLVM atomicrmw operation or "cmpxchg", whether the old value is returned)
ATOMICS = {
    lang.atomic_add: ("add", False),
    lang.atomic_fetch_add: ("add", True),
    lang.atomic_xchg: ("xchg", True),
    lang.atomic_cmpxchg: ("cmpxchg", True),
}
# every program type's decorator is the pybpfgen.lang function of its name
PROG_DECORATORS = {getattr(lang, p.name): p.name for p in PROG_TYPES.values()}
# context class -> the program types whose context it is (SkBuff: socket_filter and cgroup_skb_*)
CTX_CLASSES: dict[Any, set[str]] = {}
for _p in PROG_TYPES.values():
    if _p.ctx_class:
        CTX_CLASSES.setdefault(getattr(lang, _p.ctx_class), set()).add(_p.name)
GLOBAL_KINDS = {lang.Global: "global", lang.Config: "config"}


def helper_name(obj: Any) -> str | None:
    """The kernel helper a pybpfgen.lang function stands for, if any."""
    if obj in RAW_HELPERS:
        return RAW_HELPERS[obj]
    name = getattr(obj, "__bpf_helper__", None)
    return name if isinstance(name, str) and name in HELPERS else None


def lang_exports() -> dict[str, Any]:
    return {name: getattr(lang, name) for name in lang.__all__}


def is_lang_constant(obj: Any) -> bool:
    return type(obj) is int or type(obj) is bool
