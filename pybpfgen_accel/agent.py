"""The accelerator in the agent's configuration and metrics (``pybpfgen agent`` / ``apply``), plugged in through
:mod:`kernel_loader.plugins` (``AGENT_SECTIONS``, ``AGENT_METRICS`` / ``agent_metrics``):

    [objects.accel.policy]                  # present: the policy maps hold exactly this (a kind left out: none)
    ports = [6379, 8080]
    cidrs = ["10.0.0.0/8", { cidr = "198.18.0.0/15", side = "local" }]
    tuples = ["10.0.0.1:40000-10.0.0.2:80"]

    [objects.accel.settings]                # present: settings[0] holds exactly this (left out: 0 = default)
    max_unanswered_msgs = 512
    max_unanswered_kib = 8192

Parsing is :mod:`.policyspec`'s (errors name file:line: key through the agent's checker); the entries are typed
keys and values that the agent encodes with the maps' BTF (as ``Map.set``), so its diff with the live maps is
exact. Pure Python at import (no bpf(2)).
"""
from __future__ import annotations

from dataclasses import dataclass

from . import policyspec as _ps
from .spec import CIDR_MAP, DEFAULTS, SETTINGS_MAP, STATUS_KEY, TUPLE_MAP

PORT_MAP = "policy_ports"
HINT = "; is it the accelerator built from programs/accel.py?"


# ------------------------------------------------------------------ [objects.X.policy]
@dataclass(frozen=True)
class Policy:
    ports: tuple[int, ...] = ()
    cidrs: tuple[tuple[_ps.Cidr, int], ...] = ()       # (CIDR, side flags); one entry per CIDR (sides merged)
    tuples: tuple[_ps.ConnTuple, ...] = ()


class PolicySection:
    """``[objects.X.policy]``: ports, CIDRs (with sides) and tuples -> policy_ports / policy_cidrs / policy_tuples."""

    maps = (PORT_MAP, CIDR_MAP, TUPLE_MAP)
    hint = HINT

    @staticmethod
    def parse(p, c, path: tuple) -> Policy:
        c.table(p, path, {"ports", "cidrs", "tuples"})
        ports: list[int] = []
        for i, v in enumerate(c.typed(p, path, "ports", list, "an array of port numbers", [])):
            ep = path + ("ports", i)
            if isinstance(v, bool) or not isinstance(v, int):
                raise c.error(ep, f"expected a port number, got {c.tname(v)}")
            port = c.spec(ep, _ps.check_port, v)
            if port in ports:
                raise c.error(ep, f"port {port} is listed twice")
            ports.append(port)
        cidrs: dict[_ps.Cidr, int] = {}
        for i, v in enumerate(c.typed(p, path, "cidrs", list, 'an array of CIDRs ("10.0.0.0/8" or '
                                                             '{ cidr = "...", side = "local" })', [])):
            ep = path + ("cidrs", i)
            if isinstance(v, dict):
                c.table(v, ep, {"cidr", "side"})
                if not isinstance(v.get("cidr"), str):
                    raise c.error(ep + ("cidr",), 'expected a CIDR string, e.g. cidr = "10.0.0.0/8"')
                text, side = v["cidr"], v.get("side", "any")
                if not isinstance(side, str):
                    raise c.error(ep + ("side",), f"expected local, remote or any, got {c.tname(side)}")
                cidr = c.spec(ep + ("cidr",), _ps.parse_cidr, text)
                flags = c.spec(ep + ("side",), _ps.parse_side, side)
            elif isinstance(v, str):
                cidr, flags = c.spec(ep, _ps.parse_cidr, v), _ps.SIDE_ANY
            else:
                raise c.error(ep, f'expected a CIDR string or {{ cidr = "...", side = "..." }}, got {c.tname(v)}')
            cidrs[cidr] = cidrs.get(cidr, 0) | flags        # sides of one CIDR form a set, as `policy add`
        tuples: list[_ps.ConnTuple] = []
        for i, v in enumerate(c.typed(p, path, "tuples", list, 'an array of "CLIENT_IP:PORT-SERVER_IP:PORT"', [])):
            ep = path + ("tuples", i)
            if not isinstance(v, str):
                raise c.error(ep, f'expected "CLIENT_IP:PORT-SERVER_IP:PORT", got {c.tname(v)}')
            t = c.spec(ep, _ps.parse_tuple, v)
            if t in tuples:
                raise c.error(ep, f"tuple {t} is listed twice")
            tuples.append(t)
        return Policy(tuple(ports), tuple(cidrs.items()), tuple(tuples))

    @staticmethod
    def desired(p: Policy) -> dict[str, list[tuple]]:
        return {PORT_MAP: [(port, 1, str(port)) for port in p.ports],
                CIDR_MAP: [(_ps.prefix_key(c.network), flags, f"{c} {_ps.side_name(flags)}") for c, flags in p.cidrs],
                TUPLE_MAP: [(_ps.tuple_key(t), 1, str(t)) for t in p.tuples]}

    @staticmethod
    def describe(map_name: str, key, value) -> str:
        if map_name == CIDR_MAP:
            return f"{_ps.decode_prefix(key)} {_ps.side_name(value)}"
        if map_name == TUPLE_MAP:
            return str(_ps.decode_tuple(key))
        return str(key)


