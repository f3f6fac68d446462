"""Generic access to the maps of any loaded object (``pybpfgen map show|dump|get|set|delete``).

Keys and values are Python values decoded / encoded with the object's BTF (the same rules as
:meth:`Map.get` / :meth:`Map.set`): ints, dicts for structs, lists for arrays, str for char arrays and enum
names; per-CPU maps give a list with one value per possible CPU. A map the kernel holds without BTF (a
sockhash / sockmap, a global-data map: ``.bss``, ``.data``, ``.rodata``) gets its types from the BTF its
object's programs were loaded with (``.maps`` variable of the same name, or the section's DATASEC).

Nothing here knows any particular program. Errors are one-line :class:`LoaderError` s.
"""
from __future__ import annotations

import errno
import json
import os

from . import pins as _pins
from . import syscall as _syscall
from .elf import MAP_SOCKHASH, MAP_SOCKMAP
from .errors import BpfSyscallError, LoaderError
from .lifecycle import KernelBtfCache, user_errors as _user_errors
from .kinfo import ProgInfo
from .maps import ARRAY_TYPES, Map
from .pins import DEFAULT_PIN_ROOT

from pybpfgen.target.maps import UNITERABLE_MAP_TYPES as UNITERABLE_TYPES  # noqa: E402  RINGBUF ...: no keys
from pybpfgen.target.maps import BY_KIND as _MAP_KINDS  # noqa: E402
MAP_RINGBUF = _MAP_KINDS["ringbuf"].map_type
from pybpfgen.target.maps import LOCAL_STORAGE_MAP_TYPES  # noqa: E402  SK_STORAGE ...: keyed by an fd
NOEXIST, EXIST = 1, 2                # BPF_NOEXIST, BPF_EXIST


def _short(value) -> str:
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    try:
        text = json.dumps(value, separators=(", ", ": "))
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _visible(entries: list[str]) -> list[str]:
    from .lifecycle import STAGE
    return [e for e in entries if not e.endswith(STAGE)]


def loaded_objects(pin_root: str) -> list[str]:
    return _pins.list_objects(pin_root) if os.path.isdir(pin_root) else []


def _object_dir(object: str, pin_root: str) -> str:
    pin_root = os.path.abspath(pin_root)
    d = _pins.object_dir(pin_root, object)
    if not os.path.isdir(os.path.join(d, "maps")):
        loaded = loaded_objects(pin_root)
        hint = f"loaded: {', '.join(loaded)}" if loaded else "nothing is loaded"
        raise LoaderError(f"object {object!r} is not loaded under {pin_root} ({hint}); load it first with "
                          "`pybpfgen load`, or give --pin-root")
    return d


def map_names(pin_dir: str) -> list[str]:
    try:
        return _visible(sorted(os.listdir(os.path.join(pin_dir, "maps"))))
    except OSError:
        return []


def object_btf(pin_dir: str, sc, btfs: KernelBtfCache | None = None):
    """The BTF the object's programs were loaded with (from the first program pin that has one), or None."""
    btfs = btfs or KernelBtfCache(sc)
    try:
        progs = _visible(sorted(os.listdir(os.path.join(pin_dir, "progs"))))
    except OSError:
        return None
    for p in progs:
        try:
            fd = sc.obj_get(os.path.join(pin_dir, "progs", p))
        except BpfSyscallError:
            continue
        try:
            btf_id = ProgInfo.from_bytes(sc.prog_info(fd)).btf_id
        except BpfSyscallError:
            continue
        finally:
            sc.close(fd)
        btf = btfs.get(btf_id)
        if btf is not None:
            return btf
    return None


