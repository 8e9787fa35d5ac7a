"""The faster CPU backends against the shipped fp32 TorchScript path, on the same input bins."""

import json
import shutil

import numpy as np
import pytest

from tests.conftest import fails, run_main, write_flac, write_librispeech_tree
from wav2vec2_pipeline import backends
from wav2vec2_pipeline.backends import create_backend
from wav2vec2_pipeline.binfile import bin_index
from wav2vec2_pipeline.calibration import Calibration, of_input_bins, pick_bins, rows_taken
from wav2vec2_pipeline.ctc import greedy_decode
from wav2vec2_pipeline.device import DeviceOptions
from wav2vec2_pipeline.inference import find_input_bins
from wav2vec2_pipeline.model import BASE_960H_VOCAB


@pytest.fixture(scope="module")
def batches(tmp_path_factory, dataset) -> list[np.ndarray]:
    work = tmp_path_factory.mktemp("variants")
    run_main("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 3, "--output", work / "in",
             "--data_path", work / "data", "--layout", "static", "--long_audio", "chunk")  # fmt: skip
    inputs = find_input_bins(work / "in", 3, 100_000)
    return [np.fromfile(work / "in" / b.name, dtype="<f4").reshape(b.shape) for b in inputs.bins]


def logits_of(name: str, traced_path, batches, threads: int | None = None) -> list[np.ndarray]:
    rows = Calibration("test batches", lambda: (row[None] for batch in batches for row in batch))
    backend = create_backend(name, DeviceOptions(threads=threads), lambda: rows)
    backend.load(traced_path)
    return [backend.to_host(backend.forward(backend.to_device(batch))) for batch in batches]


@pytest.fixture(scope="module")
def reference(traced_path, batches) -> list[np.ndarray]:
    return logits_of("torchscript", traced_path, batches)


@pytest.mark.parametrize(
    ("name", "threads"),
    [("torchscript-frozen", None), ("onnxruntime", None), ("onnxruntime", 1), ("openvino", None), ("openvino", 1)],
)
def test_fp32_variants_match_the_shipped_path_and_give_identical_text(name, threads, traced_path, batches, reference):
    for logits, expected in zip(logits_of(name, traced_path, batches, threads), reference, strict=True):
        assert logits.shape == expected.shape and logits.dtype == np.float32
        np.testing.assert_allclose(logits, expected, atol=1e-4, rtol=1e-4)
        for row, expected_row in zip(logits, expected, strict=True):
            assert greedy_decode(row, BASE_960H_VOCAB) == greedy_decode(expected_row, BASE_960H_VOCAB)


def relative_l2(name: str, traced_path, batches, reference) -> float:
    logits, expected = np.concatenate(logits_of(name, traced_path, batches)), np.concatenate(reference)
    assert (logits.argmax(-1) == expected.argmax(-1)).mean() > 0.5
    return float(np.linalg.norm(logits - expected) / np.linalg.norm(expected))


LOOSE = 0.5
"""Relative L2 a reduced precision may reach on the tiny random model: its near-flat random logits amplify
rounding, by how much depends on the CPU's kernels (bf16 0.26 with AMX, far less on an AVX-512 bf16 CPU without
it), while logits unrelated to fp32 (a broken conversion) sit near 1.4. What counts is CER on the trained model:
tests/test_trained_accuracy.py and the accuracy benchmark."""


@pytest.mark.parametrize("name", ["onnxruntime-int8", "openvino-int8"])
def test_int8_is_close_but_not_exact(name, traced_path, batches, reference) -> None:
    """int8 trades accuracy for speed; its parity is measured, never assumed."""
    assert 0 < relative_l2(name, traced_path, batches, reference) < LOOSE


@pytest.mark.skipif(not backends.OpenVinoBf16Backend.available(), reason="this CPU has no bf16 instructions")
def test_bf16_is_close_but_not_exact(traced_path, batches, reference) -> None:
    assert 0 < relative_l2("openvino-bf16", traced_path, batches, reference) < LOOSE


def test_int8_through_compile_is_calibrated_on_the_runs_own_speech_once_and_sharded_runs_agree(
    tmp_path, traced_path, dataset
) -> None:
    traced = tmp_path / "traced.pth"
    for name in ("traced.pth", "traced.pth.json"):  # the module and its export record, in a dir of this test's own
        shutil.copy(traced_path.with_name(name), tmp_path / name)
    run_main("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 1, "--output", tmp_path / "in",
             "--data_path", tmp_path / "data", "--layout", "static", "--long_audio", "chunk")  # fmt: skip
    fast = ("--batch_size", 1, "--input_path", tmp_path / "in", "--torchscript_path", traced, "--backend",
            "openvino-int8", "--threads", 1, "--warmup_runs", 0, "--timed_runs", 1)  # fmt: skip
    first = run_main("compile.py", *fast, "--output_path", tmp_path / "whole").stdout
    assert "quantising" in first and len(list(tmp_path.glob("traced.*.int8-*.xml"))) == 1
    for k in (1, 2):
        assert "quantising" not in run_main("compile.py", *fast, "--output_path", tmp_path / "sharded", "--shard",
                                            f"{k}/2").stdout, "every shard uses the one quantised model"  # fmt: skip
    run_main("compile.py", *fast, "--output_path", tmp_path / "sharded", "--merge")
    whole = json.loads((tmp_path / "whole" / "manifest.json").read_text())
    assert whole["backend"] == "openvino-int8" and whole["backend_options"][0].startswith("nncf calibration ")
    for path in (tmp_path / "whole").glob("*.bin"):
        assert path.read_bytes() == (tmp_path / "sharded" / path.name).read_bytes()
    report = run_main("wav2vec2_postprocess.py", "--input", tmp_path / "whole", "--batch_size", 1, "--data_path",
                      tmp_path / "data").stdout  # fmt: skip
    assert "scored 6 utterances" in report


