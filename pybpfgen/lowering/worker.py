"""LLVM in a child process: the one way pybpfgen runs LLVM's code generation.

The BPF backend reports some errors by calling ``exit(1)`` (an exceeded stack limit, an unsupported
construct), which would end the compiler; and loading LLVM costs ~40-60 ms that can overlap the frontend.
So LLVM always runs in a forked child: :class:`LLVMWorker` (the driver keeps one for a whole build;
:func:`compile_ir` starts one for one module).

Imports nothing heavy: the child imports llvmlite, the parent never does.
"""
from __future__ import annotations

import json
import os
import sys


class LLVMWorker:
    """LLVM in a forked child process, started *before* the frontend is imported.

    The child imports llvmlite's LLVM binding and initialises the BPF target (~40-60 ms) while the
    parent imports the frontend, checks the module and builds the IR text, so the two overlap; the
    parent itself never loads LLVM. Requests (IR text, optimisation level) and replies (the object, and
    the optimised IR with ``emit_llvm``) travel over pipes, length-prefixed. As with
    before, an LLVM fatal error (the BPF backend calls
    ``exit(1)``, e.g. for an exceeded stack limit) only ends the child: its stderr becomes the error
    message, and the next request starts a new child.
    """

    def __init__(self) -> None:
        self.pid: int | None = None
        self.to_child = self.from_child = -1
        self.err_path: str | None = None

    def __enter__(self) -> LLVMWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    def start(self) -> None:
        if self.pid is not None:
            return
        import tempfile

        fd, self.err_path = tempfile.mkstemp(prefix="pybpfgen-llvm-", suffix=".err")
        os.close(fd)
        req_r, req_w = os.pipe()
        rep_r, rep_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # child
            code = 0
            try:
                os.close(req_w)
                os.close(rep_r)
                efd = os.open(self.err_path, os.O_WRONLY | os.O_TRUNC)
                os.dup2(efd, 2)
                os.close(efd)
                _serve(req_r, rep_w)
            except BaseException as e:  # noqa: BLE001 - reported through stderr
                os.write(2, f"internal: {type(e).__name__}: {e}\n".encode())
                code = 1
            finally:
                os._exit(code)
        os.close(req_r)
        os.close(rep_w)
        self.pid, self.to_child, self.from_child = pid, req_w, rep_r

    def compile(self, ir_text: str, opt: int, emit_llvm: bool) -> tuple[bytes | None, str | None, str | None]:
        """(object, optimised IR or None, error message or None)."""
        self.start()
        try:
            _send(self.to_child, json.dumps({"opt": opt, "ll": emit_llvm}).encode())
            _send(self.to_child, ir_text.encode())
            status = _recv(self.from_child)
            if status is not None:
                obj = _recv(self.from_child)
                ll = _recv(self.from_child) if emit_llvm else None
                if status == b"ok" and obj is not None:
                    return obj, (ll.decode() if ll is not None else None), None
                return None, None, (obj or b"").decode(errors="replace") or "LLVM code generation failed"
        except (BrokenPipeError, OSError):
            pass
        # the child died (an LLVM fatal error): its stderr says why
        self.close()
        try:
            with open(self.err_path or "", errors="replace") as f:
                err = f.read().strip()
        except OSError:
            err = ""
        self._unlink()
        return None, None, err or "LLVM code generation failed (the LLVM process ended)"

    def close(self) -> None:
        if self.pid is None:
            return
        for fd in (self.to_child, self.from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass
        self.pid = None

    def _unlink(self) -> None:
        if self.err_path:
            try:
                os.unlink(self.err_path)
            except OSError:
                pass
            self.err_path = None

    def shutdown(self) -> None:
        self.close()
        self._unlink()


def _send(fd: int, data: bytes) -> None:
    msg = len(data).to_bytes(8, "little") + data
    view = memoryview(msg)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks = []
    while n:
        b = os.read(fd, min(n, 1 << 20))
        if not b:
            return None
        chunks.append(b)
        n -= len(b)
    return b"".join(chunks)


def _recv(fd: int) -> bytes | None:
    head = _read_exact(fd, 8)
    if head is None:
        return None
    return _read_exact(fd, int.from_bytes(head, "little"))


def _serve(req: int, rep: int) -> None:
    """The worker's loop: load LLVM now (overlapping the parent's frontend), then serve requests."""
    from . import object as llvm_object

    llvm_object._initialised()
    llvm_object.target_machine(llvm_object.DEFAULT_CPU, 2)
    while True:
        head = _recv(req)
        if head is None:
            return
        text = _recv(req)
        if text is None:
            return
        opts = json.loads(head)
        try:
            obj = llvm_object.emit_object(text.decode(), opt=opts["opt"])
            ll = llvm_object.optimised_ir(text.decode(), opt=opts["opt"]) if opts["ll"] else None
        except Exception as e:  # noqa: BLE001 - e.g. invalid IR: a pybpfgen bug, reported as internal
            _send(rep, b"err")
            _send(rep, f"internal: {type(e).__name__}: {e}".encode())
            if opts["ll"]:
                _send(rep, b"")
            continue
        _send(rep, b"ok")
        _send(rep, obj)
        if opts["ll"]:
            _send(rep, (ll or "").encode())


def compile_ir(ir_text: str, opt: int = 2, emit_llvm: bool = False) -> tuple[bytes | None, str | None, str | None]:
    """One module through a worker of its own: (object, optimised IR or None, error message or None)."""
    w = LLVMWorker()
    try:
        return w.compile(ir_text, opt, emit_llvm)
    finally:
        w.shutdown()
