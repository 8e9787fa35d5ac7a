"""Where the TorchScript module runs: one interface, one small class per backend, chosen by name."""

import contextlib
import importlib
import importlib.util
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import ClassVar

import numpy as np
import torch

from wav2vec2_pipeline.calibration import Calibration
from wav2vec2_pipeline.device import (
    BF16_FLAGS,
    DYNAMIC_INT8_FLAGS,
    ISA_CAP,
    DeviceOptions,
    cap_crashes_openvino,
    cpu_auto,
    cpu_flags,
)
from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.export import (
    int8_recipe,
    load_torchscript,
    made_once,
    model_sha256,
    onnx_int8_model,
    onnx_model,
    openvino_int8_model,
    torchscript_sibling,
)
from wav2vec2_pipeline.provenance import digest
from wav2vec2_pipeline.registry import AUTO, BACKENDS

DeviceBatch = torch.Tensor | np.ndarray
"""A batch where the backend computes on it: a tensor on its device, or an array for ONNX Runtime."""


class Backend(ABC):
    """Load a TorchScript module for a static input shape, move batches in, run, and get logits out."""

    name: ClassVar[str]
    static_shapes: ClassVar[bool] = False
    """Compiled for one input shape, so every bin must be run whole, pad rows included."""
    cpu_flags_needed: ClassVar[tuple[str, ...]] = ()
    """Any one of these CPU flags: the instructions the backend's precision runs on."""
    device_kind: ClassVar[str] = "cpu"
    """Where it runs: cpu, gpu or npu (what a cluster's actors must be given)."""
    needs_calibration: ClassVar[bool] = False
    """Quantised on speech: built with a `Calibration`, which its logits depend on."""

    def __init__(self, options: DeviceOptions, calibration: Calibration | None = None) -> None:
        if self.needs_calibration and calibration is None:
            raise PipelineError(f"--backend {self.name} needs speech to calibrate on; none was given")
        self.options = options
        self.calibration = calibration

    @classmethod
    def cpu_supports(cls, flags: frozenset[str]) -> bool:
        return not cls.cpu_flags_needed or not flags.isdisjoint(cls.cpu_flags_needed)

    def check_cpu(self) -> None:
        if not self.cpu_supports(cpu_flags()):
            raise PipelineError(
                f"--backend {self.name} needs a CPU with {' or '.join(self.cpu_flags_needed)} (not among this CPU's "
                "flags in /proc/cpuinfo); use --backend auto, which takes the fastest path this CPU has"
            )

    def key_options(self) -> list[str] | None:
        """What besides the model and input decides this backend's logits (None: nothing); no side effects."""
        return None

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


@contextlib.contextmanager
def conversion_read(path: Path, runtime: str):
    """A conversion kept beside traced.pth that the runtime cannot read (cut short, edited, written by another
    version) ends in one line that says how to remake it, not in the runtime's traceback."""
    try:
        yield
    except Exception as error:  # each runtime raises its own kinds
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        raise PipelineError(f"{runtime} cannot read {path} ({reason}); it is a conversion of traced.pth: delete it "
                            "and run again to remake it") from error  # fmt: skip


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

        with conversion_read(onnx_path, "ONNX Runtime"):
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


