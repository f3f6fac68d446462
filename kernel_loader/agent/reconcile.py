"""Bring the loaded objects and their maps to exactly what an :class:`~.config.AgentConfig` says.

One pass (``reconcile``):

1. **plan the loads** - for each configured object: ``load`` (not loaded), ``adopt`` (loaded by an agent from
   the same object file, Configs and cgroup, and still running the very programs that agent loaded: nothing
   to do, its program ids stay), ``keep`` (adopted or loaded earlier by this process), or ``upgrade``
   (anything else: ``load`` upgrades it in place; maps, and the sockets in them, are kept).
   ``kernel_loader.load`` of an identical object is *not* a no-op (it replaces every program through its
   link, with new program ids), so adoption is decided here, from a record the agent keeps next to the
   loader's journal (``$PYBPFGEN_STATE_DIR/agent/...``).
2. **encode** every desired map entry (the plugins' sections and the generic entries, through the map's BTF)
   before anything changes: an entry that does not fit leaves the running state untouched.
3. **load / upgrade** what must be (``kernel_loader.load``: transactional).
4. **diff** each managed map: entries to add, to update (same key, other value) and to remove.
5. **apply**: every add and update of every map first, then the removals. Never clear-and-refill, so a new
   connection never finds an entry missing that both the old and the new file have; a key whose value
   changes is overwritten in place.

Only managed maps are touched: the maps a plugin's section owns when ``[objects.X.SECTION]`` is present
(:mod:`kernel_loader.plugins`, ``AGENT_SECTIONS``), and each ``[objects.X.maps.M]``. Arrays have no entries
to remove: only the listed indices are written.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from typing import Callable

from ..errors import LoaderError
from .config import AgentConfig, ConfigError, ObjectSpec

HASH, ARRAY, LRU_HASH, LPM_TRIE = 1, 2, 9, 11
GENERIC_TYPES = {HASH: "hash", ARRAY: "array", LRU_HASH: "lru_hash", LPM_TRIE: "lpm_trie"}


class ApplyError(LoaderError):
    """Applying a valid configuration failed (exit 1); what was applied before stays applied."""


# ------------------------------------------------------------------ changes (pure)
@dataclass(frozen=True)
class Change:
    op: str             # "add" | "update" | "remove"
    object: str
    map: str
    key: bytes
    value: bytes | None     # new value (None for remove)
    old: bytes | None       # live value (None for add)
    entry: str              # the entry as a person writes it: "8080", "10.0.0.0/8 local", ...
    old_entry: str | None = None

    SIGN = {"add": "+", "update": "~", "remove": "-"}

    def text(self) -> str:
        if self.op == "update" and self.old_entry is not None:
            return f"~ {self.object}/{self.map}: {self.old_entry} -> {self.entry}"
        return f"{self.SIGN[self.op]} {self.object}/{self.map}: {self.entry}"

    def as_dict(self) -> dict:
        d: dict[str, str | None] = {"op": self.op, "object": self.object, "map": self.map, "entry": self.entry,
                                    "key": self.key.hex()}
        if self.op == "update":
            d["old_entry"] = self.old_entry
        return d


def diff_map(obj: str, map_name: str, desired: dict[bytes, tuple[bytes, str]], live: dict[bytes, bytes], *,
             removable: bool = True, describe: Callable[[bytes, bytes], str] | None = None) -> list[Change]:
    """Changes that make ``live`` equal to ``desired`` (key -> (value, entry text)). ``removable=False``
    (arrays): keys not in ``desired`` are left alone. ``describe(key, value)`` names a live entry."""
    describe = describe or (lambda k, v: k.hex())
    out = []
    for k, (v, text) in desired.items():
        if k not in live:
            out.append(Change("add", obj, map_name, k, v, None, text))
        elif live[k] != v:
            out.append(Change("update", obj, map_name, k, v, live[k], text, describe(k, live[k])))
    if removable:
        for k, v in live.items():
            if k not in desired:
                out.append(Change("remove", obj, map_name, k, None, v, describe(k, v)))
    return out


def ordered(changes: list[Change]) -> list[Change]:
    """Every add and update (of every map) before any removal; stable otherwise."""
    return [c for c in changes if c.op != "remove"] + [c for c in changes if c.op == "remove"]


# ------------------------------------------------------------------ the agent's record (adoption)
def record_path(pin_root: str, name: str) -> str:
    from .. import state as _state
    key = os.path.abspath(pin_root).strip("/").replace("/", "%") or "%"
    return os.path.join(_state.state_dir(), "agent", key, name + ".json")


def read_record(pin_root: str, name: str) -> dict | None:
    try:
        with open(record_path(pin_root, name)) as f:
            d = json.load(f)
        return d if isinstance(d, dict) else None
    except (OSError, ValueError):
        return None


def write_record(pin_root: str, name: str, data: dict) -> None:
    path = record_path(pin_root, name)
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, sort_keys=True)
    os.replace(tmp, path)


def remove_record(pin_root: str, name: str) -> None:
    path = record_path(pin_root, name)
    try:
        os.unlink(path)
    except OSError:
        pass
    for d in (os.path.dirname(path), os.path.dirname(os.path.dirname(path))):
        try:
            os.rmdir(d)         # only when empty
        except OSError:
            break


def fingerprint(spec: ObjectSpec) -> str:
    """What decides whether the loaded programs are the configured ones: the object file's bytes, the
    Configs set before load and the cgroup."""
    h = hashlib.sha256()
    with open(spec.path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    h.update(json.dumps({"config": sorted(spec.config), "cgroup": _real(spec.cgroup)}).encode())
    return h.hexdigest()


def _real(p: str | None) -> str | None:
    return os.path.realpath(p) if p else None


# ------------------------------------------------------------------ the pass
@dataclass
class ObjectResult:
    name: str
    action: str                 # load | upgrade | adopt | keep | would-load | would-upgrade
    reason: str = ""
    program_ids: dict[str, int] = field(default_factory=dict)

    def text(self) -> str:
        verb = {"load": "loaded", "upgrade": "upgraded in place", "adopt": "adopted (already loaded)",
                "keep": "unchanged", "would-load": "would load", "would-upgrade": "would upgrade in place"}
        ids = ", ".join(f"{k} id {v}" for k, v in sorted(self.program_ids.items()))
        return (f"{verb.get(self.action, self.action)} {self.name}" + (f" ({self.reason})" if self.reason else "")
                + (f": {ids}" if ids else ""))

    def as_dict(self) -> dict:
        return {"object": self.name, "action": self.action, "reason": self.reason, "program_ids": self.program_ids}


@dataclass
class Result:
    objects: list[ObjectResult] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    dry_run: bool = False

    def lines(self) -> list[str]:
        out = [o.text() for o in self.objects if o.action != "keep"]
        out += [c.text() for c in self.changes]
        if not self.changes:
            out.append("no map changes" + (" (dry run)" if self.dry_run else ""))
        return out

    def as_dict(self) -> dict:
        return {"dry_run": self.dry_run, "objects": [o.as_dict() for o in self.objects],
                "changes": [c.as_dict() for c in self.changes]}


def _status_object(spec: ObjectSpec) -> dict | None:
    from .. import manager
    st = manager.status(spec.pin_root, name=spec.name)
    return next((o for o in st["objects"] if o["name"] == spec.name), None)


def plan_load(spec: ObjectSpec, adopted: set[tuple[str, str]]) -> tuple[str, str]:
    """(action, reason) for one object; ``adopted``: (pin_root, name) this process has loaded or adopted."""
    if not os.path.isfile(spec.path):
        raise ConfigError.at(spec.where, f"{spec.path}: no such file (build it with `pybpfgen compile`)")
    st = _status_object(spec)
    if st is None:
        return "load", "not loaded"
    if st.get("state") != "loaded":
        return "upgrade", f"its last load did not finish (state {st.get('state')})"
    if spec.cgroup and st.get("cgroup") and _real(st["cgroup"]) != _real(spec.cgroup):
        return "upgrade", f"moving from cgroup {st['cgroup']}"
    if any(not ln.get("attached", True) for ln in st.get("links", [])):
        return "upgrade", "a link is detached"
    rec = read_record(spec.pin_root, spec.name)
    ids = {p["name"]: p["id"] for p in st.get("programs", [])}
    if rec is None:
        return "upgrade", "not loaded by an agent (no record of its programs)"
    if rec.get("fingerprint") != fingerprint(spec):
        return "upgrade", "the object file, its Configs or its cgroup changed"
    if rec.get("program_ids") != ids:
        return "upgrade", "its programs were replaced since the agent loaded them"
    if (spec.pin_root, spec.name) in adopted:
        return "keep", ""
    return "adopt", "same object, same programs"


def _read_live(m) -> dict[bytes, bytes]:
    out = {}
    for k in list(m.keys()):
        v = m.lookup(bytes(k))
        if v is not None:
            out[bytes(k)] = bytes(v)
    return out


def _generic_desired(spec: ObjectSpec, o) -> dict[str, tuple[dict[bytes, tuple[bytes, str]], bool, Callable]]:
    """Encode the generic entries with each map's BTF: {map: (desired, removable, describe)}."""
    out = {}
    for ms in spec.maps:
        if not o.has_map(ms.name):
            raise ConfigError.at(ms.where, f"object {spec.name} has no map {ms.name!r} "
                                           f"(it has: {', '.join(o.map_names())})")
        m = o.map(ms.name)
        info = m.info()
        if info.type not in GENERIC_TYPES:
            raise ConfigError.at(ms.where, f"map {ms.name} is a {info.type_name}; the agent manages entries of "
                                           f"{', '.join(GENERIC_TYPES.values())} maps only")
        desired: dict[bytes, tuple[bytes, str]] = {}
        for e in ms.entries:
            try:
                k, v = m.encode_key(e.key), m.encode_value(e.value)
            except (LoaderError, ValueError, TypeError, OverflowError, struct.error, KeyError) as ex:
                raise ConfigError.at(e.where, f"does not fit map {ms.name}: {ex}") from None
            if len(k) != info.key_size or len(v) != info.value_size:
                raise ConfigError.at(e.where, f"does not fit map {ms.name} (key {len(k)} of {info.key_size} "
                                              f"bytes, value {len(v)} of {info.value_size})")
            if info.type == ARRAY and struct.unpack_from("<I", k)[0] >= info.max_entries:
                raise ConfigError.at(e.where, f"index {struct.unpack_from('<I', k)[0]} is out of range for "
                                              f"array {ms.name} (max_entries {info.max_entries})")
            if k in desired:
                raise ConfigError.at(e.where, f"key {_json(e.key)} is listed twice for map {ms.name}")
            desired[k] = (v, f"{_json(e.key)} = {_json(e.value)}")

        def describe(k: bytes, v: bytes, m=m) -> str:
            try:
                if hasattr(m, "decode_key"):
                    dk, dv = m.decode_key(k), m.decode_value(v)
                else:
                    dk, dv = m._decode(m.info().btf_key_type_id, k), m._decode(m.info().btf_value_type_id, v)
                return f"{_json(dk)} = {_json(dv)}"
            except Exception:  # noqa: BLE001 - a name for a log line only
                return f"{k.hex()} = {v.hex()}"
        out[ms.name] = (desired, info.type != ARRAY, describe)
    return out


