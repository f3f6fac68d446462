"""Kernel info structs (bpf_prog_info, bpf_map_info, bpf_link_info) come from the kernel's BTF: the generated
table matches the running kernel, and the records read from real objects agree with the tests' independent
decoder (tests/kernel/kharness.py) and with what the objects are."""
import os
import struct
import sys

import pytest

import kernel_loader as kl
from kernel_loader import kinfo
from kernel_loader.syscall import Syscall
from pybpfgen.target import gen_kinfo, kinfo_layout
from pybpfgen.target.progtypes import PROG_TYPES

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(__file__)), "kernel"))
import kharness as kh  # noqa: E402

VMLINUX = "/sys/kernel/btf/vmlinux"


def test_generated_layout_is_the_running_kernels():
    if not os.path.exists(VMLINUX):
        pytest.fail(f"{VMLINUX} is missing: the kernel has no BTF (CONFIG_DEBUG_INFO_BTF)")
    assert gen_kinfo.main(["--check", "--btf", VMLINUX]) == 0, "run python -m pybpfgen.target.gen_kinfo"


def test_link_info_decodes_each_link_kind_from_its_union_member():
    def buf(ltype, a, b=0, wide=False):
        raw = bytearray(kinfo.LINK_INFO_SIZE)
        struct.pack_into("<III", raw, 0, ltype, 7, 9)
        if wide:
            struct.pack_into("<QI", raw, 16, a, b)
        else:
            struct.pack_into("<II", raw, 16, a, b)
        return bytes(raw)

    T = kinfo.LINK_TYPE
    cg = kinfo.LinkInfo.from_bytes(buf(T["cgroup"], 1234, 3, wide=True))
    assert (cg.cgroup_id, cg.attach_type, cg.target_kind, cg.attached) == (1234, 3, "cgroup", True)
    sm = kinfo.LinkInfo.from_bytes(buf(T["sockmap"], 55, PROG_TYPES["sk_msg"].attach_type))
    assert (sm.map_id, sm.attach_type_name, sm.target_kind) == (55, "sk_msg_verdict", "map")
    xdp = kinfo.LinkInfo.from_bytes(buf(T["xdp"], 0))
    assert (xdp.target_kind, xdp.attached) == ("ifindex", False)  # a detached XDP link reads ifindex 0
    other = kinfo.LinkInfo.from_bytes(buf(T["tracing"], 1))
    assert (other.type_name, other.target_kind, other.attached) == ("tracing", None, True)
    # a short buffer (an older kernel fills less): the missing fields read 0
    assert kinfo.ProgInfo.from_bytes(b"\x0d\0\0\0\x05\0\0\0").id == 5


def test_no_hand_written_offsets_in_the_loader():
    """The loader decodes info structs through kinfo only (struct.unpack on an *_info buffer is gone)."""
    import re
    root = os.path.dirname(kl.__file__)
    bad = []
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            if f.endswith(".py"):
                text = open(os.path.join(dirpath, f)).read()
                for m in re.finditer(r"unpack_from\([^)]*sc\.(prog|map|link)_info", text):
                    bad.append(f"{f}: {m.group(0)}")
    assert not bad, bad
    assert kinfo.PROG_INFO_SIZE == kinfo_layout.PROG_INFO_SIZE


@pytest.mark.kernel
def test_records_of_a_loaded_object_agree_with_an_independent_decoder(accel_object, pin_root, test_cgroup):
    (loaded,) = kl.load(accel_object, cgroup=str(test_cgroup), pin_root=str(pin_root))
    sc = Syscall()
    try:
        for name, lp in loaded.programs.items():
            fd = sc.obj_get(os.path.join(loaded.pin_dir, "progs", name))
            try:
                ours, theirs = kinfo.prog_info(sc, fd), kh.prog_info(fd)
            finally:
                os.close(fd)
            assert (ours.id, ours.type, ours.name) == (theirs.id, theirs.type, theirs.name[:15]) == \
                (lp.id, PROG_TYPES[lp.type].prog_type, name[:15])
            assert ours.verified_insns > 0 and ours.xlated_insns > 0 and len(ours.tag) == 16
            if lp.link_pin:
                lfd = sc.obj_get(lp.link_pin)
                try:
                    li = kinfo.link_info(sc, lfd)
                finally:
                    os.close(lfd)
                assert (li.id, li.prog_id) == (lp.link_id, lp.id) and li.attached
                if li.target_kind == "cgroup":
                    assert li.cgroup_id == os.stat(test_cgroup).st_ino
                    assert li.attach_type == PROG_TYPES[lp.type].attach_type
        for mname in os.listdir(os.path.join(loaded.pin_dir, "maps")):
            fd = sc.obj_get(os.path.join(loaded.pin_dir, "maps", mname))
            try:
                ours_m, theirs_m = kinfo.map_info(sc, fd), kh.map_info(fd)
            finally:
                os.close(fd)
            assert (ours_m.id, ours_m.type, ours_m.key_size, ours_m.value_size, ours_m.max_entries, ours_m.name) == \
                (theirs_m.id, theirs_m.type, theirs_m.key_size, theirs_m.value_size, theirs_m.max_entries,
                 theirs_m.name)
    finally:
        kl.unload(loaded.name, pin_root=str(pin_root))
