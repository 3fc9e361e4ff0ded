"""What the lowered IR computes, checked against numpy.

Each kernel is compiled, verified, and run by the tests' reference
evaluator (``ir_eval``: one work item at a time, from the IR's documented
semantics); results are compared with numpy.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))
from ir_eval import EvalError, run  # noqa: E402

from xv_core import ir  # noqa: E402
from xv_dsl import compile_file, compile_source  # noqa: E402

KERNELS = Path(__file__).resolve().parents[2] / "examples" / "kernels"
rng = np.random.default_rng(1234)


def launch(src: str, grid: tuple[int, ...], block: tuple[int, ...] | None = None, **args):
    module = compile_source(src, "test.xvk")
    ir.verify_module(module)
    run(module.kernels[0], grid, block, args)
    return module


# --------------------------------------------------------------------------
# The six conformance kernels
# --------------------------------------------------------------------------


def test_saxpy_ragged_length() -> None:
    x = rng.random(37, dtype=np.float32)
    y = rng.random(37, dtype=np.float32)
    expected = np.float32(2.5) * x + y
    run(compile_file(KERNELS / "saxpy.xvk").kernels[0], (3,), (16,),
        dict(a=np.float32(2.5), x=x, y=y))
    np.testing.assert_allclose(y, expected, rtol=1e-6)


def test_gauss5_clamps_to_edges() -> None:
    src = rng.random((9, 11), dtype=np.float32)
    dst = np.zeros_like(src)
    run(compile_file(KERNELS / "gauss5.xvk").kernels[0], (1, 1), None, dict(src=src, dst=dst))
    w = np.array([1, 4, 6, 4, 1], np.float32)
    p = np.pad(src, 2, mode="edge")
    ref = sum(w[dy] * w[dx] * p[dy:dy + 9, dx:dx + 11] for dy in range(5) for dx in range(5))
    np.testing.assert_allclose(dst, ref / 256, rtol=1e-5)


def test_matmul_tiled() -> None:
    n = 32
    a = rng.random(n * n, dtype=np.float32)
    b = rng.random(n * n, dtype=np.float32)
    c = np.zeros(n * n, np.float32)
    run(compile_file(KERNELS / "matmul_tiled.xvk").kernels[0], (2, 2), None,
        dict(a=a, b=b, c=c, n=np.int32(n)))
    np.testing.assert_allclose(c.reshape(n, n), a.reshape(n, n) @ b.reshape(n, n), rtol=1e-5)


def test_histogram() -> None:
    values = rng.random(100, dtype=np.float32) * 1.2 - 0.1  # some outside [lo, hi): clamped
    bins = np.zeros(8, np.int32)
    run(compile_file(KERNELS / "histogram.xvk").kernels[0], (2,), (64,),
        dict(values=values, bins=bins, lo=np.float32(0), hi=np.float32(1)))
    idx = np.clip(np.floor(values * 8).astype(np.int32), 0, 7)
    np.testing.assert_array_equal(bins, np.bincount(idx, minlength=8))


def test_block_sum() -> None:
    x = rng.random(600, dtype=np.float32)
    partial = np.zeros(3, np.float32)
    run(compile_file(KERNELS / "block_sum.xvk").kernels[0], (3,), None, dict(x=x, partial=partial))
    np.testing.assert_allclose(partial, [x[:256].sum(), x[256:512].sum(), x[512:].sum()],
                               rtol=1e-5)


def test_mandelbrot() -> None:
    h, w, max_iter = 6, 8, 50
    out = np.zeros((h, w, 4), np.float32)
    run(compile_file(KERNELS / "mandelbrot.xvk").kernels[0], (1, 1), (8, 8),
        dict(out=out, cx=np.float32(-0.5), cy=np.float32(0), scale=np.float32(3),
             max_iter=np.int32(max_iter)))
    f = np.float32
    ref = np.zeros_like(out)
    for py in range(h):
        for px in range(w):
            c = np.array([-0.5, 0], f) + f(3) * (np.array([px, py], f) - f(0.5) *
                                                 np.array([w, h], f)) / f(h)
            z = np.zeros(2, f)
            i = 0
            while i < max_iter:
                z = np.array([z[0] * z[0] - z[1] * z[1], f(2) * z[0] * z[1]], f) + c
                if z @ z > 4:
                    break
                i += 1
            if i < max_iter:
                t = f(i) / f(max_iter)
                phase = t + np.array([0, 0.33, 0.67], f)
                ref[py, px, :3] = 0.5 + 0.5 * np.cos(f(6.28318) * phase)
            ref[py, px, 3] = 1
    np.testing.assert_allclose(out, ref, atol=1e-5)


# --------------------------------------------------------------------------
# Features
# --------------------------------------------------------------------------


def test_vectors_swizzles_and_broadcast() -> None:
    src = """
    kernel k(buffer<vec4> v, buffer<f32> out) {
        i32 i = global_id.x;
        vec4 a = v[i];
        vec3 b = a.xyz * 2.0 + 1.0;
        vec2 c = b.zx;
        c.yx = c;                 // swap through a swizzle write
        a.w = dot(b, vec3(1.0, 0.0, 0.0));
        v[i] = vec4(c, a.wz);
        v[i].x += 10.0;
        vec3 s = vec3(a.r);
        out[i] = length(s - vec3(0.0)) + b[1];
    }
    """
    v = rng.random((5, 4), dtype=np.float32)
    v0 = v.copy()
    out = np.zeros(5, np.float32)
    launch(src, (1,), (5,), v=v, out=out)
    b = v0[:, :3] * 2 + 1
    c = b[:, [0, 2]]  # swapped
    aw = b[:, 0]
    expected = np.stack([c[:, 0] + 10, c[:, 1], aw, v0[:, 2]], axis=1)
    np.testing.assert_allclose(v, expected, rtol=1e-6)
    np.testing.assert_allclose(out, np.sqrt(3 * v0[:, 0] ** 2) + b[:, 1], rtol=1e-6)


def test_swap_through_assignment_reads_old_values() -> None:
    src = """
    kernel k(buffer<vec4> v) {
        i32 i = global_id.x;
        vec2 p = vec2(v[i].x, v[i].y);
        p = p.yx;
        v[i] = v[i].wzyx;
        v[i].xy = p;
    }
    """
    v = rng.random((3, 4), dtype=np.float32)
    v0 = v.copy()
    launch(src, (1,), (3,), v=v)
    expected = v0[:, ::-1].copy()
    expected[:, 0], expected[:, 1] = v0[:, 1], v0[:, 0]
    np.testing.assert_allclose(v, expected)


def test_functions_return_early_and_take_buffers_and_images() -> None:
    src = """
    f32 pick(buffer<f32> b, i32 i) {
        if (i >= b.length) {
            return -1.0;
        }
        for (i32 k = 0; k < 100; k++) {
            if (k == i) {
                return b[k] * 2.0;
            }
        }
        return 0.0;
    }
    f32 corner(image<f32> img) {
        return img[img.width - 1, img.height - 1];
    }
    i32 twice(i32 x) {
        x *= 2;            // a copy: the caller's variable is unchanged
        return x;
    }
    kernel k(buffer<f32> b, image<f32> img, buffer<f32> out) {
        i32 i = global_id.x;
        i32 j = i;
        i32 t = twice(j);
        out[i] = pick(b, i + 2) + corner(img) + f32(t) + f32(j);
    }
    """
    b = rng.random(6, dtype=np.float32)
    img = rng.random((3, 4), dtype=np.float32)
    out = np.zeros(6, np.float32)
    launch(src, (1,), (6,), b=b, img=img, out=out)
    idx = np.arange(6)
    picked = np.where(idx + 2 < 6, b[np.minimum(idx + 2, 5)] * 2, -1)
    np.testing.assert_allclose(out, picked + img[2, 3] + 2 * idx + idx, rtol=1e-6)


def test_short_circuit_and_ternary_guard_reads() -> None:
    src = """
    bool positive(buffer<f32> x, i32 i) { return x[i] > 0.0; }
    kernel k(buffer<f32> x, buffer<i32> out) {
        i32 i = global_id.x;
        bool a = i < x.length && x[i] > 0.5;
        bool b = i >= x.length || positive(x, i);
        f32 c = i < x.length ? x[i] : -1.0;
        f32 d = i < x.length ? x[i] * 2.0 : positive(x, 0) ? 7.0 : 8.0;
        out[i] = (a ? 1 : 0) + (b ? 10 : 0) + (c > 0.0 ? 100 : 0) + i32(d);
    }
    """
    x = np.array([0.9, -0.5, 0.7], np.float32)
    out = np.zeros(5, np.int32)
    launch(src, (1,), (5,), x=x, out=out)  # items 3 and 4 would read out of bounds
    ref = []
    for i in range(5):
        a = i < 3 and x[i] > 0.5
        b = i >= 3 or x[i] > 0
        c = x[i] if i < 3 else -1.0
        d = x[i] * 2 if i < 3 else 7.0
        ref.append(int(a) + 10 * int(b) + 100 * int(c > 0) + int(np.float32(d)))
    np.testing.assert_array_equal(out, ref)


def test_unguarded_read_is_out_of_bounds() -> None:
    src = "kernel k(buffer<f32> x) { i32 i = global_id.x; x[i] = x[i + 1]; }"
    with pytest.raises(EvalError, match="out of bounds"):
        launch(src, (1,), (4,), x=np.zeros(4, np.float32))


def test_integer_semantics() -> None:
    src = """
    kernel k(buffer<u32> u, buffer<i32> s) {
        u32 big = 4294967295u;
        u[0] = big + 1u;                 // wraps to 0
        u[1] = 0u - 1u;                  // wraps to 2**32 - 1
        u[2] = big >> 28;
        u[3] = ~0u;
        u32 m = 3u;
        m <<= 31;
        u[4] = m;
        i32 a = -7;
        s[0] = a / 2;                    // truncates toward zero
        s[1] = a % 2;                    // sign of the dividend
        s[2] = a >> 1;                   // arithmetic shift
        s[3] = 2147483647 + s[7];        // wraps with a run-time value
        s[4] = i32(u[1]);
        s[5] = i32(-2.7);
        s[6] = 1 << 33;                  // a constant: exact, and too large for i32
    }
    """
    u = np.zeros(5, np.uint32)
    s = np.zeros(8, np.int32)
    s[7] = 1
    with pytest.raises(Exception):
        launch(src, (1,), (1,), u=u, s=s)  # 1 << 33 does not fit in i32
    src = src.replace("s[6] = 1 << 33;", "s[6] = 1 << (33 + s[7] - 1);")
    launch(src, (1,), (1,), u=u, s=s)
    np.testing.assert_array_equal(u, [0, 2**32 - 1, 15, 2**32 - 1, 2**31])
    np.testing.assert_array_equal(s[:7], [-3, -1, -4, -2**31, -1, -2, 2])


def test_a_constant_float_to_int_saturates_as_at_run_time() -> None:
    """Folding a conversion of a constant gives what the same conversion gives at run time:
    toward zero, saturating at the type's range (not wrapping)."""
    src = """
    kernel k(buffer<i32> s, buffer<u32> u, f32 big, f32 neg) {
        s[0] = i32(3000000000.0);    s[1] = i32(big);
        s[2] = i32(-3000000000.0);   s[3] = i32(-big);
        s[4] = i32(-2.7);            s[5] = i32(neg - 1.2);
        u[0] = u32(-1.5);            u[1] = u32(neg);
        u[2] = u32(6000000000.0);    u[3] = u32(big * 2.0);
    }
    """
    s = np.zeros(6, np.int32)
    u = np.zeros(4, np.uint32)
    launch(src, (1,), (1,), s=s, u=u, big=np.float32(3e9), neg=np.float32(-1.5))
    np.testing.assert_array_equal(s, [2**31 - 1] * 2 + [-2**31] * 2 + [-2, -2])
    np.testing.assert_array_equal(u, [0, 0, 2**32 - 1, 2**32 - 1])


