"""The loader's Python API: load / unload / status / open_pinned / policy.

Everything here takes an optional ``sc`` (the syscall layer, default
:func:`kernel_loader.syscall.get_default`) and ``pin_root``.
"""
from __future__ import annotations

import errno
import functools
import glob
import os
import struct
import sys
from dataclasses import dataclass, field

from . import pins as _pins
from . import syscall as _syscall
from .attach import (ATTACH_TYPE_NAMES, LINK_TYPE_NAMES, attach_sk_msg, attach_sock_ops)
from .btf import Btf, sum_values
from .elf import PROG_TYPE_NAMES, BpfObject, parse_object
from .errors import BpfSyscallError, LoaderError, PERMISSION_HINT
from .maps import ARRAY_TYPES, PERCPU_TYPES, Map, MapInfo, create_map, pin_name
from .pins import DEFAULT_PIN_ROOT
from .program import link_program, load_program

CGROUP2_SUPER_MAGIC = 0x63677270
from .defaults import DEFAULT_OBJECT  # noqa: E402
POLICY_MAPS = ("policy_ports", "accel_ports")   # pybpfgen name, then the C twin's
DECODE_MAX_ENTRIES = 64


# ------------------------------------------------------------------ helpers
def _user_errors(fn):
    """Turn permission problems into one-line LoaderErrors."""
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except BpfSyscallError as e:
            if e.errno in (errno.EPERM, errno.EACCES):
                raise LoaderError(f"{e}; {PERMISSION_HINT}") from e
            raise
        except PermissionError as e:
            raise LoaderError(f"permission denied: {e.filename or ''}; {PERMISSION_HINT}") from e
    return wrapper


def find_cgroup2_mount(mounts_file: str = "/proc/mounts") -> str | None:
    try:
        with open(mounts_file) as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3 and parts[2] == "cgroup2":
                    return parts[1].replace("\\040", " ")
    except OSError:
        pass
    return None


def cgroup_path_by_id(cgroup_id: int, root: str | None = None) -> str | None:
    root = root or find_cgroup2_mount()
    if not root:
        return None
    for dirpath, dirnames, _files in os.walk(root):
        try:
            if os.stat(dirpath).st_ino == cgroup_id:
                return dirpath
        except OSError:
            continue
    return None


class _Txn:
    """Undo log: on failure undo everything in reverse; on success only
    close the fds (pins keep the objects alive)."""

    def __init__(self, sc):
        self.sc = sc
        self.undo: list = []
        self.fds: list[int] = []

    def fd(self, fd: int) -> int:
        self.fds.append(fd)
        self.undo.append(("close", fd))
        return fd

    def link(self, fd: int) -> int:
        self.fds.append(fd)
        self.undo.append(("close", fd))
        self.undo.append(("detach", fd))
        return fd

    def mkdir(self, path: str) -> None:
        os.mkdir(path)
        self.undo.append(("rmdir", path))

    def pin(self, fd: int, path: str) -> None:
        self.sc.obj_pin(fd, path)
        self.undo.append(("unlink", path))

    def rollback(self) -> None:
        for action, arg in reversed(self.undo):
            try:
                if action == "close":
                    self.sc.close(arg)
                elif action == "detach":
                    self.sc.link_detach(arg)
                elif action == "rmdir":
                    os.rmdir(arg)
                elif action == "unlink":
                    os.unlink(arg)
            except (OSError, BpfSyscallError):
                pass
        self.undo.clear()
        self.fds.clear()

    def commit(self) -> None:
        for fd in self.fds:
            self.sc.close(fd)
        self.undo.clear()
        self.fds.clear()


@dataclass
class LoadedProgram:
    name: str
    id: int
    type: str
    pin: str
    link_id: int | None = None
    link_pin: str | None = None
    attach_target: str | None = None


@dataclass
class LoadedObject:
    name: str
    path: str
    pin_dir: str
    cgroup: str | None
    programs: dict[str, LoadedProgram] = field(default_factory=dict)
    maps: dict[str, dict] = field(default_factory=dict)      # name → {"id", "pin"}
    warnings: list[str] = field(default_factory=list)


