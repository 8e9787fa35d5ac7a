"""Which audio goes into which row of which bin: long-utterance modes, windows, length buckets.

Pure functions over utterance lengths, so the layout and its cost (padding, overlap, lost speech) can be
computed for a whole dataset without reading audio.
"""

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from transformers import Wav2Vec2Config

from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.model import num_frames

SKIP, CUT, CHUNK = "skip", "cut", "chunk"
LONG_AUDIO_MODES = (SKIP, CUT, CHUNK)
DEFAULT_BUCKET_SAMPLES = (48_000, 80_000, 112_000, 160_000, 224_000, 320_000, 560_000)
"""3, 5, 7, 10, 14, 20 and 35 s: each about 1.4 times the last, so a row is on average about 20% padding
over LibriSpeech test-clean (benchmarks/padding_waste.py); every utterance there (at most 34.96 s) fits."""


@dataclass(frozen=True)
class Row:
    utt_id: str
    start: int
    """First sample of the utterance in this row."""
    keep: tuple[int, int]
    """Frames [a, b) of this row's logits that belong to the utterance; the rest are overlap or padding."""


@dataclass(frozen=True)
class Bin:
    samples: int
    """Row length: the bin is batch_size x samples float32."""
    rows: list[Row]


@dataclass(frozen=True)
class Plan:
    bins: list[Bin]
    skipped: list[str]
    cut: list[str]
    chunked: list[str]


def samples_per_frame(config: Wav2Vec2Config) -> int:
    return math.prod(config.conv_stride)


def window_rows(
    utt_id: str, num_samples: int, window: int, mode: str, stride_frames: int, config: Wav2Vec2Config
) -> list[Row]:
    """The rows of one utterance: one row if it fits the window, else none (skip), its start (cut), or
    overlapping windows (chunk) whose kept frames tile the utterance's frames exactly once.

    Chunk windows start every `window_frames - 2 * stride_frames` frames; each keeps its middle, dropping
    `stride_frames` of context on either side, except at the utterance's ends (as the HF ASR pipeline's
    chunk_length_s / stride_length_s does).
    """
    if num_samples <= window:
        return [Row(utt_id, 0, (0, num_frames(num_samples, config)))]
    if mode == SKIP:
        return []
    if mode == CUT:
        return [Row(utt_id, 0, (0, num_frames(window, config)))]
    step_frames = num_frames(window, config) - 2 * stride_frames
    if stride_frames < 0 or step_frames < 1:
        raise PipelineError(
            f"--stride_frames {stride_frames} leaves no frames to keep in a window of {window} samples "
            f"({num_frames(window, config)} frames); use at most {(num_frames(window, config) - 1) // 2}"
        )
    total_frames = num_frames(num_samples, config)
    rows = []
    for index in range(math.ceil(max(0, num_samples - window) / (step_frames * samples_per_frame(config))) + 1):
        first_frame = index * step_frames
        start = first_frame * samples_per_frame(config)
        is_last = start + window >= num_samples
        end = total_frames - first_frame if is_last else stride_frames + step_frames
        rows.append(Row(utt_id, start, (0 if index == 0 else stride_frames, end)))
    return rows


def stitch(rows: Iterable[tuple[str, tuple[int, int], np.ndarray]]) -> dict[str, np.ndarray]:
    """Each utterance's logits (frames x vocab): the kept frames `[a, b)` of its rows, in row order."""
    pieces: dict[str, list[np.ndarray]] = {}
    for utt_id, (start, end), logits in rows:
        pieces.setdefault(utt_id, []).append(logits[start:end])
    return {utt_id: np.concatenate(parts) for utt_id, parts in pieces.items()}


def bucket_of(num_samples: int, buckets: tuple[int, ...]) -> int:
    """The shortest bucket that holds the utterance; the longest for one longer than all."""
    return next((bucket for bucket in sorted(buckets) if num_samples <= bucket), max(buckets))


def plan_bins(
    lengths: dict[str, int],
    batch_size: int,
    windows: tuple[int, ...],
    mode: str,
    stride_frames: int,
    config: Wav2Vec2Config,
) -> Plan:
    """All bins. One window: utterances in id order, as the reference does. Several (buckets): each
    utterance in the shortest bucket that holds it, sorted by length, so rows carry little padding."""
    if batch_size < 1:
        raise PipelineError(f"--batch_size must be at least 1, got {batch_size}")
    if mode not in LONG_AUDIO_MODES:
        raise PipelineError(f"--long_audio {mode!r}: choose one of {', '.join(LONG_AUDIO_MODES)}")
    if not windows or min(windows) < 1:
        raise PipelineError(f"window lengths must be positive, got {windows}")
    order = sorted(lengths) if len(windows) == 1 else sorted(lengths, key=lambda u: (lengths[u], u))
    bins: list[Bin] = []
    for window in sorted(set(windows)):
        rows = [
            row
            for utt_id in order
            if bucket_of(lengths[utt_id], windows) == window
            for row in window_rows(utt_id, lengths[utt_id], window, mode, stride_frames, config)
        ]
        bins += [Bin(window, rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)]
    longest = max(windows)
    too_long = [utt_id for utt_id in sorted(lengths) if lengths[utt_id] > longest]
    return Plan(
        bins=bins,
        skipped=too_long if mode == SKIP else [],
        cut=too_long if mode == CUT else [],
        chunked=too_long if mode == CHUNK else [],
    )


@dataclass(frozen=True)
class PlanCost:
    computed_samples: int
    """Samples the model runs over: every row of every bin, pad rows included."""
    padding_samples: int
    overlap_samples: int
    """Speech computed more than once (chunk windows' context)."""
    speech_samples: int
    lost_samples: int
    """Speech in no row: skipped utterances, and the part of cut ones past the window."""

    @property
    def padding_share(self) -> float:
        return self.padding_samples / self.computed_samples

    @property
    def overlap_share(self) -> float:
        return self.overlap_samples / self.computed_samples

    @property
    def lost_share(self) -> float:
        return self.lost_samples / self.speech_samples


def plan_cost(plan: Plan, lengths: dict[str, int], batch_size: int) -> PlanCost:
    computed = sum(batch_size * b.samples for b in plan.bins)
    in_rows = sum(min(b.samples, lengths[r.utt_id] - r.start) for b in plan.bins for r in b.rows)
    speech = sum(lengths.values())
    longest = max(b.samples for b in plan.bins) if plan.bins else 0
    lost = sum(lengths[u] for u in plan.skipped) + sum(lengths[u] - longest for u in plan.cut)
    return PlanCost(computed, computed - in_rows, in_rows - (speech - lost), speech, lost)
