"""The ``pybpfgen`` command line.

Exit codes: 0 success; 1 user error (bad DSL code, a rejected program, a missing
file, ...); 2 bad command-line usage; 70 internal error (a bug in pybpfgen).
"""
from __future__ import annotations

import argparse
import sys
import traceback

from . import __version__

EXIT_USER = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 70


def cmd_compile(args: argparse.Namespace) -> int:
    # Imported here so that `pybpfgen load` never imports llvmlite.
    from .driver import compile_file, find_sources, read_sources

    try:
        sources = find_sources(args.paths)
    except FileNotFoundError as e:
        print(f"pybpfgen: error: no such file or directory: {e.args[0]}", file=sys.stderr)
        return EXIT_USER
    if not sources:
        print(f"pybpfgen: error: no BPF modules found in {' '.join(args.paths)}\n"
              "hint: a BPF module is a .py file that imports pybpfgen.lang", file=sys.stderr)
        return EXIT_USER
    failed = 0
    results = []
    for src in sources:
        r = compile_file(src, args.output, opt=args.opt)
        results.append(r)
        srcs = read_sources([r])
        for d in r.diagnostics:
            print(d.format(srcs), file=sys.stderr)
        if any(d.severity == "error" for d in r.diagnostics):
            failed += 1
        elif r.output and not args.quiet:
            print(f"compiled {src} -> {r.output}")
    if failed:
        print(f"pybpfgen: {failed} module(s) failed to compile", file=sys.stderr)
        return EXIT_USER
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pybpfgen", description="Compile Python BPF programs and load them.")
    p.add_argument("--version", action="version", version=f"pybpfgen {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    c = sub.add_parser("compile", help="compile DSL modules to BPF objects",
                       description="Compile each BPF module under PATH to OUTDIR/<module>.bpf.o.")
    c.add_argument("paths", nargs="+", metavar="PATH", help="a .py file, or a directory searched for BPF modules")
    c.add_argument("-o", "--output", default="build", metavar="OUTDIR", help="output directory (default: build/)")
    c.add_argument("-O", dest="opt", type=int, choices=[0, 1, 2, 3], default=2, help="optimisation level (default 2)")
    c.add_argument("-q", "--quiet", action="store_true", help="print only diagnostics")
    c.set_defaults(func=cmd_compile)
    try:
        from kernel_loader import cli as loader_cli
    except ImportError:  # pragma: no cover - the loader ships in the same distribution
        loader_cli = None
    if loader_cli is not None and hasattr(loader_cli, "register"):
        loader_cli.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("pybpfgen: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # noqa: BLE001 - the last line of defence against tracebacks
        user_error = _user_error_types()
        if user_error and isinstance(e, user_error):
            print(f"pybpfgen: error: {e}", file=sys.stderr)
            return EXIT_USER
        print("pybpfgen: internal error (this is a bug in pybpfgen, please report it):", file=sys.stderr)
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