def _json(v) -> str:
    try:
        return json.dumps(v, sort_keys=True, default=lambda x: x.hex() if isinstance(x, bytes) else str(x))
    except (TypeError, ValueError):
        return repr(v)


# ------------------------------------------------------------------ plugins' sections
class _ElfMap:
    """A map of an object file that is not loaded (``apply --dry-run``): its BTF types and geometry, from the
    ELF, encoding and decoding as a loaded map's ``Map`` does."""

    def __init__(self, md, btf):
        self.md, self.btf = md, btf

    def _enc(self, tid: int, size: int, v) -> bytes:
        if isinstance(v, (bytes, bytearray)):
            return bytes(v)
        if self.btf is not None and tid:
            return self.btf.encode(tid, v)
        return int(v).to_bytes(size, "little")

    def _dec(self, tid: int, raw: bytes):
        return self.btf.decode(tid, raw) if self.btf is not None and tid else int.from_bytes(raw, "little")

    def encode_key(self, k) -> bytes:
        return self._enc(self.md.key_type_id, self.md.key_size, k)

    def encode_value(self, v) -> bytes:
        return self._enc(self.md.value_type_id, self.md.value_size, v)

    def decode_key(self, raw: bytes):
        return self._dec(self.md.key_type_id, raw)

    def decode_value(self, raw: bytes):
        return self._dec(self.md.value_type_id, raw)