def test_a_folded_conversion_of_an_f32_constant_uses_the_f32_itself() -> None:
    """An f32 constant is kept as the shortest decimal that rounds to it (123456790.0 for the
    f32 123456792), but converting it converts the f32: to i32, to f64, and at the edge of
    i32's range (the f32 2^31 saturates; its decimal 2147483600 would not)."""
    src = """
    const f32 M = 123456789.0;
    const f32 BIG = 2147483648.0;
    kernel k(buffer<i32> s, buffer<f64> d) {
        s[0] = i32(M);
        s[1] = i32(BIG);
        d[0] = f64(M);
        d[1] = f64(f32(0.1));
    }
    """
    s = np.zeros(2, np.int32)
    d = np.zeros(2, np.float64)
    launch(src, (1,), (1,), s=s, d=d)
    np.testing.assert_array_equal(s, [123456792, 2**31 - 1])
    np.testing.assert_array_equal(d, [float(np.float32(123456789.0)), float(np.float32(0.1))])


def test_literals_take_the_type_of_their_context() -> None:
    src = """
    kernel k(buffer<f32> f, buffer<f64> d, buffer<u32> u) {
        f32 x = 2;                // an integer literal as f32
        f[0] = x * 3 + 1 / 2;     // 1 / 2 folds as integers (0) then becomes f32
        f[1] = 1.5 * 2;
        d[0] = f64(x) / 3;        // division in f64
        u[0] = 7 / 2 + 1u;
        u[1] = 0xFFu & 0x0F;
    }
    """
    f = np.zeros(2, np.float32)
    d = np.zeros(1, np.float64)
    u = np.zeros(2, np.uint32)
    launch(src, (1,), (1,), f=f, d=d, u=u)
    np.testing.assert_array_equal(f, [6.0, 3.0])
    assert d[0] == 2.0 / 3
    np.testing.assert_array_equal(u, [4, 15])


