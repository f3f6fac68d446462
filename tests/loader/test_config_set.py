"""`pybpfgen load --set NAME=VALUE`: a DSL Config is set before load and the program sees it."""
import os
import struct
import textwrap

import pytest

import kernel_loader as kl
from kernel_loader.config import apply, parse_assignments, rodata_variables
from kernel_loader.elf import parse_object
from kernel_loader.errors import LoaderError
from kernel_loader.syscall import Syscall
from pybpfgen.driver import compile_file

SRC = textwrap.dedent("""
    from pybpfgen.lang import *

    class Args(Struct):
        limit: u32
        offset: i16

    limit = Config(u32, 100)
    offset = Config(i16, -3)

    @syscall
    def read_config(ctx: Args) -> int:
        ctx.limit = limit.value
        ctx.offset = offset.value
        return 0
""")


@pytest.fixture
def config_object(tmp_path):
    src = tmp_path / "cfg.py"
    src.write_text(SRC)
    return compile_file(str(src), str(tmp_path)).output


def test_rodata_variables_come_from_btf(config_object):
    obj = parse_object(config_object)
    assert rodata_variables(obj) == {"limit": (0, 4, False), "offset": (4, 2, True)}


def test_apply_patches_rodata_and_checks_names_and_ranges(config_object):
    obj = parse_object(config_object)
    apply([obj], {"limit": 7, "offset": -100})
    assert struct.unpack_from("<Ih", obj.maps[".rodata"].data) == (7, -100)
    with pytest.raises(LoaderError, match="no Config named 'nope'.*Configs: limit, offset"):
        apply([obj], {"nope": 1})
    with pytest.raises(LoaderError, match="out of range for a 16-bit signed Config"):
        apply([obj], {"offset": 40000})
    with pytest.raises(LoaderError, match="NAME=VALUE"):
        parse_assignments(["limit"])
    assert parse_assignments(["limit=0x10", "offset=-2"]) == {"limit": 16, "offset": -2}


@pytest.mark.kernel
def test_the_program_sees_the_value_set_at_load(config_object, pin_root):
    kl.load(config_object, pin_root=pin_root, config={"limit": 12345, "offset": -7})
    try:
        sc = Syscall()
        fd = sc.obj_get(os.path.join(pin_root, "cfg", "progs", "read_config"))
        try:
            rv, out = sc.prog_test_run(fd, ctx=bytes(8))
        finally:
            os.close(fd)
        assert rv == 0 and struct.unpack_from("<Ih", out) == (12345, -7)
    finally:
        kl.unload("cfg", pin_root=pin_root)
