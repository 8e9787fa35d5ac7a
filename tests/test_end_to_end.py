"""The four scripts as a user runs them, each in a process of its own, checked file by file and against the eager
HF model, in the Ascend guide's layout (--layout static: every row padded to 100000 samples, longer ones skipped)."""

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

from tests.conftest import FixtureUtterance, PipelineRun, run_pipeline
from wav2vec2_pipeline.model import MAX_SAMPLES, num_frames

FRAMES = 312
VOCAB_SIZE = 32


@pytest.fixture(scope="module", params=[1, 3], ids=["bs1", "bs3"])
def pipeline_run(request, tmp_path_factory, dataset, tiny_model_dir, traced_path) -> PipelineRun:
    work = tmp_path_factory.mktemp(f"run_bs{request.param}")
    return run_pipeline(work, dataset[0], request.param, traced_path, tiny_model_dir, "--layout", "static",
                        as_process=True)


@pytest.fixture(scope="module")
def utterances(dataset) -> list[FixtureUtterance]:
    return dataset[1]


def kept(utterances: list[FixtureUtterance]) -> list[FixtureUtterance]:
    return [u for u in utterances if u.num_samples <= MAX_SAMPLES]


def test_every_file_exists_with_its_exact_size(pipeline_run: PipelineRun, utterances) -> None:
    n = pipeline_run.batch_size
    num_bins = math.ceil(len(kept(utterances)) / n)
    names = [f"batch_{i}.bin" for i in range(num_bins)]
    assert sorted(p.name for p in pipeline_run.input_dir.glob("*.bin")) == sorted(names)
    assert sorted(p.name for p in pipeline_run.output_dir.glob("*.bin")) == sorted(names)
    for name in names:
        assert (pipeline_run.input_dir / name).stat().st_size == n * MAX_SAMPLES * 4
        assert (pipeline_run.output_dir / name).stat().st_size == n * FRAMES * VOCAB_SIZE * 4
    batch_map = json.loads((pipeline_run.data_path / f"batch_i_filename_map_bs{n}.json").read_text())
    assert [b["name"] for b in batch_map["bins"]] == names
    assert [row["utt_id"] for b in batch_map["bins"] for row in b["rows"]] == [u.utt_id for u in kept(utterances)]
    assert {u: e["num_samples"] for u, e in batch_map["utterances"].items()} == {
        u.utt_id: u.num_samples for u in utterances
    }
    truth = (pipeline_run.data_path / "ground_truth_texts.txt").read_text().splitlines()
    assert truth == [f"{u.utt_id} {u.transcript}" for u in utterances]


def test_report_lists_every_utterance_once(pipeline_run: PipelineRun, utterances) -> None:
    statuses = {u["utt_id"]: u["status"] for u in pipeline_run.report["utterances"]}
    assert len(pipeline_run.report["utterances"]) == len(statuses) == len(utterances)
    expected = {u.utt_id: "scored" if u.num_samples <= MAX_SAMPLES else "skipped" for u in utterances}
    assert statuses == expected
    summary = pipeline_run.report["summary"]
    assert summary["utterances_scored"] == 4 and summary["utterances_skipped"] == 2
    assert summary["seconds_skipped"] == pytest.approx((120_000 + 100_001) / 16_000)


def test_input_rows_are_the_feature_extractor_output_zero_padded(
    pipeline_run: PipelineRun, utterances, dataset, tiny_model_dir
) -> None:
    feature_extractor = Wav2Vec2FeatureExtractor.from_pretrained(tiny_model_dir)
    n = pipeline_run.batch_size
    for index, utterance in enumerate(kept(utterances)):
        rows = np.fromfile(pipeline_run.input_dir / f"batch_{index // n}.bin", dtype="<f4").reshape(n, MAX_SAMPLES)
        speaker, chapter, _ = utterance.utt_id.split("-")
        audio, _ = sf.read(dataset[0] / speaker / chapter / f"{utterance.utt_id}.flac", dtype="float32")
        expected = feature_extractor(audio, sampling_rate=16_000, return_tensors="np").input_values[0]
        row = rows[index % n]
        np.testing.assert_allclose(row[: utterance.num_samples], expected, rtol=1e-6, atol=1e-6)
        assert not row[utterance.num_samples :].any()
    pad_rows = -len(kept(utterances)) % n
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
    for map_bin in batch_map["bins"]:
        name, utt_ids = map_bin["name"], [row["utt_id"] for row in map_bin["rows"]]
        batch = np.fromfile(pipeline_run.input_dir / name, dtype="<f4").reshape(n, MAX_SAMPLES)
        with torch.no_grad():
            eager = model(torch.from_numpy(batch)).logits.numpy()
        from_bin = np.fromfile(pipeline_run.output_dir / name, dtype="<f4").reshape(n, FRAMES, VOCAB_SIZE)
        used = len(utt_ids)
        np.testing.assert_allclose(from_bin[:used], eager[:used], atol=1e-4, rtol=1e-4)
        assert not from_bin[used:].any()  # pad rows: not run on the CPU, written as zeros
        for row, utt_id in enumerate(utt_ids):
            frames_of_speech = num_frames(
                batch_map["utterances"][utt_id]["num_samples"]
            )  # frames over padding are not decoded
            eager_text = tokenizer.decode(eager[row, :frames_of_speech].argmax(-1))
            assert hypotheses[utt_id] == " ".join(eager_text.split())
