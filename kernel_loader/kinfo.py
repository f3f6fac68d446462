"""The kernel's info structs as records: ``bpf_prog_info``, ``bpf_map_info``, ``bpf_link_info``.

``BPF_OBJ_GET_INFO_BY_FD`` fills a struct whose layout comes from the kernel's BTF, through the generated table
:mod:`pybpfgen.target.kinfo_layout` (``python -m pybpfgen.target.gen_kinfo``): no offset is written here.
:func:`prog_info`, :func:`map_info` and :func:`link_info` take the syscall layer and an fd; ``from_bytes``
decodes a buffer (tests, fakes).
"""
from __future__ import annotations

from pybpfgen.target import kinfo_layout as L
from pybpfgen.target.maps import MAP_TYPE_NAMES
from pybpfgen.target.progtypes import ATTACH_TYPE_NAMES, PROG_TYPE_NAMES
from pybpfgen.target.records import Record

LINK_TYPE_NAMES: dict[int, str] = L.LINK_TYPE_NAMES
LINK_TYPE = {name: num for num, name in LINK_TYPE_NAMES.items()}  # "cgroup" -> 3

PROG_INFO_SIZE = L.PROG_INFO_SIZE
MAP_INFO_SIZE = L.MAP_INFO_SIZE
LINK_INFO_SIZE = L.LINK_INFO_SIZE


def _decode(layout: dict[str, tuple[int, int, str]], b: bytes) -> dict:
    out: dict = {}
    for path, (off, size, kind) in layout.items():
        raw = bytes(b[off:off + size]).ljust(size, b"\0")  # a shorter buffer (older kernel): zeros
        if kind == "u":
            out[path] = int.from_bytes(raw, "little")
        elif kind == "s":
            out[path] = raw.split(b"\0", 1)[0].decode(errors="replace")
        else:
            out[path] = raw
    return out


class ProgInfo(Record, eq=True):
    type: int
    id: int
    tag: str
    name: str
    jited_prog_len: int
    xlated_prog_len: int
    load_time: int
    created_by_uid: int
    nr_map_ids: int
    btf_id: int
    run_time_ns: int
    run_cnt: int
    recursion_misses: int
    verified_insns: int

    @classmethod
    def from_bytes(cls, b: bytes) -> ProgInfo:
        d = _decode(L.PROG_INFO, b)
        return cls(d["type"], d["id"], d["tag"].hex(), d["name"], d["jited_prog_len"], d["xlated_prog_len"],
                   d["load_time"], d["created_by_uid"], d["nr_map_ids"], d["btf_id"], d["run_time_ns"],
                   d["run_cnt"], d["recursion_misses"], d["verified_insns"])

    @property
    def type_name(self) -> str:
        return PROG_TYPE_NAMES.get(self.type, str(self.type))

    @property
    def xlated_insns(self) -> int:
        return self.xlated_prog_len // 8


class MapInfo(Record, eq=True):
    type: int
    id: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int
    name: str
    btf_id: int
    btf_key_type_id: int
    btf_value_type_id: int
    map_extra: int = 0

    @classmethod
    def from_bytes(cls, b: bytes) -> MapInfo:
        d = _decode(L.MAP_INFO, b)
        return cls(d["type"], d["id"], d["key_size"], d["value_size"], d["max_entries"], d["map_flags"], d["name"],
                   d["btf_id"], d["btf_key_type_id"], d["btf_value_type_id"], d["map_extra"])

    @property
    def type_name(self) -> str:
        return MAP_TYPE_NAMES.get(self.type, str(self.type))

    def as_dict(self) -> dict:
        return {"id": self.id, "name": self.name, "type": self.type_name, "type_id": self.type,
                "key_size": self.key_size, "value_size": self.value_size, "max_entries": self.max_entries,
                "flags": self.map_flags, "btf_id": self.btf_id}


# what each link type is attached to: (target kind, the info fields of its union member)
_TARGETS = {"cgroup": ("cgroup", ("cgroup_id", "attach_type")),
            "sockmap": ("map", ("map_id", "attach_type")),
            "xdp": ("ifindex", ("ifindex",)),
            "tcx": ("ifindex", ("ifindex", "attach_type")),
            "netkit": ("ifindex", ("ifindex", "attach_type")),
            "netns": ("netns", ("netns_ino", "attach_type"))}


class LinkInfo(Record, eq=True):
    type: int
    id: int
    prog_id: int
    cgroup_id: int = 0
    map_id: int = 0
    ifindex: int = 0
    netns_ino: int = 0
    attach_type: int = 0

    @classmethod
    def from_bytes(cls, b: bytes) -> LinkInfo:
        d = _decode(L.LINK_INFO, b)
        member = LINK_TYPE_NAMES.get(d["type"], "")
        extra = {f: d[f"{member}.{f}"] for f in _TARGETS[member][1]} if member in _TARGETS else {}
        return cls(d["type"], d["id"], d["prog_id"], **extra)

    @property
    def type_name(self) -> str:
        return LINK_TYPE_NAMES.get(self.type, str(self.type))

    @property
    def attach_type_name(self) -> str:
        return ATTACH_TYPE_NAMES.get(self.attach_type, str(self.attach_type))

    @property
    def has_attach_type(self) -> bool:
        """Whether the kernel's info of this link type says its attach type (an xdp link's does not)."""
        t = _TARGETS.get(self.type_name)
        return t is not None and "attach_type" in t[1]

    @property
    def target_kind(self) -> str | None:
        """"cgroup", "map", "ifindex", "netns", or None (a link type whose target is not decoded)."""
        t = _TARGETS.get(self.type_name)
        return t[0] if t else None

    @property
    def attached(self) -> bool:
        """Whether the link still has its target (a detached cgroup, map or interface link reads 0 there)."""
        kind = self.target_kind
        if kind is None:
            return True
        return bool({"cgroup": self.cgroup_id, "map": self.map_id, "ifindex": self.ifindex,
                     "netns": self.netns_ino}[kind])


def prog_info(sc, fd: int) -> ProgInfo:
    return ProgInfo.from_bytes(sc.obj_get_info_by_fd(fd, PROG_INFO_SIZE))


def map_info(sc, fd: int) -> MapInfo:
    return MapInfo.from_bytes(sc.obj_get_info_by_fd(fd, MAP_INFO_SIZE))


def link_info(sc, fd: int) -> LinkInfo:
    return LinkInfo.from_bytes(sc.obj_get_info_by_fd(fd, LINK_INFO_SIZE))
