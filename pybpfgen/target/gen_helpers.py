# Over 500 lines: a stand-alone generator script (header parsing, kernel probing, rendering of two files), never imported by the compiler.
"""Generate ``pybpfgen/target/helpers_table.py`` from the kernel UAPI header and the running kernel.

    sudo .venv/bin/python -m pybpfgen.target.gen_helpers [--header /usr/include/linux/bpf.h]
                                                         [--reuse-probes] [--check] [-o FILE]

For every BPF helper the header describes:

- **id and name** from the helper mapper macro. Linux >= 6.2 spells it
  ``___BPF_FUNC_MAPPER(FN, ctx...)`` with ``FN(name, id, ##ctx)`` entries; older headers
  (e.g. linux-libc-dev 6.1) spell it ``__BPF_FUNC_MAPPER(FN)`` with ``FN(name)`` entries whose
  id is their position. Both are read.
- **C signature and doc summary** from the ``Description`` comment blocks
  (``long bpf_xxx(...)`` followed by ``Description`` / ``Return``). A helper documented with
  several signatures (``bpf_get_socket_cookie``) keeps the first one whose arguments pybpfgen can
  express.
- **pybpfgen's encoding** of the signature (parameter and return kinds, see
  :mod:`pybpfgen.target.helpers`), or the reason it cannot be expressed.
- **the program types allowed to call it**, by probing the running kernel (root needed): for each
  program type pybpfgen supports, a four-instruction program that calls the helper with every
  argument register zeroed is loaded, and the verifier's answer classified: "unknown func",
  "invalid func", "program of this type cannot use helper" (or a sleepable-only helper in a
  non-sleepable program) means *not allowed*; anything else, including an argument type error or a
  successful load, means *allowed*. Syscall programs are loaded with ``BPF_F_SLEEPABLE``.

``--reuse-probes`` takes the allowed program types from the current table instead of probing (for
a run without root, or to check that the committed table matches the generator: ``--check`` exits 1
when the output would differ from the file).
"""
from __future__ import annotations

import argparse
import textwrap
import hashlib
import os
import keyword
import re
import struct
import sys
from dataclasses import dataclass

from .packets import LOAD_BYTES
from .progtypes import PROG_TYPES
from typing import cast

DEFAULT_HEADER = "/usr/include/linux/bpf.h"
HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUTPUT = os.path.join(HERE, "helpers_table.py")
LANG_HELPERS_OUTPUT = os.path.join(os.path.dirname(HERE), "lang_helpers.py")
# DSL functions pybpfgen.lang defines itself (with a Python simulation); lang_helpers still defines
# them (for documentation) but leaves them out of __all__ so that `from .lang_helpers import *` in
# lang.py does not replace them.
LANG_OWNS = ("map_lookup_elem", "map_update_elem", "map_delete_elem", "sock_hash_update", "msg_redirect_hash")

# program types probed (every one of target/progtypes.py): DSL name -> (BPF_PROG_TYPE_*, expected_attach_type,
# prog_flags)
PROBED_PROGTYPES: dict[str, tuple[int, int, int]] = {
    p.name: (p.prog_type, p.attach_type, p.prog_flags) for p in PROG_TYPES.values()}

# context structs of program types (any program type: the probe decides who may call the helper)
CTX_STRUCTS = {
    "sk_buff", "__sk_buff", "sk_msg_buff", "sk_msg_md", "bpf_sock_ops", "xdp_buff", "xdp_md",
    "bpf_sock_addr", "bpf_sockopt", "sk_reuseport_md", "bpf_sk_lookup", "pt_regs", "bpf_perf_event_data",
    "bpf_sysctl",
}
SCALAR_TYPES = {
    "u8", "u16", "u32", "u64", "s8", "s16", "s32", "s64", "int", "unsigned int", "long", "unsigned long",
    "__u8", "__u16", "__u32", "__u64", "__s32", "__s64", "size_t", "__be16", "__be32", "bool",
    "enum bpf_adj_room_mode", "enum bpf_hdr_start_off", "enum bpf_lwt_encap_mode",
}
SIGNED_RET = {"long", "int", "s64", "s32", "__s64", "__s32"}
UNSIGNED_RET = {"u64", "u32", "u16", "u8", "__u64", "__u32"}
# helpers whose `void *optval, int optlen` is written by the helper (an option value read back: "optout")
# rather than read by it ("optval")
OUT_BUFFERS = {"getsockopt"}
SIZE_NAME = re.compile(r"^(size|len|.*_size|.*_len|size_of_.*|.*_sz)$")


