"""The loader's Python API: load / unload / status / open_pinned.

Everything here takes an optional ``sc`` (the syscall layer, default
:func:`kernel_loader.syscall.get_default`) and ``pin_root``.
"""
from __future__ import annotations

import errno

import os
import struct

from . import pins as _pins
from . import syscall as _syscall
from .attach import ATTACH_TYPE_NAMES, PROG_TYPES
from .kinfo import LinkInfo, ProgInfo
from .btf import sum_values
from .errors import BpfSyscallError, LoaderError
from .maps import ARRAY_TYPES, PERCPU_TYPES, Map
from pybpfgen.target.maps import MAP_SOCKHASH, MAP_SOCKMAP
from .pins import DEFAULT_PIN_ROOT

CGROUP2_SUPER_MAGIC = 0x63677270
# the attach types of programs on sock maps (sk_msg verdict, sk_skb stream parser / verdict)
MAP_ATTACH_TYPES = sorted({p.attach_type for p in PROG_TYPES.values() if p.attach == "map"})
DECODE_MAX_ENTRIES = 64


# load / unload live in lifecycle.py; re-exported here (the API's home)
from .lifecycle import (KernelBtfCache, LoadedObject, LoadedProgram, cgroup_path_by_id, check_cgroup as _check_cgroup,  # noqa: E402,F401
                        find_cgroup2_mount, load, object_paths as _object_paths, unload,
                        user_errors as _user_errors)


# ------------------------------------------------------------------- status
_BtfCache = KernelBtfCache  # BTF objects fetched from the kernel by id, cached per call


def _prog_status(sc, name: str, path: str) -> dict:
    fd = sc.obj_get(path)
    try:
        i = ProgInfo.from_bytes(sc.prog_info(fd))
    finally:
        sc.close(fd)
    return {"name": name, "id": i.id, "type": i.type_name, "type_id": i.type, "tag": i.tag,
            "verified_insns": i.verified_insns, "xlated_insns": i.xlated_insns, "jited_bytes": i.jited_prog_len,
            "btf_id": i.btf_id, "load_time_ns": i.load_time, "run_cnt": i.run_cnt, "run_time_ns": i.run_time_ns,
            "pin": path}


def _link_status(sc, name: str, path: str, map_names: dict[int, str], netdev: tuple | None = None) -> dict:
    """``netdev``: (ifname, ifindex) the object's journal recorded at load time, for a link on an interface."""
    fd = sc.obj_get(path)
    try:
        i = LinkInfo.from_bytes(sc.link_info(fd))
    finally:
        sc.close(fd)
    out = {"name": name, "id": i.id, "type": i.type_name, "type_id": i.type, "prog_id": i.prog_id, "pin": path}
    kind = i.target_kind
    if kind is not None and kind != "netns" and i.has_attach_type:
        out["attach_type"] = i.attach_type_name
    if kind == "cgroup":
        out["target"] = {"kind": "cgroup", "cgroup_id": i.cgroup_id,
                         "path": cgroup_path_by_id(i.cgroup_id) if i.cgroup_id else None}
    elif kind == "map":
        out["target"] = {"kind": "map", "map_id": i.map_id, "map_name": map_names.get(i.map_id)}
    elif kind == "ifindex":
        # an ifindex is per network namespace and the link's info does not say which: the name recorded when the
        # object was loaded (in the namespace it was loaded in), not whatever has this index here
        ifname = netdev[0] if netdev and i.ifindex and netdev[1] == i.ifindex else None
        out["target"] = {"kind": "interface", "ifindex": i.ifindex, "ifname": ifname}
    elif kind == "netns":
        out["target"] = {"kind": "netns", "netns_ino": i.netns_ino}
    else:
        out["target"] = None
    out["attached"] = i.attached
    return out


from .mapapi import UNITERABLE_TYPES  # noqa: E402  RINGBUF, USER_RINGBUF, QUEUE, STACK: no keys to walk


def _count_entries(sc, m: Map) -> int | None:
    """Entries in use, or None for maps that have no keys to count (ring buffers, queues)."""
    info = m.info()
    if info.type in UNITERABLE_TYPES:
        return None
    if info.type in ARRAY_TYPES:
        return info.max_entries
    if info.type == 15:   # SOCKMAP: every index is a key; count the occupied ones
        if info.value_size != 8:
            return None  # the kernel reports a slot's socket (its cookie) only for 8-byte values
        n = 0
        for k in m.keys():
            try:
                if sc.map_lookup(m.fd, k, 8) is not None:
                    n += 1
            except BpfSyscallError as e:
                if e.errno != errno.ENOENT:
                    n += 1   # present but not readable as a cookie
        return n
    return m.count()


