"""Random kernels with divergent control flow, run by the interpreter and by a plain per-work-item
reference (one item at a time, Python control flow); both must write the same results.

The generator mixes assignments, if/else, counted loops with break and continue to inner and
outer loops, labelled blocks, early returns and guarded loads, on per-item data, so that items
diverge everywhere.  A second family adds barriers between top-level phases and shared
memory that each phase writes and later phases read; the reference runs every item of a
group through one phase before the next.  Arithmetic goes through the interpreter's own ALU
functions (tested on their own in test_arith.py): what is compared here is control flow,
frames, barriers and memory.
"""

import random

import numpy as np
import pytest

from xv_core.ir import Op
from xv_cpu.interp import InterpBackend
from xv_cpu.interp import alu
from xv_cpu_irb import (
    aload, assign, astore, barrier, block, brk, c, cont, if_, kernel, land, length, load, loop, lor,
    ret, run, select, sp, store, var,
)

pytestmark = pytest.mark.usefixtures("each_backend")

INTS = ["a", "b", "d"]
SLOTS = 4


class Gen:
    def __init__(self, seed, phase=None):
        self.r = random.Random(seed)
        # In a kernel with barriers: the phase (0, 1, ...) being generated; phase p writes only
        # its own slot of shared array s<p> and reads only arrays of earlier phases.
        self.phase = phase
        self.loops = []  # labels of enclosing loops (innermost last)
        self.blocks = []  # labels of enclosing labelled blocks
        self.counters = 0
        self.labels = 0

    def int_expr(self, depth=0):
        r = self.r
        choice = r.random()
        if depth > 2 or choice < 0.3:
            return r.choice([
                lambda: var(r.choice(INTS)),
                lambda: c(r.randint(-5, 9)),
                lambda: sp("global_id.x"),
                lambda: sp("local_id.x"),
            ])()
        if choice < 0.4:
            if self.phase and self.r.random() < 0.5:
                p = self.r.randrange(self.phase)
                return aload(f"s{p}", (self.int_expr(depth + 1) & c(15)), t="i32")
            return self.guarded_load(depth)
        if choice < 0.5:
            return select(self.cond(depth + 1), self.int_expr(depth + 1), self.int_expr(depth + 1))
        op = r.choice([Op.ADD, Op.SUB, Op.MUL, Op.MIN, Op.MAX, Op.BITAND, Op.BITXOR])
        return self.int_expr(depth + 1)._bin(op, self.int_expr(depth + 1))

    def guarded_load(self, depth):
        # data[e] only where 0 <= e < length, else 0: the guard must protect the read.
        e = self.int_expr(depth + 1)
        inside = land(e.ge(0), e.lt(length("data")))
        return select(inside, load("data", select(inside, e, c(0)), "i32"), c(0))

    def cond(self, depth=0):
        r = self.r
        choice = r.random()
        if depth < 2 and choice < 0.15:
            return land(self.cond(depth + 1), self.cond(depth + 1))
        if depth < 2 and choice < 0.3:
            return lor(self.cond(depth + 1), self.cond(depth + 1))
        op = r.choice(["lt", "le", "gt", "ge", "eq", "ne"])
        if r.random() < 0.5:
            return getattr(self.int_expr(depth + 1) & c(7), op)(c(r.randint(0, 7)))
        return getattr(self.int_expr(depth + 1), op)(self.int_expr(depth + 1))

    def stmts(self, depth, n=None):
        n = n if n is not None else self.r.randint(1, 4)
        return [s for _ in range(n) for s in self.stmt(depth)]

    def stmt(self, depth):
        r = self.r
        x = r.random()
        if depth > 3 or x < 0.35:
            return [assign(r.choice(INTS), self.int_expr())]
        if x < 0.45:
            if self.phase is not None and r.random() < 0.5:
                return [astore(f"s{self.phase}", [sp("local_id.x")], self.int_expr())]
            slot = r.randrange(SLOTS)
            return [store("out", sp("global_id.x") * SLOTS + slot, self.int_expr())]
        if x < 0.65:
            return [if_(self.cond(), self.stmts(depth + 1), self.stmts(depth + 1, r.randint(0, 2)))]
        if x < 0.8:
            return self.counted_loop(depth)
        if x < 0.88:
            self.labels += 1
            label = f"B{self.labels}"
            self.blocks.append(label)
            body = self.stmts(depth + 1)
            self.blocks.pop()
            return [block(*body, label=label)]
        if x < 0.96 and (self.loops or self.blocks):
            targets = [("break", lbl) for lbl in self.loops + self.blocks]
            targets += [("continue", lbl) for lbl in self.loops]
            kind, label = r.choice(targets)
            leave = brk(label) if kind == "break" else cont(label)
            return [if_(self.cond(), [leave])]
        if x < 0.98:
            return [if_(self.cond(), [ret()])]
        return [assign(r.choice(INTS), self.int_expr())]

    def counted_loop(self, depth):
        self.counters += 1
        self.labels += 1
        k = self.counters
        counter = f"t{k}"
        label = f"L{self.labels}"
        bound = (self.int_expr() & c(7)) if self.r.random() < 0.7 else c(self.r.randint(0, 6))
        self.loops.append(label)
        body = self.stmts(depth + 1)
        self.loops.pop()
        t = var(counter)
        return [assign(counter, c(0)),
                loop(label, t.lt(bound), body, [assign(counter, t + 1)])]

    def kernel(self, phases=0):
        body = [assign(v, sp("global_id.x") * (i + 2)) for i, v in enumerate(INTS)]
        if phases:
            for p in range(phases):
                self.phase = p
                body += self.stmts(0, 4) + [barrier()]
            self.phase = phases
        body += self.stmts(0, 6)
        body += [store("out", sp("global_id.x") * SLOTS + s, var(v))
                 for s, v in enumerate(INTS[:SLOTS])]
        counters = "".join(f", i32 t{k}" for k in range(1, self.counters + 1))
        shared = {f"s{p}": "i32[16]" for p in range(phases + 1)} if phases else None
        return kernel("random", "buffer<i32> data, buffer<i32> out", body,
                      locals="i32 a, i32 b, i32 d" + counters, shared=shared)


