"""BTF-typed values: decode bytes into Python values with a type, encode them back, describe and compare
types. A mixin of :class:`kernel_loader.btf.Btf` (``btf.decode(type_id, data)``), which provides the type
queries it uses (``resolve``, ``members``, ``size_of``, ...)."""
from __future__ import annotations

import struct

from .btf_kinds import (ARRAY, DATASEC, ENUM, ENUM64, FLOAT, FUNC_PROTO, INT, INT_BOOL, INT_CHAR, INT_SIGNED,  # noqa: F401
                        KIND_NAMES, PTR, STRUCT, UNION, VAR, BtfError)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class BtfValues:
    """Value codec methods of :class:`~kernel_loader.btf.Btf`."""

    if TYPE_CHECKING:  # provided by Btf
        def resolve(self, type_id: int) -> int: ...
        def members(self, type_id: int) -> list: ...
        def size_of(self, type_id: int, _depth: int = 0) -> int: ...
        def type_name(self, type_id: int) -> str: ...
        def str_at(self, off: int) -> str: ...
        def _t(self, type_id: int) -> Any: ...
        def _type(self, type_id: int) -> Any: ...

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
