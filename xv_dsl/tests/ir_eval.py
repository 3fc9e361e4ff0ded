"""A tiny reference evaluator of the IR, for the front end's own tests.

It runs one work item at a time (a generator per work item, suspended at
each barrier), straight from the semantics in ``xv_core/ir/nodes.py``.  It
is slow and simple on purpose: its only job is to let these tests check
what the lowering produces against numpy, without depending on a backend
plugin (a plugin may not import another).
"""

from __future__ import annotations

import math
from collections.abc import Generator, Mapping
from typing import Any

import numpy as np

from xv_core.ir import CONSTANT, LOCAL, SHARED, Kernel, Node, Op

DT = {"bool": np.bool_, "i32": np.int32, "u32": np.uint32, "f32": np.float32, "f64": np.float64}


class _Break(Exception):
    def __init__(self, label: str):
        self.label = label


class _Continue(Exception):
    def __init__(self, label: str):
        self.label = label


class _Return(Exception):
    pass


class EvalError(Exception):
    pass


def _wrap(kind: str, value: Any) -> Any:
    with np.errstate(all="ignore"):
        if kind == "bool":
            return bool(value)
        if kind in ("i32", "u32"):
            v = int(value)
            v %= 1 << 32
            if kind == "i32" and v >= 1 << 31:
                v -= 1 << 32
            return DT[kind](v)
        return DT[kind](value)


