"""Where the TorchScript module runs: one interface, one small class per backend, chosen by name."""

import importlib
import importlib.util
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import ClassVar

import numpy as np
import torch

from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.export import load_torchscript, model_sha256, onnx_int8_model, onnx_model
from wav2vec2_pipeline.inference import AUTO, BACKEND_NAMES

DeviceBatch = torch.Tensor | np.ndarray
"""A batch where the backend computes on it: a tensor on its device, or an array for ONNX Runtime."""


@dataclass(frozen=True)
class DeviceOptions:
    device_id: int = 0
    soc_version: str = "Ascend310P3"
    precision_policy: str = "FP16"
    """torch_aie only: a name of torch_aie.PrecisionPolicy."""
    threads: int | None = None
    """CPU backends: intra-op threads (None: the library's default, one per core)."""

    def __post_init__(self) -> None:
        if self.device_id < 0:
            raise PipelineError(f"--device_id must be 0 or more, got {self.device_id}")
        if self.threads is not None and self.threads < 1:
            raise PipelineError(f"--threads must be at least 1, got {self.threads}")


class Backend(ABC):
    """Load a TorchScript module for a static input shape, move batches in, run, and get logits out."""

    name: ClassVar[str]
    static_shapes: ClassVar[bool] = False
    """Compiled for one input shape, so every bin must be run whole, pad rows included."""

    def __init__(self, options: DeviceOptions) -> None:
        self.options = options

    @classmethod
    @abstractmethod
    def available(cls) -> bool:
        """Whether this machine can run the backend."""

    @abstractmethod
    def load(self, torchscript_path: Path) -> None: ...

    def prepare(self, input_shape: tuple[int, int]) -> None:
        """Get ready for inputs of `input_shape`; TorchScript takes any shape, so nothing to do by default."""
        return None

    @abstractmethod
    def to_device(self, batch: np.ndarray) -> DeviceBatch: ...

    @abstractmethod
    def forward(self, batch: DeviceBatch) -> DeviceBatch:
        """Launch the model; the result may not be ready until `synchronize`."""

    def synchronize(self) -> None:
        """Wait for launched work to finish; execution on the CPU is synchronous, so nothing to wait for."""
        return None

    def to_host(self, logits: DeviceBatch) -> np.ndarray:
        return logits.detach().to("cpu", torch.float32).numpy()


class TorchScriptBackend(Backend):
    """The traced module on the CPU, as it was saved."""

    name = "torchscript"
    device = "cpu"

    @classmethod
    def available(cls) -> bool:
        return True

    def load(self, torchscript_path: Path) -> None:
        if self.options.threads is not None:
            torch.set_num_threads(self.options.threads)
        self.module = load_torchscript(torchscript_path, self.device)

    def to_device(self, batch: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(batch).to(self.device)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.module(batch)


class FrozenTorchScriptBackend(TorchScriptBackend):
    """The traced module frozen (weights inlined as constants) and optimised for inference (conv and
    batch-norm folding, MKLDNN layouts where they pay), fp32."""

    name = "torchscript-frozen"

    def load(self, torchscript_path: Path) -> None:
        super().load(torchscript_path)
        self.module = torch.jit.optimize_for_inference(torch.jit.freeze(self.module))


class OnnxRuntimeBackend(Backend):
    """ONNX Runtime on the CPU: the traced module exported to ONNX with free batch and length axes, all
    graph optimisations on. The export is kept beside traced.pth (named by its hash) for the next run."""

    name = "onnxruntime"

    @classmethod
    def available(cls) -> bool:
        return importlib.util.find_spec("onnxruntime") is not None

    def load(self, torchscript_path: Path) -> None:
        if not self.available():
            raise PipelineError(f"--backend {self.name} needs onnxruntime: pip install -r requirements.txt")
        self.session = self.session_for(self.onnx_model(torchscript_path), self.session_options())

    def onnx_model(self, torchscript_path: Path) -> Path:
        return onnx_model(torchscript_path, model_sha256(torchscript_path))

    def session_options(self):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        if self.options.threads is not None:
            options.intra_op_num_threads = self.options.threads
        return options

    def session_for(self, onnx_path: Path, options):
        import onnxruntime

        return onnxruntime.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])

    def to_device(self, batch: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(batch, dtype=np.float32)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"input_values": batch})[0]

    def to_host(self, logits: np.ndarray) -> np.ndarray:
        return logits