def test_loops_break_continue_and_step() -> None:
    src = """
    kernel k(buffer<i32> out) {
        i32 i = global_id.x;
        i32 total = 0;
        for (i32 n = 0; n < 10; n++) {
            if (n % 2 == 0) { continue; }   // the step still runs
            if (n > i) { break; }
            total += n;
        }
        i32 w = 0;
        while (true) {
            w++;
            if (w >= i) { break; }
        }
        i32 steps = 0;
        for (i32 a = 0, b = 10; a < b; a += 2) { steps++; }
        out[i] = total * 100 + w * 10 + steps;
    }
    """
    out = np.zeros(6, np.int32)
    launch(src, (1,), (6,), out=out)
    ref = []
    for i in range(6):
        total = sum(n for n in range(10) if n % 2 == 1 and n <= i)
        w = max(1, i)
        ref.append(total * 100 + w * 10 + 5)
    np.testing.assert_array_equal(out, ref)


def test_loop_condition_calls_a_function() -> None:
    src = """
    bool below(i32 v, i32 limit) { return v < limit; }
    kernel k(buffer<i32> out) {
        i32 n = 0;
        while (below(n * n, global_id.x)) { n += 1; }
        i32 c = 0;
        for (i32 j = 0; below(j, 5); j++) { if (j == 1) { continue; } c++; }
        out[global_id.x] = n * 10 + c;
    }
    """
    out = np.zeros(20, np.int32)
    launch(src, (1,), (20,), out=out)
    ref = [next(n for n in range(100) if n * n >= g) * 10 + 4 for g in range(20)]
    np.testing.assert_array_equal(out, ref)


