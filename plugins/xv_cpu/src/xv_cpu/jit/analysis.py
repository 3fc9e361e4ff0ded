"""What the code generator needs to know about a kernel before it emits anything.

The ``jit`` lowers a kernel in the manner of PoCL's work-group functions: the body is
cut at barriers into *regions*, each region becomes a loop over the work items of the
group, and the statements that contain barriers (the *skeleton*: loops, ifs and blocks
with a barrier inside) run once per group.  That is only sound when every work item
that has not returned takes the same path through the skeleton, so this module:

* finds the group-*uniform* locals (same value in every live item) and the conditions
  that can be evaluated once per group;
* decides the *mode*: ``single`` (no barrier: the whole body is one region),
  ``convergent`` (barriers only under uniform control flow, no break or continue across
  a region boundary) or ``fallback`` (anything else; the kernel runs on the interpreter,
  which implements divergent barriers and their runtime check);
* finds the locals that must be kept per work item across regions (the context arrays),
  the uniform locals kept once per group, and the locals recomputed instead of stored;
* finds the buffers whose atomics may be privatised per tile.
"""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from xv_core.ir import BINARY, COMPARE, LOCAL, PARAM, UNARY, Kernel, Node, Op

_ALU = UNARY | BINARY | COMPARE | {Op.CAST}
_GROUP_SPECIALS = ("group_id.", "group_size.", "num_groups.")


def walk(node: Node) -> Iterator[Node]:
    """Every node of a tree, parents before children."""
    stack = [node]
    while stack:
        n = stack.pop()
        yield n
        stack.extend(reversed(n.args))


def has_barrier(node: Node) -> bool:
    return any(n.op is Op.BARRIER for n in walk(node))


def reads(node: Node) -> set[str]:
    """Names of the locals and parameters an expression or statement reads."""
    return {n.arg for n in walk(node) if n.op is Op.VAR}


def writes(node: Node) -> set[str]:
    """Names of the locals a statement assigns (including atomic results)."""
    out: set[str] = set()
    for n in walk(node):
        if n.op is Op.ASSIGN:
            out.add(n.arg)
        elif n.op is Op.ATOMIC and n.arg[2] is not None:
            out.add(n.arg[2])
    return out


def arrays(node: Node) -> set[str]:
    return {n.arg for n in walk(node) if n.op in (Op.ALOAD, Op.ASTORE)}


@attrs.define
class Region:
    """A run of barrier-free statements of one skeleton block, run as a loop over items.

    ``hoisted``: the uniform assignments run once per group before the item loop
    (convergent mode); ``stmts``: the rest, run per item.
    """

    stmts: list[Node]
    hoisted: list[Node] = attrs.Factory(list)
    repeated: bool = False  # inside a skeleton loop: runs several times per group
    #: Hoisted statements that follow a statement that may return: they also stay in
    #: ``stmts``, where they only count their work, for the items still live there.
    count_only: set[int] = attrs.Factory(set)


@attrs.define
class Plan:
    mode: str  # "single", "convergent" or "fallback"
    why: str = ""  # why a kernel falls back
    #: Locals kept once per group (uniform, assigned only by hoisted statements).
    group_vars: set[str] = attrs.Factory(set)
    #: Locals kept per work item across regions (scalars and private arrays).
    context_vars: set[str] = attrs.Factory(set)
    #: Locals recomputed from their one defining expression wherever they are read.
    remat: dict[str, Node] = attrs.Factory(dict)
    #: The pieces of each skeleton block (by ``id`` of the block): regions and the
    #: statements with a barrier inside, in order (barriers themselves are dropped).
    pieces: dict[int, list[Region | Node]] = attrs.Factory(dict)
    has_return: bool = False
    #: Buffers whose atomics may run on a per-tile private copy: name -> merge kind.
    privatisable: dict[str, str] = attrs.Factory(dict)


