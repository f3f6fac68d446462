"""Shared helpers for the end-to-end kernel tests and the sockperf benchmark.

Standard library only (ctypes for bpf(2)), so that it can be imported by
``tests/conftest.py``, ``tests/kernel/*`` and ``bench/sockperf_bench.py`` alike.

It deliberately does NOT use ``kernel_loader``: the tests need an independent
oracle for what is attached to a cgroup, what a map holds and which kernel
object ids exist.

Safety rules baked in here:
  * cgroups are always *children* of the cgroup2 root (never the root itself);
  * network namespaces and veth pairs are always freshly created and only get
    198.18.0.0/15 addresses (RFC 2544 benchmarking range);
  * every create has a matching, idempotent, best-effort destroy.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import secrets
import shlex
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PEER_PY = Path(__file__).resolve().parent / "peer.py"

BPFFS = Path("/sys/fs/bpf")
BPFFS_MAGIC = 0xCAFE4A11
DEFAULT_CGROUP2_ROOT = Path("/sys/fs/cgroup/unified")

NET_A_IP = "198.18.0.1"
NET_B_IP = "198.18.0.2"
ALLOWED_NET = "198.18.0.0/15"


# --------------------------------------------------------------------------
# bpf(2) via ctypes
# --------------------------------------------------------------------------
_NR_BPF = {"x86_64": 321, "aarch64": 280, "riscv64": 280, "ppc64le": 361, "s390x": 351}
ATTR_SIZE = 168  # sizeof(union bpf_attr) on 6.18; zero-filled

BPF_MAP_CREATE = 0
BPF_MAP_LOOKUP_ELEM = 1
BPF_MAP_UPDATE_ELEM = 2
BPF_MAP_DELETE_ELEM = 3
BPF_MAP_GET_NEXT_KEY = 4
BPF_OBJ_GET = 7
BPF_PROG_GET_NEXT_ID = 11
BPF_MAP_GET_NEXT_ID = 12
BPF_PROG_GET_FD_BY_ID = 13
BPF_MAP_GET_FD_BY_ID = 14
BPF_OBJ_GET_INFO_BY_FD = 15
BPF_PROG_QUERY = 16
BPF_LINK_GET_FD_BY_ID = 30
BPF_LINK_GET_NEXT_ID = 31

BPF_MAP_TYPE_HASH = 1
BPF_MAP_TYPE_ARRAY = 2
BPF_MAP_TYPE_PERCPU_ARRAY = 6
BPF_MAP_TYPE_SOCKHASH = 18

BPF_CGROUP_SOCK_OPS = 3
BPF_SK_MSG_VERDICT = 7

BPF_PROG_TYPE_SOCK_OPS = 13
BPF_PROG_TYPE_SK_MSG = 16


class BpfError(OSError):
    pass


class KernelHazardObserved(AssertionError):
    """The documented kernel misbehaviour was observed, as measured.

    Raised only by :func:`hazard_check`. A strict xfail that documents a kernel hazard names this class in
    ``raises=``, so that everything else (a lost byte, an unmet precondition, a fixture error, a behaviour that is
    neither the TCP semantics nor the documented hazard) is a real failure, and the kernel behaving as TCP
    defines is an XPASS, which strict turns into a failure too."""


def hazard_check(behaves: bool, hazard_seen: bool, what: str) -> None:
    """The hazard part of a test, and nothing else: return if the kernel ``behaves`` (as TCP defines; the strict
    xfail then XPASSes and fails), raise :class:`KernelHazardObserved` if the documented misbehaviour was
    observed (``hazard_seen``, a check of the measured values), and a plain AssertionError for anything else."""
    if behaves:
        return
    if hazard_seen:
        raise KernelHazardObserved(f"kernel hazard observed: {what}")
    raise AssertionError(f"neither the TCP semantics nor the documented kernel hazard: {what}")


_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _nr_bpf() -> int:
    m = os.uname().machine
    if m not in _NR_BPF:
        raise BpfError(errno.ENOSYS, f"bpf(2) syscall number unknown for {m}")
    return _NR_BPF[m]


def bpf(cmd: int, attr: ctypes.Array) -> int:
    ret = _libc.syscall(ctypes.c_long(_nr_bpf()), ctypes.c_int(cmd), attr, ctypes.c_uint(ATTR_SIZE))
    if ret < 0:
        e = ctypes.get_errno()
        raise BpfError(e, f"bpf(cmd={cmd}): {os.strerror(e)}")
    return ret


def _attr() -> ctypes.Array:
    return ctypes.create_string_buffer(ATTR_SIZE)


def _addr(buf) -> int:
    return ctypes.addressof(buf) if buf is not None else 0


def bpf_available() -> tuple[bool, str]:
    """Can this process create a BPF map? (root + CONFIG_BPF_SYSCALL)."""
    try:
        a = _attr()
        struct.pack_into("IIII", a, 0, BPF_MAP_TYPE_ARRAY, 4, 4, 1)
        fd = bpf(BPF_MAP_CREATE, a)
        os.close(fd)
        return True, ""
    except (OSError, AttributeError) as e:
        return False, f"bpf(BPF_MAP_CREATE) failed: {e}"


def obj_get(path: str | os.PathLike) -> int:
    p = ctypes.create_string_buffer(os.fsencode(str(path)))
    a = _attr()
    struct.pack_into("Q", a, 0, _addr(p))
    return bpf(BPF_OBJ_GET, a)


def _get_fd_by_id(cmd: int, obj_id: int) -> int:
    a = _attr()
    struct.pack_into("I", a, 0, obj_id)
    return bpf(cmd, a)


def prog_fd_by_id(i: int) -> int:
    return _get_fd_by_id(BPF_PROG_GET_FD_BY_ID, i)


def map_fd_by_id(i: int) -> int:
    return _get_fd_by_id(BPF_MAP_GET_FD_BY_ID, i)


def link_fd_by_id(i: int) -> int:
    return _get_fd_by_id(BPF_LINK_GET_FD_BY_ID, i)


def _exists(cmd: int, obj_id: int) -> bool:
    try:
        os.close(_get_fd_by_id(cmd, obj_id))
        return True
    except BpfError as e:
        if e.errno == errno.ENOENT:
            return False
        raise


def prog_exists(i: int) -> bool:
    return _exists(BPF_PROG_GET_FD_BY_ID, i)


def map_exists(i: int) -> bool:
    return _exists(BPF_MAP_GET_FD_BY_ID, i)


def link_exists(i: int) -> bool:
    return _exists(BPF_LINK_GET_FD_BY_ID, i)


def _next_ids(cmd: int):
    cur = 0
    while True:
        a = _attr()
        struct.pack_into("I", a, 0, cur)
        try:
            bpf(cmd, a)
        except BpfError as e:
            if e.errno == errno.ENOENT:
                return
            raise
        cur = struct.unpack_from("I", a, 4)[0]
        yield cur


def all_prog_ids() -> list[int]:
    return list(_next_ids(BPF_PROG_GET_NEXT_ID))


def all_link_ids() -> list[int]:
    return list(_next_ids(BPF_LINK_GET_NEXT_ID))


def _info(fd: int, size: int = 512) -> bytes:
    buf = ctypes.create_string_buffer(size)
    a = _attr()
    struct.pack_into("IIQ", a, 0, fd, size, _addr(buf))
    bpf(BPF_OBJ_GET_INFO_BY_FD, a)
    return buf.raw


@dataclass
class ProgInfo:
    type: int
    id: int
    name: str
    map_ids: list[int]


@dataclass
class MapInfo:
    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    name: str


@dataclass
class LinkInfo:
    type: int
    id: int
    prog_id: int


def prog_info(fd: int) -> ProgInfo:
    raw = _info(fd)
    ptype, pid = struct.unpack_from("II", raw, 0)
    nr_map_ids = struct.unpack_from("I", raw, 52)[0]
    name = raw[64:80].split(b"\0", 1)[0].decode()
    map_ids: list[int] = []
    if nr_map_ids:
        ids = (ctypes.c_uint32 * nr_map_ids)()
        buf = ctypes.create_string_buffer(512)
        struct.pack_into("I", buf, 52, nr_map_ids)
        struct.pack_into("Q", buf, 56, ctypes.addressof(ids))
        a = _attr()
        struct.pack_into("IIQ", a, 0, fd, 512, _addr(buf))
        bpf(BPF_OBJ_GET_INFO_BY_FD, a)
        map_ids = list(ids)
    return ProgInfo(ptype, pid, name, map_ids)


def map_info(fd: int) -> MapInfo:
    raw = _info(fd)
    t, i, ks, vs, me, _flags = struct.unpack_from("IIIIII", raw, 0)
    name = raw[24:40].split(b"\0", 1)[0].decode()
    return MapInfo(t, i, ks, vs, me, name)


def link_info(fd: int) -> LinkInfo:
    raw = _info(fd)
    t, i, p = struct.unpack_from("III", raw, 0)
    return LinkInfo(t, i, p)


def fd_kind(fd: int) -> str:
    """'map', 'prog', 'link' or '?' from /proc/self/fdinfo."""
    try:
        txt = Path(f"/proc/self/fdinfo/{fd}").read_text()
    except OSError:
        return "?"
    for kind in ("map", "prog", "link"):
        if f"\n{kind}_type:" in "\n" + txt:
            return kind
    return "?"


def prog_query(target_fd: int, attach_type: int) -> list[int]:
    ids = (ctypes.c_uint32 * 64)()
    a = _attr()
    struct.pack_into("IIII", a, 0, target_fd, attach_type, 0, 0)
    struct.pack_into("Q", a, 16, ctypes.addressof(ids))
    struct.pack_into("I", a, 24, 64)
    bpf(BPF_PROG_QUERY, a)
    cnt = struct.unpack_from("I", a, 24)[0]
    return list(ids[:cnt])


def cgroup_prog_ids(cgroup: str | os.PathLike, attach_type: int = BPF_CGROUP_SOCK_OPS) -> list[int]:
    fd = os.open(str(cgroup), os.O_RDONLY | os.O_DIRECTORY)
    try:
        return prog_query(fd, attach_type)
    finally:
        os.close(fd)


# every cgroup attach type of uapi bpf.h (6.18): ingress/egress, sock_create, sock_ops, device, bind/connect,
# post_bind, sendmsg, sysctl, recvmsg, get/setsockopt, getpeername/getsockname, sock_release, unix variants
CGROUP_ATTACH_TYPES = (0, 1, 2, 3, 6, 8, 9, 10, 11, 12, 13, 14, 15, 18, 19, 20, 21, 22, 29, 30, 31, 32, 34,
                       40, 41, 42, 43, 44)


def cgroup_all_attached(cgroup: str | os.PathLike) -> dict[int, list[int]]:
    """{attach_type: [prog ids]} for every cgroup attach type that has something attached."""
    out: dict[int, list[int]] = {}
    fd = os.open(str(cgroup), os.O_RDONLY | os.O_DIRECTORY)
    try:
        for t in CGROUP_ATTACH_TYPES:
            try:
                ids = prog_query(fd, t)
            except BpfError as e:
                if e.errno in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
                    continue
                raise
            if ids:
                out[t] = ids
    finally:
        os.close(fd)
    return out


def map_keys(fd: int, key_size: int, limit: int = 1 << 20) -> list[bytes]:
    keys: list[bytes] = []
    cur = None
    nxt = ctypes.create_string_buffer(key_size)
    while len(keys) < limit:
        a = _attr()
        struct.pack_into("IIQQ", a, 0, fd, 0, _addr(cur), _addr(nxt))
        try:
            bpf(BPF_MAP_GET_NEXT_KEY, a)
        except BpfError as e:
            if e.errno == errno.ENOENT:
                break
            raise
        keys.append(nxt.raw)
        cur = ctypes.create_string_buffer(nxt.raw, key_size)
    return keys


def possible_cpus() -> int:
    txt = Path("/sys/devices/system/cpu/possible").read_text().strip()
    n = 0
    for part in txt.split(","):
        lo, _, hi = part.partition("-")
        n += (int(hi) if hi else int(lo)) - int(lo) + 1
    return n


def map_lookup(fd: int, key: bytes, value_size: int, percpu: bool = False) -> bytes | list[bytes]:
    k = ctypes.create_string_buffer(key, len(key))
    if percpu:
        stride = (value_size + 7) // 8 * 8
        ncpu = possible_cpus()
        v = ctypes.create_string_buffer(stride * ncpu)
    else:
        v = ctypes.create_string_buffer(value_size)
    a = _attr()
    struct.pack_into("IIQQQ", a, 0, fd, 0, _addr(k), _addr(v), 0)
    bpf(BPF_MAP_LOOKUP_ELEM, a)
    if percpu:
        return [v.raw[i * stride:i * stride + value_size] for i in range(ncpu)]
    return v.raw


def map_update(fd: int, key: bytes, value: bytes, flags: int = 0) -> None:
    k = ctypes.create_string_buffer(key, len(key))
    v = ctypes.create_string_buffer(value, len(value))
    a = _attr()
    struct.pack_into("IIQQQ", a, 0, fd, 0, _addr(k), _addr(v), flags)
    bpf(BPF_MAP_UPDATE_ELEM, a)


# --------------------------------------------------------------------------
# Inspecting what an accelerator instance has attached to a cgroup
# --------------------------------------------------------------------------
@dataclass
class AccelSnapshot:
    """Kernel-side view of one accelerator attached to one cgroup."""
    cgroup: str
    sockops_prog_ids: list[int] = field(default_factory=list)
    skmsg_prog_ids: list[int] = field(default_factory=list)
    link_ids: list[int] = field(default_factory=list)
    map_ids: dict[str, int] = field(default_factory=dict)  # name -> id

    @property
    def prog_ids(self) -> list[int]:
        return self.sockops_prog_ids + self.skmsg_prog_ids


def snapshot_accel(cgroup: str | os.PathLike) -> AccelSnapshot:
    """Follow cgroup -> sock_ops prog -> its maps -> SOCKHASH -> sk_msg prog -> links."""
    snap = AccelSnapshot(str(cgroup))
    snap.sockops_prog_ids = cgroup_prog_ids(cgroup)
    map_ids: set[int] = set()
    for pid in snap.sockops_prog_ids:
        fd = prog_fd_by_id(pid)
        try:
            map_ids.update(prog_info(fd).map_ids)
        finally:
            os.close(fd)
    for mid in sorted(map_ids):
        fd = map_fd_by_id(mid)
        try:
            mi = map_info(fd)
            snap.map_ids[mi.name] = mi.id
            if mi.type == BPF_MAP_TYPE_SOCKHASH:
                for sp in prog_query(fd, BPF_SK_MSG_VERDICT):
                    if sp not in snap.skmsg_prog_ids:
                        snap.skmsg_prog_ids.append(sp)
        finally:
            os.close(fd)
    for pid in snap.skmsg_prog_ids:
        fd = prog_fd_by_id(pid)
        try:
            for mid in prog_info(fd).map_ids:
                mfd = map_fd_by_id(mid)
                try:
                    mi = map_info(mfd)
                    snap.map_ids.setdefault(mi.name, mi.id)
                finally:
                    os.close(mfd)
        finally:
            os.close(fd)
    progs = set(snap.prog_ids)
    for lid in all_link_ids():
        try:
            fd = link_fd_by_id(lid)
        except BpfError:
            continue
        try:
            if link_info(fd).prog_id in progs:
                snap.link_ids.append(lid)
        finally:
            os.close(fd)
    return snap


class MapHandle:
    def __init__(self, map_id: int):
        self.fd = map_fd_by_id(map_id)
        self.info = map_info(self.fd)

    def close(self):
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def keys(self) -> list[bytes]:
        return map_keys(self.fd, self.info.key_size)

    def lookup(self, key: bytes):
        return map_lookup(self.fd, key, self.info.value_size,
                          percpu=self.info.type == BPF_MAP_TYPE_PERCPU_ARRAY)

    def update(self, key: bytes, value: bytes):
        map_update(self.fd, key, value)


ACCEL_COUNTERS = ("redirected", "missed", "paired", "refused", "demoted", "released")  # AccelStats, in order


def read_stats(map_id: int) -> dict[str, int]:
    """Sum the PERCPU_ARRAY ``stats`` entry 0: the leading u64 counters of ``AccelStats`` (as many of
    :data:`ACCEL_COUNTERS` as the value holds: older objects and the C twin have fewer)."""
    with MapHandle(map_id) as m:
        n = min(len(ACCEL_COUNTERS), m.info.value_size // 8)
        tot = dict.fromkeys(ACCEL_COUNTERS[:n], 0)
        for v in m.lookup(struct.pack("I", 0)):
            for name, x in zip(ACCEL_COUNTERS, struct.unpack_from(f"{n}Q", v, 0)):
                tot[name] += x
        return tot


def sockhash_keys(map_id: int) -> list[bytes]:
    with MapHandle(map_id) as m:
        return m.keys()


def decode_key_ports(key: bytes) -> tuple[int, ...]:
    """Best effort: for the 16-byte (sip, dip, sport, dport) key, return the two ports."""
    if len(key) == 16:
        _sip, _dip, sp, dp = struct.unpack("<IIII", key)
        return (sp, dp)
    return ()


def wait_gone(ids_and_kinds: list[tuple[str, int]], timeout: float = 10.0) -> list[tuple[str, int]]:
    """Wait until every (kind, id) no longer exists; returns the ones still alive."""
    check = {"prog": prog_exists, "link": link_exists, "map": map_exists}
    deadline = time.monotonic() + timeout
    alive = list(ids_and_kinds)
    while True:
        alive = [(k, i) for k, i in alive if check[k](i)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.1)


# --------------------------------------------------------------------------
# bpffs
# --------------------------------------------------------------------------
def is_bpffs(path: Path = BPFFS) -> bool:
    try:
        out = subprocess.run(["stat", "-f", "-c", "%t", str(path)], capture_output=True, text=True, check=True)
        return int(out.stdout.strip(), 16) == BPFFS_MAGIC
    except (OSError, subprocess.CalledProcessError, ValueError):
        return False


def ensure_bpffs(path: Path = BPFFS) -> None:
    if is_bpffs(path):
        return
    path.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "bpf", "bpf", str(path)], check=True)
    if not is_bpffs(path):
        raise RuntimeError(f"{path} is not a bpffs after mount")


def rm_pins(path: str | os.PathLike) -> None:
    """Remove a bpffs pin directory tree (unlink pins, rmdir dirs)."""
    p = Path(path)
    if not p.exists():
        return
    if p.is_dir():
        for child in p.iterdir():
            rm_pins(child)
        with contextlib.suppress(FileNotFoundError):
            p.rmdir()
    else:
        with contextlib.suppress(FileNotFoundError):
            p.unlink()


@contextlib.contextmanager
def private_pin_root(prefix: str = "pybpfgen-test"):
    ensure_bpffs()
    root = BPFFS / f"{prefix}-{secrets.token_hex(4)}"
    root.mkdir()
    try:
        yield root
    finally:
        rm_pins(root)


# --------------------------------------------------------------------------
# cgroup v2
# --------------------------------------------------------------------------
# cgroup plumbing shared with the product's conformance runner (one implementation)
from pybpfgen_accel.conformance.env import _cgroup_pids as cgroup_pids  # noqa: E402
from pybpfgen_accel.conformance.env import cgroup2_root, destroy_cgroup, destroy_netns  # noqa: E402,F401


@contextlib.contextmanager
def child_cgroup(prefix: str = "pybpfgen-test"):
    root = cgroup2_root()
    cg = root / f"{prefix}-{secrets.token_hex(4)}"
    cg.mkdir()
    try:
        yield cg
    finally:
        destroy_cgroup(cg)


# --------------------------------------------------------------------------
# network namespaces + veth
# --------------------------------------------------------------------------
@dataclass
class NetnsPair:
    a: str
    b: str
    ip_a: str = NET_A_IP
    ip_b: str = NET_B_IP
    veth_a: str = ""
    veth_b: str = ""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def netns_pids(ns: str) -> list[int]:
    r = _ip("netns", "pids", ns, check=False)
    return [int(x) for x in r.stdout.split()] if r.returncode == 0 else []


@contextlib.contextmanager
def netns_pair(prefix: str = "pbg", ip_a: str = NET_A_IP, ip_b: str = NET_B_IP):
    tag = secrets.token_hex(3)
    pair = NetnsPair(a=f"{prefix}-{tag}-a", b=f"{prefix}-{tag}-b", ip_a=ip_a, ip_b=ip_b,
                     veth_a=f"{prefix}{tag}a", veth_b=f"{prefix}{tag}b")
    created: list[str] = []
    try:
        for ns in (pair.a, pair.b):
            _ip("netns", "add", ns)
            created.append(ns)
        # create the veth directly inside the namespaces: it never exists in the host netns
        _ip("-n", pair.a, "link", "add", pair.veth_a, "type", "veth", "peer", "name", pair.veth_b, "netns", pair.b)
        for ns, dev, addr in ((pair.a, pair.veth_a, pair.ip_a), (pair.b, pair.veth_b, pair.ip_b)):
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
        # wait for the link to come up (no DAD for IPv4, but carrier takes a moment)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            out = _ip("-n", pair.a, "-o", "link", "show", pair.veth_a).stdout
            if "LOWER_UP" in out:
                break
            time.sleep(0.05)
        yield pair
    finally:
        for ns in reversed(created):
            destroy_netns(ns)


_CLONE_NEWNET = 0x40000000


@contextlib.contextmanager
def in_netns(ns: str):
    """Run this thread in network namespace ``ns`` (``ip netns`` name) meanwhile; only the network namespace
    changes (bpffs and cgroups stay visible, unlike ``ip netns exec``). Sockets created inside stay in ``ns``."""
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    try:
        target = os.open(f"/run/netns/{ns}", os.O_RDONLY)
        try:
            if libc.setns(target, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into netns {ns} failed")
        finally:
            os.close(target)
        try:
            yield
        finally:
            if libc.setns(home, _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns back into the test's network namespace failed")
    finally:
        os.close(home)


# --------------------------------------------------------------------------
# running processes in a cgroup / netns
# --------------------------------------------------------------------------
def wrap_cmd(argv: list[str], cgroup: str | os.PathLike | None = None, netns: str | None = None) -> list[str]:
    """``sh -c 'echo $$ > CG/cgroup.procs; exec ip netns exec NS argv...'``"""
    inner = " ".join(shlex.quote(a) for a in argv)
    if netns:
        inner = f"ip netns exec {shlex.quote(netns)} {inner}"
    script = f"exec {inner}"
    if cgroup:
        script = f"echo $$ > {shlex.quote(str(Path(cgroup) / 'cgroup.procs'))} && {script}"
    return ["sh", "-c", script]


def spawn(argv: list[str], cgroup=None, netns=None, **kw) -> subprocess.Popen:
    kw.setdefault("start_new_session", True)  # own process group: killable as a unit
    return subprocess.Popen(wrap_cmd(argv, cgroup, netns), **kw)


def run_python(args: list[str], cgroup=None, netns=None, **kw) -> subprocess.Popen:
    """Run ``python <args>`` (this interpreter) inside cgroup / netns."""
    return spawn([sys.executable, *args], cgroup=cgroup, netns=netns, **kw)


def kill_proc(p: subprocess.Popen, timeout: float = 3.0) -> None:
    if p.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, signal.SIGTERM)
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, signal.SIGKILL)
        p.wait(timeout)


def free_port(host: str = "127.0.0.1", netns: str | None = None) -> int:
    """A port that is free now, outside the ephemeral range (so a client cannot collide with it)."""
    lo_eph, hi_eph = (int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split())
    for _ in range(200):
        port = 20000 + secrets.randbelow(10000)
        if lo_eph <= port <= hi_eph:
            continue
        if netns:
            return port  # a fresh namespace has nothing bound
        with socket.socket() as s:
            try:
                s.bind((host, port))
                return port
            except OSError:
                continue
    raise RuntimeError("no free port")


# --------------------------------------------------------------------------
# peer.py orchestration
# --------------------------------------------------------------------------
class Peer:
    """A peer.py subprocess driven over its stdin/stdout JSON-lines protocol."""

    def __init__(self, mode: str, host: str, port: int, *, seed: int, total: int,
                 cgroup=None, netns=None, timeout: float = 60.0, extra: list[str] | None = None):
        args = [str(PEER_PY), mode, "--host", host, "--port", str(port), "--seed", str(seed),
                "--bytes", str(total), "--timeout", str(timeout), *(extra or [])]
        self.mode = mode
        self.timeout = timeout
        self.proc = run_python(args, cgroup=cgroup, netns=netns, stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)

    def expect(self, event: str, timeout: float | None = None) -> dict:
        import selectors
        deadline = time.monotonic() + (timeout or self.timeout)
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"peer {self.mode}: no {event!r} within timeout; stderr: {self.stderr_tail()}")
                if not sel.select(left):
                    continue
                line = self.proc.stdout.readline()
                if not line:
                    raise RuntimeError(f"peer {self.mode} exited (rc={self.proc.wait()}) before {event!r}; "
                                       f"stderr: {self.stderr_tail()}")
                msg = json.loads(line)
                if msg.get("event") == "error":
                    raise RuntimeError(f"peer {self.mode} error: {msg}")
                if msg.get("event") == event:
                    return msg
        finally:
            sel.close()

    def send(self, cmd: str) -> None:
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()

    def stderr_tail(self) -> str:
        if self.proc.poll() is None:
            return "(running)"
        return (self.proc.stderr.read() or "")[-2000:]

    def finish(self, timeout: float = 10.0) -> int:
        with contextlib.suppress(BrokenPipeError, ValueError):
            self.proc.stdin.close()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_proc(self.proc)
            return -9

    def kill(self):
        kill_proc(self.proc)


@dataclass
class TransferResult:
    server: dict
    client: dict
    sockhash_established: int | None = None  # entries seen after both sides were established
    sockhash_after: int | None = None        # entries seen after the transfer, still connected

    @property
    def send_calls(self) -> int:
        return self.server["send_calls"] + self.client["send_calls"]


def transfer(*, server_host: str, connect_host: str, port: int, total: int = 16 << 20, seed: int = 1,
             cgroup=None, server_netns=None, client_netns=None, timeout: float = 90.0,
             inspect=None) -> TransferResult:
    """Run a full-duplex peer.py transfer; ``inspect()`` is called while connected (before and after data)."""
    server = Peer("server", server_host, port, seed=seed, total=total, cgroup=cgroup,
                  netns=server_netns, timeout=timeout)
    client = None
    try:
        server.expect("listening")
        client = Peer("client", connect_host, port, seed=seed, total=total, cgroup=cgroup,
                      netns=client_netns, timeout=timeout)
        server.expect("established")
        client.expect("established")
        before = inspect() if inspect else None
        server.send("go")
        client.send("go")
        rs = server.expect("done")
        rc = client.expect("done")
        after = inspect() if inspect else None
        server.send("close")
        client.send("close")
        assert server.finish() == 0, f"server exit: {server.stderr_tail()}"
        assert client.finish() == 0, f"client exit: {client.stderr_tail()}"
        return TransferResult(rs, rc, before, after)
    finally:
        server.kill()
        if client:
            client.kill()


# --------------------------------------------------------------------------
# pybpfgen CLI and the bpftool-loaded C twin
# --------------------------------------------------------------------------
def pybpfgen_argv() -> list[str]:
    """The pybpfgen CLI: $PYBPFGEN_CLI (a shell-quoted command) or the one next to this interpreter."""
    if os.environ.get("PYBPFGEN_CLI"):
        return shlex.split(os.environ["PYBPFGEN_CLI"])
    exe = Path(sys.executable).parent / "pybpfgen"
    if exe.exists():
        return [str(exe)]
    venv = REPO_ROOT / ".venv" / "bin" / "pybpfgen"
    if venv.exists():
        return [str(venv)]
    if shutil.which("pybpfgen"):
        return ["pybpfgen"]
    return [sys.executable, "-c", "import sys; from pybpfgen.cli import main; sys.exit(main())"]


class PybpfgenCLI:
    """Drives ``pybpfgen`` subcommands; loader subcommands get ``--pin-root`` (private pin root)."""

    def __init__(self, pin_root: str | os.PathLike | None = None, cwd: str | os.PathLike = REPO_ROOT):
        self.pin_root = str(pin_root) if pin_root else None
        self.cwd = str(cwd)

    def run(self, *args: str, check: bool = True, pin: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
        args = list(args)
        if pin and self.pin_root:
            nsub = 2 if args and args[0] == "policy" else 1  # "load", "unload", "status", "policy add", ...
            args = [*args[:nsub], "--pin-root", self.pin_root, *args[nsub:]]
        r = subprocess.run([*pybpfgen_argv(), *args], capture_output=True, text=True, cwd=self.cwd,
                           timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"pybpfgen {' '.join(args)} failed rc={r.returncode}\n"
                                 f"stdout:\n{r.stdout}\nstderr:\n{r.stderr}")
        return r

    def compile(self, src: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
        self.run("compile", str(src), "-o", str(out_dir), pin=False)
        obj = Path(out_dir) / "accel.bpf.o"
        assert obj.exists(), f"compile did not produce {obj}: {sorted(os.listdir(out_dir))}"
        return obj

    def load(self, obj, cgroup):
        return self.run("load", str(obj), "--cgroup", str(cgroup))

    def unload(self, name: str = "accel", check: bool = True):
        return self.run("unload", name, check=check)

    def policy_add(self, port: int):
        return self.run("policy", "add", "--port", str(port))

    def policy_remove(self, port: int):
        return self.run("policy", "remove", "--port", str(port))

    def status_json(self):
        return json.loads(self.run("status", "--json").stdout)


TWIN_SRC = REPO_ROOT / "bench" / "twin" / "accel_twin.bpf.c"  # the repo's copy of the C reference twin


def build_c_twin(out_dir: str | os.PathLike) -> Path:
    clang = shutil.which("clang-19") or shutil.which("clang")
    if not clang:
        raise RuntimeError("clang-19 not installed")
    out = Path(out_dir) / "accel_twin.bpf.o"
    arch_inc = f"/usr/include/{os.uname().machine}-linux-gnu"
    subprocess.run([clang, "-O2", "-g", "-target", "bpf", f"-I{arch_inc}", "-c", str(TWIN_SRC), "-o", str(out)],
                   check=True, capture_output=True, text=True)
    return out


class BpftoolTwin:
    """The C reference twin loaded by bpftool (loadall + cgroup attach + msg_verdict attach)."""

    def __init__(self, obj: Path, pin_dir: Path, cgroup: Path):
        self.obj, self.pin, self.cgroup = Path(obj), Path(pin_dir), Path(cgroup)
        self.loaded = False

    def _bt(self, *args, check=True):
        r = subprocess.run(["bpftool", *args], capture_output=True, text=True)
        if check and r.returncode != 0:
            raise RuntimeError(f"bpftool {' '.join(args)}: {r.stderr.strip()}")
        return r

    def load(self, ports: list[int] = ()):
        self.pin.parent.mkdir(parents=True, exist_ok=True)  # (a loader's unload may remove an empty pin root)
        self._bt("prog", "loadall", str(self.obj), str(self.pin), "pinmaps", str(self.pin / "maps"))
        self.loaded = True
        for port in ports:
            self.policy_add(port)
        self._bt("cgroup", "attach", str(self.cgroup), "sock_ops", "pinned", str(self.pin / "accel_sockops"))
        self._bt("prog", "attach", "pinned", str(self.pin / "accel_redirect"), "msg_verdict",
                 "pinned", str(self.pin / "maps" / "sock_hash"))

    def policy_add(self, port: int):
        fd = obj_get(self.pin / "maps" / "accel_ports")
        try:
            map_update(fd, struct.pack("I", port), struct.pack("I", 1))
        finally:
            os.close(fd)

    def unload(self):
        if not self.loaded:
            return
        self._bt("cgroup", "detach", str(self.cgroup), "sock_ops", "pinned", str(self.pin / "accel_sockops"),
                 check=False)
        self._bt("prog", "detach", "pinned", str(self.pin / "accel_redirect"), "msg_verdict",
                 "pinned", str(self.pin / "maps" / "sock_hash"), check=False)
        rm_pins(self.pin)
        self.loaded = False


# --------------------------------------------------------------------------
# leftovers (for reports / sanity checks)
# --------------------------------------------------------------------------
def leftovers(prefixes=("pybpfgen-test", "pybpfgen-bench", "pybpfgen-demo", "pbg-")) -> dict:
    out: dict[str, list[str]] = {"netns": [], "cgroups": [], "pins": []}
    r = _ip("netns", "list", check=False)
    out["netns"] = [l.split()[0] for l in r.stdout.splitlines() if l.split() and l.split()[0].startswith("pbg-")]
    with contextlib.suppress(RuntimeError, OSError):
        out["cgroups"] = [p.name for p in cgroup2_root().iterdir() if p.is_dir() and p.name.startswith(prefixes)]
    if BPFFS.is_dir():
        out["pins"] = [p.name for p in BPFFS.iterdir() if p.name.startswith(prefixes)]
    return out
