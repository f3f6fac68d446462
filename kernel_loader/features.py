"""Kernel feature probes and privilege checks, cached per run (per process and
syscall layer).

Probes create only throw-away objects (closed before returning) and never
attach anything anywhere.  ``PYBPFGEN_LOADER_DISABLE=sk_msg_link,...`` makes a
probe report the feature as missing (to exercise the fallbacks on a new
kernel, e.g. in tests).
"""
from __future__ import annotations

import errno
import os
import weakref

from .errors import BpfSyscallError

CAP_NET_ADMIN = 12
CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39
CAP_NAMES = {CAP_NET_ADMIN: "CAP_NET_ADMIN", CAP_SYS_ADMIN: "CAP_SYS_ADMIN", CAP_PERFMON: "CAP_PERFMON",
             CAP_BPF: "CAP_BPF"}
DISABLE_ENV = "PYBPFGEN_LOADER_DISABLE"

_MOV_R0_1_EXIT = bytes.fromhex("b700000001000000" "9500000000000000")
_cache: "weakref.WeakKeyDictionary[object, dict[str, object]]" = weakref.WeakKeyDictionary()


def _disabled(feature: str) -> bool:
    return feature in {f.strip() for f in os.environ.get(DISABLE_ENV, "").split(",")}


def _cached(sc, feature: str, probe):
    per_sc = _cache.setdefault(sc, {})
    if feature not in per_sc:
        per_sc[feature] = False if _disabled(feature) else probe(sc)
    return per_sc[feature]


def clear_cache() -> None:
    _cache.clear()


def kernel_release() -> str:
    return os.uname().release


def kernel_version(release: str | None = None) -> tuple[int, int]:
    rel = release or kernel_release()
    parts = []
    for piece in rel.split(".")[:2]:
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        parts.append(int(digits or 0))
    while len(parts) < 2:
        parts.append(0)
    return parts[0], parts[1]


# ------------------------------------------------------------------ probes
def _probe_bpf(sc) -> bool:
    try:
        sc.close(sc.map_create(map_type=1, key_size=4, value_size=4, max_entries=1, name="pbg_probe"))
        return True
    except BpfSyscallError:
        return False


def _probe_sockmap(sc) -> bool:
    """A sockhash and an sk_msg program load (CONFIG_BPF_STREAM_PARSER / sockmap support)."""
    fds = []
    try:
        fds.append(sc.map_create(map_type=18, key_size=4, value_size=4, max_entries=1, name="pbg_probe"))
        fds.append(sc.prog_load(prog_type=16, insns=_MOV_R0_1_EXIT, license="GPL", name="pbg_probe",
                                expected_attach_type=7))
        return True
    except BpfSyscallError:
        return False
    finally:
        for fd in reversed(fds):
            sc.close(fd)


def _probe_sk_msg_link(sc) -> bool:
    """LINK_CREATE(sk_msg prog, sockhash) works: Linux >= 6.10."""
    fds = []
    try:
        m = sc.map_create(map_type=18, key_size=4, value_size=4, max_entries=1, name="pbg_probe")
        fds.append(m)
        p = sc.prog_load(prog_type=16, insns=_MOV_R0_1_EXIT, license="GPL", name="pbg_probe",
                         expected_attach_type=7)
        fds.append(p)
        fds.append(sc.link_create(p, m, 7))
        return True
    except BpfSyscallError:
        return False
    finally:
        for fd in reversed(fds):
            sc.close(fd)


def _probe_cgroup_link(sc) -> bool:
    """LINK_CREATE for cgroup sock_ops exists (Linux >= 5.7).  Probed with a bad
    target fd, so nothing is attached: EBADF means the command understood us."""
    p = None
    try:
        p = sc.prog_load(prog_type=13, insns=_MOV_R0_1_EXIT, license="GPL", name="pbg_probe",
                         expected_attach_type=3)
        try:
            sc.close(sc.link_create(p, 0x7FFFFFF0, 3))   # never a real fd
            return True
        except BpfSyscallError as e:
            return e.errno == errno.EBADF
    except BpfSyscallError:
        return False
    finally:
        if p is not None:
            sc.close(p)


def _probe_btf(sc) -> bool:
    import struct
    # header + one INT type "int" (4 bytes, signed)
    types = struct.pack("<III", 1, 1 << 24, 4) + struct.pack("<I", (1 << 24) | 32)
    strings = b"\0int\0"
    hdr = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    try:
        sc.close(sc.btf_load(hdr + types + strings))
        return True
    except BpfSyscallError:
        return False


def _probe_stats(sc) -> bool:
    try:
        sc.close(sc.enable_stats(0))
        return True
    except BpfSyscallError:
        return False


PROBES = {"bpf": _probe_bpf, "btf": _probe_btf, "cgroup_link": _probe_cgroup_link, "sockmap": _probe_sockmap,
          "sk_msg_link": _probe_sk_msg_link, "enable_stats": _probe_stats}


def has(sc, feature: str) -> bool:
    return bool(_cached(sc, feature, PROBES[feature]))


def probe_all(sc) -> dict[str, bool]:
    return {name: has(sc, name) for name in PROBES}


# --------------------------------------------------------------- privileges
def effective_caps(status_file: str = "/proc/self/status") -> int | None:
    try:
        with open(status_file) as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except (OSError, ValueError, IndexError):
        pass
    return None


def missing_caps(caps: int | None) -> list[str]:
    """Capabilities a load needs that ``caps`` lacks ([] when unknown)."""
    if caps is None:
        return []
    has_cap = lambda c: bool(caps >> c & 1)   # noqa: E731
    missing = []
    if not (has_cap(CAP_BPF) or has_cap(CAP_SYS_ADMIN)):
        missing.append("CAP_BPF")
    if not (has_cap(CAP_NET_ADMIN) or has_cap(CAP_SYS_ADMIN)):
        missing.append("CAP_NET_ADMIN")
    return missing
