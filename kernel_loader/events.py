"""Reading the records of a ring buffer map (``BPF_MAP_TYPE_RINGBUF``) of a loaded object
(``pybpfgen events``), decoded with the records' BTF type.

The kernel's layout (kernel/bpf/ringbuf.c), mapped from the map's fd:

- offset 0, one page, read-write: the consumer page; ``consumer_pos`` (u64) at its start, which user space
  advances past the records it has read;
- offset one page, read-only: the producer page (``producer_pos`` at its start) followed by the data area of
  ``max_entries`` bytes, mapped twice in a row so that a record that wraps around the end is contiguous.

Each record starts with an 8-byte header: ``u32 len`` (with ``BPF_RINGBUF_BUSY_BIT``: still being written;
``BPF_RINGBUF_DISCARD_BIT``: discarded, skip it) and ``u32 pg_off``; the next record starts at the length plus
the header rounded up to 8. The map's fd is readable (epoll) when records are waiting.

The records' type: pybpfgen records it in the BTF of the map's definition (``struct Event (*type)[27]``, see
docs/language.md, "Ring buffers"), read here from the map's BTF or from its object's programs' BTF. Without
one, records are bytes. Nothing here knows any particular program.
"""
from __future__ import annotations

import errno
import mmap
import os
import select
import struct
import time

from . import syscall as _syscall
from .errors import LoaderError
from .lifecycle import user_errors as _user_errors
from .pins import DEFAULT_PIN_ROOT

from .mapapi import MAP_RINGBUF
BUSY_BIT, DISCARD_BIT = 1 << 31, 1 << 30       # BPF_RINGBUF_BUSY_BIT, BPF_RINGBUF_DISCARD_BIT
HDR_SIZE = 8                                   # BPF_RINGBUF_HDR_SZ
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


def record_size(length: int) -> int:
    """The room a record of ``length`` bytes (its header's len, flag bits cleared) takes in the data area."""
    return (length + HDR_SIZE + 7) & ~7


