"""Parse a BPF ELF object into a plain model (elfread.py; no root needed)."""
from __future__ import annotations

import json
import os
import re
import struct
from pybpfgen.target.records import LIST, Record

from .btf import Btf, BtfError, BtfExt
from .errors import ObjectFormatError

EM_BPF = 247
SHF_EXECINSTR = 0x4

R_BPF_NONE = 0
R_BPF_64_64 = 1
R_BPF_64_ABS64 = 2
R_BPF_64_ABS32 = 3
R_BPF_64_NODYLD32 = 4
R_BPF_64_32 = 10

# BPF facts: one table shared with the compiler (pybpfgen/target: import-free, no llvmlite)
from pybpfgen.target.maps import MAP_SOCKHASH, MAP_SOCKMAP, MAP_TYPE_NAMES  # noqa: E402,F401
from pybpfgen.target.progtypes import PROG_TYPE_NAMES, PROG_TYPES, by_name, by_section  # noqa: E402,F401
DATA_SECTION_RE = re.compile(r"^\.(data|rodata|bss)(\..*)?$")


class Symbol(Record, eq=True):
    name: str
    value: int
    size: int
    type: str      # 'STT_FUNC', 'STT_OBJECT', 'STT_SECTION', 'STT_NOTYPE'
    bind: str
    shndx: int     # section index, or 0 for undefined


class Relocation(Record, eq=True):
    offset: int          # byte offset in the relocated section
    type: int
    symbol: Symbol

    @property
    def insn_index(self) -> int:
        return self.offset // 8


class Section(Record, eq=True):
    index: int
    name: str
    data: bytes
    size: int
    flags: int
    type: str
    relocations: list[Relocation] = LIST


class Function(Record, eq=True):
    """A function symbol inside an executable section."""
    name: str
    section: str
    offset: int        # bytes into the section
    size: int          # bytes

    @property
    def end(self) -> int:
        return self.offset + self.size


class Program(Record, eq=True):
    name: str
    section: str
    kind: str                   # program type: a name of pybpfgen.target.progtypes.PROG_TYPES
    prog_type: int
    expected_attach_type: int
    prog_flags: int
    offset: int                 # bytes into its section
    insns: bytes
    attach_map: str | None = None   # sk_msg, sk_skb: the sockmap/sockhash to attach to
    computed_returns: tuple[int, ...] = ()  # source lines of the returns of a computed value (when several)

    @property
    def insn_count(self) -> int:
        return len(self.insns) // 8

    @property
    def sock_map(self) -> str:
        """The sock map an sk_msg / sk_skb program attaches to: parse() names one for each (or refuses it)."""
        assert PROG_TYPES[self.kind].attach == "map" and self.attach_map is not None, \
            f"{self.name}: not a program attached to a sock map"
        return self.attach_map


class MapDef(Record, eq=True):
    name: str
    type: int
    key_size: int
    value_size: int
    max_entries: int
    map_flags: int = 0
    key_type_id: int = 0
    value_type_id: int = 0
    section: str = ".maps"
    offset: int = 0             # st_value in its section
    data: bytes | None = None   # initial contents (data sections)
    freeze: bool = False
    internal: bool = False      # .data/.rodata/.bss

    @property
    def type_name(self) -> str:
        return MAP_TYPE_NAMES.get(self.type, str(self.type))


class BpfObject(Record, eq=True):
    path: str
    name: str                   # pin-safe object name (file name without .bpf.o)
    license: str
    programs: list[Program]
    maps: dict[str, MapDef]
    sections: dict[str, Section]        # by name
    sections_by_index: dict[int, Section]
    functions: list[Function]           # every STT_FUNC in an executable section
    btf_raw: bytes | None               # .BTF after the DATASEC fix-up
    btf: Btf | None
    btf_ext: BtfExt | None
    meta: dict | None                   # parsed .pybpfgen section

    def program(self, name: str) -> Program:
        for p in self.programs:
            if p.name == name:
                return p
        raise KeyError(name)

    def function_at(self, section: str, offset: int) -> Function | None:
        for f in self.functions:
            if f.section == section and f.offset <= offset < f.end:
                return f
        return None


def object_name(path: str) -> str:
    """The name an object is loaded/pinned under: file name without
    ``.bpf.o`` (or ``.o``), with anything but ``[A-Za-z0-9_-]`` replaced by
    ``_`` (bpffs refuses names containing '.')."""
    base = os.path.basename(path)
    for suf in (".bpf.o", ".o"):
        if base.endswith(suf) and len(base) > len(suf):
            base = base[: -len(suf)]
            break
    return re.sub(r"[^A-Za-z0-9_-]", "_", base) or "object"


