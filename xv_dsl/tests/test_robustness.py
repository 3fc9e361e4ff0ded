"""The front end never crashes: every input compiles or gives located errors.

Hypothesis feeds ``compile_source`` random bytes, token soups, mutations of
the conformance kernels and generated programs.  Each must either compile
into a module that verifies or raise SourceError whose diagnostics carry a
location -- never another exception, never a hang.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from xv_core import ir
from xv_core.errors import SourceError
from xv_dsl import compile_source

KERNELS = Path(__file__).resolve().parents[2] / "examples" / "kernels"
DOC = (Path(__file__).resolve().parents[2] / "docs" / "language.md").read_text()
# Seeds for mutation: the conformance kernels and every example of the language reference.
SOURCES = [p.read_text() for p in sorted(KERNELS.glob("*.xvk"))] + [
    body for body in re.findall(r"```c\n(.*?)```", DOC, re.S) if not body.startswith("// error")]
TOKEN = re.compile(r"\s+|//[^\n]*|[A-Za-z_]\w*|\d+\.\d*|\d+|<<=|>>=|[-+*/%&|^<>=!]=|&&|\|\||<<|>>"
                   r"|\+\+|--|.", re.S)
VOCAB = sorted({t for src in SOURCES for t in TOKEN.findall(src) if t.strip()} | {
    "while", "break", "continue", "shared", "const", "u32", "f64", "bool", "vec4", "vec2",
    "true", "false", "?", ":", "~", "^", "<<", ">>", "&&", "||", "%", "0u", "1e9", "4294967296",
    "atomic_max", "atomic_compare_exchange", "normalize", "cross", "smoothstep", "@", "void",
    ".xyz", ".w", "[", "]", "{", "}", "(", ")", ";", ",", "return", "barrier", "++", "--",
})
SETTINGS = settings(max_examples=500, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def compiles_or_fails_cleanly(text: str) -> None:
    start = time.perf_counter()
    try:
        module = compile_source(text, "fuzz.xvk")
    except SourceError as exc:
        assert exc.diagnostics, "a SourceError without diagnostics"
        for d in exc.diagnostics:
            assert d.span.path == "fuzz.xvk" and d.span.line >= 1 and d.span.col >= 1
            assert d.message
        str(exc)  # rendering never fails either
    else:
        ir.verify_module(module)
        ir.loads(ir.dumps(module))  # and the result survives its own file format
    assert time.perf_counter() - start < 5.0, "compilation took too long"


@SETTINGS
@given(st.binary(max_size=400))
def test_random_bytes(data: bytes) -> None:
    compiles_or_fails_cleanly(data.decode("utf-8", errors="replace"))


@SETTINGS
@given(st.lists(st.sampled_from(VOCAB), max_size=80))
def test_token_soup(tokens: list[str]) -> None:
    compiles_or_fails_cleanly(" ".join(tokens))


@st.composite
def mutated(draw: st.DrawFn) -> str:
    tokens = TOKEN.findall(draw(st.sampled_from(SOURCES)))
    for _ in range(draw(st.integers(1, 4))):
        if not tokens:
            break
        i = draw(st.integers(0, len(tokens) - 1))
        kind = draw(st.sampled_from(["delete", "duplicate", "replace", "insert", "swap"]))
        if kind == "delete":
            del tokens[i]
        elif kind == "duplicate":
            tokens.insert(i, tokens[i])
        elif kind == "replace":
            tokens[i] = draw(st.sampled_from(VOCAB))
        elif kind == "insert":
            tokens.insert(i, " " + draw(st.sampled_from(VOCAB)) + " ")
        else:
            j = draw(st.integers(0, len(tokens) - 1))
            tokens[i], tokens[j] = tokens[j], tokens[i]
    return "".join(tokens)


@SETTINGS
@given(mutated())
def test_mutated_kernels(text: str) -> None:
    compiles_or_fails_cleanly(text)


# Generated programs: typed by construction most of the time (with a few
# deliberate mistakes), so that the checker and the lowering -- not only the
# parser -- see thousands of shapes.  Plain ``random`` seeded by hypothesis
# keeps generation cheap.
VARS = {
    "i32": ["i", "n", "global_id.x", "local_id.y", "x.length", "K", "y[i & 7]", "3", "-2",
            "(1 << (n & 7))", "-(2 << n)", "(b ? 1 : 2)"],
    "u32": ["u", "2u", "u32(n)", "0xFFu"],
    "f32": ["f", "g", "x[i]", "arr[1]", "v.x", "q.w", "0.5", "sq(f)", "tw(i, f)", "2.0", "p[1]"],
    "bool": ["b", "true", "(i < n)"],
    "vec2": ["p", "v.xy", "vec2(f)", "q.wz"],
    "vec3": ["v", "vec3(p, f)", "q.xyz", "pal(g)"],
    "vec4": ["q", "vec4(v, 1.0)", "q.wzyx"],
}
TYPES = list(VARS)
TARGETS = {"i32": ["i", "y[i & 7]", "tmp_i"], "u32": ["u"], "f32": ["f", "x[i]", "arr[2]", "v.y",
                                                                    "q.x", "tmp_f"],
           "bool": ["b"], "vec2": ["p", "v.zx"], "vec3": ["v", "q.xyz"], "vec4": ["q"]}


def gen_expr(r, t, depth=0):
    if r.random() < 0.04:  # a deliberate type mistake
        t = r.choice(TYPES)

    def g(sub_t: str) -> str:
        return gen_expr(r, sub_t, depth + 1)

    if depth > 2 or r.random() < 0.35:
        return r.choice(VARS[t])
    if t in ("i32", "u32"):
        c = r.randrange(6)
        if c == 0:
            return f"({g(t)} {r.choice('+-*/%&|^')} {g(t)})"
        if c == 1:
            return f"({g(t)} {r.choice(['<<', '>>'])} {r.randrange(40)})"
        if c == 2:
            return f"{r.choice(['-', '~'])}({g(t)})"
        if c == 3:
            return f"{t}({g(r.choice(['f32', 'i32', 'u32']))})"
        if c == 4:
            fn = r.choice(["min", "max", "abs", "clamp", "sign"])
            n = {"abs": 1, "sign": 1, "clamp": 3}.get(fn, 2)
            return f"{fn}({', '.join(g(t) for _ in range(n))})"
        if t == "i32":
            return f"atomic_{r.choice(['add', 'max', 'exchange'])}(y[i & 7], {g(t)})"
        return f"({g('bool')} ? {g(t)} : {g(t)})"
    if t == "f32":
        c = r.randrange(7)
        if c == 0:
            return f"({g(t)} {r.choice('+-*/%')} {g(t)})"
        if c == 1:
            fn = r.choice(["sqrt", "floor", "fract", "sin", "exp2", "inversesqrt", "round", "abs"])
            return f"{fn}({g(t)})"
        if c == 2:
            fn = r.choice(["pow", "atan", "min", "mod", "step", "max"])
            return f"{fn}({g(t)}, {g(t)})"
        if c == 3:
            vt = r.choice(["vec2", "vec3", "vec4"])
            fn = r.choice(["dot", "distance"])
            return f"{fn}({g(vt)}, {g(vt)})"
        if c == 4:
            return f"length({g(r.choice(['vec2', 'vec3']))})"
        if c == 5:
            fn = r.choice(["mix", "clamp", "smoothstep"])
            return f"{fn}({', '.join(g(t) for _ in range(3))})"
        return f"f32({g(r.choice(['i32', 'u32']))})"
    if t == "bool":
        c = r.randrange(3)
        if c == 0:
            nt = r.choice(["i32", "u32", "f32"])
            op = r.choice(["<", "<=", ">", ">=", "==", "!="])
            return f"({g(nt)} {op} {g(nt)})"
        if c == 1:
            return f"({g(t)} {r.choice(['&&', '||'])} {g(t)})"
        return f"!({g(t)})"
    c = r.randrange(6)
    n = int(t[3])
    if c == 0:
        other = r.choice([t, "f32"])
        return f"({g(t)} {r.choice('+-*/')} {g(other)})"
    if c == 1:
        return f"{r.choice(['normalize', 'fract', 'floor', 'abs', '-'])}({g(t)})"
    if c == 2:
        return f"mix({g(t)}, {g(t)}, {g('f32')})"
    if c == 3 and t == "vec3":
        return f"cross({g(t)}, {g(t)})"
    if c == 4:
        big = f"vec{min(n + 1, 4)}" if n < 4 else "vec4"
        return f"{g(big)}.{r.choice(['xyzw', 'rgba'])[:n]}"
    parts = ", ".join(g("f32") for _ in range(n))
    return f"{t}({parts})"


def gen_stmt(r, depth=0, loop=False):
    c = r.randrange(10 if depth < 2 else 5)
    t = r.choice(TYPES)
    if c <= 1:
        op = "=" if t in ("bool",) or r.random() < 0.6 else r.choice(["+=", "-=", "*="])
        if t in ("i32", "u32") and r.random() < 0.3:
            op = r.choice(["<<=", "%=", "^=", "|="])
        return f"{r.choice(TARGETS[t])} {op} {gen_expr(r, t)};"
    if c == 2:
        return f"x[0] = {gen_expr(r, 'f32')};"
    if c == 3:
        name = f"t{r.randrange(1000)}"
        return f"{t} {name} = {gen_expr(r, t)};"
    if c == 4:
        pool = ["barrier();", "i++;", "f--;", "atomic_add(y[0], 1);"]
        if loop:
            pool += ["break;", "continue;"]
        if depth > 0:
            pool.append("return;")
        return r.choice(pool)
    body = " ".join(gen_stmt(r, depth + 1, loop or c in (6, 7)) for _ in range(r.randrange(4)))
    if c == 5:
        other = gen_stmt(r, depth + 1, loop)
        return f"if ({gen_expr(r, 'bool')}) {{ {body} }} else {{ {other} }}"
    if c == 6:
        k = f"k{depth}"
        return f"for (i32 {k} = 0; {k} < {gen_expr(r, 'i32')}; {k}++) {{ {body} }}"
    if c == 7:
        return f"while ({gen_expr(r, 'bool')}) {{ {body} }}"
    if c == 8:
        return f"{{ {body} }}"
    return f"f = tw({gen_expr(r, 'i32')}, {gen_expr(r, 'f32')});"


def gen_program(r) -> str:
    body = "\n    ".join(gen_stmt(r) for _ in range(r.randrange(1, 5)))
    return f"""
const i32 K = 4;
f32 sq(f32 a) {{ return a * a; }}
f32 tw(i32 a, f32 b) {{ if (a > 0) {{ return b; }} return sq(b); }}
vec3 pal(f32 t) {{ return 0.5 + 0.5 * cos(6.28 * (vec3(t) + vec3(0.0, 0.33, 0.67))); }}
@workgroup(64)
kernel fuzz(buffer<f32> x, buffer<i32> y, i32 n, u32 u, f32 g) {{
    i32 i = global_id.x; f32 f = x[0]; bool b = i < n; i32 tmp_i = 0; f32 tmp_f = 1.0;
    vec2 p = vec2(f); vec3 v = vec3(p, 1.0); vec4 q = vec4(v, g);
    f32 arr[K];
    {body}
}}
"""


@settings(max_examples=600, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.randoms(use_true_random=False))
def test_generated_programs(r) -> None:
    compiles_or_fails_cleanly(gen_program(r))


def test_generated_programs_often_compile() -> None:
    """The generator is only useful if much of what it makes gets past the checker."""
    import random

    ok = 0
    for seed in range(100):
        try:
            compile_source(gen_program(random.Random(seed)), "fuzz.xvk")
            ok += 1
        except SourceError:
            pass
    assert ok >= 25
