"""Create an object's maps, and access maps from userspace."""
from __future__ import annotations

import errno
import re
import struct

from . import syscall as _syscall
from .elf import MAP_SOCKHASH, MAP_SOCKMAP, MAP_TYPE_NAMES, BpfObject, MapDef
from .errors import BpfSyscallError, LoaderError, PERMISSION_HINT

from pybpfgen.target.maps import ARRAY_MAP_TYPES as ARRAY_TYPES, PERCPU_MAP_TYPES as PERCPU_TYPES  # noqa: E402,F401
from pybpfgen.target.maps import LOCAL_STORAGE_MAP_TYPES  # noqa: E402


def kernel_map_name(obj_name: str, m: MapDef) -> str:
    if m.internal:  # libbpf style: <obj prefix><.section>
        name = obj_name[: max(0, 15 - len(m.name))] + m.name
    else:
        name = m.name
    return re.sub(r"[^A-Za-z0-9_.]", "_", name)[:15]


def pin_name(m: MapDef) -> str:
    """bpffs names must not contain '.'"""
    return m.name.lstrip(".").replace(".", "_") or "map"


def create_map(sc, obj: BpfObject, m: MapDef, btf_fd: int | None) -> int:
    base = dict(map_type=m.type, key_size=m.key_size, value_size=m.value_size, max_entries=m.max_entries,
                map_flags=m.map_flags, name=kernel_map_name(obj.name, m))
    use_btf = bool(btf_fd) and m.type not in (MAP_SOCKMAP, MAP_SOCKHASH) and m.key_type_id and m.value_type_id
    try:
        if use_btf:
            try:
                fd = sc.map_create(**base, btf_fd=btf_fd, btf_key_type_id=m.key_type_id,
                                   btf_value_type_id=m.value_type_id)
            except BpfSyscallError as e:
                if e.errno == errno.EPERM:
                    raise
                if m.type in LOCAL_STORAGE_MAP_TYPES:  # BTF is mandatory: no retry without it
                    raise LoaderError(f"cannot create map {m.name} ({MAP_TYPE_NAMES.get(m.type, m.type)}): "
                                      f"{e.errno_name}; the kernel needs its BTF key (int) and value types, and "
                                      "rejected them") from e
                fd = sc.map_create(**base)   # retry without BTF (libbpf does the same)
        else:
            fd = sc.map_create(**base)
    except BpfSyscallError as e:
        if e.errno == errno.EPERM:
            raise LoaderError(f"cannot create map {m.name}: permission denied (EPERM); {PERMISSION_HINT}") from e
        raise LoaderError(f"cannot create map {m.name} ({MAP_TYPE_NAMES.get(m.type, m.type)}, key {m.key_size}, "
                          f"value {m.value_size}, max_entries {m.max_entries}): {e.errno_name}; "
                          "check the map definition") from e
    try:
        if m.data is not None:
            sc.map_update(fd, struct.pack("<I", 0), m.data, 0)
        if m.freeze:
            sc.map_freeze(fd)
    except BaseException:
        sc.close(fd)
        raise
    return fd


# ---------------------------------------------------------------- map info (kinfo.py: from the kernel's BTF)
from .kinfo import MapInfo  # noqa: E402,F401  (re-exported: kernel_loader.maps.MapInfo)


def possible_cpus() -> int:
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            text = f.read().strip()
    except OSError:
        import os
        return os.cpu_count() or 1
    n = 0
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            n = max(n, int(b) + 1)
        else:
            n = max(n, int(part) + 1)
    return n


