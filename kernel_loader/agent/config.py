# Over 500 lines: the whole declarative schema of agent.toml (every section, its defaults and its validation), so that one file documents what a configuration may say.
"""The agent's declarative configuration: a TOML file (read with :mod:`tomllib`) -> :class:`AgentConfig`.

Pure Python (no root, no bpf(2)). Every error is a :class:`ConfigError` whose message names the file, the
line and the key: ``agent.toml:12: objects.filter.maps.allow.entries[1]: missing "value"`` (a TOML syntax
error: ``agent.toml:3:9: invalid TOML: ...``, line and column from tomllib). The schema (docs/cli.md, "pybpfgen agent"):

    [agent]                                 # optional
    on_exit = "keep"                        # keep | unload (on SIGTERM)
    poll_interval = 1.0                     # seconds between checks of the file for changes; 0: SIGHUP only
    retry_interval = 10.0                   # seconds before a failed reconcile is retried
    resync_interval = 0                     # seconds between passes without a change (undo drift); 0: never
    metrics_address = "127.0.0.1:9473"      # default: no endpoint; --metrics-address overrides
    enable_stats = false                    # hold BPF_ENABLE_STATS: program run time / run counts move
    pin_root = "/sys/fs/bpf/pybpfgen"       # default pin root of every object

    [objects.NAME]                          # the name an object is pinned under (its file name w/o .bpf.o)
    path = "/usr/local/lib/pybpfgen/NAME.bpf.o"    # relative: to this file's directory
    cgroup = "/sys/fs/cgroup/shop.slice"    # default: where it is loaded, else the cgroup2 mount
    pin_root = "/sys/fs/bpf/pybpfgen"       # default: [agent] pin_root
    config = { NAME = 1 }                   # Configs (read-only globals) set before load

    [objects.NAME.SECTION]                  # a plugin's sub-table (kernel_loader.plugins AGENT_SECTIONS): the
    ...                                     # maps it owns hold exactly what it says (docs/cli.md)

    [objects.NAME.maps.MAP]                 # any other map: exactly these entries (arrays: these indices)
    entries = [{ key = 1, value = { a = 2 } }]     # typed through the map's BTF (as `Map.set`)
"""
from __future__ import annotations

import hashlib
import os
import re
import tomllib
from dataclasses import dataclass, field
from typing import Any

from ..defaults import DEFAULT_PIN_ROOT
from ..errors import LoaderError

ON_EXIT = ("keep", "unload")
BUILTIN_KEYS = ("path", "cgroup", "pin_root", "config", "maps")     # of [objects.NAME]; the rest: plugins


class ConfigError(LoaderError):
    """A bad configuration file: ``str()`` is ``FILE:LINE: KEY: what is wrong``."""

    def __init__(self, file: str, line: int | None, key: str, msg: str, col: int | None = None):
        self.file, self.line, self.key, self.msg, self.col = file, line, key, msg, col
        where = file if line is None else f"{file}:{line}" + (f":{col}" if col else "")
        super().__init__(f"{where}: {key + ': ' if key else ''}{msg}")

    @classmethod
    def at(cls, where: str, msg: str) -> "ConfigError":
        """From a ``FILE:LINE: KEY`` location kept with a spec (errors found against the live maps)."""
        m = re.fullmatch(r"(.*?)(?::(\d+))?: (.*)", where)
        if not m:
            return cls(where, None, "", msg)
        return cls(m.group(1), int(m.group(2)) if m.group(2) else None, m.group(3), msg)


@dataclass(frozen=True)
class MapEntry:
    key: Any            # TOML value, encoded with the map's BTF at reconcile time
    value: Any
    where: str          # "FILE:LINE: objects.x.maps.m.entries[0]" for errors found against the live map


@dataclass(frozen=True)
class MapSpec:
    name: str
    entries: tuple[MapEntry, ...]
    where: str