@dataclass
class Param:
    ctype: str  # "const void *", "u64", ...
    name: str

    @property
    def is_ptr(self) -> bool:
        return self.ctype.endswith("*")

    @property
    def base(self) -> str:
        """The type without const and the pointer star: "void", "struct bpf_map", "u32"."""
        t = self.ctype.rstrip("*").strip()
        t = re.sub(r"\bconst\b", "", t)
        return " ".join(t.split())


@dataclass
class Signature:
    text: str  # the C prototype as documented
    ret: str  # C return type
    name: str  # without bpf_
    params: list[Param]
    variadic: bool


@dataclass
class Entry:
    id: int
    name: str
    signature: str = ""
    summary: str = ""
    ret: str | None = None  # "i64" | "u64" | "ptr"
    params: tuple[str, ...] = ()
    progtypes: tuple[str, ...] = ()
    reason: str | None = None  # why pybpfgen cannot call it (None: supported)


# ------------------------------------------------------------------ header parsing
_MAPPER_NEW = re.compile(r"#define\s+___BPF_FUNC_MAPPER\(FN,\s*ctx\.\.\.\)(.*?)\n\s*/\*\s*\*/", re.S)
_MAPPER_OLD = re.compile(r"#define\s+__BPF_FUNC_MAPPER\(FN\)(.*?)\n\s*/\*\s*\*/", re.S)
_FN_ENTRY = re.compile(r"FN\(\s*(\w+)\s*(?:,\s*(\d+)\s*)?(?:,\s*##ctx\s*)?\)")


def parse_ids(header: str) -> dict[str, int]:
    """name -> helper id, from the mapper macro (either spelling)."""
    m = _MAPPER_NEW.search(header)
    explicit = True
    if m is None:
        m = _MAPPER_OLD.search(header)
        explicit = False
    if m is None:
        raise SystemExit("gen_helpers: no __BPF_FUNC_MAPPER / ___BPF_FUNC_MAPPER in the header")
    ids: dict[str, int] = {}
    for i, fm in enumerate(_FN_ENTRY.finditer(m.group(1))):
        name, num = fm.group(1), fm.group(2)
        if explicit and num is None:
            raise SystemExit(f"gen_helpers: FN({name}) has no id in ___BPF_FUNC_MAPPER")
        ids[name] = int(num) if explicit else i
    return ids


_SIG_LINE = re.compile(r"^ \* (?P<ret>[A-Za-z_][\w ]*?[\s*]+)bpf_(?P<name>\w+)\((?P<args>.*)\)\s*$")
_SECTION = re.compile(r"^ \*\s+(Description|Return)\s*$")


def parse_docs(header: str) -> dict[str, list[tuple[Signature, str]]]:
    """name -> [(signature, summary)] from the helper comment blocks."""
    lines = header.splitlines()
    out: dict[str, list[tuple[Signature, str]]] = {}
    i = 0
    while i < len(lines):
        m = _SIG_LINE.match(lines[i])
        if not m or i + 1 >= len(lines) or not re.match(r"^ \*\s+Description\s*$", lines[i + 1]):
            i += 1
            continue
        sig = parse_signature(m.group("ret"), m.group("name"), m.group("args"), lines[i][3:].strip())
        j = i + 2
        desc: list[str] = []
        while j < len(lines) and not _SECTION.match(lines[j]) and not _SIG_LINE.match(lines[j]) \
                and not lines[j].startswith(" */"):
            desc.append(lines[j][2:].strip() if lines[j].startswith(" *") else lines[j].strip())
            j += 1
        out.setdefault(sig.name, []).append((sig, summarise(desc)))
        i = j
    return out


