"""Stress mode: the bytes of a stream and their check (pure; no sockets).

A stream is a sequence of records ``HEADER (magic, seq, payload length, CRC-32 of the payload) + payload``
whose sizes come from the round's plan (stress_plan.direction_plan); the writes cut it at arbitrary points, so a
1 B write carries one byte of some record. The receiver parses the records as they arrive and counts, per
stream: records lost (never seen), duplicated (seen twice), reordered (first seen after a later one), corrupt
(bad magic: framing lost; CRC mismatch; bytes past the end), plus the SHA-256 of everything, which the
orchestrator compares with the sender's.
Standard library only.
"""
from __future__ import annotations

import hashlib
import os
import random
import struct
import zlib

from .stress_plan import HEADER, DirPlan

MAGIC = 0x53545253            # "STRS"
HDR = struct.Struct("!IIII")  # magic, seq, payload length, crc32(payload)
assert HDR.size == HEADER
_POOL = os.urandom(1 << 20) + os.urandom(64 << 10)


class StreamSource:
    """The sender's bytes, built record by record as the writes ask for them."""

    def __init__(self, plan: DirPlan, seed: int = 0):
        self.plan = plan
        self._rng = random.Random(seed)
        self._next = 0                   # next record to build
        self._buf = bytearray()
        self._pos = 0
        self.sha = hashlib.sha256()
        self.taken = 0

    def _build(self) -> None:
        p = self.plan.records[self._next]
        off = self._rng.randrange(0, len(_POOL) - p)
        body = memoryview(_POOL)[off:off + p]
        self._buf += HDR.pack(MAGIC, self._next, p, zlib.crc32(body))
        self._buf += body
        self._next += 1

    def take(self, n: int) -> bytes:
        """The next ``n`` bytes of the stream (fewer only at its end)."""
        while len(self._buf) - self._pos < n and self._next < len(self.plan.records):
            if self._pos > (4 << 20):
                del self._buf[:self._pos]
                self._pos = 0
            self._build()
        out = bytes(self._buf[self._pos:self._pos + n])
        self._pos += len(out)
        self.taken += len(out)
        self.sha.update(out)
        return out


class StreamChecker:
    """Feeds received bytes through the record parser; ``counts()`` says what was lost, duplicated, reordered."""

    def __init__(self, n_records: int, total: int):
        self.n_records, self.total = n_records, total
        self.sha = hashlib.sha256()
        self.bytes = 0
        self._seen = bytearray(n_records)
        self._hdr = bytearray()
        self._left = 0                   # payload bytes still to come for the current record
        self._seq = -1
        self._crc = 0
        self._want_crc = 0
        self._max_seq = -1
        self.dup = self.reordered = self.corrupt = 0
        self.framing_lost = False
        self.eof = False

    def feed(self, data) -> None:
        mv = memoryview(data)
        self.sha.update(mv)
        self.bytes += len(mv)
        if self.framing_lost:
            return
        i, n = 0, len(mv)
        while i < n:
            if self._left == 0 and self._seq < 0:
                k = min(HEADER - len(self._hdr), n - i)
                self._hdr += mv[i:i + k]
                i += k
                if len(self._hdr) < HEADER:
                    return
                magic, seq, ln, crc = HDR.unpack(bytes(self._hdr))
                self._hdr.clear()
                if magic != MAGIC or seq >= self.n_records:
                    self.corrupt += 1
                    self.framing_lost = True
                    return
                self._seq, self._left, self._want_crc, self._crc = seq, ln, crc, 0
                if ln == 0:
                    self._end_record()
                continue
            k = min(self._left, n - i)
            self._crc = zlib.crc32(mv[i:i + k], self._crc)
            self._left -= k
            i += k
            if self._left == 0:
                self._end_record()

    def _end_record(self) -> None:
        seq = self._seq
        self._seq = -1
        if self._crc != self._want_crc:
            self.corrupt += 1
        if self._seen[seq]:
            self.dup += 1
        elif seq < self._max_seq:
            self.reordered += 1
        self._seen[seq] = min(255, self._seen[seq] + 1)
        self._max_seq = max(self._max_seq, seq)

    def counts(self, complete: bool = True) -> dict:
        """``complete``: the stream ended (EOF) or should have; then records never seen count as lost and a
        partial record at the end as corrupt. After an aborted (stalled) round pass False: only what arrived
        wrongly is counted."""
        lost = 0
        corrupt = self.corrupt
        if complete:
            lost = self._seen.count(0)
            if not self.framing_lost and (self._hdr or self._seq >= 0):
                corrupt += 1
            if self.bytes > self.total and not self.framing_lost and not self.dup:
                corrupt += 1
        return {"lost": lost, "dup": self.dup, "reordered": self.reordered, "corrupt": corrupt,
                "bytes": self.bytes, "sha": self.sha.hexdigest()}
