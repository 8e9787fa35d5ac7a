"""The feature encoder's convolutions as frame-window matrix products (int8's rewrite): the same function as the
convolutions on every length, and models it cannot rewrite left as they are."""

import shutil

import numpy as np
import pytest

from benchmarks.random_base_model import save_random_model, tiny_config
from wav2vec2_pipeline import backends, device
from wav2vec2_pipeline.backends import create_backend
from wav2vec2_pipeline.calibration import Calibration
from wav2vec2_pipeline.device import DeviceOptions
from wav2vec2_pipeline.export import model_sha256, onnx_model, save_torchscript, trace

openvino = pytest.importorskip("openvino")
frame_matmuls = pytest.importorskip("wav2vec2_pipeline.frame_matmuls")

LENGTHS = (400, 401, 402, 403, 404, 16_000, 16_001, 16_003, 16_007)
"""From the shortest input the feature encoder takes (one frame) up, every parity of every layer's length."""


def fp32_logits(model, samples: np.ndarray) -> np.ndarray:
    compiled = openvino.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return compiled.create_infer_request().infer({0: samples})[0].copy()


def convolutions(model) -> list[str]:
    return [node.get_friendly_name() for node in model.get_ordered_ops() if node.get_type_name() == "Convolution"]


@pytest.fixture(scope="module")
def onnx_path(traced_path):
    return onnx_model(traced_path, model_sha256(traced_path))


@pytest.mark.parametrize("length", LENGTHS)
def test_the_rewrite_computes_what_the_convolutions_computed(onnx_path, length) -> None:
    core = openvino.Core()
    rewritten = core.read_model(onnx_path)
    assert frame_matmuls.rewrite(rewritten) == 16  # the tiny model's 16 channels: every group inside one frame
    samples = np.random.default_rng(length).standard_normal((2, length)).astype(np.float32)
    expected = fp32_logits(core.read_model(onnx_path), samples)
    logits = fp32_logits(rewritten, samples)
    assert logits.shape == expected.shape
    np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=1e-4)


def test_only_the_first_convolution_is_left_and_the_group_size_travels_with_the_model(onnx_path, tmp_path) -> None:
    model = openvino.Core().read_model(onnx_path)
    before = convolutions(model)
    frame_matmuls.rewrite(model)
    assert len(before) == 7 and convolutions(model) == before[:1]
    openvino.save_model(model, tmp_path / "model.xml")
    saved = openvino.Core().read_model(tmp_path / "model.xml")
    assert saved.get_rt_info(["runtime_options", "DYNAMIC_QUANTIZATION_GROUP_SIZE"]).astype(int) == 16


@pytest.mark.parametrize("change", [{"feat_extract_norm": "layer"}, {"conv_bias": True}])
def test_a_model_whose_layers_act_on_channels_is_left_as_it_is(tmp_path, change) -> None:
    """A layer norm or a bias after each convolution acts on the axis the rewrite moves."""
    from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

    config = Wav2Vec2Config(**{**tiny_config().to_dict(), **change})
    model = Wav2Vec2ForCTC.from_pretrained(save_random_model(tmp_path / "model", config)).eval()
    save_torchscript(trace(model, 16_000), tmp_path / "traced.pth")
    path = onnx_model(tmp_path / "traced.pth", model_sha256(tmp_path / "traced.pth"))
    ov_model = openvino.Core().read_model(path)
    assert frame_matmuls.rewrite(ov_model) == 0
    assert len(convolutions(ov_model)) == 7
    samples = np.random.default_rng(0).standard_normal((1, 16_000)).astype(np.float32)
    np.testing.assert_array_equal(fp32_logits(ov_model, samples), fp32_logits(path, samples))


AVX512_NO_VNNI = frozenset({"avx2", "avx512f"})
"""The avx2 class on an AVX-512 CPU without VNNI (Skylake-SP)."""


@pytest.mark.parametrize(("flags", "left"), [
    (device.CLASS_EXAMPLES["avx512-vnni"], 1), (AVX512_NO_VNNI, 1),  # AVX-512, float ops fp32: measured faster
    (device.CLASS_EXAMPLES["avx2"], 7), (device.CLASS_EXAMPLES["avx-vnni"], 7),  # no dynamic quantisation there
    (device.CLASS_EXAMPLES["avx512-bf16"], 7), (device.CLASS_EXAMPLES["amx"], 7),  # bf16 convolutions the faster
])  # fmt: skip
def test_int8_takes_the_feature_encoder_where_it_was_measured_faster(monkeypatch, traced_path, tmp_path, flags,
                                                                     left) -> None:
    monkeypatch.setattr(backends, "cpu_flags", lambda: flags)
    traced = shutil.copy(traced_path, tmp_path / "traced.pth")
    speech = np.random.default_rng(0).standard_normal((4, 1, 16_000)).astype(np.float32)
    backend = create_backend("openvino-int8", DeviceOptions(), lambda: Calibration("k" * 64, lambda: list(speech)))
    assert len(convolutions(openvino.Core().read_model(backend.model_path(traced)))) == left
    assert backend.key_options()[-1] == f"feature encoder {'int8 per frame' if left == 1 else 'float'}"


@pytest.mark.parametrize(
    ("name", "pattern"), [("openvino-int8", "traced.*.int8-*.bin"), ("onnxruntime", "traced.*.onnx")]
)
def test_a_kept_conversion_cut_short_ends_in_one_line_that_says_how_to_remake_it(traced_path, tmp_path, name,
                                                                                 pattern) -> None:
    from wav2vec2_pipeline.errors import PipelineError

    traced = shutil.copy(traced_path, tmp_path / "traced.pth")
    speech = np.random.default_rng(0).standard_normal((4, 1, 16_000)).astype(np.float32)
    create_backend(name, DeviceOptions(), lambda: Calibration("k" * 64, lambda: list(speech))).load(traced)
    (kept,) = tmp_path.glob(pattern)
    kept.write_bytes(kept.read_bytes()[: kept.stat().st_size // 2])
    backend = create_backend(name, DeviceOptions(), lambda: Calibration("k" * 64, lambda: list(speech)))
    with pytest.raises(PipelineError, match=r"^(OpenVINO|ONNX Runtime) cannot read .*: delete it and run again"):
        backend.load(traced)