def _object_paths(path_or_dir: str) -> list[str]:
    if os.path.isdir(path_or_dir):
        found = sorted(glob.glob(os.path.join(path_or_dir, "*.bpf.o")))
        if not found:
            raise LoaderError(f"no *.bpf.o objects in {path_or_dir}; build them first with `pybpfgen compile`")
        return found
    if not os.path.exists(path_or_dir):
        raise LoaderError(f"{path_or_dir}: no such file or directory; build it first with `pybpfgen compile`")
    return [path_or_dir]


def _check_cgroup(cgroup: str, sc) -> str:
    cgroup = os.path.abspath(cgroup)
    if not os.path.isdir(cgroup):
        raise LoaderError(f"cgroup {cgroup} does not exist; pass an existing cgroup v2 directory with --cgroup")
    try:
        magic = sc.statfs_type(cgroup)
    except OSError:
        magic = None
    if magic is not None and magic != CGROUP2_SUPER_MAGIC:
        raise LoaderError(f"{cgroup} is not a cgroup v2 directory; pass one with --cgroup "
                          f"(cgroup2 is mounted at {find_cgroup2_mount() or 'nowhere'})")
    return cgroup


# --------------------------------------------------------------------- load
@_user_errors
def load(path_or_dir: str = "build", cgroup: str | None = None, pin_root: str = DEFAULT_PIN_ROOT, *,
         verbose: bool = False, sc=None) -> list[LoadedObject]:
    """Load, attach and pin one object or every ``*.bpf.o`` in a directory.

    sock_ops programs attach to ``cgroup`` (default: the cgroup2 mount),
    sk_msg programs to their sockhash/sockmap.  Everything is pinned under
    ``<pin_root>/<object>/``.  On failure nothing created by this call is
    left behind.
    """
    sc = sc or _syscall.get_default()
    say = (lambda msg: print(f"pybpfgen: {msg}", file=sys.stderr)) if verbose else (lambda msg: None)
    objs = [parse_object(p) for p in _object_paths(path_or_dir)]
    names = [o.name for o in objs]
    dups = {n for n in names if names.count(n) > 1}
    if dups:
        raise LoaderError(f"several objects would be loaded as {', '.join(sorted(dups))}; rename one")
    needs_cgroup = any(p.kind == "sock_ops" for o in objs for p in o.programs)
    if needs_cgroup:
        if cgroup is None:
            cgroup = find_cgroup2_mount()
            if cgroup is None:
                raise LoaderError("no cgroup v2 mount found in /proc/mounts; mount cgroup2 or pass --cgroup DIR")
        cgroup = _check_cgroup(cgroup, sc)
    pin_root = os.path.abspath(pin_root)
    _pins.ensure_bpffs(pin_root, sc)
    for o in objs:
        d = _pins.object_dir(pin_root, o.name)
        if os.path.exists(d):
            raise LoaderError(f"object {o.name} is already loaded (pinned at {d}); "
                              f"run `pybpfgen unload {o.name}` first")
    txn = _Txn(sc)
    results = []
    try:
        if not os.path.isdir(pin_root):
            os.makedirs(os.path.dirname(pin_root), exist_ok=True)
            txn.mkdir(pin_root)
        for o in objs:
            results.append(_load_one(sc, txn, o, pin_root, cgroup, say))
    except BaseException:
        txn.rollback()
        raise
    txn.commit()
    return results


