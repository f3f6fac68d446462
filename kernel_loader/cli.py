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


def _manager():
    from . import manager
    return manager


def register(subparsers) -> None:
    def common(p):
        p.add_argument("--pin-root", default=DEFAULT_PIN_ROOT, metavar="DIR",
                       help=f"bpffs directory holding the pins (default {DEFAULT_PIN_ROOT})")

    p = subparsers.add_parser("load", help="load, attach and pin BPF objects (upgrades in place when loaded)",
                              description="Load OBJECT (or every *.bpf.o in a directory), attach sock_ops "
                                          "programs to a cgroup v2 directory and sk_msg programs to their "
                                          "sockhash, and pin everything so it stays after exit. An object that "
                                          "is already loaded is upgraded in place: its maps (and the sockets in "
                                          "them) are kept and its programs are replaced atomically.")
    p.add_argument("object", nargs="?", default="build", metavar="OBJECT_OR_DIR",
                   help="a .bpf.o file or a directory of them (default: build/)")
    p.add_argument("--cgroup", metavar="DIR", help="cgroup v2 directory for sock_ops (default: the one it is "
                                                   "loaded in, else the cgroup2 mount)")
    p.add_argument("--replace-maps", action="store_true",
                   help="on upgrade, replace maps whose definition changed (their contents are lost)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show progress and the full kernel log (verifier / BTF) on failure")
    common(p)
    p.set_defaults(func=cmd_load)

    p = subparsers.add_parser("unload", help="detach and unpin loaded objects (idempotent)")
    p.add_argument("name", nargs="?", metavar="NAME", help="object name (default: every loaded object)")
    p.add_argument("-v", "--verbose", action="store_true", help="show what is detached")
    common(p)
    p.set_defaults(func=cmd_unload)

    p = subparsers.add_parser("status", help="show loaded objects, links and maps")
    p.add_argument("name", nargs="?", metavar="NAME", help="only this object")
    p.add_argument("--json", action="store_true", help="machine-readable output (schema in docs/cli.md)")
    p.add_argument("--stats", action="store_true",
                   help="measure run count and average run time (kernel stats enabled only meanwhile)")
    p.add_argument("--interval", type=_interval, default=1.0, metavar="SECONDS",
                   help="how long --stats measures (default 1.0)")
    common(p)
    p.set_defaults(func=cmd_status)

    p = subparsers.add_parser("doctor", help="check the kernel and system for the loader; run the conformance suite",
                              description="Report kernel version and features, bpffs, cgroup v2, BTF, "
                                          "capabilities, what is loaded, known hazards, and anything that "
                                          "would stop `load`, each with what to do. Exit 1 when something "
                                          "would stop `load` (or, with --conformance, when a case fails).")
    p.add_argument("--json", action="store_true", help="machine-readable output (schema in docs/cli.md)")
    p.add_argument("--cgroup", metavar="DIR", help="also check this cgroup v2 directory")
    p.add_argument("--object", default=None, metavar="PATH",
                   help="object to check / to run the conformance suite on (default build/accel.bpf.o)")
    p.add_argument("--conformance", action="store_true", help="run the accelerator conformance suite instead")
    p.add_argument("--cases", type=_cases, metavar="LIST", help="with --conformance: comma-separated case names")
    common(p)
    p.set_defaults(func=cmd_doctor)

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


def _interval(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid interval {text!r}: expected seconds, e.g. 1.0") from None
    if not 0 < v <= 3600:
        raise argparse.ArgumentTypeError(f"invalid interval {v}: expected 0 < SECONDS <= 3600")
    return v


def _cases(text: str) -> list[str]:
    cases = [c.strip() for c in text.split(",") if c.strip()]
    if not cases:
        raise argparse.ArgumentTypeError("empty case list: expected NAME[,NAME...]")
    return cases


def _port(text: str) -> int:
    try:
        v = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected a number from 1 to 65535") from None
    if not 1 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {v}: expected a number from 1 to 65535")
    return v


def cmd_load(args) -> int:
    from .errors import LoaderError
    try:
        objs = _manager().load(args.object, cgroup=args.cgroup, pin_root=args.pin_root, verbose=args.verbose,
                               replace_maps=args.replace_maps)
    except LoaderError as e:
        if args.verbose and getattr(e, "log", ""):
            print(e.log, file=sys.stderr)
        raise
    for o in objs:
        for w in o.warnings:
            print(f"pybpfgen: warning: {o.name}: {w}", file=sys.stderr)
        progs = ", ".join(f"{p.name} ({p.type}, id {p.id}{' -> ' + p.attach_target if p.attach_target else ''})"
                          for p in o.programs.values())
        if o.upgraded:
            kept = f"; kept maps {', '.join(o.reused_maps)}" if o.reused_maps else ""
            repl = f"; replaced maps {', '.join(o.replaced_maps)}" if o.replaced_maps else ""
            print(f"upgraded {o.name} from {o.path}: {progs}{kept}{repl}")
        else:
            print(f"loaded {o.name} from {o.path}: {progs}; pinned at {o.pin_dir}")
    return 0


def cmd_unload(args) -> int:
    say = (lambda m: print(f"pybpfgen: {m}", file=sys.stderr)) if args.verbose else None
    done = _manager().unload(args.name, pin_root=args.pin_root, progress=say)
    if not done:
        print(f"nothing to unload{' named ' + args.name if args.name else ''} (under {args.pin_root})")
    for n in done:
        print(f"unloaded {n}")
    return 0


def cmd_status(args) -> int:
    st = _manager().status(pin_root=args.pin_root, name=args.name,
                           stats_interval=args.interval if args.stats else None)
    if args.json:
        print(json.dumps(st, indent=2, sort_keys=True))
        return 0
    print(format_status(st))
    return 0


def cmd_doctor(args) -> int:
    from . import doctor
    return doctor.main(args)


def format_status(st: dict) -> str:
    if not st["objects"]:
        return f"nothing loaded (pin root {st['pin_root']}); load objects with `pybpfgen load`"
    out = []
    for o in st["objects"]:
        state = o.get("state")
        note = ""
        if state == "interrupted":
            note = "  INTERRUPTED LOAD: run `pybpfgen load` again or `pybpfgen unload " + o["name"] + "`"
        out.append(f"{o['name']}  ({o['pin_dir']}){note}")
        out.append("  programs:")
        for p in o["programs"]:
            line = f"    {p['name']:<20} id {p['id']:<6} {p['type']:<10} verified_insns {p['verified_insns']}"
            s = p.get("stats")
            if s:
                avg = f"{s['avg_ns']:.0f} ns avg" if s["avg_ns"] is not None else "no runs"
                line += f"  runs {s['run_cnt']} in {s['interval_s']}s, {avg}"
            out.append(line)
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
            lid = "-" if ln["id"] is None else ln["id"]
            out.append(f"    {ln['name']:<20} id {lid:<6} {ln['type']:<10} prog {ln['prog_id']} -> {tgt}{state}")
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
        acc = o.get("accelerator")
        if acc:
            red = "-" if acc["redirected"] is None else acc["redirected"]
            miss = "-" if acc["missed"] is None else acc["missed"]
            ports = ", ".join(map(str, acc["policy_ports"])) or "none (add with `pybpfgen policy add --port N`)"
            out.append(f"  accelerator: {acc['sockets']} sockets in {acc['sockhash']}; redirected {red}, "
                       f"missed {miss}; ports {ports}")
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
