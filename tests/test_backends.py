"""Backends by name; the aie adapter is checked against a stand-in torch_aie module (no NPU runs here)."""

import dataclasses
import shutil
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pytest
import torch

from tests.conftest import run_main
from wav2vec2_pipeline import backends, device
from wav2vec2_pipeline.backends import AieBackend, TorchScriptBackend, create_backend
from wav2vec2_pipeline.calibration import Calibration
from wav2vec2_pipeline.device import DeviceOptions
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


@pytest.fixture
def own_traced(tmp_path, traced_path) -> Path:
    """traced.pth in a dir of this test's own: compiled models are saved beside it."""
    shutil.copy(traced_path, tmp_path / "traced.pth")
    return tmp_path / "traced.pth"


def compile_calls(stand_in: StandInTorchAie) -> list[dict]:
    return [call[1] for call in stand_in.calls if call[0] == "compile"]


def test_aie_compiles_a_static_fp16_input_for_the_soc_and_runs_on_a_stream(stand_in_torch_aie, own_traced) -> None:
    backend = create_backend("aie", DeviceOptions(device_id=1))
    backend.load(own_traced)
    for shape in ((4, 16_000), (4, 32_000), (4, 16_000)):  # one compile per distinct static shape
        backend.prepare(shape)
    assert compile_calls(stand_in_torch_aie) == [
        {
            "inputs": [{"shape": shape, "dtype": torch.float32}],
            "precision_policy": "precision-FP16",
            "soc_version": "Ascend310P3",
            "optimization_level": 0,  # as the Ascend guide compiles this model
            "allow_tensor_replace_int": True,
        }
        for shape in ((4, 16_000), (4, 32_000))
    ]
    assert ("set_device", 1) in stand_in_torch_aie.calls and ("Stream", "npu:1") in stand_in_torch_aie.calls
    logits = backend.forward(torch.zeros(4, 16_000))  # CPU tensor: the stand-in "compiled" module is TorchScript
    backend.synchronize()
    assert logits.shape == (4, 49, 32)
    assert stand_in_torch_aie.calls[-3:] == [("enter stream",), ("exit stream",), ("synchronize",)]


def test_aie_precision_policy_soc_and_compile_options_are_options(stand_in_torch_aie, own_traced) -> None:
    options = DeviceOptions(soc_version="Ascend310P1", precision_policy="FP32", aie_optimization_level=2,
                            allow_tensor_replace_int=False)  # fmt: skip
    backend = AieBackend(options)
    backend.load(own_traced)
    backend.prepare((1, 16_000))
    (call,) = compile_calls(stand_in_torch_aie)
    assert (call["precision_policy"], call["soc_version"]) == ("precision-FP32", "Ascend310P1")
    assert (call["optimization_level"], call["allow_tensor_replace_int"]) == (2, False)
    assert backend.key_options() == ["Ascend310P1", "FP32", "optimization_level=2", "allow_tensor_replace_int=False"]
    with pytest.raises(PipelineError, match=r"BF99 is not a torch_aie\.PrecisionPolicy"):
        AieBackend(DeviceOptions(precision_policy="BF99")).load(own_traced)


def test_aie_saves_each_compiled_shape_and_a_later_run_loads_it_instead_of_compiling(
    stand_in_torch_aie, own_traced
) -> None:
    first = AieBackend(DeviceOptions())
    first.load(own_traced)
    first.prepare((2, 16_000))
    saved = sorted(own_traced.parent.glob("traced.aie-*.ts"))
    assert len(compile_calls(stand_in_torch_aie)) == 1 and len(saved) == 1

    later = AieBackend(DeviceOptions())  # a later run, or another shard worker
    later.load(own_traced)
    later.prepare((2, 16_000))
    assert len(compile_calls(stand_in_torch_aie)) == 1, "loaded from the saved file, not compiled again"
    batch = torch.randn(2, 16_000)
    torch.testing.assert_close(later.forward(batch), first.forward(batch))

    for other in (DeviceOptions(precision_policy="FP32"), DeviceOptions(soc_version="Ascend910B3")):
        backend = AieBackend(other)  # anything the compile depended on names another file
        backend.load(own_traced)
        backend.prepare((2, 16_000))
    later.prepare((4, 16_000))
    assert len(compile_calls(stand_in_torch_aie)) == 4 and len(list(own_traced.parent.glob("traced.aie-*.ts"))) == 4


def test_aie_without_torch_aie_says_so_and_names_the_other_backends(monkeypatch, traced_path) -> None:
    monkeypatch.setitem(sys.modules, "torch_aie", None)  # makes `import torch_aie` fail
    with pytest.raises(PipelineError, match=r"^--backend aie needs torch_aie.*or use --backend auto, which"):
        create_backend("aie", DeviceOptions()).load(traced_path)