class _Item:
    def __init__(self, kernel: Kernel, args: Mapping[str, Any], shared: dict[str, np.ndarray],
                 ids: dict[str, tuple[int, int, int]]):
        self.k = kernel
        self.args = args
        self.shared = shared
        self.ids = ids
        self.locals: dict[str, Any] = {}
        for d in kernel.decls:
            if d.space == LOCAL and d.type.kind == "array":
                self.locals[d.name] = np.zeros(d.type.shape, DT[d.type.elem])
            elif d.space == CONSTANT:
                self.locals[d.name] = np.array(d.init, DT[d.type.elem]).reshape(d.type.shape)
        for d in kernel.params:
            if d.type.is_scalar:
                self.locals[d.name] = _wrap(d.type.kind, args[d.name])

    # ---- statements -----------------------------------------------------------
    def run(self) -> Generator[None, None, None]:
        try:
            yield from self.stmt(self.k.body)
        except _Return:
            pass

    def stmt(self, n: Node) -> Generator[None, None, None]:
        op = n.op
        if op is Op.BLOCK:
            try:
                for s in n.args:
                    yield from self.stmt(s)
            except _Break as b:
                if n.arg is None or b.label != n.arg:
                    raise
        elif op is Op.IF:
            yield from self.stmt(n.args[1] if self.expr(n.args[0]) else n.args[2])
        elif op is Op.LOOP:
            cond, body, step = n.args
            while self.expr(cond):
                try:
                    yield from self.stmt(body)
                except _Break as b:
                    if b.label == n.arg:
                        break
                    raise
                except _Continue as c:
                    if c.label != n.arg:
                        raise
                yield from self.stmt(step)
        elif op is Op.BREAK:
            raise _Break(n.arg)
        elif op is Op.CONTINUE:
            raise _Continue(n.arg)
        elif op is Op.RETURN:
            raise _Return
        elif op is Op.BARRIER:
            yield
        elif op is Op.ASSIGN:
            self.locals[n.arg] = self.expr(n.args[0])
        elif op is Op.STORE:
            name, lane = n.arg
            arr = self.args[name]
            i = int(self.expr(n.args[0]))
            self.bounds(name, arr.shape[0], i, n)
            if arr.ndim == 2:
                arr[i, lane] = self.expr(n.args[1])
            else:
                arr[i] = self.expr(n.args[1])
        elif op is Op.ISTORE:
            name, lane = n.arg
            arr = self.args[name]
            x, y = int(self.expr(n.args[0])), int(self.expr(n.args[1]))
            self.bounds(name, arr.shape[1], x, n)
            self.bounds(name, arr.shape[0], y, n)
            if arr.ndim == 3:
                arr[y, x, lane] = self.expr(n.args[2])
            else:
                arr[y, x] = self.expr(n.args[2])
        elif op is Op.ASTORE:
            arr = self.array(n.arg)
            idx = tuple(int(self.expr(a)) for a in n.args[:-1])
            for i, size in zip(idx, arr.shape):
                self.bounds(n.arg, size, i, n)
            arr[idx] = self.expr(n.args[-1])
        elif op is Op.ATOMIC:
            kind, name, result = n.arg
            arr = self.args[name]
            i = int(self.expr(n.args[0]))
            self.bounds(name, arr.shape[0], i, n)
            vals = [self.expr(a) for a in n.args[1:]]
            old = arr[i].copy()
            t = arr.dtype.type
            with np.errstate(all="ignore"):
                if kind == "add":
                    arr[i] = t(old + vals[0])
                elif kind == "sub":
                    arr[i] = t(old - vals[0])
                elif kind == "min":
                    arr[i] = min(old, vals[0])
                elif kind == "max":
                    arr[i] = max(old, vals[0])
                elif kind == "exchange":
                    arr[i] = vals[0]
                elif kind == "cmpxchg":
                    if old == vals[0]:
                        arr[i] = vals[1]
            if result is not None:
                self.locals[result] = old
        else:
            raise EvalError(f"not a statement: {op}")

    def bounds(self, name: str, size: int, i: int, n: Node) -> None:
        if not 0 <= i < size:
            raise EvalError(f"line {n.line}: {name}[{i}] is out of bounds ({size})")

    def array(self, name: str) -> np.ndarray:
        return self.shared[name] if name in self.shared else self.locals[name]

    # ---- expressions -----------------------------------------------------------
    def expr(self, n: Node) -> Any:
        op, t = n.op, n.type.kind
        a = n.args
        if op is Op.CONST:
            return _wrap(t, n.arg)
        if op is Op.VAR:
            return self.locals[n.arg]
        if op is Op.SPECIAL:
            name, axis = n.arg.split(".")
            return np.int32(self.ids[name]["xyz".index(axis)])
        if op is Op.LENGTH:
            return np.int32(self.args[n.arg].shape[0])
        if op is Op.WIDTH:
            return np.int32(self.args[n.arg].shape[1])
        if op is Op.HEIGHT:
            return np.int32(self.args[n.arg].shape[0])
        if op is Op.LOAD:
            name, lane = n.arg
            arr = self.args[name]
            i = int(self.expr(a[0]))
            self.bounds(name, arr.shape[0], i, n)
            return arr[i, lane] if arr.ndim == 2 else arr[i]
        if op is Op.ILOAD:
            name, lane = n.arg
            arr = self.args[name]
            x, y = int(self.expr(a[0])), int(self.expr(a[1]))
            self.bounds(name, arr.shape[1], x, n)
            self.bounds(name, arr.shape[0], y, n)
            return arr[y, x, lane] if arr.ndim == 3 else arr[y, x]
        if op is Op.ALOAD:
            arr = self.array(n.arg)
            idx = tuple(int(self.expr(x)) for x in a)
            for i, size in zip(idx, arr.shape):
                self.bounds(n.arg, size, i, n)
            return arr[idx]
        if op is Op.LAND:
            return bool(self.expr(a[0])) and bool(self.expr(a[1]))
        if op is Op.LOR:
            return bool(self.expr(a[0])) or bool(self.expr(a[1]))
        if op is Op.SELECT:
            return self.expr(a[1]) if self.expr(a[0]) else self.expr(a[2])
        vals = [self.expr(x) for x in a]
        with np.errstate(all="ignore"):
            return self.alu(op, t, vals, n)

    def alu(self, op: Op, t: str, v: list[Any], n: Node) -> Any:
        if op is Op.CAST:
            x = v[0]
            if t == "bool":
                return bool(x != 0)
            if t in ("i32", "u32"):
                if isinstance(x, (np.floating, float)):
                    lo, hi = (-(1 << 31), (1 << 31) - 1) if t == "i32" else (0, (1 << 32) - 1)
                    x = float(x)
                    return 0 if math.isnan(x) else lo if x <= lo else hi if x >= hi else \
                        math.trunc(x)
                return _wrap(t, int(x))
            return _wrap(t, float(x))
        if op in (Op.EQ, Op.NE, Op.LT, Op.LE, Op.GT, Op.GE):
            x, y = v
            return bool({Op.EQ: x == y, Op.NE: x != y, Op.LT: x < y, Op.LE: x <= y, Op.GT: x > y,
                         Op.GE: x >= y}[op])
        is_int = t in ("i32", "u32")
        if len(v) == 1:
            x = v[0]
            if op is Op.NEG:
                return _wrap(t, -int(x)) if is_int else -x
            if op is Op.NOT:
                return not x
            if op is Op.BITNOT:
                return _wrap(t, ~int(x))
            if op is Op.ABS:
                return _wrap(t, abs(int(x))) if is_int else abs(x)
            if op is Op.SIGN:
                return _wrap(t, (int(x) > 0) - (int(x) < 0)) if is_int else DT[t](np.sign(x))
            if op is Op.ROUND:
                return DT[t](np.sign(x) * np.floor(np.abs(x) + DT[t](0.5)))
            if op is Op.RSQRT:
                return DT[t](1) / np.sqrt(x)
            fn = {Op.FLOOR: np.floor, Op.CEIL: np.ceil, Op.TRUNC: np.trunc, Op.SQRT: np.sqrt,
                  Op.EXP: np.exp, Op.EXP2: np.exp2, Op.LOG: np.log, Op.LOG2: np.log2,
                  Op.SIN: np.sin, Op.COS: np.cos, Op.TAN: np.tan, Op.ASIN: np.arcsin,
                  Op.ACOS: np.arccos, Op.ATAN: np.arctan}[op]
            return DT[t](fn(x))
        x, y = v
        if t == "bool":
            return {Op.BITAND: x and y, Op.BITOR: x or y, Op.BITXOR: x != y}[op]
        if is_int:
            x, y = int(x), int(y)
            if op in (Op.DIV, Op.MOD):
                if y == 0:
                    raise EvalError(f"line {n.line}: integer division by zero")
                q = abs(x) // abs(y)
                if (x < 0) != (y < 0):
                    q = -q
                return _wrap(t, q if op is Op.DIV else x - y * q)
            if op in (Op.SHL, Op.SHR):
                s = y % 32
                if op is Op.SHL:
                    return _wrap(t, x << s)
                return _wrap(t, (x % (1 << 32)) >> s if t == "u32" else x >> s)
            r = {Op.ADD: x + y, Op.SUB: x - y, Op.MUL: x * y, Op.MIN: min(x, y),
                 Op.MAX: max(x, y), Op.BITAND: x & y, Op.BITOR: x | y, Op.BITXOR: x ^ y}[op]
            return _wrap(t, r)
        f = DT[t]
        x, y = f(x), f(y)
        if op is Op.MOD:
            return f(np.fmod(x, y))
        if op is Op.POW:
            return f(np.power(x, y))
        if op is Op.ATAN2:
            return f(np.arctan2(x, y))
        return f({Op.ADD: x + y, Op.SUB: x - y, Op.MUL: x * y, Op.DIV: x / y,
                  Op.MIN: min(x, y), Op.MAX: max(x, y)}[op])


