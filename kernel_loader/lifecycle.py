# Over 500 lines: the load transaction (fresh, upgrade in place, recovery) and unload share one journal, one set of crash phases and their invariants.
"""``load`` (fresh, upgrade in place, recovery after a crash) and ``unload``.

One algorithm serves a fresh load, an upgrade and the recovery of a load that
was killed half-way: whatever is already pinned under ``<pin_root>/<object>``
is the starting point.

Phases (``PYBPFGEN_LOADER_CRASH_AFTER=<phase>`` makes the process SIGKILL
itself right after that phase; tests use it to prove every phase is
recoverable)::

    parse      read and check every object (no syscalls)
    preflight  privileges, cgroup, bpffs, pin ownership, reusable maps
    btf        BTF_LOAD
    maps       create the maps that are not reused
    progs      relocate and PROG_LOAD every program
    journal    write the journal (state.py) with the new program ids
    pin        pin new maps and programs (staged as ``<name>__new`` when a pin exists)
    attach:<p> attach one program: LINK_UPDATE of its existing link (atomic), or a
               new link (pinned, staged when replacing), or PROG_ATTACH (legacy sk_msg/sk_skb)
    attach     all programs attached
    commit     detach replaced links, move staged pins into place, remove stale
               pins, rewrite the journal

Why any prefix of this is safe: an unpinned link dies with the process (so a
link is never left attached without a pin), everything the old version runs is
only replaced atomically (LINK_UPDATE, PROG_ATTACH on a sockmap, rename(2) of
pins), and the journal is written before the first attachment, so ``unload`` can
always find what may be attached.
"""
from __future__ import annotations

import errno
import functools
import glob
import os
import signal
import sys

from . import features as _features
from . import pins as _pins
from . import state as _state
from . import syscall as _syscall
from pybpfgen.target.records import DICT, LIST, SET, Record
from .attach import NETDEV_LINK_TYPES, PROG_TYPES, attach_cgroup, attach_netdev, attach_sock_map, ifindex_of
from pybpfgen.target.maps import MAP_SOCKHASH, MAP_SOCKMAP
from .errors import BpfSyscallError
from .errors import BtfLoadError, LoaderError, PERMISSION_HINT, PinOwnershipError
from .kinfo import LINK_TYPE, LinkInfo, MapInfo, ProgInfo
from .maps import create_map, pin_name
from .pins import DEFAULT_PIN_ROOT

# parsing and relocation (elf, btf, program) are imported by load() only: unload/status do not need them
TYPE_CHECKING = False
if TYPE_CHECKING:
    from .elf import BpfObject



def _kernel_name(name: str) -> str:
    from .program import _kernel_name as kn
    return kn(name)

CGROUP2_SUPER_MAGIC = 0x63677270
STAGE = "__new"
CRASH_ENV = "PYBPFGEN_LOADER_CRASH_AFTER"
PHASES = ("parse", "preflight", "btf", "maps", "progs", "journal", "pin", "attach", "commit")
BTF_LOG_START = 64 * 1024
BTF_LOG_MAX = 16 << 20


def crash_point(phase: str) -> None:
    """Test hook: SIGKILL ourselves after ``phase`` when asked to."""
    if os.environ.get(CRASH_ENV) == phase:
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGKILL)


# ------------------------------------------------------------------ helpers
def user_errors(fn):
    """Turn permission problems into one-line LoaderErrors."""
    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except BpfSyscallError as e:
            if e.errno in (errno.EPERM, errno.EACCES):
                raise LoaderError(f"{e}; {PERMISSION_HINT}") from e
            raise LoaderError(f"{e}; this is unexpected, run with -v and report it") from e
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
    for dirpath, _dirnames, _files in os.walk(root):
        try:
            if os.stat(dirpath).st_ino == cgroup_id:
                return dirpath
        except OSError:
            continue
    return None


def cgroup_id(path: str) -> int:
    return os.stat(path).st_ino


def check_privileges(sc) -> None:
    missing = _features.missing_caps(sc.effective_caps())
    if missing:
        who = "root without them" if os.geteuid() == 0 else f"uid {os.geteuid()}"
        raise LoaderError(f"not permitted: loading BPF programs needs {' and '.join(missing)} (this process runs "
                          f"as {who}); run it as root (sudo pybpfgen ...) or grant the capabilities")


