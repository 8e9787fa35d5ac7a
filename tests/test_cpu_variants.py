"""The faster CPU backends against the shipped fp32 TorchScript path, on the same input bins."""

import numpy as np
import pytest

from tests.conftest import run_script
from wav2vec2_pipeline.backends import DeviceOptions, create_backend
from wav2vec2_pipeline.ctc import greedy_decode
from wav2vec2_pipeline.inference import find_input_bins
from wav2vec2_pipeline.model import BASE_960H_VOCAB


@pytest.fixture(scope="module")
def batches(tmp_path_factory, dataset) -> list[np.ndarray]:
    work = tmp_path_factory.mktemp("variants")
    run_script("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 3, "--output", work / "in",
               "--data_path", work / "data", "--long_audio", "chunk")  # fmt: skip
    inputs = find_input_bins(work / "in", 3, 100_000)
    return [np.fromfile(work / "in" / b.name, dtype="<f4").reshape(b.shape) for b in inputs.bins]


def logits_of(name: str, traced_path, batches, threads: int | None = None) -> list[np.ndarray]:
    backend = create_backend(name, DeviceOptions(threads=threads))
    backend.load(traced_path)
    return [backend.to_host(backend.forward(backend.to_device(batch))) for batch in batches]


@pytest.fixture(scope="module")
def reference(traced_path, batches) -> list[np.ndarray]:
    return logits_of("torchscript", traced_path, batches)


@pytest.mark.parametrize(("name", "threads"), [("torchscript-frozen", None), ("onnxruntime", None), ("onnxruntime", 1)])
def test_fp32_variants_match_the_shipped_path_and_give_identical_text(name, threads, traced_path, batches, reference):
    for logits, expected in zip(logits_of(name, traced_path, batches, threads), reference, strict=True):
        assert logits.shape == expected.shape and logits.dtype == np.float32
        np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=1e-4)
        for row, expected_row in zip(logits, expected, strict=True):
            assert greedy_decode(row, BASE_960H_VOCAB) == greedy_decode(expected_row, BASE_960H_VOCAB)


def test_int8_is_close_but_not_exact(traced_path, batches, reference) -> None:
    """int8 trades accuracy for speed; its parity is measured, never assumed (figures in the benchmark)."""
    quantized = np.concatenate(logits_of("onnxruntime-int8", traced_path, batches))
    expected = np.concatenate(reference)
    relative_l2 = np.linalg.norm(quantized - expected) / np.linalg.norm(expected)
    assert 0 < relative_l2 < 0.2
    assert (quantized.argmax(-1) == expected.argmax(-1)).mean() > 0.5


def test_compile_runs_a_variant_by_name(tmp_path, traced_path, dataset) -> None:
    run_script("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 2, "--output", tmp_path / "in",
               "--data_path", tmp_path / "data")  # fmt: skip
    result = run_script("compile.py", "--batch_size", 2, "--input_path", tmp_path / "in", "--output_path",
                        tmp_path / "out", "--torchscript_path", traced_path, "--backend", "onnxruntime",
                        "--threads", 1, "--warmup_runs", 0, "--timed_runs", 1)  # fmt: skip
    assert "model throughput (onnxruntime, 2 x 100000" in result.stdout