def _load_one(sc, txn: _Txn, obj: BpfObject, pin_root: str, cgroup: str | None, say) -> LoadedObject:
    res = LoadedObject(obj.name, obj.path, _pins.object_dir(pin_root, obj.name), cgroup)
    say(f"loading {obj.path} as {obj.name}")
    btf_fd = None
    if obj.btf_raw:
        try:
            btf_fd = txn.fd(sc.btf_load(obj.btf_raw))
        except BpfSyscallError as e:
            if e.errno == errno.EPERM:
                raise
            res.warnings.append(f"kernel refused the object's BTF ({e.errno_name}); loading without BTF")
            say(res.warnings[-1])
    map_fds: dict[str, int] = {}
    for m in obj.maps.values():
        map_fds[m.name] = txn.fd(create_map(sc, obj, m, btf_fd))
        say(f"created map {m.name} ({m.type_name})")
    prog_fds: dict[str, int] = {}
    for p in obj.programs:
        lp = link_program(obj, p, map_fds)
        prog_fds[p.name] = txn.fd(load_program(sc, obj, lp, btf_fd))
        say(f"loaded program {p.name} ({p.kind}, {len(lp.insns) // 8} insns)")

    # pins
    txn.mkdir(res.pin_dir)
    for sub in _pins.SUBDIRS:
        txn.mkdir(os.path.join(res.pin_dir, sub))
    for m in obj.maps.values():
        path = _pins.pin_path(pin_root, obj.name, "maps", pin_name(m))
        txn.pin(map_fds[m.name], path)
        res.maps[m.name] = {"id": MapInfo.from_bytes(sc.map_info(map_fds[m.name])).id, "pin": path}
    for p in obj.programs:
        path = _pins.pin_path(pin_root, obj.name, "progs", p.name)
        txn.pin(prog_fds[p.name], path)
        pid = struct.unpack_from("<I", sc.prog_info(prog_fds[p.name]), 4)[0]
        res.programs[p.name] = LoadedProgram(p.name, pid, p.kind, path)

    # attach: sk_msg first, so sockets that sock_ops inserts get the verdict program
    order = sorted(obj.programs, key=lambda p: {"sk_msg": 0, "sock_ops": 1}.get(p.kind, 2))
    for p in order:
        if p.kind == "sk_msg":
            link_fd = txn.link(attach_sk_msg(sc, prog_fds[p.name], map_fds[p.attach_map], p.attach_map))
            target = f"map:{p.attach_map}"
        elif p.kind == "sock_ops":
            link_fd = txn.link(attach_sock_ops(sc, prog_fds[p.name], cgroup))
            target = f"cgroup:{cgroup}"
        else:
            continue  # socket / syscall programs are only pinned
        path = _pins.pin_path(pin_root, obj.name, "links", p.name)
        txn.pin(link_fd, path)
        lp = res.programs[p.name]
        lp.link_id = struct.unpack_from("<I", sc.link_info(link_fd), 4)[0]
        lp.link_pin, lp.attach_target = path, target
        say(f"attached {p.name} to {target}")
    return res


# ------------------------------------------------------------------- unload
@_user_errors
def unload(name: str | None = None, pin_root: str = DEFAULT_PIN_ROOT, *, sc=None) -> list[str]:
    """Detach and unpin object ``name`` (every object when None).
    Idempotent; returns the names that were unloaded."""
    sc = sc or _syscall.get_default()
    pin_root = os.path.abspath(pin_root)
    if not os.path.isdir(pin_root) or not _pins.is_bpffs(pin_root, sc):
        return []
    names = _pins.list_objects(pin_root) if name is None else [name]
    done = []
    for n in names:
        d = _pins.object_dir(pin_root, n)
        if not os.path.isdir(d):
            continue
        _unload_dir(sc, d)
        done.append(n)
    if name is None or done:
        try:
            os.rmdir(pin_root)     # only when empty
        except OSError:
            pass
    return done


def _unload_dir(sc, d: str) -> None:
    links = os.path.join(d, "links")
    for entry in sorted(os.listdir(links)) if os.path.isdir(links) else []:
        path = os.path.join(links, entry)
        try:
            fd = sc.obj_get(path)
        except BpfSyscallError:
            fd = None
        if fd is not None:
            try:
                sc.link_detach(fd)
            except BpfSyscallError:
                pass   # already detached (e.g. its cgroup was removed)
            finally:
                sc.close(fd)
        os.unlink(path)
    for dirpath, dirnames, files in os.walk(d, topdown=False):
        for f in files:
            os.unlink(os.path.join(dirpath, f))
        os.rmdir(dirpath)