class _Uniformity:
    """Which locals hold the same value in every live work item of a group.

    Optimistic fixpoint: start with every scalar local uniform and demote a local when
    one of its assignments has a non-uniform value or runs under control flow that
    differs between items.  A break or continue under such control makes everything
    assigned inside its target construct non-uniform; a return does not matter, since
    the values of returned items are never read again.
    """

    def __init__(self, kernel: Kernel):
        self.kernel = kernel
        self.decls = {d.name: d for d in kernel.all_decls()}
        self.uniform = {d.name for d in kernel.decls if d.space == LOCAL and d.type.is_scalar}
        changed = True
        while changed:
            before = set(self.uniform)
            self._stmt(kernel.body, divergent=False)
            changed = before != self.uniform

    def expr(self, node: Node) -> bool:
        op = node.op
        if op is Op.CONST or op in (Op.LENGTH, Op.WIDTH, Op.HEIGHT):
            return True
        if op is Op.VAR:
            return self.decls[node.arg].space == PARAM or node.arg in self.uniform
        if op is Op.SPECIAL:
            return node.arg.startswith(_GROUP_SPECIALS)
        if op in _ALU or op in (Op.LAND, Op.LOR, Op.SELECT):
            return all(self.expr(a) for a in node.args)
        return False  # memory reads

    def _demote(self, node: Node) -> None:
        self.uniform -= writes(node)

    def _stmt(self, node: Node, divergent: bool) -> None:
        op = node.op
        if op is Op.BLOCK:
            if node.arg is not None and self._divergent_exit(node, node.arg, divergent):
                self._demote(node)
                divergent = True
            for s in node.args:
                self._stmt(s, divergent)
        elif op is Op.ASSIGN:
            if divergent or not self.expr(node.args[0]):
                self.uniform.discard(node.arg)
        elif op is Op.ATOMIC:
            if node.arg[2] is not None:
                self.uniform.discard(node.arg[2])
        elif op is Op.IF:
            inner = divergent or not self.expr(node.args[0])
            self._stmt(node.args[1], inner)
            self._stmt(node.args[2], inner)
        elif op is Op.LOOP:
            inner = divergent or not self.expr(node.args[0])
            if self._divergent_exit(node, node.arg, inner):
                inner = True
            if inner:
                self._demote(node)
            self._stmt(node.args[1], inner)
            self._stmt(node.args[2], inner)

    def _divergent_exit(self, node: Node, label: str, divergent: bool) -> bool:
        """True when a break or continue to ``label`` inside ``node`` sits under
        control flow that may differ between items."""

        def visit(n: Node, div: bool) -> bool:
            if n.op in (Op.BREAK, Op.CONTINUE):
                return div and n.arg == label
            if n.op is Op.IF:
                d = div or not self.expr(n.args[0])
                return visit(n.args[1], d) or visit(n.args[2], d)
            if n.op is Op.LOOP:
                d = div or not self.expr(n.args[0])
                return visit(n.args[1], d) or visit(n.args[2], d)
            if n.op is Op.BLOCK:
                return any(visit(s, div) for s in n.args)
            return False

        return any(visit(a, divergent) for a in node.args if a.op is Op.BLOCK)


def _exits(node: Node) -> Iterator[Node]:
    return (n for n in walk(node) if n.op in (Op.BREAK, Op.CONTINUE, Op.RETURN))


def _labels_inside(node: Node) -> set[str]:
    return {n.arg for n in walk(node) if n.op in (Op.LOOP, Op.BLOCK) and n.arg is not None}


def _remat_candidate(node: Node, known: set[str]) -> bool:
    """An expression of builtins, parameters, sizes, constants and locals in ``known``
    that cannot fail."""
    for n in walk(node):
        if n.op is Op.VAR and n.arg not in known:
            return False
        if n.op in (Op.LOAD, Op.ILOAD, Op.ALOAD, Op.LAND, Op.LOR, Op.SELECT):
            return False
        if n.op in (Op.DIV, Op.MOD) and n.type.is_int:
            return False
    return True


