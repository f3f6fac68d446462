"""Source locations and diagnostics.

Every typed-IR node carries a :class:`Loc`. User errors are collected as
:class:`Diagnostic` objects and printed as ``file:line:col: error: message``
followed by the source line and a caret, in the style of C compilers.
"""
from __future__ import annotations

from .ir._records import LIST, Record


class Loc(Record, frozen=True):
    """A position in a DSL source file. ``line`` is 1-based, ``col`` 0-based (as in ``ast``)."""

    path: str
    line: int
    col: int = 0
    end_col: int | None = None

    def __init__(self, path: str, line: int, col: int = 0, end_col: int | None = None):
        # Record's generic __init__, unrolled: the frontend makes a Loc for every node it checks
        d = self.__dict__
        d["path"], d["line"], d["col"], d["end_col"] = path, line, col, end_col

    @classmethod
    def of(cls, path: str, node) -> "Loc":
        end = getattr(node, "end_col_offset", None)
        if getattr(node, "end_lineno", node.lineno) != node.lineno:
            end = None
        return cls(path, node.lineno, node.col_offset, end)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col + 1}"


class Diagnostic(Record, eq=True):
    severity: str  # "error" | "warning" | "note"
    loc: Loc | None
    message: str
    hint: str | None = None

    def format(self, sources: dict[str, str] | None = None) -> str:
        loc = self.loc
        where = f"{loc}: " if loc else ""
        out = [f"{where}{self.severity}: {self.message}"]
        text = (sources or {}).get(loc.path) if loc else None
        if loc is not None and text is not None:
            lines = text.splitlines()
            if 0 < loc.line <= len(lines):
                src = lines[loc.line - 1]
                num = str(loc.line)
                out.append(f" {num} | {src}")
                width = 1
                if loc.end_col is not None and loc.end_col > loc.col:
                    width = loc.end_col - loc.col
                out.append(f" {' ' * len(num)} | {' ' * loc.col}^{'~' * (width - 1)}")
        if self.hint:
            out.append(f"hint: {self.hint}")
        return "\n".join(out)


class CompileError(Exception):
    """One or more user errors in DSL source. Never an internal error."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = diagnostics
        super().__init__("\n".join(d.format() for d in diagnostics))


class UserError(Exception):
    """A single located user error, raised while checking and collected by :class:`Diagnostics`."""

    def __init__(self, loc: Loc | None, message: str, hint: str | None = None):
        super().__init__(message)
        self.diag = Diagnostic("error", loc, message, hint)


class FollowOnError(UserError):
    """An error caused by an earlier, reported one (a use of a variable whose assignment failed): not reported."""


class InternalCompilerError(Exception):
    """A bug in pybpfgen itself (not in the user's program)."""


class Diagnostics(Record, eq=True):
    """Collects diagnostics so that several errors are reported in one run."""

    items: list[Diagnostic] = LIST
    max_errors: int = 20

    def error(self, loc: Loc | None, message: str, hint: str | None = None) -> None:
        self.items.append(Diagnostic("error", loc, message, hint))

    def warning(self, loc: Loc | None, message: str, hint: str | None = None) -> None:
        self.items.append(Diagnostic("warning", loc, message, hint))

    def add(self, diag: Diagnostic) -> None:
        self.items.append(diag)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "warning"]

    def too_many(self) -> bool:
        return len(self.errors) >= self.max_errors

    def raise_if_errors(self) -> None:
        if self.errors:
            raise CompileError(self.items)
