"""The ``pybpfgen`` command line.

Exit codes: 0 success; 1 user error (bad DSL code, a rejected program, a missing
file, ...); 2 bad command-line usage; 70 internal error (a bug in pybpfgen).

``pybpfgen compile`` imports the compiler only when a module must be rebuilt (a no-op
rebuild reads a few hashes and exits); ``pybpfgen load`` and the other loader commands
never import llvmlite.
"""
from __future__ import annotations

import os
import sys
import time
from types import ModuleType, SimpleNamespace

from . import __version__

TYPE_CHECKING = False  # typing is not imported at run time (start-up time of every command)

if TYPE_CHECKING:
    import argparse

EXIT_USER = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70


def cmd_compile(args) -> int:
    # Imported here so that `pybpfgen load` never imports the compiler (the driver itself is light:
    # it imports the frontend and llvmlite only for a module that must be rebuilt).
    from .driver import BuildCache, LLVMWorker, check_file, compile_file, find_sources, read_sources

    t0 = time.perf_counter()
    try:
        sources = find_sources(args.paths)
    except FileNotFoundError as e:
        print(f"pybpfgen: error: no such file or directory: {e.args[0]}", file=sys.stderr)
        return EXIT_USER
    if not sources:
        print(f"pybpfgen: error: no BPF modules found in {' '.join(args.paths)}\n"
              "hint: a BPF module is a .py file that imports pybpfgen.lang", file=sys.stderr)
        return EXIT_USER
    outdir, object_name = args.output, None
    if args.output.endswith(".o") and not os.path.isdir(args.output):  # -o x.bpf.o: that file, not a directory
        if len(sources) != 1:
            print(f"pybpfgen: error: -o {args.output} names one object file, but {len(sources)} BPF modules were "
                  f"found in {' '.join(args.paths)}\nhint: give an output directory (-o build/): each module becomes "
                  "<module>.bpf.o in it", file=sys.stderr)
            return EXIT_USER
        outdir, object_name = os.path.dirname(args.output), os.path.basename(args.output)  # outdir "": here
    failed = 0
    # no build cache next to a named object file (it would litter that directory, often the current one)
    cache = None if args.check or object_name else BuildCache(outdir)
    worker = None if args.check else LLVMWorker()  # forked only when a module must be rebuilt
    try:
        for src in sources:
            if args.check:
                r = check_file(src)
            else:
                r = compile_file(src, outdir, opt=args.opt, emit_llvm=args.emit_llvm, cache=cache,
                                 force=args.force, worker=worker, object_name=object_name)
            if r.diagnostics:
                srcs = read_sources([r])
                for d in r.diagnostics:
                    print(d.format(srcs), file=sys.stderr)
            if r.failed:
                failed += 1
                continue
            if not args.quiet:
                if args.check:
                    print(f"checked {src}")
                elif r.up_to_date:
                    print(f"up to date: {r.output or src}")
                elif r.output:
                    extra = f" (+ {r.llvm_ir})" if r.llvm_ir else ""
                    print(f"compiled {src} -> {r.output}{extra}")
            if args.timings:
                for phase, dt in r.timings.items():
                    print(f"  {phase:>16}: {dt * 1000:7.1f} ms", file=sys.stderr)
            if args.asm and r.output:
                from .disasm import disassemble_object
                sys.stdout.write(disassemble_object(r.output))
                sys.stdout.flush()
    finally:
        if worker is not None:
            worker.shutdown()
        if cache is not None:
            cache.save()
    if args.timings:
        print(f"  {'total (in main)':>16}: {(time.perf_counter() - t0) * 1000:7.1f} ms", file=sys.stderr)
    if failed:
        print(f"pybpfgen: {failed} module(s) failed to {'check' if args.check else 'compile'}", file=sys.stderr)
        return EXIT_USER
    return 0


def cmd_disasm(args) -> int:
    from .disasm import disassemble_object

    for i, path in enumerate(args.objects):
        if i:
            print()
        sys.stdout.write(disassemble_object(path, source_lines=not args.no_source, raw=not args.no_raw))
    return 0


