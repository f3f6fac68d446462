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
    return attach_sock_map(sc, prog_fd, map_fd, map_name, "sk_msg")


def attach_sock_map(sc, prog_fd: int, map_fd: int, map_name: str, kind: str) -> int:
    """LINK_CREATE(sockmap/sockhash fd, the attach type of program type ``kind``: sk_msg verdict, sk_skb stream
    parser or verdict) (Linux 6.10+); returns the link fd."""
    try:
        return sc.link_create(prog_fd, map_fd, PROG_TYPES[kind].attach_type)
    except BpfSyscallError as e:
        if e.errno in (errno.EINVAL, errno.EOPNOTSUPP, 524):
            raise LoaderError(f"cannot attach {kind} program to map {map_name}: {e.errno_name}; "
                              "sock map links need Linux 6.10 or newer") from e
        if e.errno == errno.EBUSY:
            raise LoaderError(f"cannot attach {kind} program to map {map_name}: another program is "
                              "already attached (EBUSY)") from e
        raise LoaderError(f"cannot attach {kind} program to map {map_name}: {e.errno_name}") from e


# the bpf_link type (kinfo.LINK_TYPE) of a program attached to a network interface, by BPF program type
NETDEV_LINK_TYPES = {6: "xdp", 3: "tcx"}


def ifindex_of(ifname: str) -> int:
    """The index of network interface ``ifname`` in this process's network namespace."""
    import socket
    try:
        return socket.if_nametoindex(ifname)
    except OSError:
        raise LoaderError(f"no network interface {ifname!r} in this network namespace; `ip link` lists them "
                          "(pass one with --ifname)") from None


def attach_netdev(sc, prog_fd: int, ifindex: int, ifname: str, kind: str) -> int:
    """LINK_CREATE(target_ifindex, BPF_XDP / BPF_TCX_INGRESS / BPF_TCX_EGRESS); returns the link fd."""
    pt = PROG_TYPES[kind]
    try:
        return sc.link_create(prog_fd, ifindex, pt.attach_type)
    except BpfSyscallError as e:
        what = f"cannot attach {kind} program to interface {ifname}"
        if e.errno == errno.EPERM:
            raise LoaderError(f"{what}: permission denied; {PERMISSION_HINT}") from e
        if e.errno == errno.ENODEV:
            raise LoaderError(f"{what}: the interface is gone (ENODEV)") from e
        if e.errno in (errno.EBUSY, errno.EEXIST) and pt.prog_type == 6:
            raise LoaderError(f"{what}: another XDP program is attached to it ({e.errno_name}); an interface runs "
                              f"one XDP program: detach it (`ip link set dev {ifname} xdp off`, or "
                              "`pybpfgen unload` of the object that attached it)") from e
        if e.errno in (errno.EINVAL, errno.EOPNOTSUPP, 524) and pt.prog_type == 3:
            raise LoaderError(f"{what}: {e.errno_name}; tcx links need Linux 6.6 or newer") from e
        raise LoaderError(f"{what}: {e.errno_name}") from e
