"""The readable text form of the IR (``vgpucc --emit ir``).

For people, not for machines: it is never parsed back.
"""

from __future__ import annotations

from xv_core.ir.nodes import STATEMENTS, Kernel, Module, Node, Op


def _expr(n: Node) -> str:
    if n.op is Op.CONST:
        return f"{n.arg!r}:{n.type}"
    if n.op is Op.VAR:
        return f"%{n.arg}"
    if n.op in (Op.SPECIAL, Op.LENGTH, Op.WIDTH, Op.HEIGHT):
        return f"{n.op.value}({n.arg})"
    args = ", ".join(_expr(a) for a in n.args)
    if n.op in (Op.LOAD, Op.ILOAD):
        name, lane = n.arg
        return f"{n.op.value}:{n.type} {name}.{lane}[{args}]"
    if n.op is Op.ALOAD:
        return f"aload:{n.type} {n.arg}[{args}]"
    return f"{n.op.value}:{n.type}({args})"


def _stmt(n: Node, indent: int, out: list[str]) -> None:
    pad = "  " * indent
    line = f"  ; line {n.line}" if n.line else ""
    if n.op is Op.BLOCK:
        if n.arg is not None:
            out.append(f"{pad}block {n.arg}:{line}")
            for s in n.args:
                _stmt(s, indent + 1, out)
        else:
            for s in n.args:
                _stmt(s, indent, out)
    elif n.op is Op.IF:
        out.append(f"{pad}if {_expr(n.args[0])}:{line}")
        _stmt(n.args[1], indent + 1, out)
        if n.args[2].args:
            out.append(f"{pad}else:")
            _stmt(n.args[2], indent + 1, out)
    elif n.op is Op.LOOP:
        out.append(f"{pad}loop {n.arg} while {_expr(n.args[0])}:{line}")
        _stmt(n.args[1], indent + 1, out)
        if n.args[2].args:
            out.append(f"{pad}step {n.arg}:")
            _stmt(n.args[2], indent + 1, out)
    elif n.op is Op.ASSIGN:
        out.append(f"{pad}%{n.arg} = {_expr(n.args[0])}{line}")
    elif n.op in (Op.STORE, Op.ISTORE):
        name, lane = n.arg
        idx = ", ".join(_expr(a) for a in n.args[:-1])
        out.append(f"{pad}{n.op.value} {name}.{lane}[{idx}] = {_expr(n.args[-1])}{line}")
    elif n.op is Op.ASTORE:
        idx = ", ".join(_expr(a) for a in n.args[:-1])
        out.append(f"{pad}astore {n.arg}[{idx}] = {_expr(n.args[-1])}{line}")
    elif n.op is Op.ATOMIC:
        kind, buf, result = n.arg
        target = f"%{result} = " if result else ""
        args = ", ".join(_expr(a) for a in n.args)
        out.append(f"{pad}{target}atomic_{kind} {buf}({args}){line}")
    elif n.op in (Op.BREAK, Op.CONTINUE):
        out.append(f"{pad}{n.op.value} {n.arg}{line}")
    elif n.op in STATEMENTS:
        out.append(f"{pad}{n.op.value}{line}")
    else:
        out.append(f"{pad}{_expr(n)}{line}")


def kernel_text(kernel: Kernel) -> str:
    params = ", ".join(f"{p.type} {p.name}" for p in kernel.params)
    out = []
    if kernel.workgroup:
        out.append(f"@workgroup{tuple(kernel.workgroup)}")
    out.append(f"kernel {kernel.name}({params}) {{")
    for d in kernel.decls:
        init = f" = {list(d.init)}" if d.init is not None else ""
        out.append(f"  {d.space} {d.type} {d.name}{init}")
    _stmt(kernel.body, 1, out)
    out.append("}")
    return "\n".join(out)


def module_text(module: Module) -> str:
    head = f"; xvir version {module.version}" + (f", from {module.source}" if module.source else "")
    return "\n\n".join([head] + [kernel_text(k) for k in module.kernels]) + "\n"
