"""Errors are the interface: exact texts, locations, carets and hints."""

from __future__ import annotations

import textwrap

import pytest

from xv_core.errors import SourceError
from xv_dsl import compile_source


def errors(src: str) -> SourceError:
    with pytest.raises(SourceError) as info:
        compile_source(textwrap.dedent(src).lstrip("\n"), "k.xvk")
    return info.value


def located(src: str) -> list[tuple[int, int, str]]:
    return [(d.span.line, d.span.col, d.message) for d in errors(src).diagnostics]


def rendered(src: str) -> str:
    return str(errors(src))


# --------------------------------------------------------------------------
# Syntax errors: the first one, exactly
# --------------------------------------------------------------------------


def test_missing_semicolon_is_reported_after_the_previous_token() -> None:
    assert rendered("""
        kernel saxpy(f32 a, buffer<f32> x, buffer<f32> y) {
            i32 i = global_id.x
            y[i] = a * x[i] + y[i];
        }
    """) == textwrap.dedent("""\
        k.xvk:2:24: expected ';'
                i32 i = global_id.x
                                   ^
            hint: every statement and declaration ends with ';'""")


def test_unexpected_token_lists_what_would_fit() -> None:
    assert rendered("kernel k(buffer<f32> x) { x[0] = ; }") == textwrap.dedent("""\
        k.xvk:1:34: unexpected ';'; expected an expression
            kernel k(buffer<f32> x) { x[0] = ; }
                                             ^""")
    assert located("kernel k(buffer<f32> x) { x[0] = 1.0 }") == [
        (1, 38, "unexpected '}'; expected ';'")]


def test_unclosed_brace_at_end_of_file() -> None:
    assert rendered("""
        kernel k(buffer<f32> x) {
            if (x.length > 0) {
                x[0] = 1.0;
        }
    """) == textwrap.dedent("""\
        k.xvk:4:1: unexpected end of file
            }
            ^
            hint: the '{' at line 1:25 is never closed""")


def test_foreign_type_names_get_a_hint() -> None:
    assert rendered("kernel k(buffer<f32> x) { int n = 0; }") == textwrap.dedent("""\
        k.xvk:1:31: unexpected name 'n'
            kernel k(buffer<f32> x) { int n = 0; }
                                          ^
            hint: there is no type 'int'; write i32""")
    d = errors("kernal k(buffer<f32> x) { }").diagnostics[0]
    assert (d.span.line, d.span.col, d.message, d.hint) == (
        1, 1, "unexpected name 'kernal'", "did you mean 'kernel'?")


@pytest.mark.parametrize("src, line, col, message, hint", [
    ("kernel k(buffer<f32> x) { x[0] = $; }", 1, 34, "unexpected character '$'", None),
    ("kernel k() { /* never closed", 1, 14, "unterminated comment", "close it with '*/'"),
    ("#define N 4\nkernel k() {}", 1, 1, "unexpected character '#'",
     "there is no preprocessor; use const globals instead of #define"),
    ("kernel k(buffer<f32> x) { if (x[0] = 1.0) {} }", 1, 36, "unexpected '='",
     "use '==' to compare"),
    ("kernel k(buffer<f32> x) { x[0] = x[++i]; }", 1, 36, "unexpected '++'; expected an "
     "expression", "'++' and '--' are statements on their own: write 'i++;' or 'i += 1'"),
    ("kernel k() { do { } while (true); }", 1, 17, "unexpected '{'", None),
    ("kernel k() { i32 x = 1; } }", 1, 27, "unexpected '}'", None),
])
def test_syntax_errors(src: str, line: int, col: int, message: str, hint: str | None) -> None:
    (d,) = errors(src).diagnostics
    assert (d.span.line, d.span.col, d.message) == (line, col, message)
    if hint is not None:
        assert d.hint == hint


# --------------------------------------------------------------------------
# Type errors: every one, located
# --------------------------------------------------------------------------


def test_mixing_int_and_float_needs_a_cast_and_says_which() -> None:
    assert rendered("""
        kernel k(buffer<f32> x) {
            i32 i = global_id.x;
            x[i] = x[i] * i;
        }
    """) == textwrap.dedent("""\
        k.xvk:3:17: cannot mix f32 and i32 in '*': integers and floats need an explicit cast
                x[i] = x[i] * i;
                            ^
            hint: convert one side, e.g. f32(i)""")


def test_mixing_i32_and_u32_needs_a_cast() -> None:
    d = errors("""
        kernel k(buffer<f32> x, u32 n) {
            i32 i = global_id.x;
            if (i < n) { x[i] = 0.0; }
        }
    """).diagnostics[0]
    assert (d.span.line, d.span.col, d.message, d.hint) == (
        3, 11, "cannot mix i32 and u32 in '<': they need an explicit cast",
        "convert one side, e.g. i32(n)")