# ------------------------------------------------------------------ [objects.X.settings]
@dataclass(frozen=True)
class Settings:
    max_unanswered_msgs: int = 0
    max_unanswered_kib: int = 0


def settings_text(value: dict) -> str:
    return " ".join(f"{k}={value.get(k, 0)}" for k in DEFAULTS)


class SettingsSection:
    """``[objects.X.settings]``: the unanswered-message budget -> settings[0] (a key left out: 0 = default)."""

    maps = (SETTINGS_MAP,)
    hint = HINT

    @staticmethod
    def parse(s, c, path: tuple) -> Settings:
        c.table(s, path, set(DEFAULTS))
        vals = {}
        for k in DEFAULTS:
            v = s.get(k, 0)
            if isinstance(v, bool) or not isinstance(v, int):
                raise c.error(path + (k,), f"expected an integer (0 = default), got {c.tname(v)}")
            vals[k] = c.spec(path + (k,), _ps.check_u32, v, k)
        return Settings(**vals)

    @staticmethod
    def desired(s: Settings) -> dict[str, list[tuple]]:
        value = {"max_unanswered_msgs": s.max_unanswered_msgs, "max_unanswered_kib": s.max_unanswered_kib}
        return {SETTINGS_MAP: [(0, value, settings_text(value))]}

    @staticmethod
    def describe(map_name: str, key, value) -> str:
        return settings_text(value)


AGENT_SECTIONS = {"policy": PolicySection(), "settings": SettingsSection()}


# ------------------------------------------------------------------ metrics
# programs/accel.py AccelStats: status field -> (metric name, HELP)
COUNTERS = {
    "redirected": ("pybpfgen_accel_redirected_messages",
                   "Messages the sk_msg program moved straight into the peer socket's receive queue, skipping "
                   "TCP/IP (accelerated sends)."),
    "missed": ("pybpfgen_accel_tcp_path_verdicts",
               "Sends of sockets in the sockhash that took the normal TCP path (each verdict covers up to 1 GiB "
               "of that socket's writes): unpaired, demoted or peer gone."),
    "paired": ("pybpfgen_accel_paired_connections",
               "Connections whose two ends were paired (both accelerated)."),
    "refused": ("pybpfgen_accel_refused_pairings",
                "Pairings refused: an ambiguous tuple, or sequence numbers that do not mirror each other."),
    "demoted": ("pybpfgen_accel_demoted_connections",
                "Connections moved to the TCP path for good by the unanswered-message budget (settings)."),
    "released": ("pybpfgen_accel_released_sockets",
                 "Sockets taken out of the sockhash because nothing can be redirected to them any more."),
}
POLICY_KINDS = {PORT_MAP: "ports", CIDR_MAP: "cidrs", TUPLE_MAP: "tuples", "accel_ports": "ports"}
SOCKETS, POLICIES, BUDGET = "pybpfgen_accel_sockets", "pybpfgen_accel_policy_entries", "pybpfgen_accel_budget"

AGENT_METRICS = {
    **{name: ("counter", help_, ("object",)) for name, help_ in COUNTERS.values()},
    SOCKETS: ("gauge", "Sockets in the accelerator's sockhash (two per accelerated connection).", ("object",)),
    POLICIES: ("gauge", "Entries of the accelerator's policy maps.", ("object", "kind")),
    BUDGET: ("gauge", "The unanswered-message budget in effect (settings; 0 stored = the default).",
             ("object", "limit")),
}


def _is_stats(m: dict) -> bool:
    vals = m.get("values") or []
    return bool(vals) and isinstance(vals[0], dict) and "redirected" in vals[0]


def agent_metrics(o: dict) -> list[tuple[str, list[str], float]]:
    """The accelerator's samples for one loaded object's status (nothing for another program)."""
    name = o["name"]
    out: list[tuple[str, list[str], float]] = []
    for m in o.get("maps", []):
        if m["pin_name"] in POLICY_KINDS and m.get("entries") is not None:
            out.append((POLICIES, [name, POLICY_KINDS[m["pin_name"]]], m["entries"]))
        vals = m.get("values")
        if not vals:
            continue
        if m["type"] == "percpu_array":
            if _is_stats(m):
                for f, (metric, _) in COUNTERS.items():
                    if f in vals[0]:
                        out.append((metric, [name], sum((v or {}).get(f, 0) or 0 for v in vals)))
        elif m["pin_name"] == SETTINGS_MAP and isinstance(vals[0], dict):
            for limit, default in DEFAULTS.items():
                if limit in vals[0]:
                    out.append((BUDGET, [name, limit], vals[0][limit] or default))
    acc = o.get(STATUS_KEY)
    if acc and acc.get("sockets") is not None:
        out.append((SOCKETS, [name], acc["sockets"]))
    elif acc is None and any(m["pin_name"] == "stats" and _is_stats(m) for m in o.get("maps", [])):
        # an accelerator whose summary status did not add: its sockhash's entries
        sh = next((m for m in o.get("maps", []) if m["type"] in ("sockhash", "sockmap")), None)
        if sh is not None and sh.get("entries") is not None:
            out.append((SOCKETS, [name], sh["entries"]))
    return out
