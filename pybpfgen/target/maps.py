"""Map kinds: one declarative table of what each BPF map type is and can do.

:mod:`pybpfgen.lang`'s map classes take their BPF map type from here (``@_map_kind``), the frontend checks
declarations, methods and raw helper calls against it, the lowering's map definitions follow from it, and
:mod:`pybpfgen.testing` simulates each kind by its capabilities. A new map type is one :class:`MapKind` here
plus its class in ``lang.py`` (see docs/architecture.md).

Plain data with no imports and plain classes (a NamedTuple class costs ~0.3 ms to create), so that importing
:mod:`pybpfgen.lang` stays cheap.
"""
from __future__ import annotations


class Method:
    """A DSL map method: the helper it calls and its DSL parameters, in the helper's order with the map left
    out (the map goes where the helper takes its ``map`` argument)."""

    __slots__ = ("name", "helper", "params", "required", "fixed")

    def __init__(self, name: str, helper: str, params: tuple[str, ...], required: int,
                 fixed: dict[str, int | None] | None = None):
        self.name, self.helper, self.params = name, helper, params
        self.required = required  # trailing parameters beyond these may be omitted (flags: 0)
        # helper parameters the method supplies itself (left out of its DSL parameters): name -> value, where
        # None is a NULL pointer and an int a constant
        self.fixed = fixed or {}

    def __repr__(self) -> str:
        return f"Method({self.name!r}, {self.helper!r})"


LOOKUP = Method("lookup", "map_lookup_elem", ("key",), 1)
UPDATE = Method("update", "map_update_elem", ("key", "value", "flags"), 2)
DELETE = Method("delete", "map_delete_elem", ("key",), 1)
SOCK_HASH_UPDATE = Method("update", "sock_hash_update", ("ctx", "key", "flags"), 2)
MSG_REDIRECT_HASH = Method("redirect", "msg_redirect_hash", ("msg", "key", "flags"), 2)
SOCK_MAP_UPDATE = Method("update", "sock_map_update", ("ctx", "key", "flags"), 2)
MSG_REDIRECT_MAP = Method("redirect", "msg_redirect_map", ("msg", "key", "flags"), 2)
RINGBUF_OUTPUT = Method("output", "ringbuf_output", ("value", "flags"), 1)
# a reservation (a pointer into the ring buffer) is checked by frontend/ringbuf.py: null-checked before use,
# submitted or discarded exactly once on every path, never copied
RINGBUF_RESERVE = Method("reserve", "ringbuf_reserve", ("event",), 0)
RINGBUF_SUBMIT = Method("submit", "ringbuf_submit", ("event", "flags"), 1)
RINGBUF_DISCARD = Method("discard", "ringbuf_discard", ("event", "flags"), 1)
RESERVATION_HELPERS = frozenset({"ringbuf_reserve", "ringbuf_submit", "ringbuf_discard"})
BPF_SK_STORAGE_GET_F_CREATE = 1
# sk.get(sk): the socket's value or None; get(sk, create=True) creates a zeroed one (flags, below)
SK_STORAGE_GET = Method("get", "sk_storage_get", ("sk", "create"), 1, fixed={"value": None})
# get_or_create(sk, init): creates the value from `init` (a NULL init pointer: zeroed)
SK_STORAGE_GET_OR_CREATE = Method("get_or_create", "sk_storage_get", ("sk", "init"), 1,
                                  fixed={"flags": BPF_SK_STORAGE_GET_F_CREATE})
SK_STORAGE_DELETE = Method("delete", "sk_storage_delete", ("sk",), 1)

# what a call of a method the kind does not have says: (message, hint); {kind} {name} {method} are filled in
NO_METHOD_MAP = ("map `{name}` has no method `{method}`", "map methods: lookup, update, delete")
NO_METHOD_SOCKET = ("{kind} `{name}` has no method `{method}` in BPF programs",
                    "methods: update(ctx, key, flags), redirect(msg, key, flags), delete(key)")
