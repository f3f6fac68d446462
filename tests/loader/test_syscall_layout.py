"""The cffi attr declarations match the 6.18 UAPI offsets (reference notes §2)."""
import pytest

from kernel_loader import syscall as S
from kernel_loader.errors import BpfSyscallError

ffi = S.ffi

LAYOUTS = {
    "struct map_create_attr": dict(map_type=0, key_size=4, value_size=8, max_entries=12, map_flags=16,
                                   inner_map_fd=20, numa_node=24, map_name=28, map_ifindex=44, btf_fd=48,
                                   btf_key_type_id=52, btf_value_type_id=56, btf_vmlinux_value_type_id=60,
                                   map_extra=64, value_type_btf_obj_fd=72, map_token_fd=76),
    "struct map_elem_attr": dict(map_fd=0, key=8, value=16, flags=24),
    "struct prog_load_attr": dict(prog_type=0, insn_cnt=4, insns=8, license=16, log_level=24, log_size=28,
                                  log_buf=32, kern_version=40, prog_flags=44, prog_name=48, prog_ifindex=64,
                                  expected_attach_type=68, prog_btf_fd=72, func_info_rec_size=76, func_info=80,
                                  func_info_cnt=88, line_info_rec_size=92, line_info=96, line_info_cnt=104,
                                  attach_btf_id=108, attach_prog_fd=112, core_relo_cnt=116, fd_array=120,
                                  core_relos=128, core_relo_rec_size=136, log_true_size=140, prog_token_fd=144,
                                  fd_array_cnt=148),
    "struct obj_pin_attr": dict(pathname=0, bpf_fd=8, file_flags=12, path_fd=16),
    "struct prog_attach_attr": dict(target_fd=0, attach_bpf_fd=4, attach_type=8, attach_flags=12,
                                    replace_bpf_fd=16, relative_fd=20, expected_revision=24),
    "struct info_attr": dict(bpf_fd=0, info_len=4, info=8),
    "struct prog_query_attr": dict(target_fd=0, attach_type=4, query_flags=8, attach_flags=12, prog_ids=16,
                                   prog_cnt=24, prog_attach_flags=32, link_ids=40, link_attach_flags=48,
                                   revision=56),
    "struct btf_load_attr": dict(btf=0, btf_log_buf=8, btf_size=16, btf_log_size=20, btf_log_level=24,
                                 btf_log_true_size=28, btf_flags=32, btf_token_fd=36),
    "struct link_create_attr": dict(prog_fd=0, target_fd=4, attach_type=8, flags=12, relative_fd=16,
                                    expected_revision=24),
    "struct test_run_attr": dict(prog_fd=0, retval=4, data_size_in=8, data_size_out=12, data_in=16, data_out=24,
                                 repeat=32, duration=36, ctx_size_in=40, ctx_size_out=44, ctx_in=48, ctx_out=56,
                                 flags=64, cpu=68, batch_size=72),
    "struct get_id_attr": dict(id=0, next_id=4, open_flags=8),
}


@pytest.mark.parametrize("struct_name", sorted(LAYOUTS))
def test_offsets(struct_name):
    for fieldname, off in LAYOUTS[struct_name].items():
        assert ffi.offsetof(struct_name, fieldname) == off, (struct_name, fieldname)


def test_attr_sizes_fit_union():
    for name in LAYOUTS:
        assert ffi.sizeof(name) <= 168


def test_new_attrs_are_zeroed():
    a = ffi.new("struct prog_load_attr *")
    assert bytes(ffi.buffer(a)) == bytes(ffi.sizeof("struct prog_load_attr"))


def test_syscall_numbers():
    assert S.syscall_number("x86_64") == 321
    assert S.syscall_number("aarch64") == 280
    with pytest.raises(OSError):
        S.syscall_number("sparc")


def test_error_carries_errno_name():
    e = BpfSyscallError("MAP_CREATE", 524)
    assert e.errno == 524 and e.errno_name == "ENOTSUPP" and "ENOTSUPP" in str(e)
    e = BpfSyscallError("PROG_LOAD", 13)
    assert e.errno_name == "EACCES" and "PROG_LOAD" in str(e)
    assert S.errno_name(28) == "ENOSPC"


def test_generated_cffi_module_is_current():
    """kernel_loader/_bpf_cffi.py matches _cdef.CDEF (else: python -m kernel_loader._build_cffi)."""
    from kernel_loader import _bpf_cffi
    assert S.ffi is _bpf_cffi.ffi, "stale kernel_loader/_bpf_cffi.py: run python -m kernel_loader._build_cffi"
