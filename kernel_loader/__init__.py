"""kernel_loader: a pure-Python BPF object loader (no libbpf, no clang, no llvmlite).

Public API (see docs/loader.md)::

    load(path_or_dir="build", cgroup=None, pin_root=DEFAULT_PIN_ROOT, *, verbose=False) -> list[LoadedObject]
    unload(name=None, pin_root=DEFAULT_PIN_ROOT) -> list[str]
    status(pin_root=DEFAULT_PIN_ROOT) -> dict
    open_pinned(name="accel", pin_root=DEFAULT_PIN_ROOT) -> PinnedObject   # .map(name) -> Map
    policy_add(port, object="accel"), policy_remove(port, ...), policy_list(...)

This package must never import llvmlite (nor pybpfgen's compiler).
"""
from .errors import BpfSyscallError, LoaderError, ObjectFormatError
from .manager import (DEFAULT_OBJECT, LoadedObject, LoadedProgram, PinnedObject, load, open_pinned,
                      policy_add, policy_list, policy_remove, status, unload)
from .maps import Map
from .pins import DEFAULT_PIN_ROOT
from .verifier import VerifierError

__all__ = [
    "BpfSyscallError", "LoaderError", "ObjectFormatError", "VerifierError", "Map",
    "DEFAULT_OBJECT", "DEFAULT_PIN_ROOT", "LoadedObject", "LoadedProgram", "PinnedObject",
    "load", "unload", "status", "open_pinned", "policy_add", "policy_remove", "policy_list",
]