NO_METHOD_RINGBUF = ("RingBuf `{name}` has no method `{method}`",
                     "methods: output(value, flags), reserve(Event), submit(ev, flags), discard(ev, flags)")
NO_METHOD_STORAGE = ("SkStorage `{name}` has no method `{method}`",
                     "methods: get(sk), get(sk, create=True), get_or_create(sk, init), delete(sk)")
# methods a kind refuses with its own reason: method -> (message, hint)
ARRAY_REFUSES = {"delete": ("array elements cannot be deleted", "write a zero value with update()")}

_KEYED = frozenset({"key", "value", "max_entries", "flags"})
_INDEXED = frozenset({"value", "max_entries", "flags"})
_HASH_METHODS = (LOOKUP, UPDATE, DELETE)


class MapKind:
    __slots__ = ("kind", "dsl_class", "map_type", "params", "key", "value", "methods", "no_method", "refuses",
                 "percpu", "lru", "array", "large_values")

    def __init__(self, kind: str, dsl_class: str, map_type: int, params: frozenset, key: str, value: str,
                 methods: tuple[Method, ...], no_method: tuple[str, str] = NO_METHOD_MAP, refuses: dict | None = None,
                 percpu: bool = False, lru: bool = False, array: bool = False, large_values: bool = False):
        self.kind = kind  # the IR's name: "lru_hash"
        self.dsl_class = dsl_class  # the pybpfgen.lang class: "LRUHash"
        self.map_type = map_type  # BPF_MAP_TYPE_*
        self.params = params  # keyword parameters of the declaration
        # key: "type" (a declared key type) | "index" (an implicit u32 index) | "lpm" (prefixlen + address) | "none"
        # | "sock" (local storage: the value lives in the socket, programs reach it through a socket pointer,
        # user space through a socket fd; BTF key `int`, max_entries 0, BPF_F_NO_PREALLOC)
        self.key = key
        # value: "type" (a declared value type) | "socket" (u32 or u64: holds a socket) | "none" (RingBuf: records;
        # their type, when declared with event=, is the MapDecl's value)
        self.value = value
        self.methods = methods
        self.no_method = no_method  # what calling a method it lacks says
        self.refuses = refuses or {}  # method -> (message, hint)
        self.percpu = percpu  # one value per CPU
        self.lru = lru  # evicts the least recently used entry when full instead of failing with E2BIG
        self.array = array  # keys 0..max_entries-1, every value exists (zero-filled) and cannot be deleted
        self.large_values = large_values  # keys and values may exceed 512 bytes

    def __repr__(self) -> str:
        return f"MapKind({self.kind!r}, {self.map_type})"

    @property
    def has_key(self) -> bool:
        return self.key in ("type", "lpm")

    @property
    def lookup(self) -> bool:
        """Can programs look values up (``m.lookup(k)``, ``k in m``, bpf_map_lookup_elem)?"""
        return any(m.name == "lookup" for m in self.methods)

    def method(self, name: str) -> Method | None:
        return next((m for m in self.methods if m.name == name), None)


