"""Summarise verifier logs and map the failing instruction to source."""
from __future__ import annotations

import re
from pybpfgen.target.records import Record

from . import complexity
from .errors import LoaderError, _errno_name

INSN_RE = re.compile(r"^(\d+): \([0-9a-f]{2}\)")
STATE_RE = re.compile(r"^(\d+): (R\d|frame|\w+=)")
SOURCE_RE = re.compile(r"^; (.*?)(?: @ (\S+):(\d+))?$")
TRAILER_RE = re.compile(r"^(processed \d+ insns|verification time|stack depth|-- END PROG LOAD LOG --)")
MAX_MESSAGE_LINES = 4


class LogSummary(Record, eq=True):
    message: list[str]              # the verifier's complaint (last lines)
    insn_line: str | None           # last instruction printed before the complaint
    insn_index: int | None
    source_comment: str | None      # the last '; text @ file:line' before it
    source_text: str | None
    source_file: str | None
    source_line: int | None

    def decisive_lines(self) -> list[str]:
        out = []
        if self.source_comment:
            out.append(self.source_comment)
        if self.insn_line:
            out.append(self.insn_line)
        out.extend(self.message)
        return out


def summarize_log(log: str) -> LogSummary:
    lines = [ln.rstrip() for ln in log.splitlines()]
    while lines and (not lines[-1] or TRAILER_RE.match(lines[-1])):
        lines.pop()
    last_insn = None
    insn_match = None
    for i in range(len(lines) - 1, -1, -1):
        insn_match = INSN_RE.match(lines[i])
        if insn_match:
            last_insn = i
            break
    if last_insn is None or insn_match is None:
        msg = [ln for ln in lines if ln][-MAX_MESSAGE_LINES:]
        return LogSummary(msg, None, None, None, None, None, None)
    msg = [ln for ln in lines[last_insn + 1:] if ln and not STATE_RE.match(ln)]
    if not msg:  # the complaint was printed on the instruction's own line or is missing
        msg = [lines[last_insn]]
    msg = msg[-MAX_MESSAGE_LINES:]
    insn_index = int(insn_match.group(1))
    comment = text = file = None
    line_no = None
    for j in range(last_insn - 1, -1, -1):
        if lines[j].startswith("; "):
            comment = lines[j]
            m = SOURCE_RE.match(lines[j])
            if m:
                text, file = m.group(1), m.group(2)
                line_no = int(m.group(3)) if m.group(3) else None
            break
    return LogSummary(msg, lines[last_insn], insn_index, comment, text, file, line_no)


def _source_line(path: str | None, line: int) -> str | None:
    """Line ``line`` of the source file, if it is here (a statement without instructions has no line info)."""
    try:
        with open(path or "", encoding="utf-8") as f:
            for i, text in enumerate(f, 1):
                if i == line:
                    return text.rstrip("\n")
    except OSError:
        pass
    return None


class VerifierError(LoaderError):
    """The kernel refused a program.  ``str()`` shows the decisive lines
    and the source location; ``.log`` has the full verifier log."""

    def __init__(self, prog_name: str, err: OSError, log: str, linked=None, path: str = "",
                 first_errno: int | None = None):
        self.prog_name = prog_name
        assert err.errno is not None  # the failed bpf(2) call's OSError (errno, message) carries its errno
        self.errno = err.errno
        self.errno_name = _errno_name(err.errno)
        self.log = log or ""
        self.path = path
        self.summary = summarize_log(self.log)
        self.source_file, self.source_line, self.source_text = self._locate(linked)
        # a complexity limit: which loop, and what bound fits (complexity.py); located at the loop
        self.advice: str | None = None
        found = complexity.advice("\n".join(self.summary.message), self.summary.insn_index, linked)
        if found is not None:
            self.advice = found[0]
            if found[1] and found[2]:
                self.source_file, self.source_line = found[1], found[2]
                self.source_text = next((li.text for li in linked.line_info
                                         if li.line == found[2] and li.text), self.source_text)
        self._locate_return(linked)
        super().__init__(self._format())

    def _locate_return(self, linked) -> None:
        """A return value outside the program type's range is rejected at the exit instruction, which all the
        returns share: name the returns that compute their value (from the object's .pybpfgen section)."""
        lines = getattr(getattr(linked, "program", None), "computed_returns", ())
        if not lines or not any("At program exit the register R0" in m for m in self.summary.message):
            return
        if self.source_line in lines:
            return
        texts = {li.line: li.text for li in linked.line_info if li.text}
        self.source_line = lines[0]
        self.source_text = texts.get(lines[0]) or _source_line(self.source_file, lines[0])
        self.advice = (f"the value comes from one of the returns at lines {', '.join(map(str, lines))}: return only "
                       "values the program type allows (compare, or return constants)")

    def _locate(self, linked):
        s = self.summary
        file, line, text = s.source_file, s.source_line, s.source_text
        if linked is not None and s.insn_index is not None:
            li = linked.source_at(s.insn_index)
            if li is not None and li.line:
                file, line, text = li.file or file, li.line, li.text or text
        return file, line, text

    def _format(self) -> str:
        where = ""
        if self.source_file and self.source_line:
            where = f" at {self.source_file}:{self.source_line}"
        head = self.summary.message[-1] if self.summary.message else "(no verifier log)"
        todo = self.advice or "fix the program"
        first = (f"program {self.prog_name} rejected by the kernel verifier ({self.errno_name}){where}: {head}"
                 f"; {todo} (run with -v for the full verifier log)")
        body = [f"    {ln}" for ln in self.summary.decisive_lines()]
        if self.source_text and self.source_file:
            body.append(f"    source: {self.source_file}:{self.source_line}: {self.source_text.strip()}")
        return "\n".join([first, *body])

    def full(self) -> str:
        return f"{self}\n--- full verifier log ---\n{self.log}"