def test_misspelt_names_suggest_the_closest_in_scope() -> None:
    assert rendered("""
        kernel k(buffer<f32> values) {
            i32 count = 0;
            cout += 1;
            values[0] = f32(count);
        }
    """) == textwrap.dedent("""\
        k.xvk:3:5: unknown name 'cout'
                cout += 1;
                ^^^^
            hint: did you mean 'count'?""")
    hints = [d.hint for d in errors("""
        f32 scale(f32 v) { return v * 2.0; }
        kernel k(buffer<f32> values, image<f32> img) {
            values[0] = scael(1.0) + sqrtt(2.0) + vals[0] + f32(values.lenght + img.widht);
        }
    """).diagnostics]
    assert hints == ["did you mean 'scale'?", "did you mean 'sqrt'?", "did you mean 'values'?",
                     "did you mean 'length'?", "did you mean 'width'?"]


def test_the_checker_reports_all_errors() -> None:
    assert located("""
        const f32 W[3] = {1.0, 2.0};
        f32 f(f32 a) {
            return a + true;
        }
        kernel k(buffer<f32> x, buffer<i32> y) {
            i32 i = global_id.x;
            x[i] = i;
            y[i] = 1.5;
            undefined_thing();
            if (i) { }
            x[i] = f(1);
        }
    """) == [
        (1, 18, "array 'W' has 3 elements here but the initialiser has 2"),
        (3, 14, "cannot mix f32 and bool in '+'"),
        (7, 12, "cannot assign to 'x[i]': mixing integers and floats needs an explicit cast "
                "(i32 to f32)"),
        (8, 12, "cannot assign to 'y[i]': a float constant is not an i32"),
        (9, 5, "unknown function 'undefined_thing'"),
        (10, 9, "if condition must be bool, got i32"),
    ]


@pytest.mark.parametrize("body, message", [
    ("u32 a = -1;", "constant -1 does not fit in u32"),
    ("i32 a = 3000000000;", "constant 3000000000 does not fit in i32"),
    ("i32 a = 5 / 0;", "division by zero in a constant expression"),
    ("f32 a = 1.5; i32 b = a;", "cannot initialise 'b': mixing integers and floats needs an "
                               "explicit cast (f32 to i32)"),
    ("f32 a = 1.0; f64 b = 2.0; f32 c = a * b;",
     "cannot mix f32 and f64 in '*': they need an explicit cast"),
    ("vec3 v = vec3(1.0, 2.0);", "vec3 needs 3 components, got 2"),
    ("vec3 v = vec3(1.0); f32 w = v.w;", "vec3 has no component 'w'"),
    ("vec2 a = vec2(1.0); vec3 b = vec3(1.0); vec2 c = a + b;", "cannot mix vec2 and vec3 in '+'"),
    ("vec2 a = vec2(1.0); i32 n = 2; vec2 c = a * n;", "cannot mix vec2 and i32 in '*'"),
    ("i32 v = 1; v.x = 2;", "an i32 has no member 'x'"),
    ("vec2 v = vec2(1.0); v.xx = vec2(1.0);",
     "swizzle .xx repeats a component and cannot be assigned to"),
    ("vec2 v = vec2(1.0); f32 s = v.xg;", "swizzle .xg mixes letters of xyzw, rgba and stpq"),
    ("x = 1.0;", "cannot assign to buffer<f32> 'x' as a whole"),
    ("x.length = 3;", "cannot assign to .length"),
    ("x[0] == 1.0;", "this expression does nothing"),
    ("break;", "'break' outside a loop"),
    ("return 1;", "a kernel does not return a value"),
    ("i32 i = global_id;", "'global_id' is a builtin with components .x, .y and .z"),
    ("i32 i = global_id.w;", "'global_id' has components .x, .y and .z, not .w"),
    ("f32 v = x[1.5];", "an index must be i32, got f32"),
    ("f32 a[2]; a[2] = 1.0;", "index 2 is out of bounds for f32[2]"),
    ("f32 a[2]; f32 b = a;", "an array (f32[2]) cannot be used as a value"),
    ("f32 a[2][2]; a[0] = 1.0;", "cannot assign to an f32[2]"),
    ("i32 a = 1; i32 a = 2;", "'a' is already declared at line 2"),
    ("i32 v = barrier();", "barrier() does not return a value"),
    ("f32 v = clamp(1.0, 2.0);", "'clamp' takes 3 arguments, got 2"),
    ("i32 z = sqrt(i32(4));", "'sqrt' needs float arguments, got i32"),
    ("f32 z = min(1.0, 2);", None),
    ("shared f32 s[4]; atomic_add(s[0], 1.0);",
     "the first argument of 'atomic_add' must be a buffer element, such as bins[i]"),
    ("shared f32 s;", "a shared variable must be an array"),
    ("shared f32 s[2] = {1.0, 2.0};", "shared arrays cannot have initialisers"),
    ("f32 a[0];", "array size must be positive, got 0"),
    ("f32 a[2][2][2];", "arrays have one or two dimensions"),
    ("i32 n = 4; f32 a[n];", "an array size must be a constant expression"),
    ("f32 a[4] = 1.0;", "array 'a' needs a {...} initialiser"),
    ("f32 a = {1.0};", "only arrays take {...} initialisers"),
    ("bool b = !1;", "'!' needs a bool, got integer constant"),
    ("f32 f = 1.0; f <<= 1;", "'<<' needs integer operands, got f32"),
    ("f32 f = 1.0; f *= vec2(2.0);", "'*=' would change 'f' from f32 to vec2"),
    ("bool b = 1 < true;", "cannot mix bool and a number"),
    ("f32 s = x[0] > 0.0 ? x[0] : vec2(1.0);",
     "the branches of '?:' have different types: f32 and vec2"),
    ("f32 s = 1 ? 1.0 : 2.0;", "the condition of '?:' must be bool, got i32"),
    ("buffer<f32> b = x;", "a variable cannot be a buffer<f32>"),
    ("const vec3 C = vec3(1.0);", "a constant cannot be a vec3"),
    ("const f32 C;", "constant 'C' needs a value"),
    ("const f32 C = 1.0; C = 2.0;", "cannot assign to 'C': it is const"),
    ("f32 v = f32(vec2(1.0));", "cannot convert vec2 to f32"),
    ("vec2 v = vec2(1, global_id.x);", "vec2 components are f32, got i32"),
    ("x[0] = x.length.x;", "an i32 has no member 'x'"),
])
def test_type_errors(body: str, message: str | None) -> None:
    src = "kernel k(buffer<f32> x) {\n" + body + "\n}\n"
    if message is None:
        compile_source(src, "k.xvk")  # compiles: the literal takes the other side's type
        return
    if message == "cannot mix bool and a number":
        message = "'<' cannot combine bool with a number"
    msgs = [d.message for d in errors(src).diagnostics]
    assert message in msgs