def check_cgroup(cgroup: str, sc) -> str:
    cgroup = os.path.abspath(cgroup)
    if not os.path.isdir(cgroup):
        raise LoaderError(f"cgroup {cgroup} does not exist; pass an existing cgroup v2 directory with --cgroup "
                          f"(cgroup2 is mounted at {find_cgroup2_mount() or 'nowhere'})")
    try:
        magic = sc.statfs_type(cgroup)
    except OSError:
        magic = None
    if magic is not None and magic != CGROUP2_SUPER_MAGIC:
        raise LoaderError(f"{cgroup} is not a cgroup v2 directory; pass one with --cgroup "
                          f"(cgroup2 is mounted at {find_cgroup2_mount() or 'nowhere'})")
    return cgroup


def check_ownership(pin_root: str, d: str) -> None:
    """``d`` (an object's pin directory) must look like ours."""
    if os.path.lexists(pin_root) and not os.path.isdir(pin_root):
        raise PinOwnershipError(f"pin root {pin_root} is owned by something else (it is a pinned object, not a "
                                "directory); choose another --pin-root")
    if not os.path.lexists(d):
        return
    if not os.path.isdir(d) or os.path.islink(d):
        raise PinOwnershipError(f"pin path {d} is owned by something else (not a directory); remove it or "
                                "choose another --pin-root")
    foreign = [e for e in os.listdir(d) if e not in _pins.SUBDIRS or not os.path.isdir(os.path.join(d, e))]
    if foreign:
        raise PinOwnershipError(f"pin path {d} is owned by something else (it holds {', '.join(sorted(foreign))}, "
                                "which pybpfgen never creates); remove it or choose another --pin-root")


def open_pin(sc, path: str, kind: str) -> int:
    """OBJ_GET ``path`` and check it is a ``kind`` ('map', 'prog', 'link')."""
    try:
        fd = sc.obj_get(path)
    except BpfSyscallError as e:
        raise PinOwnershipError(f"pin path {path} cannot be opened ({e.errno_name}); it is not a pybpfgen pin, "
                                "remove it or choose another --pin-root") from e
    actual = sc.fd_kind(fd)
    if actual != kind:
        sc.close(fd)
        raise PinOwnershipError(f"pin path {path} is owned by something else (a {actual}, expected a {kind}); "
                                "remove it or choose another --pin-root")
    return fd