# ------------------------------------------------------------------- status
class _BtfCache:
    def __init__(self, sc):
        self.sc = sc
        self.cache: dict[int, Btf | None] = {}

    def get(self, btf_id: int) -> Btf | None:
        if not btf_id:
            return None
        if btf_id not in self.cache:
            try:
                fd = self.sc.btf_get_fd_by_id(btf_id)
                try:
                    _id, raw = self.sc.btf_info(fd)
                finally:
                    self.sc.close(fd)
                self.cache[btf_id] = Btf.parse(raw)
            except (BpfSyscallError, LoaderError):
                self.cache[btf_id] = None
        return self.cache[btf_id]


def _prog_status(sc, name: str, path: str) -> dict:
    fd = sc.obj_get(path)
    try:
        b = sc.prog_info(fd)
    finally:
        sc.close(fd)
    ptype, pid = struct.unpack_from("<II", b, 0)
    jited_len, xlated_len = struct.unpack_from("<II", b, 16)
    load_time = struct.unpack_from("<Q", b, 40)[0]
    btf_id = struct.unpack_from("<I", b, 128)[0]
    run_time_ns, run_cnt = struct.unpack_from("<QQ", b, 192)
    verified = struct.unpack_from("<I", b, 216)[0]
    return {"name": name, "id": pid, "type": PROG_TYPE_NAMES.get(ptype, str(ptype)), "type_id": ptype,
            "tag": b[8:16].hex(), "verified_insns": verified, "xlated_insns": xlated_len // 8,
            "jited_bytes": jited_len, "btf_id": btf_id, "load_time_ns": load_time,
            "run_cnt": run_cnt, "run_time_ns": run_time_ns, "pin": path}


def _link_status(sc, name: str, path: str, map_names: dict[int, str]) -> dict:
    fd = sc.obj_get(path)
    try:
        b = sc.link_info(fd)
    finally:
        sc.close(fd)
    ltype, lid, prog_id = struct.unpack_from("<III", b, 0)
    out = {"name": name, "id": lid, "type": LINK_TYPE_NAMES.get(ltype, str(ltype)), "type_id": ltype,
           "prog_id": prog_id, "pin": path}
    if ltype == 3:
        cg_id = struct.unpack_from("<Q", b, 16)[0]
        at = struct.unpack_from("<I", b, 24)[0]
        out["attach_type"] = ATTACH_TYPE_NAMES.get(at, str(at))
        out["target"] = {"kind": "cgroup", "cgroup_id": cg_id,
                         "path": cgroup_path_by_id(cg_id) if cg_id else None}
        out["attached"] = cg_id != 0
    elif ltype == 14:
        map_id, at = struct.unpack_from("<II", b, 16)
        out["attach_type"] = ATTACH_TYPE_NAMES.get(at, str(at))
        out["target"] = {"kind": "map", "map_id": map_id, "map_name": map_names.get(map_id)}
        out["attached"] = map_id != 0
    else:
        out["target"] = None
        out["attached"] = True
    return out


def _count_entries(sc, m: Map) -> int:
    info = m.info()
    if info.type in ARRAY_TYPES:
        return info.max_entries
    if info.type == 15:   # SOCKMAP: every index is a key; count the occupied ones
        n = 0
        for k in m.keys():
            try:
                if sc.map_lookup(m.fd, k, 8) is not None:
                    n += 1
            except BpfSyscallError:
                n += 1   # present but not readable as a cookie
        return n
    return m.count()


def _map_status(sc, name: str, path: str, btfs: _BtfCache) -> dict:
    m = Map.open_pinned(path, sc=sc)
    try:
        info = m.info()
        out = info.as_dict()
        out["pin_name"] = name
        out["pin"] = path
        out["entries"] = _count_entries(sc, m)
        out["values"] = None
        if info.type in ARRAY_TYPES and info.max_entries <= DECODE_MAX_ENTRIES and info.btf_value_type_id:
            btf = btfs.get(info.btf_id)
            if btf is not None:
                values = []
                for i in range(info.max_entries):
                    key = struct.pack("<I", i)
                    if info.type in PERCPU_TYPES:
                        raw = m.lookup_percpu(key) or []
                        values.append(sum_values([btf.decode(info.btf_value_type_id, r) for r in raw]))
                    else:
                        raw = m.lookup(key)
                        values.append(None if raw is None else btf.decode(info.btf_value_type_id, raw))
                out["values"] = values
        return out
    finally:
        m.close()