def _sections(spec: ObjectSpec):
    """(section name, section, parsed) of the plugin sections the object's table has."""
    from .. import plugins as _plugins
    owned = _plugins.agent_sections()
    return [(name, owned[name], parsed) for name, parsed in spec.sections if name in owned]


def _section_desired(spec: ObjectSpec, maps: Callable[[str], tuple | None]) -> dict[str, tuple]:
    """Encode the plugins' sections: {map: (desired, removable, describe, map type, value size, max_entries)}.
    ``maps(name)`` -> (map, type, key size, value size, max_entries), or None when there is no such map."""
    out: dict[str, tuple] = {}
    for sname, section, parsed in _sections(spec):
        hint = getattr(section, "hint", "")
        for map_name, entries in section.desired(parsed).items():
            found = maps(map_name)
            if found is None:
                raise ConfigError.at(spec.where, f"object {spec.name} has no map {map_name} (for "
                                                 f"[objects.{spec.name}.{sname}]){hint}")
            m, mtype, ksize, vsize, max_entries = found

            def mismatch(why: str, map_name=map_name, sname=sname, hint=hint) -> LoaderError:
                return LoaderError(f"map {map_name} of {spec.name} does not have the layout "
                                   f"[objects.{spec.name}.{sname}] expects ({why}): the loaded object does not "
                                   f"match this version of its plugin{hint}")
            desired: dict[bytes, tuple[bytes, str]] = {}
            for key, value, text in entries:
                try:
                    k, v = m.encode_key(key), m.encode_value(value)
                except (LoaderError, ValueError, TypeError, OverflowError, struct.error, KeyError) as ex:
                    raise mismatch(str(ex)) from None
                if len(k) != ksize or len(v) != vsize:
                    raise mismatch(f"{ksize}-byte keys and {vsize}-byte values, not {len(k)} and {len(v)}")
                desired[k] = (v, text)

            def describe(k: bytes, v: bytes, m=m, section=section, map_name=map_name) -> str:
                try:
                    return section.describe(map_name, m.decode_key(k), m.decode_value(v))
                except Exception:  # noqa: BLE001 - a name for a log line only
                    return k.hex()
            out[map_name] = (desired, mtype != ARRAY, describe, mtype, vsize, max_entries)
    return out