def _lexists(path: str) -> bool:
    return os.path.lexists(path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def prog_name(sc, prog_id: int) -> str | None:
    """The name of the program with kernel id ``prog_id``, or None when it is gone."""
    try:
        fd = sc.prog_get_fd_by_id(prog_id)
    except BpfSyscallError:
        return None
    try:
        return ProgInfo.from_bytes(sc.prog_info(fd)).name
    finally:
        sc.close(fd)


# ---------------------------------------------------------------- transaction
class _Txn:
    """Undo log: on failure undo everything in reverse; on success only
    close the fds (pins keep the objects alive)."""

    def __init__(self, sc) -> None:
        self.sc = sc
        self.undo: list = []
        self.fds: list[int] = []

    def fd(self, fd: int) -> int:
        self.fds.append(fd)
        self.undo.append(lambda: self.sc.close(fd))
        return fd

    def link(self, fd: int) -> int:
        self.fd(fd)
        self.undo.append(lambda: self.sc.link_detach(fd))
        return fd

    def add(self, fn) -> None:
        self.undo.append(fn)

    def mkdir(self, path: str) -> None:
        os.mkdir(path)
        self.undo.append(lambda: os.rmdir(path))

    def pin(self, fd: int, path: str) -> None:
        self.sc.obj_pin(fd, path)
        self.undo.append(lambda: os.unlink(path))

    def rollback(self) -> None:
        for fn in reversed(self.undo):
            try:
                fn()
            except (OSError, BpfSyscallError):
                pass
        self.undo.clear()
        self.fds.clear()

    def commit(self) -> None:
        for fd in self.fds:
            self.sc.close(fd)
        self.undo.clear()
        self.fds.clear()


# --------------------------------------------------------------------- results
class LoadedProgram(Record, eq=True):
    name: str
    id: int
    type: str
    pin: str
    link_id: int | None = None
    link_pin: str | None = None
    attach_target: str | None = None
    attach_mode: str | None = None       # 'link', 'link-update' (upgrade), 'legacy' (PROG_ATTACH)


class LoadedObject(Record, eq=True):
    name: str
    path: str
    pin_dir: str
    cgroup: str | None
    programs: dict[str, LoadedProgram] = DICT
    maps: dict[str, dict] = DICT      # name → {"id", "pin", "reused"}
    warnings: list[str] = LIST
    upgraded: bool = False
    reused_maps: list[str] = LIST
    replaced_maps: list[str] = LIST
    ifname: str | None = None            # the network interface of its xdp / tc programs


def object_paths(path_or_dir: str) -> list[str]:
    if os.path.isdir(path_or_dir):
        found = sorted(glob.glob(os.path.join(path_or_dir, "*.bpf.o")))
        if not found:
            raise LoaderError(f"no *.bpf.o objects in {path_or_dir}; build them first with `pybpfgen compile`")
        return found
    if not os.path.exists(path_or_dir):
        raise LoaderError(f"{path_or_dir}: no such file or directory; build it first with `pybpfgen compile`")
    return [path_or_dir]


# -------------------------------------------------------------- compatibility
class KernelBtfCache:
    def __init__(self, sc) -> None:
        self.sc = sc
        self.cache: dict = {}

    def get(self, btf_id: int):
        from .btf import Btf
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


def map_incompatibility(obj, m, info: MapInfo, btfs: KernelBtfCache | None) -> str | None:
    """Why the pinned map ``info`` cannot serve as ``m`` of ``obj`` (None: it can)."""
    from .elf import MAP_TYPE_NAMES
    diffs = []
    for what, old, new in (("type", info.type, m.type), ("key_size", info.key_size, m.key_size),
                           ("value_size", info.value_size, m.value_size),
                           ("max_entries", info.max_entries, m.max_entries), ("flags", info.map_flags, m.map_flags)):
        if old != new:
            if what == "type":
                diffs.append(f"{what} {MAP_TYPE_NAMES.get(old, old)} -> {MAP_TYPE_NAMES.get(new, new)}")
            else:
                diffs.append(f"{what} {old} -> {new}")
    if not diffs and btfs is not None and obj.btf is not None and info.btf_id:
        kb = btfs.get(info.btf_id)
        if kb is not None:
            for what, kid, nid in (("key", info.btf_key_type_id, m.key_type_id),
                                   ("value", info.btf_value_type_id, m.value_type_id)):
                if kid and nid:
                    try:
                        same = kb.layout(kid) == obj.btf.layout(nid)
                    except (LoaderError, IndexError, AttributeError):
                        same = True   # cannot tell: sizes matched
                    if not same:
                        diffs.append(f"{what} type {obj.btf.type_name(nid)} changed layout")
    return "; ".join(diffs) or None


# ------------------------------------------------------------------------ load
class _Plan(Record, eq=True):
    obj: BpfObject
    pin_dir: str
    existing: bool
    reuse: dict[str, int] = DICT     # map name → fd of the pinned map kept
    replace: set[str] = SET          # map names whose pin is replaced
    journal: dict | None = None


def _plan(sc, txn: _Txn, obj, pin_root: str, replace_maps: bool, btfs: KernelBtfCache) -> _Plan:
    d = _pins.object_dir(pin_root, obj.name)
    check_ownership(pin_root, d)
    plan = _Plan(obj, d, os.path.isdir(d), journal=_state.read(pin_root, obj.name))
    if not plan.existing:
        return plan
    for m in obj.maps.values():
        path = _pins.pin_path(pin_root, obj.name, "maps", pin_name(m))
        if not _lexists(path):
            continue
        fd = open_pin(sc, path, "map")
        if m.freeze:            # .rodata: constants, never state; always replaced
            sc.close(fd)
            plan.replace.add(m.name)
            continue
        why = map_incompatibility(obj, m, MapInfo.from_bytes(sc.map_info(fd)), btfs)
        if why is None:
            plan.reuse[m.name] = txn.fd(fd)
            continue
        sc.close(fd)
        if not replace_maps:
            raise LoaderError(f"map {m.name} of the loaded {obj.name} is incompatible with {obj.path} ({why}); "
                              f"unload it first (`pybpfgen unload {obj.name}`) or pass --replace-maps "
                              "(the map starts empty: its contents and sockets are dropped)")
        plan.replace.add(m.name)
    return plan


def _load_btf(sc, obj, say) -> int | None:
    if not obj.btf_raw:
        return None
    try:
        return sc.btf_load(obj.btf_raw)
    except BpfSyscallError as e:
        if e.errno == errno.EPERM:
            raise
        first = e
    size, log = BTF_LOG_START, ""
    while True:
        try:
            return sc.btf_load(obj.btf_raw, log_level=1, log_size=size)   # accepted this time (EAGAIN...)
        except BpfSyscallError as e:
            if e.errno == errno.ENOSPC and size < BTF_LOG_MAX:
                size = min(max(e.log_true_size, size * 2), BTF_LOG_MAX)
                continue
            log = e.log
            break
    say(f"BTF rejected ({first.errno_name})")
    raise BtfLoadError(obj.path, first, log)


@user_errors
def load(path_or_dir: str = "build", cgroup: str | None = None, pin_root: str = DEFAULT_PIN_ROOT, *,
         verbose: bool = False, replace_maps: bool = False, sc=None, progress=None,
         config: dict[str, int] | None = None, ifname: str | None = None) -> list[LoadedObject]:
    """Load, attach and pin one object or every ``*.bpf.o`` in a directory.

    An object that is already loaded is upgraded in place: compatible maps
    (and the sockets in a sockhash) are kept, and each attached program is
    replaced atomically through its link.  An incompatible map is an error
    unless ``replace_maps``.  On failure nothing created by this call is left
    behind and an upgraded object keeps running its previous programs.
    ``config`` sets read-only globals (the DSL's ``Config``) by name before load.
    ``ifname`` is the network interface (of this process's network namespace) that xdp and tc programs attach
    to (default: the one they were loaded on before).
    """
    from .elf import parse_object
    sc = sc or _syscall.get_default()
    if progress is None:
        progress = (lambda msg: print(f"pybpfgen: {msg}", file=sys.stderr)) if verbose else (lambda msg: None)
    say = progress
    objs = [parse_object(p) for p in object_paths(path_or_dir)]
    if config:  # Config values (read-only .rodata) set before load: `--set NAME=VALUE`
        from . import config as _config
        _config.apply(objs, config)
    names = [o.name for o in objs]
    dups = {n for n in names if names.count(n) > 1}
    if dups:
        raise LoaderError(f"several objects would be loaded as {', '.join(sorted(dups))}; rename one")
    crash_point("parse")

    check_privileges(sc)
    pin_root = os.path.abspath(pin_root)
    needs_cgroup = any(PROG_TYPES[p.kind].attach == "cgroup" for o in objs for p in o.programs)
    if needs_cgroup:
        if cgroup is None:
            prev = [(_state.read(pin_root, o.name) or {}).get("cgroup") for o in objs]
            prev = [c for c in prev if c and os.path.isdir(c)]
            cgroup = prev[0] if prev else find_cgroup2_mount()
            if cgroup is None:
                raise LoaderError("no cgroup v2 mount found in /proc/mounts; mount cgroup2 "
                                  "(mount -t cgroup2 none /sys/fs/cgroup) or pass --cgroup DIR")
        cgroup = check_cgroup(cgroup, sc)
    netdev = _resolve_netdev(objs, ifname, pin_root)
    _pins.ensure_bpffs(pin_root, sc)
    txn = _Txn(sc)
    results = []
    try:
        btfs = KernelBtfCache(sc)
        plans = [_plan(sc, txn, o, pin_root, replace_maps, btfs) for o in objs]
        if any(p.kind == "sk_msg" for o in objs for p in o.programs):
            _features.has(sc, "sk_msg_link")      # probe once, before anything is created
        crash_point("preflight")
        if not os.path.isdir(pin_root):
            os.makedirs(os.path.dirname(pin_root), exist_ok=True)
            txn.mkdir(pin_root)
        for plan in plans:
            results.append(_load_one(sc, txn, plan, pin_root, cgroup, say, netdev))
    except BaseException:
        txn.rollback()
        raise
    txn.commit()
    return results


def _resolve_netdev(objs, ifname: str | None, pin_root: str) -> tuple[str, int] | None:
    """(name, ifindex) of the interface the objects' xdp / tc programs attach to; None when none has one."""
    kinds = sorted({p.kind for o in objs for p in o.programs if PROG_TYPES[p.kind].attach == "netdev"})
    if not kinds:
        if ifname is not None:
            raise LoaderError(f"--ifname {ifname}: no program of {', '.join(o.path for o in objs)} attaches to a "
                              "network interface (xdp, tc_ingress, tc_egress programs do); leave --ifname out")
        return None
    if ifname is None:
        prev = [(_state.read(pin_root, o.name) or {}).get("ifname") for o in objs]
        ifname = next((n for n in prev if n), None)
        if ifname is None:
            p = next(p for o in objs for p in o.programs if PROG_TYPES[p.kind].attach == "netdev")
            raise LoaderError(f"program {p.name} ({p.kind}) attaches to a network interface; name it with "
                              "--ifname DEV (`ip link` lists them)")
    return ifname, ifindex_of(ifname)


def _attach_target_ok(info: LinkInfo, kind: str, cg_id: int | None, map_id: int, ifindex: int) -> bool:
    pt = PROG_TYPES[kind]
    if pt.attach == "cgroup":
        return info.type == LINK_TYPE["cgroup"] and info.attach_type == pt.attach_type and info.cgroup_id == cg_id
    if pt.attach == "netdev":   # an xdp link has no attach type in its info; a tcx link has
        return info.type == LINK_TYPE[NETDEV_LINK_TYPES[pt.prog_type]] and info.ifindex == ifindex and \
            (info.type == LINK_TYPE["xdp"] or info.attach_type == pt.attach_type)
    return info.type == LINK_TYPE["sockmap"] and info.attach_type == pt.attach_type and info.map_id == map_id


def _load_one(sc, txn: _Txn, plan: _Plan, pin_root: str, cgroup: str | None, say,
              netdev: tuple[str, int] | None = None) -> LoadedObject:
    from .program import link_program, load_program
    obj = plan.obj
    res = LoadedObject(obj.name, obj.path, plan.pin_dir, cgroup, upgraded=plan.existing)
    has_netdev = any(PROG_TYPES[p.kind].attach == "netdev" for p in obj.programs)
    ifname, ifindex = netdev if netdev and has_netdev else (None, 0)
    res.ifname = ifname
    say(f"{'upgrading' if plan.existing else 'loading'} {obj.name} from {obj.path}")

    btf_fd = _load_btf(sc, obj, say)
    if btf_fd is not None:
        txn.fd(btf_fd)
    crash_point("btf")

    map_fds: dict[str, int] = {}
    map_ids: dict[str, int] = {}
    for m in obj.maps.values():
        if m.name in plan.reuse:
            map_fds[m.name] = plan.reuse[m.name]
            res.reused_maps.append(m.name)
            say(f"keeping map {m.name} ({m.type_name})")
        else:
            map_fds[m.name] = txn.fd(create_map(sc, obj, m, btf_fd))
            if m.name in plan.replace:
                res.replaced_maps.append(m.name)
            say(f"created map {m.name} ({m.type_name})")
        map_ids[m.name] = MapInfo.from_bytes(sc.map_info(map_fds[m.name])).id
    crash_point("maps")

    prog_fds: dict[str, int] = {}
    prog_ids: dict[str, int] = {}
    for p in obj.programs:
        lp = link_program(obj, p, map_fds)
        prog_fds[p.name] = txn.fd(load_program(sc, obj, lp, btf_fd))
        prog_ids[p.name] = ProgInfo.from_bytes(sc.prog_info(prog_fds[p.name])).id
        say(f"loaded program {p.name} ({p.kind}, {len(lp.insns) // 8} insns, id {prog_ids[p.name]})")
    crash_point("progs")

    # journal: before anything is attached, so that unload can always find it
    prev = plan.journal or {}
    on_sock_map = [p for p in obj.programs if PROG_TYPES[p.kind].attach == "map"]
    legacy_sk_msg = not _features.has(sc, "sk_msg_link") if on_sock_map else False
    sock_map_ids = sorted({map_ids[p.sock_map] for p in on_sock_map} | set(prev.get("sock_map_ids", [])))
    journal = {
        "name": obj.name, "object": obj.path, "pin_dir": plan.pin_dir, "status": "loading", "pid": os.getpid(),
        "cgroup": cgroup,
        "cgroups": sorted({c for c in [cgroup, *prev.get("cgroups", [])] if c}),
        "programs": {p.name: {"kind": p.kind, "kernel_name": _kernel_name(p.name), "id": prog_ids[p.name],
                              "attach_map": p.attach_map} for p in obj.programs},
        "prog_names": sorted({_kernel_name(p.name) for p in obj.programs} | set(prev.get("prog_names", []))),
        "prog_ids": sorted(set(prog_ids.values()) | set(prev.get("prog_ids", []))),
        "maps": {m.name: {"id": map_ids[m.name], "type": m.type} for m in obj.maps.values()},
        "sock_map_ids": sock_map_ids,
        "legacy_sk_msg": legacy_sk_msg or prev.get("legacy_sk_msg", False),
        "ifname": ifname, "ifindex": ifindex,
        "ifindexes": sorted({i for i in [ifindex, *prev.get("ifindexes", [])] if i}),
    }
    _state.write(pin_root, obj.name, journal)
    if plan.journal is not None:
        old = plan.journal
        txn.add(lambda: _state.write(pin_root, obj.name, {k: v for k, v in old.items() if k != "format"}))
    else:
        txn.add(lambda: _state.remove(pin_root, obj.name))
    crash_point("journal")

    # pins: new objects next to the old ones (staged), moved into place at commit
    staged: list[tuple[str, str]] = []

    def pin_new(fd: int, final: str) -> None:
        if _lexists(final):
            path = final + STAGE
            _unlink(path)
            txn.pin(fd, path)
            staged.append((path, final))
        else:
            txn.pin(fd, final)

    if not os.path.isdir(plan.pin_dir):
        txn.mkdir(plan.pin_dir)
    for sub in _pins.SUBDIRS:
        if not os.path.isdir(os.path.join(plan.pin_dir, sub)):
            txn.mkdir(os.path.join(plan.pin_dir, sub))
    for m in obj.maps.values():
        path = _pins.pin_path(pin_root, obj.name, "maps", pin_name(m))
        res.maps[m.name] = {"id": map_ids[m.name], "pin": path, "reused": m.name in plan.reuse}
        if m.name not in plan.reuse:
            pin_new(map_fds[m.name], path)
    for p in obj.programs:
        path = _pins.pin_path(pin_root, obj.name, "progs", p.name)
        pin_new(prog_fds[p.name], path)
        res.programs[p.name] = LoadedProgram(p.name, prog_ids[p.name], p.kind, path)
    crash_point("pin")

    # attach: sock map programs first, so sockets that sock_ops inserts get the verdict program
    cg_id = cgroup_id(cgroup) if cgroup else None
    replaced_links: list[int] = []
    order = sorted(obj.programs, key=lambda p: {"map": 0, "cgroup": 1, "netdev": 2}.get(
        PROG_TYPES[p.kind].attach or "", 3))
    for p in order:
        attach = PROG_TYPES[p.kind].attach
        if attach is None:
            continue   # socket / syscall programs are only pinned
        loaded = res.programs[p.name]
        link_pin = _pins.pin_path(pin_root, obj.name, "links", p.name)
        target = {"map": f"map:{p.attach_map}", "netdev": f"dev:{ifname}"}.get(attach, f"cgroup:{cgroup}")
        prog_fd = prog_fds[p.name]
        loaded.attach_target, loaded.link_pin = target, link_pin
        had_link_pin = _lexists(link_pin)
        if had_link_pin:
            lfd = txn.fd(open_pin(sc, link_pin, "link"))
            info = LinkInfo.from_bytes(sc.link_info(lfd))
            map_id = map_ids.get(p.attach_map or "", 0)
            if _attach_target_ok(info, p.kind, cg_id, map_id, ifindex):
                old_fd = txn.fd(sc.prog_get_fd_by_id(info.prog_id))
                try:
                    sc.link_update(lfd, prog_fd, old_fd)
                except BpfSyscallError as e:
                    raise LoaderError(f"cannot replace the program of link {link_pin} ({e.errno_name}); "
                                      f"the previous version keeps running; `pybpfgen unload {obj.name}` and "
                                      "load again") from e
                txn.add(lambda lfd=lfd, old_fd=old_fd, new_fd=prog_fd: sc.link_update(lfd, old_fd, new_fd))
                loaded.link_id, loaded.attach_mode = info.id, "link-update"
                say(f"replaced {p.name} in place (link {info.id}: prog {info.prog_id} -> {loaded.id})")
                crash_point(f"attach:{p.name}")
                continue
            replaced_links.append(lfd)      # other target (cgroup changed, map replaced): new link, old detached at commit
        if attach == "map" and legacy_sk_msg and not had_link_pin:
            _legacy_attach_sock_map(sc, txn, prog_fd, map_fds[p.sock_map], p.sock_map, p.kind)
            loaded.attach_mode, loaded.link_pin = "legacy", None
            say(f"attached {p.name} to {target} with PROG_ATTACH (no sock map links before Linux 6.10)")
            crash_point(f"attach:{p.name}")
            continue
        if attach == "map":
            lfd = txn.link(attach_sock_map(sc, prog_fd, map_fds[p.sock_map], p.sock_map, p.kind))
        elif attach == "netdev":
            assert ifname is not None  # load() resolves the interface whenever an object has xdp / tc programs
            lfd = txn.link(attach_netdev(sc, prog_fd, ifindex, ifname, p.kind))
        else:
            assert cgroup is not None  # load() resolves the cgroup whenever an object has cgroup programs
            lfd = txn.link(attach_cgroup(sc, prog_fd, cgroup, p.kind))
        pin_new(lfd, link_pin)
        loaded.link_id = LinkInfo.from_bytes(sc.link_info(lfd)).id
        loaded.attach_mode = "link"
        say(f"attached {p.name} to {target} (link {loaded.link_id})")
        crash_point(f"attach:{p.name}")
    crash_point("attach")

    # commit: from here on only forward
    for lfd in replaced_links:
        try:
            sc.link_detach(lfd)
        except BpfSyscallError:
            pass
    for path, final in staged:
        os.rename(path, final)
    keep = {"maps": {pin_name(m) for m in obj.maps.values()}, "progs": {p.name for p in obj.programs},
            "links": {p.name for p in obj.programs if res.programs[p.name].link_pin}}
    for sub in _pins.SUBDIRS:
        for entry in _pins.list_pins(pin_root, obj.name, sub):
            if entry in keep[sub]:
                continue
            path = os.path.join(plan.pin_dir, sub, entry)
            if sub == "links":
                _detach_link_pin(sc, path)
            _unlink(path)
            say(f"removed stale pin {sub}/{entry}")
    journal.update(status="loaded", pid=None,
                   links={n: lp.link_id for n, lp in res.programs.items() if lp.link_id})
    _state.write(pin_root, obj.name, journal)
    crash_point("commit")
    return res


def _legacy_attach_sock_map(sc, txn: _Txn, prog_fd: int, map_fd: int, map_name: str, kind: str) -> None:
    """PROG_ATTACH on the sockmap: replaces the map's program of that attach type atomically."""
    at = PROG_TYPES[kind].attach_type
    try:
        old = sc.prog_query(map_fd, at)["prog_ids"]
    except BpfSyscallError:
        old = []
    try:
        sc.prog_attach(prog_fd, map_fd, at)
    except BpfSyscallError as e:
        raise LoaderError(f"cannot attach {kind} program to map {map_name} with PROG_ATTACH: {e.errno_name}"
                          + ("; another program is attached through a link" if e.errno == errno.EBUSY else "")) from e
    if old:
        old_fd = txn.fd(sc.prog_get_fd_by_id(old[0]))
        txn.add(lambda: sc.prog_attach(old_fd, map_fd, at))
    else:
        txn.add(lambda: sc.prog_detach(prog_fd, map_fd, at))


def _detach_link_pin(sc, path: str) -> None:
    try:
        fd = sc.obj_get(path)
    except BpfSyscallError:
        return
    try:
        sc.link_detach(fd)
    except BpfSyscallError:
        pass      # already detached (e.g. its cgroup was removed)
    finally:
        sc.close(fd)


# ---------------------------------------------------------------------- unload
@user_errors
def unload(name: str | None = None, pin_root: str = DEFAULT_PIN_ROOT, *, sc=None, progress=None) -> list[str]:
    """Detach and unpin object ``name`` (every object when None).

    Idempotent; returns the names that were unloaded.  Besides the pins, the
    journal is used to find our attachments by program name / id and attach
    point (cgroup, sockmap), so links and legacy attachments are removed even
    when pins were deleted by hand or a load was killed half-way."""
    sc = sc or _syscall.get_default()
    say = progress or (lambda msg: None)
    pin_root = os.path.abspath(pin_root)
    on_bpffs = os.path.isdir(pin_root) and _pins.is_bpffs(pin_root, sc)
    pinned = _pins.list_objects(pin_root) if on_bpffs else []
    names = sorted(set(pinned) | set(_state.names(pin_root))) if name is None else [name]
    done = []
    for n in names:
        d = os.path.join(pin_root, n)
        journal = _state.read(pin_root, n)
        has_dir = on_bpffs and os.path.isdir(d)
        if not has_dir and journal is None:
            _state.remove(pin_root, n)       # a half-written journal
            continue
        if has_dir:
            check_ownership(pin_root, d)
            for entry in sorted(os.listdir(os.path.join(d, "links"))) if os.path.isdir(os.path.join(d, "links")) else []:
                path = os.path.join(d, "links", entry)
                _detach_link_pin(sc, path)
                _unlink(path)
        if journal is not None:
            for what in detach_by_scan(sc, journal, d if has_dir else None):
                say(f"detached {what}")
        if has_dir:
            for dirpath, _dirnames, files in os.walk(d, topdown=False):
                for f in files:
                    _unlink(os.path.join(dirpath, f))
                os.rmdir(dirpath)
        _state.remove(pin_root, n)
        done.append(n)
    if on_bpffs and (name is None or done):
        try:
            os.rmdir(pin_root)     # only when empty
        except OSError:
            pass
    return done


def detach_by_scan(sc, journal: dict, pin_dir: str | None) -> list[str]:
    """Find what the journal's object may still have attached and detach it.

    Ours = the program id is one we loaded, or its name is one of our program
    names AND it is attached where we attach (a recorded cgroup, or a sockmap
    we created).  Links are found by walking every link id; legacy
    attachments with PROG_QUERY on the recorded cgroups and sockmaps."""
    ids = set(journal.get("prog_ids", []))
    names = set(journal.get("prog_names", []))
    cg_ids = {}
    for c in journal.get("cgroups", []):
        try:
            cg_ids[cgroup_id(c)] = c
        except OSError:
            pass
    sock_map_ids = set(journal.get("sock_map_ids", []))
    done = []
    name_cache: dict[int, str | None] = {}

    def ours(prog_id: int, at_our_point: bool) -> bool:
        if prog_id in ids:
            return True
        if not at_our_point:
            return False
        if prog_id not in name_cache:
            name_cache[prog_id] = prog_name(sc, prog_id)
        return name_cache[prog_id] in names

    # links (pins removed by hand while someone still holds an fd, crashed loaders' links pinned elsewhere)
    lid = 0
    while True:
        try:
            lid = sc.get_next_id("link", lid)
        except BpfSyscallError:
            break
        if lid is None:
            break
        try:
            lfd = sc.link_get_fd_by_id(lid)
        except BpfSyscallError:
            continue
        try:
            info = LinkInfo.from_bytes(sc.link_info(lfd))
            at_point = ((info.target_kind == "cgroup" and info.cgroup_id in cg_ids)
                        or (info.target_kind == "map" and info.map_id in sock_map_ids))
            # links on interfaces (xdp, tcx): only by program id (an ifindex may be another namespace's device)
            if info.attached and ours(info.prog_id, at_point):
                try:
                    sc.link_detach(lfd)
                    done.append(f"link {info.id} (prog {info.prog_id})")
                except BpfSyscallError:
                    pass
        finally:
            sc.close(lfd)

    # legacy attachments on the cgroups
    for path in cg_ids.values():
        try:
            cfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        except OSError:
            continue
        try:
            for at in sorted({p.attach_type for p in PROG_TYPES.values() if p.attach == "cgroup"}):
                q = sc.prog_query(cfd, at)
                for pid, link_id in zip(q["prog_ids"], q["link_ids"]):
                    if link_id == 0 and ours(pid, True):
                        _legacy_detach(sc, pid, cfd, at)
                        done.append(f"prog {pid} from cgroup {path}")
        except BpfSyscallError:
            pass
        finally:
            os.close(cfd)

    # legacy attachments on our sockmaps (pinned, or still alive by id)
    map_fds = []
    if pin_dir:
        for entry in sorted(os.listdir(os.path.join(pin_dir, "maps"))) if os.path.isdir(os.path.join(pin_dir, "maps")) else []:
            try:
                fd = sc.obj_get(os.path.join(pin_dir, "maps", entry))
            except BpfSyscallError:
                continue
            t = MapInfo.from_bytes(sc.map_info(fd)).type if sc.fd_kind(fd) == "map" else 0
            if t in (MAP_SOCKMAP, MAP_SOCKHASH):
                map_fds.append(fd)
            else:
                sc.close(fd)
    for mid in sock_map_ids:
        try:
            map_fds.append(sc.map_get_fd_by_id(mid))
        except BpfSyscallError:
            pass
    map_attach_types = sorted({p.attach_type for p in PROG_TYPES.values() if p.attach == "map"})
    for mfd in map_fds:
        try:
            for at in map_attach_types:
                for pid in sc.prog_query(mfd, at)["prog_ids"]:
                    if ours(pid, True):
                        _legacy_detach(sc, pid, mfd, at)
                        done.append(f"prog {pid} from sockmap")
        except BpfSyscallError:
            pass
        finally:
            sc.close(mfd)
    return done


def _legacy_detach(sc, prog_id: int, target_fd: int, attach_type: int) -> None:
    try:
        pfd = sc.prog_get_fd_by_id(prog_id)
    except BpfSyscallError:
        return
    try:
        sc.prog_detach(pfd, target_fd, attach_type)
    except BpfSyscallError:
        pass
    finally:
        sc.close(pfd)