def test_auto_prefers_aie_then_cuda_then_the_cpu_default(monkeypatch) -> None:
    monkeypatch.setattr(backends.AieBackend, "available", classmethod(lambda cls: False))
    monkeypatch.setattr(backends.CudaBackend, "available", classmethod(lambda cls: False))
    monkeypatch.setattr(backends, "cpu_auto", lambda: "torchscript")
    assert create_backend("auto", DeviceOptions()).name == "torchscript"
    monkeypatch.setattr(backends.CudaBackend, "available", classmethod(lambda cls: True))
    assert create_backend("auto", DeviceOptions()).name == "cuda"
    monkeypatch.setattr(backends.AieBackend, "available", classmethod(lambda cls: True))
    assert create_backend("auto", DeviceOptions()).name == "aie"


@pytest.mark.parametrize(
    ("flags", "installed", "expected"),
    [
        ({"avx512_vnni", "avx512_bf16"}, {"openvino", "nncf", "onnxruntime"}, "openvino-int8"),  # this one
        ({"avx2", "amx_int8", "amx_bf16"}, {"openvino", "nncf", "onnxruntime"}, "openvino-int8"),  # Sapphire Rapids
        ({"avx512f", "avx512_vnni"}, {"openvino", "nncf", "onnxruntime"}, "openvino-int8"),  # Cascade Lake: no bf16
        ({"avx2", "avx_vnni"}, {"openvino", "nncf", "onnxruntime"}, "openvino-int8"),  # Alder Lake
        ({"avx512f", "avx512_bf16"}, {"openvino", "onnxruntime"}, "openvino-bf16"),  # bf16 without int8 dot products
        ({"avx2", "fma"}, {"openvino", "onnxruntime"}, "openvino"),  # neither: fp32
        ({"avx2", "fma"}, {"onnxruntime"}, "onnxruntime"),
        ({"avx512_vnni", "avx512_bf16"}, {"onnxruntime"}, "onnxruntime"),  # no openvino installed
        ({"avx512_vnni", "avx512_bf16"}, {"openvino", "onnxruntime"}, "openvino-bf16"),  # openvino without nncf
        ({"avx512_vnni"}, {"openvino", "onnxruntime"}, "openvino"),
        (set(), set(), "torchscript"),
    ],
)
def test_the_cpu_default_follows_the_cpu_flags(flags, installed, expected) -> None:
    assert device.cpu_default(frozenset(flags), installed.__contains__) == expected


@pytest.mark.parametrize(("flags", "precision"), [({"avx512_vnni", "avx512_bf16"}, "bf16"), ({"avx512_vnni"}, "f32")])
def test_int8_runs_its_float_ops_in_bf16_only_where_the_cpu_has_it(monkeypatch, flags, precision) -> None:
    monkeypatch.setattr(backends, "cpu_flags", lambda: frozenset(flags))
    backend = create_backend("openvino-int8", DeviceOptions(), lambda: Calibration("k" * 64, list))
    assert backend.precision == precision and f"float ops {precision}" in backend.key_options()


def test_bf16_on_a_cpu_without_it_names_the_flags_it_needs(monkeypatch, traced_path) -> None:
    monkeypatch.setattr(backends, "cpu_flags", lambda: frozenset({"avx2", "avx512f", "avx512_vnni"}))
    assert not backends.OpenVinoBf16Backend.available()
    with pytest.raises(PipelineError, match=r"^--backend openvino-bf16 needs a CPU with avx512_bf16 or amx_bf16 "):
        create_backend("openvino-bf16", DeviceOptions()).load(traced_path)


SAPPHIRE_RAPIDS = frozenset({"avx2", "avx_vnni", "avx512f", "avx512_vnni", "avx512_bf16", "amx_int8", "amx_bf16"})


@pytest.mark.parametrize(("cap", "cpu_class"), [
    ("", "amx"), ("ALL", "amx"), ("avx512_core_amx", "amx"), ("AVX512_CORE_BF16", "avx512-bf16"),
    ("AVX512_CORE_VNNI", "avx512-vnni"), ("AVX2_VNNI", "avx-vnni"), ("AVX512_CORE", "avx2"), ("AVX2", "avx2"),
])  # fmt: skip
def test_an_onednn_isa_cap_gives_the_class_the_runtimes_then_see(cap, cpu_class) -> None:
    assert device.cpu_class(device.capped(SAPPHIRE_RAPIDS, cap)) == cpu_class


