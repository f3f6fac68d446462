"""Error types.

* :class:`LoaderError` is user-facing: its message is one line saying what
  failed, why, and what to do.  ``pybpfgen/cli.py`` prints it as
  ``pybpfgen: error: <msg>`` and exits 1.
* :class:`BpfSyscallError` is internal: a failed ``bpf(2)`` command with its
  errno.  The manager translates the ones a user can act on (EPERM, ...) into
  :class:`LoaderError`.
"""
from __future__ import annotations

import errno as _errno
import os

ENOTSUPP = 524


def _errno_name(err: int) -> str:
    if err == ENOTSUPP:
        return "ENOTSUPP"
    return _errno.errorcode.get(err, f"E{err}")


class LoaderError(Exception):
    """A failure the user can act on; ``str()`` is the one-line message."""


class ObjectFormatError(LoaderError):
    """The file is not a BPF object we can load (missing, not ELF, ...)."""


class BpfSyscallError(OSError):
    """``bpf(2)`` command ``cmd`` failed with ``errno``.

    ``log`` / ``log_true_size`` are filled for PROG_LOAD and BTF_LOAD.
    """

    def __init__(self, cmd: str, err: int, detail: str = ""):
        self.cmd = cmd
        self.errno_name = _errno_name(err)
        self.log = ""
        self.log_true_size = 0
        msg = "Unknown error 524 (ENOTSUPP)" if err == ENOTSUPP else os.strerror(err)
        text = f"bpf({cmd}) failed: {self.errno_name}: {msg}"
        if detail:
            text += f" ({detail})"
        super().__init__(err, text)

    def __str__(self) -> str:  # OSError's default str is "[Errno n] ..."
        assert self.strerror is not None  # OSError(err, text) in __init__ set it to the text
        return self.strerror


PERMISSION_HINT = ("loading BPF programs needs root (or CAP_BPF, CAP_NET_ADMIN and CAP_PERFMON); "
                   "run it with sudo")


class BtfLoadError(LoaderError):
    """The kernel refused an object's BTF; ``.log`` is the kernel's BTF log."""

    def __init__(self, path: str, err: "BpfSyscallError", log: str):
        self.path = path
        self.errno = err.errno
        self.errno_name = err.errno_name
        self.log = log or ""
        lines = [ln.strip() for ln in self.log.splitlines() if ln.strip()]
        why = lines[-1] if lines else "no BTF log"
        super().__init__(f"{path}: the kernel rejected the object's BTF ({self.errno_name}): {why}; rebuild the "
                         "object with this pybpfgen (or a clang matching the kernel), run with -v for the "
                         "kernel's BTF log")


class PinOwnershipError(LoaderError):
    """A pin path we would use belongs to something else."""
