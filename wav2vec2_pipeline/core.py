"""The pipeline in memory: plan -> rows of audio -> backend -> stitch -> decode.

The file stages run the same pieces with files between them (preprocess writes the rows `make_batch` builds,
compile.py runs them with `run_batch`, postprocess stitches and decodes); a benchmark or a driver that holds the
audio itself calls `transcribe`, and scores with `scoring`.
"""

import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

import numpy as np

from wav2vec2_pipeline.audio import fit_length, normalize
from wav2vec2_pipeline.bins import DTYPE
from wav2vec2_pipeline.ctc import greedy_decode
from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.inference import calibration_bins, calibration_from, rows_taken, run_batch
from wav2vec2_pipeline.model import BASE_960H_VOCAB
from wav2vec2_pipeline.planning import Bin, Layout, plan_bins, stitch
from wav2vec2_pipeline.provenance import bytes_sha256

if TYPE_CHECKING:
    from transformers import Wav2Vec2FeatureExtractor

    from wav2vec2_pipeline.backends import Backend, Calibration


def make_batch(bin_: Bin, batch_size: int, normalized_audio: Callable[[str], np.ndarray]) -> np.ndarray:
    """One bin's rows, each a window of its utterance's normalised audio, zero-padded; missing rows stay zero."""
    rows = np.zeros((batch_size, bin_.samples), dtype=np.float32)
    for index, row in enumerate(bin_.rows):
        rows[index] = fit_length(normalized_audio(row.utt_id)[row.start :], bin_.samples)
    return rows


def calibration_of_plan(bins: Sequence[Bin], batch_size: int, normalized: Callable[[str], np.ndarray]) -> "Calibration":
    """What `inference.calibration_of` reads from the input bins, made in memory from the same bins of a plan: the
    same rows and the same key (the sha256 of the input bins preprocess would write), so the quantised model is
    the one compile.py would make."""
    picked = calibration_bins(bins, batch_size)
    batches = [np.ascontiguousarray(make_batch(b, batch_size, normalized), DTYPE) for b in picked]
    taken = [(bytes_sha256(batch.tobytes()), rows_taken(len(b.rows), len(picked)))
             for b, batch in zip(picked, batches, strict=True)]  # fmt: skip
    return calibration_from(taken, lambda: batches)


def calibration(
    audio: Mapping[str, np.ndarray], *, batch_size: int, layout: Layout, feature_extractor: "Wav2Vec2FeatureExtractor"
) -> "Calibration":
    """The speech a quantised backend calibrates on when it transcribes `audio` laid out by `layout`."""
    plan = plan_bins({u: len(a) for u, a in audio.items()}, batch_size, layout)
    return calibration_of_plan(plan.bins, batch_size, lambda utt_id: normalize(audio[utt_id], feature_extractor))


def transcribe(
    audio: Mapping[str, np.ndarray],
    backend: "Backend",
    *,
    batch_size: int,
    layout: Layout,
    feature_extractor: "Wav2Vec2FeatureExtractor",
    vocab: Sequence[str] = BASE_960H_VOCAB,
) -> dict[str, str]:
    """Text of every utterance (16 kHz float32 audio by id) on a loaded backend, laid out as preprocess would
    lay it out; an utterance that `layout` skips has no entry, one too short for a frame an empty text."""
    if batch_size < 1:
        raise PipelineError(f"batch_size must be at least 1, got {batch_size}")
    plan = plan_bins({utt_id: len(samples) for utt_id, samples in audio.items()}, batch_size, layout)

    @functools.lru_cache(maxsize=2)  # an utterance's windows are consecutive rows
    def normalized(utt_id: str) -> np.ndarray:
        return normalize(audio[utt_id], feature_extractor)

    def rows() -> Iterator[tuple[str, tuple[int, int], np.ndarray]]:
        for bin_ in plan.bins:
            logits = run_batch(backend, make_batch(bin_, batch_size, normalized), len(bin_.rows))
            for index, row in enumerate(bin_.rows):
                yield row.utt_id, row.keep, logits[index]

    texts = {utt_id: greedy_decode(logits, vocab) for utt_id, logits in stitch(rows())}
    return texts | dict.fromkeys(plan.empty, "")