def test_an_isa_cap_that_crashes_openvino_on_this_model_is_refused_in_one_line(monkeypatch, traced_path) -> None:
    monkeypatch.setattr(device, "reported_flags", lambda: SAPPHIRE_RAPIDS)
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    with pytest.raises(PipelineError, match=r"^ONEDNN_MAX_CPU_ISA=AVX2 on this AVX-512 CPU crashes OpenVINO"):
        create_backend("openvino", DeviceOptions()).load(traced_path)
    assert device.cpu_auto() == "onnxruntime"  # auto counts OpenVINO out rather than crash
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX512_CORE")
    assert device.cap_crashes_openvino() is None
    monkeypatch.setattr(device, "reported_flags", lambda: frozenset({"avx2"}))  # a real AVX2 CPU: nothing to cap
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert device.cap_crashes_openvino() is None


def test_cpu_flags_are_read_from_proc_cpuinfo() -> None:
    flags = device.cpu_flags()
    if Path("/proc/cpuinfo").is_file():
        assert "fpu" in flags or "fp" in flags or "asimd" in flags, "x86 or arm flags"
    else:
        assert flags == frozenset()


def test_unknown_backend_lists_the_choices() -> None:
    with pytest.raises(PipelineError, match="choose one of auto, aie, cuda, onnxruntime, torchscript"):
        create_backend("tpu", DeviceOptions())


def test_torchscript_backend_runs_a_numpy_batch(traced_path) -> None:
    backend = TorchScriptBackend(DeviceOptions())
    backend.load(traced_path)
    logits = backend.to_host(backend.forward(backend.to_device(np.zeros((2, 16_000), dtype=np.float32))))
    assert logits.shape == (2, 49, 32) and logits.dtype == np.float32


def test_cuda_fp16_runs_the_traced_module_under_autocast(traced_path) -> None:
    """No GPU here: the same autocast path on the CPU, in bf16 (CPU autocast's type), checks that autocast
    reaches inside the traced graph and that logits come back fp32; fp16 on a GPU is checked where one is lent."""

    class OnCpu(backends.CudaFp16Backend):
        autocast_dtype = torch.bfloat16

        @classmethod
        def available(cls) -> bool:
            return True

    backend = OnCpu(DeviceOptions())
    backend.device = "cpu"
    backend.load(traced_path)
    batch = np.random.default_rng(0).standard_normal((2, 32_000)).astype(np.float32)
    reference = TorchScriptBackend(DeviceOptions())
    reference.load(traced_path)
    expected = reference.to_host(reference.forward(reference.to_device(batch)))
    logits = backend.forward(backend.to_device(batch))
    assert logits.dtype == torch.bfloat16, "autocast ran the model's matrix products in reduced precision"
    logits = backend.to_host(logits)
    assert logits.dtype == np.float32
    # Loose: the tiny random model amplifies bf16 rounding, 0.28 relative L2 with AMX, 0.013 without (same model)
    assert 0 < np.linalg.norm(logits - expected) / np.linalg.norm(expected) < 0.5


def test_cuda_fp16_without_a_gpu_names_itself(monkeypatch, traced_path) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(PipelineError, match=r"^--backend cuda-fp16: torch sees no CUDA GPU here; use --backend auto$"):
        create_backend("cuda-fp16", DeviceOptions()).load(traced_path)


def test_compile_runs_aie_once_per_bin_shape_and_a_rerun_compiles_nothing(stand_in_torch_aie, own_traced, dataset,
                                                                          monkeypatch, tmp_path) -> None:  # fmt: skip
    from wav2vec2_pipeline.inference import CompileOptions, find_input_bins, run_compile

    run_main("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 2, "--output", tmp_path / "in",
             "--data_path", tmp_path / "data", "--layout", "bucket", "--long_audio", "chunk")  # fmt: skip
    bin_shapes = {tuple(b.shape) for b in find_input_bins(tmp_path / "in", 2, 100_000).bins}
    monkeypatch.setattr(AieBackend, "to_device", lambda self, batch: torch.from_numpy(batch))  # no NPU: run on CPU
    options = CompileOptions(batch_size=2, backend="aie", warmup_runs=0, timed_runs=1)
    run_compile(tmp_path / "in", tmp_path / "out", own_traced, options, "test")
    shapes = [call["inputs"][0]["shape"] for call in compile_calls(stand_in_torch_aie)]
    assert sorted(shapes) == sorted(bin_shapes) and len(bin_shapes) > 1
    run_compile(tmp_path / "in", tmp_path / "out2", own_traced, options, "test")
    assert len(compile_calls(stand_in_torch_aie)) == len(bin_shapes), "the second run loads the saved models"


