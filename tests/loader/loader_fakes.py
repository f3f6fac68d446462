"""An in-memory stand-in for kernel_loader.syscall.Syscall (no root needed).

Pins are regular files under a temporary "bpffs" directory, so the manager's
filesystem handling runs for real.  ``fail_next(method, errno, ...)``
queues failures; ``calls`` records every call with its arguments.
"""
from __future__ import annotations

import errno as E
import itertools
import os
import struct

from kernel_loader.errors import BpfSyscallError
from kernel_loader.pins import BPFFS_MAGIC

CGROUP2_MAGIC = 0x63677270
TMPFS_MAGIC = 0x01021994


class FakeSyscall:
    def __init__(self, bpffs_root: str, cgroup_root: str | None = None, mounted: bool = True):
        self.bpffs_root = os.path.abspath(bpffs_root)
        self.cgroup_root = os.path.abspath(cgroup_root) if cgroup_root else None
        self.mounted = mounted
        self.mounts: list[str] = []
        self.fds: dict[int, dict] = {}
        self.pins: dict[str, dict] = {}
        self.calls: list[tuple[str, dict]] = []
        self.failures: dict[str, list] = {}
        self._fd = itertools.count(100)
        self._id = itertools.count(1)
        self.caps: int | None = (1 << 41) - 1          # CapEff: everything
        self.sk_msg_links = True                       # False: a kernel before 6.10
        self.objects: dict[int, dict] = {}             # id → object (for *_get_fd_by_id / get_next_id)
        self.attached: dict[tuple, list[int]] = {}     # legacy PROG_ATTACH: (target id, attach type) → prog ids
        self.report_btf = False                        # True: map/prog info carry btf_id, BTF_GET_FD_BY_ID works

    # ------------------------------------------------------------ helpers
    def fail_next(self, method: str, err: int, log: str = "", log_true_size: int = 0, times: int = 1,
                  when=None):
        """Make the next ``times`` calls of ``method`` (matching ``when(kwargs)``) fail."""
        for _ in range(times):
            self.failures.setdefault(method, []).append((err, log, log_true_size, when))

    def _maybe_fail(self, method: str, **kw):
        self.calls.append((method, kw))
        q = self.failures.get(method) or []
        for i, (err, log, true_size, when) in enumerate(q):
            if when is None or when(kw):
                del q[i]
                e = BpfSyscallError(method.upper(), err)
                e.log, e.log_true_size = log, true_size
                raise e

    def _new(self, obj: dict) -> int:
        fd = next(self._fd)
        self.fds[fd] = obj
        if "id" in obj:
            self.objects[obj["id"]] = obj
        return fd

    def live_links(self) -> list[dict]:
        return [o for o in self.objects.values() if o["kind"] == "link" and not o["detached"]]

    def _obj(self, fd: int) -> dict:
        if fd not in self.fds:
            raise BpfSyscallError("FD", E.EBADF)
        return self.fds[fd]

    def calls_of(self, method: str) -> list[dict]:
        return [kw for m, kw in self.calls if m == method]

    @property
    def open_fds(self) -> list[int]:
        return sorted(self.fds)

    # ------------------------------------------------------------ syscalls
    def btf_load(self, data, log_level=0, log_size=0):
        self._maybe_fail("btf_load", size=len(data), log_level=log_level, log_size=log_size)
        return self._new({"kind": "btf", "id": next(self._id), "data": bytes(data)})

    def map_create(self, **kw):
        self._maybe_fail("map_create", **kw)
        btf = self.fds.get(kw.get("btf_fd") or -1)
        return self._new({"kind": "map", "id": next(self._id), "def": kw, "data": {}, "frozen": False,
                          "btf_id": btf["id"] if btf else 0})

    def map_update(self, fd, key, value, flags=0):
        self._maybe_fail("map_update", fd=fd, key=key, value=value)
        m = self._obj(fd)
        if m["frozen"]:
            raise BpfSyscallError("MAP_UPDATE_ELEM", E.EPERM)
        m["data"][bytes(key)] = bytes(value)

    def map_lookup(self, fd, key, value_size, flags=0):
        return self._obj(fd)["data"].get(bytes(key))

    def map_delete(self, fd, key):
        return self._obj(fd)["data"].pop(bytes(key), None) is not None

    def map_get_next_key(self, fd, key, key_size):
        keys = sorted(self._obj(fd)["data"])
        if key is None:
            return keys[0] if keys else None
        later = [k for k in keys if k > bytes(key)]
        return later[0] if later else None

    def map_freeze(self, fd):
        self._obj(fd)["frozen"] = True

    def prog_load(self, **kw):
        self._maybe_fail("prog_load", **kw)
        kw.setdefault("name", "")
        btf = self.fds.get(kw.get("prog_btf_fd") or -1)
        return self._new({"kind": "prog", "id": next(self._id), "load": kw, "btf_id": btf["id"] if btf else 0})

    def obj_pin(self, fd, path):
        self._maybe_fail("obj_pin", fd=fd, path=path)
        obj = self._obj(fd)
        if not os.path.abspath(path).startswith(self.bpffs_root + "/"):
            raise BpfSyscallError("OBJ_PIN", E.EPERM)
        if "." in os.path.basename(path):
            raise BpfSyscallError("OBJ_PIN", E.EPERM)
        with open(path, "x"):
            pass
        self.pins[os.path.abspath(path)] = obj

    def obj_get(self, path, flags=0):
        path = os.path.abspath(path)
        if path not in self.pins or not os.path.exists(path):
            raise BpfSyscallError("OBJ_GET", E.ENOENT)
        return self._new(self.pins[path])

    def prog_info(self, fd):
        p = self._obj(fd)
        b = bytearray(256)
        struct.pack_into("<II", b, 0, p["load"]["prog_type"], p["id"])
        struct.pack_into("<I", b, 20, len(p["load"]["insns"]))
        b[64:64 + len(p["load"]["name"])] = p["load"]["name"].encode()
        struct.pack_into("<I", b, 216, len(p["load"]["insns"]) // 8)
        if self.report_btf:
            struct.pack_into("<I", b, 128, p.get("btf_id", 0))
        return bytes(b)

    def map_info(self, fd):
        m = self._obj(fd)
        d = m["def"]
        b = bytearray(128)
        struct.pack_into("<6I", b, 0, d["map_type"], m["id"], d["key_size"], d["value_size"],
                         d["max_entries"], d.get("map_flags", 0))
        b[24:24 + len(d.get("name", ""))] = d.get("name", "").encode()
        struct.pack_into("<3I", b, 64, m.get("btf_id", 0) if self.report_btf else 0,
                         d.get("btf_key_type_id", 0), d.get("btf_value_type_id", 0))
        return bytes(b)

    def link_info(self, fd):
        ln = self._obj(fd)
        b = bytearray(128)
        if ln["attach_type"] == 3:
            struct.pack_into("<IIIxxxxQI", b, 0, 3, ln["id"], ln["prog_id"], 0 if ln["detached"] else ln["target_id"], 3)
        else:
            struct.pack_into("<IIIxxxxII", b, 0, 14, ln["id"], ln["prog_id"],
                             0 if ln["detached"] else ln["target_id"], ln["attach_type"])
        return bytes(b)

    def link_create(self, prog_fd, target_fd, attach_type, flags=0):
        self._maybe_fail("link_create", prog_fd=prog_fd, target_fd=target_fd, attach_type=attach_type)
        prog = self._obj(prog_fd)
        if attach_type == 7 and not self.sk_msg_links:
            raise BpfSyscallError("LINK_CREATE", E.EINVAL)
        if target_fd in self.fds:
            target_id = self.fds[target_fd]["id"]
        elif target_fd in self.dir_fds:
            target_id = self.dir_fds[target_fd]
        else:
            raise BpfSyscallError("LINK_CREATE", E.EBADF)
        return self._new({"kind": "link", "id": next(self._id), "prog_id": prog["id"], "target_id": target_id,
                          "attach_type": attach_type, "detached": False})

    def link_update(self, link_fd, new_prog_fd, old_prog_fd=0):
        self._maybe_fail("link_update", link_fd=link_fd, new_prog_fd=new_prog_fd, old_prog_fd=old_prog_fd)
        ln = self._obj(link_fd)
        if old_prog_fd and self._obj(old_prog_fd)["id"] != ln["prog_id"]:
            raise BpfSyscallError("LINK_UPDATE", E.EPERM)
        ln["prog_id"] = self._obj(new_prog_fd)["id"]

    def prog_attach(self, prog_fd, target_fd, attach_type, flags=0):
        self._maybe_fail("prog_attach", prog_fd=prog_fd, target_fd=target_fd, attach_type=attach_type)
        key = (self._obj(target_fd)["id"], attach_type)
        self.attached[key] = [self._obj(prog_fd)["id"]]      # a sockmap holds one verdict program

    def prog_detach(self, prog_fd, target_fd, attach_type):
        self.calls.append(("prog_detach", {"prog_fd": prog_fd, "target_fd": target_fd}))
        tid = self.fds[target_fd]["id"] if target_fd in self.fds else self.dir_fds.get(target_fd)
        progs = self.attached.get((tid, attach_type), [])
        pid = self._obj(prog_fd)["id"]
        if pid not in progs:
            raise BpfSyscallError("PROG_DETACH", E.ENOENT)
        progs.remove(pid)

    def prog_query(self, target_fd, attach_type, max_progs=64, query_flags=0):
        tid = self.fds[target_fd]["id"] if target_fd in self.fds else self.dir_fds.get(target_fd)
        links = [o for o in self.live_links() if o["target_id"] == tid and o["attach_type"] == attach_type]
        legacy = self.attached.get((tid, attach_type), [])
        return {"prog_ids": [o["prog_id"] for o in links] + list(legacy),
                "link_ids": [o["id"] for o in links] + [0] * len(legacy), "attach_flags": 0, "revision": 0}

    def _by_id(self, kind, obj_id):
        o = self.objects.get(obj_id)
        if o is None or o["kind"] != kind or (kind == "link" and o["detached"]):
            raise BpfSyscallError(f"{kind.upper()}_GET_FD_BY_ID", E.ENOENT)
        return self._new(o)

    def prog_get_fd_by_id(self, prog_id):
        return self._by_id("prog", prog_id)

    def map_get_fd_by_id(self, map_id):
        return self._by_id("map", map_id)

    def link_get_fd_by_id(self, link_id):
        return self._by_id("link", link_id)

    def get_next_id(self, kind, start_id=0):
        later = sorted(i for i, o in self.objects.items() if o["kind"] == kind and i > start_id)
        return later[0] if later else None

    def enable_stats(self, stats_type=0):
        self._maybe_fail("enable_stats")
        return self._new({"kind": "stats"})

    def fd_kind(self, fd):
        return self._obj(fd)["kind"]

    def effective_caps(self):
        return self.caps

    def link_detach(self, fd):
        self.calls.append(("link_detach", {"fd": fd}))
        self._obj(fd)["detached"] = True

    def btf_get_fd_by_id(self, btf_id):
        if not self.report_btf:
            raise BpfSyscallError("BTF_GET_FD_BY_ID", E.ENOENT)
        return self._by_id("btf", btf_id)

    def btf_info(self, fd):
        o = self._obj(fd)
        return o["id"], o["data"]

    def close(self, fd):
        self.calls.append(("close", {"fd": fd}))
        self.fds.pop(fd, None)

    @property
    def dir_fds(self) -> dict[int, int]:
        """Open directory fds (cgroups) → inode, from /proc/self/fd."""
        out = {}
        for e in os.listdir("/proc/self/fd"):
            try:
                st = os.fstat(int(e))
            except OSError:
                continue
            if (st.st_mode & 0o170000) == 0o040000:
                out[int(e)] = st.st_ino
        return out

    def statfs_type(self, path):
        p = os.path.abspath(path)
        if self.mounted and (p == self.bpffs_root or p.startswith(self.bpffs_root + "/")):
            return BPFFS_MAGIC
        if self.cgroup_root and (p == self.cgroup_root or p.startswith(self.cgroup_root + "/")):
            return CGROUP2_MAGIC
        return TMPFS_MAGIC

    def mount_bpffs(self, target):
        self.mounts.append(target)
        self.mounted = True