def parse_signature(ret: str, name: str, args: str, text: str) -> Signature:
    params: list[Param] = []
    variadic = False
    args = args.strip()
    if args and args != "void":
        for a in args.split(","):
            a = a.strip()
            if a == "...":
                variadic = True
                continue
            pm = re.match(r"^(.*?[\s*])(\w+)$", a)
            if pm is None:  # an unnamed parameter
                params.append(Param(" ".join(a.split()), ""))
                continue
            ctype = " ".join(pm.group(1).replace("*", " * ").split()).replace("* *", "**")
            ctype = ctype.replace(" *", "*").replace("*", " *").strip()
            params.append(Param(ctype, pm.group(2)))
    ret = " ".join(ret.replace("*", " * ").split()).replace(" *", " *")
    return Signature(text, ret.strip(), name, params, variadic)


def summarise(desc: list[str]) -> str:
    """The first paragraph of a Description, markup removed, cut after its first sentence."""
    para: list[str] = []
    for line in desc:
        if not line:
            if para:
                break
            continue
        para.append(line)
    text = " ".join(" ".join(para).split())
    text = re.sub(r"\*\*(.+?)\*\*", r"\1", text)
    text = re.sub(r"\*([^*\s][^*]*?)\*", r"\1", text)
    text = text.replace("\\", "")
    if text.endswith(":"):  # "flags is one of:" -- the list that follows is not in the summary
        ends = [m.end(1) for m in re.finditer(r"([.!?])(\s|$)", text)]
        text = text[:ends[-1]] if ends else text
    if len(text) <= MAX_SUMMARY:
        return text
    cut = [m.end(1) for m in re.finditer(r"([.!?])(\s|$)", text) if m.end(1) <= MAX_SUMMARY]
    return text[:cut[-1]] if cut else text[:MAX_SUMMARY - 3].rstrip() + "..."


MAX_SUMMARY = 320


# ------------------------------------------------------------------ encoding
class Unsupported(Exception):
    pass


# helpers whose socket argument must be a reference acquired from bpf_sk_lookup_* (the verifier refuses ctx.sk)
NEEDS_ACQUIRED_SOCKET = frozenset({"sk_release"})