def test_compile_runs_a_variant_by_name(tmp_path, traced_path, dataset) -> None:
    run_main("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 2, "--output", tmp_path / "in",
             "--data_path", tmp_path / "data", "--layout", "static")  # fmt: skip
    result = run_main("compile.py", "--batch_size", 2, "--input_path", tmp_path / "in", "--output_path",
                      tmp_path / "out", "--torchscript_path", traced_path, "--backend", "onnxruntime",
                      "--threads", 1, "--warmup_runs", 0, "--timed_runs", 1)  # fmt: skip
    assert "model throughput (onnxruntime, 2 x 100000" in result.stdout


def test_int8_redoes_every_bin_only_when_audio_it_was_calibrated_on_changes(tmp_path, traced_path) -> None:
    """The quantised model depends on its calibration speech: editing that audio changes every logits bin (and
    they are all redone), editing any other utterance only its own bin."""
    for name in ("traced.pth", "traced.pth.json"):
        shutil.copy(traced_path.with_name(name), tmp_path / name)
    lengths = {f"1-2-{i:04d}": 3_000 + 100 * i for i in range(40)}
    write_librispeech_tree(tmp_path / "ls", lengths)
    prep = ("wav2vec2_preprocess.py", "--input", tmp_path / "ls", "--batch_size", 2, "--output", tmp_path / "in",
            "--data_path", tmp_path / "data", "--layout", "static")  # fmt: skip
    comp = ("compile.py", "--batch_size", 2, "--input_path", tmp_path / "in", "--output_path", tmp_path / "out",
            "--torchscript_path", tmp_path / "traced.pth", "--backend", "openvino-int8", "--warmup_runs", 0,
            "--timed_runs", 1)  # fmt: skip
    run_main(*prep)
    run_main(*comp)
    bins = find_input_bins(tmp_path / "in", 2, 100_000).bins
    calibrated = {b.name for b in pick_bins(bins, 2)}
    assert len(calibrated) == 16 and len(bins) == 20
    def edit(bin_name: str) -> str:
        utt_id = f"1-2-{2 * bin_index(bin_name):04d}"  # the window layout: bins of two, in id order
        write_flac(tmp_path / "ls" / "1" / "2" / f"{utt_id}.flac", lengths[utt_id], seed=99)
        run_main(*prep)
        return run_main(*comp).stdout

    other = next(b.name for b in bins if b.name not in calibrated)
    printed = edit(other)
    assert "quantising" not in printed and "stage: 2 rows in" in printed
    printed = edit(sorted(calibrated)[0])
    assert "quantising" in printed and "stage: 40 rows in" in printed


def test_calibration_takes_at_least_four_bins_spread_over_the_plan_and_about_32_rows() -> None:
    assert pick_bins(list(range(81)), 32) == [0, 27, 53, 80]  # first and last (shortest, longest) among them
    assert len(pick_bins(list(range(81)), 1)) == 32 and pick_bins(list(range(3)), 8) == [0, 1, 2]
    assert rows_taken(32, 4) == 8 and rows_taken(3, 4) == 3


def test_the_calibration_key_names_the_rows_taken_not_only_the_bins(tmp_path, dataset) -> None:
    """The same bins, once with preprocess's manifest (the pad rows of the last bin left out) and once as bins
    from elsewhere (every row taken): other speech, so another key, and another cached quantised model."""
    run_main("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 3, "--output", tmp_path / "in",
             "--data_path", tmp_path / "data", "--layout", "static")  # fmt: skip
    (tmp_path / "raw").mkdir()
    for path in (tmp_path / "in").glob("batch_*.bin"):
        shutil.copy(path, tmp_path / "raw" / path.name)
    with_manifest = of_input_bins(tmp_path / "in", find_input_bins(tmp_path / "in", 3, 100_000).bins, 3)
    bare = of_input_bins(tmp_path / "raw", find_input_bins(tmp_path / "raw", 3, 100_000).bins, 3)
    assert len(list(with_manifest.rows())) < len(list(bare.rows()))
    assert with_manifest.key != bare.key


def test_a_calibration_bin_changed_since_preprocess_is_refused_even_in_another_shard(tmp_path, traced_path,
                                                                                  dataset) -> None:  # fmt: skip
    for name in ("traced.pth", "traced.pth.json"):
        shutil.copy(traced_path.with_name(name), tmp_path / name)
    run_main("wav2vec2_preprocess.py", "--input", dataset[0], "--batch_size", 1, "--output", tmp_path / "in",
             "--data_path", tmp_path / "data", "--layout", "static")  # fmt: skip
    bins = find_input_bins(tmp_path / "in", 1, 100_000).bins
    other_shards = [b for i, b in enumerate(bins) if i % 2 == 1 and b in pick_bins(bins, 1)]
    path = tmp_path / "in" / other_shards[0].name
    path.write_bytes((np.fromfile(path, "<f4") * 50).astype("<f4").tobytes())  # same size, other speech
    message = fails("compile.py", "--batch_size", 1, "--input_path", tmp_path / "in", "--output_path",
                    tmp_path / "out", "--torchscript_path", tmp_path / "traced.pth", "--backend", "openvino-int8",
                    "--shard", "1/2")  # fmt: skip
    assert f"{path} is not the bin its manifest lists" in message
    assert not list(tmp_path.glob("traced.*.int8-*.xml")), "nothing quantised on the changed speech"