def test_private_shared_and_const_arrays() -> None:
    src = """
    const i32 N = 4;
    const f32 M[2][3] = {{1.0, 2.0, 3.0}, {4.0, 5.0, 6.0}};
    @workgroup(N)
    kernel k(buffer<f32> out) {
        shared f32 tile[N][N + 1];
        f32 acc[N];                       // private, starts zeroed
        vec2 pts[2] = {vec2(1.0, 2.0), vec2(3.0, 4.0)};
        i32 lid = local_id.x;
        for (i32 j = 0; j < N; j++) {
            tile[lid][j] = f32(lid * 10 + j);
        }
        barrier();
        for (i32 j = 0; j < N; j++) {
            acc[j] += tile[j][lid];       // a transpose through shared memory
        }
        pts[1].y += 0.5;
        out[lid] = acc[0] + acc[1] + acc[2] + acc[3] + M[1][lid % 3] + pts[1].y + pts[0].x;
    }
    """
    out = np.zeros(4, np.float32)
    module = launch(src, (1,), None, out=out)
    k = module.kernels[0]
    assert k.workgroup == (4, 1, 1)
    spaces = {d.name: (d.space, str(d.type)) for d in k.decls if d.type.kind == "array"}
    assert spaces["tile"] == ("shared", "f32[4][5]")
    assert spaces["pts"] == ("local", "f32[2][2]")
    assert spaces["M"] == ("const", "f32[2][3]")
    m = np.array([[1, 2, 3], [4, 5, 6]], np.float32)
    ref = [sum(j * 10 + lid for j in range(4)) + m[1][lid % 3] + 4.5 + 1 for lid in range(4)]
    np.testing.assert_allclose(out, ref)


