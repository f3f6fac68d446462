"""kernel_loader: a pure-Python BPF object loader (no libbpf, no clang, no llvmlite).

Public API (see docs/loader.md)::

    load(path_or_dir="build", cgroup=None, pin_root=DEFAULT_PIN_ROOT, *, verbose=False) -> list[LoadedObject]
    unload(name=None, pin_root=DEFAULT_PIN_ROOT) -> list[str]
    status(pin_root=DEFAULT_PIN_ROOT) -> dict
    open_pinned(name, pin_root=DEFAULT_PIN_ROOT) -> PinnedObject   # .map(name) -> Map
    open_map(object, map, pin_root=...) -> Map; map_show / map_dump / map_get / map_set / map_delete (any object)

Applications plug into the ``pybpfgen`` command, ``status``, ``doctor`` and the agent through
:mod:`kernel_loader.plugins` (docs/loader.md, "Plugins"); this package knows no program.

This package must never import llvmlite (nor pybpfgen's compiler).
"""
import importlib

_EXPORTS = {
    "BpfSyscallError": "errors", "LoaderError": "errors", "ObjectFormatError": "errors",
    "VerifierError": "verifier", "Map": "maps", "DEFAULT_PIN_ROOT": "pins",
    "LoadedObject": "manager", "LoadedProgram": "manager", "PinnedObject": "manager",
    "load": "manager", "unload": "manager", "status": "manager", "open_pinned": "manager",
    "open_map": "mapapi", "map_show": "mapapi", "map_dump": "mapapi", "map_get": "mapapi", "map_set": "mapapi",
    "map_delete": "mapapi",
}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    """Import submodules on first use, so that `pybpfgen compile` does not pay for the loader."""
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
