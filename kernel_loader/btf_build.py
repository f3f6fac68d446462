"""A small BTF writer, for tests and tools that build BTF from scratch."""
from __future__ import annotations

from .btf import Btf, BtfType
from .btf_kinds import (ARRAY, DATASEC, ENUM, INT, INT_CHAR, INT_SIGNED, PTR, STRUCT, TYPEDEF, VAR,  # noqa: F401
                        VAR_GLOBAL_ALLOCATED)


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
