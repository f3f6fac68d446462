"""The extension point: an application built on the toolchain (the accelerator in ``pybpfgen_accel``, or a
policy author's own package) plugs into the ``pybpfgen`` command, ``status`` and ``doctor`` here, and the
loader itself knows no program.

A plugin is a module named by an entry point in the group ``pybpfgen.plugins`` of an installed distribution::

    [project.entry-points."pybpfgen.plugins"]
    myapp = "myapp.pybpfgen_plugin"

or, for a checkout that is not installed, by ``PYBPFGEN_PLUGINS=myapp=myapp.pybpfgen_plugin[,...]`` (the module
must be importable). Every attribute is optional:

``COMMANDS``
    ``{name: add(subparsers)}``: subcommands of ``pybpfgen`` (``add`` calls ``subparsers.add_parser`` and
    ``set_defaults(func=...)``; ``func(args)`` returns the exit code). A plugin command cannot shadow a
    built-in one.
``status_summary(obj, sc) -> dict | None``
    Extra JSON for one loaded object in ``pybpfgen status`` (under the key ``STATUS_KEY``, default the
    plugin's name), or None when the object is not one of the plugin's. ``obj`` is the generic status of the object (maps, counters, programs, links).
``format_summary(summary) -> str | None``
    The text line ``pybpfgen status`` prints for that summary.
``doctor_checks(report) -> list[dict]``
    Extra ``doctor`` checks (``{"name", "status": ok|info|warn|fail, "detail", "fix"}``), e.g. the known
    hazards of the plugin's program on this kernel.
``add_doctor_arguments(parser)`` and ``run_doctor(args) -> int | None``
    Extra ``doctor`` options, and the handler that runs before the generic checks (None: not handled).

Discovery imports ``importlib.metadata`` (~40 ms), so it runs only for commands that need plugins: ``status``,
``doctor``, ``--help`` and a command that is not built in -- never for ``load``, ``unload`` or ``compile``.
"""
from __future__ import annotations

import importlib
import os
from types import ModuleType

from .errors import LoaderError

GROUP = "pybpfgen.plugins"
ENV = "PYBPFGEN_PLUGINS"

_loaded: dict[str, ModuleType] | None = None


class PluginError(LoaderError):
    """A plugin that cannot be imported (named in the message, with the entry point)."""


def _named() -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for item in filter(None, (s.strip() for s in os.environ.get(ENV, "").split(","))):
        name, sep, module = item.partition("=")
        if not sep or not name.strip() or not module.strip():
            raise PluginError(f"{ENV}: expected NAME=MODULE[,NAME=MODULE...], got {item!r}")
        out.append((name.strip(), module.strip()))
    from importlib.metadata import entry_points
    seen = {n for n, _ in out}
    for ep in sorted(entry_points(group=GROUP), key=lambda e: e.name):
        if ep.name not in seen:
            seen.add(ep.name)
            out.append((ep.name, ep.value))
    return out


def plugins() -> dict[str, ModuleType]:
    """``{name: module}`` of every plugin, imported once per process, in name order (``PYBPFGEN_PLUGINS`` first)."""
    global _loaded
    if _loaded is None:
        found: dict[str, ModuleType] = {}
        for name, module in _named():
            try:
                found[name] = importlib.import_module(module.split(":")[0])
            except ImportError as e:
                raise PluginError(f"plugin {name!r} ({module}) cannot be imported: {e}; reinstall it, or remove "
                                  f"it from {ENV}") from None
        _loaded = found
    return _loaded


def reset() -> None:
    """Forget the imported plugins (tests that change ``PYBPFGEN_PLUGINS``)."""
    global _loaded
    _loaded = None


def commands(builtin: set[str] | dict) -> dict:
    """``{name: add(subparsers)}`` of the plugins' subcommands, built-in names left out."""
    out: dict = {}
    for plugin in plugins().values():
        for name, add in getattr(plugin, "COMMANDS", {}).items():
            if name not in builtin and name not in out:
                out[name] = add
    return out


def _key(name: str, plugin: ModuleType) -> str:
    return getattr(plugin, "STATUS_KEY", name)


def status_summaries(obj: dict, sc) -> dict:
    """``{STATUS_KEY: summary}`` for one loaded object; a plugin that does not recognise it adds None."""
    out = {}
    for name, plugin in plugins().items():
        fn = getattr(plugin, "status_summary", None)
        if fn:
            out[_key(name, plugin)] = fn(obj, sc)
    return out


def format_summaries(obj: dict) -> list[str]:
    """The text lines of the plugins' summaries of one object's status."""
    lines = []
    for name, plugin in plugins().items():
        fn = getattr(plugin, "format_summary", None)
        summary = obj.get(_key(name, plugin))
        if fn and summary is not None:
            line = fn(summary)
            if line:
                lines.append(line)
    return lines


def doctor_checks(report: dict) -> list[dict]:
    out: list[dict] = []
    for plugin in plugins().values():
        fn = getattr(plugin, "doctor_checks", None)
        if fn:
            out.extend(fn(report))
    return out


def add_doctor_arguments(parser) -> None:
    for plugin in plugins().values():
        fn = getattr(plugin, "add_doctor_arguments", None)
        if fn:
            fn(parser)


def run_doctor(args) -> int | None:
    for plugin in plugins().values():
        fn = getattr(plugin, "run_doctor", None)
        rc = fn(args) if fn else None
        if rc is not None:
            return rc
    return None