def encode(sig: Signature) -> tuple[str, tuple[str, ...]]:
    """(return kind, parameter kinds) for a signature, or :class:`Unsupported`."""
    kinds: list[str] = []
    ps = sig.params
    has_map = False
    i = 0
    while i < len(ps):
        p = ps[i]
        nxt = ps[i + 1] if i + 1 < len(ps) else None
        base = p.base
        if p.is_ptr and p.ctype.count("*") == 1:
            if base == "struct bpf_map" or (base == "void" and p.name in ("ringbuf", "map")):
                kinds.append("map")
                has_map = True
            elif base == "void" and p.name == "bpf_socket":
                if i != 0:
                    raise Unsupported(f"socket pointer `{p.name}` is not the first argument")
                kinds.append("bpf_socket")
            elif base == "void" and p.name == "optval" and nxt is not None and nxt.name == "optlen":
                kinds.append("optout" if sig.name in OUT_BUFFERS else "optval")
                i += 1
            elif (base.startswith("struct ") and base[7:] in CTX_STRUCTS) or (base == "void" and p.name in ("ctx", "skb")):
                if i != 0:
                    raise Unsupported(f"context pointer `{p.name}` is not the first argument")
                kinds.append("ctx")
            elif base == "char" and p.name == "fmt" and nxt is not None and not nxt.is_ptr and nxt.base in SCALAR_TYPES \
                    and SIZE_NAME.match(nxt.name):
                kinds.append("fmt")
                i += 1
            elif sig.name in LOAD_BYTES and p.name == LOAD_BYTES[sig.name][0] and nxt is not None \
                    and nxt.name == LOAD_BYTES[sig.name][1]:
                kinds += ["buf", "len"]  # a buffer of the program's that the helper fills, and how many bytes
                i += 1
            elif p.name == "sk" and (base == "void" or base == "struct bpf_sock"):
                if sig.name in NEEDS_ACQUIRED_SOCKET:
                    raise Unsupported("takes a socket reference from bpf_sk_lookup_*, which pybpfgen has not")
                kinds.append("sock")
            elif has_map and base == "void" and p.name == "key":
                kinds.append("key")
            elif has_map and base == "void" and p.name == "value":
                kinds.append("value")
            elif base in ("void", "char", "u8", "struct sockaddr") and nxt is not None and not nxt.is_ptr and nxt.base in SCALAR_TYPES \
                    and SIZE_NAME.match(nxt.name):
                kinds.append("data")
                i += 1
            else:
                raise Unsupported(f"argument `{p.ctype}{p.name}` has no pybpfgen kind")
        elif not p.is_ptr and (p.base in SCALAR_TYPES):
            kinds.append("u64")
        else:
            raise Unsupported(f"argument `{p.ctype} {p.name}` has no pybpfgen kind")
        i += 1
    if sig.variadic:
        if kinds and kinds[-1] == "fmt":
            kinds += ["u64"] * (5 - (len(sig.params)))  # at most 5 argument registers
        else:
            raise Unsupported("variadic arguments")
    ret = sig.ret.replace(" ", "")
    if "optout" in kinds:
        rk = "optref"
    elif ret == "void*":
        if has_map and ("key" in kinds or "sock" in kinds):
            rk = "ptr"
        else:
            raise Unsupported("returns a pointer that is not a map value")
    elif ret.endswith("*") or ret.startswith("struct"):
        raise Unsupported(f"returns `{sig.ret}`")
    elif sig.ret in SIGNED_RET or sig.ret == "void":
        rk = "i64"
    elif sig.ret in UNSIGNED_RET:
        rk = "u64"
    else:
        raise Unsupported(f"returns `{sig.ret}`")
    if len(sig.params) > 5:
        raise Unsupported("more than 5 arguments")
    return rk, tuple(kinds)


# ------------------------------------------------------------------ kernel probing
def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def probe_program(helper_id: int, keep_ctx: bool = False, sk_offset: int | None = None) -> bytes:
    """Call the helper with r1..r5 zeroed (``keep_ctx``: r1 keeps the context pointer; ``sk_offset``: r1 is
    the socket the context holds there, ``r1 = *(u64 *)(r1 + sk_offset)``)."""
    sk = b"" if sk_offset is None else _insn(0x79, 1, 1, sk_offset)  # ldxdw r1, [r1 + off]
    zero = b"".join(_insn(0xB7, r) for r in range(2 if keep_ctx or sk else 1, 6))  # mov64 rN, 0
    return sk + zero + _insn(0x85, imm=helper_id) + _insn(0xB7, 0) + _insn(0x95)  # call; r0 = 0; exit


NOT_ALLOWED = re.compile(r"unknown func|invalid func|program of this type cannot use helper|"
                         r"not supported for program type|"
                         r"might sleep in a non-sleepable prog|not allowed in non-sleepable")
CTX_REJECTED = re.compile(r"^R1 type=\S+ expected=", re.M)


def classify(log: str) -> bool:
    """True when the verifier's rejection says nothing against calling the helper."""
    return NOT_ALLOWED.search(log) is None


def _load(sc, progtype: str, insns: bytes) -> str | None:
    """Load a probe program: None when it loads, else the verifier log."""
    from kernel_loader.errors import BpfSyscallError

    pt, attach, flags = PROBED_PROGTYPES[progtype]
    try:
        fd = sc.prog_load(pt, insns, "GPL", "probe", attach, flags, log_level=1, log_size=1 << 16)
    except BpfSyscallError as e:
        if e.errno in (1, 13) and not e.log:  # EPERM / EACCES before the verifier ran
            raise SystemExit(f"gen_helpers: probing needs root: {e}") from None
        return e.log or f"{e}"
    sc.close(fd)
    return None


