"""BTF: parse, query, fix up, write back, resolve map definitions. Pure Python, no root needed.

The rest of the format lives beside it: values decoded and encoded with a type (:mod:`.btf_values`, a mixin of
:class:`Btf`), ``.BTF.ext`` line and function info (:mod:`.btf_ext`), a writer for tests and tools
(:mod:`.btf_build`). Their names are re-exported here.
"""
from __future__ import annotations

import struct

from pybpfgen.target.records import Record

from .btf_kinds import (  # noqa: F401  (re-exported: kernel_loader.btf.STRUCT, ...)
    ARRAY, BTF_MAGIC, BtfError, CONST, DATASEC, DECL_TAG, ENUM, ENUM64, FLOAT, FUNC, FUNC_PROTO, FWD, INT,
    INT_BOOL, INT_CHAR, INT_SIGNED, KIND_NAMES, MODIFIERS, PTR, RESTRICT, STRUCT, TYPEDEF, TYPE_TAG, UNION,
    VAR, VAR_GLOBAL_ALLOCATED, VOLATILE)
from .btf_values import BtfValues, sum_values  # noqa: F401  (re-exported)

TYPE_CHECKING = False  # (typing is not imported at run time: the loader's start-up does without it)
if TYPE_CHECKING:
    from typing import Any

class BtfType(Record, eq=True):
    """One type record.  ``size_or_type`` is the shared size/type field.

    ``extra`` depends on ``kind``: INT → encoding word; ARRAY → (type,
    index_type, nelems); STRUCT/UNION → [(name_off, type, offset)]; ENUM →
    [(name_off, val)]; FUNC_PROTO → [(name_off, type)]; VAR → linkage;
    DATASEC → [[type, offset, size]]; DECL_TAG → component_idx; ENUM64 →
    [(name_off, lo, hi)].  (Typed Any: its type is chosen by ``kind``, a union the checker cannot follow.)
    """
    id: int
    name_off: int
    kind: int
    vlen: int
    kind_flag: int
    size_or_type: int
    extra: Any = None
    name: str = ""

    @property
    def info(self) -> int:
        return (self.kind_flag << 31) | (self.kind << 24) | (self.vlen & 0xFFFF)


class Member(Record, eq=True):
    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int = 0


