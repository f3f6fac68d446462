"""bpffs: detect/mount it, and the pin layout.

Layout under a pin root (default ``/sys/fs/bpf/pybpfgen``)::

    <pin_root>/<object>/maps/<map>     every map of the object
    <pin_root>/<object>/progs/<prog>   every program
    <pin_root>/<object>/links/<prog>   the bpf_link of each attached program

``<object>`` is the object file's name without ``.bpf.o``.  No path
component may contain '.' (bpffs refuses it with EPERM).
"""
from __future__ import annotations

import errno
import os

from . import syscall as _syscall
from .errors import LoaderError

BPFFS = "/sys/fs/bpf"
from .defaults import DEFAULT_PIN_ROOT as DEFAULT_PIN_ROOT  # noqa: E402  (re-exported: the pin layout's default)
BPFFS_MAGIC = 0xCAFE4A11
SUBDIRS = ("maps", "progs", "links")


def is_bpffs(path: str, sc=None) -> bool:
    sc = sc or _syscall.get_default()
    try:
        return sc.statfs_type(path) == BPFFS_MAGIC
    except OSError:
        return False


def _existing_ancestor(path: str) -> str:
    p = os.path.abspath(path)
    while not os.path.exists(p):
        parent = os.path.dirname(p)
        if parent == p:
            break
        p = parent
    return p


def ensure_bpffs(pin_root: str, sc=None, *, mount: bool = True) -> None:
    """Make sure ``pin_root`` is (or will be created) on a bpffs; mount bpffs
    at /sys/fs/bpf when that is where it should be and it is missing."""
    sc = sc or _syscall.get_default()
    pin_root = os.path.abspath(pin_root)
    anc = _existing_ancestor(pin_root)
    if is_bpffs(anc, sc):
        return
    under_default = pin_root == BPFFS or pin_root.startswith(BPFFS + "/")
    if under_default and mount:
        os.makedirs(BPFFS, exist_ok=True)
        if not is_bpffs(BPFFS, sc):
            try:
                sc.mount_bpffs(BPFFS)
            except OSError as e:
                if e.errno == errno.EPERM:
                    raise LoaderError(f"cannot mount bpffs at {BPFFS}: permission denied; run as root "
                                      f"or mount it first: mount -t bpf bpf {BPFFS}") from None
                raise LoaderError(f"cannot mount bpffs at {BPFFS}: {e.strerror}; "
                                  f"mount it by hand: mount -t bpf bpf {BPFFS}") from None
        if is_bpffs(_existing_ancestor(pin_root), sc):
            return
    raise LoaderError(f"pin root {pin_root} is not on a BPF filesystem; "
                      f"mount one (mount -t bpf bpf {BPFFS}) or choose a pin root under it")


def check_component(name: str) -> str:
    if not name or "." in name or "/" in name:
        raise LoaderError(f"invalid pin name {name!r}: bpffs names must be non-empty and contain no '.' or '/'")
    return name


def object_dir(pin_root: str, name: str) -> str:
    return os.path.join(pin_root, check_component(name))


def pin_path(pin_root: str, obj: str, kind: str, name: str) -> str:
    assert kind in SUBDIRS
    return os.path.join(object_dir(pin_root, obj), kind, check_component(name))


def list_objects(pin_root: str) -> list[str]:
    try:
        return sorted(e for e in os.listdir(pin_root) if os.path.isdir(os.path.join(pin_root, e)))
    except (FileNotFoundError, NotADirectoryError):
        return []


def list_pins(pin_root: str, obj: str, kind: str) -> list[str]:
    try:
        return sorted(os.listdir(os.path.join(pin_root, obj, kind)))
    except (FileNotFoundError, NotADirectoryError):
        return []