def probe(ids: dict[str, int]) -> dict[str, tuple[str, ...]]:
    """name -> program types (of :data:`PROBED_PROGTYPES`) whose programs may call the helper."""
    from kernel_loader.syscall import Syscall

    sc = Syscall()
    allowed: dict[str, tuple[str, ...]] = {}
    for name, hid in ids.items():
        if hid:
            allowed[name] = tuple(p for p in PROBED_PROGTYPES if classify(_load(sc, p, probe_program(hid)) or ""))
    return allowed


def probe_ctx(entries: list["Entry"]) -> dict[str, tuple[str, ...]]:
    """name -> program types that may call the helper but whose context is not what its first
    (``ctx``) argument takes (``bpf_get_socket_cookie`` in a syscall program wants a socket)."""
    from kernel_loader.syscall import Syscall

    sc = Syscall()
    out: dict[str, tuple[str, ...]] = {}
    for e in entries:
        if e.params[:1] not in (("ctx",), ("bpf_socket",)):
            continue
        bad = []
        for p in e.progtypes:
            log = _load(sc, p, probe_program(e.id, keep_ctx=True)) or ""
            # with r1 = ctx the verifier gets past argument 1 and may say more (bpf_get_func_ip)
            if CTX_REJECTED.search(log) or not classify(log):
                bad.append(p)
        if bad:
            out[e.name] = tuple(bad)
    return out


def ctx_sk_offset(progtype: str) -> int | None:
    """Where the program type's context holds its socket (``ctx.sk``), if it has one."""
    from .progtypes import PROG_TYPES

    pt = PROG_TYPES.get(progtype)
    ctx = pt.context if pt is not None else None
    fields = {f.name: f for f in ctx.fields} if ctx is not None else {}
    return fields["sk"].offset if "sk" in fields else None


