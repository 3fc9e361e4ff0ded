"""LLVM through llvmlite: optimise generated IR to object code for this CPU, and load
object code (fresh or from the disk cache) into one process-wide MCJIT engine."""

from __future__ import annotations

import threading

import llvmlite
import llvmlite.binding as llvm

_lock = threading.Lock()
_state: dict[str, object] = {}
_loaded: dict[str, int] = {}  # symbol -> address: each object is loaded once per process


def _init() -> llvm.TargetMachine:
    tm = _state.get("tm")
    if tm is None:
        llvm.initialize_native_target()
        llvm.initialize_native_asmprinter()
        target = llvm.Target.from_default_triple()
        tm = target.create_target_machine(cpu=llvm.get_host_cpu_name(),
                                          features=llvm.get_host_cpu_features().flatten(),
                                          opt=3, jit=True)
        _state["tm"] = tm
        _state["engine"] = llvm.create_mcjit_compiler(llvm.parse_assembly(""), tm)
    return tm  # type: ignore[return-value]


def target_id() -> str:
    """What object code depends on besides the IR: LLVM, this CPU and its features."""
    with _lock:
        _init()
    return (f"llvmlite {llvmlite.__version__} llvm {'.'.join(map(str, llvm.llvm_version_info))} "
            f"{llvm.get_default_triple()} {llvm.get_host_cpu_name()} "
            f"{llvm.get_host_cpu_features().flatten()}")


def compile_object(text: str) -> bytes:
    """Object code of an LLVM IR module, optimised at -O3 with vectorisation for this CPU."""
    with _lock:
        tm = _init()
        mod = llvm.parse_assembly(text)
        mod.triple = tm.triple
        mod.data_layout = str(tm.target_data)
        mod.verify()
        pto = llvm.create_pipeline_tuning_options(speed_level=3)
        pto.loop_vectorization = True
        pto.slp_vectorization = True
        pto.loop_unrolling = True
        pb = llvm.create_pass_builder(tm, pto)
        pb.getModulePassManager().run(mod, pb)
        return tm.emit_object(mod)


def load_object(data: bytes, symbol: str) -> int:
    """Address of ``symbol`` after loading ``data`` (once per process)."""
    with _lock:
        addr = _loaded.get(symbol)
        if addr is not None:
            return addr
        _init()
        engine = _state["engine"]
        engine.add_object_file(llvm.ObjectFileRef.from_data(data))  # type: ignore[attr-defined]
        engine.finalize_object()  # type: ignore[attr-defined]
        addr = engine.get_function_address(symbol)  # type: ignore[attr-defined]
        if not addr:
            raise RuntimeError(f"symbol {symbol} missing from its object code")
        _loaded[symbol] = addr
        return addr


def loaded(symbol: str) -> int | None:
    with _lock:
        return _loaded.get(symbol)