# -- the reference: one work item at a time ---------------------------------------------


class Leave(Exception):
    def __init__(self, target):
        self.target = target


def reference(kernel_, data, out, groups, block_size):
    decls = {d.name: d for d in kernel_.all_decls()}

    def ev(node, env):
        op = node.op
        if op is Op.CONST:
            return alu.scalar(node.arg, node.type.kind)
        if op is Op.VAR:
            return env[node.arg]
        if op is Op.SPECIAL:
            return env["@" + node.arg]
        if op is Op.LENGTH:
            return np.int32(len(data))
        if op is Op.LOAD:
            i = int(ev(node.args[0], env))
            assert 0 <= i < len(data), "the guard let an out-of-range read through"
            return data[i]
        if op is Op.ALOAD:
            return env["@shared"][node.arg][int(ev(node.args[0], env))]
        if op is Op.LAND:
            return ev(node.args[1], env) if ev(node.args[0], env) else np.bool_(False)
        if op is Op.LOR:
            return np.bool_(True) if ev(node.args[0], env) else ev(node.args[1], env)
        if op is Op.SELECT:
            return ev(node.args[1] if ev(node.args[0], env) else node.args[2], env)
        fn, _ = alu.binary(op, node.args[0].type.kind)
        return fn(ev(node.args[0], env), ev(node.args[1], env))

    def ex(node, env):
        op = node.op
        if op is Op.BLOCK:
            try:
                for s in node.args:
                    ex(s, env)
            except Leave as leave:
                if node.arg is None or leave.target != node.arg:
                    raise
        elif op is Op.ASSIGN:
            env[node.arg] = ev(node.args[0], env)
        elif op is Op.STORE:
            out[int(ev(node.args[0], env))] = ev(node.args[1], env)
        elif op is Op.ASTORE:
            env["@shared"][node.arg][int(ev(node.args[0], env))] = ev(node.args[1], env)
        elif op is Op.IF:
            ex(node.args[1] if ev(node.args[0], env) else node.args[2], env)
        elif op is Op.LOOP:
            while ev(node.args[0], env):
                try:
                    ex(node.args[1], env)
                except Leave as leave:
                    if leave.target == node.arg:
                        break
                    if leave.target != ("continue", node.arg):
                        raise
                ex(node.args[2], env)
        elif op is Op.BREAK:
            raise Leave(node.arg)
        elif op is Op.CONTINUE:
            raise Leave(("continue", node.arg))
        elif op is Op.RETURN:
            raise Leave("<return>")

    # Barriers only stand at the top level: run the kernel phase by phase, every item of a
    # group through one phase before any starts the next.
    phases = [[]]
    for s in kernel_.body.args:
        if s.op is Op.BARRIER:
            phases.append([])
        else:
            phases[-1].append(s)
    for group in range(groups):
        shared = {d.name: np.zeros(16, np.int32) for d in decls.values() if d.space == "shared"}
        envs = []
        for lid in range(block_size):
            env = {d.name: np.int32(0) for d in decls.values() if d.space == "local"}
            item = group * block_size + lid
            env.update({"@global_id.x": np.int32(item), "@local_id.x": np.int32(lid),
                        "@shared": shared, "@done": False})
            envs.append(env)
        for phase in phases:
            for env in envs:
                if env["@done"]:
                    continue
                try:
                    for s in phase:
                        ex(s, env)
                except Leave as leave:
                    assert leave.target == "<return>"
                    env["@done"] = True


@pytest.mark.parametrize("seed", range(60))
def test_random_divergent_kernels_match_the_per_item_reference(seed):
    k = Gen(seed).kernel()
    rng = np.random.default_rng(seed)
    groups, block_size = 5, 16
    n = groups * block_size
    data = rng.integers(-20, 60, n - 7).astype(np.int32)
    expected = np.full(n * SLOTS, -99, np.int32)
    with np.errstate(all="ignore"):
        reference(k, data, expected, groups, block_size)
    for batch_items, tile_groups in ((32768, None), (7, 3)):
        out = np.full(n * SLOTS, -99, np.int32)
        run(k, {"data": data, "out": out}, grid=groups, block=block_size,
            backend=InterpBackend(batch_items), tile_groups=tile_groups)
        np.testing.assert_array_equal(out, expected, err_msg=f"batch {batch_items}")


@pytest.mark.parametrize("seed", range(30))
def test_random_kernels_with_barriers_and_shared_memory(seed):
    k = Gen(1000 + seed).kernel(phases=2)
    rng = np.random.default_rng(seed)
    groups, block_size = 4, 16
    n = groups * block_size
    data = rng.integers(-20, 60, n - 5).astype(np.int32)
    expected = np.full(n * SLOTS, -99, np.int32)
    with np.errstate(all="ignore"):
        reference(k, data, expected, groups, block_size)
    for batch_items, tile_groups in ((32768, None), (16, 1)):
        out = np.full(n * SLOTS, -99, np.int32)
        run(k, {"data": data, "out": out}, grid=groups, block=block_size,
            backend=InterpBackend(batch_items), tile_groups=tile_groups)
        np.testing.assert_array_equal(out, expected, err_msg=f"batch {batch_items}")
