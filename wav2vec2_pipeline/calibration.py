"""The speech a quantised backend calibrates on: which rows of a run, and the key that names them.

The same rows whether they are read from input bins (compile.py), made from a plan in memory (the Ray driver's
fused mode) or from audio held in memory (core.transcribe), so each path makes the same quantised model."""

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from wav2vec2_pipeline.audio import normalize
from wav2vec2_pipeline.binfile import DTYPE, as_array, read_bytes
from wav2vec2_pipeline.binrows import make_batch
from wav2vec2_pipeline.manifests import BinRecord, changed_input_bin
from wav2vec2_pipeline.planning import Bin, Layout, plan_bins
from wav2vec2_pipeline.provenance import bytes_sha256, digest

if TYPE_CHECKING:
    from transformers import Wav2Vec2FeatureExtractor

MIN_BINS = 4
"""Bins, at least, spread over the plan: plans of whole utterances or buckets are sorted by length, so every length
is seen."""
ROWS = 32
"""Rows of speech a quantised model is calibrated on (about 4 minutes at test-clean's lengths); editing the audio
of one of them changes the quantised model, and so every logits bin of the run."""
T = TypeVar("T")


@dataclass(frozen=True)
class Calibration:
    """Speech that a quantised model takes its activation scales from, and a digest of it: the quantised model
    depends on it, so it names the cached model and keys the logits."""

    key: str
    rows: Callable[[], Iterable[np.ndarray]]
    """Each [1, samples] float32, normalised as the model's input."""


def pick_bins(bins: Sequence[T], batch_size: int) -> list[T]:
    """Enough of `bins` for ROWS rows and at least MIN_BINS, spread evenly over the plan (all of them in a
    smaller run)."""
    count = min(len(bins), max(MIN_BINS, -(-ROWS // batch_size)))
    return [bins[i] for i in sorted({round(x) for x in np.linspace(0, len(bins) - 1, count)})]


def rows_taken(rows_used: int, bins_picked: int) -> int:
    """How many rows of a calibration bin calibrate: its speech rows, up to an even share of ROWS."""
    return min(rows_used, -(-ROWS // bins_picked))


def of_batches(taken: list[tuple[str, int]], batches: Callable[[], Iterable[np.ndarray]]) -> Calibration:
    """Calibration on the first rows of each batch, as many as `taken` says beside the batch's sha256: the key
    names both, so other speech or another count is another quantised model."""

    def rows() -> Iterator[np.ndarray]:
        for (_, count), batch in zip(taken, batches(), strict=True):
            yield from (row[None] for row in batch[:count])

    return Calibration(digest({"bins": [[sha256, count] for sha256, count in taken]}), rows)


def of_input_bins(input_dir: Path, bins: list[BinRecord], batch_size: int) -> Calibration:
    """The speech rows of the calibration bins of a preprocess run: the same for every shard of the run, so one
    quantised model serves them all."""
    picked = pick_bins(bins, batch_size)

    def batches() -> Iterator[np.ndarray]:
        for record in picked:
            data = read_bytes(input_dir / record.name, record.shape, "Re-run preprocess.")
            if bytes_sha256(data) != record.sha256:  # it names the quantised model: never calibrate on other bytes
                raise changed_input_bin(str(input_dir / record.name))
            yield as_array(data, record.shape)

    return of_batches([(r.sha256, rows_taken(r.rows_used or r.shape[0], len(picked))) for r in picked], batches)


def of_plan(bins: Sequence[Bin], batch_size: int, normalized: Callable[[str], np.ndarray]) -> Calibration:
    """What `of_input_bins` reads from the input bins, made in memory from the same bins of a plan: the same rows
    and the same key (the sha256 of the input bins preprocess would write), so the quantised model is the one
    compile.py would make."""
    picked = pick_bins(bins, batch_size)
    batches = [np.ascontiguousarray(make_batch(b, normalized), DTYPE) for b in picked]
    taken = [(bytes_sha256(batch.tobytes()), rows_taken(len(b.rows), len(picked)))
             for b, batch in zip(picked, batches, strict=True)]  # fmt: skip
    return of_batches(taken, lambda: batches)


def of_audio(
    audio: Mapping[str, np.ndarray], *, batch_size: int, layout: Layout, feature_extractor: "Wav2Vec2FeatureExtractor"
) -> Calibration:
    """The speech a quantised backend calibrates on when it transcribes `audio` laid out by `layout`."""
    plan = plan_bins({u: len(a) for u, a in audio.items()}, batch_size, layout)
    return of_plan(plan.bins, batch_size, lambda utt_id: normalize(audio[utt_id], feature_extractor))
