"""What the loader knows about one program, the accelerator (``programs/accel.py`` and its C twin): the
names of its policy maps and the summary ``pybpfgen status`` adds for it. Everything else in the loader is
generic (``mapapi.py``, the generic part of ``status``); this module is the one place to change when the
accelerator's maps change.

Kept import-light (no bpf(2) at import) so that the CLI can use it cheaply.
"""
from __future__ import annotations

STATUS_KEY = "accelerator"                       # the key of the summary in an object's status
PORT_MAPS = ("policy_ports", "accel_ports")      # port policy: the DSL accelerator's, then the C twin's
CIDR_MAP = "policy_cidrs"
TUPLE_MAP = "policy_tuples"
SETTINGS_MAP = "settings"
COUNTERS = ("redirected", "missed")              # AccelStats fields the summary reports
SOCK_MAP_TYPES = (15, 18)                        # SOCKMAP, SOCKHASH


def status_summary(obj: dict, sc) -> dict | None:
    """``{"sockhash", "sockets", "policy_map", "policy_ports", "redirected", "missed"}`` from an object's
    generic status (its maps, their entries and its counters), or None when the object is not an
    accelerator (no sockhash or no port policy map)."""
    import struct
    from .errors import BpfSyscallError
    from .maps import Map

    maps = obj["maps"]
    by_name = {m["pin_name"]: m for m in maps}
    sock = next((m for m in maps if m["type_id"] in SOCK_MAP_TYPES), None)
    policy = next((by_name[n] for n in PORT_MAPS if n in by_name), None)
    if sock is None or policy is None:
        return None
    out = {"sockhash": sock["pin_name"], "sockets": sock["entries"], "policy_map": policy["pin_name"],
           "policy_ports": [], "redirected": None, "missed": None}
    try:
        m = Map.open_pinned(policy["pin"], sc=sc)
        try:
            out["policy_ports"] = sorted(struct.unpack("<I", k)[0] for k in m.keys())
        finally:
            m.close()
    except (BpfSyscallError, OSError):
        pass
    for name, value in obj.get("counters", {}).items():
        vals = value if isinstance(value, list) else [value]
        if vals and isinstance(vals[0], dict) and COUNTERS[0] in vals[0]:
            for c in COUNTERS:
                out[c] = sum(v.get(c, 0) or 0 for v in vals if v)
            break
    else:   # counters in a non-per-CPU array (values decoded, not summed over CPUs)
        for m in maps:
            vals = m.get("values")
            if vals and isinstance(vals[0], dict) and COUNTERS[0] in vals[0]:
                for c in COUNTERS:
                    out[c] = sum(v.get(c, 0) or 0 for v in vals if v)
                break
    return out


def format_summary(acc: dict | None) -> str | None:
    """The line ``pybpfgen status`` prints for the summary."""
    if not acc:
        return None
    red = "-" if acc["redirected"] is None else acc["redirected"]
    miss = "-" if acc["missed"] is None else acc["missed"]
    ports = ", ".join(map(str, acc["policy_ports"])) or "none (add with `pybpfgen policy add --port N`)"
    return (f"  accelerator: {acc['sockets']} sockets in {acc['sockhash']}; redirected {red}, "
            f"missed {miss}; ports {ports}")
