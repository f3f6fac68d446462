"""Every construct the frontend rejects is named in Python's words, never by its AST class (issue 14): each
statement and expression class of the running Python's ``ast`` module is either supported or in the tables of
``pybpfgen/frontend/constructs.py``, and each is compiled here, in a program and at module level."""
from __future__ import annotations

import ast
import re

import pytest

from pybpfgen.frontend import constructs

# what a program body may contain (statements.py, expressions.py); everything else is in the tables
SUPPORTED_STATEMENTS = {"Return", "Assign", "AugAssign", "AnnAssign", "For", "If", "Expr", "Pass", "Break",
                        "Continue"}
SUPPORTED_EXPRESSIONS = {"BoolOp", "BinOp", "UnaryOp", "Compare", "Call", "Constant", "Attribute", "Subscript",
                         "Name"}

# a line of a program body that uses each rejected construct (x is a u32 local, ctx the context)
STATEMENT_SNIPPETS = {
    "FunctionDef": "def inner() -> int:\n        return 1",
    "AsyncFunctionDef": "async def inner() -> int:\n        return 1",
    "ClassDef": "class K(Struct):\n        a: u32",
    "Delete": "del x",
    "TypeAlias": "type Port = u16",
    "AsyncFor": "async for i in range(3):\n        pass",
    "While": "while x < 3:\n        x += 1",
    "With": "with x:\n        pass",
    "AsyncWith": "async with x:\n        pass",
    "Match": "match x:\n        case 1:\n            pass",
    "Raise": "raise ValueError",
    "Try": "try:\n        x = 1\n    except Exception:\n        pass",
    "TryStar": "try:\n        x = 1\n    except* Exception:\n        pass",
    "Assert": "assert x == 0",
    "Import": "import os",
    "ImportFrom": "from os import path",
    "Global": "global x",
    "Nonlocal": "nonlocal x",
}
EXPRESSION_SNIPPETS = {
    "NamedExpr": "(y := 1)",
    "Lambda": "lambda: 1",
    "IfExp": "1 if x else 0",
    "Dict": "{1: 2}",
    "Set": "{1, 2}",
    "ListComp": "[i for i in range(3)]",
    "SetComp": "{i for i in range(3)}",
    "DictComp": "{i: i for i in range(3)}",
    "GeneratorExp": "(i for i in range(3))",
    "Await": "await x",
    "Yield": "(yield x)",
    "YieldFrom": "(yield from x)",
    "JoinedStr": "f'{x}'",
    "FormattedValue": "f'{x}'",
    "Starred": "bpf_ktime_get_ns(*x)",
    "List": "x + [1, 2]",
    "Tuple": "x + (1, 2)",
    "Slice": "ctx.remote_ip6[0:2]",
}
CONSTANT_SNIPPETS = {"str": "'text'", "bytes": "b'GET '", "float": "1.5", "complex": "2j", "ellipsis": "..."}
OPERATOR_SNIPPETS = {"Div": ("x / 2", "`/` is not supported on integers: use `//`"),
                     "Pow": ("x ** 2", "`**` is not supported on integers"),
                     "MatMult": ("x @ x", "`@` is not supported on integers")}


def _classes(base: type) -> set[str]:
    """The node classes of the running Python (not the deprecated aliases of Constant: Num, Str, ...)."""
    return {c.__name__ for c in vars(ast).values()
            if isinstance(c, type) and issubclass(c, base) and c is not base
            and not (issubclass(c, ast.Constant) and c is not ast.Constant)}


def test_every_statement_class_is_named():
    assert _classes(ast.stmt) <= set(constructs.STATEMENTS), _classes(ast.stmt) - set(constructs.STATEMENTS)
    rejected = _classes(ast.stmt) - SUPPORTED_STATEMENTS
    assert rejected <= set(STATEMENT_SNIPPETS), rejected - set(STATEMENT_SNIPPETS)


def test_every_expression_class_is_supported_or_named():
    rejected = _classes(ast.expr) - SUPPORTED_EXPRESSIONS
    assert rejected <= set(constructs.EXPRESSIONS), rejected - set(constructs.EXPRESSIONS)
    assert rejected <= set(EXPRESSION_SNIPPETS), rejected - set(EXPRESSION_SNIPPETS)


def test_every_operator_has_its_symbol():
    ops = _classes(ast.operator)
    assert ops <= set(constructs.OPERATORS), ops - set(constructs.OPERATORS)
    assert set(constructs.OPERATORS.values()) >= {"/", "//", "**", "@"}


