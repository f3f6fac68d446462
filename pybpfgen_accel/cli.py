"""The accelerator's commands in ``pybpfgen``: ``policy`` (ports, CIDRs, tuples, budget) and the ``doctor``
options ``--conformance`` and ``--stress`` (registered through the plugin, :mod:`pybpfgen_accel.plugin`)."""
from __future__ import annotations

import argparse
import json
import sys

from kernel_loader.cli import _common, _interval
from .spec import DEFAULT_OBJECT


def _add_policy(subparsers) -> None:
    p = subparsers.add_parser("policy", help="manage the accelerator's policies (ports, CIDRs, tuples) and budget",
                              description="A connection is accelerated when ANY policy selects it: a port "
                                          "(local or remote), a CIDR (the socket's local and/or remote address) "
                                          "or an exact connection tuple (as its client sees it). Changes apply "
                                          "to new connections.")
    psub = p.add_subparsers(dest="policy_cmd", metavar="{add,remove,list,set}")
    psub.required = True
    for name, helptext in (("add", "accelerate connections selected by a port, a CIDR or a tuple"),
                           ("remove", "stop accelerating them (new connections only)"),
                           ("list", "list every policy and the budget settings"),
                           ("set", "set the unanswered-message budget (the settings map)")):
        q = psub.add_parser(name, help=helptext)
        if name in ("add", "remove"):
            g = q.add_mutually_exclusive_group(required=True)
            g.add_argument("--port", type=_port, metavar="N", help="TCP port 1..65535 (local or remote)")
            g.add_argument("--cidr", type=_cidr, metavar="NET",
                           help="IPv4 or IPv6 network, e.g. 10.0.0.0/8, 2001:db8::/32, or one address")
            g.add_argument("--tuple", type=_tuple, metavar="CLIENT_IP:PORT-SERVER_IP:PORT", dest="conn",
                           help="one connection as its client sees it, e.g. 10.0.0.1:40000-10.0.0.2:80 or "
                                "[::1]:40000-[::1]:80")
            q.add_argument("--side", type=_side, default=None, metavar="{local,remote,any}",
                           help="with --cidr: match the socket's local address, its remote address, or either "
                                "(default any)")
        elif name == "list":
            q.add_argument("--json", action="store_true", help="machine-readable output (schema in docs/cli.md)")
        else:
            q.add_argument("--max-unanswered-msgs", type=_u32, metavar="N",
                           help="messages a socket may redirect while its peer sends nothing (0 = default 256)")
            q.add_argument("--max-unanswered-kib", type=_u32, metavar="N",
                           help="KiB a socket may redirect while its peer sends nothing (0 = default 4096)")
        q.add_argument("--object", default=DEFAULT_OBJECT, metavar="NAME",
                       help=f"loaded object holding the policy maps (default {DEFAULT_OBJECT})")
        _common(q)
        q.set_defaults(func=cmd_policy)


def add_doctor_arguments(p) -> None:
    """``pybpfgen doctor --conformance [--cases] [--stress ...]``: the accelerator's suites."""
    p.add_argument("--conformance", action="store_true", help="run the accelerator conformance suite instead")
    p.add_argument("--cases", type=_cases, metavar="LIST", help="with --conformance: comma-separated case names "
                                                                 "(with --stress: full_duplex, stream, duplex, reqresp, "
                                                                 "short_conns)")
    g = p.add_argument_group("stress mode (with --conformance --stress; docs/hazards.md, \"Stress mode\")")
    g.add_argument("--stress", action="store_true",
                   help="run the stress cases round after round under adversarial timing (CPU hogs, a CPU limit on "
                        "one end, random pauses, blocking and epoll I/O, low and default budgets), each round on "
                        "the kernel path and accelerated; a round fails when the accelerated path shows an error, "
                        "stall, lost/duplicated/reordered byte or leftover socket the kernel path does not")
    g.add_argument("--rounds", type=_positive_int, default=10, metavar="N", help="rounds per case (default 10)")
    g.add_argument("--seed", type=_seed, default=None, metavar="S",
                   help="seed of the first round (default: random, printed); `--seed S --rounds 1` repeats the "
                        "round a failure names")
    g.add_argument("--budget", choices=("both", "low", "default"), default="both",
                   help="unanswered budget per round: both (drawn per round: 2/3 low, so that demotion and release "
                        "happen), low, or default (default: both)")
    g.add_argument("--low-budget-msgs", type=_positive_int, default=None, metavar="N",
                   help="a low-budget round allows N messages (default: drawn from 2..32 per round)")
    g.add_argument("--low-budget-kib", type=_positive_int, default=None, metavar="N",
                   help="a low-budget round allows N KiB (default: drawn from 16..1024 per round)")
    g.add_argument("--hogs", choices=("random", "always", "never"), default="random",
                   help="a CPU hog on every core: in 3 rounds of 4 (random, the default), always, or never")
    g.add_argument("--duplex-bytes", type=_positive_int, default=16 << 20, metavar="N",
                   help="full_duplex: bytes each end sends (default 16 MiB)")
    g.add_argument("--max-bytes", type=_positive_int, default=4 << 20, metavar="N",
                   help="other cases: at most N bytes per direction and connection (default 4 MiB)")
    g.add_argument("--strict", action="store_true",
                   help="a known kernel hazard (a blocking recv() failing with EAGAIN, docs/hazards.md) fails the "
                        "round too; by default it is counted and reported with its rate, and every other check "
                        "(no byte lost, duplicated or reordered) still applies")
    g.add_argument("--stall-seconds", type=_interval, default=5.0, metavar="S",
                   help="no byte moved for S seconds while an end wants to move bytes: a stall (default 5)")


