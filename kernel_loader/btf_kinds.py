"""BTF's constants (kinds, INT encodings, linkage) and its error: the vocabulary of the btf modules."""
from __future__ import annotations

from .errors import ObjectFormatError

BTF_MAGIC = 0xEB9F

# kinds
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT = range(1, 12)
FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT, DECL_TAG, TYPE_TAG, ENUM64 = range(12, 20)
KIND_NAMES = {
    0: "void", INT: "int", PTR: "ptr", ARRAY: "array", STRUCT: "struct", UNION: "union",
    ENUM: "enum", FWD: "fwd", TYPEDEF: "typedef", VOLATILE: "volatile", CONST: "const",
    RESTRICT: "restrict", FUNC: "func", FUNC_PROTO: "func_proto", VAR: "var", DATASEC: "datasec",
    FLOAT: "float", DECL_TAG: "decl_tag", TYPE_TAG: "type_tag", ENUM64: "enum64",
}
MODIFIERS = (TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG)

INT_SIGNED, INT_CHAR, INT_BOOL = 1, 2, 4
VAR_GLOBAL_ALLOCATED = 1


class BtfError(ObjectFormatError):
    pass