class Btf(BtfValues):
    def __init__(self, types: list[BtfType | None], strings: bytes, flags: int = 0):
        self.types = types          # index 0 is void (None); ids from 1 are BtfTypes (defined())
        self.strings = strings
        self.flags = flags

    # ---------------------------------------------------------------- parse
    @classmethod
    def parse(cls, data: bytes) -> "Btf":
        if len(data) < 24:
            raise BtfError("BTF section truncated (shorter than its header)")
        magic, version, flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic != BTF_MAGIC:
            raise BtfError(f"bad BTF magic 0x{magic:04x} (big-endian BTF is not supported)")
        if version != 1:
            raise BtfError(f"unsupported BTF version {version}")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        tstart = hdr_len + type_off
        sstart = hdr_len + str_off
        if tstart + type_len > len(data) or sstart + str_len > len(data):
            raise BtfError("BTF section truncated (types/strings past its end)")
        strings = bytes(data[sstart:sstart + str_len])
        types: list[BtfType | None] = [None]
        pos, end = tstart, tstart + type_len
        try:
            while pos < end:
                name_off, info, st = struct.unpack_from("<III", data, pos)
                pos += 12
                kind = (info >> 24) & 0x1F
                vlen = info & 0xFFFF
                kflag = info >> 31
                extra: Any = None
                if kind == INT:
                    (extra,) = struct.unpack_from("<I", data, pos)
                    pos += 4
                elif kind == ARRAY:
                    extra = struct.unpack_from("<III", data, pos)
                    pos += 12
                elif kind in (STRUCT, UNION):
                    extra = [struct.unpack_from("<III", data, pos + 12 * i) for i in range(vlen)]
                    pos += 12 * vlen
                elif kind == ENUM:
                    extra = [struct.unpack_from("<Ii", data, pos + 8 * i) for i in range(vlen)]
                    pos += 8 * vlen
                elif kind == FUNC_PROTO:
                    extra = [struct.unpack_from("<II", data, pos + 8 * i) for i in range(vlen)]
                    pos += 8 * vlen
                elif kind == VAR:
                    (extra,) = struct.unpack_from("<I", data, pos)
                    pos += 4
                elif kind == DATASEC:
                    extra = [list(struct.unpack_from("<III", data, pos + 12 * i)) for i in range(vlen)]
                    pos += 12 * vlen
                elif kind == DECL_TAG:
                    (extra,) = struct.unpack_from("<i", data, pos)
                    pos += 4
                elif kind == ENUM64:
                    extra = [struct.unpack_from("<III", data, pos + 12 * i) for i in range(vlen)]
                    pos += 12 * vlen
                elif kind not in (PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG):
                    raise BtfError(f"unknown BTF kind {kind} at type {len(types)}")
                t = BtfType(len(types), name_off, kind, vlen, kflag, st, extra)
                types.append(t)
        except struct.error:
            raise BtfError("BTF type section truncated") from None
        btf = cls(types, strings, flags)
        for t in btf.defined():
            t.name = btf.str_at(t.name_off)
        return btf

    def str_at(self, off: int) -> str:
        if off >= len(self.strings):
            return ""
        end = self.strings.find(b"\0", off)
        if end < 0:
            end = len(self.strings)
        return self.strings[off:end].decode(errors="replace")

    # ---------------------------------------------------------------- write
    def to_bytes(self) -> bytes:
        out = bytearray()
        for t in self.defined():
            out += struct.pack("<III", t.name_off, t.info, t.size_or_type)
            k, e = t.kind, t.extra
            if k == INT:
                out += struct.pack("<I", e)
            elif k == ARRAY:
                out += struct.pack("<III", *e)
            elif k in (STRUCT, UNION):
                for m in e:
                    out += struct.pack("<III", *m)
            elif k == ENUM:
                for m in e:
                    out += struct.pack("<Ii", *m)
            elif k == FUNC_PROTO:
                for m in e:
                    out += struct.pack("<II", *m)
            elif k == VAR:
                out += struct.pack("<I", e)
            elif k == DATASEC:
                for m in e:
                    out += struct.pack("<III", *m)
            elif k == DECL_TAG:
                out += struct.pack("<i", e)
            elif k == ENUM64:
                for m in e:
                    out += struct.pack("<III", *m)
        hdr = struct.pack("<HBBIIIII", BTF_MAGIC, 1, self.flags, 24, 0, len(out), len(out), len(self.strings))
        return hdr + bytes(out) + self.strings

    # ---------------------------------------------------------------- query
    def __getitem__(self, type_id: int) -> BtfType | None:
        return self._t(type_id)

    def _t(self, type_id: int) -> BtfType | None:
        if not 0 <= type_id < len(self.types):
            raise BtfError(f"BTF type id {type_id} out of range (the BTF has {len(self.types) - 1} types)")
        return self.types[type_id]

    def _type(self, type_id: int) -> BtfType:
        """Type ``type_id`` where the BTF must have a type: void (0) there is malformed BTF."""
        t = self._t(type_id)
        if t is None:
            raise BtfError(f"BTF type id {type_id} (void) where a type is needed")
        return t

    def defined(self) -> list[BtfType]:
        """The types after void: ids 1, 2, ..."""
        return [t for t in self.types[1:] if t is not None]

    def find(self, name: str, kind: int | None = None) -> BtfType | None:
        for t in self.defined():
            if t.name == name and (kind is None or t.kind == kind):
                return t
        return None

    def resolve(self, type_id: int) -> int:
        """Skip typedefs and qualifiers."""
        seen = 0
        while type_id and self._type(type_id).kind in MODIFIERS:
            type_id = self._type(type_id).size_or_type
            seen += 1
            if seen > 64:
                raise BtfError("BTF modifier loop")
        return type_id

    def size_of(self, type_id: int, _depth: int = 0) -> int:
        if _depth > 64:
            raise BtfError(f"BTF type {type_id}: type loop (arrays or variables nested more than 64 deep)")
        type_id = self.resolve(type_id)
        if type_id == 0:
            raise BtfError("sizeof(void)")
        t = self._type(type_id)
        if t.kind == PTR:
            return 8
        if t.kind == ARRAY:
            elem, _idx, n = t.extra
            return n * self.size_of(elem, _depth + 1)
        if t.kind in (INT, STRUCT, UNION, ENUM, ENUM64, DATASEC, FLOAT):
            return t.size_or_type
        if t.kind == VAR:
            return self.size_of(t.size_or_type, _depth + 1)
        raise BtfError(f"type {type_id} ({KIND_NAMES.get(t.kind)}) has no size")

    def members(self, type_id: int) -> list[Member]:
        t = self._type(self.resolve(type_id))
        if t.kind not in (STRUCT, UNION):
            raise BtfError(f"type {type_id} is not a struct/union")
        res = []
        for name_off, mtype, off in t.extra:
            if t.kind_flag:
                res.append(Member(self.str_at(name_off), mtype, off & 0xFFFFFF, off >> 24))
            else:
                res.append(Member(self.str_at(name_off), mtype, off, 0))
        return res

    def type_name(self, type_id: int) -> str:
        if type_id == 0:
            return "void"
        t = self._type(type_id)
        if t.kind == PTR:
            return self.type_name(t.size_or_type) + " *"
        if t.kind == ARRAY:
            return f"{self.type_name(t.extra[0])}[{t.extra[2]}]"
        if t.kind in (CONST, VOLATILE, RESTRICT, TYPE_TAG):
            return f"{KIND_NAMES[t.kind]} {self.type_name(t.size_or_type)}"
        prefix = {STRUCT: "struct ", UNION: "union ", ENUM: "enum ", ENUM64: "enum "}.get(t.kind, "")
        return prefix + (t.name or "<anon>")

    # ------------------------------------------------------------- fix-ups
    def fixup_datasecs(self, section_sizes: dict[str, int],
                       symbol_offsets: dict[str, dict[str, int]]) -> None:
        """libbpf's DATASEC fix-up: a DATASEC of size 0 gets the ELF section's
        size, each VAR its symbol's ``st_value``; then VARs are sorted."""
        for t in self.defined():
            if t.kind != DATASEC:
                continue
            if t.size_or_type == 0:
                if t.name not in section_sizes:
                    raise BtfError(f"BTF DATASEC {t.name!r} has no ELF section")
                t.size_or_type = section_sizes[t.name]
            syms = symbol_offsets.get(t.name, {})
            for entry in t.extra:
                var = self._type(entry[0])
                if var.kind == VAR and var.name in syms:
                    entry[1] = syms[var.name]
                if entry[2] == 0 and var.kind == VAR:
                    entry[2] = self.size_of(var.size_or_type)
            t.extra.sort(key=lambda e: e[1])

    # ----------------------------------------------------------- map defs
    def map_definition(self, var_name: str) -> dict:
        """Resolve a BTF-defined map (libbpf convention) by its VAR name.

        Returns a dict with ``type, max_entries, map_flags, key_size,
        value_size, key_type_id, value_type_id`` (plus ``pinning``,
        ``numa_node`` when present, and ``event_type_id``: the element type
        of the ``type`` member's array when it is not ``int``: pybpfgen's
        record type of a ring buffer, ``struct Event (*type)[27]``).
        """
        var = self.find(var_name, VAR)
        if var is None:
            raise BtfError(f"map {var_name!r}: no BTF VAR of that name in .maps")
        st_id = self.resolve(var.size_or_type)
        st = self._t(st_id)
        if st is None or st.kind != STRUCT:
            raise BtfError(f"map {var_name!r}: BTF type is not a struct (legacy map definitions are not supported)")
        d = {"type": 0, "max_entries": 0, "map_flags": 0, "key_size": 0, "value_size": 0,
             "key_type_id": 0, "value_type_id": 0}
        for m in self.members(st_id):
            mt = self._t(self.resolve(m.type_id))
            if mt is None or mt.kind != PTR:
                raise BtfError(f"map {var_name!r}: member {m.name!r} is not a __uint/__type pointer")
            target = mt.size_or_type
            if m.name in ("key", "value"):
                d[f"{m.name}_size"] = self.size_of(target)
                d[f"{m.name}_type_id"] = target
            else:
                arr = self._t(self.resolve(target))
                if arr is None or arr.kind != ARRAY:
                    raise BtfError(f"map {var_name!r}: member {m.name!r} is not __uint(...) (PTR to ARRAY)")
                d[m.name] = arr.extra[2]
                elem = self._t(arr.extra[0])   # libbpf's __uint(): a plain `int`; anything else is a record type
                if m.name == "type" and elem is not None and not (elem.kind == INT and elem.name == "int"):
                    d["event_type_id"] = arr.extra[0]
        return d


# the rest of the format (re-exported: kernel_loader.btf.BtfExt, ...); imported last, they use Btf
from .btf_build import BtfBuilder  # noqa: E402,F401
from .btf_ext import BtfExt, LineInfo, _ext_block  # noqa: E402,F401
