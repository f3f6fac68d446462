"""Python's names for the constructs the frontend rejects: one table per kind of AST node, so that a message
says "`try` statements are not supported" and "`/` is not supported on integers: use `//`", never the AST's
class names (``Try``, ``Div``). tests/compiler/test_constructs.py checks that every statement and expression
class of the running Python's ``ast`` module is either supported or in these tables, and compiles each one.
"""
from __future__ import annotations

import ast

_NO_EXCEPTIONS = "BPF has no exceptions: check values with `if` and return early"

# statement class name -> (what it is, in Python's words; a hint for a program body or None). Every ast.stmt:
# the module level rejects most of them too.
STATEMENTS: dict[str, tuple[str, str | None]] = {
    "FunctionDef": ("nested functions (`def` inside a function)",
                    "define the function at module level: programs call module-level functions (inlined)"),
    "AsyncFunctionDef": ("`async def` functions", "BPF code runs to completion: write a plain module-level `def`"),
    "ClassDef": ("classes defined inside a function", "define Struct and IntEnum classes at module level"),
    "Return": ("`return` statements", None),
    "Delete": ("`del` statements", "to remove a map entry call `m.delete(key)`"),
    "Assign": ("assignments", None),
    "AugAssign": ("augmented assignments (`x += 1`)", None),
    "AnnAssign": ("annotated assignments", None),
    "TypeAlias": ("`type` aliases", "name the type at module level: `Port = u16` is not needed, write `u16`"),
    "For": ("`for` loops", None),
    "AsyncFor": ("`async for` loops", "write `for i in range(N):` with a constant N"),
    "While": ("`while` loops", "BPF loops must be bounded: write `for i in range(N):` with a constant N, and `break`"),
    "If": ("`if` statements", None),
    "With": ("`with` statements", "BPF has no context managers: write the calls out"),
    "AsyncWith": ("`async with` statements", "BPF has no context managers: write the calls out"),
    "Match": ("`match` statements", "use `if` / `elif` comparisons"),
    "Raise": ("`raise` statements", "BPF has no exceptions: return a value that says what happened"),
    "Try": ("`try` statements", _NO_EXCEPTIONS),
    "TryStar": ("`try ... except*` statements", _NO_EXCEPTIONS),
    "Assert": ("`assert` statements", "check the condition with `if` and return early"),
    "Import": ("imports inside a function", "import from pybpfgen.lang at the top of the module"),
    "ImportFrom": ("imports inside a function", "import from pybpfgen.lang at the top of the module"),
    "Global": ("`global` declarations", "declare a module variable with `x = Global(u64)` and use `x.value`"),
    "Nonlocal": ("`nonlocal` declarations", "pass values as parameters and return results"),
    "Expr": ("expression statements (such as `print(...)`)", None),
    "Pass": ("`pass` statements", None),
    "Break": ("`break` statements", None),
    "Continue": ("`continue` statements", None),
}

# expression class name -> (what it is, hint or None), for the expressions programs may not contain
EXPRESSIONS: dict[str, tuple[str, str | None]] = {
    "NamedExpr": ("assignment expressions (`:=`)", "assign the value on a line of its own first"),
    "Lambda": ("`lambda` functions", "define a function at module level"),
    "IfExp": ("conditional expressions (`a if c else b`)", "use an `if` statement"),
    "Dict": ("dict displays (`{...}`)", "use a map declared at module level, e.g. `Hash(key=u32, value=u64, ...)`"),
    "Set": ("set displays (`{...}`)", "use a map declared at module level as a set: `if key in m:`"),
    "ListComp": ("list comprehensions",
                 "declare an array and fill it in a loop: `a: u32[4] = [0, 0, 0, 0]` then `for i in range(4):`"),
    "SetComp": ("set comprehensions", "use a map declared at module level and a `for i in range(N):` loop"),
    "DictComp": ("dict comprehensions", "use a map declared at module level and a `for i in range(N):` loop"),
    "GeneratorExp": ("generator expressions", "write a `for i in range(N):` loop"),
    "Await": ("`await` expressions", "BPF code runs to completion: call the function directly"),
    "Yield": ("`yield` expressions", "return one value; keep state in a map or a Global"),
    "YieldFrom": ("`yield from` expressions", "return one value; keep state in a map or a Global"),
    "FormattedValue": ("f-strings", "bpf_printk takes a constant format and integers: `bpf_printk(\"n=%d\", n)`"),
    "JoinedStr": ("f-strings", "bpf_printk takes a constant format and integers: `bpf_printk(\"n=%d\", n)`"),
    "Starred": ("`*` unpacking", "pass each argument on its own"),
    "List": ("list displays here", "a list literal initialises an array: `a: u32[4] = [1, 2, 3, 4]`"),
    "Tuple": ("tuples", "BPF values are integers, structs and arrays: return a Struct to give back several values"),
    "Slice": ("slices", "index one element at a time, or copy a whole array"),
}

# constants programs may not contain: Python type name -> (what, hint)
CONSTANTS: dict[str, tuple[str, str | None]] = {
    "str": ("strings", "a string is only allowed as the format of bpf_printk"),
    "bytes": ("bytes literals", "use an array of integers: `a: u8[4] = [0x47, 0x45, 0x54, 0x20]`"),
    "float": ("floating-point numbers", "BPF has integers only: scale the value (e.g. milliseconds to microseconds)"),
    "complex": ("complex numbers", "BPF has integers only"),
    "ellipsis": ("`...`", "write a value, or `pass` for an empty body"),
}

# binary operators: class name -> the operator as written
OPERATORS: dict[str, str] = {
    "Add": "+", "Sub": "-", "Mult": "*", "MatMult": "@", "Div": "/", "Mod": "%", "Pow": "**", "LShift": "<<",
    "RShift": ">>", "BitOr": "|", "BitXor": "^", "BitAnd": "&", "FloorDiv": "//",
}
# what to write instead of an operator BPF integers do not have
OPERATOR_HINTS: dict[str, str] = {
    "**": "write the multiplication out, or use a constant (`1 << n` for a power of two)",
    "@": "there is no matrix multiplication in BPF",
}


def statement(node: ast.stmt) -> tuple[str, str | None]:
    """(what the statement is, hint) in Python's words."""
    what, hint = STATEMENTS.get(type(node).__name__, (f"`{type(node).__name__.lower()}` statements", None))
    return what, hint


def unsupported_statement(node: ast.stmt) -> tuple[str, str | None]:
    what, hint = statement(node)
    return f"{what} are not supported in BPF programs", hint


def unsupported_expression(node: ast.expr) -> tuple[str, str | None]:
    if isinstance(node, ast.Constant):
        what, hint = CONSTANTS.get(type(node.value).__name__, (f"{type(node.value).__name__} values", None))
    else:
        what, hint = EXPRESSIONS.get(type(node).__name__, (f"{type(node).__name__} expressions", None))
    return f"{what} are not supported in BPF programs", hint


def operator(op: ast.operator) -> str:
    """The operator as written: ``/`` for ``ast.Div``."""
    return OPERATORS.get(type(op).__name__, type(op).__name__)


def unsupported_operator(op: ast.operator, augmented: bool = False) -> tuple[str, str | None]:
    """The message for an operator BPF integers do not have; ``augmented``: ``x /= y``."""
    sym = operator(op)
    eq = "=" if augmented else ""
    if sym == "/":
        return f"`/{eq}` is not supported on integers: use `//{eq}`", "`//` is C's (unsigned) integer division"
    return f"`{sym}{eq}` is not supported on integers", OPERATOR_HINTS.get(sym)