def test_atomics_return_the_old_value() -> None:
    src = """
    kernel k(buffer<i32> counter, buffer<i32> slots, buffer<u32> bits, buffer<f32> m) {
        i32 i = global_id.x;
        i32 my = atomic_add(counter[0], 1);
        slots[my] = i;
        atomic_max(counter[1], i);
        atomic_min(counter[2], -i);
        atomic_sub(counter[3], 2);
        i32 seen = atomic_exchange(counter[4], i);
        i32 old = atomic_compare_exchange(counter[5], 0, 42);
        if (old == 42) { atomic_add(counter[6], 1); }
        atomic_add(m[0], 0.5);
        atomic_max(bits[0], u32(i));
    }
    """
    counter = np.zeros(7, np.int32)
    slots = np.full(8, -1, np.int32)
    bits = np.zeros(1, np.uint32)
    m = np.zeros(1, np.float32)
    launch(src, (1,), (8,), counter=counter, slots=slots, bits=bits, m=m)
    assert sorted(slots) == list(range(8))
    np.testing.assert_array_equal(counter, [8, 7, -7, -16, 7, 42, 7])
    assert bits[0] == 7 and m[0] == 4.0


def test_math_builtins_match_numpy() -> None:
    src = """
    kernel k(buffer<f32> x, buffer<f32> out) {
        i32 i = global_id.x;
        f32 v = x[i];
        vec3 p = vec3(v, v * 2.0, -v);
        i32 o = i * 24;
        out[o + 0] = clamp(v, 0.25, 0.75);
        out[o + 1] = mix(1.0, 3.0, v);
        out[o + 2] = step(0.5, v);
        out[o + 3] = smoothstep(0.2, 0.8, v);
        out[o + 4] = fract(v * 3.7);
        out[o + 5] = mod(v * 5.0 - 2.0, 1.5);
        out[o + 6] = inversesqrt(v + 1.0);
        out[o + 7] = round(v * 4.0 - 2.0);
        out[o + 8] = atan(v, 0.5) + atan2(0.5, v) + atan(v);
        out[o + 9] = pow(v, 1.5) + exp(v) + exp2(v) + log(v + 1.0) + log2(v + 1.0);
        out[o + 10] = sin(v) + cos(v) + tan(v) + asin(v) + acos(v);
        out[o + 11] = floor(v * 3.0) + ceil(v * 3.0) + trunc(-v * 3.0) + sign(v - 0.5) + abs(-v);
        out[o + 12] = min(v, 0.5) + max(v, 0.5) + sqrt(v);
        vec3 n = normalize(p);
        out[o + 13] = n.x;
        out[o + 14] = n.y;
        out[o + 15] = distance(p, vec3(1.0));
        vec3 c = cross(p, vec3(0.0, 1.0, 2.0));
        out[o + 16] = c.x;
        out[o + 17] = c.y;
        out[o + 18] = c.z;
        vec3 q = clamp(p, 0.0, 1.0) + mix(p, vec3(1.0), 0.25) + step(vec3(0.5), p);
        out[o + 19] = q.x + q.y + q.z;
        out[o + 20] = f32(clamp(i - 2, 0, 3) + abs(i - 4) + min(i, 3) + max(i, 1) + sign(i - 2));
        out[o + 21] = length(vec2(3.0, 4.0)) + dot(p, p) + length(-v);
        vec2 f = fract(vec2(v * 1.5, v * 2.5)) + mod(vec2(v, 2.0 * v), 0.3);
        out[o + 22] = f.x + f.y;
        out[o + 23] = smoothstep(vec2(0.1), vec2(0.9), vec2(v, 1.0 - v)).y;
    }
    """
    n = 7
    x = np.linspace(0.05, 0.95, n).astype(np.float32)
    out = np.zeros(24 * n, np.float32)
    launch(src, (1,), (n,), x=x, out=out)
    got = out.reshape(n, 24)
    v = x.astype(np.float64)

    def smooth(e0, e1, t):
        u = np.clip((t - e0) / (e1 - e0), 0, 1)
        return u * u * (3 - 2 * u)

    p = np.stack([v, 2 * v, -v], axis=1)
    i = np.arange(n)
    n_ = p / np.linalg.norm(p, axis=1, keepdims=True)
    c = np.cross(p, [0, 1, 2])
    q = np.clip(p, 0, 1) + (p + (1 - p) * 0.25) + (p >= 0.5)
    ref = np.stack([
        np.clip(v, 0.25, 0.75), 1 + 2 * v, (v >= 0.5) * 1.0, smooth(0.2, 0.8, v),
        (v * 3.7) % 1.0, (v * 5 - 2) - 1.5 * np.floor((v * 5 - 2) / 1.5), 1 / np.sqrt(v + 1),
        np.sign(v * 4 - 2) * np.floor(np.abs(v * 4 - 2) + 0.5),
        np.arctan2(v, 0.5) + np.arctan2(0.5, v) + np.arctan(v),
        v ** 1.5 + np.exp(v) + np.exp2(v) + np.log(v + 1) + np.log2(v + 1),
        np.sin(v) + np.cos(v) + np.tan(v) + np.arcsin(v) + np.arccos(v),
        np.floor(v * 3) + np.ceil(v * 3) + np.trunc(-v * 3) + np.sign(v - 0.5) + v,
        np.minimum(v, 0.5) + np.maximum(v, 0.5) + np.sqrt(v),
        n_[:, 0], n_[:, 1], np.linalg.norm(p - 1, axis=1), c[:, 0], c[:, 1], c[:, 2],
        q.sum(axis=1),
        np.clip(i - 2, 0, 3) + np.abs(i - 4) + np.minimum(i, 3) + np.maximum(i, 1) + np.sign(i - 2),
        5 + (p * p).sum(axis=1) + v,
        (v * 1.5) % 1 + (v * 2.5) % 1 + np.mod(v, 0.3) + np.mod(2 * v, 0.3),
        smooth(0.1, 0.9, 1 - v),
    ], axis=1)
    np.testing.assert_allclose(got, ref, rtol=2e-5, atol=2e-5)


