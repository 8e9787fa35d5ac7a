"""Chunked long utterances: stitching frame for frame, against the HF ASR pipeline, and cut accounting."""

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC, pipeline

from tests.conftest import run_pipeline, write_librispeech_tree
from wav2vec2_pipeline.batchmap import read_map
from wav2vec2_pipeline.manifests import LogitsManifest
from wav2vec2_pipeline.postprocess import utterance_logits
from wav2vec2_pipeline.rundir import RunDir

LONG = "100-200-0000"
LONG_SAMPLES = 324_800  # 20.3 s: its last 100000-sample window is mostly padding
SHORT = "100-200-0001"
SAMPLES_PER_FRAME = 320


def flac_path(root, utt_id):
    speaker, chapter, _ = utt_id.split("-")
    return root / speaker / chapter / f"{utt_id}.flac"


def windows_of(audio: np.ndarray, window: int, step: int) -> list[np.ndarray]:
    """Windows at 0, step, 2 step, ... until one reaches the end, zero-padded to `window`."""
    starts = range(0, max(len(audio) - window, 0) + step, step)
    return [np.pad(audio[s : s + window], (0, max(0, window - len(audio[s : s + window])))) for s in starts]


def eager_logits(model: Wav2Vec2ForCTC, rows: list[np.ndarray]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(np.stack(rows).astype(np.float32))).logits.numpy()