class OpenVinoBackend(Backend):
    """OpenVINO's CPU plugin on the same ONNX export (free batch and length axes), fp32. The plugin runs bf16
    by default wherever the CPU has it, so fp32 is asked for explicitly."""

    name = "openvino"
    precision = "f32"

    @classmethod
    def available(cls) -> bool:
        return importlib.util.find_spec("openvino") is not None and cls.cpu_supports(cpu_flags())

    def check_cpu(self) -> None:
        super().check_cpu()
        if (cap := cap_crashes_openvino()) is not None:
            raise PipelineError(
                f"{ISA_CAP}={cap} on this AVX-512 CPU crashes OpenVINO on this model: unset it, or cap at "
                "AVX512_CORE or above, or choose --backend onnxruntime"
            )

    def load(self, torchscript_path: Path) -> None:
        if importlib.util.find_spec("openvino") is None:
            raise PipelineError(f"--backend {self.name} needs openvino: pip install -r requirements.txt")
        self.check_cpu()
        if self.precision == "bf16" and not OpenVinoBf16Backend.cpu_supports(cpu_flags()):  # chosen elsewhere
            raise PipelineError(
                f"--backend {self.name} was set up for bf16 on a CPU that has it, and this one has neither "
                f"{' nor '.join(OpenVinoBf16Backend.cpu_flags_needed)}: its logits would not be the ones its key "
                "names; run every worker of a job on one kind of CPU"
            )
        import openvino

        config: dict[str, object] = {"INFERENCE_PRECISION_HINT": self.precision, "PERFORMANCE_HINT": "LATENCY"}
        if self.options.threads is not None:
            config["INFERENCE_NUM_THREADS"] = self.options.threads
        path = self.model_path(torchscript_path)
        with conversion_read(path, "OpenVINO"):
            compiled = openvino.Core().compile_model(str(path), "CPU", config)
        self.request = compiled.create_infer_request()

    def model_path(self, torchscript_path: Path) -> Path:
        return onnx_model(torchscript_path, model_sha256(torchscript_path))

    def to_device(self, batch: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(batch, dtype=np.float32)

    def forward(self, batch: np.ndarray) -> np.ndarray:
        return self.request.infer({0: batch})[0]

    def to_host(self, logits: np.ndarray) -> np.ndarray:
        return logits


class OpenVinoBf16Backend(OpenVinoBackend):
    """OpenVINO with bf16 matrix products (fp32 accumulation), on CPUs with native bf16 instructions only:
    elsewhere the plugin would emulate them, slower than fp32."""

    name = "openvino-bf16"
    precision = "bf16"
    cpu_flags_needed = BF16_FLAGS


class OpenVinoInt8Backend(OpenVinoBackend):
    """OpenVINO on the model quantised by NNCF (int8 weights and activations, scales calibrated on speech of
    the run itself); the ops left in floating point run bf16 where the CPU has it (as accurate on the trained
    model, and twice as fast), fp32 elsewhere. Where they run fp32 on AVX-512, the feature encoder's later
    convolutions run int8 too, quantised frame by frame as they run (frame_matmuls: 1.2x faster there over 60
    bins; with bf16 the float convolutions are the faster, and on AVX2 the plugin does not quantise as it runs)."""

    name = "openvino-int8"
    needs_calibration = True

    @classmethod
    def available(cls) -> bool:
        return super().available() and importlib.util.find_spec("nncf") is not None

    def __init__(self, options: DeviceOptions, calibration: Calibration | None = None) -> None:
        super().__init__(options, calibration)
        self.precision = "bf16" if OpenVinoBf16Backend.cpu_supports(cpu_flags()) else "f32"
        self.keyed_recipe = int8_recipe()[:16]
        """The NNCF and OpenVINO versions the run key names, as on the machine that keyed the run (a driver or a
        merge may be on another)."""
        self.int8_feature_encoder = self.precision == "f32" and not cpu_flags().isdisjoint(DYNAMIC_INT8_FLAGS)
        """The feature encoder in int8 frame by frame (frame_matmuls): only where it was measured faster, without
        bf16 and with the plugin's dynamic quantisation (AVX-512); the run's key names the choice."""

    def model_path(self, torchscript_path: Path) -> Path:
        if importlib.util.find_spec("nncf") is None:
            raise PipelineError(f"--backend {self.name} needs nncf to quantise: pip install -r requirements.txt")
        assert self.calibration is not None, "checked when built"
        if self.keyed_recipe != int8_recipe()[:16]:
            raise PipelineError(
                f"--backend {self.name} was keyed with NNCF and OpenVINO versions other than this machine's: its "
                "quantised model would not be the one its key names; install requirements.txt on every worker"
            )
        return openvino_int8_model(super().model_path(torchscript_path), self.calibration.key, self.calibration.rows,
                                   int8_feature_encoder=self.int8_feature_encoder)

    def key_options(self) -> list[str]:
        assert self.calibration is not None, "checked when built"
        calibration = f"nncf calibration {self.calibration.key}"
        feature_encoder = f"feature encoder {'int8 per frame' if self.int8_feature_encoder else 'float'}"
        return [calibration, f"recipe {self.keyed_recipe}", f"float ops {self.precision}", feature_encoder]


class CudaBackend(TorchScriptBackend):
    """The same traced module on an NVIDIA GPU, fp32."""

    name = "cuda"
    device_kind = "gpu"

    def __init__(self, options: DeviceOptions, calibration: Calibration | None = None) -> None:
        super().__init__(options, calibration)
        self.device = f"cuda:{options.device_id}"

    @classmethod
    def available(cls) -> bool:
        return torch.cuda.is_available()

    def load(self, torchscript_path: Path) -> None:
        if not self.available():
            raise PipelineError(f"--backend {self.name}: torch sees no CUDA GPU here; use --backend auto")
        super().load(torchscript_path)

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)