def _spec(parse, text):
    from kernel_loader.errors import LoaderError
    from . import policyspec
    try:
        return getattr(policyspec, parse)(text)
    except LoaderError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _cidr(text: str):
    return _spec("parse_cidr", text)


def _tuple(text: str):
    return _spec("parse_tuple", text)


def _side(text: str) -> str:
    v = text.strip().lower()
    if v not in ("local", "remote", "any"):
        raise argparse.ArgumentTypeError(f"invalid side {text!r}: expected local, remote or any")
    return v


def _u32(text: str) -> int:
    try:
        v = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: expected 0 (default) to 4294967295") from None
    if not 0 <= v <= 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"invalid number {v}: expected 0 (default) to 4294967295")
    return v


def _cases(text: str) -> list[str]:
    cases = [c.strip() for c in text.split(",") if c.strip()]
    if not cases:
        raise argparse.ArgumentTypeError("empty case list: expected NAME[,NAME...]")
    return cases


def _positive_int(text: str) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: expected a positive integer") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"invalid number {v}: expected a positive integer")
    return v


def _seed(text: str) -> int:
    try:
        v = int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid seed {text!r}: expected an integer from 0 to 4294967295") from None
    if not 0 <= v < 1 << 32:
        raise argparse.ArgumentTypeError(f"invalid seed {v}: expected an integer from 0 to 4294967295")
    return v


def _port(text: str) -> int:
    try:
        v = int(text, 10)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected a number from 1 to 65535") from None
    if not 1 <= v <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {v}: expected a number from 1 to 65535")
    return v


def _policy_error(msg: str) -> int:
    print(f"pybpfgen policy: error: {msg}", file=sys.stderr)
    return 2


def cmd_policy(args) -> int:
    from . import spec as m
    where = dict(object=args.object, pin_root=args.pin_root)
    cmd = args.policy_cmd
    if cmd in ("add", "remove"):
        if args.side is not None and args.cidr is None:
            return _policy_error("--side only goes with --cidr")
        side = args.side or "any"
        if args.port is not None:
            if cmd == "add":
                m.policy_add(args.port, **where)
                print(f"accelerating port {args.port} ({args.object})")
            elif m.policy_remove(args.port, **where):
                print(f"port {args.port} removed ({args.object}); existing accelerated connections stay accelerated")
            else:
                print(f"port {args.port} was not in the policy ({args.object})")
        elif args.cidr is not None:
            if cmd == "add":
                now = m.policy_add_cidr(args.cidr, side, **where)
                print(f"accelerating connections whose {_SIDE_TEXT[now]} is in {args.cidr} ({args.object})")
            elif m.policy_remove_cidr(args.cidr, side, **where):
                print(f"CIDR {args.cidr} ({side}) removed ({args.object}); existing accelerated connections "
                      "stay accelerated")
            else:
                print(f"CIDR {args.cidr} ({side}) was not in the policy ({args.object})")
        else:
            if cmd == "add":
                print(f"accelerating connection {m.policy_add_tuple(args.conn, **where)} ({args.object})")
            elif m.policy_remove_tuple(args.conn, **where):
                print(f"tuple {args.conn} removed ({args.object}); an accelerated connection stays accelerated")
            else:
                print(f"tuple {args.conn} was not in the policy ({args.object})")
        return 0
    if cmd == "set":
        if args.max_unanswered_msgs is None and args.max_unanswered_kib is None:
            return _policy_error("nothing to set: give --max-unanswered-msgs N and/or --max-unanswered-kib N")
        st = m.policy_set(args.max_unanswered_msgs, args.max_unanswered_kib, **where)
        print(f"budget ({args.object}): {_fmt_settings(st)}")
        return 0
    pol = m.policy_show(**where)
    if args.json:
        print(json.dumps(pol, indent=2, sort_keys=True))
        return 0
    print(format_policy(pol))
    return 0


_SIDE_TEXT = {"local": "local address", "remote": "remote address", "any": "local or remote address"}


def _fmt_settings(st: dict) -> str:
    def one(stored, eff, unit):
        return f"{eff}{unit}" + (" (default)" if stored == 0 else "")
    return (f"max unanswered {one(st['max_unanswered_msgs'], st['effective_max_unanswered_msgs'], ' messages')}, "
            f"{one(st['max_unanswered_kib'], st['effective_max_unanswered_kib'], ' KiB')}")


def format_policy(pol: dict) -> str:
    """One entry per line, each kind recognisable by its syntax: ``8080`` (port), ``10.0.0.0/8 any`` (CIDR and
    side), ``10.0.0.1:40000-10.0.0.2:80`` (tuple); then ``budget: ...`` when it is not the default."""
    out = [str(p) for p in pol["ports"]]
    out += [f"{e['cidr']} {e['side']}" for e in pol.get("cidrs") or []]
    out += list(pol.get("tuples") or [])
    if not out:
        out.append(f"no policy: nothing is accelerated ({pol['object']}); add one with `pybpfgen policy add "
                   "--port N | --cidr NET | --tuple CLIENT_IP:PORT-SERVER_IP:PORT`")
    st = pol.get("settings")
    if st and (st["max_unanswered_msgs"] or st["max_unanswered_kib"]):
        out.append(f"budget: {_fmt_settings(st)}")
    return "\n".join(out)