@dataclass(frozen=True)
class ObjectSpec:
    name: str
    path: str                       # absolute
    cgroup: str | None
    pin_root: str                   # absolute
    config: tuple[tuple[str, int], ...] = ()
    maps: tuple[MapSpec, ...] = ()
    where: str = ""                 # "FILE:LINE: objects.NAME.path", for errors found later (a missing file)
    sections: tuple[tuple[str, Any], ...] = ()  # plugins' sub-tables present: (name, what its parse returned)

    @property
    def config_dict(self) -> dict[str, int]:
        return dict(self.config)

    def section(self, name: str) -> Any:
        """What the plugin section ``name`` parsed (None when the object's table has no such sub-table)."""
        return next((v for n, v in self.sections if n == name), None)


@dataclass(frozen=True)
class AgentConfig:
    file: str
    sha256: str
    on_exit: str = "keep"
    poll_interval: float = 1.0
    retry_interval: float = 10.0
    resync_interval: float = 0.0
    metrics_address: str | None = None
    enable_stats: bool = False
    pin_root: str = DEFAULT_PIN_ROOT
    objects: tuple[ObjectSpec, ...] = field(default_factory=tuple)

    def object(self, name: str) -> ObjectSpec | None:
        return next((o for o in self.objects if o.name == name), None)


# ------------------------------------------------------------------ locating keys in the text
_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _split_key(s: str) -> list[str] | None:
    """``a."b.c".d`` -> ["a", "b.c", "d"] (None when it does not look like a key)."""
    out, i, s = [], 0, s.strip()
    while i < len(s):
        while i < len(s) and s[i] in " \t":
            i += 1
        if i >= len(s):
            break
        if s[i] in "\"'":
            q = s[i]
            j = i + 1
            buf = []
            while j < len(s) and s[j] != q:
                if q == '"' and s[j] == "\\" and j + 1 < len(s):
                    buf.append(s[j + 1])
                    j += 2
                    continue
                buf.append(s[j])
                j += 1
            if j >= len(s):
                return None
            out.append("".join(buf))
            i = j + 1
        else:
            m = _BARE.match(s, i)
            if not m:
                return None
            out.append(m.group(0))
            i = m.end()
        while i < len(s) and s[i] in " \t":
            i += 1
        if i < len(s):
            if s[i] != ".":
                return None
            i += 1
    return out or None


def _key_end(line: str) -> int:
    """Index of the '=' that ends the key of a ``key = value`` line (outside quotes), or -1."""
    q = None
    for i, c in enumerate(line):
        if q:
            if c == q:
                q = None
        elif c in "\"'":
            q = c
        elif c == "=":
            return i
        elif c == "#":
            return -1
    return -1