def _map_status(sc, name: str, path: str, btfs: _BtfCache, obj_btf: list | None = None) -> dict:
    from .mapapi import _open
    pin_dir = os.path.dirname(os.path.dirname(path))
    m = _open(pin_dir, os.path.basename(pin_dir), name, sc, btfs, obj_btf)
    try:
        info = m.info()
        out = info.as_dict()
        out["pin_name"] = name
        out["pin"] = path
        key_type, value_type = m.type_names()
        out["key_type"], out["value_type"] = key_type, value_type
        out["entries"] = _count_entries(sc, m)
        out["values"] = None
        btf = m.btf()
        if info.type in ARRAY_TYPES and info.max_entries <= DECODE_MAX_ENTRIES and m.value_type_id \
                and btf is not None:
            values = []
            for i in range(info.max_entries):
                key = struct.pack("<I", i)
                if info.type in PERCPU_TYPES:
                    per_cpu = m.lookup_percpu(key) or []
                    values.append(sum_values([btf.decode(m.value_type_id, r) for r in per_cpu]))
                else:
                    raw = m.lookup(key)
                    values.append(None if raw is None else btf.decode(m.value_type_id, raw))
            out["values"] = values
        return out
    finally:
        m.close()


def _is_counter(v) -> bool:
    if isinstance(v, dict):
        return bool(v) and all(isinstance(x, int) for x in v.values())
    return isinstance(v, int)


def _counters(maps: list[dict]) -> dict:
    """Every per-CPU array whose value is an integer or a struct of integers, summed over CPUs (field names
    from BTF): ``{map: value}`` for a one-entry array, ``{map: [value per index]}`` otherwise."""
    out = {}
    for m in maps:
        vals = m.get("values")
        if m["type_id"] == 6 and vals and all(v is None or _is_counter(v) for v in vals) \
                and any(v is not None for v in vals):
            out[m["pin_name"]] = vals[0] if len(vals) == 1 else vals
    return out


def _summaries(obj: dict, sc) -> dict:
    """Program-specific summaries added to an object's status (``{STATUS_KEY: ...}``); each comes from
    the program's plugin (:mod:`.plugins`), the generic status above knows no program."""
    from . import plugins
    return plugins.status_summaries(obj, sc)


def _visible(entries: list[str]) -> list[str]:
    from .lifecycle import STAGE
    return [e for e in entries if not e.endswith(STAGE)]


def _legacy_links(sc, maps: list[dict], progs: list[dict], links: list[dict]) -> list[dict]:
    """sk_msg / sk_skb programs attached to our sockmaps with PROG_ATTACH (no link)."""
    linked = {ln["prog_id"] for ln in links}
    by_id = {p["id"]: p["name"] for p in progs}
    out = []
    for m in maps:
        if m["type_id"] not in (MAP_SOCKMAP, MAP_SOCKHASH):
            continue
        try:
            fd = sc.obj_get(m["pin"])
        except BpfSyscallError:
            continue
        try:
            queries = [(at, sc.prog_query(fd, at)) for at in MAP_ATTACH_TYPES]
        except BpfSyscallError:
            continue
        finally:
            sc.close(fd)
        for at, q in queries:
            for pid, lid in zip(q["prog_ids"], q["link_ids"]):
                if lid or pid in linked:
                    continue
                out.append({"name": by_id.get(pid, f"prog{pid}"), "id": None, "type": "legacy", "type_id": 0,
                            "prog_id": pid, "attach_type": ATTACH_TYPE_NAMES.get(at, str(at)), "attached": True,
                            "pin": None, "target": {"kind": "map", "map_id": m["id"], "map_name": m["pin_name"]}})
    return out


def _state_of(pin_root: str, name: str) -> dict:
    from . import state as _state
    try:
        return _state.read(pin_root, name) or {}
    except Exception:  # noqa: BLE001 - a damaged journal: status still describes the pins
        return {}


def _object_state(pin_root: str, name: str) -> dict:
    from . import state as _state
    j = _state.read(pin_root, name)
    if j is None:
        return {"state": "unknown", "cgroup": None}
    st = j.get("status", "unknown")
    pid = j.get("pid")
    if st == "loading" and pid:
        try:
            os.kill(pid, 0)
            st = "loading"
        except ProcessLookupError:
            st = "interrupted"
        except PermissionError:
            pass
    return {"state": st, "cgroup": j.get("cgroup")}