KINDS: tuple[MapKind, ...] = (
    MapKind("hash", "Hash", 1, _KEYED, "type", "type", _HASH_METHODS, large_values=True),
    MapKind("lru_hash", "LRUHash", 9, _KEYED, "type", "type", _HASH_METHODS, lru=True, large_values=True),
    MapKind("percpu_hash", "PerCPUHash", 5, _KEYED, "type", "type", _HASH_METHODS, percpu=True, large_values=True),
    MapKind("lru_percpu_hash", "LRUPerCPUHash", 10, _KEYED, "type", "type", _HASH_METHODS, percpu=True, lru=True,
            large_values=True),
    MapKind("lpm_trie", "LPMTrie", 11, _KEYED, "lpm", "type", _HASH_METHODS),
    MapKind("array", "Array", 2, _INDEXED, "index", "type", (LOOKUP, UPDATE), refuses=ARRAY_REFUSES, array=True,
            large_values=True),
    MapKind("percpu_array", "PerCPUArray", 6, _INDEXED, "index", "type", (LOOKUP, UPDATE), refuses=ARRAY_REFUSES,
            percpu=True, array=True, large_values=True),
    MapKind("sockhash", "SockHash", 18, _KEYED, "type", "socket", (SOCK_HASH_UPDATE, MSG_REDIRECT_HASH, DELETE),
            no_method=NO_METHOD_SOCKET),
    MapKind("sockmap", "SockMap", 15, _INDEXED, "index", "socket", (SOCK_MAP_UPDATE, MSG_REDIRECT_MAP, DELETE),
            no_method=NO_METHOD_SOCKET),
    MapKind("ringbuf", "RingBuf", 27, frozenset({"max_entries", "event"}), "none", "none",
            (RINGBUF_OUTPUT, RINGBUF_RESERVE, RINGBUF_SUBMIT, RINGBUF_DISCARD), no_method=NO_METHOD_RINGBUF),
    MapKind("sk_storage", "SkStorage", 24, frozenset({"value", "flags"}), "sock", "type",
            (SK_STORAGE_GET, SK_STORAGE_GET_OR_CREATE, SK_STORAGE_DELETE), no_method=NO_METHOD_STORAGE),
)
BY_KIND: dict[str, MapKind] = {k.kind: k for k in KINDS}
BY_CLASS: dict[str, MapKind] = {k.dsl_class: k for k in KINDS}

# every map type has a delete operation (arrays answer -EINVAL), so a raw bpf_map_delete_elem takes any map
_ANY_MAP = {"map_delete_elem"}


def kinds_for_helper(helper: str) -> tuple[str, ...] | None:
    """The kinds a raw helper call accepts as its map (table order), or None: any map."""
    if helper in _ANY_MAP:
        return None
    kinds = tuple(k.kind for k in KINDS if any(m.helper == helper for m in k.methods))
    return kinds or None


MAP_KINDS_FOR: dict[str, tuple[str, ...]] = {
    h: ks for h in sorted({m.helper for k in KINDS for m in k.methods}) if (ks := kinds_for_helper(h)) is not None}

# map type numbers the loader needs (kernel_loader reads these; it never imports the compiler)
MAP_SOCKMAP, MAP_SOCKHASH = BY_KIND["sockmap"].map_type, BY_KIND["sockhash"].map_type
PERCPU_MAP_TYPES = frozenset(k.map_type for k in KINDS if k.percpu)
ARRAY_MAP_TYPES = frozenset(k.map_type for k in KINDS if k.array)
# local storage (SK_STORAGE; INODE, TASK, CGRP storage): values live in their objects, looked up by an fd of
# the object in the caller's process, never walked (get_next_key: ENOTSUPP)
LOCAL_STORAGE_MAP_TYPES = frozenset({k.map_type for k in KINDS if k.key == "sock"} | {28, 29, 32})
# RINGBUF (and USER_RINGBUF, QUEUE, STACK, which pybpfgen does not declare), local storage: no keys to walk
UNITERABLE_MAP_TYPES = frozenset({k.map_type for k in KINDS if k.key == "none"} | {31, 22, 23}
                                 | LOCAL_STORAGE_MAP_TYPES)
MAP_SK_STORAGE = BY_KIND["sk_storage"].map_type
# names of BPF_MAP_TYPE_* the kernel may report (maps that are not ours too)
MAP_TYPE_NAMES: dict[int, str] = {3: "prog_array", 4: "perf_event_array", 12: "array_of_maps", 13: "hash_of_maps",
                                  28: "inode_storage", 29: "task_storage", 32: "cgrp_storage",
                                  **{k.map_type: k.kind for k in KINDS}}
