"""CLI subcommands; ``pybpfgen/cli.py`` calls :func:`register` with its
subparsers and then ``args.func(args)`` (an int exit code).  A
:class:`LoaderError` escaping ``func`` is printed by the caller as
``pybpfgen: error: <msg>`` with exit status 1."""
from __future__ import annotations

import argparse
import json
import sys

# Light imports only: `pybpfgen compile` registers these subcommands without loading anything.
from .defaults import DEFAULT_OBJECT, DEFAULT_PIN_ROOT


def _verifier_error():
    from .verifier import VerifierError
    return VerifierError


def _manager():
    from . import manager
    return manager


def register(subparsers) -> None:
    def common(p):
        p.add_argument("--pin-root", default=DEFAULT_PIN_ROOT, metavar="DIR",
                       help=f"bpffs directory holding the pins (default {DEFAULT_PIN_ROOT})")

    p = subparsers.add_parser("load", help="load, attach and pin BPF objects",
                              description="Load OBJECT (or every *.bpf.o in a directory), attach sock_ops "
                                          "programs to a cgroup v2 directory and sk_msg programs to their "
                                          "sockhash, and pin everything so it stays after exit.")
    p.add_argument("object", nargs="?", default="build", metavar="OBJECT_OR_DIR",
                   help="a .bpf.o file or a directory of them (default: build/)")
    p.add_argument("--cgroup", metavar="DIR", help="cgroup v2 directory for sock_ops (default: the cgroup2 mount)")
    p.add_argument("-v", "--verbose", action="store_true", help="show progress and the full verifier log on failure")
    common(p)
    p.set_defaults(func=cmd_load)

    p = subparsers.add_parser("unload", help="detach and unpin loaded objects")
    p.add_argument("name", nargs="?", metavar="NAME", help="object name (default: every loaded object)")
    common(p)
    p.set_defaults(func=cmd_unload)

    p = subparsers.add_parser("status", help="show loaded objects, links and maps")
    p.add_argument("--json", action="store_true", help="machine-readable output (schema in docs/loader.md)")
    common(p)
    p.set_defaults(func=cmd_status)

    p = subparsers.add_parser("policy", help="manage the accelerator's port policy")
    psub = p.add_subparsers(dest="policy_cmd", metavar="{add,remove,list}")
    psub.required = True
    for name, helptext in (("add", "accelerate connections to/from PORT"),
                           ("remove", "stop accelerating PORT (for new connections)"),
                           ("list", "list accelerated ports")):
        q = psub.add_parser(name, help=helptext)
        if name != "list":
            q.add_argument("--port", required=True, type=_port, metavar="N", help="TCP port 1..65535")
        q.add_argument("--object", default=DEFAULT_OBJECT, metavar="NAME",
                       help=f"loaded object holding the policy map (default {DEFAULT_OBJECT})")
        common(q)
        q.set_defaults(func=cmd_policy)


def _port(text: str) -> int:
    try:
        v = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected a number from 1 to 65535") from None
    if not 1 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {v}: expected a number from 1 to 65535")
    return v


def cmd_load(args) -> int:
    try:
        objs = _manager().load(args.object, cgroup=args.cgroup, pin_root=args.pin_root, verbose=args.verbose)
    except _verifier_error() as e:
        if args.verbose:
            print(e.log, file=sys.stderr)
        raise
    for o in objs:
        for w in o.warnings:
            print(f"pybpfgen: warning: {o.name}: {w}", file=sys.stderr)
        progs = ", ".join(f"{p.name} ({p.type}, id {p.id}{' -> ' + p.attach_target if p.attach_target else ''})"
                          for p in o.programs.values())
        print(f"loaded {o.name} from {o.path}: {progs}; pinned at {o.pin_dir}")
    return 0


def cmd_unload(args) -> int:
    done = _manager().unload(args.name, pin_root=args.pin_root)
    if not done:
        print(f"nothing to unload{' named ' + args.name if args.name else ''} (under {args.pin_root})")
    for n in done:
        print(f"unloaded {n}")
    return 0


def cmd_status(args) -> int:
    st = _manager().status(pin_root=args.pin_root)
    if args.json:
        print(json.dumps(st, indent=2, sort_keys=True))
        return 0
    print(format_status(st))
    return 0


def format_status(st: dict) -> str:
    if not st["objects"]:
        return f"nothing loaded (pin root {st['pin_root']}); load objects with `pybpfgen load`"
    out = []
    for o in st["objects"]:
        out.append(f"{o['name']}  ({o['pin_dir']})")
        out.append("  programs:")
        for p in o["programs"]:
            out.append(f"    {p['name']:<20} id {p['id']:<6} {p['type']:<10} verified_insns {p['verified_insns']}")
        out.append("  links:")
        if not o["links"]:
            out.append("    (none)")
        for ln in o["links"]:
            t = ln.get("target") or {}
            if t.get("kind") == "cgroup":
                tgt = f"cgroup {t.get('path') or '#' + str(t.get('cgroup_id'))}"
            elif t.get("kind") == "map":
                tgt = f"map {t.get('map_name') or ''} (id {t.get('map_id')})"
            else:
                tgt = "-"
            state = "" if ln.get("attached", True) else "  DETACHED"
            out.append(f"    {ln['name']:<20} id {ln['id']:<6} {ln['type']:<10} prog {ln['prog_id']} -> {tgt}{state}")
        out.append("  maps:")
        for m in o["maps"]:
            out.append(f"    {m['pin_name']:<20} id {m['id']:<6} {m['type']:<12} key {m['key_size']} "
                       f"value {m['value_size']} max {m['max_entries']} entries {m['entries']}")
            if m.get("values") is not None:
                vals = m["values"]
                if len(vals) == 1:
                    out.append(f"      {json.dumps(vals[0])}")
                else:
                    for i, v in enumerate(vals):
                        out.append(f"      [{i}] {json.dumps(v)}")
    return "\n".join(out)


def cmd_policy(args) -> int:
    if args.policy_cmd == "add":
        _manager().policy_add(args.port, object=args.object, pin_root=args.pin_root)
        print(f"accelerating port {args.port} ({args.object})")
    elif args.policy_cmd == "remove":
        if _manager().policy_remove(args.port, object=args.object, pin_root=args.pin_root):
            print(f"port {args.port} removed ({args.object}); existing accelerated connections stay accelerated")
        else:
            print(f"port {args.port} was not in the policy ({args.object})")
    else:
        ports = _manager().policy_list(object=args.object, pin_root=args.pin_root)
        if ports:
            print("\n".join(str(p) for p in ports))
        else:
            print(f"no ports in the policy ({args.object}); add one with `pybpfgen policy add --port N`")
    return 0
