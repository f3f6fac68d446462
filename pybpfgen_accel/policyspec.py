"""Parsing of the accelerator's policy entries into the typed keys and values of its maps (pure Python, no
root, no bpf(2)). The maps themselves (names, defaults) are described in :mod:`pybpfgen_accel.spec`;
the byte layout is the maps' BTF, applied by :meth:`kernel_loader.maps.Map.set` / ``get``:

* ``policy_ports``  key: the port (int)                                                     -> 1
* ``policy_cidrs``  key: ``{"prefixlen": n, "addr": 16 bytes}`` (struct Prefix; the address in network byte
                    order, IPv4 stored v4-mapped ``::ffff:a.b.c.d`` with prefixlen + 96)    -> side flags
* ``policy_tuples`` key: ``{"local_ip", "remote_ip", "local_port", "remote_port"}`` (struct Tuple; v4-mapped
                    addresses as 16 bytes, host-order ports): the connection as its *client* sees it -> 1
* ``settings``      [0] = ``{"max_unanswered_msgs", "max_unanswered_kib"}`` (0 = default)

Every parse error is a :class:`~kernel_loader.errors.LoaderError` with one line saying what is wrong and
what is expected. Only the standard library (``ipaddress``) is imported here, so that the CLI can validate
arguments without loading anything.
"""
from __future__ import annotations

import ipaddress
from pybpfgen.target.records import Record

from kernel_loader.errors import LoaderError

SIDE_LOCAL = 1
SIDE_REMOTE = 2
SIDE_ANY = 3
SIDES = {"local": SIDE_LOCAL, "remote": SIDE_REMOTE, "any": SIDE_ANY}
SIDE_NAMES = {v: k for k, v in SIDES.items()}

U32_MAX = 0xFFFFFFFF

_V4_MAPPED_NET = ipaddress.IPv6Network("::ffff:0:0/96")