def test_int8_set_up_for_bf16_refuses_to_load_on_a_cpu_without_it(monkeypatch, traced_path) -> None:
    """A driver or a merge on a bf16 CPU keys the logits "float ops bf16": a worker without bf16 must not quietly
    run fp32 under that key."""
    monkeypatch.setattr(backends, "cpu_flags", lambda: frozenset({"avx512_vnni", "avx512_bf16"}))
    backend = create_backend("openvino-int8", DeviceOptions(), lambda: Calibration("k" * 64, list))
    monkeypatch.setattr(backends, "cpu_flags", lambda: frozenset({"avx512_vnni"}))  # the worker's CPU
    with pytest.raises(PipelineError, match=r"^--backend openvino-int8 was set up for bf16 .* one kind of CPU$"):
        backend.load(traced_path)


def test_int8_keyed_with_other_library_versions_refuses_to_load(monkeypatch, traced_path) -> None:
    """The run key names the NNCF and OpenVINO versions where it was made: a worker with others would quantise
    another model under that key."""
    pytest.importorskip("nncf")
    backend = create_backend("openvino-int8", DeviceOptions(), lambda: Calibration("k" * 64, list))  # the driver
    monkeypatch.setattr(backends, "int8_recipe", lambda: "another-recipe-digest")  # the worker's packages
    with pytest.raises(PipelineError, match=r"^--backend openvino-int8 was keyed with NNCF and OpenVINO versions"):
        backend.load(traced_path)


def test_compile_prepares_only_the_shapes_of_the_bins_it_runs(traced_path, dataset, tmp_path) -> None:
    """A static-shape backend compiles per shape, minutes each on an NPU: not for another shard's bins, nor for
    bins already finished (a whole run also prepares its first bin's shape, for the throughput figure)."""
    from wav2vec2_pipeline.inference import CompileOptions, compile_bins, compile_shard, find_input_bins, plan_compile
    from wav2vec2_pipeline.shards import Shard

    class Recording(TorchScriptBackend):
        prepared: ClassVar[list] = []

        def prepare(self, input_shape) -> None:
            self.prepared.append(input_shape)

    run_main("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 1, "--output", tmp_path / "in",
             "--data_path", tmp_path / "data", "--max_samples", 100_000, "--long_audio", "chunk")  # fmt: skip
    bins = find_input_bins(tmp_path / "in", 1, 100_000).bins
    options = CompileOptions(batch_size=1, backend="torchscript", warmup_runs=0, timed_runs=1)

    def planned():
        run = plan_compile(tmp_path / "in", tmp_path / "out", traced_path, options)
        return dataclasses.replace(run, backend=Recording(DeviceOptions()))

    compile_shard(planned(), options, "test", Shard(2, 2))
    assert Recording.prepared == list(dict.fromkeys(tuple(b.shape) for b in bins[1::2]))
    assert len(Recording.prepared) > 1, "bins of several lengths"
    Recording.prepared.clear()
    compile_bins(planned(), options, "test")
    assert Recording.prepared == list(dict.fromkeys(tuple(b.shape) for b in bins[0::2])), "shard 2's are done"


def test_compile_runs_the_largest_bin_first(traced_path, dataset, tmp_path) -> None:
    """Whole utterances sorted by length make every bin longer than the last: run in that order, a runtime grows
    its buffers bin by bin (a fifth of each bin's time in OpenVINO), so the run goes largest first; the logits
    manifest still lists the bins in the batch map's order."""
    from wav2vec2_pipeline.inference import CompileOptions, compile_bins, find_input_bins, plan_compile

    class Recording(TorchScriptBackend):
        ran: ClassVar[list] = []

        def forward(self, batch):
            self.ran.append(tuple(batch.shape))
            return super().forward(batch)

    run_main("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 1, "--output", tmp_path / "in",
             "--data_path", tmp_path / "data")  # fmt: skip
    bins = find_input_bins(tmp_path / "in", 1, 100_000).bins
    options = CompileOptions(batch_size=1, backend="torchscript", warmup_runs=0, timed_runs=1)
    run = dataclasses.replace(plan_compile(tmp_path / "in", tmp_path / "out", traced_path, options),
                              backend=Recording(DeviceOptions()))  # fmt: skip
    result = compile_bins(run, options, "test")
    sizes = [rows * samples for rows, samples in Recording.ran[: len(bins)]]
    assert len(set(sizes)) > 1, "bins of several sizes"
    assert sizes == sorted(sizes, reverse=True)
    assert [b.name for b in result.manifest.bins] == [b.name for b in bins]
