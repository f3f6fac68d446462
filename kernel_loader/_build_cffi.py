"""Regenerate ``kernel_loader/_bpf_cffi.py`` from ``_cdef.CDEF``::

    .venv/bin/python -m kernel_loader._build_cffi

cffi out-of-line ABI mode: no C compiler is involved; the output is a small
pure-Python module that ``syscall.py`` imports instead of parsing C at run
time.  tests/loader/test_syscall_layout.py fails when it is stale.
"""
from __future__ import annotations

import zlib
import os
import sys


def build(out_dir: str | None = None) -> str:
    from cffi import FFI

    from ._cdef import CDEF
    out_dir = out_dir or os.path.dirname(os.path.abspath(__file__))
    ffi = FFI()
    ffi.cdef(CDEF)
    ffi.set_source("_bpf_cffi", None)
    target = os.path.join(out_dir, "_bpf_cffi.py")
    ffi.emit_python_code(target)
    digest = f"{zlib.crc32(CDEF.encode()):08x}-{len(CDEF)}"     # cheap to check at import time
    with open(target, "a") as f:
        f.write(f"\nCDEF_DIGEST = {digest!r}   # written by kernel_loader/_build_cffi.py\n")
    return target


if __name__ == "__main__":
    print(build(sys.argv[1] if len(sys.argv) > 1 else None))