def test_kernel_parameters_can_be_assigned_and_compound_operators() -> None:
    src = """
    kernel k(buffer<i32> out, i32 n, u32 mask) {
        n += 1;                   // works on a copy of the argument
        i32 v = 100;
        v -= 1; v *= 3; v /= 2; v %= 50; v <<= 2; v >>= 1; v &= 0xFF; v |= 1; v ^= 3;
        mask ^= 0xFu;
        out[0] = n;
        out[1] = v;
        out[2] = i32(mask);
    }
    """
    out = np.zeros(3, np.int32)
    module = launch(src, (1,), (1,), out=out, n=np.int32(41), mask=np.uint32(0xF0))
    v = 100
    v -= 1
    v *= 3
    v = int(v / 2)
    v %= 50
    v <<= 2
    v >>= 1
    v &= 0xFF
    v |= 1
    v ^= 3
    np.testing.assert_array_equal(out, [42, v, 0xFF])
    k = module.kernels[0]
    assert [p.name for p in k.params] == ["out", "n", "mask"]  # names kept for the runtime


def test_images_of_vec4_and_sizes() -> None:
    src = """
    kernel k(image<vec4> img, image<f32> gray) {
        i32 x = global_id.x;
        i32 y = global_id.y;
        if (x >= img.width || y >= img.height) { return; }
        vec4 c = img[x, y];
        gray[x, y] = dot(c.rgb, vec3(0.25, 0.5, 0.25));
        img[x, y].a = f32(x + y * img.width);
    }
    """
    img = rng.random((3, 5, 4), dtype=np.float32)
    img0 = img.copy()
    gray = np.zeros((3, 5), np.float32)
    launch(src, (2, 1), (4, 4), img=img, gray=gray)
    np.testing.assert_allclose(gray, img0[..., :3] @ np.array([0.25, 0.5, 0.25], np.float32),
                               rtol=1e-6)
    np.testing.assert_array_equal(img[..., 3], np.arange(15, dtype=np.float32).reshape(3, 5))