@_user_errors
def status(pin_root: str = DEFAULT_PIN_ROOT, *, name: str | None = None, sc=None) -> dict:
    """Describe every loaded object from its pins (schema in docs/loader.md)."""
    sc = sc or _syscall.get_default()
    pin_root = os.path.abspath(pin_root)
    out = {"pin_root": pin_root, "objects": []}
    if not os.path.isdir(pin_root) or not _pins.is_bpffs(pin_root, sc):
        return out
    btfs = _BtfCache(sc)
    for n in _pins.list_objects(pin_root):
        if name is not None and n != name:
            continue
        d = _pins.object_dir(pin_root, n)
        maps = [_map_status(sc, e, os.path.join(d, "maps", e), btfs) for e in _pins.list_pins(pin_root, n, "maps")]
        map_names = {m["id"]: m["pin_name"] for m in maps}
        progs = [_prog_status(sc, e, os.path.join(d, "progs", e)) for e in _pins.list_pins(pin_root, n, "progs")]
        links = [_link_status(sc, e, os.path.join(d, "links", e), map_names)
                 for e in _pins.list_pins(pin_root, n, "links")]
        out["objects"].append({"name": n, "pin_dir": d, "programs": progs, "links": links, "maps": maps})
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
def open_pinned(name: str = DEFAULT_OBJECT, pin_root: str = DEFAULT_PIN_ROOT, *, sc=None) -> PinnedObject:
    sc = sc or _syscall.get_default()
    d = os.path.join(os.path.abspath(pin_root), name)
    if not os.path.isdir(os.path.join(d, "maps")):
        loaded = _pins.list_objects(pin_root) if os.path.isdir(pin_root) else []
        hint = f" (loaded: {', '.join(loaded)})" if loaded else " (nothing is loaded)"
        raise LoaderError(f"object {name} is not loaded{hint}; load it first with `pybpfgen load`")
    return PinnedObject(name, d, sc)


# ------------------------------------------------------------------- policy
def check_port(port) -> int:
    try:
        p = int(port)
    except (TypeError, ValueError):
        raise LoaderError(f"invalid port {port!r}: expected a number from 1 to 65535") from None
    if not 1 <= p <= 65535:
        raise LoaderError(f"invalid port {p}: expected a number from 1 to 65535")
    return p


def _policy_map(obj: PinnedObject) -> Map:
    for n in POLICY_MAPS:
        if obj.has_map(n):
            return obj.map(n)
    raise LoaderError(f"object {obj.name} has no port policy map ({' or '.join(POLICY_MAPS)}); "
                      "is it the accelerator?")


@_user_errors
def policy_add(port: int, object: str = DEFAULT_OBJECT, pin_root: str = DEFAULT_PIN_ROOT, *, sc=None) -> None:
    port = check_port(port)
    with open_pinned(object, pin_root, sc=sc) as o:
        _policy_map(o).update(struct.pack("<I", port), struct.pack("<I", 1))


@_user_errors
def policy_remove(port: int, object: str = DEFAULT_OBJECT, pin_root: str = DEFAULT_PIN_ROOT, *, sc=None) -> bool:
    port = check_port(port)
    with open_pinned(object, pin_root, sc=sc) as o:
        return _policy_map(o).delete(struct.pack("<I", port))


@_user_errors
def policy_list(object: str = DEFAULT_OBJECT, pin_root: str = DEFAULT_PIN_ROOT, *, sc=None) -> list[int]:
    with open_pinned(object, pin_root, sc=sc) as o:
        return sorted(struct.unpack("<I", k)[0] for k in _policy_map(o).keys())