@_user_errors
def status(pin_root: str = DEFAULT_PIN_ROOT, *, name: str | None = None, sc=None,
           stats_interval: float | None = None, sleep=None) -> dict:
    """Describe every loaded object from its pins (schema in docs/cli.md).

    With ``stats_interval`` (seconds), kernel run-time statistics are
    enabled (BPF_ENABLE_STATS) only for that interval, and each program gets
    ``stats``: the runs and average run time measured during it."""
    import time
    sc = sc or _syscall.get_default()
    pin_root = os.path.abspath(pin_root)
    objects: list[dict] = []
    out = {"pin_root": pin_root, "objects": objects}
    if not os.path.isdir(pin_root) or not _pins.is_bpffs(pin_root, sc):
        return out
    btfs = _BtfCache(sc)
    names = [n for n in _pins.list_objects(pin_root) if name is None or n == name]
    stats_fd = None
    before: dict[str, tuple[int, int]] = {}
    t0 = 0.0
    if stats_interval is not None:
        try:
            stats_fd = sc.enable_stats(0)
        except BpfSyscallError as e:
            raise LoaderError(f"cannot enable BPF run-time statistics ({e.errno_name}); "
                              "run as root, or without --stats") from e
        for n in names:
            d = _pins.object_dir(pin_root, n)
            for pin in _visible(_pins.list_pins(pin_root, n, "progs")):
                try:
                    p = _prog_status(sc, pin, os.path.join(d, "progs", pin))
                    before[p["pin"]] = (p["run_cnt"], p["run_time_ns"])
                except BpfSyscallError:
                    pass
        t0 = time.monotonic()
        (sleep or time.sleep)(stats_interval)
    try:
        for n in names:
            d = _pins.object_dir(pin_root, n)
            obj_btf: list = []   # the object's BTF, fetched once when a map needs it
            maps = [_map_status(sc, e, os.path.join(d, "maps", e), btfs, obj_btf)
                    for e in _visible(_pins.list_pins(pin_root, n, "maps"))]
            map_names = {m["id"]: m["pin_name"] for m in maps}
            progs = [_prog_status(sc, e, os.path.join(d, "progs", e))
                     for e in _visible(_pins.list_pins(pin_root, n, "progs"))]
            j = _state_of(pin_root, n)
            netdev = (j.get("ifname"), j.get("ifindex")) if j.get("ifname") else None
            links = [_link_status(sc, e, os.path.join(d, "links", e), map_names, netdev)
                     for e in _visible(_pins.list_pins(pin_root, n, "links"))]
            links += _legacy_links(sc, maps, progs, links)
            if stats_fd is not None:
                elapsed = time.monotonic() - t0
                for p in progs:
                    c0, t0ns = before.get(p["pin"], (p["run_cnt"], p["run_time_ns"]))
                    cnt, ns = p["run_cnt"] - c0, p["run_time_ns"] - t0ns
                    p["stats"] = {"interval_s": round(elapsed, 3), "run_cnt": cnt, "run_time_ns": ns,
                                  "avg_ns": round(ns / cnt, 1) if cnt else None}
            else:
                for p in progs:
                    p["stats"] = None
            obj = {"name": n, "pin_dir": d, **_object_state(pin_root, n), "programs": progs, "links": links,
                   "maps": maps, "counters": _counters(maps)}
            obj.update(_summaries(obj, sc))
            objects.append(obj)
    finally:
        if stats_fd is not None:
            sc.close(stats_fd)
    return out


# -------------------------------------------------------------- open_pinned
class PinnedObject:
    """Maps of a loaded object, reopened from their pins."""

    def __init__(self, name: str, pin_dir: str, sc):
        self.name, self.pin_dir, self.sc = name, pin_dir, sc
        self._maps: dict[str, Map] = {}

    def map_names(self) -> list[str]:
        return sorted(os.listdir(os.path.join(self.pin_dir, "maps")))

    def program_names(self) -> list[str]:
        return sorted(os.listdir(os.path.join(self.pin_dir, "progs")))

    def has_map(self, name: str) -> bool:
        return os.path.exists(os.path.join(self.pin_dir, "maps", name))

    def map(self, name: str) -> Map:
        if name not in self._maps:
            path = os.path.join(self.pin_dir, "maps", name)
            if not os.path.exists(path):
                raise LoaderError(f"object {self.name} has no map {name!r} (it has: "
                                  f"{', '.join(self.map_names()) or 'none'})")
            self._maps[name] = Map.open_pinned(path, sc=self.sc)
            self._maps[name].name = name
        return self._maps[name]

    def close(self) -> None:
        for m in self._maps.values():
            m.close()
        self._maps.clear()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


@_user_errors
def open_pinned(name: str, pin_root: str = DEFAULT_PIN_ROOT, *, sc=None) -> PinnedObject:
    sc = sc or _syscall.get_default()
    d = os.path.join(os.path.abspath(pin_root), name)
    if not os.path.isdir(os.path.join(d, "maps")):
        loaded = _pins.list_objects(pin_root) if os.path.isdir(pin_root) else []
        hint = f" (loaded: {', '.join(loaded)})" if loaded else " (nothing is loaded)"
        raise LoaderError(f"object {name} is not loaded{hint}; load it first with `pybpfgen load`")
    return PinnedObject(name, d, sc)
