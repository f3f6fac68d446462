"""What the control plane knows about the accelerator's program (``programs/accel.py`` and its C twin): the
names of its policy maps, its budget defaults, the summary ``pybpfgen status`` adds for it, and the
``pybpfgen policy`` operations - a thin layer over the loader's generic map API (:mod:`kernel_loader.mapapi`),
whose BTF encodes keys and values. The loader itself is generic; this module is the one place to change when
the accelerator's maps change. Parsing of ports / CIDRs / tuples: :mod:`pybpfgen_accel.policyspec`.

Kept import-light (nothing touches bpf(2) at import) so that the CLI can use it cheaply.
"""
from __future__ import annotations

from typing import Any

DEFAULT_OBJECT = "accel"                         # the object `pybpfgen policy` works on (programs/accel.py)
STATUS_KEY = "accelerator"                       # the key of the summary in an object's status
PORT_MAPS = ("policy_ports", "accel_ports")      # port policy: the DSL accelerator's, then the C twin's
CIDR_MAP = "policy_cidrs"
TUPLE_MAP = "policy_tuples"
SETTINGS_MAP = "settings"
COUNTERS = ("redirected", "missed")              # AccelStats fields the summary reports
# programs/accel.py DEFAULT_MAX_UNANSWERED_*: compile-time constants, in neither BTF nor .rodata
# (tests/loader/test_policy.py checks that they match the program's module)
DEFAULTS = {"max_unanswered_msgs": 256, "max_unanswered_kib": 4096}
SOCK_MAP_TYPES = (15, 18)                        # SOCKMAP, SOCKHASH


def status_summary(obj: dict, sc) -> dict | None:
    """``{"sockhash", "sockets", "policy_map", "policy_ports", "redirected", "missed"}`` from an object's
    generic status (its maps, their entries and its counters), or None when the object is not an
    accelerator (no sockhash or no port policy map)."""
    import struct
    from kernel_loader.errors import BpfSyscallError
    from kernel_loader.maps import Map

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
    for value in obj.get("counters", {}).values():
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


# ------------------------------------------------------------------ policy (pybpfgen policy)
import errno as _errno  # noqa: E402

from kernel_loader.defaults import DEFAULT_PIN_ROOT  # noqa: E402
from kernel_loader.errors import BpfSyscallError, LoaderError  # noqa: E402
from kernel_loader.manager import PinnedObject  # noqa: E402