class Map:
    """A map opened by fd (owned: :meth:`close` closes it)."""

    def __init__(self, fd: int, name: str = "", sc=None):
        self.sc = sc or _syscall.get_default()
        self.fd = fd
        self._info = MapInfo.from_bytes(self.sc.map_info(fd))
        self.name = name or self._info.name

    @classmethod
    def open_pinned(cls, path: str, sc=None) -> "Map":
        sc = sc or _syscall.get_default()
        return cls(sc.obj_get(path), sc=sc)

    def info(self) -> MapInfo:
        return self._info

    @property
    def percpu(self) -> bool:
        return self._info.type in PERCPU_TYPES

    def _check_key(self, key: bytes) -> bytes:
        key = bytes(key)
        if len(key) != self._info.key_size:
            raise ValueError(f"map {self.name}: key must be {self._info.key_size} bytes, got {len(key)}")
        return key

    def keys(self):
        key = None
        seen = 0
        while True:
            nxt = self.sc.map_get_next_key(self.fd, key, self._info.key_size)
            if nxt is None:
                return
            yield nxt
            key = nxt
            seen += 1
            if seen > max(self._info.max_entries, 1) * 2 + 16:   # concurrent deletes can restart iteration
                return

    def count(self) -> int:
        return sum(1 for _ in self.keys())

    def lookup(self, key: bytes) -> bytes | None:
        if self.percpu:
            vals = self.lookup_percpu(key)
            return None if vals is None else vals[0]
        return self.sc.map_lookup(self.fd, self._check_key(key), self._info.value_size)

    def lookup_percpu(self, key: bytes) -> list[bytes] | None:
        if not self.percpu:
            v = self.lookup(key)
            return None if v is None else [v]
        stride = (self._info.value_size + 7) & ~7
        n = possible_cpus()
        raw = self.sc.map_lookup(self.fd, self._check_key(key), stride * n)
        if raw is None:
            return None
        return [raw[i * stride: i * stride + self._info.value_size] for i in range(n)]

    def update(self, key: bytes, value: bytes, flags: int = 0) -> None:
        value = bytes(value)
        if self.percpu:
            stride = (self._info.value_size + 7) & ~7
            n = possible_cpus()
            if len(value) == self._info.value_size:
                value = (value + bytes(stride - len(value))) * n
        elif len(value) != self._info.value_size:
            raise ValueError(f"map {self.name}: value must be {self._info.value_size} bytes, got {len(value)}")
        self.sc.map_update(self.fd, self._check_key(key), value, flags)

    def delete(self, key: bytes) -> bool:
        return self.sc.map_delete(self.fd, self._check_key(key))

    # ------------------------------------------------------------ typed access
    def btf(self):
        """The map's BTF from the kernel (None when it was created without)."""
        if not hasattr(self, "_btf"):
            self._btf = None
            if self._info.btf_id:
                from .btf import Btf
                try:
                    fd = self.sc.btf_get_fd_by_id(self._info.btf_id)
                    try:
                        self._btf = Btf.parse(self.sc.btf_info(fd)[1])
                    finally:
                        self.sc.close(fd)
                except (BpfSyscallError, LoaderError):
                    self._btf = None
        return self._btf

    def use_types(self, btf, key_type_id: int, value_type_id: int) -> None:
        """Encode and decode with these BTF types (for a map the kernel holds without BTF, e.g. a sockhash or
        a global-data map, whose types are known from its object's BTF)."""
        self._btf = btf
        self._types = (key_type_id, value_type_id)

    _types: tuple[int, int] | None = None     # set by use_types()
    event_type_id = 0   # a ring buffer's record type in btf() (mapapi: recorded in its definition's BTF), else 0

    @property
    def key_type_id(self) -> int:
        return self._types[0] if self._types else self._info.btf_key_type_id

    @property
    def value_type_id(self) -> int:
        return self._types[1] if self._types else self._info.btf_value_type_id

    def type_names(self) -> tuple[str | None, str | None]:
        """The key and value type names from BTF (None without BTF)."""
        btf = self.btf()
        if btf is None:
            return None, None
        key, value = self.key_type_id, self.value_type_id
        return (btf.type_name(key) if key else None), (btf.type_name(value) if value else None)

    def _encode(self, type_id: int, size: int, value, what: str) -> bytes:
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        btf = self.btf()
        if btf is not None and type_id:
            return btf.encode(type_id, value)
        if isinstance(value, int) and size in (1, 2, 4, 8):
            return value.to_bytes(size, "little")
        raise ValueError(f"map {self.name}: cannot encode {what} {value!r} without BTF; pass bytes")

    def _decode(self, type_id: int, raw: bytes):
        btf = self.btf()
        if btf is not None and type_id:
            return btf.decode(type_id, raw)
        if len(raw) in (1, 2, 4, 8):
            return int.from_bytes(raw, "little")
        return raw

    def encode_key(self, key) -> bytes:
        return self._encode(self.key_type_id, self._info.key_size, key, "key")

    def encode_value(self, value) -> bytes:
        return self._encode(self.value_type_id, self._info.value_size, value, "value")

    def decode_key(self, raw: bytes):
        return self._decode(self.key_type_id, raw)

    def decode_value(self, raw: bytes):
        return self._decode(self.value_type_id, raw)

    def is_percpu_list(self, value) -> bool:
        """Whether ``value`` for a per-CPU map is one value per CPU (a list of possible_cpus() values) rather
        than one value for every CPU."""
        if not self.percpu or not isinstance(value, list) or len(value) != possible_cpus():
            return False
        btf = self.btf()
        if btf is not None and self.value_type_id:
            from .btf import ARRAY
            t = btf[btf.resolve(self.value_type_id)]
            if t is not None and t.kind == ARRAY:
                return all(isinstance(v, (list, str)) for v in value)
        return True

    def get(self, key):
        """Typed lookup: ``key`` is an int / dict / bytes; returns the decoded
        value (a list per CPU for per-CPU maps) or None."""
        k = self.encode_key(key)
        if self.percpu:
            vals = self.lookup_percpu(k)
            return None if vals is None else [self.decode_value(v) for v in vals]
        raw = self.lookup(k)
        return None if raw is None else self.decode_value(raw)

    def set(self, key, value, flags: int = 0) -> None:
        """Typed update (per-CPU maps: the same value on every CPU, or a list of one value per CPU)."""
        if self.is_percpu_list(value):
            stride = (self._info.value_size + 7) & ~7
            raw = b"".join(self.encode_value(v).ljust(stride, b"\0") for v in value)
        else:
            raw = self.encode_value(value)
        self.update(self.encode_key(key), raw, flags)

    def items(self):
        """(decoded key, decoded value) pairs."""
        for k in self.keys():
            v = self.get(k)
            if v is not None:
                yield self.decode_key(k), v

    def close(self) -> None:
        if self.fd >= 0:
            self.sc.close(self.fd)
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass
