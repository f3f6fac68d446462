"""CLI subcommands; ``pybpfgen/cli.py`` calls :func:`register` with its
subparsers and then ``args.func(args)`` (an int exit code).  A
:class:`LoaderError` escaping ``func`` is printed by the caller as
``pybpfgen: error: <msg>`` with exit status 1."""
from __future__ import annotations

import argparse
import json
import sys

# Light imports only: `pybpfgen compile` registers these subcommands without loading anything.
from .defaults import DEFAULT_PIN_ROOT


def _manager():
    from . import manager
    return manager


def _common(p) -> None:
    p.add_argument("--pin-root", default=DEFAULT_PIN_ROOT, metavar="DIR",
                   help=f"bpffs directory holding the pins (default {DEFAULT_PIN_ROOT})")


def _add_load(subparsers) -> None:
    p = subparsers.add_parser("load", help="load, attach and pin BPF objects (upgrades in place when loaded)",
                              description="Load OBJECT (or every *.bpf.o in a directory), attach sock_ops "
                                          "and cgroup_skb programs to a cgroup v2 directory, sk_msg and sk_skb "
                                          "programs to their sock map, xdp and tc programs to a network "
                                          "interface (--ifname), and pin everything so it stays after exit "
                                          "(links included: `unload` detaches them). An object that "
                                          "is already loaded is upgraded in place: its maps (and the sockets in "
                                          "them) are kept and its programs are replaced atomically.")
    p.add_argument("object", nargs="?", default="build", metavar="OBJECT_OR_DIR",
                   help="a .bpf.o file or a directory of them (default: build/)")
    p.add_argument("--cgroup", metavar="DIR", help="cgroup v2 directory for sock_ops (default: the one it is "
                                                   "loaded in, else the cgroup2 mount)")
    p.add_argument("--ifname", metavar="DEV", help="network interface for xdp and tc programs (default: the one "
                                                   "they were loaded on before); in this network namespace")
    p.add_argument("--set", action="append", metavar="NAME=VALUE", dest="set_values",
                   help="set a Config (read-only global) before loading; repeatable")
    p.add_argument("--replace-maps", action="store_true",
                   help="on upgrade, replace maps whose definition changed (their contents are lost)")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="show progress and the full kernel log (verifier / BTF) on failure")
    _common(p)
    p.set_defaults(func=cmd_load)

def _add_unload(subparsers) -> None:
    p = subparsers.add_parser("unload", help="detach and unpin loaded objects (idempotent)")
    p.add_argument("name", nargs="?", metavar="NAME", help="object name (default: every loaded object)")
    p.add_argument("-v", "--verbose", action="store_true", help="show what is detached")
    _common(p)
    p.set_defaults(func=cmd_unload)

def _add_status(subparsers) -> None:
    p = subparsers.add_parser("status", help="show loaded objects, links and maps")
    p.add_argument("name", nargs="?", metavar="NAME", help="only this object")
    p.add_argument("--json", action="store_true", help="machine-readable output (schema in docs/cli.md)")
    p.add_argument("--stats", action="store_true",
                   help="measure run count and average run time (kernel stats enabled only meanwhile)")
    p.add_argument("--interval", type=_interval, default=1.0, metavar="SECONDS",
                   help="how long --stats measures (default 1.0)")
    _common(p)
    p.set_defaults(func=cmd_status)

def _add_doctor(subparsers) -> None:
    p = subparsers.add_parser("doctor", help="check the kernel and system for the loader (and what plugins add)",
                              description="Report kernel version and features, bpffs, cgroup v2, BTF, "
                                          "capabilities, what is loaded, known hazards, and anything that "
                                          "would stop `load`, each with what to do, and what plugins add (the "
                                          "known hazards of their programs, suites of their own). Exit 1 when "
                                          "something would stop `load` (or a plugin's suite fails).")
    p.add_argument("--json", action="store_true", help="machine-readable output (schema in docs/cli.md)")
    p.add_argument("--cgroup", metavar="DIR", help="also check this cgroup v2 directory")
    p.add_argument("--object", default=None, metavar="PATH", help="also check that this object parses")
    _common(p)
    from . import plugins
    plugins.add_doctor_arguments(p)
    p.set_defaults(func=cmd_doctor)

def _add_map(subparsers) -> None:
    p = subparsers.add_parser("map", help="show, dump, get, set and delete map entries of any loaded object",
                              description="Read and write the maps of a loaded object. Keys and values are JSON, "
                                          "encoded and decoded with the object's BTF: integers, objects for "
                                          "structs, lists for arrays, strings for char arrays and enum names; "
                                          "a per-CPU value is a list with one value per CPU.")
    msub = p.add_subparsers(dest="map_cmd", metavar="{show,dump,get,set,delete}")
    msub.required = True
    q = msub.add_parser("show", help="list the maps of loaded objects: type, key and value types, entries")
    q.add_argument("object", nargs="?", metavar="OBJECT", help="only this loaded object")
    q.add_argument("map", nargs="?", metavar="MAP", help="only this map of OBJECT")
    q.add_argument("--json", action="store_true", help="machine-readable output (schema in docs/cli.md)")
    _common(q)
    q.set_defaults(func=cmd_map)
    q = msub.add_parser("dump", help="print every entry of a map")
    q.add_argument("object", metavar="OBJECT")
    q.add_argument("map", metavar="MAP")
    q.add_argument("--json", action="store_true", help='a JSON list of {"key": K, "value": V}')
    _common(q)
    q.set_defaults(func=cmd_map)
    for name, helptext in (("get", "print the value under KEY"), ("set", "write VALUE under KEY"),
                           ("delete", "delete KEY")):
        q = msub.add_parser(name, help=helptext)
        q.add_argument("object", metavar="OBJECT")
        q.add_argument("map", metavar="MAP")
        q.add_argument("key", type=_json_key, metavar="KEY", help="JSON, e.g. 8080 or '{\"prefixlen\": 104, ...}'")
        if name == "set":
            q.add_argument("value", type=_json_value, metavar="VALUE", help="JSON, e.g. 1 or '{\"max_kib\": 64}'")
            g = q.add_mutually_exclusive_group()
            g.add_argument("--noexist", action="store_true", help="only add a new key (BPF_NOEXIST)")
            g.add_argument("--exist", action="store_true", help="only change an existing key (BPF_EXIST)")
        if name == "get":
            q.add_argument("--json", action="store_true", help='{"object", "map", "key", "value"}')
        _common(q)
        q.set_defaults(func=cmd_map)


def _add_events(subparsers) -> None:
    p = subparsers.add_parser("events", help="print the records of a ring buffer map of a loaded object",
                              description="Read the records programs write into a ring buffer map (RingBuf) of a "
                                          "loaded object, as they come, decoded with the record type the object "
                                          "recorded (RingBuf(event=...)); records without one are printed as hex. "
                                          "Reading consumes them: they are gone for other readers.")
    p.add_argument("object", metavar="OBJECT")
    p.add_argument("map", metavar="MAP")
    p.add_argument("--json", action="store_true", help="one JSON value per line (a hex string for untyped records)")
    p.add_argument("--count", type=_count, metavar="N", help="stop after N records")
    p.add_argument("--timeout", type=_interval, metavar="S",
                   help="stop after S seconds (exit status 1 when --count records did not come in time)")
    _common(p)
    p.set_defaults(func=cmd_events)


def _count(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n <= 0:
        raise argparse.ArgumentTypeError(f"--count takes a positive number of records, not {text!r}")
    return n


COMMANDS = {"load": _add_load, "unload": _add_unload, "status": _add_status, "doctor": _add_doctor,
            "map": _add_map, "events": _add_events}


def register(subparsers) -> None:
    """Add every loader subcommand to ``subparsers`` (``pybpfgen`` itself adds just the one being run, from
    :data:`COMMANDS`)."""
    from . import plugins
    for add in {**COMMANDS, **plugins.commands(COMMANDS)}.values():
        add(subparsers)


# `agent` and `apply`: kernel_loader/agent/ (docs/cli.md), imported only when one of them is registered
def _add_agent(subparsers) -> None:
    from .agent.cli import add_agent
    add_agent(subparsers)


def _add_apply(subparsers) -> None:
    from .agent.cli import add_apply
    add_apply(subparsers)


COMMANDS.update({"agent": _add_agent, "apply": _add_apply})


def _json_arg(text: str, what: str):
    """A KEY / VALUE argument: JSON, plus 0x hex integers and bare words (enum names)."""
    import re
    t = text.strip()
    if re.fullmatch(r"-?0[xX][0-9a-fA-F]+", t):
        return int(t, 16)
    try:
        return json.loads(t)
    except ValueError:
        pass
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", t):
        return t       # an enum name, or a string for a char array
    raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: expected JSON, e.g. 8080, [1, 2] or "
                                     '{"field": 1} (quote it for the shell)')


def _json_key(text: str):
    return _json_arg(text, "KEY")


def _json_value(text: str):
    return _json_arg(text, "VALUE")


def _interval(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid interval {text!r}: expected seconds, e.g. 1.0") from None
    if not 0 < v <= 3600:
        raise argparse.ArgumentTypeError(f"invalid interval {v}: expected 0 < SECONDS <= 3600")
    return v


def cmd_load(args) -> int:
    from .errors import LoaderError
    from .config import parse_assignments
    try:
        objs = _manager().load(args.object, cgroup=args.cgroup, pin_root=args.pin_root, verbose=args.verbose,
                               replace_maps=args.replace_maps, config=parse_assignments(args.set_values),
                               ifname=args.ifname)
    except LoaderError as e:
        log = getattr(e, "log", "")   # VerifierError / BtfLoadError carry the kernel's log
        if args.verbose and log:
            print(log, file=sys.stderr)
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
            elif t.get("kind") == "interface":
                tgt = f"interface {t.get('ifname') or '#' + str(t.get('ifindex'))}"
                if ln.get("attach_type"):
                    tgt += f" ({ln['attach_type']})"
            else:
                tgt = "-"
            state = "" if ln.get("attached", True) else "  DETACHED"
            lid = "-" if ln["id"] is None else ln["id"]
            out.append(f"    {ln['name']:<20} id {lid:<6} {ln['type']:<10} prog {ln['prog_id']} -> {tgt}{state}")
        out.append("  maps:")
        for m in o["maps"]:
            out.append(f"    {m['pin_name']:<20} id {m['id']:<6} {m['type']:<12} key {m['key_size']} "
                       f"value {m['value_size']} max {m['max_entries']} entries {'-' if m['entries'] is None else m['entries']}")
            if m.get("values") is not None:
                vals = m["values"]
                if len(vals) == 1:
                    out.append(f"      {json.dumps(vals[0])}")
                else:
                    for i, v in enumerate(vals):
                        out.append(f"      [{i}] {json.dumps(v)}")
        from . import plugins
        out.extend(plugins.format_summaries(o))
    return "\n".join(out)


# ------------------------------------------------------------------ map
def _j(v) -> str:
    return json.dumps(v, separators=(", ", ": "))


def format_map_show(st: dict, one_map: bool = False) -> str:
    if not st["objects"]:
        return f"nothing loaded (pin root {st['pin_root']}); load objects with `pybpfgen load`"
    out = []
    for o in st["objects"]:
        out.append(f"{o['name']}  ({o['pin_dir']})")
        for m in o["maps"]:
            ent = "-" if m["entries"] is None else m["entries"]
            kv = (f"event {m['event_type'] or '- (bytes)'}" if "event_type" in m else
                  f"key {m['key_type'] or '-'}  value {m['value_type'] or '-'}{' (per CPU)' if m['percpu'] else ''}")
            out.append(f"  {m['name']:<16} {m['type']:<14} {kv}  entries {ent}/{m['max_entries']}")
            if one_map:
                out.append(f"    id {m['id']}, flags 0x{m['flags']:x}, key {m['key_size']} bytes, value "
                           f"{m['value_size']} bytes, BTF {m['btf'] or 'none'}")
                if m["key"]:
                    out.append(f"    key:   {m['key']}")
                if m["value"]:
                    out.append(f"    value: {m['value']}")
                if m.get("event"):
                    out.append(f"    event: {m['event_type']} {m['event']}  (read with `pybpfgen events "
                               f"{o['name']} {m['name']}`)")
    return "\n".join(out)


def cmd_map(args) -> int:
    from . import mapapi
    cmd, where = args.map_cmd, dict(pin_root=args.pin_root)
    if cmd == "show":
        if args.map is not None and args.object is None:   # pragma: no cover - argparse fills object first
            print("pybpfgen map: error: give OBJECT with MAP", file=sys.stderr)
            return 2
        st = mapapi.map_show(args.object, args.map, **where)
        print(json.dumps(st, indent=2, sort_keys=True) if args.json else format_map_show(st, args.map is not None))
        return 0
    if cmd == "dump":
        entries = mapapi.map_dump(args.object, args.map, **where)
        if args.json:
            print(json.dumps(entries, indent=2))
        elif not entries:
            print(f"{args.object}/{args.map}: no entries")
        else:
            for e in entries:
                print(f"{_j(e['key'])}: {_j(e['value'])}")
        return 0
    if cmd == "get":
        v = mapapi.map_get(args.object, args.map, args.key, **where)
        if v is None:
            from .errors import LoaderError
            raise LoaderError(f"{args.object}/{args.map} has no entry for key {_j(args.key)}; "
                              f"list its keys with `pybpfgen map dump {args.object} {args.map}`")
        if args.json:
            print(json.dumps({"object": args.object, "map": args.map, "key": args.key, "value": v}, indent=2))
        else:
            print(_j(v))
        return 0
    if cmd == "set":
        flags = 1 if args.noexist else 2 if args.exist else 0
        mapapi.map_set(args.object, args.map, args.key, args.value, flags=flags, **where)
        print(f"{args.object}/{args.map}[{_j(args.key)}] = {_j(args.value)}")
        return 0
    if mapapi.map_delete(args.object, args.map, args.key, **where):
        print(f"deleted {args.object}/{args.map}[{_j(args.key)}]")
    else:
        print(f"key {_j(args.key)} was not in {args.object}/{args.map} (nothing deleted)")
    return 0


def cmd_events(args) -> int:
    from . import events
    got = 0
    with events.open_events(args.object, args.map, pin_root=args.pin_root) as r:
        what = f"{r.event_type} {r.event_picture}" if r.event_type else "untyped: hex bytes"
        print(f"pybpfgen events: reading {args.object}/{r.name} ({what})", file=sys.stderr, flush=True)
        try:
            for rec in r.read(args.count, args.timeout):
                got += 1
                if isinstance(rec, bytes):
                    rec = rec.hex()
                print(json.dumps(rec) if args.json else (rec if isinstance(rec, str) else _j(rec)), flush=True)
        except KeyboardInterrupt:
            return 130
    if args.count is not None and got < args.count:
        print(f"pybpfgen events: {got} of {args.count} records in {args.timeout:g} s", file=sys.stderr)
        return 1
    return 0