def plan_kernel(kernel: Kernel) -> Plan:
    body = kernel.body
    plan = Plan("single")
    plan.privatisable = _privatisable(kernel)
    uni = _Uniformity(kernel)
    params = {d.name for d in kernel.params}
    plan.remat = _remat(kernel, uni, params)
    if not has_barrier(body):
        return plan
    plan.mode = "convergent"
    plan.has_return = any(n.op is Op.RETURN for n in walk(body))

    # -- the skeleton: split blocks with barriers into regions; check every condition ----
    regions: list[Region] = []

    def fallback(why: str) -> None:
        if plan.mode != "fallback":
            plan.mode, plan.why = "fallback", why

    def skeleton(block: Node, repeated: bool) -> None:
        if block.arg is not None and any(e.arg == block.arg for e in _exits(block)):
            fallback("a break leaves a block that contains a barrier")
        run: list[Node] = []
        pieces: list[Region | Node] = []
        plan.pieces[id(block)] = pieces

        def close() -> None:
            if run:
                regions.append(Region(list(run), repeated=repeated))
                pieces.append(regions[-1])
                run.clear()

        for s in block.args:
            if s.op is Op.BARRIER:
                close()
            elif not has_barrier(s):
                run.append(s)
            else:
                close()
                pieces.append(s)
                if s.op is Op.BLOCK:
                    skeleton(s, repeated)
                elif s.op is Op.IF:
                    if not uni.expr(s.args[0]):
                        fallback("a barrier under an if whose condition differs between items")
                    skeleton(s.args[1], repeated)
                    skeleton(s.args[2], repeated)
                elif s.op is Op.LOOP:
                    if not uni.expr(s.args[0]):
                        fallback("a barrier in a loop whose condition differs between items")
                    skeleton(s.args[1], True)
                    skeleton(s.args[2], True)
        close()

    skeleton(body, False)
    # A break or continue inside a region must stay inside it: leaving a region would
    # make the items of a group take different paths through the skeleton.
    for r in regions:
        inside = set().union(*(_labels_inside(s) for s in r.stmts))
        for s in r.stmts:
            for e in _exits(s):
                if e.op is not Op.RETURN and e.arg not in inside:
                    fallback("a break or continue crosses a barrier")
    if plan.mode == "fallback":
        return plan

    # -- uniform locals kept once per group: every assignment of them hoistable ----------
    # An assignment is hoisted out of its region's item loop when it is a top-level
    # statement of the region, its value is computable once per group, and no per-item
    # statement before it in the region touches the local.
    group_vars = set(uni.uniform) - set(plan.remat)
    while True:
        bad: set[str] = set()
        for r in regions:
            earlier: set[str] = set()
            for s in r.stmts:
                if s.op is Op.ASSIGN and s.arg in group_vars:
                    if s.arg in earlier or not _group_evaluable(s.args[0], group_vars, params):
                        bad.add(s.arg)
                        earlier |= reads(s) | writes(s)
                else:
                    bad |= writes(s) & group_vars
                    earlier |= reads(s) | writes(s)
        if not bad:
            break
        group_vars -= bad
    plan.group_vars = group_vars
    for r in regions:
        keep, hoisted = [], []
        returned = False  # an earlier statement of the region may return
        for s in r.stmts:
            if s.op is Op.ASSIGN and s.arg in group_vars:
                hoisted.append(s)
                if returned:  # counted where it stands, for the items not returned
                    keep.append(s)
                    r.count_only.add(id(s))
            else:
                keep.append(s)
                returned = returned or any(n.op is Op.RETURN for n in walk(s))
        r.stmts, r.hoisted = keep, hoisted
    # Every skeleton condition must be computable once per group.
    for n in _skeleton_conditions(body):
        if not _group_evaluable(n, group_vars, params):
            plan.mode, plan.why = "fallback", "a barrier under a condition computed per item"
            return plan

    # -- locals that live across regions: one value per work item in a context array -----
    per_item = {d.name for d in kernel.decls if d.space == LOCAL} - group_vars - set(plan.remat)
    used_in: dict[str, int] = {}
    for r in regions:
        names = set()
        for s in r.stmts:
            names |= (reads(s) | writes(s) | arrays(s))
        for name in names & per_item:
            if r.repeated or name in used_in:
                used_in[name] = 2
            else:
                used_in[name] = used_in.get(name, 0) + 1
    context = {name for name, count in used_in.items() if count > 1}
    # A scalar whose first use in every region is an assignment needs no context.
    for name in list(context):
        decl = next(d for d in kernel.decls if d.name == name)
        if decl.type.is_scalar and all(_defined_first(r.stmts, name) for r in regions
                                       if any(name in reads(s) | writes(s) for s in r.stmts)):
            context.discard(name)
    plan.context_vars = context
    return plan