def _check_header(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ObjectFormatError(f"{path}: no such file; build it first with `pybpfgen compile`") from None
    except IsADirectoryError:
        raise ObjectFormatError(f"{path}: is a directory, expected a .bpf.o file") from None
    except OSError as e:
        raise ObjectFormatError(f"{path}: cannot read: {e.strerror}") from None
    if len(data) < 64 or data[:4] != b"\x7fELF":
        if data[:4] == b"\x7fELF":
            raise ObjectFormatError(f"{path}: truncated ELF file ({len(data)} bytes); rebuild it")
        raise ObjectFormatError(f"{path}: not an ELF file; expected a BPF object from `pybpfgen compile`")
    if data[4] != 2:
        raise ObjectFormatError(f"{path}: 32-bit ELF; BPF objects are ELF64")
    if data[5] != 1:
        raise ObjectFormatError(f"{path}: big-endian BPF object; only little-endian (bpfel) objects can be loaded here")
    e_machine = struct.unpack_from("<H", data, 18)[0]
    if e_machine != EM_BPF:
        raise ObjectFormatError(f"{path}: ELF machine {e_machine} is not EM_BPF (247); compile with -target bpf")
    shoff, = struct.unpack_from("<Q", data, 40)
    shentsize, shnum = struct.unpack_from("<HH", data, 58)
    if shoff + shentsize * shnum > len(data):
        raise ObjectFormatError(f"{path}: truncated ELF file (section headers past the end); rebuild it")
    return data


def parse_object(path: str) -> BpfObject:
    """Parse ``path``; raises :class:`ObjectFormatError` with one clear
    message for anything that is not a loadable BPF object."""
    from .elfread import ElfFile

    data = _check_header(path)
    try:
        return _parse(path, ElfFile(data))
    except ObjectFormatError:
        raise
    except (struct.error, ValueError, IndexError, KeyError, OverflowError, RecursionError) as e:
        raise ObjectFormatError(f"{path}: malformed or truncated ELF object ({e}); rebuild it") from None


def _parse(path: str, elf) -> BpfObject:
    from .elfread import SHT_NOBITS, SHT_REL, SHT_RELA, SHT_SYMTAB

    sections: dict[str, Section] = {}
    by_index: dict[int, Section] = {}
    symtab = None
    for s in elf.sections[1:]:
        d = s.data()
        sec = Section(s.index, s.name, d, s.size, s.flags, s.type_name)
        if s.name in sections and s.type != SHT_NOBITS and s.size:
            raise ObjectFormatError(f"{path}: two sections named {s.name!r}; rebuild it")
        sections[s.name] = sec
        by_index[s.index] = sec
        if s.type == SHT_SYMTAB:
            symtab = s

    if symtab is None:
        raise ObjectFormatError(f"{path}: no .symtab; was the object stripped?")
    symbols = [Symbol(s.name, s.value, s.size, s.type, s.bind, s.shndx) for s in elf.symbols(symtab)]

    for s in elf.sections[1:]:
        if s.type in (SHT_REL, SHT_RELA):
            target = by_index.get(s.info)
            if target is None or not (target.flags & SHF_EXECINSTR):
                continue  # .rel.BTF etc.: ignored like libbpf
            for r_offset, sym_idx, r_type in elf.relocations(s):
                if sym_idx >= len(symbols):
                    raise ObjectFormatError(f"{path}: relocation in {s.name} refers to symbol {sym_idx}, "
                                            f"but .symtab has {len(symbols)}; rebuild it")
                target.relocations.append(Relocation(r_offset, r_type, symbols[sym_idx]))

    lic_sec = sections.get("license")
    license = lic_sec.data.split(b"\0", 1)[0].decode(errors="replace") if lic_sec else ""
    if not license:
        raise ObjectFormatError(f"{path}: no license section; add `license = \"GPL\"`")

    # pybpfgen metadata
    meta = None
    if ".pybpfgen" in sections:
        try:
            meta = json.loads(sections[".pybpfgen"].data.rstrip(b"\0").decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise ObjectFormatError(f"{path}: .pybpfgen section is not UTF-8 JSON ({e}); rebuild it") from None
        if not isinstance(meta, dict) or meta.get("format") != 1:
            raise ObjectFormatError(f"{path}: unsupported .pybpfgen format {meta.get('format') if isinstance(meta, dict) else meta!r}; "
                                    "rebuild with this version of pybpfgen")

    # functions and programs
    functions: list[Function] = []
    for sym in symbols:
        owner = by_index.get(sym.shndx)
        if sym.type == "STT_FUNC" and owner is not None and owner.flags & SHF_EXECINSTR:
            functions.append(Function(sym.name, owner.name, sym.value, sym.size))
    functions.sort(key=lambda f: (f.section, f.offset))

    meta_progs = (meta or {}).get("programs", {}) or {}
    programs: list[Program] = []
    for f in functions:
        if f.section == ".text":
            continue
        sec = sections[f.section]
        mp = meta_progs.get(f.name, {})
        if mp.get("type"):
            pt = by_name(mp["type"])
            if pt is None:
                raise ObjectFormatError(f"{path}: program {f.name}: unsupported type {mp['type']!r} in .pybpfgen")
        else:
            pt = by_section(f.section)
        if pt is None:
            raise ObjectFormatError(f"{path}: program {f.name} in section {f.section!r}: unsupported program type "
                                    f"(supported: {', '.join(p.section for p in PROG_TYPES.values())})")
        if f.size == 0 or f.size % 8 or f.end > len(sec.data):
            raise ObjectFormatError(f"{path}: program {f.name} has a bad size {f.size}; rebuild it")
        programs.append(Program(f.name, f.section, pt.name, pt.prog_type, pt.attach_type, pt.prog_flags, f.offset,
                                sec.data[f.offset:f.end], mp.get("attach_map"),
                                tuple(int(x) for x in mp.get("computed_returns", ()) if isinstance(x, int))))
    if not programs:
        raise ObjectFormatError(f"{path}: no BPF programs found")

    # BTF
    btf = btf_ext = None
    btf_raw = None
    if ".BTF" in sections:
        try:
            btf = Btf.parse(sections[".BTF"].data)
        except BtfError as e:
            raise ObjectFormatError(f"{path}: {e}") from None
        sizes = {s.name: s.size for s in sections.values()}
        offsets: dict[str, dict[str, int]] = {}
        for sym in symbols:
            owner = by_index.get(sym.shndx)
            if owner is not None and sym.type in ("STT_OBJECT", "STT_NOTYPE") and sym.name:
                offsets.setdefault(owner.name, {})[sym.name] = sym.value
        btf.fixup_datasecs(sizes, offsets)
        btf_raw = btf.to_bytes()
        if ".BTF.ext" in sections:
            try:
                btf_ext = BtfExt.parse(sections[".BTF.ext"].data, btf)
            except BtfError as e:
                raise ObjectFormatError(f"{path}: {e}") from None

    # maps
    maps: dict[str, MapDef] = {}
    if ".maps" in sections:
        if btf is None:
            raise ObjectFormatError(f"{path}: .maps section without .BTF; compile with debug info (-g)")
        msec = sections[".maps"]
        for sym in symbols:
            if sym.shndx == msec.index and sym.type in ("STT_OBJECT", "STT_NOTYPE") and sym.name:
                try:
                    d = btf.map_definition(sym.name)
                except BtfError as e:
                    raise ObjectFormatError(f"{path}: {e}") from None
                if not d["type"]:
                    raise ObjectFormatError(f"{path}: map {sym.name} has no type")
                if d["type"] in (MAP_SOCKMAP, MAP_SOCKHASH) and not d["value_size"]:
                    d["value_size"] = 4
                maps[sym.name] = MapDef(sym.name, d["type"], d["key_size"], d["value_size"], d["max_entries"],
                                        d["map_flags"], d["key_type_id"], d["value_type_id"], ".maps", sym.value)
    # global data sections → single-entry ARRAY maps
    for sec in sections.values():
        if DATA_SECTION_RE.match(sec.name) and sec.size > 0:
            is_ro = sec.name.startswith(".rodata")
            maps[sec.name] = MapDef(sec.name, 2, 4, sec.size, 1, 0x80 if is_ro else 0,
                                    section=sec.name, data=sec.data if sec.type != "SHT_NOBITS" else bytes(sec.size),
                                    freeze=is_ro, internal=True)

    # the sock map of sk_msg / sk_skb programs
    sock_maps = [m.name for m in maps.values() if m.type in (MAP_SOCKMAP, MAP_SOCKHASH)]
    for p in programs:
        if PROG_TYPES[p.kind].attach != "map":
            continue
        if p.attach_map:
            if p.attach_map not in maps or maps[p.attach_map].type not in (MAP_SOCKMAP, MAP_SOCKHASH):
                raise ObjectFormatError(f"{path}: program {p.name}: attach_map {p.attach_map!r} is not a "
                                        "SOCKMAP/SOCKHASH map of this object")
        elif len(sock_maps) == 1:
            p.attach_map = sock_maps[0]
        elif not sock_maps:
            raise ObjectFormatError(f"{path}: {p.kind} program {p.name} needs a SOCKHASH or SOCKMAP map to attach to")
        else:
            raise ObjectFormatError(f"{path}: {p.kind} program {p.name}: several sock maps ({', '.join(sock_maps)}); "
                                    "name one with attach_map in the .pybpfgen section")

    return BpfObject(path=os.path.abspath(path), name=object_name(path), license=license, programs=programs,
                     maps=maps, sections=sections, sections_by_index=by_index, functions=functions,
                     btf_raw=btf_raw, btf=btf, btf_ext=btf_ext, meta=meta)
