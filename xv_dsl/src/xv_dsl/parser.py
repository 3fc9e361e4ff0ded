"""Source text to AST: the lark parser and the boundary that leaves lark behind.

:func:`parse` returns an :class:`xv_dsl.ast.Program` or raises
:class:`~xv_core.errors.SourceError`.  A syntax error becomes one
diagnostic (``file:line:col: message``, the source line, a caret and a
hint): the first problem is reported, because what an LALR parser says
after it is mostly noise.
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any

import lark
from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedInput, UnexpectedToken

from xv_core.cachedir import user_cache_dir
from xv_core.errors import Diagnostic, SourceError, SourceSpan, XvError
from xv_dsl import ast
from xv_dsl.diagnostics import Reporter, closest

#: Deepest nesting of statements and expressions accepted; keeps every later
#: phase (and the IR, whose loader bounds depth) well inside its limits.
MAX_NESTING = 100
#: Larger sources are refused before parsing.
MAX_SOURCE_CHARS = 1 << 20

KEYWORDS = ("kernel", "const", "shared", "if", "else", "for", "while", "break", "continue",
            "return", "true", "false", "void", "buffer", "image", "bool", "i32", "u32", "f32",
            "f64", "vec2", "vec3", "vec4")

# Names of other C-like languages, and what this one calls them.
_FOREIGN_TYPES = {
    "int": "i32", "uint": "u32", "unsigned": "u32", "float": "f32", "double": "f64",
    "int32_t": "i32", "uint32_t": "u32", "bvec2": None, "ivec2": None, "ivec3": None,
    "ivec4": None, "uvec2": None, "uvec3": None, "uvec4": None, "dvec2": None, "dvec3": None,
    "dvec4": None, "float2": "vec2", "float3": "vec3", "float4": "vec4", "int2": None,
    "int3": None, "int4": None, "mat2": None, "mat3": None, "mat4": None,
}

# How terminals read in messages.
_TERMINAL_TEXT = {
    "NAME": "a name",
    "INT": "a number",
    "FLOAT": "a number",
    "SCALAR_TYPE": "a type",
    "VEC_TYPE": "a type",
    "$END": "end of file",
}
# Terminals that can start an expression; collapsed into "an expression" in messages.
_EXPR_START = {"NAME", "INT", "FLOAT", "TRUE", "FALSE", "LPAR", "MINUS", "PLUS", "BANG", "TILDE",
               "SCALAR_TYPE", "VEC_TYPE", "BUFFER", "IMAGE"}


@functools.cache
def _parser() -> Lark:
    grammar = resources.files("xv_dsl").joinpath("grammar.lark").read_text(encoding="utf-8")
    # Building the LALR tables takes ~2 s; lark caches them (as a pickle, keyed by a hash
    # of the grammar and options) in the user's private cache directory, never in a shared
    # temporary folder where another user could plant a file.  Without a usable private
    # directory the tables are simply rebuilt.
    try:
        cache: str | bool = str(user_cache_dir("lark") / "xvk-grammar.lark-cache")
    except (OSError, XvError):
        cache = False
    return Lark(grammar, parser="lalr", lexer="basic", propagate_positions=True,
                maybe_placeholders=True, cache=cache)


@functools.cache
def _terminal_patterns() -> dict[str, str]:
    out = {}
    for term in _parser().terminals:
        if term.pattern.type == "str":
            out[term.name] = term.pattern.value
    return out


def parse(text: str, path: str) -> ast.Program:
    """Parse ``text`` (the contents of ``path``) into an AST or raise SourceError."""
    reporter = Reporter(text, path)
    if len(text) > MAX_SOURCE_CHARS:
        raise SourceError([Diagnostic(SourceSpan(path, 1, 1),
                                      f"source is larger than {MAX_SOURCE_CHARS} characters")],
                          text)
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        raise SourceError([_syntax_diagnostic(exc, text, path)], text) from None
    _check_nesting(tree, reporter)
    reporter.raise_if_any()
    program = _AstBuilder(path, reporter).build(tree)
    reporter.raise_if_any()
    return program


# --------------------------------------------------------------------------
# Syntax errors
# --------------------------------------------------------------------------


def _describe(token: Token) -> str:
    if token.type == "$END":
        return "end of file"
    if token.type == "NAME":
        return f"name '{token.value}'"
    return f"'{token.value}'"


def _expected_text(expected: set[str]) -> str | None:
    """'';' or ','', 'an expression', ...; None when the list would not help."""
    patterns = _terminal_patterns()
    items: list[str] = []
    names = set(expected)
    if len(names & _EXPR_START) >= 4:
        items.append("an expression")
        names -= _EXPR_START
    for name in sorted(names, key=lambda n: (n not in patterns, patterns.get(n, n))):
        if name in patterns:
            items.append(f"'{patterns[name]}'")
        else:
            items.append(_TERMINAL_TEXT.get(name, name.lower()))
    items = list(dict.fromkeys(items))
    if not items or len(items) > 4:
        return None
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " or " + items[-1]


def _tokens_before(text: str, pos: int) -> list[Token]:
    """The tokens that start before ``pos`` (lexing stops quietly at a bad character)."""
    out: list[Token] = []
    try:
        for tok in _parser().lex(text, dont_ignore=False):
            if tok.start_pos is None or tok.start_pos >= pos:
                break
            out.append(tok)
    except UnexpectedInput:
        pass
    return out


def _unclosed(tokens: list[Token]) -> Token | None:
    """The innermost bracket that is opened and never closed."""
    pairs = {"RBRACE": "LBRACE", "RPAR": "LPAR", "RSQB": "LSQB"}
    stack: list[Token] = []
    for tok in tokens:
        if tok.type in ("LBRACE", "LPAR", "LSQB"):
            stack.append(tok)
        elif tok.type in pairs and stack and stack[-1].type == pairs[tok.type]:
            stack.pop()
    return stack[-1] if stack else None


def _span_of(path: str, tok: Token) -> SourceSpan:
    end = tok.end_column if tok.end_line == tok.line else None
    return SourceSpan(path, tok.line, tok.column, end)


def _syntax_diagnostic(exc: UnexpectedInput, text: str, path: str) -> Diagnostic:
    line = exc.line if exc.line and exc.line > 0 else 1
    col = exc.column if exc.column and exc.column > 0 else 1
    if isinstance(exc, UnexpectedCharacters):
        ch = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        span = SourceSpan(path, line, col)
        if text.startswith("/*", exc.pos_in_stream):
            return Diagnostic(span, "unterminated comment", "close it with '*/'")
        if ch in "\"'":
            return Diagnostic(span, f"unexpected character {ch!r}",
                              "the language has no strings or characters")
        if ch == "#":
            return Diagnostic(span, "unexpected character '#'",
                              "there is no preprocessor; use const globals instead of #define")
        shown = repr(ch) if ch.isprintable() else f"U+{ord(ch):04X}"
        return Diagnostic(span, f"unexpected character {shown}")

    assert isinstance(exc, UnexpectedToken)  # the only other kind the LALR parser raises
    token = exc.token
    pos = token.start_pos if token.type != "$END" and token.start_pos is not None else len(text)
    tokens = _tokens_before(text, pos)
    prev = tokens[-1] if tokens else None
    expected = set(exc.expected or ())
    ip = getattr(exc, "interactive_parser", None)
    if ip is not None:
        # LALR merges states, so ``expected`` can list tokens that would fail a
        # step later; ask the parser which ones it would really accept.
        try:
            expected = set(ip.accepts()) or expected
        except Exception:  # noqa: BLE001 - the raw set is still a fine fallback
            pass
    if token.type == "$END":
        span = SourceSpan(path, *_end_position(text))
        open_tok = _unclosed(tokens)
        hint = None
        if open_tok is not None:
            where = f"{open_tok.line}:{open_tok.column}"
            hint = f"the '{open_tok.value}' at line {where} is never closed"
        wanted = _expected_text(expected)
        message = "unexpected end of file" + (f"; expected {wanted}" if wanted else "")
        return Diagnostic(span, message, hint)

    span = _span_of(path, token)
    if token.type == "SLASH" and text.startswith("/*", pos):  # a comment that never ends
        return Diagnostic(SourceSpan(path, token.line, token.column), "unterminated comment",
                          "close it with '*/'")
    # A missing ';' is reported where it belongs: right after the previous token.
    if "SEMICOLON" in expected and prev is not None and token.line > (prev.end_line or prev.line):
        end_col = (prev.end_column or prev.column + len(prev.value))
        return Diagnostic(SourceSpan(path, prev.end_line or prev.line, end_col), "expected ';'",
                          "every statement and declaration ends with ';'")
    wanted = _expected_text(expected)
    message = f"unexpected {_describe(token)}" + (f"; expected {wanted}" if wanted else "")
    hint = _syntax_hint(token, prev, expected)
    return Diagnostic(span, message, hint)


def _syntax_hint(token: Token, prev: Token | None, expected: set[str]) -> str | None:
    if prev is not None and prev.type == "NAME" and token.type == "NAME":
        if prev.value in _FOREIGN_TYPES:
            ours = _FOREIGN_TYPES[prev.value]
            if ours:
                return f"there is no type '{prev.value}'; write {ours}"
            return (f"there is no type '{prev.value}'; the types are bool i32 u32 f32 f64 "
                    "vec2 vec3 vec4 buffer<T> image<T>")
        keyword = closest(prev.value, KEYWORDS)
        if keyword:
            return f"did you mean '{keyword}'?"
    if token.type == "NAME" and "NAME" not in expected:
        keyword = closest(token.value, KEYWORDS)
        if keyword:
            return f"did you mean '{keyword}'?"
    if token.type == "ASSIGN" and "EQ" in expected:
        return "use '==' to compare"
    if token.type in ("INC", "DEC"):
        return "'++' and '--' are statements on their own: write 'i++;' or 'i += 1'"
    if token.type == "NAME" and token.value in ("do", "switch", "case", "goto", "struct",
                                                 "typedef", "enum", "union"):
        return f"'{token.value}' is not part of the language"
    return None


def _end_position(text: str) -> tuple[int, int]:
    """Line and column of the last character of the text (for end-of-file errors)."""
    stripped = text.rstrip()
    if not stripped:
        return 1, 1
    line = stripped.count("\n") + 1
    col = len(stripped) - (stripped.rfind("\n") + 1)
    return line, max(col, 1)


def _check_nesting(tree: lark.Tree, reporter: Reporter) -> None:
    """Refuse trees deeper than MAX_NESTING (iteratively: the tree may be very deep)."""
    stack: list[tuple[Any, int]] = [(tree, 0)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, lark.Tree):
            continue
        if depth > MAX_NESTING:
            meta = node.meta
            reporter.error(SourceSpan(reporter.path, getattr(meta, "line", 1),
                                      getattr(meta, "column", 1)),
                           f"nested more than {MAX_NESTING} levels deep",
                           "split the expression or the statement into smaller parts")
            return
        stack.extend((child, depth + 1) for child in node.children)


# --------------------------------------------------------------------------
# The boundary: lark tree -> AST
# --------------------------------------------------------------------------


class _AstBuilder:
    """Builds AST nodes bottom-up: ``rule(meta, *children)`` for each tree node.

    The walk is iterative (deep trees cannot overflow the stack), and it calls
    the rule methods directly, which is much cheaper than lark's transformers.
    """

    def __init__(self, path: str, reporter: Reporter):
        self.path = path
        self.reporter = reporter

    def build(self, tree: lark.Tree) -> ast.Program:
        results: list[Any] = []
        stack: list[tuple[Any, bool]] = [(tree, False)]
        while stack:
            node, expanded = stack.pop()
            if not isinstance(node, lark.Tree):
                results.append(node)
            elif expanded:
                n = len(node.children)
                args = results[len(results) - n:] if n else []
                del results[len(results) - n:]
                results.append(getattr(self, node.data)(node.meta, *args))
            else:
                stack.append((node, True))
                stack.extend((child, False) for child in reversed(node.children))
        return results[0]

    def span(self, meta: Any) -> SourceSpan:
        if getattr(meta, "empty", True):
            return SourceSpan(self.path, 1, 1)
        end = meta.end_column if meta.end_line == meta.line else None
        return SourceSpan(self.path, meta.line, meta.column, end)

    def tok(self, token: Token) -> SourceSpan:
        return _span_of(self.path, token)

    # ---- top level --------------------------------------------------------
    def start(self, meta: Any, *items: Any) -> ast.Program:
        return ast.Program(self.path, tuple(items))

    def const_decl(self, meta: Any, type_: ast.TypeRef, *decls: ast.Declarator) -> ast.VarDecl:
        return ast.VarDecl(self.span(meta), type_, tuple(decls), "const")

    def kernel(self, meta: Any, *children: Any) -> ast.KernelDef:
        *attrs_, name, params, body = children
        return ast.KernelDef(self.span(meta), str(name), params, body, self.tok(name),
                             tuple(attrs_))

    def function(self, meta: Any, *children: Any) -> ast.Function:
        *attrs_, ret, name, params, body = children
        return ast.Function(self.span(meta), ret, str(name), params, body, self.tok(name),
                            tuple(attrs_))

    def attribute(self, meta: Any, name: Token, args: tuple[ast.Expr, ...]) -> ast.Attribute:
        return ast.Attribute(self.span(meta), str(name), args)

    def param_list(self, meta: Any, *params: Any) -> tuple[ast.Param, ...]:
        return tuple(p for p in params if p is not None)

    def param(self, meta: Any, type_: ast.TypeRef, name: Token) -> ast.Param:
        return ast.Param(self.span(meta), type_, str(name))

    # ---- types ---------------------------------------------------------------
    def void_type(self, meta: Any, tok: Token) -> ast.TypeRef:
        return ast.TypeRef(self.span(meta), "void")

    def scalar_type(self, meta: Any, tok: Token) -> ast.TypeRef:
        return ast.TypeRef(self.span(meta), str(tok))

    vector_type = scalar_type

    def buffer_type(self, meta: Any, _lt: Token, elem: str, _gt: Token) -> ast.TypeRef:
        return ast.TypeRef(self.span(meta), "buffer", elem)

    def image_type(self, meta: Any, _lt: Token, elem: str, _gt: Token) -> ast.TypeRef:
        return ast.TypeRef(self.span(meta), "image", elem)

    def elem_type(self, meta: Any, tok: Token) -> str:
        return str(tok)

    # ---- statements ----------------------------------------------------------
    def block(self, meta: Any, *stmts: Any) -> ast.Block:
        return ast.Block(self.span(meta), tuple(stmts))

    def var_decl(self, meta: Any, const: Token | None, type_: ast.TypeRef,
                 *decls: ast.Declarator) -> ast.VarDecl:
        return ast.VarDecl(self.span(meta), type_, tuple(decls), "const" if const else "local")

    def shared_decl(self, meta: Any, type_: ast.TypeRef, *decls: ast.Declarator) -> ast.VarDecl:
        return ast.VarDecl(self.span(meta), type_, tuple(decls), "shared")

    def declarator(self, meta: Any, name: Token, dims: tuple[ast.Expr, ...],
                   init: Any) -> ast.Declarator:
        return ast.Declarator(self.span(meta), str(name), dims, init)

    def dims(self, meta: Any, *exprs: ast.Expr) -> tuple[ast.Expr, ...]:
        return tuple(exprs)

    def init_list(self, meta: Any, *items: Any) -> ast.InitList:
        return ast.InitList(self.span(meta), tuple(i for i in items if i is not None))

    def assign(self, meta: Any, target: ast.Expr, op: Token, value: ast.Expr) -> ast.Assign:
        return ast.Assign(self.span(meta), target, str(op), value, self.tok(op))

    def assign_op(self, meta: Any, tok: Token) -> Token:
        return tok

    def incdec(self, meta: Any, target: ast.Expr, op: Token) -> ast.IncDec:
        return ast.IncDec(self.span(meta), target, str(op))

    def expr_stmt(self, meta: Any, expr: ast.Expr) -> ast.ExprStmt:
        return ast.ExprStmt(self.span(meta), expr)

    def if_stmt(self, meta: Any, cond: ast.Expr, then: ast.Stmt, otherwise: Any) -> ast.If:
        return ast.If(self.span(meta), cond, then, otherwise)

    def for_stmt(self, meta: Any, init: Any, cond: Any, step: Any, body: ast.Stmt) -> ast.For:
        return ast.For(self.span(meta), init, cond, step, body)

    def while_stmt(self, meta: Any, cond: ast.Expr, body: ast.Stmt) -> ast.While:
        return ast.While(self.span(meta), cond, body)

    def break_stmt(self, meta: Any, _tok: Token) -> ast.Break:
        return ast.Break(self.span(meta))

    def continue_stmt(self, meta: Any, _tok: Token) -> ast.Continue:
        return ast.Continue(self.span(meta))

    def return_stmt(self, meta: Any, _tok: Token, value: Any) -> ast.Return:
        return ast.Return(self.span(meta), value)

    def empty_stmt(self, meta: Any) -> ast.Empty:
        return ast.Empty(self.span(meta))

    # ---- expressions ---------------------------------------------------------
    def ternary(self, meta: Any, cond: ast.Expr, _q: Token, then: ast.Expr,
                otherwise: ast.Expr) -> ast.Ternary:
        return ast.Ternary(self.span(meta), cond, then, otherwise)

    def binary(self, meta: Any, left: ast.Expr, op: Token, right: ast.Expr) -> ast.Binary:
        return ast.Binary(self.span(meta), str(op), left, right, self.tok(op))

    def unary(self, meta: Any, op: Token, operand: ast.Expr) -> ast.Unary:
        return ast.Unary(self.span(meta), str(op), operand)

    def index(self, meta: Any, base: ast.Expr, *indices: ast.Expr) -> ast.Index:
        return ast.Index(self.span(meta), base, tuple(indices))

    def member(self, meta: Any, base: ast.Expr, name: Token) -> ast.Member:
        return ast.Member(self.span(meta), base, str(name), self.tok(name))

    def int_literal(self, meta: Any, tok: Token) -> ast.IntLit:
        text = str(tok)
        unsigned = text[-1] in "uU"
        digits = text[:-1] if unsigned else text
        try:
            value = int(digits, 16) if digits[:2].lower() == "0x" else int(digits, 10)
        except ValueError:  # more digits than Python converts: far out of range anyway
            value = 1 << 64
        return ast.IntLit(self.span(meta), value, unsigned)

    def float_literal(self, meta: Any, tok: Token) -> ast.FloatLit:
        return ast.FloatLit(self.span(meta), float(str(tok)), str(tok))

    def bool_literal(self, meta: Any, tok: Token) -> ast.BoolLit:
        return ast.BoolLit(self.span(meta), str(tok) == "true")

    def name(self, meta: Any, tok: Token) -> ast.Name:
        return ast.Name(self.span(meta), str(tok))

    def call(self, meta: Any, name: Token, args: tuple[ast.Expr, ...]) -> ast.Call:
        return ast.Call(self.span(meta), str(name), args, self.tok(name))

    def construct(self, meta: Any, type_: ast.TypeRef, args: tuple[ast.Expr, ...]) -> ast.Construct:
        return ast.Construct(self.span(meta), type_, args)

    def paren(self, meta: Any, expr: ast.Expr) -> ast.Expr:
        return expr

    def arg_list(self, meta: Any, *args: Any) -> tuple[ast.Expr, ...]:
        return tuple(a for a in args if a is not None)