def _types_from_object(m: Map, pin_name: str, btf) -> bool:
    """Give ``m`` (a map without kernel BTF) its key / value types from its object's BTF."""
    from .btf import DATASEC, INT, VAR, BtfError
    info = m.info()
    try:
        var = btf.find(pin_name, VAR)
        if var is not None:
            d = btf.map_definition(pin_name)
            kt, vt = d["key_type_id"], d["value_type_id"]
            if kt and btf.size_of(kt) != info.key_size:
                kt = 0
            if vt and btf.size_of(vt) != info.value_size:
                vt = 0
            if kt or vt:
                m.use_types(btf, kt, vt)
                return True
            return False
        for t in btf.defined():   # global data: pin "rodata" is section ".rodata" (pins hold no '.')
            if t.kind == DATASEC and t.name.lstrip(".").replace(".", "_") == pin_name \
                    and t.size_or_type == info.value_size:
                ints = [x for x in btf.defined() if x.kind == INT and x.size_or_type == 4 and not (x.extra >> 24) & 1]
                named = [x for x in ints if x.name in ("unsigned int", "u32", "__u32")]
                u32 = (named or ints)[0].id if ints else 0
                m.use_types(btf, u32 if info.key_size == 4 else 0, t.id)
                return True
    except BtfError:
        pass
    return False


def _open(pin_dir: str, object: str, name: str, sc, btfs: KernelBtfCache | None = None,
          obj_btf: list | None = None) -> Map:
    if "." in name and "/" not in name:   # ".bss" / "kinds.bss": the pin is "bss" (bpffs names hold no '.')
        name = name.rsplit(".", 1)[1] if not name.startswith(".") else name.lstrip(".").replace(".", "_")
    path = os.path.join(pin_dir, "maps", _pins.check_component(name))
    if not os.path.exists(path) or name.endswith("__new"):
        raise LoaderError(f"object {object} has no map {name!r} (it has: {', '.join(map_names(pin_dir)) or 'none'})")
    m = Map.open_pinned(path, sc=sc)
    m.name = name
    if m.info().btf_id and btfs is not None:
        m._btf = btfs.get(m.info().btf_id)      # one parse per BTF object, not one per map
    if not m.info().btf_id:
        if obj_btf is None:
            obj_btf = [object_btf(pin_dir, sc, btfs)]
        elif not obj_btf:
            obj_btf.append(object_btf(pin_dir, sc, btfs))
        if obj_btf[0] is not None:
            _types_from_object(m, name, obj_btf[0])
    if m.info().type == MAP_RINGBUF:   # its records' type, recorded in its definition's BTF (events.py)
        from .events import event_type
        btf, tid = event_type([m.btf(), obj_btf[0] if obj_btf else None], name)
        if tid:
            m._btf, m.event_type_id = btf, tid
    return m


@_user_errors
def open_map(object: str, map: str, pin_root: str = DEFAULT_PIN_ROOT, *, sc=None) -> Map:
    """The pinned map ``map`` of the loaded object ``object``, opened (the caller closes it, or uses it as a
    context manager), with its BTF types (from the kernel, or from its object's BTF)."""
    sc = sc or _syscall.get_default()
    return _open(_object_dir(object, pin_root), object, map, sc)


# ------------------------------------------------------------------ describing a map
def _count(m: Map, sc) -> int | None:
    from .manager import _count_entries
    try:
        return _count_entries(sc, m)
    except BpfSyscallError:
        return None


def describe_map(m: Map, sc) -> dict:
    info = m.info()
    btf = m.btf()
    kt, vt = m.key_type_id, m.value_type_id

    def tname(tid, size):
        if btf is not None and tid:
            return btf.type_name(tid)
        return f"{size} bytes" if size else None

    def picture(tid):
        return btf.describe(tid) if btf is not None and tid else None

    d = {"name": m.name, "id": info.id, "type": info.type_name, "type_id": info.type,
         "key_type": tname(kt, info.key_size), "value_type": tname(vt, info.value_size),
         "key": picture(kt), "value": picture(vt),
         "key_size": info.key_size, "value_size": info.value_size, "max_entries": info.max_entries,
         "entries": _count(m, sc), "flags": info.map_flags, "percpu": m.percpu,
         "btf": "kernel" if info.btf_id else ("object" if btf is not None else None)}
    if info.type == MAP_RINGBUF:   # the records' type (`pybpfgen events` decodes them with it), or None
        d["event_type"], d["event"] = tname(m.event_type_id, 0), picture(m.event_type_id)
    return d


