"""Where a backend runs and what the CPU can do: the device options every backend takes, and the CPU path that
`auto` takes by the CPU's flags. Torch-free, so the command lines and the Ray driver check them cheaply."""

import functools
import os
from collections.abc import Callable
from dataclasses import dataclass

from wav2vec2_pipeline.errors import require
from wav2vec2_pipeline.options import option

MAX_THREADS = 8 * (os.cpu_count() or 1)
"""More intra-op threads than this only oversubscribe the cores (and a huge number crashes the runtime)."""
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""Native bf16 instructions: elsewhere bf16 is emulated, slower than fp32."""
DYNAMIC_INT8_FLAGS = ("avx512f",)
"""Where OpenVINO's CPU plugin quantises a MatMul's input as it runs (dynamic quantisation): with AVX-512, and
not on AVX2's own kernels (under qemu's AVX2 CPUID, group sizes 64 and 0 gave the same logits, on brgemm_avx2_f32)."""
ISA_CAP = "ONEDNN_MAX_CPU_ISA"
"""oneDNN's cap on the instructions it uses, honoured by OpenVINO's CPU plugin and torch's oneDNN kernels (not by
ONNX Runtime's MLAS): where it is set, the CPU is taken to have only what the cap lets those runtimes use. (On an
AVX-512 CPU, OpenVINO 2026.4 crashes on this model under a cap below AVX512_CORE: AVX2 and AVX-VNNI cannot be
emulated there.)"""
_ABOVE_CAP = {
    "SSE41": ("avx", "amx"),
    "AVX": ("avx2", "avx512", "avx_vnni", "amx"),
    "AVX2": ("avx512", "avx_vnni", "amx"),
    "AVX2_VNNI": ("avx512", "amx"),
    "AVX2_VNNI_2": ("avx512", "amx"),
    "AVX512_CORE": ("avx512_vnni", "avx512_bf16", "avx512_fp16", "avx_vnni", "amx"),
    "AVX512_CORE_VNNI": ("avx512_bf16", "avx512_fp16", "amx"),
    "AVX512_CORE_BF16": ("avx512_fp16", "amx"),
    "AVX512_CORE_FP16": ("amx",),
    "AVX10_1_512": ("amx",),
}
"""Flags (by prefix) of the instructions each oneDNN cap below AMX rules out."""


@dataclass(frozen=True, kw_only=True)
class DeviceOptions:
    """Which device, how many CPU threads, and torch_aie's compile options (by default as the Ascend guide
    compiles this model); checked once, here."""

    device_id: int = option(0, "NPU or GPU index")
    threads: int | None = option(None, "CPU backends: intra-op threads (default: one per core)", type=int)
    soc_version: str = option("Ascend310P3", "aie only: the SoC to compile for")
    precision_policy: str = option("FP16", "aie only: a torch_aie.PrecisionPolicy name")
    aie_optimization_level: int = option(0, "aie only: torch_aie.compile's optimization_level (0, as the Ascend "
                                            "guide compiles it)")
    allow_tensor_replace_int: bool = option(True, "aie only: run the model's int64 tensors as int32, as the "
                                                  "Ascend guide does")

    def __post_init__(self) -> None:
        require((
            (self.device_id >= 0, f"--device_id must be 0 or more, got {self.device_id}"),
            (self.aie_optimization_level >= 0, f"--aie_optimization_level must be 0 or more, got "
                                               f"{self.aie_optimization_level}"),
            (self.threads is None or 1 <= self.threads <= MAX_THREADS,
             f"--threads must be between 1 and {MAX_THREADS} ({os.cpu_count()} cores here), got {self.threads}"),
        ))  # fmt: skip


@functools.cache
def reported_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux reports them (no cap applied); elsewhere none."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def cpu_flags() -> frozenset[str]:
    """The flags the runtimes use: the CPU's, less those above an ONEDNN_MAX_CPU_ISA cap; none where Linux reports
    none, so no CPU-specific path is assumed."""
    return capped(reported_flags(), os.environ.get(ISA_CAP, ""))


def cap_crashes_openvino() -> str | None:
    """The ONEDNN_MAX_CPU_ISA value under which OpenVINO 2026.4 dies (SIGSEGV) on this model, if it is set here:
    a cap below AVX512_CORE on a CPU with AVX-512 (seen with AVX, AVX2 and AVX2_VNNI)."""
    cap = os.environ.get(ISA_CAP, "")
    below_avx512 = "avx512f" in reported_flags() and "avx512f" not in capped(reported_flags(), cap)
    return cap if below_avx512 else None


def capped(flags: frozenset[str], cap: str) -> frozenset[str]:
    """`flags` as runtimes that honour ONEDNN_MAX_CPU_ISA=`cap` see them (an unknown cap, ALL or none: all)."""
    above = _ABOVE_CAP.get(cap.upper(), ())
    return frozenset(flag for flag in flags if not flag.startswith(above))


def cpu_class(flags: frozenset[str]) -> str:
    """The class (of CLASS_PATHS) of a CPU with `flags`, by its best int8 dot-product or bf16 instructions: amx,
    avx512-bf16, avx512-vnni, avx-vnni, else avx2 (AVX2, or AVX-512 without VNNI or bf16)."""
    if "amx_int8" in flags or "amx_bf16" in flags:
        return "amx"
    if "avx512_bf16" in flags:
        return "avx512-bf16"
    if "avx512_vnni" in flags:
        return "avx512-vnni"
    return "avx-vnni" if "avx_vnni" in flags else "avx2"


CLASS_PATHS = {
    "amx": "openvino-int8",
    "avx512-bf16": "openvino-int8",
    "avx512-vnni": "openvino-int8",
    "avx-vnni": "openvino-int8",
    "avx2": "openvino-int8",
}
"""The CPU path `auto` takes on each class: the fastest end to end whose CER on the trained model is within 0.5
points of fp32 on each utterance alone (docs/performance.md has the measurements, and which class was measured
how). int8 runs its float ops bf16 where the CPU has bf16."""
CLASS_EXAMPLES = {
    "amx": frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16"}),
    "avx512-bf16": frozenset({"avx2", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni"}),
    "avx512-vnni": frozenset({"avx2", "avx512f", "avx512_vnni"}),
    "avx-vnni": frozenset({"avx2", "avx_vnni"}),
    "avx2": frozenset({"avx2"}),
}
"""The flags of a CPU of each class that decide its paths: Sapphire Rapids, Zen 4, Cascade Lake, Alder Lake, Zen 2."""
NEEDS = {"openvino-int8": ("openvino", "nncf"), "openvino-bf16": ("openvino",), "openvino": ("openvino",),
         "onnxruntime": ("onnxruntime",), "torchscript": ()}  # fmt: skip
"""The packages each CPU path imports (torch is always there)."""


def cpu_default(flags: frozenset[str], installed: Callable[[str], bool]) -> str:
    """The path CLASS_PATHS names for this CPU's class, or where its packages are missing the next best that is
    installed: bf16 where the CPU has it, OpenVINO fp32, ONNX Runtime fp32, the traced module."""
    fallbacks = ("openvino-bf16",) if not flags.isdisjoint(BF16_FLAGS) else ()
    paths = (CLASS_PATHS[cpu_class(flags)], *fallbacks, "openvino", "onnxruntime", "torchscript")
    return next(path for path in paths if all(map(installed, NEEDS[path])))


def cpu_auto() -> str:
    """`cpu_default` for this machine's CPU and packages (OpenVINO counted out under a cap that crashes it)."""
    import importlib.util

    def usable(module: str) -> bool:
        return importlib.util.find_spec(module) is not None and not (module == "openvino" and cap_crashes_openvino())

    return cpu_default(cpu_flags(), usable)