# ------------------------------------------------------------------ addresses
def _addr16(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bytes:
    """The 16 bytes the program compares: IPv6 as is, IPv4 v4-mapped (::ffff:a.b.c.d), network byte order."""
    if ip.version == 4:
        return b"\0" * 10 + b"\xff\xff" + ip.packed
    return ip.packed


def _raw16(addr) -> bytes:
    """An address as decoded from a map (``u32[4]`` words holding the bytes in network order) or as bytes."""
    if isinstance(addr, (bytes, bytearray)):
        return bytes(addr)
    return b"".join(int(w).to_bytes(4, "little") for w in addr)


def _ip_from16(raw) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    v6 = ipaddress.IPv6Address(_raw16(raw))
    return v6.ipv4_mapped or v6


def _fmt_ip(ip, bracket: bool) -> str:
    return f"[{ip}]" if bracket and ip.version == 6 else str(ip)


def parse_ip(text: str, what: str = "address") -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    t = (text or "").strip()
    if "%" in t:
        raise LoaderError(f"invalid {what} {text!r}: zone ids (%...) are not supported; give the address only")
    try:
        ip = ipaddress.ip_address(t)
    except ValueError:
        raise LoaderError(f"invalid {what} {text!r}: expected an IPv4 address (10.0.0.1) or an IPv6 address "
                          "(2001:db8::1)") from None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped          # ::ffff:a.b.c.d is the IPv4 address, as the program sees it
    return ip


# ------------------------------------------------------------------ ports
def check_port(port, what: str = "port") -> int:
    try:
        p = int(port) if not isinstance(port, str) else int(port.strip(), 10)
    except (TypeError, ValueError):
        raise LoaderError(f"invalid {what} {port!r}: expected a number from 1 to 65535") from None
    if not 1 <= p <= 65535:
        raise LoaderError(f"invalid {what} {p}: expected a number from 1 to 65535")
    return p



# ------------------------------------------------------------------ CIDRs
class Cidr(Record, frozen=True):
    network: ipaddress.IPv4Network | ipaddress.IPv6Network

    def __str__(self) -> str:
        return str(self.network)

    @property
    def key(self) -> dict:
        return prefix_key(self.network)


def parse_side(side) -> int:
    if isinstance(side, int) and side in SIDE_NAMES:
        return side
    s = str(side).strip().lower()
    if s not in SIDES:
        raise LoaderError(f"invalid side {side!r}: expected local, remote or any")
    return SIDES[s]


def parse_cidr(text: str) -> Cidr:
    """``10.0.0.0/8``, ``2001:db8::/32``, or a single address (= /32 or /128). Host bits must be zero."""
    t = (text or "").strip()
    if not t:
        raise LoaderError("invalid CIDR '': expected NET/LEN, e.g. 10.0.0.0/8 or 2001:db8::/32")
    if "%" in t:
        raise LoaderError(f"invalid CIDR {text!r}: zone ids (%...) are not supported")
    addr, slash, plen = t.partition("/")
    ip = parse_ip(addr, "CIDR address") if addr else None
    if ip is None:
        raise LoaderError(f"invalid CIDR {text!r}: expected NET/LEN, e.g. 10.0.0.0/8 or 2001:db8::/32")
    mapped = ip.version == 4 and ":" in addr      # written v4-mapped: ::ffff:10.0.0.0/104
    maxlen = 128 if mapped or ip.version == 6 else 32
    if slash:
        if not plen.strip().isdigit():
            raise LoaderError(f"invalid CIDR {text!r}: the prefix length must be a number from 0 to {maxlen}")
        n = int(plen)
        if n > maxlen:
            raise LoaderError(f"invalid CIDR {text!r}: prefix length {n} is longer than {maxlen} "
                              f"(IPv{4 if maxlen == 32 else 6})")
        if mapped:
            if n < 96:
                raise LoaderError(f"invalid CIDR {text!r}: a v4-mapped prefix needs a length from 96 to 128 "
                                  "(or write the IPv4 network, e.g. 10.0.0.0/8)")
            n -= 96
    else:
        n = 32 if ip.version == 4 else 128
    net = ipaddress.ip_network(f"{ip}/{n}", strict=False)
    if net.network_address != ip:
        raise LoaderError(f"invalid CIDR {text!r}: host bits are set (did you mean {net}?)")
    return Cidr(net)


def prefix_key(net) -> dict:
    """The LPM key (struct Prefix): prefixlen and the 16 address bytes; IPv4 -> v4-mapped, prefixlen + 96."""
    if isinstance(net, Cidr):
        net = net.network
    return {"prefixlen": net.prefixlen + (96 if net.version == 4 else 0), "addr": _addr16(net.network_address)}


def decode_prefix(key: dict) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """The network of a decoded policy_cidrs key."""
    plen = key["prefixlen"]
    v6 = ipaddress.IPv6Address(_raw16(key["addr"]))
    if plen >= 96 and v6 in _V4_MAPPED_NET:
        return ipaddress.IPv4Network(f"{v6.ipv4_mapped}/{plen - 96}", strict=False)
    return ipaddress.IPv6Network(f"{v6}/{min(plen, 128)}", strict=False)


def side_name(flags: int) -> str:
    return SIDE_NAMES.get(flags & SIDE_ANY, f"0x{flags:x}")


# ------------------------------------------------------------------ tuples
class ConnTuple(Record, frozen=True):
    """A connection as its client sees it: client ip:port -> server ip:port."""

    client_ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    client_port: int
    server_ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    server_port: int

    def __str__(self) -> str:
        v6 = self.client_ip.version == 6 or self.server_ip.version == 6
        return (f"{_fmt_ip(self.client_ip, v6)}:{self.client_port}-"
                f"{_fmt_ip(self.server_ip, v6)}:{self.server_port}")

    @property
    def key(self) -> dict:
        return tuple_key(self)


def _parse_endpoint(text: str, what: str, whole: str) -> tuple:
    t = text.strip()
    if t.startswith("["):
        host, sep, rest = t[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise LoaderError(f"invalid tuple {whole!r}: {what} {text!r} should be [IPV6]:PORT, e.g. [::1]:8080")
        port = rest[1:]
    else:
        if t.count(":") > 1:
            raise LoaderError(f"invalid tuple {whole!r}: put IPv6 addresses in brackets, e.g. "
                              f"[2001:db8::1]:8080 (the {what} {text!r})")
        host, sep, port = t.rpartition(":")
        if not sep or not host:
            raise LoaderError(f"invalid tuple {whole!r}: {what} {text!r} should be IP:PORT, e.g. 10.0.0.1:8080")
    ip = parse_ip(host, f"{what} address in tuple {whole!r}:")
    p = check_port(port, f"{what} port in tuple {whole!r}:")
    return ip, p


def parse_tuple(text: str) -> ConnTuple:
    """``CLIENT_IP:PORT-SERVER_IP:PORT``; IPv6 as ``[::1]:80``. Both ends in the same family."""
    whole = (text or "").strip()
    parts = whole.split("-")
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise LoaderError(f"invalid tuple {text!r}: expected CLIENT_IP:PORT-SERVER_IP:PORT, e.g. "
                          "10.0.0.1:40000-10.0.0.2:8080 or [::1]:40000-[::1]:8080")
    cip, cport = _parse_endpoint(parts[0], "client", whole)
    sip, sport = _parse_endpoint(parts[1], "server", whole)
    if cip.version != sip.version:
        raise LoaderError(f"invalid tuple {text!r}: the client is IPv{cip.version} and the server IPv{sip.version}; "
                          "one connection has one family (write an IPv4 peer of a dual-stack socket as IPv4)")
    return ConnTuple(cip, cport, sip, sport)


def tuple_key(t: ConnTuple) -> dict:
    """The policy_tuples key (struct Tuple) of a connection as its client sees it."""
    return {"local_ip": _addr16(t.client_ip), "remote_ip": _addr16(t.server_ip), "local_port": t.client_port,
            "remote_port": t.server_port}


def decode_tuple(key: dict) -> ConnTuple:
    """The connection of a decoded policy_tuples key."""
    return ConnTuple(_ip_from16(key["local_ip"]), key["local_port"], _ip_from16(key["remote_ip"]),
                     key["remote_port"])


# ------------------------------------------------------------------ settings
def check_u32(value, what: str) -> int:
    try:
        v = int(value) if not isinstance(value, str) else int(value.strip(), 10)
    except (TypeError, ValueError):
        raise LoaderError(f"invalid {what} {value!r}: expected a number from 0 (default) to {U32_MAX}") from None
    if not 0 <= v <= U32_MAX:
        raise LoaderError(f"invalid {what} {v}: expected a number from 0 (default) to {U32_MAX}")
    return v


def decode_settings(value: dict | None, defaults: dict | None = None) -> dict:
    """The stored budget (0 = default) and the effective one (``defaults``: the program's, from
    :data:`pybpfgen_accel.spec.DEFAULTS`)."""
    if defaults is None:
        from .spec import DEFAULTS
        defaults = DEFAULTS
    value = value or {}
    out = {}
    for name in ("max_unanswered_msgs", "max_unanswered_kib"):
        out[name] = value.get(name, 0) or 0
    for name in ("max_unanswered_msgs", "max_unanswered_kib"):
        out["effective_" + name] = out[name] or defaults[name]
    return out
