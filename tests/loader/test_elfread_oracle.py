"""Our ELF reader (kernel_loader/elfread.py, used on the load path because importing pyelftools costs more
than bpftool's whole load sequence) must read every object exactly as pyelftools does."""
import os

import pytest
from elftools.elf.elffile import ELFFile
from elftools.elf.relocation import RelocationSection

from kernel_loader.elfread import ElfFile
from pybpfgen.driver import compile_file

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOURCES = [os.path.join(REPO, "programs", "accel.py"), os.path.join(REPO, "bench", "twin", "accel_twin.py")]


@pytest.fixture(scope="module")
def objects(tmp_path_factory, twin_object):
    out = tmp_path_factory.mktemp("oracle")
    objs = [compile_file(src, str(out)).output for src in SOURCES]
    return objs + [twin_object]  # and one built by clang


def test_sections_symbols_and_relocations_match_pyelftools(objects):
    for path in objects:
        data = open(path, "rb").read()
        ours = ElfFile(data)
        with open(path, "rb") as f:
            ref = ELFFile(f)
            ref_secs = list(ref.iter_sections())
            assert [s.name for s in ours.sections] == [s.name for s in ref_secs], path
            for o, r in zip(ours.sections, ref_secs):
                assert (o.size, o.flags, o.link, o.info) == (r["sh_size"], r["sh_flags"], r["sh_link"], r["sh_info"])
                assert o.data() == (b"" if r["sh_type"] == "SHT_NOBITS" else r.data()), (path, o.name)
                if r["sh_type"] == "SHT_SYMTAB":
                    got = [(s.name, s.value, s.size, s.type, s.bind, s.shndx) for s in ours.symbols(o)]
                    want = [(s.name, s["st_value"], s["st_size"], s["st_info"]["type"], s["st_info"]["bind"],
                             s["st_shndx"] if isinstance(s["st_shndx"], int) else 0) for s in r.iter_symbols()]
                    assert got == want, path
                if isinstance(r, RelocationSection):
                    got = ours.relocations(o)
                    want = [(x["r_offset"], x["r_info_sym"], x["r_info_type"]) for x in r.iter_relocations()]
                    assert got == want, (path, o.name)