@_user_errors
def map_show(object: str | None = None, map: str | None = None, pin_root: str = DEFAULT_PIN_ROOT, *,
             sc=None) -> dict:
    """``{"pin_root", "objects": [{"name", "pin_dir", "maps": [describe_map(...), ...]}]}``: every map of every
    loaded object, of ``object``, or just its ``map``."""
    sc = sc or _syscall.get_default()
    pin_root = os.path.abspath(pin_root)
    if object is None:
        names = loaded_objects(pin_root)
    else:
        _object_dir(object, pin_root)
        names = [object]
    objects: list[dict] = []
    out = {"pin_root": pin_root, "objects": objects}
    btfs = KernelBtfCache(sc)
    for n in names:
        d = _pins.object_dir(pin_root, n)
        if not os.path.isdir(os.path.join(d, "maps")):
            continue
        obj_btf: list = []
        maps = []
        for name in ([map] if map is not None else map_names(d)):
            m = _open(d, n, name, sc, btfs, obj_btf)
            try:
                maps.append(describe_map(m, sc))
            finally:
                m.close()
        objects.append({"name": n, "pin_dir": d, "maps": maps})
    return out


# ------------------------------------------------------------------ reading and writing entries
def _where(object: str, m: Map) -> str:
    return f"{object}/{m.name}"


def _encode(m: Map, object: str, what: str, value) -> bytes:
    info = m.info()
    tid = m.key_type_id if what == "key" else m.value_type_id
    size = info.key_size if what == "key" else info.value_size
    try:
        return m.encode_key(value) if what == "key" else m.encode_value(value)
    except (ValueError, TypeError, OverflowError) as e:
        btf = m.btf()
        if btf is not None and tid:
            pic, name = btf.describe(tid), btf.type_name(tid)
            expected = f"{name} {pic}" if pic.startswith("{") else pic
        else:
            expected = f"a {size}-byte integer (the map has no BTF)" if size in (1, 2, 4, 8) \
                else f"{size} bytes (the map has no BTF)"
        detail = str(e)
        if detail.startswith(f"map {m.name}: "):
            detail = detail[len(f"map {m.name}: "):]
        raise LoaderError(f"{_where(object, m)}: {what} {_short(value)} does not fit {expected}: {detail}") from None


_COMMAND = {"look up": "get"}  # the `pybpfgen map` command of an action


def _check_iterable(m: Map, object: str, action: str) -> None:
    if m.info().type in LOCAL_STORAGE_MAP_TYPES:
        owner = m.info().type_name.split("_")[0].replace("sk", "socket").replace("cgrp", "cgroup")
        raise LoaderError(f"{_where(object, m)} is a {m.info().type_name} map: its values live in each {owner}, "
                          f"and the kernel finds one only by a file descriptor of that {owner} in the calling "
                          f"process, so `pybpfgen map {_COMMAND.get(action, action)}` cannot reach them; read a "
                          f"value in the process that owns "
                          f"the {owner} (BPF_MAP_LOOKUP_ELEM with its fd as the key), or count in a program "
                          "(a Global or an Array)")
    if m.info().type in UNITERABLE_TYPES:
        raise LoaderError(f"{_where(object, m)} is a {m.info().type_name}: it has no keys to {action}")


def _lookup(m: Map, object: str, key: bytes):
    try:
        if m.percpu:
            vals = m.lookup_percpu(key)
            return None if vals is None else [m.decode_value(v) for v in vals]
        raw = m.lookup(key)
        return None if raw is None else m.decode_value(raw)
    except BpfSyscallError as e:
        if e.errno == errno.ENOENT:
            return None
        if e.errno == errno.ENOSPC and m.info().type in (MAP_SOCKMAP, MAP_SOCKHASH):
            raise LoaderError(f"{_where(object, m)}: the kernel shows the sockets of a {m.info().type_name} "
                              "only when its values are 8 bytes (socket cookies)") from None
        raise LoaderError(f"{_where(object, m)}: lookup failed ({e.errno_name})") from None