def _loaded_maps(o):
    def get(name: str):
        if not o.has_map(name):
            return None
        m = o.map(name)
        info = m.info()
        return m, info.type, info.key_size, info.value_size, info.max_entries
    return get


def _elf_maps(path: str):
    from ..elf import parse_object
    from ..maps import pin_name
    obj = parse_object(path)
    by_pin = {pin_name(md): md for md in obj.maps.values()}

    def get(name: str):
        md = by_pin.get(name)
        if md is None:
            return None
        return _ElfMap(md, obj.btf), md.type, md.key_size, md.value_size, md.max_entries
    return get


def _object_changes(spec: ObjectSpec, *, pre_generic=None) -> list[Change]:
    from .. import manager
    changes: list[Change] = []
    with manager.open_pinned(spec.name, spec.pin_root) as o:
        for map_name, (desired, removable, describe, *_) in _section_desired(spec, _loaded_maps(o)).items():
            changes += diff_map(spec.name, map_name, desired, _read_live(o.map(map_name)), removable=removable,
                                describe=describe)
        generic = pre_generic if pre_generic is not None else _generic_desired(spec, o)
        for map_name, (desired, removable, describe) in generic.items():
            changes += diff_map(spec.name, map_name, desired, _read_live(o.map(map_name)), removable=removable,
                                describe=describe)
    return changes


def _fresh_changes(spec: ObjectSpec) -> list[Change]:
    """What loading ``spec`` would write (``apply --dry-run``): its sections against new maps (arrays hold
    zeros), its generic entries as adds."""
    changes: list[Change] = []
    for map_name, (desired, removable, describe, mtype, vsize, max_entries) in \
            _section_desired(spec, _elf_maps(spec.path)).items():
        fresh = {k: bytes(vsize) for k in desired
                 if mtype == ARRAY and struct.unpack_from("<I", k)[0] < max_entries}
        changes += diff_map(spec.name, map_name, desired, fresh, removable=removable, describe=describe)
    for ms in spec.maps:
        changes += [Change("add", spec.name, ms.name, b"", None, None, f"{_json(e.key)} = {_json(e.value)}")
                    for e in ms.entries]
    return changes


