"""Source locations and diagnostics.

Every typed-IR node carries a :class:`Loc`. User errors are collected as
:class:`Diagnostic` objects and printed as ``file:line:col: error: message``
followed by the source line and a caret, in the style of C compilers.
"""
from __future__ import annotations

from .ir._records import _FACTORY, _frozen_delattr, _frozen_setattr, _setattr


class Loc:
    """A position in a DSL source file. ``line`` is 1-based, ``col`` 0-based (as in ``ast``)."""

    path: str
    line: int
    col: int = 0
    end_col: int | None = None

    def __init__(self, path, line, col=0, end_col=None):
        _setattr(self, 'path', path)
        _setattr(self, 'line', line)
        _setattr(self, 'col', col)
        _setattr(self, 'end_col', end_col)

    def __repr__(self):
        return f"{self.__class__.__qualname__}(path={self.path!r}, line={self.line!r}, col={self.col!r}, end_col={self.end_col!r})"

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return (self.path, self.line, self.col, self.end_col) == (other.path, other.line, other.col, other.end_col)
        return NotImplemented

    def __hash__(self):
        return hash((self.path, self.line, self.col, self.end_col))

    __setattr__ = _frozen_setattr
    __delattr__ = _frozen_delattr


    @classmethod
    def of(cls, path: str, node) -> "Loc":
        end = getattr(node, "end_col_offset", None)
        if getattr(node, "end_lineno", node.lineno) != node.lineno:
            end = None
        return cls(path, node.lineno, node.col_offset, end)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.col + 1}"


class Diagnostic:
    severity: str  # "error" | "warning" | "note"
    loc: Loc | None
    message: str
    hint: str | None = None

    def __init__(self, severity, loc, message, hint=None):
        self.severity = severity
        self.loc = loc
        self.message = message
        self.hint = hint

    def __repr__(self):
        return f"{self.__class__.__qualname__}(severity={self.severity!r}, loc={self.loc!r}, message={self.message!r}, hint={self.hint!r})"

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return (self.severity, self.loc, self.message, self.hint) == (other.severity, other.loc, other.message, other.hint)
        return NotImplemented

    __hash__ = None  # mutable and compared by value: unhashable


    def format(self, sources: dict[str, str] | None = None) -> str:
        where = f"{self.loc}: " if self.loc else ""
        out = [f"{where}{self.severity}: {self.message}"]
        text = (sources or {}).get(self.loc.path) if self.loc else None
        if text is not None:
            lines = text.splitlines()
            if 0 < self.loc.line <= len(lines):
                src = lines[self.loc.line - 1]
                num = str(self.loc.line)
                out.append(f" {num} | {src}")
                width = 1
                if self.loc.end_col is not None and self.loc.end_col > self.loc.col:
                    width = self.loc.end_col - self.loc.col
                out.append(f" {' ' * len(num)} | {' ' * self.loc.col}^{'~' * (width - 1)}")
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


class InternalCompilerError(Exception):
    """A bug in pybpfgen itself (not in the user's program)."""


class Diagnostics:
    """Collects diagnostics so that several errors are reported in one run."""

    items: list[Diagnostic]
    max_errors: int = 20

    def __init__(self, items=_FACTORY, max_errors=20):
        self.items = list() if items is _FACTORY else items
        self.max_errors = max_errors

    def __repr__(self):
        return f"{self.__class__.__qualname__}(items={self.items!r}, max_errors={self.max_errors!r})"

    def __eq__(self, other):
        if other.__class__ is self.__class__:
            return (self.items, self.max_errors) == (other.items, other.max_errors)
        return NotImplemented

    __hash__ = None  # mutable and compared by value: unhashable


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