def stitch_by_centre(window_logits: np.ndarray, total_frames: int, stride: int, step: int) -> np.ndarray:
    """Each utterance frame g from the window where it lies in the kept middle [stride, stride + step);
    the first window also keeps its start and the last its end."""
    last = len(window_logits) - 1
    frames = []
    for g in range(total_frames):
        k = 0 if g < stride + step else min((g - stride) // step, last)
        frames.append(window_logits[k, g - k * step])
    return np.stack(frames)


@pytest.fixture(scope="module")
def long_dataset(tmp_path_factory) -> tuple:
    root = tmp_path_factory.mktemp("long") / "test-clean"
    return root, write_librispeech_tree(root, {LONG: LONG_SAMPLES, SHORT: 30_000})


def test_chunk_stitching_equals_eager_windows_with_overlap_dropped(
    tmp_path, long_dataset, tiny_model_dir, traced_path
) -> None:
    root, _ = long_dataset
    run = run_pipeline(tmp_path, root, 2, traced_path, tiny_model_dir, "--layout", "static", "--long_audio", "chunk")
    manifest = RunDir(run.output_dir, LogitsManifest).require_manifest()
    stitched = dict(utterance_logits(run.output_dir, read_map(run.data_path, 2), manifest))

    model = Wav2Vec2ForCTC.from_pretrained(tiny_model_dir).eval()
    total_frames = int(model._get_feat_extract_output_lengths(LONG_SAMPLES))
    stride, step = 312 // 6, 312 - 2 * (312 // 6)
    audio, _ = sf.read(flac_path(root, LONG), dtype="float32")
    normalized = Wav2Vec2FeatureExtractor()(audio, sampling_rate=16_000, return_tensors="np").input_values[0]
    windows = windows_of(normalized, 100_000, step * SAMPLES_PER_FRAME)
    assert len(windows) == 5
    expected = stitch_by_centre(eager_logits(model, windows), total_frames, stride, step)
    assert stitched[LONG].shape == (total_frames, 32)  # every frame of the utterance, each once
    np.testing.assert_allclose(stitched[LONG], expected, atol=1e-4, rtol=1e-4)

    entry = next(u for u in run.report["utterances"] if u["utt_id"] == LONG)
    assert entry["status"] == "scored" and entry["long_audio"] == "chunked" and entry["seconds_lost"] == 0
    assert run.report["summary"]["utterances_chunked"] == 1 and run.report["summary"]["seconds_lost"] == 0


ALIGNED_WINDOW = 99_840  # 312 x 320: a window length the HF pipeline can use as it is
ALIGNED_SAMPLES = 3 * 207 * 320 + ALIGNED_WINDOW  # 18.66 s: four full windows, none padded
PIPELINE_STRIDES_S = (52 * 320 / 16_000, (ALIGNED_WINDOW - 52 * 320 - 207 * 320) / 16_000)


@pytest.fixture(scope="module")
def aligned_run(tmp_path_factory, tiny_model_dir, traced_path):
    work = tmp_path_factory.mktemp("aligned")
    root = work / "test-clean"
    write_librispeech_tree(root, {LONG: ALIGNED_SAMPLES})
    # Loudness rising over the utterance, so that every window has its own mean and variance.
    audio, _ = sf.read(flac_path(root, LONG), dtype="float32")
    sf.write(flac_path(root, LONG), audio * np.linspace(0.1, 1.0, ALIGNED_SAMPLES) + 0.02, 16_000, subtype="PCM_16")
    layout = ("--long_audio", "chunk", "--max_samples", ALIGNED_WINDOW, "--stride_frames", 52)
    run = run_pipeline(work, root, 3, traced_path, tiny_model_dir, *layout)
    audio, _ = sf.read(flac_path(root, LONG), dtype="float32")
    return run, audio


def hf_pipeline_text(model_dir, audio: np.ndarray, feature_extractor: Wav2Vec2FeatureExtractor) -> str:
    asr = pipeline("automatic-speech-recognition", model=str(model_dir), feature_extractor=feature_extractor)
    result = asr(audio, chunk_length_s=ALIGNED_WINDOW / 16_000, stride_length_s=PIPELINE_STRIDES_S)
    return " ".join(result["text"].split())


def test_chunk_text_equals_the_hf_asr_pipeline_on_per_utterance_normalised_audio(aligned_run, tiny_model_dir) -> None:
    """Same model, audio and windows: the pipeline, fed audio normalised over the whole utterance (as we
    normalise it), gives our text exactly."""
    run, audio = aligned_run
    normalized = Wav2Vec2FeatureExtractor()(audio, sampling_rate=16_000, return_tensors="np").input_values[0]
    (entry,) = run.report["utterances"]
    expected = hf_pipeline_text(tiny_model_dir, normalized, Wav2Vec2FeatureExtractor(do_normalize=False))
    assert len(expected) > 20
    assert entry["hypothesis"] == expected


def test_per_window_normalisation_as_the_hf_pipeline_does_it_changes_nothing_here(aligned_run, tiny_model_dir) -> None:
    """Pinned difference by design: the pipeline normalises each window with its own mean and variance, we
    normalise the utterance once. For base-960h's architecture the two agree: the first convolution has no
    bias and is followed by a GroupNorm over time, which removes any affine rescaling of a full window.
    So the pipeline's default text is ours too (a layer-norm model such as large-lv60 would differ)."""
    run, audio = aligned_run
    model = Wav2Vec2ForCTC.from_pretrained(tiny_model_dir).eval()
    feature_extractor = Wav2Vec2FeatureExtractor()
    per_window = [
        feature_extractor(w, sampling_rate=16_000, return_tensors="np").input_values[0]
        for w in windows_of(audio, ALIGNED_WINDOW, 207 * 320)
    ]
    normalized = feature_extractor(audio, sampling_rate=16_000, return_tensors="np").input_values[0]
    per_utterance = windows_of(normalized, ALIGNED_WINDOW, 207 * 320)
    assert np.abs(per_window[1] - per_utterance[1]).max() > 0.1  # the inputs differ ...
    np.testing.assert_allclose(
        eager_logits(model, per_window), eager_logits(model, per_utterance), atol=1e-4
    )  # ... not the logits
    (entry,) = run.report["utterances"]
    assert entry["hypothesis"] == hf_pipeline_text(tiny_model_dir, audio, feature_extractor)


def test_cut_mode_counts_the_utterance_as_cut_with_the_seconds_dropped(
    tmp_path, long_dataset, tiny_model_dir, traced_path
) -> None:
    run = run_pipeline(tmp_path, long_dataset[0], 2, traced_path, tiny_model_dir, "--layout", "static",
                       "--long_audio", "cut")  # fmt: skip
    entry = next(u for u in run.report["utterances"] if u["utt_id"] == LONG)
    assert entry["status"] == "scored" and entry["long_audio"] == "cut"
    assert entry["seconds_lost"] == pytest.approx((LONG_SAMPLES - 100_000) / 16_000)
    assert run.report["summary"]["utterances_cut"] == 1
    assert "cut 1 utterances longer than 100000 samples (20.3 s): 14.1 s" in run.stdout


def test_bucket_bins_have_their_own_lengths_and_decode_like_the_utterance_alone(
    tmp_path, long_dataset, tiny_model_dir, traced_path
) -> None:
    buckets = "40000,120000"
    run = run_pipeline(tmp_path, long_dataset[0], 1, traced_path, tiny_model_dir, "--layout", "bucket",
                       "--bucket_samples", buckets, "--long_audio", "chunk")  # fmt: skip
    batch_map = read_map(run.data_path, 1)
    # the short utterance alone in a 40000 bucket; the long one in 120000-sample windows
    bin_samples = {b.name: b.samples for b in batch_map.bins}
    assert bin_samples == {"batch_0.bin": 40_000, **{f"batch_{i}.bin": 120_000 for i in range(1, 5)}}
    for name, samples in bin_samples.items():
        assert (run.input_dir / name).stat().st_size == samples * 4
    assert run.report["summary"]["seconds_lost"] == 0 and run.report["summary"]["utterances_scored"] == 2


def test_a_short_utterance_padded_to_the_window_gets_other_logits_than_alone(long_dataset, tiny_model_dir) -> None:
    """base-960h has no attention mask and its first GroupNorm normalises over time, padding included,
    so zero padding shifts every logit: the reason for sorting by length (--layout whole, or bucket)."""
    model = Wav2Vec2ForCTC.from_pretrained(tiny_model_dir).eval()
    audio, _ = sf.read(flac_path(long_dataset[0], SHORT), dtype="float32")
    normalized = Wav2Vec2FeatureExtractor()(audio, sampling_rate=16_000, return_tensors="np").input_values[0]
    alone = eager_logits(model, [normalized])[0]
    padded = eager_logits(model, [np.pad(normalized, (0, 100_000 - len(normalized)))])[0, : len(alone)]
    assert np.abs(alone - padded).max() > 1e-2


def test_whole_rows_at_batch_size_1_give_each_utterance_alone(tmp_path, dataset, tiny_model_dir, traced_path) -> None:
    """--layout whole: every row as long as its utterance (bs 1), so the logits are the eager model's on the
    utterance alone, with no padding at all; the static window pads and moves them (test above)."""
    run = run_pipeline(tmp_path, dataset[0], 1, traced_path, tiny_model_dir, "--max_samples", 100_000)
    model = Wav2Vec2ForCTC.from_pretrained(tiny_model_dir).eval()
    batch_map = read_map(run.data_path, 1)
    manifest = RunDir(run.output_dir, LogitsManifest).require_manifest()
    stitched = dict(utterance_logits(run.output_dir, batch_map, manifest))
    for utt_id, entry in batch_map.utterances.items():
        if entry.num_samples > 100_000:
            continue  # chunked: windows of 100000 samples, stitched (tested above)
        audio, _ = sf.read(entry.audio, dtype="float32")
        normalized = Wav2Vec2FeatureExtractor()(audio, sampling_rate=16_000, return_tensors="np").input_values[0]
        np.testing.assert_allclose(stitched[utt_id], eager_logits(model, [normalized])[0], atol=1e-4, rtol=1e-4)