def run(kernel: Kernel, grid: tuple[int, ...], block: tuple[int, ...] | None,
        args: Mapping[str, Any]) -> None:
    """Run ``kernel`` over ``grid`` workgroups of ``block`` work items; arrays in
    ``args`` are updated in place."""
    block = tuple(block or kernel.workgroup or (1,))
    grid = tuple(grid) + (1,) * (3 - len(grid))
    block = block + (1,) * (3 - len(block))
    for gz in range(grid[2]):
        for gy in range(grid[1]):
            for gx in range(grid[0]):
                shared = {d.name: np.zeros(d.type.shape, DT[d.type.elem])
                          for d in kernel.decls if d.space == SHARED}
                items = []
                for lz in range(block[2]):
                    for ly in range(block[1]):
                        for lx in range(block[0]):
                            g = (gx, gy, gz)
                            loc = (lx, ly, lz)
                            ids = {
                                "global_id": tuple(g[i] * block[i] + loc[i] for i in range(3)),
                                "local_id": loc, "group_id": g, "group_size": block,
                                "num_groups": grid,
                            }
                            items.append(_Item(kernel, args, shared, ids).run())
                alive = items
                while alive:
                    at_barrier = []
                    for it in alive:
                        try:
                            next(it)
                            at_barrier.append(it)
                        except StopIteration:
                            pass
                    alive = at_barrier