def test_function_errors() -> None:
    assert located("""
        f32 h(f32 a, f32 b) { return a; }
        f32 no_return(f32 a) { if (a > 0.0) { return 1.0; } }
        void nothing() { return 1.0; }
        f32 min(f32 a) { return a; }
        @workgroup(8) f32 tagged() { return 1.0; }
        f32 h(f32 a) { return a; }
        f32 needs_value() { return; }
        kernel k(buffer<f32> x, vec3 v) {
            x[0] = h(1.0);
            x[1] = h(1, global_id.x);
            x[2] = nothing();
            k(x);
            shared f32 s[2];
        }
        void g() { shared f32 s[4]; }
    """) == [
        (2, 5, "function 'no_return' can reach its end without returning an f32"),
        (3, 25, "function 'nothing' returns nothing (void)"),
        (4, 5, "'min' is a builtin name and cannot be redefined"),
        (5, 1, "@workgroup applies to kernels only"),
        (6, 5, "function 'h' is already defined at line 1"),
        (7, 21, "function 'needs_value' must return an f32"),
        (8, 25, "a kernel parameter cannot be a vec3"),
        (9, 12, "'h' takes 2 arguments, got 1"),
        (10, 17, "cannot pass argument 2 ('b') of 'h': mixing integers and floats needs an "
                 "explicit cast (i32 to f32)"),
        (11, 12, "nothing() does not return a value"),
        (12, 5, "'k' is a kernel and cannot be called"),
        (15, 12, "shared arrays are declared in a kernel, not in a function"),
    ]