class KeyLocator:
    """Where each key of a TOML document is: ``line(("objects", "filter", "maps", "allow", "entries", 1))``. Tables,
    arrays of tables, dotted keys, and the elements of arrays (also spread over several lines) are found;
    keys inside inline tables fall back to the line of the element or of the key holding them."""

    def __init__(self, text: str):
        self.lines = text.splitlines()
        self.text = text
        self.keys: dict[tuple, tuple[int, int]] = {}   # path -> (line number, offset of the value in text)
        offsets, pos = [], 0
        for ln in text.splitlines(keepends=True):
            offsets.append(pos)
            pos += len(ln)
        self._offsets = offsets
        table: list[str | int] = []
        aot: dict[tuple, int] = {}
        depth = 0                       # inside a multi-line array / inline table: skip those lines
        for n, raw in enumerate(self.lines):
            s = raw.strip()
            if depth > 0:
                depth += self._depth_delta(raw)
                continue
            if not s or s.startswith("#"):
                continue
            if s.startswith("[["):
                parts = _split_key(s[2:s.find("]]")] if "]]" in s else "")
                if parts:
                    k = tuple(parts)
                    aot[k] = aot.get(k, -1) + 1
                    table = [*parts, aot[k]]
                    self.keys.setdefault(tuple(table), (n + 1, -1))
                    self.keys.setdefault(k, (n + 1, -1))
                continue
            if s.startswith("["):
                parts = _split_key(s[1:s.find("]")] if "]" in s else "")
                if parts:
                    table = list(parts)
                    self.keys.setdefault(tuple(table), (n + 1, -1))
                continue
            eq = _key_end(raw)
            if eq < 0:
                continue
            parts = _split_key(raw[:eq])
            if not parts:
                continue
            path = tuple(table) + tuple(parts)
            for i in range(len(table) + 1, len(path)):
                self.keys.setdefault(path[:i], (n + 1, -1))
            self.keys.setdefault(path, (n + 1, offsets[n] + eq + 1))
            depth = max(0, self._depth_delta(raw[eq + 1:]))

    @staticmethod
    def _depth_delta(s: str) -> int:
        d, q, i = 0, None, 0
        while i < len(s):
            c = s[i]
            if q:
                if c == "\\" and q == '"':
                    i += 2
                    continue
                if c == q:
                    q = None
            elif c in "\"'":
                q = c
            elif c == "#":
                break
            elif c in "[{":
                d += 1
            elif c in "]}":
                d -= 1
            i += 1
        return d

    def _line_of(self, offset: int) -> int:
        lo, hi = 0, len(self._offsets) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self._offsets[mid] <= offset:
                lo = mid
            else:
                hi = mid - 1
        return lo + 1

    def _element_line(self, value_offset: int, index: int) -> int | None:
        """The line where element ``index`` of the array starting after ``value_offset`` begins."""
        t, i, n = self.text, value_offset, len(self.text)
        while i < n and t[i] in " \t":
            i += 1
        if i >= n or t[i] != "[":
            return None
        i += 1
        depth, q, elem, expecting = 0, None, 0, True
        while i < n:
            c = t[i]
            if q:
                if c == "\\" and q == '"':
                    i += 2
                    continue
                if c == q:
                    q = None
                i += 1
                continue
            if c == "#":
                while i < n and t[i] != "\n":
                    i += 1
                continue
            if depth == 0 and expecting and c not in " \t\r\n,]":
                if elem == index:
                    return self._line_of(i)
                expecting = False
            if c in "\"'":
                q = c
            elif c in "[{":
                depth += 1
            elif c in "]}":
                if depth == 0:
                    return None
                depth -= 1
            elif c == "," and depth == 0:
                elem += 1
                expecting = True
            i += 1
        return None

    def line(self, path: tuple) -> int | None:
        path = tuple(path)
        for cut in range(len(path), 0, -1):
            p = path[:cut]
            hit = self.keys.get(p)
            if hit is None:
                continue
            line, voff = hit
            if cut < len(path) and isinstance(path[cut], int) and voff >= 0:
                el = self._element_line(voff, path[cut])
                if el is not None:
                    return el
            return line
        return None


def key_name(path: tuple) -> str:
    out = ""
    for p in path:
        if isinstance(p, int):
            out += f"[{p}]"
        else:
            part = p if _BARE.fullmatch(p) else '"' + p.replace('"', '\\"') + '"'
            out += ("." if out else "") + part
    return out


# ------------------------------------------------------------------ parsing
class Checker:
    """Checks parts of one configuration file; every error it makes names file:line: key. Plugins' agent
    sections (:mod:`kernel_loader.plugins`, ``AGENT_SECTIONS``) get one to check their sub-tables."""

    def __init__(self, file: str, text: str):
        self.file, self.text = file, text
        self._loc: KeyLocator | None = None

    @property
    def loc(self) -> KeyLocator:
        if self._loc is None:
            self._loc = KeyLocator(self.text)
        return self._loc

    def where(self, path: tuple) -> str:
        line = self.loc.line(path)
        return f"{self.file}{':' + str(line) if line else ''}: {key_name(path)}"

    def error(self, path: tuple, msg: str) -> ConfigError:
        """The error to raise for the key at ``path`` (e.g. ``("objects", "x", "maps", "m", "entries", 1)``)."""
        return ConfigError(self.file, self.loc.line(path), key_name(path), msg)

    def table(self, d, path: tuple, allowed: set[str]) -> dict:
        """``d`` itself, checked to be a table holding only ``allowed`` keys."""
        if not isinstance(d, dict):
            raise self.error(path, f"expected a table, got {_tname(d)}")
        for k in d:
            if k not in allowed:
                raise self.error(path + (k,), f"unknown key (expected one of: {', '.join(sorted(allowed))})")
        return d

    def typed(self, d: dict, path: tuple, key: str, types, what: str, default=None):
        """``d[key]`` (``default`` when absent), checked to be of ``types`` (a boolean is not an int)."""
        if key not in d:
            return default
        v = d[key]
        if isinstance(v, bool) and bool not in (types if isinstance(types, tuple) else (types,)):
            raise self.error(path + (key,), f"expected {what}, got a boolean")
        if not isinstance(v, types):
            raise self.error(path + (key,), f"expected {what}, got {_tname(v)}")
        return v

    def spec(self, path: tuple, fn, *args):
        """``fn(*args)``, a :class:`LoaderError` it raises turned into an error at ``path``."""
        try:
            return fn(*args)
        except LoaderError as e:
            raise self.error(path, str(e)) from None

    @staticmethod
    def tname(v) -> str:
        """``a string``, ``an integer``, ... for an error message."""
        return _tname(v)