def _pairs(m: Map, object: str):
    _check_iterable(m, object, "dump")
    for k in m.keys():
        v = _lookup(m, object, bytes(k))
        if v is not None:
            yield {"key": m.decode_key(bytes(k)), "value": v}


@_user_errors
def map_dump(object: str, map: str, pin_root: str = DEFAULT_PIN_ROOT, *, sc=None) -> list[dict]:
    """``[{"key": K, "value": V}, ...]`` in the kernel's iteration order (per-CPU maps: V is a list per CPU)."""
    with open_map(object, map, pin_root, sc=sc) as m:
        return list(_pairs(m, object))


@_user_errors
def map_get(object: str, map: str, key, pin_root: str = DEFAULT_PIN_ROOT, *, sc=None):
    """The decoded value under ``key`` (an LPM trie returns its longest matching prefix's), or None."""
    with open_map(object, map, pin_root, sc=sc) as m:
        _check_iterable(m, object, "look up")
        return _lookup(m, object, _encode(m, object, "key", key))


@_user_errors
def map_set(object: str, map: str, key, value, pin_root: str = DEFAULT_PIN_ROOT, *, flags: int = 0,
            sc=None) -> None:
    """Write ``value`` under ``key`` (``flags``: 0 any, NOEXIST = 1 only a new key, EXIST = 2 only an existing
    one). Per-CPU maps: one value for every CPU, or a list of one value per CPU."""
    with open_map(object, map, pin_root, sc=sc) as m:
        info = m.info()
        if info.type in (MAP_SOCKMAP, MAP_SOCKHASH):
            raise LoaderError(f"{_where(object, m)} is a {info.type_name}: its values are sockets, which only "
                              "a program or the process owning the socket can insert; dump, get and delete work")
        _check_iterable(m, object, "set")
        k = _encode(m, object, "key", key)
        if m.is_percpu_list(value):
            stride = (info.value_size + 7) & ~7
            v = b"".join(_encode(m, object, "value", x).ljust(stride, b"\0") for x in value)
        else:
            v = _encode(m, object, "value", value)
        try:
            m.update(k, v, flags)
        except BpfSyscallError as e:
            where = _where(object, m)
            if e.errno == errno.E2BIG and info.type in ARRAY_TYPES:
                msg = f"index {_short(key)} is out of range (an array of {info.max_entries}: 0..{info.max_entries - 1})"
            elif e.errno in (errno.E2BIG, errno.ENOSPC, errno.ENOMEM):
                msg = f"the map is full (max_entries {info.max_entries}, {e.errno_name}); delete entries first"
            elif e.errno == errno.EEXIST:
                msg = f"key {_short(key)} exists (--noexist)"
            elif e.errno == errno.ENOENT:
                msg = f"key {_short(key)} does not exist (--exist)"
            elif e.errno == errno.EPERM and (info.map_flags & 0x80):
                msg = ("the map is read-only for userspace (a frozen .rodata; set Configs with "
                       "`pybpfgen load --set NAME=VALUE`)")
            elif e.errno == errno.EPERM:
                msg = "permission denied (EPERM): the map is frozen or read-only, or you are not root"
            else:
                msg = f"update failed ({e.errno_name})"
            raise LoaderError(f"{where}: cannot set {_short(key)}: {msg}") from None


@_user_errors
def map_delete(object: str, map: str, key, pin_root: str = DEFAULT_PIN_ROOT, *, sc=None) -> bool:
    """Delete ``key``; False when it was not there."""
    with open_map(object, map, pin_root, sc=sc) as m:
        info = m.info()
        if info.type in ARRAY_TYPES:
            raise LoaderError(f"{_where(object, m)} is an {info.type_name}: its entries cannot be deleted "
                              "(every index exists); set the value to zero instead")
        _check_iterable(m, object, "delete")
        k = _encode(m, object, "key", key)
        try:
            return bool(m.delete(k))
        except BpfSyscallError as e:
            if e.errno == errno.ENOENT:
                return False
            raise LoaderError(f"{_where(object, m)}: cannot delete {_short(key)} ({e.errno_name})") from None