def test_attribute_and_kernel_errors() -> None:
    assert located("""
        @workgrup(64)
        kernel a(buffer<f32> x) { }
        @workgroup(2048)
        kernel b(buffer<f32> x) { }
        @workgroup(0, 4)
        kernel c(buffer<f32> x) { }
        @workgroup(1, 2, 3, 4)
        kernel d(buffer<f32> x, buffer<vec3> y, image<f32> x) { }
        kernel a(buffer<f32> x) { }
    """) == [
        (1, 1, "unknown attribute @workgrup"),
        (3, 1, "a workgroup of 2048 work items is more than 1024"),
        (5, 1, "workgroup sizes must be positive"),
        (7, 1, "@workgroup takes 1 to 3 sizes, got 4"),
        (8, 25, "buffer elements are bool, i32, u32, f32, f64 or vec4, not vec3"),
        (8, 41, "parameter 'x' is declared twice"),
        (9, 8, "kernel 'a' is already defined at line 2"),
    ]
    assert errors("@workgrup(64) kernel a() {}").diagnostics[0].hint == "did you mean 'workgroup'?"
    assert located("const i32 N = 4;") == [(1, 1, "no kernel in this file")]


# --------------------------------------------------------------------------
# Recursion and barriers
# --------------------------------------------------------------------------


def test_recursion_is_a_clear_error() -> None:
    assert rendered("""
        f32 fact(f32 n) {
            return n <= 1.0 ? 1.0 : n * fact(n - 1.0);
        }
        kernel k(buffer<f32> x) { x[0] = fact(5.0); }
    """) == textwrap.dedent("""\
        k.xvk:2:33: 'fact' calls itself; functions cannot be recursive
                return n <= 1.0 ? 1.0 : n * fact(n - 1.0);
                                            ^^^^
            hint: kernels have no call stack: rewrite the recursion as a loop""")
    assert located("""
        f32 ping(f32 a) { return pong(a); }
        f32 pong(f32 a) { return ping(a) + via(a); }
        f32 via(f32 a) { return a; }
        kernel k(buffer<f32> x) { x[0] = ping(1.0); }
    """) == [(2, 26, "recursive call: ping -> pong -> ping; functions cannot be recursive")]


def _chain(n: int, cycle: bool) -> str:
    """n functions each calling the next (the last calling the first when ``cycle``)."""
    def body(i: int) -> str:
        if cycle:
            return f"h{(i + 1) % n}(x)"
        return f"h{i - 1}(x)" if i else "x + 1"

    lines = [f"i32 h{i}(i32 x) {{ return {body(i)}; }}" for i in range(n)]
    return "\n".join(lines + [f"kernel k(buffer<i32> out) {{ out[0] = h{n - 1}(1); }}"]) + "\n"


def test_a_long_recursion_is_found_and_reported_once() -> None:
    # (cycles of more than 1,000 functions went unseen, and finding them took cubic time)
    diagnostics = errors(_chain(1100, cycle=True)).diagnostics
    assert [(d.span.line, d.span.col) for d in diagnostics] == [(1100, 27)]
    assert diagnostics[0].message.startswith("recursive call: h0 -> h1 -> h2 -> ")
    assert diagnostics[0].message.endswith(" -> h1099 -> h0; functions cannot be recursive")


def test_calls_nested_past_the_limit_are_refused_where_the_chain_goes_past_it() -> None:
    from xv_dsl.checker import MAX_CALL_DEPTH

    compile_source(_chain(MAX_CALL_DEPTH, cycle=False), "k.xvk")
    assert located(_chain(MAX_CALL_DEPTH + 40, cycle=False)) == [
        (MAX_CALL_DEPTH + 1, 26, f"calls nest {MAX_CALL_DEPTH + 1} functions deep from "
                                 f"'h{MAX_CALL_DEPTH}', more than {MAX_CALL_DEPTH}")]


