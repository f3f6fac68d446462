"""Setting an object's read-only configuration (``.rodata``, the DSL's ``Config``) before it is loaded.

``pybpfgen load --set NAME=VALUE``: the variable is found by name in the object's BTF ``.rodata`` DATASEC,
its integer type gives the size and the range, and the value is written into the section's bytes before
the ``.rodata`` map is created, filled and frozen. Programs read it with volatile loads, so the new value is
what they see; after load it can no longer change (the map is frozen)."""
from __future__ import annotations

from . import btf as B
from .errors import LoaderError


def parse_assignments(items: list[str] | None) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise LoaderError(f"--set {item!r}: write NAME=VALUE, e.g. --set max_conns=1000")
        try:
            out[name.strip()] = int(value.strip(), 0)
        except ValueError:
            raise LoaderError(f"--set {item!r}: {value!r} is not an integer (decimal, 0x.., 0o.., 0b..)") from None
    return out


def rodata_variables(obj) -> dict[str, tuple[int, int, bool]]:
    """name -> (offset, size, signed) of the integer variables of the object's .rodata."""
    if obj.btf is None:
        return {}
    out = {}
    for t in obj.btf.defined():
        if t.kind != B.DATASEC or not t.name.startswith(".rodata"):
            continue
        for var_id, offset, size in t.extra or []:
            var = obj.btf[var_id]
            if var is None or var.kind != B.VAR:
                continue
            target = obj.btf[obj.btf.resolve(var.size_or_type)]
            if target is None:
                continue
            if target.kind == B.INT:
                signed = bool((target.extra >> 24) & 1)
            elif target.kind in (B.ENUM, B.ENUM64):
                signed = bool(target.kind_flag)
            else:
                continue
            out[var.name] = (offset, size, signed)
    return out


def apply(objs: list, values: dict[str, int]) -> None:
    """Write each NAME=VALUE into the .rodata of every object that declares NAME (at least one must)."""
    if not values:
        return
    for name, value in values.items():
        hit = False
        for obj in objs:
            var = rodata_variables(obj).get(name)
            rodata = obj.maps.get(".rodata")
            if var is None or rodata is None:
                continue
            offset, size, signed = var
            lo, hi = (-(1 << (8 * size - 1)), (1 << (8 * size - 1)) - 1) if signed else (0, (1 << (8 * size)) - 1)
            if not lo <= value <= hi:
                raise LoaderError(f"--set {name}={value}: out of range for a {size * 8}-bit "
                                  f"{'signed' if signed else 'unsigned'} Config ({lo}..{hi})")
            data = bytearray(rodata.data)
            data[offset:offset + size] = value.to_bytes(size, "little", signed=signed)
            rodata.data = bytes(data)
            hit = True
        if not hit:
            known = sorted({n for o in objs for n in rodata_variables(o)})
            raise LoaderError(f"--set {name}: no Config named {name!r} in "
                              f"{', '.join(o.name for o in objs)}"
                              + (f" (Configs: {', '.join(known)})" if known else " (it declares no Config)"))
