"""The Xenovectra IR: types, the table of operations, and the one node type.

The IR is a typed tree with structured control flow.  The front end inlines
user functions and scalarises vectors, so every value in the IR is a scalar
of one of the five scalar types; memory is reached through named buffers,
images and arrays.  A kernel is a list of declarations and a body.

Semantics every backend must honour (the ``interp`` backend is the living
definition):

* Integer arithmetic wraps (two's complement ``i32``, modulo 2**32 ``u32``).
  ``DIV`` on integers truncates toward zero, ``MOD`` on integers takes the
  sign of the dividend (C ``%``); a zero divisor is a runtime error where a
  work item really divides by it.  ``MOD`` on floats is C ``fmod``.
* Shift amounts are taken modulo 32; ``SHR`` is arithmetic on ``i32`` and
  logical on ``u32``.
* ``f32`` arithmetic is done in single precision, ``f64`` in double.
* ``CAST`` from float to integer truncates toward zero, saturating at the
  target type's range (NaN gives 0); from bool gives 0/1; to bool compares with
  zero.
* ``LAND``, ``LOR`` and ``SELECT`` are lazy: only the operand that C would
  evaluate is evaluated, per work item.
* A work item that executes ``RETURN`` does nothing more; ``BREAK label``
  leaves the enclosing ``LOOP`` or ``BLOCK`` with that label, ``CONTINUE
  label`` goes to the step of the ``LOOP`` with that label.
* ``BARRIER`` must be reached by every work item of a workgroup that has not
  returned; a backend reports divergence as a runtime error.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

# --------------------------------------------------------------------------
# Types
# --------------------------------------------------------------------------

SCALARS = ("bool", "i32", "u32", "f32", "f64")
INTS = ("i32", "u32")
FLOATS = ("f32", "f64")
#: Element types of buffers and images: a scalar, or vec4 (four f32).
ELEMENTS = SCALARS + ("vec4",)

#: Bounds the verifier enforces so a hostile file cannot ask for absurd memory.
MAX_ARRAY_ELEMENTS = 1 << 20
MAX_ARRAY_RANK = 3
MAX_NODES = 1 << 20
MAX_DEPTH = 256


@attrs.frozen
class Type:
    """A value or memory type.

    ``kind`` is a scalar name, ``"void"``, ``"buffer"``, ``"image"`` or
    ``"array"``.  Buffers and images carry their element type in ``elem``;
    arrays carry a scalar ``elem`` and a ``shape``.
    """

    kind: str
    elem: str | None = None
    shape: tuple[int, ...] = ()

    @property
    def is_scalar(self) -> bool:
        return self.kind in SCALARS

    @property
    def is_int(self) -> bool:
        return self.kind in INTS

    @property
    def is_float(self) -> bool:
        return self.kind in FLOATS

    @property
    def lanes(self) -> int:
        """Scalars per element of a buffer or image (4 for vec4, else 1)."""
        return 4 if self.elem == "vec4" else 1

    def __str__(self) -> str:
        if self.kind in ("buffer", "image"):
            return f"{self.kind}<{self.elem}>"
        if self.kind == "array":
            return str(self.elem) + "".join(f"[{n}]" for n in self.shape)
        return self.kind

    @classmethod
    def parse(cls, text: str) -> Type:
        """Inverse of ``str()``; raises ValueError for anything else."""
        text = text.strip()
        for kind in ("buffer", "image"):
            if text.startswith(kind + "<") and text.endswith(">"):
                elem = text[len(kind) + 1 : -1]
                if elem not in ELEMENTS:
                    raise ValueError(f"unknown element type {elem!r}")
                return cls(kind, elem)
        if "[" in text:
            head, _, rest = text.partition("[")
            if head not in SCALARS or not rest.endswith("]"):
                raise ValueError(f"malformed array type {text!r}")
            dims = rest[:-1].split("][")
            if not all(d.isdigit() for d in dims):
                raise ValueError(f"malformed array type {text!r}")
            return cls("array", head, tuple(int(d) for d in dims))
        if text in SCALARS or text == "void":
            return cls(text)
        raise ValueError(f"unknown type {text!r}")


VOID = Type("void")
BOOL = Type("bool")
I32 = Type("i32")
U32 = Type("u32")
F32 = Type("f32")
F64 = Type("f64")
SCALAR_TYPES = {name: Type(name) for name in SCALARS}


# --------------------------------------------------------------------------
# Operations: the IR's table of contents
# --------------------------------------------------------------------------


class Op(enum.Enum):
    # --- leaves ------------------------------------------------------------
    CONST = "const"  # arg: the value (bool, int or float); type: its scalar type
    VAR = "var"  # arg: name of a scalar param or local
    SPECIAL = "special"  # arg: "global_id.x" etc. (global_id local_id group_id group_size num_groups); i32
    LENGTH = "length"  # arg: buffer name; i32 number of elements
    WIDTH = "width"  # arg: image name; i32
    HEIGHT = "height"  # arg: image name; i32
    # --- memory reads ------------------------------------------------------
    LOAD = "load"  # arg: (buffer, lane); args: (index i32); lane 0..3 for vec4 else 0
    ILOAD = "iload"  # arg: (image, lane); args: (x i32, y i32)
    ALOAD = "aload"  # arg: array name (private or shared); args: one i32 index per dimension
    # --- unary ALU: args (a,); result type = a's type unless noted ---------
    NEG = "neg"
    NOT = "not"  # bool -> bool
    BITNOT = "bitnot"  # integers
    ABS = "abs"
    SIGN = "sign"
    FLOOR = "floor"  # floats only, and so on down to ATAN
    CEIL = "ceil"
    ROUND = "round"  # half away from zero
    TRUNC = "trunc"
    SQRT = "sqrt"
    RSQRT = "rsqrt"
    EXP = "exp"
    EXP2 = "exp2"
    LOG = "log"
    LOG2 = "log2"
    SIN = "sin"
    COS = "cos"
    TAN = "tan"
    ASIN = "asin"
    ACOS = "acos"
    ATAN = "atan"
    CAST = "cast"  # type: the target scalar type; args: (a,)
    # --- binary ALU: args (a, b) of one type -------------------------------
    ADD = "add"
    SUB = "sub"
    MUL = "mul"
    DIV = "div"
    MOD = "mod"
    MIN = "min"
    MAX = "max"
    POW = "pow"  # floats
    ATAN2 = "atan2"  # floats: atan2(y, x)
    BITAND = "bitand"  # integers, and bool
    BITOR = "bitor"
    BITXOR = "bitxor"
    SHL = "shl"  # integers
    SHR = "shr"
    # --- comparisons: args (a, b) of one type; result bool -----------------
    EQ = "eq"
    NE = "ne"
    LT = "lt"
    LE = "le"
    GT = "gt"
    GE = "ge"
    # --- lazy: only what C would evaluate is evaluated ---------------------
    LAND = "land"  # args: (a bool, b bool)
    LOR = "lor"  # args: (a bool, b bool)
    SELECT = "select"  # args: (cond bool, if_true, if_false)
    # --- statements (type void) --------------------------------------------
    ASSIGN = "assign"  # arg: local name; args: (value,)
    STORE = "store"  # arg: (buffer, lane); args: (index, value)
    ISTORE = "istore"  # arg: (image, lane); args: (x, y, value)
    ASTORE = "astore"  # arg: array name; args: (*indices, value)
    ATOMIC = "atomic"  # arg: (kind, buffer, result local or None); args: (index, value) or, for cmpxchg, (index, expected, value)
    IF = "if"  # args: (cond, then BLOCK, else BLOCK)
    LOOP = "loop"  # arg: label; args: (cond, body BLOCK, step BLOCK); cond checked before each iteration
    BLOCK = "block"  # arg: label or None; args: statements in order
    BREAK = "break"  # arg: label of an enclosing LOOP or BLOCK
    CONTINUE = "continue"  # arg: label of an enclosing LOOP
    RETURN = "return"  # the work item is done
    BARRIER = "barrier"  # workgroup barrier (also orders shared memory)


UNARY = frozenset({Op.NEG, Op.NOT, Op.BITNOT, Op.ABS, Op.SIGN, Op.FLOOR, Op.CEIL, Op.ROUND, Op.TRUNC,
                   Op.SQRT, Op.RSQRT, Op.EXP, Op.EXP2, Op.LOG, Op.LOG2, Op.SIN, Op.COS, Op.TAN,
                   Op.ASIN, Op.ACOS, Op.ATAN})
FLOAT_UNARY = frozenset({Op.FLOOR, Op.CEIL, Op.ROUND, Op.TRUNC, Op.SQRT, Op.RSQRT, Op.EXP, Op.EXP2,
                         Op.LOG, Op.LOG2, Op.SIN, Op.COS, Op.TAN, Op.ASIN, Op.ACOS, Op.ATAN})
BINARY = frozenset({Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.MOD, Op.MIN, Op.MAX, Op.POW, Op.ATAN2,
                    Op.BITAND, Op.BITOR, Op.BITXOR, Op.SHL, Op.SHR})
FLOAT_BINARY = frozenset({Op.POW, Op.ATAN2})
INT_BINARY = frozenset({Op.SHL, Op.SHR})
BIT_BINARY = frozenset({Op.BITAND, Op.BITOR, Op.BITXOR})
COMPARE = frozenset({Op.EQ, Op.NE, Op.LT, Op.LE, Op.GT, Op.GE})
LAZY = frozenset({Op.LAND, Op.LOR, Op.SELECT})
STATEMENTS = frozenset({Op.ASSIGN, Op.STORE, Op.ISTORE, Op.ASTORE, Op.ATOMIC, Op.IF, Op.LOOP,
                        Op.BLOCK, Op.BREAK, Op.CONTINUE, Op.RETURN, Op.BARRIER})
EXPRESSIONS = frozenset(Op) - STATEMENTS

ATOMIC_KINDS = ("add", "sub", "min", "max", "exchange", "cmpxchg")
SPECIALS = tuple(f"{name}.{axis}" for name in ("global_id", "local_id", "group_id", "group_size", "num_groups")
                 for axis in "xyz")


@attrs.frozen
class Node:
    """One IR node: an operation, its result type, its operands and its argument.

    ``line`` is the kernel source line the node came from (0 when unknown);
    backends use it in runtime errors.
    """

    op: Op
    type: Type = VOID
    args: tuple[Node, ...] = ()
    arg: Any = None
    line: int = attrs.field(default=0, eq=False)

    # Small constructors keep the front end and the tests readable.
    @staticmethod
    def const(value: Any, type_: Type) -> Node:
        return Node(Op.CONST, type_, (), value)

    @staticmethod
    def block(statements: list[Node] | tuple[Node, ...], label: str | None = None, line: int = 0) -> Node:
        return Node(Op.BLOCK, VOID, tuple(statements), label, line)


# --------------------------------------------------------------------------
# Declarations, kernels and modules
# --------------------------------------------------------------------------

#: Where a declared name lives.
PARAM = "param"  # kernel argument: scalar, buffer or image
LOCAL = "local"  # private scalar or private array, one per work item
SHARED = "shared"  # workgroup array, one per group
CONSTANT = "const"  # read-only array with an initialiser (global const arrays)


@attrs.frozen
class Decl:
    """A named value or memory region of a kernel."""

    name: str
    type: Type
    space: str  # PARAM, LOCAL, SHARED or CONSTANT
    init: tuple[Any, ...] | None = None  # CONSTANT arrays: flattened row-major values


@attrs.frozen
class Kernel:
    """One entry point.  ``params`` are in call order; ``workgroup`` is the
    size declared with ``@workgroup`` (or None)."""

    name: str
    params: tuple[Decl, ...]
    decls: tuple[Decl, ...]
    body: Node
    workgroup: tuple[int, int, int] | None = None
    source: str | None = None  # path of the source file, for messages

    def param(self, name: str) -> Decl | None:
        return next((p for p in self.params if p.name == name), None)

    def all_decls(self) -> tuple[Decl, ...]:
        return self.params + self.decls


IR_VERSION = 1
IR_FORMAT = "xvir"


@attrs.frozen
class Module:
    """A compilation unit: the kernels of one source file."""

    kernels: tuple[Kernel, ...]
    version: int = IR_VERSION
    source: str | None = None

    def kernel(self, name: str) -> Kernel | None:
        return next((k for k in self.kernels if k.name == name), None)


__all__ = [
    "ATOMIC_KINDS",
    "BINARY",
    "BIT_BINARY",
    "BOOL",
    "COMPARE",
    "CONSTANT",
    "Decl",
    "ELEMENTS",
    "EXPRESSIONS",
    "F32",
    "F64",
    "FLOATS",
    "FLOAT_BINARY",
    "FLOAT_UNARY",
    "I32",
    "INTS",
    "INT_BINARY",
    "IR_FORMAT",
    "IR_VERSION",
    "Kernel",
    "LAZY",
    "LOCAL",
    "MAX_ARRAY_ELEMENTS",
    "MAX_ARRAY_RANK",
    "MAX_DEPTH",
    "MAX_NODES",
    "Module",
    "Node",
    "Op",
    "PARAM",
    "SCALARS",
    "SCALAR_TYPES",
    "SHARED",
    "SPECIALS",
    "STATEMENTS",
    "Type",
    "U32",
    "UNARY",
    "VOID",
]
