"""The one place that calls ``bpf(2)`` (plus ``statfs(2)`` and ``mount(2)``).

cffi ABI mode: no compiler is needed.  Every attr struct is declared below
with the offsets of the 6.18 UAPI (checked by tests/loader/test_syscall_layout.py)
and allocated zeroed with ``ffi.new``; the ``size`` passed to the kernel is the
size of the struct for that command.

Higher layers never call :func:`_raw_bpf` themselves: they take a
:class:`Syscall` (or anything with the same methods, e.g. a fake in unit
tests) and default to :data:`default` via :func:`get_default`.
"""
from __future__ import annotations

import errno as _errno
import os
import struct

from .errors import BpfSyscallError

from ._cdef import CDEF


def _make_ffi():
    """The out-of-line module when it matches CDEF, else an in-line FFI (slower import)."""
    import zlib
    digest = f"{zlib.crc32(CDEF.encode()):08x}-{len(CDEF)}"
    try:
        from . import _bpf_cffi
        if getattr(_bpf_cffi, "CDEF_DIGEST", None) == digest:
            return _bpf_cffi.ffi
    except ImportError:
        pass
    from cffi import FFI
    f = FFI()
    f.cdef(CDEF)
    return f


ffi = _make_ffi()

# --- command numbers -------------------------------------------------------
MAP_CREATE = 0
MAP_LOOKUP_ELEM = 1
MAP_UPDATE_ELEM = 2
MAP_DELETE_ELEM = 3
MAP_GET_NEXT_KEY = 4
PROG_LOAD = 5
OBJ_PIN = 6
OBJ_GET = 7
PROG_ATTACH = 8
PROG_DETACH = 9
PROG_TEST_RUN = 10
PROG_GET_NEXT_ID = 11
MAP_GET_NEXT_ID = 12
PROG_GET_FD_BY_ID = 13
MAP_GET_FD_BY_ID = 14
OBJ_GET_INFO_BY_FD = 15
PROG_QUERY = 16
BTF_LOAD = 18
BTF_GET_FD_BY_ID = 19
MAP_FREEZE = 22
BTF_GET_NEXT_ID = 23
LINK_CREATE = 28
LINK_UPDATE = 29
LINK_GET_FD_BY_ID = 30
LINK_GET_NEXT_ID = 31
ENABLE_STATS = 32
LINK_DETACH = 34

CMD_NAMES = {v: k for k, v in dict(globals()).items() if k.isupper() and isinstance(v, int)}

BPF_OBJ_NAME_LEN = 16
BPFFS_MAGIC = 0xCAFE4A11
ENOTSUPP = 524

_SYSCALL_NR = {"x86_64": 321, "amd64": 321, "aarch64": 280, "arm64": 280}

_libc = ffi.dlopen(None)


def errno_name(err: int) -> str:
    if err == ENOTSUPP:
        return "ENOTSUPP"
    return _errno.errorcode.get(err, f"E{err}")


def syscall_number(machine: str | None = None) -> int:
    machine = machine or os.uname().machine
    try:
        return _SYSCALL_NR[machine]
    except KeyError:
        raise OSError(f"bpf(2) syscall number unknown for architecture {machine!r}") from None


def _raw_bpf(cmd: int, attr) -> tuple[int, int]:
    """Returns (rc, errno). ``attr`` is a cffi pointer to one of the structs above."""
    rc = _libc.syscall(
        ffi.cast("long", syscall_number()),
        ffi.cast("int", cmd),
        ffi.cast("void *", attr),
        ffi.cast("unsigned int", ffi.sizeof(attr[0])),
    )
    return rc, (ffi.errno if rc < 0 else 0)


def _name16(name: str) -> bytes:
    return name.encode()[: BPF_OBJ_NAME_LEN - 1]