def _remat(kernel: Kernel, uni: _Uniformity, params: set[str]) -> dict[str, Node]:
    """Locals recomputed where read: assigned once, at the top of the body before any use,
    from builtins, parameters, sizes and constants (``lid = local_id.x``).  Recomputing
    is cheaper than keeping them per item across barriers, and lets the code generator
    see index expressions as affine functions of the work item (see codegen)."""
    assigned_count: dict[str, int] = {}
    for n in walk(kernel.body):
        if n.op in (Op.ASSIGN, Op.ATOMIC):
            for name in writes(n):
                assigned_count[name] = assigned_count.get(name, 0) + 1
    remat: dict[str, Node] = {}
    seen: set[str] = set()
    for s in kernel.body.args:
        # Values the same for the whole group are better kept once per group.
        if (s.op is Op.ASSIGN and assigned_count.get(s.arg) == 1 and s.arg not in seen
                and _remat_candidate(s.args[0], set(remat) | params)
                and not uni.expr(s.args[0])):
            remat[s.arg] = s.args[0]
        seen |= reads(s) | writes(s)
    return remat


def _group_evaluable(node: Node, group_vars: set[str], params: set[str]) -> bool:
    """An expression computable once per group: constants, parameters, sizes, group
    builtins and group locals, combined by arithmetic (no memory reads)."""
    for n in walk(node):
        op = n.op
        if op is Op.VAR and n.arg not in group_vars and n.arg not in params:
            return False
        if op is Op.SPECIAL and not n.arg.startswith(_GROUP_SPECIALS):
            return False
        if op in (Op.LOAD, Op.ILOAD, Op.ALOAD):
            return False
    return True


def _skeleton_conditions(block: Node) -> Iterator[Node]:
    for s in block.args:
        if not has_barrier(s):
            continue
        if s.op is Op.BLOCK:
            yield from _skeleton_conditions(s)
        elif s.op in (Op.IF, Op.LOOP):
            yield s.args[0]
            yield from _skeleton_conditions(s.args[1])
            yield from _skeleton_conditions(s.args[2])


def _defined_first(stmts: list[Node], name: str) -> bool:
    """True when, in execution order, ``name`` is assigned before it is read."""

    def visit(n: Node) -> bool | None:  # True: assigned first, False: read first, None: neither
        if n.op is Op.BLOCK:
            for s in n.args:
                r = visit(s)
                if r is not None:
                    return r
            return None
        if n.op is Op.ASSIGN:
            if name in reads(n.args[0]):
                return False
            return True if n.arg == name else None
        if name in reads(n) or name in writes(n):
            return False
        return None

    for s in stmts:
        r = visit(s)
        if r is not None:
            return r
    return True


def _privatisable(kernel: Kernel) -> dict[str, str]:
    """Buffers touched only by integer atomics of one commutative kind whose old value is
    unused: a private copy per tile, merged at its end, gives the sequential result."""
    kinds: dict[str, set[str]] = {}
    plain: set[str] = set()
    for n in walk(kernel.body):
        if n.op is Op.ATOMIC:
            kind, buf, result = n.arg
            merge = {"add": "add", "sub": "add", "min": "min", "max": "max"}.get(kind)
            if result is not None or merge is None:
                plain.add(buf)
            else:
                kinds.setdefault(buf, set()).add(merge)
        elif n.op in (Op.LOAD, Op.STORE, Op.LENGTH):
            if n.op is not Op.LENGTH:
                plain.add(n.arg[0])
    out = {}
    for buf, ks in kinds.items():
        decl = kernel.param(buf)
        if (buf not in plain and len(ks) == 1 and decl is not None
                and decl.type.elem in ("i32", "u32")):
            out[buf] = next(iter(ks))
    return out
