"""What compile.py leaves for postprocess: the stage figures in its manifest, and the logits read back as a stream
of utterances, one held at a time, equal to the bins."""

import json

import numpy as np
import pytest

from wav2vec2_pipeline.batchmap import read_map
from wav2vec2_pipeline.manifests import InputManifest, LogitsManifest
from wav2vec2_pipeline.postprocess import utterance_logits
from wav2vec2_pipeline.rundir import RunDir


def test_the_stage_figures_are_printed_and_recorded_on_a_run_with_pad_rows(done) -> None:
    manifest = RunDir(done / "out", LogitsManifest).require_manifest()
    inputs = RunDir(done / "in", InputManifest).require_manifest()
    assert [b.rows_used for b in inputs.bins] == [3, 1]  # the last bin has 2 pad rows
    assert manifest.stage.rows_run == 4 and manifest.stage.audio_s_per_s > 0
    assert manifest.stage.speech_s == pytest.approx(sum(b.speech_samples for b in inputs.bins) / 16_000)
    assert manifest.throughput is not None and manifest.throughput.samples_per_s > 0


def test_postprocess_holds_one_utterance_at_a_time(done, monkeypatch) -> None:
    """Each utterance comes out as soon as its last row has passed: the first before the second bin is read."""
    from wav2vec2_pipeline import postprocess

    read = []
    real = postprocess.read_bytes
    monkeypatch.setattr(postprocess, "read_bytes", lambda path, *a: read.append(path.name) or real(path, *a))
    batch_map = read_map(done / "data", 3)
    manifest = RunDir(done / "out", LogitsManifest).require_manifest()
    stream = utterance_logits(done / "out", batch_map, manifest)
    first, logits = next(stream)
    assert read == ["batch_0.bin"] and first == batch_map.bins[0].rows[0].utt_id and logits.shape[1] == 32
    assert len(list(stream)) == 3 and read == ["batch_0.bin", "batch_1.bin"]


def test_arrays_of_the_logits_stream_match_the_bins(done) -> None:
    batch_map_path = done / "data" / "batch_i_filename_map_bs3.json"
    first_row = json.loads(batch_map_path.read_text())["bins"][0]["rows"][0]
    manifest = RunDir(done / "out", LogitsManifest).require_manifest()
    utt_id, logits = next(utterance_logits(done / "out", read_map(done / "data", 3), manifest))
    raw = np.fromfile(done / "out" / "batch_0.bin", dtype="<f4").reshape(3, 312, 32)
    start, end = first_row["keep"]
    assert utt_id == first_row["utt_id"]
    np.testing.assert_array_equal(logits, raw[0, start:end])
