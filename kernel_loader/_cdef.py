"""The cffi declarations of the bpf(2) attr structs (6.18 UAPI offsets, checked by
tests/loader/test_syscall_layout.py).

``_build_cffi.py`` turns them into ``_bpf_cffi.py`` (cffi "out-of-line ABI mode": a
generated pure-Python module, no C compiler), so that importing the loader does not
parse C with pycparser at run time (about 45 ms).  ``syscall.py`` falls back to an
in-line ``ffi.cdef(CDEF)`` when the generated module is missing or stale.
"""
CDEF = """
    long syscall(long number, ...);
    int statfs(const char *path, void *buf);
    int mount(const char *source, const char *target, const char *fstype,
              unsigned long flags, const void *data);

    struct map_create_attr {
        uint32_t map_type, key_size, value_size, max_entries, map_flags;
        uint32_t inner_map_fd, numa_node;
        char map_name[16];
        uint32_t map_ifindex, btf_fd, btf_key_type_id, btf_value_type_id;
        uint32_t btf_vmlinux_value_type_id;
        uint64_t map_extra;
        uint32_t value_type_btf_obj_fd, map_token_fd;
    };
    struct map_elem_attr {
        uint32_t map_fd; uint32_t _pad0;
        uint64_t key; uint64_t value; uint64_t flags;
    };
    struct prog_load_attr {
        uint32_t prog_type, insn_cnt;
        uint64_t insns, license;
        uint32_t log_level, log_size;
        uint64_t log_buf;
        uint32_t kern_version, prog_flags;
        char prog_name[16];
        uint32_t prog_ifindex, expected_attach_type, prog_btf_fd, func_info_rec_size;
        uint64_t func_info;
        uint32_t func_info_cnt, line_info_rec_size;
        uint64_t line_info;
        uint32_t line_info_cnt, attach_btf_id, attach_prog_fd, core_relo_cnt;
        uint64_t fd_array, core_relos;
        uint32_t core_relo_rec_size, log_true_size, prog_token_fd, fd_array_cnt;
    };
    struct obj_pin_attr {
        uint64_t pathname;
        uint32_t bpf_fd, file_flags;
        int32_t path_fd; uint32_t _pad0;
    };
    struct prog_attach_attr {
        uint32_t target_fd, attach_bpf_fd, attach_type, attach_flags;
        uint32_t replace_bpf_fd, relative_fd;
        uint64_t expected_revision;
    };
    struct get_id_attr {
        uint32_t id, next_id, open_flags;
    };
    struct info_attr {
        uint32_t bpf_fd, info_len;
        uint64_t info;
    };
    struct prog_query_attr {
        uint32_t target_fd, attach_type, query_flags, attach_flags;
        uint64_t prog_ids;
        uint32_t prog_cnt; uint32_t _pad0;
        uint64_t prog_attach_flags, link_ids, link_attach_flags, revision;
    };
    struct btf_load_attr {
        uint64_t btf, btf_log_buf;
        uint32_t btf_size, btf_log_size, btf_log_level, btf_log_true_size;
        uint32_t btf_flags, btf_token_fd;
    };
    struct link_create_attr {
        uint32_t prog_fd, target_fd, attach_type, flags;
        uint32_t relative_fd; uint32_t _pad0;
        uint64_t expected_revision;
    };
    struct fd_attr {
        uint32_t fd;
    };
    struct link_update_attr {
        uint32_t link_fd, new_prog_fd, flags, old_prog_fd;
    };
    struct test_run_attr {
        uint32_t prog_fd, retval, data_size_in, data_size_out;
        uint64_t data_in, data_out;
        uint32_t repeat, duration, ctx_size_in, ctx_size_out;
        uint64_t ctx_in, ctx_out;
        uint32_t flags, cpu, batch_size; uint32_t _pad0;
    };
"""