def _program(line: str) -> str:
    return f"""
socks = SockHash(key=u32, max_entries=4)

@sk_msg(socks)
def prog(msg: SkMsg) -> int:
    x: u32 = 0
    ctx = 0
    {line}
    return SK_PASS
"""


def _no_class_names(message: str) -> None:
    names = _classes(ast.AST) | {"Div", "Pow", "MatMult", "str", "float", "bytes", "complex", "ellipsis"}
    words = set(re.findall(r"[A-Za-z_]+", message.replace("`", " ")))
    # lower-case Python keywords and words ("if", "set", "list") are fine; the AST's CamelCase names are not
    leaked = {w for w in words & names if w[0].isupper() or w in ("str", "ellipsis")}
    assert not leaked, f"{message!r} names {leaked}"


def _line(prog: str, snippet: str) -> int:
    return 1 + prog.splitlines().index(f"    {snippet.splitlines()[0]}") + 1  # + the compile_src header line


@pytest.mark.parametrize("cls", sorted(_classes(ast.stmt) - SUPPORTED_STATEMENTS))
def test_rejected_statement_in_a_program_is_named(cls, compile_src):
    snippet = STATEMENT_SNIPPETS[cls]
    prog = _program(snippet)
    c = compile_src(prog)
    what, hint = constructs.STATEMENTS[cls]
    want = f"{what} are not supported in BPF programs"
    found = [d for d in c.errors if d.message == want]
    assert found, (cls, c.messages)
    assert found[0].loc.line == _line(prog, snippet)
    assert found[0].hint == hint
    for m in c.messages:
        _no_class_names(m)


@pytest.mark.parametrize("cls", sorted(_classes(ast.expr) - SUPPORTED_EXPRESSIONS))
def test_rejected_expression_in_a_program_is_named(cls, compile_src):
    snippet = f"y = {EXPRESSION_SNIPPETS[cls]}"
    c = compile_src(_program(snippet))
    assert c.errors, cls
    what = constructs.EXPRESSIONS[cls][0]
    if cls == "FormattedValue":  # only inside an f-string, which is reported as a whole
        what = constructs.EXPRESSIONS["JoinedStr"][0]
    assert any(m == f"{what} are not supported in BPF programs" for m in c.messages), (cls, c.messages)
    for m in c.messages:
        _no_class_names(m)
        assert "may be used before it is assigned" not in m  # no follow-on error


@pytest.mark.parametrize("kind", sorted(CONSTANT_SNIPPETS))
def test_rejected_constant_is_named(kind, compile_src):
    c = compile_src(_program(f"y = x + {CONSTANT_SNIPPETS[kind]}"))
    what = constructs.CONSTANTS[kind][0]
    assert f"{what} are not supported in BPF programs" in c.messages, c.messages
    for m in c.messages:
        _no_class_names(m)


@pytest.mark.parametrize("cls", sorted(OPERATOR_SNIPPETS))
def test_rejected_operator_is_written_as_an_operator(cls, compile_src):
    expr, want = OPERATOR_SNIPPETS[cls]
    c = compile_src(_program(f"y = {expr}"))
    assert c.messages == [want], c.messages
    c = compile_src(_program(f"x {constructs.OPERATORS[cls]}= 2"))
    assert c.messages == [want.replace(f"`{constructs.OPERATORS[cls]}`", f"`{constructs.OPERATORS[cls]}=`")
                          .replace("use `//`", "use `//=`")], c.messages


@pytest.mark.parametrize("cls", sorted(_classes(ast.stmt) - {"Assign", "AnnAssign", "FunctionDef", "ClassDef",
                                                             "Import", "ImportFrom", "Expr"}))
def test_rejected_statement_at_module_level_is_named(cls, compile_src):
    snippet = STATEMENT_SNIPPETS.get(cls) or {
        "Return": "return 1", "AugAssign": "X += 1", "For": "for i in range(3):\n        pass",
        "If": "if X:\n        pass", "Pass": "pass", "Break": "break", "Continue": "continue"}[cls]
    body = "\n".join(line[4:] if line.startswith("    ") else line for line in snippet.splitlines())
    c = compile_src(f"X = 1\n{body}\n")
    what = constructs.STATEMENTS[cls][0]
    assert any(m == f"{what} are not allowed at module level in a BPF module" for m in c.messages), \
        (cls, c.messages)
    for m in c.messages:
        _no_class_names(m)


def test_module_constant_of_another_type_is_named(compile_src):
    c = compile_src("X = 1.5\n")
    assert "module-level constants must be integers, not floating-point numbers" in c.messages, c.messages