def _apply_changes(changes: list[Change], specs: dict[str, ObjectSpec], log) -> None:
    import errno as _errno
    from .. import manager
    from ..errors import BpfSyscallError
    opened: dict[str, manager.PinnedObject] = {}
    try:
        for c in ordered(changes):
            spec = specs[c.object]
            if c.object not in opened:
                opened[c.object] = manager.open_pinned(spec.name, spec.pin_root)
            m = opened[c.object].map(c.map)
            try:
                if c.op == "remove":
                    m.delete(c.key)
                else:
                    assert c.value is not None, "add and update carry a value"
                    m.update(c.key, c.value)
            except BpfSyscallError as e:
                full = e.errno in (_errno.E2BIG, _errno.ENOSPC, _errno.ENOMEM)
                raise ApplyError(f"cannot {c.op} {c.object}/{c.map} {c.entry}: "
                                 + (f"the map is full (max_entries {m.info().max_entries})" if full
                                    else f"{e.errno_name}") + "; the changes before it are applied") from e
            log("change", **c.as_dict())
    finally:
        for o in opened.values():
            o.close()


def reconcile(cfg: AgentConfig, *, dry_run: bool = False, adopted: set[tuple[str, str]] | None = None,
              log: Callable[..., None] | None = None) -> Result:
    """One pass (see the module docstring). ``adopted`` (updated in place) carries, across passes of one
    agent, the objects it has loaded or adopted. Raises :class:`LoaderError` (``ConfigError`` for an entry
    that does not fit its map, found before anything changed) or :class:`ApplyError`."""
    import kernel_loader as kl
    log = log or (lambda event, **kw: None)
    adopted = adopted if adopted is not None else set()
    res = Result(dry_run=dry_run)
    specs = {s.name: s for s in cfg.objects}
    plans: list[tuple[ObjectSpec, str, str]] = []
    for spec in cfg.objects:
        action, reason = plan_load(spec, adopted)
        plans.append((spec, action, reason))
    # encode generic entries of loaded objects first: a bad entry leaves everything untouched
    pre: dict[str, dict] = {}
    for spec, action, _ in plans:
        if action != "load":
            with kl.open_pinned(spec.name, spec.pin_root) as o:
                _section_desired(spec, _loaded_maps(o))
                pre[spec.name] = _generic_desired(spec, o)
    if dry_run:
        for spec, action, reason in plans:
            r = ObjectResult(spec.name, action if action in ("adopt", "keep") else "would-" + action, reason)
            res.objects.append(r)
            if action == "load":
                res.changes += _fresh_changes(spec)
            else:
                res.changes += _object_changes(spec, pre_generic=pre.get(spec.name))
        res.changes = ordered(res.changes)
        return res
    for spec, action, reason in plans:
        r = ObjectResult(spec.name, action, reason)
        if action in ("load", "upgrade"):
            (lo,) = kl.load(spec.path, cgroup=spec.cgroup, pin_root=spec.pin_root, config=spec.config_dict or None)
            r.program_ids = {p.name: p.id for p in lo.programs.values()}
            write_record(spec.pin_root, spec.name, {"fingerprint": fingerprint(spec), "program_ids": r.program_ids,
                                                    "object": spec.path, "cgroup": spec.cgroup})
            log(action, object=spec.name, path=spec.path, cgroup=lo.cgroup, reason=reason,
                program_ids=r.program_ids, kept_maps=list(lo.reused_maps), replaced_maps=list(lo.replaced_maps))
        elif action == "adopt":
            st = _status_object(spec) or {}
            r.program_ids = {p["name"]: p["id"] for p in st.get("programs", [])}
            log("adopt", object=spec.name, path=spec.path, reason=reason, program_ids=r.program_ids)
        adopted.add((spec.pin_root, spec.name))
        res.objects.append(r)
    changes: list[Change] = []
    for spec, _action, _ in plans:
        changes += _object_changes(spec, pre_generic=pre.get(spec.name))
    res.changes = ordered(changes)
    _apply_changes(res.changes, specs, log)
    return res
