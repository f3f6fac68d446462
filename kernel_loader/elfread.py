"""A minimal, bounds-checked reader for ELF64 little-endian relocatable files:
section headers, section data, symbols and REL/RELA entries.  Just what a BPF
object needs, in pure Python with ``struct`` only.

It replaces pyelftools on the load path: importing pyelftools alone takes
about 0.1 s, more than the whole bpftool load sequence.  Every inconsistency
raises :class:`ElfFormatError` (a ValueError) with a short reason.
"""
from __future__ import annotations

import struct

SHT_SYMTAB, SHT_STRTAB, SHT_RELA, SHT_NOBITS, SHT_REL = 2, 3, 4, 8, 9
SHT_NAMES = {0: "SHT_NULL", 1: "SHT_PROGBITS", 2: "SHT_SYMTAB", 3: "SHT_STRTAB", 4: "SHT_RELA", 5: "SHT_HASH",
             6: "SHT_DYNAMIC", 7: "SHT_NOTE", 8: "SHT_NOBITS", 9: "SHT_REL", 11: "SHT_DYNSYM",
             0x6FFF4C03: "SHT_LLVM_ADDRSIG"}
STT_NAMES = {0: "STT_NOTYPE", 1: "STT_OBJECT", 2: "STT_FUNC", 3: "STT_SECTION", 4: "STT_FILE"}
STB_NAMES = {0: "STB_LOCAL", 1: "STB_GLOBAL", 2: "STB_WEAK"}
SHN_LORESERVE, SHN_XINDEX = 0xFF00, 0xFFFF
MAX_SECTIONS = 1 << 16
_SHDR = struct.Struct("<IIQQQQIIQQ")
_SYM = struct.Struct("<IBBHQQ")
_REL = struct.Struct("<QQ")
_RELA = struct.Struct("<QQq")


class ElfFormatError(ValueError):
    pass


class ElfSection:
    __slots__ = ("index", "name", "type", "type_name", "flags", "offset", "size", "link", "info", "entsize", "_elf")

    def __init__(self, elf, index, name_off, sh_type, flags, offset, size, link, info, entsize):
        self._elf, self.index, self.name = elf, index, name_off
        self.type, self.type_name = sh_type, SHT_NAMES.get(sh_type, f"SHT_{sh_type:#x}")
        self.flags, self.offset, self.size, self.link, self.info, self.entsize = flags, offset, size, link, info, entsize

    def data(self) -> bytes:
        if self.type == SHT_NOBITS:
            return b""
        return self._elf._slice(self.offset, self.size, f"section {self.name}")


class ElfSymbol:
    __slots__ = ("name", "value", "size", "type", "bind", "shndx")

    def __init__(self, name, value, size, type_, bind, shndx):
        self.name, self.value, self.size, self.type, self.bind, self.shndx = name, value, size, type_, bind, shndx


class ElfFile:
    def __init__(self, data: bytes):
        self.data = data
        if len(data) < 64 or data[:4] != b"\x7fELF":
            raise ElfFormatError("not an ELF file")
        if data[4] != 2 or data[5] != 1:
            raise ElfFormatError("not ELF64 little-endian")
        shoff, = struct.unpack_from("<Q", data, 40)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 58)
        if shoff == 0:
            raise ElfFormatError("no section headers")
        if shentsize != _SHDR.size:
            raise ElfFormatError(f"section header size {shentsize}, expected {_SHDR.size}")
        if shnum == 0 or shstrndx == SHN_XINDEX:     # extended numbering: real values in section 0
            sh0 = self._shdr(shoff, 0)
            if shnum == 0:
                shnum = sh0[5]
            if shstrndx == SHN_XINDEX:
                shstrndx = sh0[6]
        if not 0 < shnum <= MAX_SECTIONS:
            raise ElfFormatError(f"bad section count {shnum}")
        if shoff + shnum * _SHDR.size > len(data):
            raise ElfFormatError("section headers past the end of the file")
        self.sections: list[ElfSection] = []
        for i in range(shnum):
            name_off, sh_type, flags, _addr, offset, size, link, info, _align, entsize = self._shdr(shoff, i)
            self.sections.append(ElfSection(self, i, name_off, sh_type, flags, offset, size, link, info, entsize))
        if not 0 <= shstrndx < shnum:
            raise ElfFormatError(f"bad section name table index {shstrndx}")
        names = self.sections[shstrndx].data()
        for s in self.sections:
            s.name = _cstr(names, s.name, "section name")

    def _shdr(self, shoff: int, i: int):
        off = shoff + i * _SHDR.size
        if off + _SHDR.size > len(self.data):
            raise ElfFormatError("section header past the end of the file")
        return _SHDR.unpack_from(self.data, off)

    def _slice(self, offset: int, size: int, what: str) -> bytes:
        if offset < 0 or size < 0 or offset + size > len(self.data):
            raise ElfFormatError(f"{what} is truncated ({offset}+{size} > {len(self.data)} bytes)")
        return self.data[offset:offset + size]

    def section(self, index: int) -> ElfSection:
        if not 0 <= index < len(self.sections):
            raise ElfFormatError(f"section index {index} out of range")
        return self.sections[index]

    def symbols(self, symtab: ElfSection) -> list[ElfSymbol]:
        raw = symtab.data()
        if len(raw) % _SYM.size:
            raise ElfFormatError(".symtab size is not a multiple of 24")
        strs = self.section(symtab.link).data()
        out = []
        for off in range(0, len(raw), _SYM.size):
            name_off, info, _other, shndx, value, size = _SYM.unpack_from(raw, off)
            out.append(ElfSymbol(_cstr(strs, name_off, "symbol name"), value, size,
                                 STT_NAMES.get(info & 0xF, f"STT_{info & 0xF}"), STB_NAMES.get(info >> 4, f"STB_{info >> 4}"),
                                 0 if shndx >= SHN_LORESERVE else shndx))
        return out

    def relocations(self, sec: ElfSection) -> list[tuple[int, int, int]]:
        """(r_offset, symbol index, type) of a SHT_REL / SHT_RELA section."""
        st = _REL if sec.type == SHT_REL else _RELA
        raw = sec.data()
        if len(raw) % st.size:
            raise ElfFormatError(f"{sec.name}: size is not a multiple of {st.size}")
        out = []
        for off in range(0, len(raw), st.size):
            r_offset, r_info = st.unpack_from(raw, off)[:2]
            out.append((r_offset, r_info >> 32, r_info & 0xFFFFFFFF))
        return out


def _cstr(table: bytes, off: int, what: str) -> str:
    if off == 0 and not table:
        return ""
    if not 0 <= off < len(table):
        raise ElfFormatError(f"{what} offset {off} outside its string table")
    end = table.find(b"\0", off)
    if end < 0:
        raise ElfFormatError(f"unterminated {what}")
    return table[off:end].decode("utf-8", errors="replace")
