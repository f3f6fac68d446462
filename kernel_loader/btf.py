# Over 500 lines: one format (BTF and .BTF.ext) parsed, fixed up, written back and decoded in one place, imported whole by load().
"""BTF and BTF.ext: parse, fix up, write back, resolve map definitions and
decode values.  Pure Python, no root needed.
"""
from __future__ import annotations

import struct

from pybpfgen.target.records import DICT, Record

from .errors import ObjectFormatError

TYPE_CHECKING = False  # (typing is not imported at run time: the loader's start-up does without it)
if TYPE_CHECKING:
    from typing import Any

BTF_MAGIC = 0xEB9F

# kinds
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)
KIND_NAMES = {
    0: "void", INT: "int", PTR: "ptr", ARRAY: "array", STRUCT: "struct", UNION: "union",
    ENUM: "enum", FWD: "fwd", TYPEDEF: "typedef", VOLATILE: "volatile", CONST: "const",
    RESTRICT: "restrict", FUNC: "func", FUNC_PROTO: "func_proto", VAR: "var", DATASEC: "datasec",
    FLOAT: "float", DECL_TAG: "decl_tag", TYPE_TAG: "type_tag", ENUM64: "enum64",
}
MODIFIERS = (TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG)

INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4
VAR_GLOBAL_ALLOCATED = 1


class BtfError(ObjectFormatError):
    pass


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


