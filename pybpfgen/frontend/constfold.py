"""Evaluation of module-level constant expressions (integers only)."""
from __future__ import annotations

import ast
import operator

from ..diagnostics import Loc, UserError
from .constructs import CONSTANTS

_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.FloorDiv: None, ast.Mod: None,
        ast.BitAnd: operator.and_, ast.BitOr: operator.or_, ast.BitXor: operator.xor,
        ast.LShift: operator.lshift, ast.RShift: operator.rshift}


class ConstEvaluator:
    def __init__(self, builder):
        self.b = builder

    def eval(self, node: ast.expr) -> int:
        loc = Loc.of(self.b.path, node)
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int):
                what = CONSTANTS.get(type(node.value).__name__, (type(node.value).__name__,))[0]
                raise UserError(loc, f"module-level constants must be integers, not {what}")
            return node.value
        if isinstance(node, (ast.Name, ast.Attribute)):
            sym = self.b.resolve(node)
            if sym is not None and sym.kind == "const":
                return sym.value
            if sym is None and isinstance(node, ast.Name):
                raise UserError(loc, f"name `{node.id}` is not defined", "define it above this line")
            raise UserError(loc, f"`{ast.unparse(node)}` is not an integer constant")
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd, ast.Invert)):
            v = self.eval(node.operand)
            return -v if isinstance(node.op, ast.USub) else (~v if isinstance(node.op, ast.Invert) else v)
        if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
            left, right = self.eval(node.left), self.eval(node.right)
            if isinstance(node.op, (ast.FloorDiv, ast.Mod)):
                if right == 0:
                    raise UserError(loc, "division by zero in a constant expression")
                q = abs(left) // abs(right) * (1 if (left >= 0) == (right >= 0) else -1)  # C truncation
                return q if isinstance(node.op, ast.FloorDiv) else left - q * right
            if isinstance(node.op, (ast.LShift, ast.RShift)) and not 0 <= right < 64:
                raise UserError(loc, f"shift count {right} is outside 0..63")
            fn = _BIN[type(node.op)]
            assert fn is not None  # // and % (None in the table) are handled above
            return fn(left, right)
        raise UserError(loc, f"`{ast.unparse(node)}` is not a constant expression",
                        "module-level names hold integer constants, maps (Hash(...), SockHash(...)) or LICENSE")