def _user_errors(fn):
    """lifecycle.user_errors, imported when called (this module stays light for the CLI)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        from kernel_loader.lifecycle import user_errors
        return user_errors(fn)(*a, **kw)
    return wrapper


from . import policyspec as _ps  # noqa: E402
from .policyspec import Cidr, ConnTuple, check_port  # noqa: E402


class _Policy(PinnedObject):
    """The maps of one loaded accelerator, opened with their BTF types (a context manager, as PinnedObject)."""

    def __init__(self, object: str, pin_root: str, sc):
        from kernel_loader import manager
        po = manager.open_pinned(object, pin_root, sc=sc)   # its "not loaded" error
        super().__init__(po.name, po.pin_dir, po.sc)
        self.object = object
        self._btf: list = []

    def has(self, name: str) -> bool:
        from kernel_loader.mapapi import map_names
        return name in map_names(self.pin_dir)

    def map(self, name: str):
        if name not in self._maps:
            from kernel_loader.mapapi import _open
            self._maps[name] = _open(self.pin_dir, self.object, name, self.sc, obj_btf=self._btf)
        return self._maps[name]

    def ports(self):
        for n in PORT_MAPS:
            if self.has(n):
                return self.map(n)
        raise LoaderError(f"object {self.object} has no port policy map ({' or '.join(PORT_MAPS)}); "
                          "is it the accelerator?")

    def named(self, name: str, what: str):
        if not self.has(name):
            raise LoaderError(f"object {self.object} has no {what} map ({name}); load an accelerator built from "
                              "programs/accel.py (the C twin has ports only)")
        return self.map(name)


def _mismatch(m, object: str, e: Exception | str) -> LoaderError:
    return LoaderError(f"map {m.name} of {object} does not have the layout this pybpfgen expects ({e}); "
                       "the loaded accelerator does not match this pybpfgen")


def _key(m, object: str, key) -> bytes:
    try:
        return m.encode_key(key)
    except ValueError as e:
        raise _mismatch(m, object, e) from None


def _value(m, object: str, value) -> bytes:
    try:
        return m.encode_value(value)
    except ValueError as e:
        raise _mismatch(m, object, e) from None


def _update(m, object: str, key, value, what: str) -> None:
    try:
        m.update(_key(m, object, key), _value(m, object, value))
    except BpfSyscallError as e:
        if e.errno in (_errno.E2BIG, _errno.ENOSPC, _errno.ENOMEM):
            raise LoaderError(f"cannot add {what}: map {m.name} is full (max_entries {m.info().max_entries}, "
                              f"{e.errno_name}); remove entries first") from e
        raise


def _exact(m, object: str, key):
    """The decoded value stored under exactly ``key`` (an LPM lookup would return the longest matching
    prefix's), or None."""
    raw_key = _key(m, object, key)
    for k in m.keys():
        if bytes(k) == raw_key:
            raw = m.lookup(raw_key)
            return None if raw is None else m.decode_value(raw)
    return None


def _ports(m) -> list[int]:
    return sorted(m.decode_key(bytes(k)) for k in m.keys())


def _cidr_entries(m) -> list[dict]:
    out = []
    for k in m.keys():
        raw = m.lookup(bytes(k))
        if raw is None:
            continue
        net = _ps.decode_prefix(m.decode_key(bytes(k)))
        flags = m.decode_value(raw)
        out.append({"cidr": str(net), "side": _ps.side_name(flags), "flags": flags})
    return sorted(out, key=lambda e: _net_sort_key(e["cidr"]))


def _net_sort_key(net: str):
    import ipaddress
    n = ipaddress.ip_network(net)
    return (n.version, int(n.network_address), n.prefixlen)


def _tuples(m) -> list[str]:
    return sorted(str(_ps.decode_tuple(m.decode_key(bytes(k)))) for k in m.keys())


def _settings(p: _Policy) -> dict:
    m = p.named(SETTINGS_MAP, "settings")
    raw = m.lookup(_key(m, p.object, 0))
    value = None if raw is None else m.decode_value(raw)
    if value is not None and not (isinstance(value, dict) and set(DEFAULTS) <= set(value)):
        raise _mismatch(m, p.object, f"value {value!r} has no {' / '.join(DEFAULTS)}")
    return _ps.decode_settings(value, DEFAULTS)


@_user_errors
def policy_add(port: int, object: str = DEFAULT_OBJECT, pin_root: str = DEFAULT_PIN_ROOT, *, sc=None) -> None:
    port = check_port(port)
    with _Policy(object, pin_root, sc) as p:
        m = p.ports()
        _update(m, object, port, 1, f"port {port}")


@_user_errors
def policy_remove(port: int, object: str = DEFAULT_OBJECT, pin_root: str = DEFAULT_PIN_ROOT, *, sc=None) -> bool:
    port = check_port(port)
    with _Policy(object, pin_root, sc) as p:
        m = p.ports()
        return m.delete(_key(m, object, port))


@_user_errors
def policy_list(object: str = DEFAULT_OBJECT, pin_root: str = DEFAULT_PIN_ROOT, *, sc=None) -> list[int]:
    with _Policy(object, pin_root, sc) as p:
        return _ports(p.ports())


@_user_errors
def policy_add_cidr(cidr, side="any", object: str = DEFAULT_OBJECT, pin_root: str = DEFAULT_PIN_ROOT, *,
                    sc=None) -> str:
    """Accelerate connections whose local (``side="local"``), remote (``"remote"``) or either (``"any"``)
    address is in ``cidr``. Adding a side to a CIDR that is already there adds to its sides (a union).
    Returns the CIDR's sides afterwards (``local`` / ``remote`` / ``any``)."""
    c = cidr if isinstance(cidr, Cidr) else _ps.parse_cidr(cidr)
    flags = _ps.parse_side(side)
    with _Policy(object, pin_root, sc) as p:
        m = p.named(CIDR_MAP, "CIDR policy")
        new = flags | (_exact(m, object, c.key) or 0)
        _update(m, object, c.key, new, f"CIDR {c}")
        return _ps.side_name(new)


@_user_errors
def policy_remove_cidr(cidr, side="any", object: str = DEFAULT_OBJECT, pin_root: str = DEFAULT_PIN_ROOT, *,
                       sc=None) -> bool:
    """Remove ``side`` (default: both) from ``cidr``'s entry; the entry goes when no side is left.
    False when the CIDR had none of those sides."""
    c = cidr if isinstance(cidr, Cidr) else _ps.parse_cidr(cidr)
    flags = _ps.parse_side(side)
    with _Policy(object, pin_root, sc) as p:
        m = p.named(CIDR_MAP, "CIDR policy")
        old = _exact(m, object, c.key)
        if old is None or not (old & flags):
            return False
        left = old & ~flags & _ps.SIDE_ANY
        if left:
            _update(m, object, c.key, left, f"CIDR {c}")
        else:
            m.delete(_key(m, object, c.key))
        return True


@_user_errors
def policy_list_cidrs(object: str = DEFAULT_OBJECT, pin_root: str = DEFAULT_PIN_ROOT, *, sc=None) -> list[dict]:
    """``[{"cidr": "10.0.0.0/8", "side": "any", "flags": 3}, ...]``"""
    with _Policy(object, pin_root, sc) as p:
        return _cidr_entries(p.named(CIDR_MAP, "CIDR policy"))


@_user_errors
def policy_add_tuple(conn, object: str = DEFAULT_OBJECT, pin_root: str = DEFAULT_PIN_ROOT, *, sc=None) -> str:
    """Accelerate exactly one connection, ``"CLIENT_IP:PORT-SERVER_IP:PORT"`` as its client sees it (both of
    its sockets: the client's and the server's accepted one). Returns the normalized tuple."""
    t = conn if isinstance(conn, ConnTuple) else _ps.parse_tuple(conn)
    with _Policy(object, pin_root, sc) as p:
        _update(p.named(TUPLE_MAP, "tuple policy"), object, t.key, 1, f"tuple {t}")
    return str(t)


@_user_errors
def policy_remove_tuple(conn, object: str = DEFAULT_OBJECT, pin_root: str = DEFAULT_PIN_ROOT, *,
                        sc=None) -> bool:
    t = conn if isinstance(conn, ConnTuple) else _ps.parse_tuple(conn)
    with _Policy(object, pin_root, sc) as p:
        m = p.named(TUPLE_MAP, "tuple policy")
        return m.delete(_key(m, object, t.key))


@_user_errors
def policy_list_tuples(object: str = DEFAULT_OBJECT, pin_root: str = DEFAULT_PIN_ROOT, *, sc=None) -> list[str]:
    with _Policy(object, pin_root, sc) as p:
        return _tuples(p.named(TUPLE_MAP, "tuple policy"))


@_user_errors
def policy_settings(object: str = DEFAULT_OBJECT, pin_root: str = DEFAULT_PIN_ROOT, *, sc=None) -> dict:
    """``{"max_unanswered_msgs", "max_unanswered_kib"}`` as stored (0 = default) plus ``effective_*``."""
    with _Policy(object, pin_root, sc) as p:
        return _settings(p)


@_user_errors
def policy_set(max_unanswered_msgs: int | None = None, max_unanswered_kib: int | None = None,
               object: str = DEFAULT_OBJECT, pin_root: str = DEFAULT_PIN_ROOT, *, sc=None) -> dict:
    """Set the unanswered-message budget (``settings[0]``); None keeps a value, 0 restores the default.
    Takes effect for the next message of every connection. Returns :func:`policy_settings`."""
    if max_unanswered_msgs is None and max_unanswered_kib is None:
        raise LoaderError("nothing to set: give --max-unanswered-msgs N and/or --max-unanswered-kib N")
    new = {}
    if max_unanswered_msgs is not None:
        new["max_unanswered_msgs"] = _ps.check_u32(max_unanswered_msgs, "--max-unanswered-msgs")
    if max_unanswered_kib is not None:
        new["max_unanswered_kib"] = _ps.check_u32(max_unanswered_kib, "--max-unanswered-kib")
    with _Policy(object, pin_root, sc) as p:
        cur = _settings(p)
        m = p.map(SETTINGS_MAP)
        value = {n: new.get(n, cur[n]) for n in DEFAULTS}
        m.update(_key(m, object, 0), _value(m, object, value))
        return _settings(p)


@_user_errors
def policy_show(object: str = DEFAULT_OBJECT, pin_root: str = DEFAULT_PIN_ROOT, *, sc=None) -> dict:
    """Every policy of ``object``: ``{"object", "ports", "cidrs", "tuples", "settings"}``; a kind the object
    does not have (e.g. the C twin's CIDRs) is None."""
    with _Policy(object, pin_root, sc) as p:
        out: dict[str, Any] = {"object": object, "ports": _ports(p.ports()), "cidrs": None, "tuples": None,
                               "settings": None}
        if p.has(CIDR_MAP):
            out["cidrs"] = _cidr_entries(p.map(CIDR_MAP))
        if p.has(TUPLE_MAP):
            out["tuples"] = _tuples(p.map(TUPLE_MAP))
        if p.has(SETTINGS_MAP):
            out["settings"] = _settings(p)
        return out
