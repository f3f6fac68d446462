"""The extension point: an application built on the toolchain (the repository's sockmap application, or a
policy author's own package) plugs into the ``pybpfgen`` command, ``status``, ``doctor`` and the agent here,
and the loader itself knows no program.

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
``AGENT_SECTIONS = {name: section}``
    Sub-tables ``[objects.X.NAME]`` of the agent's configuration (``pybpfgen agent`` / ``apply``) that the
    plugin owns (a name cannot shadow the agent's own keys: path, cgroup, pin_root, config, maps). A
    ``section`` is any object with:

    * ``maps``: the names of the maps it manages. While the sub-table is present these maps hold exactly
      what it says (hash-like maps: entries not listed are removed; arrays: only the listed indices are
      written), and an ``[objects.X.maps.M]`` table for one of them is an error.
    * ``parse(table, checker, path) -> parsed``: check the TOML table (``path``: its key path, e.g.
      ``("objects", "myobj", "mysection")``) and return what the agent keeps (anything; compared by nothing).
      Errors go through the agent's ``checker`` (:class:`kernel_loader.agent.config.Checker`), so that
      they name file:line: key: ``checker.error(path + ("ports", 1), "invalid port 70000")`` returns the
      exception to raise; ``checker.table`` / ``typed`` / ``spec`` check a table's keys, a value's type,
      and wrap a parser raising :class:`~kernel_loader.errors.LoaderError`.
    * ``desired(parsed) -> {map: [(key, value, text), ...]}``: the entries of each managed map, keys and
      values typed as for ``Map.set`` (int / dict / bytes; encoded with the map's BTF, so that the diff
      with the live map is exact), ``text`` the entry as a person writes it (logs, ``apply`` output).
    * ``describe(map, key, value) -> str``: a live entry (decoded with the map's BTF) as a person writes
      it, for the updates and removals the agent logs.
    * optional ``hint``: appended to the error for an object that lacks one of ``maps``.
``AGENT_METRICS = {name: (type, help, labelnames)}`` and ``agent_metrics(obj) -> [(name, labels, value)]``
    Prometheus families the agent's ``/metrics`` exports (``type``: ``"counter"`` or ``"gauge"``; a counter
    is exported as ``name_total``), always declared, and their samples for one loaded object (``obj``: its
    status, as ``pybpfgen status --json``; ``labels``: values in ``labelnames`` order). Families not
    declared are ignored.

Discovery imports ``importlib.metadata`` (~40 ms), so it runs only for commands that need plugins: ``status``,
``doctor``, ``agent``, ``apply``, ``--help`` and a command that is not built in -- never for ``load``,
``unload`` or ``compile``.
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


def agent_sections() -> dict:
    """``{name: section}`` of the plugins' agent sub-tables (the first plugin declaring a name wins)."""
    out: dict = {}
    for plugin in plugins().values():
        for name, section in getattr(plugin, "AGENT_SECTIONS", {}).items():
            out.setdefault(name, section)
    return out


def agent_metric_families() -> dict:
    """``{name: (type, help, labelnames)}`` of the plugins' metric families, in plugin order."""
    out: dict = {}
    for plugin in plugins().values():
        for name, fam in getattr(plugin, "AGENT_METRICS", {}).items():
            out.setdefault(name, tuple(fam))
    return out


def agent_metrics(obj: dict) -> list[tuple[str, list[str], float]]:
    """The plugins' samples ``(family, label values, value)`` for one loaded object's status."""
    out: list = []
    for plugin in plugins().values():
        fn = getattr(plugin, "agent_metrics", None)
        if fn:
            out.extend(fn(obj))
    return out