def probe_socket_arg(entries: list["Entry"], mismatch: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    """name -> program types of ``mismatch`` where the helper's ``bpf_socket`` argument is the context's socket
    (``ctx->sk``: the cgroup setsockopt hook's bpf_sk_setsockopt/bpf_sk_getsockopt take a socket pointer)."""
    from kernel_loader.syscall import Syscall

    sc = Syscall()
    out: dict[str, tuple[str, ...]] = {}
    for e in entries:
        if e.params[:1] != ("bpf_socket",):
            continue
        good = []
        for p in mismatch.get(e.name, ()):
            off = ctx_sk_offset(p)
            if off is None:
                continue
            log = _load(sc, p, probe_program(e.id, sk_offset=off)) or ""
            # r2..r5 are zeros: the verifier refuses a later argument, once it took r1 = ctx->sk
            if not CTX_REJECTED.search(log) and classify(log):
                good.append(p)
        if good:
            out[e.name] = tuple(good)
    return out


def kernel_func_ids(path: str = "/sys/kernel/btf/vmlinux") -> dict[str, int] | None:
    """``enum bpf_func_id`` of the running kernel (to cross-check the header's ids), if readable."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError:
        return None
    from kernel_loader.btf import ENUM, Btf

    btf = Btf.parse(data)
    t = btf.find("bpf_func_id", ENUM)
    if t is None:
        return None
    values = cast("list[tuple[int, int]]", t.extra)  # an ENUM's extra: (name offset, value) per enumerator
    return {btf.str_at(n)[len("BPF_FUNC_"):]: v for n, v in values if btf.str_at(n).startswith("BPF_FUNC_")}


# ------------------------------------------------------------------ generation
def build(header_text: str, allowed: dict[str, tuple[str, ...]] | None,
          ctx_mismatch: dict[str, tuple[str, ...]] | None = None) -> list[Entry]:
    """Table rows; ``allowed``: probed program types per helper (None: not probed yet);
    ``ctx_mismatch``: program types removed because the helper's ``ctx`` argument is not their context."""
    ids = parse_ids(header_text)
    docs = parse_docs(header_text)
    _docs_cache.clear()
    _docs_cache.update(docs)
    entries: list[Entry] = []
    for name, hid in sorted(ids.items(), key=lambda kv: kv[1]):
        if hid == 0:
            continue
        e = Entry(hid, name)
        sigs = docs.get(name, [])
        if not sigs:
            e.reason = "not documented in the header"
            entries.append(e)
            continue
        chosen = None
        first_err = None
        for sig, summary in sigs:
            try:
                rk, kinds = encode(sig)
            except Unsupported as exc:
                first_err = first_err or str(exc)
                continue
            chosen = (sig, summary, rk, kinds)
            break
        e.signature, e.summary = sigs[0][0].text, sigs[0][1]
        if chosen is None:
            e.reason = first_err
        else:
            e.signature, e.summary, e.ret, e.params = chosen[0].text, chosen[1], chosen[2], chosen[3]
        drop = (ctx_mismatch or {}).get(name, ())
        e.progtypes = tuple(p for p in PROBED_PROGTYPES if p in (allowed or {}).get(name, ()) and p not in drop)
        if e.reason is None and not e.progtypes and allowed is not None:
            e.reason = "no program type pybpfgen supports may call it"
        entries.append(e)
    return entries


def header_version(path: str) -> str:
    """The linux-libc-dev package that owns the header, if dpkg knows it."""
    try:
        import subprocess
        owner = subprocess.run(["dpkg", "-S", os.path.realpath(path)], capture_output=True, text=True, timeout=10)
        pkg = owner.stdout.split(":")[0].strip() if owner.returncode == 0 else ""
        if pkg:
            ver = subprocess.run(["dpkg-query", "-W", "-f=${Version}", pkg], capture_output=True, text=True,
                                 timeout=10)
            if ver.returncode == 0:
                return f"{pkg} {ver.stdout.strip()}"
    except (OSError, ValueError):
        pass
    return "unknown"


def render(entries: list[Entry], meta: dict[str, str]) -> str:
    out = [
        '"""BPF helper table. Generated by pybpfgen/target/gen_helpers.py -- do not edit.',
        "",
        "Regenerate (as root, on the kernel to record):",
        "    sudo .venv/bin/python -m pybpfgen.target.gen_helpers",
        "",
        "Each row: (id, name, C signature, doc summary, return kind, parameter kinds,",
        "           program types allowed to call it (probed), reason it is unsupported or None).",
        '"""',
        "# fmt: off",
        f"UAPI_HEADER = {meta['header']!r}",
        f"UAPI_HEADER_PACKAGE = {meta['package']!r}",
        f"UAPI_HEADER_SHA256 = {meta['sha256']!r}",
        f"KERNEL_RELEASE = {meta['kernel']!r}",
        f"PROBED_PROGTYPES = {tuple(PROBED_PROGTYPES)!r}",
        f"KERNEL_ONLY_HELPERS = {meta['kernel_only']!r}  # in the kernel's enum bpf_func_id, not in the header",
        "# helper -> program types that may call it but whose context is not its `ctx` argument (left out below)",
        f"CTX_MISMATCH = {meta['ctx_mismatch']!r}",
        "# helper -> program types where its `bpf_socket` argument is the context's socket (ctx.sk), not the context",
        f"SOCKET_ARG = {meta['socket_arg']!r}",
        "",
        "TABLE = (",
    ]
    for e in entries:
        out.append(f"    ({e.id}, {e.name!r},")
        out.append(f"     {e.signature!r},")
        out.append(f"     {e.summary!r},")
        out.append(f"     {e.ret!r}, {e.params!r}, {e.progtypes!r}, {e.reason!r}),")
    out.append(")")
    return "\n".join(out) + "\n"


def py_params(e: Entry) -> list[tuple[str, str, str | None]]:
    """(name, annotation, default) of the DSL function for a supported helper."""
    sig = next(sig for sig, _ in _docs_cache[e.name] if sig.text == e.signature)
    names: list[str] = []
    ci = 0
    for kind in e.params:
        if ci < len(sig.params):
            n = sig.params[ci].name or f"arg{len(names) + 1}"
        else:  # the variadic arguments after a format string
            n = f"arg{len(names) - e.params.index('fmt')}"
        if keyword.iskeyword(n) or n in names:
            n += "_"
        names.append(n)
        ci += 2 if kind in ("data", "fmt", "optval", "optout") else 1
    ann = {"ctx": "Any", "map": "Any", "key": "Any", "value": "Any", "sock": "Any", "bpf_socket": "Any", "u64": "int",
           "data": "Any", "fmt": "str", "optval": "int | str", "buf": "Any", "len": "int"}
    required = len(e.params)
    while required and e.params[required - 1] == "u64" and (names[required - 1] == "flags" or "fmt" in e.params):
        required -= 1
    return [(n, ann[k], None if i < required else "0") for i, (k, n) in enumerate(zip(e.params, names))
            if k != "optout"]  # written by the helper: the DSL function returns it


_docs_cache: dict[str, list] = {}


def _docstring(lines: list[str]) -> str:
    body = "\n".join(("    " + line if line else "") for line in lines).lstrip()
    body = body.replace("\\", "\\\\").replace('"""', "'''")
    return f'    """{body}\n    """'


def render_lang(entries: list[Entry], meta: dict[str, str]) -> str:
    out = [
        '"""One DSL function per BPF helper pybpfgen can call. Generated by pybpfgen/target/gen_helpers.py',
        "-- do not edit (regenerate: ``sudo .venv/bin/python -m pybpfgen.target.gen_helpers``).",
        "",
        f"From {meta['header']} ({meta['package']}); program types probed on Linux {meta['kernel']}.",
        "",
        "Each function's ``__bpf_helper__`` names the kernel helper the compiler calls for it. Called from",
        "plain Python, a function raises :class:`NotInBPF`: the one simulation of helpers and maps is",
        "pybpfgen.testing, which runs whole programs.",
        '"""',
        "from __future__ import annotations",
        "",
        "from typing import Any, NoReturn, Optional",
        "",
        "",
        "class NotInBPF(NotImplementedError):",
        '    """A DSL function called from plain Python: it runs in a compiled BPF program, or in pybpfgen.testing."""',
        "",
        "",
        "def _simulate(name: str, *args: Any) -> NoReturn:",
        '    raise NotInBPF(f"bpf_{name}() runs only in a compiled BPF program; to run a program in Python, "',
        '                   "use pybpfgen.testing (docs/language.md: Testing policies without root)")',
    ]
    names = []
    for e in entries:
        if e.reason is not None:
            continue
        params = py_params(e)
        sig = ", ".join(f"{n}: {a}" + (f" = {d}" if d is not None else "") for n, a, d in params)
        ret = "Optional[Any]" if e.ret in ("ptr", "optref") else "int"
        doc = [f"``{e.signature}`` (helper {e.id})", ""]
        doc += textwrap.wrap(e.summary, 96, break_on_hyphens=False, break_long_words=False)
        doc += ["", "Program types: " + ", ".join(e.progtypes) + "."]
        if e.params:
            doc += ["Arguments (pybpfgen kinds): " + ", ".join(
                f"{n} ({k})" for (n, _, _), k in zip(params, [k for k in e.params if k != "optout"])) + "."]
        if e.ret == "optref":
            doc += ["Returns the option's value (``Optional[Ref[...]]``: None when the call fails; see docs/language.md)."]
        out += ["", "",
                f"def bpf_{e.name}({sig}) -> {ret}:",
                _docstring(doc),
                f"    return _simulate({e.name!r}" + "".join(f", {n}" for n, _, _ in params) + ")",
                "",
                "",
                f"bpf_{e.name}.__bpf_helper__ = {e.name!r}  # type: ignore[attr-defined]"]
        if e.name not in LANG_OWNS:
            names.append(f"bpf_{e.name}")
    out += ["", "# bpf_map_*_elem, bpf_sock_hash_update and bpf_msg_redirect_hash come from pybpfgen.lang itself",
            "__all__ = ["]
    out += [f"    {n!r}," for n in names]
    out += ["]"]
    return "\n".join(out) + "\n"


def current_probes(path: str) -> tuple[dict[str, tuple[str, ...]], dict]:
    """The probe results recorded in an existing table: (allowed, namespace)."""
    ns: dict = {}
    with open(path, encoding="utf-8") as f:
        exec(compile(f.read(), path, "exec"), ns)  # noqa: S102 - our own generated file
    allowed = {row[1]: tuple(row[6]) + tuple(ns["CTX_MISMATCH"].get(row[1], ())) for row in ns["TABLE"]}
    return allowed, ns


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="gen_helpers", description=__doc__.split("\n\n")[0])
    ap.add_argument("--header", default=DEFAULT_HEADER)
    ap.add_argument("-o", "--output", default=DEFAULT_OUTPUT, help="the table (default: %(default)s)")
    ap.add_argument("--lang-output", default=LANG_HELPERS_OUTPUT,
                    help="the DSL functions (default: %(default)s)")
    ap.add_argument("--reuse-probes", action="store_true",
                    help="take the allowed program types (and kernel release) from the current table")
    ap.add_argument("--check", action="store_true", help="exit 1 if the output file is not up to date")
    args = ap.parse_args(argv)

    with open(args.header, encoding="utf-8") as f:
        header_text = f.read()
    ids = parse_ids(header_text)
    meta = {"header": args.header, "sha256": hashlib.sha256(header_text.encode()).hexdigest()}
    if args.reuse_probes or args.check:
        allowed, ns = current_probes(args.output)
        meta["kernel"], meta["package"] = ns["KERNEL_RELEASE"], ns["UAPI_HEADER_PACKAGE"]
        meta["kernel_only"] = ns["KERNEL_ONLY_HELPERS"]
        ctx_mismatch = ns["CTX_MISMATCH"]
        socket_arg = ns.get("SOCKET_ARG", {})
    else:
        if os.geteuid() != 0:
            print("gen_helpers: probing the kernel needs root (or pass --reuse-probes)", file=sys.stderr)
            return 1
        kids = kernel_func_ids()
        if kids is not None:
            bad = {n: (i, kids[n]) for n, i in ids.items() if n in kids and kids[n] != i}
            if bad:
                raise SystemExit(f"gen_helpers: header ids disagree with the running kernel: {bad}")
            meta["kernel_only"] = tuple(sorted((n for n in kids if n not in ids and n != "unspec"),
                                               key=lambda n: kids[n]))
        else:
            meta["kernel_only"] = ()
        allowed = probe(ids)
        ctx_mismatch = probe_ctx(build(header_text, allowed))
        socket_arg = probe_socket_arg(build(header_text, allowed), ctx_mismatch)
        ctx_mismatch = {n: tuple(p for p in ps if p not in socket_arg.get(n, ())) for n, ps in ctx_mismatch.items()}
        ctx_mismatch = {n: ps for n, ps in ctx_mismatch.items() if ps}
        meta["kernel"] = os.uname().release
        meta["package"] = header_version(args.header)
    meta["ctx_mismatch"] = dict(sorted(ctx_mismatch.items()))
    meta["socket_arg"] = dict(sorted(socket_arg.items()))
    entries = build(header_text, allowed, ctx_mismatch)
    text = render(entries, meta)
    outputs = {args.output: text, args.lang_output: render_lang(entries, meta)}
    if args.check:
        stale = []
        for path, want in outputs.items():
            try:
                with open(path, encoding="utf-8") as f:
                    if f.read() != want:
                        stale.append(path)
            except FileNotFoundError:
                stale.append(path)
        for path in stale:
            print(f"gen_helpers: {path} is out of date; regenerate it", file=sys.stderr)
        return 1 if stale else 0
    for path, want in outputs.items():
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(want)
        os.replace(tmp, path)
    n = sum(1 for line in text.splitlines() if line.startswith("    ("))
    print(f"wrote {args.output}: {n} helpers, kernel {meta['kernel']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