def build_parser(loader: bool = True, only: str | None = None) -> "argparse.ArgumentParser":
    """The parser; ``loader=False`` leaves out the loader's subcommands (registered by
    ``kernel_loader.cli.register``), which saves importing the loader for ``compile``/``disasm``;
    ``only``: just that subcommand (what ``main`` builds for a known command: each subcommand costs
    argparse about a millisecond, a tenth of a ``pybpfgen unload``)."""
    import argparse

    loader_cli: ModuleType | None = None
    if loader:
        try:
            from kernel_loader import cli as loader_cli
        except ImportError:  # pragma: no cover - the loader ships in the same distribution
            loader_cli = None
    commands = dict(COMPILER_COMMANDS)
    if loader_cli is not None:
        commands.update(loader_cli.COMMANDS)
        if only not in commands:  # a plugin's command (or help, or a mistake): the plugins' commands too
            from kernel_loader import plugins
            commands.update(plugins.commands(commands))
    if only not in commands:
        only = None  # unknown or no command: the full parser, whose error or help lists them all

    p = argparse.ArgumentParser(prog="pybpfgen", description="Compile Python BPF programs and load them.")
    p.add_argument("--version", action="version", version=f"pybpfgen {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    for name, add in commands.items():
        if only is None or only == name:
            add(sub)
    return p


# compile's options, declared once: argparse is built from this table, and so is the fast path that parses a
# plain `pybpfgen compile` command line without argparse (see fast_compile_args).
# (flags, dest, kind: "flag" | "value" | "level", default, help; None help: hidden)
_COMPILE_OPTIONS: list[tuple[tuple[str, ...], str, str, object, str | None]] = [
    (("-o", "--output"), "output", "value", "build",
     "output directory (default: build/); a name ending in .o that is not a directory is the object file of the "
     "one module compiled"),
    (("-O",), "opt", "level", 2, "optimisation level: -O0, -O1, -O2 (default), -O3"),
    (("--emit-llvm",), "emit_llvm", "flag", False,
     "also write the optimised LLVM IR to OUTDIR/<module>.ll (next to the object)"),
    (("-S",), "asm", "flag", False, "print the BPF assembly of each object, with the Python source lines interleaved"),
    (("--check",), "check", "flag", False, "parse and type-check only; write nothing"),
    (("--force",), "force", "flag", False, "rebuild modules even when they are up to date"),
    (("-q", "--quiet"), "quiet", "flag", False, "print only diagnostics"),
    (("--timings",), "timings", "flag", False, None),  # phase times, for bench/
]
_OPT_LEVELS = (0, 1, 2, 3)


def _add_compile(sub) -> None:
    import argparse

    c = sub.add_parser(
        "compile", help="compile DSL modules to BPF objects",
        description="Compile each BPF module under PATH to OUTDIR/<module>.bpf.o, or one module to the file "
                    "-o NAME.o. Unchanged modules are not recompiled (OUTDIR/.pybpfgen-cache.json records what "
                    "was built from what); --force rebuilds them.")
    c.add_argument("paths", nargs="+", metavar="PATH", help="a .py file, or a directory searched for BPF modules")
    for flags, dest, kind, default, text in _COMPILE_OPTIONS:
        shown = argparse.SUPPRESS if text is None else text
        if kind == "flag":
            c.add_argument(*flags, dest=dest, action="store_true", help=shown)
        elif kind == "level":
            c.add_argument(*flags, dest=dest, type=int, choices=list(_OPT_LEVELS), default=default, metavar="LEVEL",
                           help=shown)
        else:
            c.add_argument(*flags, dest=dest, default=default, metavar=dest.upper() if dest != "output" else "OUTDIR|FILE.o",
                           help=shown)
    c.set_defaults(func=cmd_compile)


def _add_disasm(sub) -> None:
    d = sub.add_parser("disasm", help="disassemble BPF objects, with source lines",
                       description="Print the BPF assembly of each OBJECT with the source lines from its "
                                   ".BTF.ext line info interleaved (maps and helpers by name). Needs no root.")
    d.add_argument("objects", nargs="+", metavar="OBJECT", help="a BPF ELF object (.bpf.o)")
    d.add_argument("--no-source", action="store_true", help="do not interleave source lines")
    d.add_argument("--no-raw", action="store_true", help="do not show the instruction bytes")
    d.set_defaults(func=cmd_disasm)


COMPILER_COMMANDS = {"compile": _add_compile, "disasm": _add_disasm}


def fast_compile_args(argv: list[str]) -> SimpleNamespace | None:
    """``compile`` arguments parsed without building the argparse parser (~10 ms of argparse,
    gettext and shutil imports: a third of a no-op rebuild), from the same option table
    (:data:`_COMPILE_OPTIONS`) argparse is built from. Only plain, valid command lines are accepted;
    anything else (help, a mistake, an unusual spelling) returns None and goes through argparse, which
    then reports it as usual (tests/compiler/test_cli_compile.py checks both agree)."""
    if not argv or argv[0] != "compile":
        return None
    ns = SimpleNamespace(command="compile", paths=[], func=cmd_compile)
    by_flag = {}
    for flags, dest, kind, default, _text in _COMPILE_OPTIONS:
        setattr(ns, dest, default)
        for f in flags:
            by_flag[f] = (dest, kind)
    it = iter(argv[1:])
    after_paths = False
    for a in it:
        flag, eq, attached = a.partition("=") if a.startswith("--") else (a, "", "")
        opt = by_flag.get(flag)
        if opt is None and len(a) > 2 and a[:2] in by_flag and not a.startswith("--"):
            opt, attached, eq = by_flag[a[:2]], a[2:], "="  # -O2, -obuild
        if opt is None:
            if a.startswith("-"):
                return None  # help, a mistake, an unusual spelling: argparse reports it
            if ns.paths and after_paths:
                return None  # PATHs split by options: argparse refuses them (and says so)
            ns.paths.append(a)
            continue
        after_paths = bool(ns.paths)
        dest, kind = opt
        if kind == "flag":
            if eq:
                return None
            setattr(ns, dest, True)
            continue
        v = attached if eq else next(it, None)
        if v is None or v == "" or (not eq and v.startswith("-")):
            return None
        if kind == "level":
            if v not in {str(n) for n in _OPT_LEVELS}:
                return None
            setattr(ns, dest, int(v))
        else:
            setattr(ns, dest, v)
    return ns if ns.paths else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args: argparse.Namespace | SimpleNamespace | None = fast_compile_args(argv)
    if args is None:
        first = next((a for a in argv if not a.startswith("-")), None)
        try:
            parser = build_parser(loader=first not in COMPILER_COMMANDS, only=first)
        except Exception as e:  # noqa: BLE001 - a plugin that cannot be imported (PluginError): one line
            if not isinstance(e, _user_error_types()):
                raise
            print(f"pybpfgen: error: {e}", file=sys.stderr)
            return EXIT_USER
        args = parser.parse_args(argv)
        if not getattr(args, "func", None):
            parser.print_help(sys.stderr)
            return EXIT_USAGE
    return run(args)


def run(args) -> int:
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("pybpfgen: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `pybpfgen disasm x.o | head`
        return 0
    except Exception as e:  # noqa: BLE001 - the last line of defence against tracebacks
        user_error = _user_error_types()
        if (user_error and isinstance(e, user_error)) or (isinstance(e, OSError) and e.filename is not None):
            # a LoaderError, or a missing / unreadable / unwritable file: not a compiler bug
            print(f"pybpfgen: error: {e}", file=sys.stderr)
            return EXIT_USER
        print("pybpfgen: internal error (this is a bug in pybpfgen, please report it):", file=sys.stderr)
        import traceback
        traceback.print_exc(limit=6, file=sys.stderr)
        return EXIT_INTERNAL


def _user_error_types() -> tuple:
    types = []
    try:
        from kernel_loader.errors import LoaderError
        types.append(LoaderError)
    except ImportError:
        pass
    return tuple(types)


if __name__ == "__main__":
    sys.exit(main())