def test_every_node_carries_its_source_line() -> None:
    module = compile_file(KERNELS / "mandelbrot.xvk")
    lines = []
    stack = [module.kernels[0].body]
    while stack:
        n = stack.pop()
        if n.op is not ir.Op.BLOCK or n.arg is not None:
            lines.append(n.line)
        stack.extend(n.args)
    assert all(line > 0 for line in lines)
    assert 3 in lines  # the inlined body of palette() keeps palette's own line


def test_mixed_features() -> None:
    """Local constants, vec4 elements, vector-returning functions, f64, bool parameters,
    else-if chains and an atomic on the lazy side of '&&'."""
    src = """
    const i32 N = 3;
    vec3 shade(vec3 c, f32 k) { vec3 r = c * k; if (k > 1.0) { return r.zyx; } return r; }
    f32 sumimg(image<vec4> im, i32 x, i32 y) { vec4 p = im[x, y]; return p.x + p.y + p.z + p.w; }
    kernel k(buffer<vec4> v, image<vec4> im, buffer<f64> d, buffer<i32> cnt, bool flag) {
        i32 i = global_id.x;
        const f32 half = 0.5 * f32(i);
        const i32 TAB[N] = {10, 20, 30};
        v[i] += vec4(1.0);
        v[i][1] = half;
        vec3 s = shade(v[i].xyz, flag ? 2.0 : 0.5);
        v[i].xyz = s;
        f64 acc = 1.0;
        acc = acc * 2 + f64(v[i].w);
        d[i] = acc / 3;
        cnt[i]++;
        cnt[i] += TAB[i % N];
        if (i == 0) { cnt[0] += 100; } else if (i == 1) { cnt[1] += 200; } else { cnt[i] += 300; }
        bool got = i < 2 && atomic_add(cnt[3], 1) >= 0;
        if (got) { v[i].w = sumimg(im, i, 0); }
    }
    """
    v = np.arange(16, dtype=np.float32).reshape(4, 4)
    im = np.ones((1, 4, 4), np.float32)
    d = np.zeros(4)
    cnt = np.zeros(4, np.int32)
    launch(src, (1,), (3,), v=v, im=im, d=d, cnt=cnt, flag=True)
    np.testing.assert_allclose(v, [[6, 0, 2, 4], [14, 1, 10, 4], [22, 2, 18, 12], [12, 13, 14, 15]])
    np.testing.assert_allclose(d, [2, 10 / 3, 14 / 3, 0])
    np.testing.assert_array_equal(cnt, [111, 221, 331, 2])