class CudaFp16Backend(CudaBackend):
    """The traced module on the GPU under fp16 autocast: convolutions and matrix products in fp16, norms and
    softmax kept fp32 by autocast's own lists. Not `.half()` weights: the trace holds casts to fp32 (HF's
    feature encoder), which then meet fp16 parameters."""

    name = "cuda-fp16"
    autocast_dtype = torch.float16

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        with torch.autocast(torch.device(self.device).type, dtype=self.autocast_dtype):
            return super().forward(batch)


def import_torch_aie() -> ModuleType:
    """torch_aie is imported only on this path: it exists only on Ascend machines with CANN installed."""
    try:
        return importlib.import_module("torch_aie")
    except ImportError as error:
        raise PipelineError(
            f"--backend aie needs torch_aie, which is not installed here ({error}). Install CANN and "
            "Ascend-cann-torch-aie on an Ascend machine (README, 'Ascend set-up'), or use --backend auto, which "
            "takes the fastest backend this machine has"
        ) from error


class AieBackend(Backend):
    """Ascend NPU through torch_aie: one static-shape compile per input shape, for one SoC and precision."""

    name = "aie"
    static_shapes = True
    device_kind = "npu"

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
        self.torchscript_path = torchscript_path
        self.model_sha256 = model_sha256(torchscript_path)
        self.compiled: dict[tuple[int, ...], torch.jit.ScriptModule] = {}

    def key_options(self) -> list[str]:
        o = self.options
        return [o.soc_version, o.precision_policy, f"optimization_level={o.aie_optimization_level}",
                f"allow_tensor_replace_int={o.allow_tensor_replace_int}"]  # fmt: skip

    def prepare(self, input_shape: tuple[int, int]) -> None:
        """Compile for `input_shape` (minutes on the device), or load the module an earlier run compiled and
        saved beside traced.pth, named by everything the compile depended on."""
        if input_shape in self.compiled:
            return
        version = getattr(self.torch_aie, "__version__", "unknown")
        key = digest([self.model_sha256, list(input_shape), self.key_options(), version])
        path = torchscript_sibling(self.torchscript_path, f"aie-{key[:16]}.ts")
        with made_once(path) as tmp:  # shard workers: one compiles
            if tmp is not None:
                compiled = self.torch_aie.compile(
                    self.traced,
                    inputs=[self.torch_aie.Input(input_shape, dtype=torch.float32)],
                    precision_policy=self.precision,
                    soc_version=self.options.soc_version,
                    optimization_level=self.options.aie_optimization_level,
                    allow_tensor_replace_int=self.options.allow_tensor_replace_int,
                )
                torch.jit.save(compiled, str(tmp / "model.ts"))
                os.replace(tmp / "model.ts", path)
        self.compiled[input_shape] = torch.jit.load(str(path))

    def to_device(self, batch: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(batch).to(self.device)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        with self.torch_aie.npu.stream(self.stream):
            return self.compiled[tuple(batch.shape)](batch)

    def synchronize(self) -> None:
        self.stream.synchronize()


def resolve(name: str) -> str:
    """`auto`: an NPU where torch_aie imports, else a GPU where torch sees one, else `device.cpu_auto`."""
    if BACKENDS.check(name) != AUTO:
        return name
    if AieBackend.available():
        return AieBackend.name
    if CudaBackend.available():
        return CudaBackend.name
    return cpu_auto()


def create_backend(
    name: str, options: DeviceOptions, calibration: Callable[[], Calibration] | None = None
) -> Backend:
    """The backend `name` names (`auto` resolved here), built whole: one that quantises gets its calibration
    (made only for it) when it is built."""
    cls: type[Backend] = BACKENDS.load(resolve(name))
    return cls(options, calibration() if cls.needs_calibration and calibration is not None else None)
