"""Attach programs with bpf_links."""
from __future__ import annotations

import errno
import os

from .errors import BpfSyscallError, LoaderError, PERMISSION_HINT

from pybpfgen.target.progtypes import ATTACH_TYPE_NAMES, PROG_TYPES  # noqa: F401  (the shared table)

ATTACH_CGROUP_SOCK_OPS = PROG_TYPES["sock_ops"].attach_type
ATTACH_SK_MSG_VERDICT = PROG_TYPES["sk_msg"].attach_type
from .kinfo import LINK_TYPE_NAMES  # noqa: E402,F401  (generated from the kernel's BTF: enum bpf_link_type)


def attach_sock_ops(sc, prog_fd: int, cgroup_dir: str) -> int:
    """LINK_CREATE(cgroup fd, BPF_CGROUP_SOCK_OPS); returns the link fd."""
    return attach_cgroup(sc, prog_fd, cgroup_dir, "sock_ops")


def attach_cgroup(sc, prog_fd: int, cgroup_dir: str, kind: str) -> int:
    """LINK_CREATE(cgroup fd, the attach type of program type ``kind``); returns the link fd."""
    try:
        cg_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        raise LoaderError(f"cgroup {cgroup_dir} does not exist; pass an existing cgroup v2 directory with --cgroup") from None
    except NotADirectoryError:
        raise LoaderError(f"cgroup {cgroup_dir} is not a directory; pass a cgroup v2 directory with --cgroup") from None
    try:
        return sc.link_create(prog_fd, cg_fd, PROG_TYPES[kind].attach_type)
    except BpfSyscallError as e:
        if e.errno == errno.EPERM:
            raise LoaderError(f"cannot attach to cgroup {cgroup_dir}: permission denied; {PERMISSION_HINT}") from e
        if e.errno == errno.EBADF:
            raise LoaderError(f"cannot attach to {cgroup_dir}: not a cgroup v2 directory; pass one with --cgroup") from e
        raise LoaderError(f"cannot attach {kind} program to cgroup {cgroup_dir}: {e.errno_name}") from e
    finally:
        os.close(cg_fd)


def attach_sk_msg(sc, prog_fd: int, map_fd: int, map_name: str = "") -> int:
    """LINK_CREATE(sockmap fd, BPF_SK_MSG_VERDICT) (Linux 6.10+); returns the link fd."""
    try:
        return sc.link_create(prog_fd, map_fd, ATTACH_SK_MSG_VERDICT)
    except BpfSyscallError as e:
        if e.errno in (errno.EINVAL, errno.EOPNOTSUPP, 524):
            raise LoaderError(f"cannot attach sk_msg program to map {map_name}: {e.errno_name}; "
                              "sk_msg links need Linux 6.10 or newer") from e
        if e.errno == errno.EBUSY:
            raise LoaderError(f"cannot attach sk_msg program to map {map_name}: another program is "
                              "already attached (EBUSY)") from e
        raise LoaderError(f"cannot attach sk_msg program to map {map_name}: {e.errno_name}") from e