_Checker = Checker


def _tname(v) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(v), type(v).__name__)


def _interval(c: _Checker, d: dict, path: tuple, key: str, default: float) -> float:
    v = c.typed(d, path, key, (int, float), "a number of seconds", default)
    if not 0 <= v <= 86400:
        raise c.error(path + (key,), f"{v} is out of range: expected 0 to 86400 seconds")
    return float(v)


def parse_address(text: str) -> tuple[str, int]:
    """``127.0.0.1:9473``, ``[::1]:9473``, ``localhost:9473``, ``:9473`` (all addresses) -> (host, port)."""
    t = text.strip()
    if t.startswith("["):
        host, sep, rest = t[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise LoaderError(f"invalid address {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9473 or [::1]:9473")
        port = rest[1:]
    else:
        host, sep, port = t.rpartition(":")
        if not sep or ":" in host:
            raise LoaderError(f"invalid address {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9473 or [::1]:9473")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise LoaderError(f"invalid address {text!r}: the port must be a number from 1 to 65535")
    return host, int(port)


def parse_text(text: str, file: str = "<config>") -> AgentConfig:
    """Parse and check a whole configuration (nothing touches the kernel)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        msg = str(e)
        m = re.search(r"\s*\(at line (\d+), column (\d+)\)\s*$", msg)
        line, col = (int(m.group(1)), int(m.group(2))) if m else (None, None)
        if m is None and (m := re.search(r"\s*\(at end of document\)\s*$", msg)):
            line = text.count("\n") + (0 if text.endswith("\n") else 1)
        raise ConfigError(file, line, "", f"invalid TOML: {msg[:m.start()] if m else msg}", col) from None
    c = _Checker(file, text)
    base = os.path.dirname(os.path.abspath(file)) if file not in ("<config>", "-") else os.getcwd()
    c.table(data, (), {"agent", "objects"})
    ag = c.table(data.get("agent", {}), ("agent",), {"on_exit", "poll_interval", "retry_interval",
                                                      "resync_interval", "metrics_address", "enable_stats",
                                                      "pin_root"})
    on_exit = c.typed(ag, ("agent",), "on_exit", str, 'a string ("keep" or "unload")', "keep")
    if on_exit not in ON_EXIT:
        raise c.error(("agent", "on_exit"), f"invalid value {on_exit!r}: expected \"keep\" or \"unload\"")
    addr = c.typed(ag, ("agent",), "metrics_address", str, 'a string such as "127.0.0.1:9473"', None)
    if addr:
        c.spec(("agent", "metrics_address"), parse_address, addr)
    pin_root = _abs_path(c, ag, ("agent",), "pin_root", base, DEFAULT_PIN_ROOT)
    objs_t = data.get("objects", {})
    if not isinstance(objs_t, dict):
        raise c.error(("objects",), f"expected a table of objects ([objects.NAME]), got {_tname(objs_t)}")
    if not objs_t:
        raise c.error(("objects",), "no objects: add an [objects.NAME] table with path = \"...bpf.o\"")
    objects = tuple(_object(c, name, o, base, pin_root) for name, o in objs_t.items())
    return AgentConfig(file=file, sha256=hashlib.sha256(text.encode()).hexdigest(), on_exit=on_exit,
                       poll_interval=_interval(c, ag, ("agent",), "poll_interval", 1.0),
                       retry_interval=_interval(c, ag, ("agent",), "retry_interval", 10.0),
                       resync_interval=_interval(c, ag, ("agent",), "resync_interval", 0.0),
                       metrics_address=addr or None,
                       enable_stats=c.typed(ag, ("agent",), "enable_stats", bool, "true or false", False),
                       pin_root=pin_root, objects=objects)


def load_file(path: str) -> AgentConfig:
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise ConfigError(path, None, "", f"cannot read the configuration: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        raise ConfigError(path, line, "", "not UTF-8 text (TOML files are UTF-8)") from None
    return parse_text(text, path)


def _abs_path(c: _Checker, d: dict, path: tuple, key: str, base: str, default):
    v = c.typed(d, path, key, str, "a path (string)", default)
    if v is None:
        return None
    if not v.strip():
        raise c.error(path + (key,), "empty path")
    return os.path.normpath(os.path.join(base, os.path.expanduser(v)))


def _object(c: _Checker, name: str, o, base: str, pin_root: str) -> ObjectSpec:
    from ..elf import object_name
    from .. import plugins as _plugins
    path = ("objects", name)
    owned = {k: v for k, v in _plugins.agent_sections().items() if k not in BUILTIN_KEYS}
    c.table(o, path, set(BUILTIN_KEYS) | set(owned))
    if "path" not in o:
        raise c.error(path, 'missing key "path" (the .bpf.o file to load)')
    obj_path = _abs_path(c, o, path, "path", base, None)
    if object_name(obj_path) != name:
        raise c.error(path + ("path",), f"{os.path.basename(obj_path)} is loaded and pinned as "
                                        f"{object_name(obj_path)!r}, not {name!r}: name the table "
                                        f"[objects.{object_name(obj_path)}]")
    cgroup = _abs_path(c, o, path, "cgroup", base, None)
    cfg = c.typed(o, path, "config", dict, "a table of NAME = integer", {})
    config = []
    for k, v in cfg.items():
        if isinstance(v, bool) or not isinstance(v, int):
            raise c.error(path + ("config", k), f"expected an integer, got {_tname(v)}")
        config.append((k, v))
    sections = tuple((sname, sec.parse(o[sname], c, path + (sname,))) for sname, sec in owned.items()
                     if sname in o)
    managed = {m: sname for sname, sec in owned.items() if sname in o for m in sec.maps}
    maps_t = o.get("maps", {})
    if not isinstance(maps_t, dict):
        raise c.error(path + ("maps",), f"expected a table of maps ([objects.{name}.maps.MAP]), got {_tname(maps_t)}")
    maps = []
    for mname, m in maps_t.items():
        mp = path + ("maps", mname)
        if mname in managed:
            raise c.error(mp, f"map {mname} is already managed by [objects.{name}.{managed[mname]}]; set it there")
        c.table(m, mp, {"entries"})
        ents = c.typed(m, mp, "entries", list, "an array of { key = ..., value = ... }", [])
        out = []
        for i, e in enumerate(ents):
            ep = mp + ("entries", i)
            c.table(e, ep, {"key", "value"})
            for need in ("key", "value"):
                if need not in e:
                    raise c.error(ep, f'missing "{need}"')
            out.append(MapEntry(e["key"], e["value"], c.where(ep)))
        maps.append(MapSpec(mname, tuple(out), c.where(mp)))
    return ObjectSpec(name=name, path=obj_path, cgroup=cgroup,
                      pin_root=_abs_path(c, o, path, "pin_root", base, pin_root), config=tuple(config),
                      maps=tuple(maps), where=c.where(path + ("path",)), sections=sections)

