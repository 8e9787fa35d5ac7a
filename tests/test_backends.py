"""Backends by name; the aie adapter is checked against a stand-in torch_aie module (no NPU runs here)."""

import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from wav2vec2_pipeline import backends
from wav2vec2_pipeline.backends import AieBackend, DeviceOptions, TorchScriptBackend, create_backend
from wav2vec2_pipeline.errors import PipelineError


class StandInTorchAie:
    """Records how the adapter calls torch_aie; compile returns the TorchScript module unchanged."""

    PrecisionPolicy = SimpleNamespace(FP16="precision-FP16", FP32="precision-FP32")

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        stand_in = self

        class Stream:
            def __init__(self, device: str) -> None:
                stand_in.calls.append(("Stream", device))

            def synchronize(self) -> None:
                stand_in.calls.append(("synchronize",))

        class StreamContext:
            def __init__(self, stream: Stream) -> None:
                self.stream = stream

            def __enter__(self) -> None:
                stand_in.calls.append(("enter stream",))

            def __exit__(self, *exc: object) -> None:
                stand_in.calls.append(("exit stream",))

        self.npu = SimpleNamespace(Stream=Stream, stream=StreamContext)

    def set_device(self, device_id: int) -> None:
        self.calls.append(("set_device", device_id))

    def Input(self, shape: tuple[int, ...], dtype: torch.dtype) -> dict:  # torch_aie's own name
        return {"shape": shape, "dtype": dtype}

    def compile(self, module, **kwargs):
        self.calls.append(("compile", kwargs))
        return module


@pytest.fixture
def stand_in_torch_aie(monkeypatch) -> StandInTorchAie:
    stand_in = StandInTorchAie()
    monkeypatch.setitem(sys.modules, "torch_aie", stand_in)
    return stand_in


def test_aie_compiles_a_static_fp16_input_for_the_soc_and_runs_on_a_stream(stand_in_torch_aie, traced_path) -> None:
    backend = create_backend("aie", DeviceOptions(device_id=1))
    backend.load(traced_path)
    for shape in ((4, 16_000), (4, 32_000), (4, 16_000)):  # one compile per distinct static shape
        backend.prepare(shape)
    compile_calls = [call[1] for call in stand_in_torch_aie.calls if call[0] == "compile"]
    assert compile_calls == [
        {
            "inputs": [{"shape": shape, "dtype": torch.float32}],
            "precision_policy": "precision-FP16",
            "soc_version": "Ascend310P3",
        }
        for shape in ((4, 16_000), (4, 32_000))
    ]
    assert ("set_device", 1) in stand_in_torch_aie.calls and ("Stream", "npu:1") in stand_in_torch_aie.calls
    logits = backend.forward(torch.zeros(4, 16_000))  # CPU tensor: the stand-in "compiled" module is TorchScript
    backend.synchronize()
    assert logits.shape == (4, 49, 32)
    assert stand_in_torch_aie.calls[-3:] == [("enter stream",), ("exit stream",), ("synchronize",)]


def test_aie_precision_policy_and_soc_are_options(stand_in_torch_aie, traced_path) -> None:
    backend = AieBackend(DeviceOptions(soc_version="Ascend310P1", precision_policy="FP32"))
    backend.load(traced_path)
    backend.prepare((1, 16_000))
    (compile_call,) = [call for call in stand_in_torch_aie.calls if call[0] == "compile"]
    assert compile_call[1]["precision_policy"] == "precision-FP32"
    assert compile_call[1]["soc_version"] == "Ascend310P1"
    with pytest.raises(PipelineError, match=r"BF99 is not a torch_aie\.PrecisionPolicy"):
        AieBackend(DeviceOptions(precision_policy="BF99")).load(traced_path)


def test_aie_without_torch_aie_says_so_and_names_the_other_backends(monkeypatch, traced_path) -> None:
    monkeypatch.setitem(sys.modules, "torch_aie", None)  # makes `import torch_aie` fail
    with pytest.raises(PipelineError, match=r"needs torch_aie.*--backend cuda, onnxruntime, torchscript"):
        create_backend("aie", DeviceOptions()).load(traced_path)


def test_auto_prefers_aie_then_cuda_then_onnxruntime_then_torchscript(monkeypatch) -> None:
    monkeypatch.setattr(backends.AieBackend, "available", classmethod(lambda cls: False))
    monkeypatch.setattr(backends.CudaBackend, "available", classmethod(lambda cls: False))
    monkeypatch.setattr(backends.OnnxRuntimeBackend, "available", classmethod(lambda cls: False))
    assert create_backend("auto", DeviceOptions()).name == "torchscript"
    monkeypatch.setattr(backends.OnnxRuntimeBackend, "available", classmethod(lambda cls: True))
    assert create_backend("auto", DeviceOptions()).name == "onnxruntime"
    monkeypatch.setattr(backends.CudaBackend, "available", classmethod(lambda cls: True))
    assert create_backend("auto", DeviceOptions()).name == "cuda"
    monkeypatch.setattr(backends.AieBackend, "available", classmethod(lambda cls: True))
    assert create_backend("auto", DeviceOptions()).name == "aie"


def test_unknown_backend_lists_the_choices() -> None:
    with pytest.raises(PipelineError, match="choose one of auto, aie, cuda, onnxruntime, torchscript"):
        create_backend("tpu", DeviceOptions())


def test_torchscript_backend_runs_a_numpy_batch(traced_path) -> None:
    backend = TorchScriptBackend(DeviceOptions())
    backend.load(traced_path)
    logits = backend.to_host(backend.forward(backend.to_device(np.zeros((2, 16_000), dtype=np.float32))))
    assert logits.shape == (2, 49, 32) and logits.dtype == np.float32
