"""Kernels built by hand that several tests use: the conformance kernels of issue 3 in IR."""

import numpy as np
from xv_cpu_irb import (
    aload, assign, astore, atomic, barrier, c, for_, height, if_, iload, istore, kernel, length,
    load, loop, ret, select, sp, store, var, width,
)


def block_sum_kernel():
    lid, gid, stride = var("lid"), var("gid"), var("stride")
    inside = gid.lt(length("x"))
    return kernel("block_sum", "buffer<f32> x, buffer<f32> partial", [
        assign("lid", sp("local_id.x")),
        assign("gid", sp("global_id.x")),
        astore("s", [lid], select(inside, load("x", gid), c(0.0, "f32"))),
        barrier(),
        assign("stride", c(128)),
        loop("L", stride.gt(0), [
            if_(lid.lt(stride), [astore("s", [lid], aload("s", lid) + aload("s", lid + stride))]),
            barrier(),
        ], [assign("stride", stride / 2)]),
        if_(lid.eq(0), [store("partial", sp("group_id.x"), aload("s", c(0)))]),
    ], locals="i32 lid, i32 gid, i32 stride", shared={"s": "f32[256]"}, workgroup=(256, 1, 1))


def tree_reference(x, groups):
    s = np.zeros((groups, 256), np.float32)
    s.ravel()[: len(x)] = x
    stride = 128
    while stride > 0:
        s[:, :stride] = s[:, :stride] + s[:, stride : 2 * stride]
        stride //= 2
    return s[:, 0]


def matmul_kernel():
    # The tiled matmul of issue 3, with a barrier inside the loop over tiles.
    row, col, ly, lx, acc, t, kk, n = (var("row"), var("col"), var("ly"), var("lx"),
                                       var("acc", "f32"), var("t"), var("k"), var("n"))
    tile = 8
    return kernel("matmul", "buffer<f32> a, buffer<f32> b, buffer<f32> c, i32 n", [
        assign("row", sp("global_id.y")), assign("col", sp("global_id.x")),
        assign("ly", sp("local_id.y")), assign("lx", sp("local_id.x")),
        assign("acc", c(0.0, "f32")),
        *for_("T", "t", 0, n / tile, [
            astore("ta", [ly, lx], load("a", row * n + t * tile + lx)),
            astore("tb", [ly, lx], load("b", (t * tile + ly) * n + col)),
            barrier(),
            *for_("K", "k", 0, tile, [
                assign("acc", acc + aload("ta", ly, kk) * aload("tb", kk, lx)),
            ]),
            barrier(),
        ]),
        store("c", row * n + col, acc),
    ], locals="i32 row, i32 col, i32 ly, i32 lx, f32 acc, i32 t, i32 k",
        shared={"ta": "f32[8][8]", "tb": "f32[8][8]"}, workgroup=(8, 8, 1))


def histogram_kernel():
    i, b = var("i"), var("b")
    return kernel("histogram", "buffer<f32> values, buffer<i32> bins, f32 lo, f32 hi", [
        assign("i", sp("global_id.x")),
        if_(i.ge(length("values")), [ret()]),
        assign("b", ((load("values", i) - var("lo", "f32")) / (var("hi", "f32") - var("lo", "f32"))
                     * length("bins").cast("f32")).cast("i32")),
        assign("b", select(b.lt(0), c(0), select(b.gt(length("bins") - 1), length("bins") - 1, b))),
        atomic("add", "bins", b, c(1)),
    ], locals="i32 i, i32 b")


def clamp(v, lo, hi):
    return select(v.lt(lo), lo, select(v.gt(hi), hi, v))


def gauss5_kernel():
    x, y, acc, dx, dy = var("x"), var("y"), var("acc", "f32"), var("dx"), var("dy")
    return kernel("gauss5", "image<f32> src, image<f32> dst", [
        assign("x", sp("global_id.x")), assign("y", sp("global_id.y")),
        if_(x.ge(width("src")).__or__(y.ge(height("src"))), [ret()]),
        assign("acc", c(0.0, "f32")),
        *for_("DY", "dy", -2, 3, [
            *for_("DX", "dx", -2, 3, [
                assign("acc", acc + aload("W", dx + 2) * aload("W", dy + 2)
                       * iload("src", clamp(x + dx, c(0), width("src") - 1),
                               clamp(y + dy, c(0), height("src") - 1))),
            ]),
        ]),
        istore("dst", x, y, acc / 256.0),
    ], locals="i32 x, i32 y, f32 acc, i32 dx, i32 dy",
        consts={"W": ("f32[5]", [1, 4, 6, 4, 1])}, workgroup=(16, 16, 1))


def gauss5_reference(src):
    w = np.array([1, 4, 6, 4, 1], np.float32)
    h, wd = src.shape
    pad = np.pad(src, 2, mode="edge")
    acc = np.zeros_like(src)
    for dy in range(-2, 3):
        for dx in range(-2, 3):
            acc = acc + w[dx + 2] * w[dy + 2] * pad[2 + dy : 2 + dy + h, 2 + dx : 2 + dx + wd]
    return acc / np.float32(256)
