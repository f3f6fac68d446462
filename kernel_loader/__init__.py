"""kernel_loader: a pure-Python BPF object loader (no libbpf, no clang, no llvmlite).

Public API (see docs/loader.md)::

    load(path_or_dir="build", cgroup=None, pin_root=DEFAULT_PIN_ROOT, *, verbose=False) -> list[LoadedObject]
    unload(name=None, pin_root=DEFAULT_PIN_ROOT) -> list[str]
    status(pin_root=DEFAULT_PIN_ROOT) -> dict
    open_pinned(name="accel", pin_root=DEFAULT_PIN_ROOT) -> PinnedObject   # .map(name) -> Map
    policy_add(port, object="accel"), policy_remove(port, ...), policy_list(...)

This package must never import llvmlite (nor pybpfgen's compiler).
"""
import importlib

_EXPORTS = {
    "BpfSyscallError": "errors", "LoaderError": "errors", "ObjectFormatError": "errors",
    "VerifierError": "verifier", "Map": "maps", "DEFAULT_PIN_ROOT": "pins",
    "DEFAULT_OBJECT": "manager", "LoadedObject": "manager", "LoadedProgram": "manager", "PinnedObject": "manager",
    "load": "manager", "unload": "manager", "status": "manager", "open_pinned": "manager",
    "policy_add": "manager", "policy_remove": "manager", "policy_list": "manager",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    """Import submodules on first use, so that `pybpfgen compile` does not pay for the loader."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