class RingBufReader:
    """Reads one ring buffer map. ``fd``: the map (owned: :meth:`close` closes it); ``decode``: bytes -> the
    value given to the caller (default: the bytes). Use as an iterator (:meth:`read`) or call :meth:`poll`."""

    def __init__(self, fd: int, max_entries: int, decode=None, name: str = "", sc=None):
        self.sc = sc or _syscall.get_default()
        self.fd, self.size, self.name = fd, max_entries, name
        self.decode = decode or bytes
        self.event_type: str | None = None  # the records' BTF type name (open_events), None: bytes
        self.event_picture: str | None = None  # its fields, as `pybpfgen map show` pictures a value
        self._lock: int | None = None  # open_events: the fd of this reader's lock (_claim), released by close()
        self.mask = max_entries - 1
        page = mmap.PAGESIZE
        self._page = page
        self._consumer = mmap.mmap(fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        try:
            self._producer = mmap.mmap(fd, page + 2 * max_entries, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        except BaseException:
            self._consumer.close()
            raise
        self._epoll = select.epoll()
        self._epoll.register(fd, select.EPOLLIN)

    # ------------------------------------------------------------ positions
    @property
    def consumer_pos(self) -> int:
        return _U64.unpack_from(self._consumer, 0)[0]

    @property
    def producer_pos(self) -> int:
        return _U64.unpack_from(self._producer, 0)[0]

    def pending(self) -> int:
        """Bytes written by producers and not yet consumed (records, headers, records still being written)."""
        return self.producer_pos - self.consumer_pos

    # ------------------------------------------------------------ reading
    def consume(self, limit: int | None = None) -> list:
        """The records available now, oldest first (at most ``limit``), each consumed: the consumer position
        moves past it, which gives its room back to the producers. Stops at a record still being written."""
        out: list = []
        cons = self.consumer_pos
        while limit is None or len(out) < limit:
            prod = self.producer_pos
            if cons == prod:
                break
            if cons > prod or cons & 7 or prod - cons > self.size:
                self._lost(cons, prod)
            off = cons & self.mask
            length = _U32.unpack_from(self._producer, self._page + off)[0]
            if length & BUSY_BIT:
                break
            n = length & ~(BUSY_BIT | DISCARD_BIT)
            if record_size(n) > prod - cons:   # not a header: the position is not at a record
                self._lost(cons, prod)
            if not length & DISCARD_BIT:
                start = self._page + off + HDR_SIZE
                out.append(self.decode(bytes(self._producer[start:start + n])))
            cons += record_size(n)
            _U64.pack_into(self._consumer, 0, cons)
        return out

    def _lost(self, cons: int, prod: int):
        """The consumer position does not point at a record (another consumer wrote it meanwhile, or it was
        damaged): records cannot be told apart any more. Skip to the producer position, which gives the buffer
        back to the producers (with the consumer position past the producer's, every reservation would fail
        for good), and say so."""
        _U64.pack_into(self._consumer, 0, prod)
        raise LoaderError(f"ring buffer {self.name or self.fd}: the consumer position ({cons}) does not point at a "
                          f"record (producer position {prod}): another reader consumed from it at the same time? "
                          f"skipped to the producer position; the records in between are lost")

    def poll(self, timeout: float | None = None, limit: int | None = None) -> list:
        """The records available now, or waiting up to ``timeout`` seconds (None: forever) for some."""
        recs = self.consume(limit)
        if recs or timeout == 0:
            return recs
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = -1.0 if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                self._epoll.poll(left if deadline is None else min(left, 1.0))
            except InterruptedError:  # pragma: no cover - PEP 475 retries; kept for old interpreters
                pass
            recs = self.consume(limit)
            if recs or (deadline is not None and time.monotonic() >= deadline):
                return recs

    def read(self, count: int | None = None, timeout: float | None = None):
        """Yield records as they come: ``count`` of them (None: without end), waiting at most ``timeout``
        seconds in all (None: forever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        got = 0
        while count is None or got < count:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            # one record at a time: the consumer position never runs ahead of what was yielded, so a caller that
            # stops early (break, an exception, a closed pipe) leaves the rest in the buffer for the next reader
            recs = self.poll(left, 1)
            for r in recs:
                got += 1
                yield r
            if not recs and deadline is not None and time.monotonic() >= deadline:
                return

    __iter__ = read

    def close(self) -> None:
        lock = self.__dict__.pop("_lock", None)
        if lock is not None:
            _release(lock)
        for res in ("_epoll", "_producer", "_consumer"):
            r = self.__dict__.pop(res, None)
            if r is not None:
                r.close()
        if self.fd >= 0:
            self.sc.close(self.fd)
            self.fd = -1

    def __enter__(self) -> "RingBufReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass


def event_type(btfs: list, name: str):
    """``(btf, type id)`` of the records of ring buffer ``name`` recorded in the first of ``btfs`` (the map's,
    then its object's) that defines it, or ``(None, 0)``."""
    from .btf import VAR, BtfError
    for btf in btfs:
        if btf is None:
            continue
        try:
            if btf.find(name, VAR) is None:
                continue
            tid = btf.map_definition(name).get("event_type_id", 0)
        except BtfError:
            continue
        if tid:
            return btf, tid
    return None, 0


def _claim(map_id: int, what: str) -> int:
    """An exclusive lock on ring buffer map ``map_id`` for this reader (a ring buffer has one consumer
    position: two readers at once would read records twice and move it back over records the producers have
    since overwritten), held until its fd is closed. A lock file in the state directory, by map id."""
    import fcntl

    from .state import state_dir
    d = state_dir()
    os.makedirs(d, mode=0o700, exist_ok=True)
    path = os.path.join(d, f"ringbuf-{map_id}.lock")
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise LoaderError(f"{what} is being read by another reader (`pybpfgen events` or open_events); a "
                              f"ring buffer has one consumer: stop the other reader first") from None
        try:
            if os.stat(path).st_ino == os.fstat(fd).st_ino:
                return fd  # (the previous holder removes the file when it closes: lock the file that is there)
        except FileNotFoundError:
            pass
        os.close(fd)


def _release(fd: int) -> None:
    """Remove the lock file while holding it (a reader that opened it meanwhile sees it gone and retries)."""
    try:
        path = os.readlink(f"/proc/self/fd/{fd}")
        if os.stat(path).st_ino == os.fstat(fd).st_ino:
            os.unlink(path)
    except OSError:
        pass
    os.close(fd)


@_user_errors
def open_events(object: str, map: str, pin_root: str = DEFAULT_PIN_ROOT, *, sc=None) -> RingBufReader:
    """A reader of the ring buffer ``map`` of the loaded object ``object`` (close it, or use it as a context
    manager). Its records are decoded with their BTF type (ints, dicts for structs, lists for arrays, as
    ``pybpfgen map`` decodes values), or are bytes when the object recorded none (``reader.event_type`` is
    then None)."""
    from .mapapi import _object_dir, _open
    sc = sc or _syscall.get_default()
    pin_dir = _object_dir(object, pin_root)
    m = _open(pin_dir, object, map, sc)
    info = m.info()
    if info.type != MAP_RINGBUF:
        name = m.name
        m.close()
        raise LoaderError(f"{object}/{name} is a {info.type_name}, not a ring buffer; its entries are read with "
                          f"`pybpfgen map dump {object} {name}`")
    btf, tid = m.btf(), m.event_type_id     # found by _open in the map's definition
    name = m.name
    try:
        lock = _claim(info.id, f"{object}/{name}")
    except BaseException:
        m.close()
        raise
    fd = os.dup(m.fd)  # the reader owns its fd; the Map closes its own
    m.close()
    decode = None
    if tid:
        def decode(raw: bytes, _btf=btf, _tid=tid):
            return _btf.decode(_tid, raw)
    try:
        r = RingBufReader(fd, info.max_entries, decode, name, sc)
    except OSError as e:
        os.close(fd)
        _release(lock)
        if e.errno in (errno.EPERM, errno.EACCES):
            raise
        raise LoaderError(f"{object}/{name}: cannot map the ring buffer ({errno.errorcode.get(e.errno or 0, e)})") \
            from None
    r._lock = lock
    r.event_type = btf.type_name(tid) if tid else None
    r.event_picture = btf.describe(tid) if tid else None
    return r


def read_events(object: str, map: str, pin_root: str = DEFAULT_PIN_ROOT, *, count: int | None = None,
                timeout: float | None = None, sc=None):
    """Yield the records of ring buffer ``map`` of ``object`` as they come (see :func:`open_events`):
    ``count`` of them (None: without end), within ``timeout`` seconds in all (None: forever)."""
    with open_events(object, map, pin_root, sc=sc) as r:
        yield from r.read(count, timeout)
