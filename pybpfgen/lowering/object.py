"""LLVM IR → optimised BPF ELF object, in-process (llvmlite's bundled LLVM, ``bpfel`` target)."""
from __future__ import annotations

import functools

import llvmlite.binding as llvm
import llvmlite.ir as ir

DEFAULT_CPU = "v3"


@functools.lru_cache(maxsize=None)
def _initialised() -> bool:
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    return True


@functools.lru_cache(maxsize=None)
def target_machine(cpu: str = DEFAULT_CPU, opt: int = 2):
    _initialised()
    target = llvm.Target.from_triple("bpfel")
    return target.create_target_machine(cpu=cpu, opt=opt, reloc="static", codemodel="small")


def optimise(mod, opt: int = 2, cpu: str = DEFAULT_CPU) -> None:
    if opt <= 0:
        return
    tm = target_machine(cpu, opt)
    pto = llvm.create_pipeline_tuning_options(speed_level=opt)
    pb = llvm.create_pass_builder(tm, pto)
    pb.getModulePassManager().run(mod, pb)


def parse(module: ir.Module):
    _initialised()
    mod = llvm.parse_assembly(str(module))
    mod.verify()
    return mod


def emit_object(module: ir.Module, opt: int = 2, cpu: str = DEFAULT_CPU) -> bytes:
    mod = parse(module)
    optimise(mod, opt, cpu)
    return target_machine(cpu, opt).emit_object(mod)


def emit_assembly(module: ir.Module, opt: int = 2, cpu: str = DEFAULT_CPU) -> str:
    mod = parse(module)
    optimise(mod, opt, cpu)
    return target_machine(cpu, opt).emit_assembly(mod)


def optimised_ir(module: ir.Module, opt: int = 2, cpu: str = DEFAULT_CPU) -> str:
    mod = parse(module)
    optimise(mod, opt, cpu)
    return str(mod)


class BackendError(Exception):
    """LLVM's BPF backend refused the program (it reports errors by exiting the process)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def emit_object_guarded(module: ir.Module, opt: int = 2, cpu: str = DEFAULT_CPU) -> bytes:
    """:func:`emit_object` in an LLVM worker (:mod:`.worker`), so that an LLVM fatal error (the BPF
    backend calls ``exit(1)`` for e.g. an exceeded stack limit) becomes a :class:`BackendError` with
    LLVM's message instead of ending this process."""
    from .worker import compile_ir

    if cpu != DEFAULT_CPU:
        raise ValueError(f"the LLVM worker targets -mcpu={DEFAULT_CPU}")
    obj, _, err = compile_ir(str(module), opt)
    if obj is None:
        raise BackendError(err or "LLVM code generation failed")
    return obj
