"""``pybpfgen agent`` and ``pybpfgen apply`` (registered by ``kernel_loader/cli.py``; light imports only)."""
from __future__ import annotations

import json
import sys

EXIT_BAD_FILE = 2
EXIT_FAILED = 1


def add_agent(subparsers) -> None:
    p = subparsers.add_parser(
        "agent", help="run the agent: load the configured objects and keep their maps equal to the file",
        description="Load (or adopt, or upgrade in place) the objects of FILE, apply its map entries (and its "
                    "plugins' tables, e.g. policies), then keep them so: on SIGHUP or when the file changes the live maps are "
                    "brought to exactly what it says (adds before removals). SIGTERM: keep the programs "
                    "attached or unload them ([agent] on_exit). One JSON object per line on stdout for every "
                    "change and error. Schema: docs/cli.md.")
    p.add_argument("--config", required=True, metavar="FILE", help="the TOML configuration file")
    p.add_argument("--metrics-address", metavar="HOST:PORT", default=None,
                   help="serve /metrics (Prometheus), /healthz and /readyz here, e.g. 127.0.0.1:9473 "
                        "(default: [agent] metrics_address, else no endpoint)")
    p.add_argument("--enable-stats", action="store_true", default=None,
                   help="hold BPF run-time statistics enabled, so programs' run counts and run time move "
                        "(costs some ns per run; default: [agent] enable_stats)")
    p.set_defaults(func=cmd_agent)


def add_apply(subparsers) -> None:
    p = subparsers.add_parser(
        "apply", help="one reconcile pass of an agent configuration file, printing the diff",
        description="Load (or upgrade in place) the objects of FILE and bring their maps to exactly what it "
                    "says, then exit, printing what changed. Exit 2 for a bad file (nothing is touched), 1 "
                    "when applying failed.")
    p.add_argument("file", metavar="FILE", help="the TOML configuration file (as for `pybpfgen agent`)")
    p.add_argument("--dry-run", action="store_true", help="print the diff without applying it")
    p.add_argument("--json", action="store_true", help="machine-readable output (schema in docs/cli.md)")
    p.set_defaults(func=cmd_apply)


COMMANDS = {"agent": add_agent, "apply": add_apply}


def _error(msg: str) -> None:
    print(f"pybpfgen: error: {msg}", file=sys.stderr)


def cmd_apply(args) -> int:
    from ..errors import LoaderError
    from . import config as _config
    from . import reconcile as _rec
    try:
        cfg = _config.load_file(args.file)
    except _config.ConfigError as e:
        _error(str(e))
        return EXIT_BAD_FILE
    try:
        res = _rec.reconcile(cfg, dry_run=args.dry_run)
    except _config.ConfigError as e:
        _error(str(e))
        return EXIT_BAD_FILE
    except LoaderError as e:
        _error(str(e))
        return EXIT_FAILED
    if args.json:
        print(json.dumps(res.as_dict(), indent=2, sort_keys=True))
    else:
        for line in res.lines():
            print(line)
    return 0


def cmd_agent(args) -> int:
    from . import agent
    return agent.main(args.config, metrics_address=args.metrics_address, enable_stats=args.enable_stats)
