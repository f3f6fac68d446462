"""``python -m kernel_loader ...``: the loader subcommands without the
compiler (same behaviour as ``pybpfgen load|unload|status|policy``)."""
import argparse
import sys

from . import cli
from .errors import LoaderError


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="pybpfgen")
    sub = parser.add_subparsers(dest="command", required=True)
    cli.register(sub)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except LoaderError as e:
        print(f"pybpfgen: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
