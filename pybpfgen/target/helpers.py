"""BPF helper functions: id, signature and the program types allowed to call them.

Ids and signatures come from the kernel UAPI (``include/uapi/linux/bpf.h``,
``___BPF_FUNC_MAPPER``); the allowed program types from ``net/core/filter.c``.
A helper is always called directly (``call <id>``), never through a register.
"""
from __future__ import annotations

from ..ir.nodes import Helper

_ALL = None


def _h(name, hid, ret, params, progtypes=_ALL):
    return name, Helper(name, hid, ret, tuple(params), None if progtypes is None else frozenset(progtypes))


HELPERS: dict[str, Helper] = dict([
    _h("map_lookup_elem", 1, "ptr", ["map", "ptr"]),
    _h("map_update_elem", 2, "i64", ["map", "ptr", "ptr", "u64"]),
    _h("map_delete_elem", 3, "i64", ["map", "ptr"]),
    _h("sock_hash_update", 70, "i64", ["ctx", "map", "ptr", "u64"], {"sock_ops"}),
    _h("msg_redirect_hash", 71, "i64", ["ctx", "map", "ptr", "u64"], {"sk_msg"}),
])
