"""The four scripts as a user runs them, checked file by file and against the eager HF model."""

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

from tests.conftest import FixtureUtterance, run_script
from wav2vec2_pipeline.model import MAX_SAMPLES, num_frames

FRAMES = 312
VOCAB_SIZE = 32


@dataclass(frozen=True)
class PipelineRun:
    batch_size: int
    input_dir: Path
    output_dir: Path
    data_path: Path
    report: dict
    utterances: list[FixtureUtterance]
    dataset: Path


@pytest.fixture(scope="module", params=[1, 3], ids=["bs1", "bs3"])
def pipeline_run(request, tmp_path_factory, dataset, tiny_model_dir, traced_path) -> PipelineRun:
    batch_size = request.param
    dataset_dir, utterances = dataset
    work = tmp_path_factory.mktemp(f"run_bs{batch_size}")
    input_dir, output_dir, data_path = work / "bin_in", work / "bin_out", work / "data"
    run_script("wav2vec2_preprocess.py", "--input", dataset_dir, "--batch_size", batch_size,
               "--output", input_dir, "--data_path", data_path, "--pytorch_model_dir", tiny_model_dir)  # fmt: skip
    run_script("compile.py", "--batch_size", batch_size, "--input_path", input_dir, "--output_path", output_dir,
               "--torchscript_path", traced_path, "--backend", "torchscript",
               "--warmup_runs", 1, "--timed_runs", 2)  # fmt: skip
    run_script("wav2vec2_postprocess.py", "--input", output_dir, "--batch_size", batch_size,
               "--data_path", data_path, "--pytorch_model_dir", tiny_model_dir)  # fmt: skip
    report = json.loads((data_path / f"report_bs{batch_size}.json").read_text())
    return PipelineRun(batch_size, input_dir, output_dir, data_path, report, utterances, dataset_dir)


def kept(run: PipelineRun) -> list[FixtureUtterance]:
    return [u for u in run.utterances if u.num_samples <= MAX_SAMPLES]


def test_every_file_exists_with_its_exact_size(pipeline_run: PipelineRun) -> None:
    n = pipeline_run.batch_size
    num_bins = math.ceil(len(kept(pipeline_run)) / n)
    names = [f"batch_{i}.bin" for i in range(num_bins)]
    assert sorted(p.name for p in pipeline_run.input_dir.glob("*.bin")) == sorted(names)
    assert sorted(p.name for p in pipeline_run.output_dir.glob("*.bin")) == sorted(names)
    for name in names:
        assert (pipeline_run.input_dir / name).stat().st_size == n * MAX_SAMPLES * 4
        assert (pipeline_run.output_dir / name).stat().st_size == n * FRAMES * VOCAB_SIZE * 4
    batch_map = json.loads((pipeline_run.data_path / f"batch_i_filename_map_bs{n}.json").read_text())
    assert list(batch_map["bins"]) == names
    assert [u for ids in batch_map["bins"].values() for u in ids] == [u.utt_id for u in kept(pipeline_run)]
    assert batch_map["num_samples"] == {u.utt_id: u.num_samples for u in pipeline_run.utterances}
    truth = (pipeline_run.data_path / "ground_truth_texts.txt").read_text().splitlines()
    assert truth == [f"{u.utt_id} {u.transcript}" for u in pipeline_run.utterances]


def test_report_lists_every_utterance_once(pipeline_run: PipelineRun) -> None:
    statuses = {u["utt_id"]: u["status"] for u in pipeline_run.report["utterances"]}
    assert len(pipeline_run.report["utterances"]) == len(statuses) == len(pipeline_run.utterances)
    expected = {u.utt_id: "scored" if u.num_samples <= MAX_SAMPLES else "skipped" for u in pipeline_run.utterances}
    assert statuses == expected
    summary = pipeline_run.report["summary"]
    assert summary["utterances_scored"] == 4 and summary["utterances_skipped"] == 2
    assert summary["seconds_skipped"] == pytest.approx((120_000 + 100_001) / 16_000)


def test_input_rows_are_the_feature_extractor_output_zero_padded(pipeline_run: PipelineRun, tiny_model_dir) -> None:
    feature_extractor = Wav2Vec2FeatureExtractor.from_pretrained(tiny_model_dir)
    n = pipeline_run.batch_size
    for index, utterance in enumerate(kept(pipeline_run)):
        rows = np.fromfile(pipeline_run.input_dir / f"batch_{index // n}.bin", dtype="<f4").reshape(n, MAX_SAMPLES)
        speaker, chapter, _ = utterance.utt_id.split("-")
        audio, _ = sf.read(pipeline_run.dataset / speaker / chapter / f"{utterance.utt_id}.flac", dtype="float32")
        expected = feature_extractor(audio, sampling_rate=16_000, return_tensors="np").input_values[0]
        row = rows[index % n]
        np.testing.assert_allclose(row[: utterance.num_samples], expected, rtol=1e-6, atol=1e-6)
        assert not row[utterance.num_samples :].any()
    pad_rows = -len(kept(pipeline_run)) % n
    if pad_rows:
        last = np.fromfile(sorted(pipeline_run.input_dir.glob("*.bin"))[-1], dtype="<f4").reshape(n, MAX_SAMPLES)
        assert not last[n - pad_rows :].any()


def test_logits_and_text_match_the_eager_model(pipeline_run: PipelineRun, tiny_model_dir) -> None:
    """Decoded text from the output bins == HF greedy decoding of the eager model on the same input bins."""
    model = Wav2Vec2ForCTC.from_pretrained(tiny_model_dir).eval()
    tokenizer = Wav2Vec2CTCTokenizer.from_pretrained(tiny_model_dir)
    hypotheses = {u["utt_id"]: u["hypothesis"] for u in pipeline_run.report["utterances"] if u["status"] == "scored"}
    batch_map = json.loads(
        (pipeline_run.data_path / f"batch_i_filename_map_bs{pipeline_run.batch_size}.json").read_text()
    )
    n = pipeline_run.batch_size
    for name, utt_ids in batch_map["bins"].items():
        batch = np.fromfile(pipeline_run.input_dir / name, dtype="<f4").reshape(n, MAX_SAMPLES)
        with torch.no_grad():
            eager = model(torch.from_numpy(batch)).logits.numpy()
        from_bin = np.fromfile(pipeline_run.output_dir / name, dtype="<f4").reshape(n, FRAMES, VOCAB_SIZE)
        np.testing.assert_allclose(from_bin, eager, atol=1e-4, rtol=1e-4)
        for row, utt_id in enumerate(utt_ids):
            frames_of_speech = num_frames(batch_map["num_samples"][utt_id])  # frames over padding are not decoded
            eager_text = tokenizer.decode(eager[row, :frames_of_speech].argmax(-1))
            assert hypotheses[utt_id] == " ".join(eager_text.split())