def test_a_chain_of_calls_compiles_in_a_fresh_process() -> None:
    """The passes recurse per call level: a fresh interpreter's limit of 1,000 frames refused
    170 nested calls ('the program nests too deeply') until a verifier had run."""
    import subprocess
    import sys

    code = ("import sys; from xv_dsl import compile_source; "
            "m = compile_source(sys.stdin.read(), 'k.xvk'); print(m.kernels[0].name)")
    done = subprocess.run([sys.executable, "-c", code], input=_chain(200, cycle=False),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "k\n"


@pytest.mark.parametrize("src, line", [
    ("kernel k(buffer<i32> o) {\n\f    i32 x = 1.5;\n}\n", "\f    i32 x = 1.5;"),
    ("kernel k(buffer<i32> o) {\r    i32 x = 1.5;\r}\r", "    i32 x = 1.5;"),
    ("\ufeffkernel k(buffer<i32> o) {\r\n    i32 x = 1.5;\r\n}\r\n", "    i32 x = 1.5;"),
])
def test_the_caret_is_under_the_culprit_whatever_the_line_ends(src: str, line: str) -> None:
    err = errors(src)
    d = err.diagnostics[0]
    assert (d.span.line, d.message) == (2, "cannot initialise 'x': a float constant is not "
                                           "an i32")
    shown = str(err).split("\n")
    assert shown[1] == "    " + line
    assert shown[2].index("^") == 4 + line.index("1.5")


def test_barrier_under_divergent_control_flow() -> None:
    assert rendered("""
        @workgroup(64)
        kernel k(buffer<f32> x) {
            i32 lid = local_id.x;
            if (lid < 32) {
                barrier();
            }
        }
    """) == "\n".join([
        "k.xvk:5:9: barrier() under control flow that can differ between the work items of a "
        "workgroup",
        "            barrier();",
        "            ^^^^^^^^^",
        "    hint: the condition at line 4:9 depends on the work item (local_id, global_id or "
        "values derived from them); every work item of a group must reach the same barriers",
    ])


@pytest.mark.parametrize("body, ok", [
    ("if (group_id.x == 0) { barrier(); }", True),
    ("if (global_id.x >= x.length) { return; } barrier();", True),
    ("for (i32 s = 128; s > 0; s /= 2) { if (local_id.x < s) { x[0] = 1.0; } barrier(); }", True),
    ("while (x[0] > 0.0) { barrier(); x[0] -= 1.0; }", True),
    ("for (i32 i = 0; i < 4; i++) { barrier(); if (local_id.x == 0) { continue; } }", True),
    ("for (i32 i = 0; i < local_id.x; i++) { barrier(); }", False),
    ("for (i32 i = 0; i < 4; i++) { barrier(); if (local_id.x == 0) { break; } }", False),
    ("for (i32 i = 0; i < 4; i++) { if (local_id.x == 0) { continue; } barrier(); }", False),
    ("while (x[local_id.x] > 0.0) { barrier(); }", False),
    ("i32 a = 0; for (i32 i = 0; i < 4; i++) { if (a > 0) { barrier(); } a = local_id.x; }", False),
    ("bool q = local_id.x > 2 && sync();", False),
    ("f32 v = global_id.y > 3 ? 1.0 : f32(sync());", False),
    ("i32 old = atomic_add(y[0], 1); if (old == 0) { barrier(); }", False),
])
def test_barrier_divergence_analysis(body: str, ok: bool) -> None:
    src = ("bool sync() { barrier(); return true; }\n"
           f"kernel k(buffer<f32> x, buffer<i32> y) {{\n{body}\n}}\n")
    if ok:
        compile_source(src, "k.xvk")
    else:
        msgs = [d.message for d in errors(src).diagnostics]
        assert msgs == ["barrier() under control flow that can differ between the work items "
                        "of a workgroup"]


def test_barrier_in_a_function_called_under_divergence() -> None:
    assert located("""
        void sync() { barrier(); }
        void maybe(i32 a) { if (a < 3) { return; } barrier(); }
        kernel k(buffer<f32> x) {
            sync();
            if (global_id.x < 3) { sync(); }
            maybe(local_id.x);
        }
    """) == [
        (1, 15, "barrier() under control flow that can differ between the work items of a "
                "workgroup"),
        (2, 44, "barrier() under control flow that can differ between the work items of a "
                "workgroup"),
    ]


# --------------------------------------------------------------------------
# Limits
# --------------------------------------------------------------------------


def test_nesting_and_size_limits() -> None:
    deep = "kernel k(buffer<f32> x) { x[0] = " + "(" * 150 + "1.0" + ")" * 150 + "; }"
    (d,) = errors(deep).diagnostics
    assert d.message == "nested more than 100 levels deep"
    long_sum = "kernel k(buffer<f32> x) { x[0] = " + " + ".join(["x[1]"] * 90) + "; }"
    compile_source(long_sum, "k.xvk")
    big = "kernel k() { f32 a[2048][1024]; }"
    assert located(big) == [(1, 18, "array 'a' has 2097152 elements, more than 1048576")]
    shared = "kernel k() { shared f64 a[1000][100]; shared f64 b[1000][100]; }"
    assert located(shared) == [(1, 50, "shared arrays of this kernel take 1600000 bytes, more "
                                       "than 1048576")]


def test_inlining_blowup_is_refused() -> None:
    fns = ["f32 f0(f32 a) { return a * a + 1.0; }"]
    for i in range(1, 24):
        fns.append(f"f32 f{i}(f32 a) {{ return f{i - 1}(a) + f{i - 1}(a + 1.0); }}")
    src = "\n".join(fns) + "\nkernel k(buffer<f32> x) { x[0] = f23(1.0); }\n"
    (d,) = errors(src).diagnostics
    assert d.message == "kernel 'k' is too large once its functions are inlined"