class Btf:
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
        ``numa_node`` when present).
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
        return d

    # ------------------------------------------------------------- decode
    def decode(self, type_id: int, data: bytes, offset: int = 0):
        """Decode ``data`` at ``offset`` as BTF type ``type_id`` into Python
        ints / dicts / lists / strings."""
        tid = self.resolve(type_id)
        t = self._t(tid)
        if t is None:
            return None
        k = t.kind
        if k == INT:
            enc = t.extra
            bits = enc & 0xFF
            boff = (enc >> 16) & 0xFF
            size = t.size_or_type
            signed = bool((enc >> 24) & INT_SIGNED)
            raw = int.from_bytes(data[offset:offset + size], "little", signed=False)
            if boff or bits != size * 8:
                raw = (raw >> boff) & ((1 << bits) - 1)
            if signed and raw >> (bits - 1):
                raw -= 1 << bits
            if (enc >> 24) & INT_BOOL:
                return bool(raw)
            return raw
        if k in (ENUM, ENUM64):
            size = t.size_or_type
            signed = bool(t.kind_flag)
            v = int.from_bytes(data[offset:offset + size], "little", signed=signed)
            for e in t.extra:
                ev = e[1] if k == ENUM else (e[1] | (e[2] << 32))
                if ev == v:
                    return self.str_at(e[0])
            return v
        if k == PTR:
            return int.from_bytes(data[offset:offset + 8], "little")
        if k == FLOAT:
            fmt = {4: "<f", 8: "<d"}.get(t.size_or_type)
            return struct.unpack_from(fmt, data, offset)[0] if fmt else data[offset:offset + t.size_or_type].hex()
        if k == ARRAY:
            elem, _idx, n = t.extra
            et = self._t(self.resolve(elem))
            esz = self.size_of(elem)
            if et is not None and et.kind == INT and esz == 1 and (et.extra >> 24) & INT_CHAR:
                chars = bytes(data[offset:offset + n])
                return chars.split(b"\0", 1)[0].decode(errors="replace")
            return [self.decode(elem, data, offset + i * esz) for i in range(n)]
        if k in (STRUCT, UNION):
            out: dict[str, object] = {}
            for i, m in enumerate(self.members(tid)):
                name = m.name or f"_{i}"
                if m.bitfield_size:
                    base = offset + (m.bit_offset // 8)
                    shift = m.bit_offset % 8
                    nbytes = (shift + m.bitfield_size + 7) // 8
                    raw = int.from_bytes(data[base:base + nbytes], "little")
                    out[name] = (raw >> shift) & ((1 << m.bitfield_size) - 1)
                elif m.bit_offset % 8 == 0:
                    out[name] = self.decode(m.type_id, data, offset + m.bit_offset // 8)
                else:  # legacy bitfield inside an INT member
                    out[name] = None
            return out
        if k == DATASEC:   # a global-data map's value (.bss, .data, .rodata): its variables by name
            out = {}
            for var_id, voff, _vsize in t.extra:
                var = self._t(var_id)
                if var is not None and var.kind == VAR and var.name:
                    out[var.name] = self.decode(var.size_or_type, data, offset + voff)
            return out
        return data[offset:offset + self.size_of(tid)].hex()


    # ------------------------------------------------------------- encode
    def encode(self, type_id: int, value) -> bytes:
        """The inverse of :meth:`decode` for ints, bools, enums (name or
        int), char arrays (str), arrays (list) and structs (dict; missing
        members are zero).  Raises ValueError for a value that does not fit."""
        size = self.size_of(type_id)
        buf = bytearray(size)
        self._encode_into(type_id, value, buf, 0)
        return bytes(buf)

    def _encode_into(self, type_id: int, value, buf: bytearray, offset: int, path: str = "") -> None:
        tid = self.resolve(type_id)
        t = self._type(tid)
        k = t.kind
        at = f"{path}: " if path else ""
        if isinstance(value, (bytes, bytearray)):
            size = self.size_of(tid)
            if len(value) != size:
                raise ValueError(f"{at}{self.type_name(tid)}: expected {size} bytes, got {len(value)}")
            buf[offset:offset + size] = value
            return
        if k in (INT, ENUM, ENUM64):
            size = t.size_or_type
            if k != INT and isinstance(value, str):
                for e in t.extra:
                    if self.str_at(e[0]) == value:
                        value = e[1] if k == ENUM else (e[1] | (e[2] << 32))
                        break
                else:
                    names = ", ".join(self.str_at(e[0]) for e in t.extra)
                    raise ValueError(f"{at}{self.type_name(tid)}: no enumerator {value!r} (it has: {names})")
            if not isinstance(value, int):   # (a bool is an int: true = 1)
                raise ValueError(f"{at}expected an integer ({self.type_name(tid)}), got {_short(value)}")
            signed = bool((t.extra >> 24) & INT_SIGNED) if k == INT else bool(t.kind_flag)
            lo, hi = (-(1 << (size * 8 - 1)), (1 << (size * 8 - 1)) - 1) if signed else (0, (1 << size * 8) - 1)
            if not lo <= int(value) <= hi:
                raise ValueError(f"{at}{value} does not fit in {self.type_name(tid)} ({lo}..{hi})")
            buf[offset:offset + size] = int(value).to_bytes(size, "little", signed=signed)
            return
        if k == ARRAY:
            elem, _idx, n = t.extra
            esz = self.size_of(elem)
            if isinstance(value, str):
                raw = value.encode()
                if len(raw) > n:
                    raise ValueError(f"{at}{self.type_name(tid)}: string longer than {n} bytes")
                buf[offset:offset + len(raw)] = raw
                return
            if not isinstance(value, (list, tuple)):
                raise ValueError(f"{at}expected a list of up to {n} elements ({self.type_name(tid)}), "
                                 f"got {_short(value)}")
            if len(value) > n:
                raise ValueError(f"{at}{self.type_name(tid)}: {len(value)} elements, at most {n} fit")
            for i, v in enumerate(value):
                self._encode_into(elem, v, buf, offset + i * esz, f"{path}[{i}]")
            return
        if k in (STRUCT, UNION):
            if not isinstance(value, dict):
                raise ValueError(f"{at}expected an object ({self.type_name(tid)}), got {_short(value)}")
            members = {m.name: m for m in self.members(tid)}
            unknown = set(value) - set(members)
            if unknown:
                raise ValueError(f"{at}{self.type_name(tid)} has no member {sorted(unknown)[0]!r} "
                                 f"(members: {', '.join(members)})")
            for name, v in value.items():
                m = members[name]
                if m.bitfield_size or m.bit_offset % 8:
                    raise ValueError(f"{at}{self.type_name(tid)}.{name}: bitfields cannot be written")
                self._encode_into(m.type_id, v, buf, offset + m.bit_offset // 8, f"{path}.{name}" if path else name)
            return
        if k == DATASEC:
            if not isinstance(value, dict):
                raise ValueError(f"{at}expected an object ({self.describe(tid)}), got {_short(value)}")
            vars_ = {self._type(v).name: (v, off) for v, off, _sz in t.extra if self._type(v).kind == VAR}
            for name, v in value.items():
                if name not in vars_:
                    raise ValueError(f"{at}{t.name} has no variable {name!r} (it has: {', '.join(vars_)})")
                var_id, off = vars_[name]
                self._encode_into(self._type(var_id).size_or_type, v, buf, offset + off, name)
            return
        if k == PTR and isinstance(value, int) and not isinstance(value, bool):
            buf[offset:offset + 8] = value.to_bytes(8, "little")
            return
        raise ValueError(f"{at}cannot encode {_short(value)} as {self.type_name(tid)}")

    def describe(self, type_id: int, _depth: int = 0) -> str:
        """A short JSON-like picture of what a value of the type looks like, e.g.
        ``{"prefixlen": u32, "addr": [u32 x 4]}`` (what encode() expects)."""
        tid = self.resolve(type_id)
        if tid == 0:
            return "void"
        t = self._type(tid)
        if _depth > 3:
            return self.type_name(tid)
        if t.kind == INT:
            if (t.extra >> 24) & INT_BOOL:
                return "bool"
            return f"{'s' if (t.extra >> 24) & INT_SIGNED else 'u'}{t.size_or_type * 8}"
        if t.kind in (ENUM, ENUM64):
            names = [self.str_at(e[0]) for e in t.extra]
            more = ", ..." if len(names) > 4 else ""
            return f"{self.type_name(tid)} ({', '.join(names[:4])}{more} or an integer)"
        if t.kind == ARRAY:
            elem, _idx, n = t.extra
            et = self._t(self.resolve(elem))
            if et is not None and et.kind == INT and et.size_or_type == 1 and (et.extra >> 24) & INT_CHAR:
                return f"string (up to {n} bytes)"
            return f"[{self.describe(elem, _depth + 1)} x {n}]"
        if t.kind in (STRUCT, UNION):
            inner = ", ".join(f'"{m.name}": {self.describe(m.type_id, _depth + 1)}' for m in self.members(tid))
            return "{" + inner + "}"
        if t.kind == DATASEC:
            inner = ", ".join(f'"{self._type(v).name}": {self.describe(self._type(v).size_or_type, _depth + 1)}'
                              for v, _o, _s in t.extra if self._type(v).kind == VAR)
            return "{" + inner + "}"
        return self.type_name(tid)

    # ------------------------------------------------------------- layout
    def layout(self, type_id: int, _depth: int = 0):
        """A comparable description of a type's memory layout (typedefs and
        qualifiers resolved; struct members by name, offset and layout).
        Used to decide whether a pinned map can be reused by a new object."""
        if _depth > 32:
            raise BtfError("BTF type nesting too deep")
        tid = self.resolve(type_id)
        if tid == 0:
            return ("void",)
        t = self._type(tid)
        k = t.kind
        if k == INT:
            return ("int", t.size_or_type, (t.extra >> 24) & INT_SIGNED, t.extra & 0xFF)
        if k in (ENUM, ENUM64):
            return ("int", t.size_or_type)
        if k == PTR:
            return ("ptr",)
        if k == FLOAT:
            return ("float", t.size_or_type)
        if k == ARRAY:
            return ("array", t.extra[2], self.layout(t.extra[0], _depth + 1))
        if k in (STRUCT, UNION):
            return (KIND_NAMES[k], t.size_or_type,
                    tuple((m.name, m.bit_offset, m.bitfield_size, self.layout(m.type_id, _depth + 1))
                          for m in self.members(tid)))
        return (KIND_NAMES.get(k, str(k)), self.size_of(tid))


def _short(value) -> str:
    import json
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def sum_values(values: list):
    """Sum decoded per-CPU values element-wise (ints add, dicts by key,
    lists by index, anything else: the first value)."""
    if not values:
        return None
    first = values[0]
    if isinstance(first, bool):
        return any(values)
    if isinstance(first, int):
        return sum(v for v in values)
    if isinstance(first, dict):
        return {k: sum_values([v[k] for v in values]) for k in first}
    if isinstance(first, list):
        return [sum_values([v[i] for v in values]) for i in range(len(first))]
    return first


class BtfBuilder:
    """Small writer used by tests and tools to build BTF from scratch."""

    def __init__(self) -> None:
        self.types: list[BtfType | None] = [None]
        self._strings = bytearray(b"\0")
        self._str_index: dict[str, int] = {"": 0}

    def add_str(self, s: str) -> int:
        if s in self._str_index:
            return self._str_index[s]
        off = len(self._strings)
        self._strings += s.encode() + b"\0"
        self._str_index[s] = off
        return off

    def _add(self, kind, name, vlen, st, extra, kflag=0) -> int:
        t = BtfType(len(self.types), self.add_str(name), kind, vlen, kflag, st, extra, name)
        self.types.append(t)
        return t.id

    def int_(self, name: str, size: int, signed: bool = False, char: bool = False) -> int:
        enc = ((INT_SIGNED if signed else 0) | (INT_CHAR if char else 0)) << 24 | (size * 8)
        return self._add(INT, name, 0, size, enc)

    def ptr(self, target: int) -> int:
        return self._add(PTR, "", 0, target, None)

    def array(self, elem: int, nelems: int, index_type: int) -> int:
        return self._add(ARRAY, "", 0, 0, (elem, index_type, nelems))

    def struct(self, name: str, size: int, members: list[tuple[str, int, int]]) -> int:
        """members: (name, type_id, bit_offset)"""
        ext = [(self.add_str(n), tid, off) for n, tid, off in members]
        return self._add(STRUCT, name, len(ext), size, ext)

    def typedef(self, name: str, target: int) -> int:
        return self._add(TYPEDEF, name, 0, target, None)

    def enum(self, name: str, size: int, values: list[tuple[str, int]]) -> int:
        ext = [(self.add_str(n), v) for n, v in values]
        return self._add(ENUM, name, len(ext), size, ext)

    def var(self, name: str, type_id: int, linkage: int = VAR_GLOBAL_ALLOCATED) -> int:
        return self._add(VAR, name, 0, type_id, linkage)

    def datasec(self, name: str, size: int, entries: list[tuple[int, int, int]]) -> int:
        return self._add(DATASEC, name, len(entries), size, [list(e) for e in entries])

    def build(self) -> Btf:
        return Btf(list(self.types), bytes(self._strings))


# ------------------------------------------------------------------ BTF.ext
class LineInfo(Record, eq=True):
    insn_off: int            # bytes in the ELF section (as read); indices after linking
    file_name_off: int
    line_off: int
    line_col: int
    file: str = ""
    text: str = ""

    @property
    def line(self) -> int:
        return self.line_col >> 10

    @property
    def col(self) -> int:
        return self.line_col & 0x3FF


class BtfExt(Record, eq=True):
    func_info_rec_size: int = 8
    line_info_rec_size: int = 16
    func_info: dict[str, list[tuple[int, int]]] = DICT
    line_info: dict[str, list[LineInfo]] = DICT

    @classmethod
    def parse(cls, data: bytes, btf: Btf) -> "BtfExt":
        if len(data) < 24:
            raise BtfError(".BTF.ext truncated")
        magic, version, flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic != BTF_MAGIC:
            raise BtfError(f"bad .BTF.ext magic 0x{magic:04x}")
        fi_off, fi_len, li_off, li_len = struct.unpack_from("<IIII", data, 8)
        ext = cls()
        if fi_len:
            ext.func_info_rec_size, recs = _ext_block(data, hdr_len + fi_off, fi_len, btf)
            ext.func_info = {sec: [struct.unpack_from("<II", r) for r in rs] for sec, rs in recs.items()}
        if li_len:
            ext.line_info_rec_size, recs = _ext_block(data, hdr_len + li_off, li_len, btf, min_rec=16)
            li: dict[str, list[LineInfo]] = {}
            for sec, rs in recs.items():
                out = []
                for r in rs:
                    off, fno, lno, lc = struct.unpack_from("<IIII", r)
                    out.append(LineInfo(off, fno, lno, lc, btf.str_at(fno), btf.str_at(lno)))
                li[sec] = out
            ext.line_info = li
        return ext


def _ext_block(data: bytes, start: int, length: int, btf: Btf, min_rec: int = 8):
    end = start + length
    if end > len(data) or length < 4:
        raise BtfError(".BTF.ext info block past the end of the section")
    (rec_size,) = struct.unpack_from("<I", data, start)
    if rec_size < min_rec or rec_size > 256:
        raise BtfError(f".BTF.ext record size {rec_size} is invalid (expected {min_rec}..256)")
    pos = start + 4
    out: dict[str, list[bytes]] = {}
    while pos < end:
        if pos + 8 > end:
            raise BtfError(".BTF.ext section header past the end of its block")
        sec_off, num = struct.unpack_from("<II", data, pos)
        pos += 8
        if num == 0 or pos + num * rec_size > end:        # checked before building anything
            raise BtfError(".BTF.ext record past the end of its block")
        recs = [bytes(data[pos + i * rec_size: pos + (i + 1) * rec_size]) for i in range(num)]
        pos += num * rec_size
        out.setdefault(btf.str_at(sec_off), []).extend(recs)
    return rec_size, out