# info struct sizes we ask for: the structs of the kernel our layouts were generated from (pybpfgen/target/
# kinfo_layout.py; an older kernel fills less, a newer one no more than we ask)
from pybpfgen.target.kinfo_layout import LINK_INFO_SIZE, MAP_INFO_SIZE, PROG_INFO_SIZE  # noqa: E402,F401
BTF_INFO_SIZE = 32


class Syscall:
    """Thin typed wrapper around ``bpf(2)``: one method per command.

    Every method raises :class:`BpfSyscallError` on failure.  File
    descriptors returned are owned by the caller (close with :meth:`close`).
    """

    def _call(self, cmd: int, attr, *, retry_eintr: bool = True) -> int:
        while True:
            rc, err = _raw_bpf(cmd, attr)
            if rc >= 0:
                return int(rc)
            if err == _errno.EINTR and retry_eintr:
                continue
            raise BpfSyscallError(CMD_NAMES.get(cmd, str(cmd)), err)

    # -- maps -------------------------------------------------------------
    def map_create(self, map_type: int, key_size: int, value_size: int, max_entries: int,
                   map_flags: int = 0, name: str = "", btf_fd: int = 0,
                   btf_key_type_id: int = 0, btf_value_type_id: int = 0,
                   inner_map_fd: int = 0, numa_node: int = 0, map_extra: int = 0) -> int:
        a = ffi.new("struct map_create_attr *")
        a.map_type, a.key_size, a.value_size = map_type, key_size, value_size
        a.max_entries, a.map_flags = max_entries, map_flags
        a.inner_map_fd, a.numa_node = inner_map_fd, numa_node
        a.map_name = _name16(name)
        a.btf_fd, a.btf_key_type_id, a.btf_value_type_id = btf_fd, btf_key_type_id, btf_value_type_id
        a.map_extra = map_extra
        return self._call(MAP_CREATE, a)

    def _elem(self, cmd, fd, key, value_buf, flags):
        a = ffi.new("struct map_elem_attr *")
        a.map_fd = fd
        kb = ffi.from_buffer(key) if key is not None else ffi.NULL
        a.key = int(ffi.cast("uintptr_t", kb))
        vb = ffi.from_buffer(value_buf) if value_buf is not None else ffi.NULL
        a.value = int(ffi.cast("uintptr_t", vb))
        a.flags = flags
        self._call(cmd, a)

    def map_lookup(self, fd: int, key: bytes, value_size: int, flags: int = 0) -> bytes | None:
        buf = bytearray(value_size)
        try:
            self._elem(MAP_LOOKUP_ELEM, fd, bytes(key), buf, flags)
        except BpfSyscallError as e:
            if e.errno == _errno.ENOENT:
                return None
            raise
        return bytes(buf)

    def map_update(self, fd: int, key: bytes, value: bytes, flags: int = 0) -> None:
        self._elem(MAP_UPDATE_ELEM, fd, bytes(key), bytearray(value), flags)

    def map_delete(self, fd: int, key: bytes) -> bool:
        try:
            self._elem(MAP_DELETE_ELEM, fd, bytes(key), None, 0)
        except BpfSyscallError as e:
            if e.errno == _errno.ENOENT:
                return False
            raise
        return True

    def map_get_next_key(self, fd: int, key: bytes | None, key_size: int) -> bytes | None:
        out = bytearray(key_size)
        try:
            self._elem(MAP_GET_NEXT_KEY, fd, bytes(key) if key is not None else None, out, 0)
        except BpfSyscallError as e:
            if e.errno == _errno.ENOENT:
                return None
            raise
        return bytes(out)

    def map_freeze(self, fd: int) -> None:
        a = ffi.new("struct fd_attr *")
        a.fd = fd
        self._call(MAP_FREEZE, a)

    # -- programs ---------------------------------------------------------
    def prog_load(self, prog_type: int, insns: bytes, license: str = "GPL", name: str = "",
                  expected_attach_type: int = 0, prog_flags: int = 0, prog_btf_fd: int = 0,
                  func_info: bytes = b"", func_info_cnt: int = 0, func_info_rec_size: int = 8,
                  line_info: bytes = b"", line_info_cnt: int = 0, line_info_rec_size: int = 16,
                  log_level: int = 0, log_size: int = 0) -> int:
        """Returns the prog fd.  On failure the raised error has ``.log``
        (verifier text, '' when log_level is 0) and ``.log_true_size``."""
        a = ffi.new("struct prog_load_attr *")
        insn_buf = ffi.from_buffer(bytes(insns))
        lic = ffi.new("char[]", license.encode())
        a.prog_type = prog_type
        a.insn_cnt = len(insns) // 8
        a.insns = int(ffi.cast("uintptr_t", insn_buf))
        a.license = int(ffi.cast("uintptr_t", lic))
        a.prog_name = _name16(name)
        a.expected_attach_type = expected_attach_type
        a.prog_flags = prog_flags
        keep = [insn_buf, lic]
        if prog_btf_fd:
            a.prog_btf_fd = prog_btf_fd
            if func_info_cnt:
                fi = ffi.from_buffer(bytes(func_info))
                keep.append(fi)
                a.func_info = int(ffi.cast("uintptr_t", fi))
                a.func_info_cnt = func_info_cnt
                a.func_info_rec_size = func_info_rec_size
            if line_info_cnt:
                li = ffi.from_buffer(bytes(line_info))
                keep.append(li)
                a.line_info = int(ffi.cast("uintptr_t", li))
                a.line_info_cnt = line_info_cnt
                a.line_info_rec_size = line_info_rec_size
        log = None
        if log_level and log_size:
            log = ffi.new("char[]", log_size)
            a.log_level, a.log_size = log_level, log_size
            a.log_buf = int(ffi.cast("uintptr_t", log))
        try:
            return self._call(PROG_LOAD, a)
        except BpfSyscallError as e:
            e.log = ffi.string(log).decode(errors="replace") if log is not None else ""
            e.log_true_size = int(a.log_true_size)
            raise
        finally:
            del keep

    def prog_test_run(self, prog_fd: int, ctx: bytes | None = None, data: bytes | None = None,
                      repeat: int = 0) -> tuple[int, bytes | None]:
        """Run a program once (SYSCALL, SOCKET_FILTER, ...); returns
        (retval, ctx after the run)."""
        a = ffi.new("struct test_run_attr *")
        a.prog_fd, a.repeat = prog_fd, repeat
        keep = []
        ctx_buf = None
        if ctx is not None:
            ctx_buf = bytearray(ctx)
            cb = ffi.from_buffer(ctx_buf)
            keep.append(cb)
            a.ctx_in = int(ffi.cast("uintptr_t", cb))   # SYSCALL progs write back into ctx_in
            a.ctx_size_in = len(ctx_buf)
        if data is not None:
            db = ffi.from_buffer(bytes(data))
            keep.append(db)
            a.data_in, a.data_size_in = int(ffi.cast("uintptr_t", db)), len(data)
        self._call(PROG_TEST_RUN, a)
        return int(a.retval), (bytes(ctx_buf) if ctx_buf is not None else None)

    # -- objects / pins ---------------------------------------------------
    def obj_pin(self, fd: int, path: str) -> None:
        a = ffi.new("struct obj_pin_attr *")
        p = ffi.new("char[]", os.fsencode(path))
        a.pathname = int(ffi.cast("uintptr_t", p))
        a.bpf_fd = fd
        self._call(OBJ_PIN, a)

    def obj_get(self, path: str, flags: int = 0) -> int:
        a = ffi.new("struct obj_pin_attr *")
        p = ffi.new("char[]", os.fsencode(path))
        a.pathname = int(ffi.cast("uintptr_t", p))
        a.file_flags = flags
        return self._call(OBJ_GET, a)

    def obj_get_info_by_fd(self, fd: int, size: int) -> bytes:
        buf = bytearray(size)
        return self._info(fd, buf)

    def _info(self, fd: int, buf: bytearray) -> bytes:
        a = ffi.new("struct info_attr *")
        b = ffi.from_buffer(buf)
        a.bpf_fd, a.info_len = fd, len(buf)
        a.info = int(ffi.cast("uintptr_t", b))
        self._call(OBJ_GET_INFO_BY_FD, a)
        return bytes(buf)

    def prog_info(self, fd: int) -> bytes:
        return self.obj_get_info_by_fd(fd, PROG_INFO_SIZE)

    def map_info(self, fd: int) -> bytes:
        return self.obj_get_info_by_fd(fd, MAP_INFO_SIZE)

    def link_info(self, fd: int) -> bytes:
        return self.obj_get_info_by_fd(fd, LINK_INFO_SIZE)

    def btf_info(self, fd: int) -> tuple[int, bytes]:
        """Returns (btf id, raw BTF bytes) of a BTF object."""
        first = bytearray(BTF_INFO_SIZE)
        self._info(fd, first)
        size, btf_id = struct.unpack_from("<II", first, 8)
        raw = bytearray(size)
        rb = ffi.from_buffer(raw)
        info = bytearray(BTF_INFO_SIZE)
        struct.pack_into("<QI", info, 0, int(ffi.cast("uintptr_t", rb)), size)
        self._info(fd, info)
        return btf_id, bytes(raw)

    def prog_query(self, target_fd: int, attach_type: int, max_progs: int = 64,
                   query_flags: int = 0) -> dict:
        a = ffi.new("struct prog_query_attr *")
        ids = ffi.new("uint32_t[]", max_progs)
        link_ids = ffi.new("uint32_t[]", max_progs)
        a.target_fd, a.attach_type, a.query_flags = target_fd, attach_type, query_flags
        a.prog_ids = int(ffi.cast("uintptr_t", ids))
        a.link_ids = int(ffi.cast("uintptr_t", link_ids))
        a.prog_cnt = max_progs
        self._call(PROG_QUERY, a)
        n = int(a.prog_cnt)
        return {
            "prog_ids": [int(ids[i]) for i in range(min(n, max_progs))],
            "link_ids": [int(link_ids[i]) for i in range(min(n, max_progs))],
            "attach_flags": int(a.attach_flags),
            "revision": int(a.revision),
        }

    # -- BTF --------------------------------------------------------------
    def btf_load(self, data: bytes, log_level: int = 0, log_size: int = 0) -> int:
        a = ffi.new("struct btf_load_attr *")
        b = ffi.from_buffer(bytes(data))
        a.btf = int(ffi.cast("uintptr_t", b))
        a.btf_size = len(data)
        log = None
        if log_level and log_size:
            log = ffi.new("char[]", log_size)
            a.btf_log_buf = int(ffi.cast("uintptr_t", log))
            a.btf_log_size, a.btf_log_level = log_size, log_level
        try:
            return self._call(BTF_LOAD, a)
        except BpfSyscallError as e:
            e.log = ffi.string(log).decode(errors="replace") if log is not None else ""
            e.log_true_size = int(a.btf_log_true_size)
            raise

    # -- attach / links ---------------------------------------------------
    def link_create(self, prog_fd: int, target_fd: int, attach_type: int, flags: int = 0) -> int:
        a = ffi.new("struct link_create_attr *")
        a.prog_fd, a.target_fd, a.attach_type, a.flags = prog_fd, target_fd, attach_type, flags
        return self._call(LINK_CREATE, a)

    def link_update(self, link_fd: int, new_prog_fd: int, old_prog_fd: int = 0) -> None:
        """Atomically replace the program of a link (with ``old_prog_fd``:
        only if it still runs that program, BPF_F_REPLACE)."""
        a = ffi.new("struct link_update_attr *")
        a.link_fd, a.new_prog_fd = link_fd, new_prog_fd
        if old_prog_fd:
            a.flags, a.old_prog_fd = 4, old_prog_fd     # BPF_F_REPLACE
        self._call(LINK_UPDATE, a)

    def link_detach(self, link_fd: int) -> None:
        a = ffi.new("struct fd_attr *")
        a.fd = link_fd
        self._call(LINK_DETACH, a)

    def prog_attach(self, prog_fd: int, target_fd: int, attach_type: int, flags: int = 0) -> None:
        a = ffi.new("struct prog_attach_attr *")
        a.target_fd, a.attach_bpf_fd, a.attach_type, a.attach_flags = target_fd, prog_fd, attach_type, flags
        self._call(PROG_ATTACH, a)

    def prog_detach(self, prog_fd: int, target_fd: int, attach_type: int) -> None:
        a = ffi.new("struct prog_attach_attr *")
        a.target_fd, a.attach_bpf_fd, a.attach_type = target_fd, prog_fd, attach_type
        self._call(PROG_DETACH, a)

    # -- ids --------------------------------------------------------------
    def _by_id(self, cmd: int, obj_id: int, open_flags: int = 0) -> int:
        a = ffi.new("struct get_id_attr *")
        a.id, a.open_flags = obj_id, open_flags
        return self._call(cmd, a)

    def prog_get_fd_by_id(self, prog_id: int) -> int:
        return self._by_id(PROG_GET_FD_BY_ID, prog_id)

    def map_get_fd_by_id(self, map_id: int) -> int:
        return self._by_id(MAP_GET_FD_BY_ID, map_id)

    def link_get_fd_by_id(self, link_id: int) -> int:
        return self._by_id(LINK_GET_FD_BY_ID, link_id)

    def btf_get_fd_by_id(self, btf_id: int) -> int:
        return self._by_id(BTF_GET_FD_BY_ID, btf_id)

    def get_next_id(self, kind: str, start_id: int = 0) -> int | None:
        """``kind`` is 'prog', 'map', 'btf' or 'link'; None at the end."""
        cmd = {"prog": PROG_GET_NEXT_ID, "map": MAP_GET_NEXT_ID, "btf": BTF_GET_NEXT_ID,
               "link": LINK_GET_NEXT_ID}[kind]
        a = ffi.new("struct get_id_attr *")
        a.id = start_id
        try:
            self._call(cmd, a)
        except BpfSyscallError as e:
            if e.errno == _errno.ENOENT:
                return None
            raise
        return int(a.next_id)

    def enable_stats(self, stats_type: int = 0) -> int:
        a = ffi.new("struct fd_attr *")
        a.fd = stats_type
        return self._call(ENABLE_STATS, a)

    # -- plain fds / filesystem -------------------------------------------
    def close(self, fd: int) -> None:
        try:
            os.close(fd)
        except OSError:
            pass

    def fd_kind(self, fd: int) -> str:
        """'map', 'prog', 'link', 'btf' or 'other' (from /proc/self/fd)."""
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return "other"
        return {"anon_inode:bpf-map": "map", "anon_inode:bpf-prog": "prog", "anon_inode:bpf_link": "link", "anon_inode:bpf-link": "link",
                "anon_inode:btf": "btf"}.get(target, "other")

    def effective_caps(self) -> int | None:
        """CapEff of this process (None when /proc is unreadable)."""
        from .features import effective_caps
        return effective_caps()

    def statfs_type(self, path: str) -> int:
        buf = ffi.new("char[]", 256)
        if _libc.statfs(os.fsencode(path), buf) != 0:
            err = ffi.errno
            raise OSError(err, os.strerror(err), path)
        return int(ffi.cast("unsigned long *", buf)[0]) & 0xFFFFFFFF

    def mount_bpffs(self, target: str) -> None:
        if _libc.mount(b"bpf", os.fsencode(target), b"bpf", 0, ffi.NULL) != 0:
            err = ffi.errno
            raise OSError(err, os.strerror(err), target)


default = Syscall()


def get_default() -> Syscall:
    return default


def set_default(sc) -> object:
    """Replace the process-wide syscall layer (tests); returns the old one."""
    global default
    old, default = default, sc
    return old