class OnnxRuntimeInt8Backend(OnnxRuntimeBackend):
    """ONNX Runtime with the transformer's matrix products dynamically quantised to int8 (weights int8,
    activations quantised per batch). The convolutional feature encoder stays fp32: quantising it is
    reported to wreck this model's accuracy. Opt-in: its WER cost must be measured with the real weights."""

    name = "onnxruntime-int8"

    def onnx_model(self, torchscript_path: Path) -> Path:
        return onnx_int8_model(super().onnx_model(torchscript_path))


class CudaBackend(TorchScriptBackend):
    """The same traced module on an NVIDIA GPU, fp32."""

    name = "cuda"

    def __init__(self, options: DeviceOptions) -> None:
        super().__init__(options)
        self.device = f"cuda:{options.device_id}"

    @classmethod
    def available(cls) -> bool:
        return torch.cuda.is_available()

    def load(self, torchscript_path: Path) -> None:
        if not self.available():
            raise PipelineError("--backend cuda: torch sees no CUDA GPU here; use --backend torchscript")
        super().load(torchscript_path)

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)


def import_torch_aie() -> ModuleType:
    """torch_aie is imported only on this path: it exists only on Ascend machines with CANN installed."""
    try:
        return importlib.import_module("torch_aie")
    except ImportError as error:
        others = ", ".join(name for name in BACKENDS if name != AieBackend.name)
        raise PipelineError(
            f"--backend aie needs torch_aie, which is not installed here ({error}). Install CANN and "
            f"Ascend-cann-torch-aie on an Ascend machine (README, 'Ascend set-up'), or use --backend {others}"
        ) from error


class AieBackend(Backend):
    """Ascend NPU through torch_aie: one static-shape compile per input shape, for one SoC and precision."""

    name = "aie"
    static_shapes = True

    @classmethod
    def available(cls) -> bool:
        return importlib.util.find_spec("torch_aie") is not None

    def load(self, torchscript_path: Path) -> None:
        self.torch_aie = import_torch_aie()
        try:
            self.precision = getattr(self.torch_aie.PrecisionPolicy, self.options.precision_policy)
        except AttributeError as error:
            raise PipelineError(
                f"--precision_policy {self.options.precision_policy} is not a torch_aie.PrecisionPolicy "
                "(try FP16 or FP32)"
            ) from error
        self.torch_aie.set_device(self.options.device_id)
        self.device = f"npu:{self.options.device_id}"
        self.stream = self.torch_aie.npu.Stream(self.device)
        self.traced = load_torchscript(torchscript_path, "cpu")
        self.compiled: dict[tuple[int, ...], torch.jit.ScriptModule] = {}

    def prepare(self, input_shape: tuple[int, int]) -> None:
        if input_shape not in self.compiled:
            self.compiled[input_shape] = self.torch_aie.compile(
                self.traced,
                inputs=[self.torch_aie.Input(input_shape, dtype=torch.float32)],
                precision_policy=self.precision,
                soc_version=self.options.soc_version,
            )

    def to_device(self, batch: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(batch).to(self.device)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        with self.torch_aie.npu.stream(self.stream):
            return self.compiled[tuple(batch.shape)](batch)

    def synchronize(self) -> None:
        self.stream.synchronize()


BACKENDS: dict[str, type[Backend]] = {
    cls.name: cls
    for cls in (
        AieBackend, CudaBackend, OnnxRuntimeBackend, TorchScriptBackend, FrozenTorchScriptBackend,
        OnnxRuntimeInt8Backend,
    )
}  # fmt: skip
"""In the order `auto` tries them. On a CPU it takes onnxruntime, the fastest fp32 path (README, 'CPU
performance'), and torchscript where onnxruntime is not installed; it never takes an opt-in variant."""
assert tuple(BACKENDS) == BACKEND_NAMES, "inference.BACKEND_NAMES lists the backends for the command line"


def create_backend(name: str, options: DeviceOptions) -> Backend:
    if name == AUTO:
        name = next(candidate for candidate, cls in BACKENDS.items() if cls.available())
    if name not in BACKENDS:
        raise PipelineError(f"unknown backend {name!r}; choose one of {AUTO}, {', '.join(BACKENDS)}")
    return BACKENDS[name](options)
