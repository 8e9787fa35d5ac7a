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
INT8_FLAGS = ("avx512_vnni", "avx_vnni", "amx_int8")
"""int8 dot-product instructions: without them int8 runs on plain AVX2/AVX-512 and loses most of its speed."""
BF16_FLAGS = ("avx512_bf16", "amx_bf16")
"""Native bf16 instructions: elsewhere bf16 is emulated, slower than fp32."""
ISA_CAP = "ONEDNN_MAX_CPU_ISA"
"""oneDNN's cap on the instructions it uses, honoured by OpenVINO's CPU plugin and torch's oneDNN kernels (not by
ONNX Runtime's MLAS): where it is set, the CPU is taken to have only what the cap lets those runtimes use."""
_ABOVE_CAP = {
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
CPU_CLASSES = ("amx", "avx512-bf16", "avx512-vnni", "avx-vnni", "avx2")
"""The CPU classes the CPU paths are chosen and measured for, best first."""


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
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags as Linux reports them, less those above an ONEDNN_MAX_CPU_ISA cap; elsewhere none,
    so no CPU-specific path is assumed."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return capped(frozenset(line.partition(":")[2].split()), os.environ.get(ISA_CAP, ""))
    except OSError:
        pass
    return frozenset()


def capped(flags: frozenset[str], cap: str) -> frozenset[str]:
    """`flags` as runtimes that honour ONEDNN_MAX_CPU_ISA=`cap` see them (an unknown cap, ALL or none: all)."""
    above = _ABOVE_CAP.get(cap.upper(), ())
    return frozenset(flag for flag in flags if not flag.startswith(above))


def cpu_class(flags: frozenset[str]) -> str:
    """The class of CPU_CLASSES a CPU with `flags` belongs to: its best int8 or bf16 instructions."""
    if "amx_int8" in flags or "amx_bf16" in flags:
        return "amx"
    if "avx512_bf16" in flags:
        return "avx512-bf16"
    if "avx512_vnni" in flags:
        return "avx512-vnni"
    return "avx-vnni" if "avx_vnni" in flags else "avx2"


def cpu_default(flags: frozenset[str], installed: Callable[[str], bool]) -> str:
    """The fastest CPU path whose CER on the trained model's test set is within 0.5 points of fp32
    (docs/accuracy.md), by what this CPU has: int8 where it has int8 dot products (its float ops bf16 where the
    CPU has that too), else bf16 where it has bf16, else fp32 (OpenVINO's, as fast as ONNX Runtime's or faster on
    both CPUs measured)."""
    if installed("openvino") and installed("nncf") and not flags.isdisjoint(INT8_FLAGS):
        return "openvino-int8"
    if installed("openvino") and not flags.isdisjoint(BF16_FLAGS):
        return "openvino-bf16"
    if installed("openvino"):
        return "openvino"
    return "onnxruntime" if installed("onnxruntime") else "torchscript"


def cpu_auto() -> str:
    """`cpu_default` for this machine's CPU and packages."""
    import importlib.util

    return cpu_default(cpu_flags(), lambda module: importlib.util.find_spec(module) is not None)
