"""Which audio goes into which row of which bin: long-utterance modes, windows, length buckets.

Pure functions over utterance lengths, so the layout and its cost (padding, overlap, lost speech) can be
computed for a whole dataset without reading audio.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.model import Geometry

SKIP, CUT, CHUNK = "skip", "cut", "chunk"
LONG_AUDIO_MODES = (SKIP, CUT, CHUNK)
WHOLE_LAYOUT, BUCKET_LAYOUT, STATIC_LAYOUT = "whole", "bucket", "static"
LAYOUTS = (WHOLE_LAYOUT, BUCKET_LAYOUT, STATIC_LAYOUT)
LONG_WINDOW = 560_000
"""35 s: whole utterances up to this length (test-clean's longest is 34.96 s; base-960h was fine-tuned on whole
LibriSpeech utterances up to 35 s); longer recordings are chunked into windows of this length."""
DEFAULT_BIN_SAMPLES = 1_600_000
"""Samples in a bin of the whole layout (rows x row length): 100 s of audio, as much as the Ascend guide's bins
of 16 x 100000, so a bin of 35 s rows holds 2 rows, not --batch_size, and the convolutions' activations (most of
the memory) stay those of a 16 x 6.25 s bin."""
DEFAULT_BUCKET_SAMPLES = (48_000, 80_000, 112_000, 160_000, 224_000, 320_000, 560_000)
"""3, 5, 7, 10, 14, 20 and 35 s: each about 1.4 times the last, so a row is on average about 20% padding
over LibriSpeech test-clean (benchmarks/padding_waste.py); every utterance there (at most 34.96 s) fits."""


@dataclass(frozen=True)
class Layout:
    """How utterances become rows: the window length(s), what happens past the longest, chunk context.
    Checked against the model when built, so a bad option fails before any audio is read."""

    windows: tuple[int, ...]
    long_audio: str = SKIP
    stride_frames: int | None = None
    """Context frames dropped on each side of a chunk window; None: a sixth of the window, as HF does."""
    geometry: Geometry = field(default_factory=Geometry)
    exact: bool = False
    """Utterances sorted by length, each bin's rows as long as its longest (no fixed lengths): the least
    padding, for backends that take any shape. One window, the longest row; longer utterances per long_audio."""
    bin_samples: int | None = None
    """exact only: at most this many samples in a bin (rows x row length), so a bin of long rows holds fewer
    rows; None: --batch_size rows whatever their length."""

    def __post_init__(self) -> None:
        if self.exact and len(self.windows) > 1:
            raise PipelineError("whole utterances and length buckets are two row layouts: choose one")
        if self.bin_samples is not None and not self.exact:
            raise PipelineError("--bin_samples sizes the bins of --layout whole only; leave it out here")
        if self.bin_samples is not None and self.bin_samples < max(self.windows, default=0):
            raise PipelineError(
                f"--bin_samples {self.bin_samples} is less than one row of {max(self.windows)} samples "
                "(--max_samples): a bin must hold its longest row"
            )
        if self.long_audio not in LONG_AUDIO_MODES:
            raise PipelineError(f"--long_audio {self.long_audio!r}: choose one of {', '.join(LONG_AUDIO_MODES)}")
        if not self.windows:
            raise PipelineError("no window length given; pass --max_samples or --bucket_samples")
        field_samples = self.geometry.receptive_field
        short = [w for w in self.windows if w < field_samples]
        if short:
            raise PipelineError(
                f"a window of {short[0]} samples is shorter than the model's receptive field ({field_samples} "
                f"samples, one frame): use windows of at least {field_samples} samples"
            )
        if self.long_audio == CHUNK and self.stride_frames is None and self.stride == 0:
            raise PipelineError(
                f"windows of {max(self.windows)} samples ({self.window_frames} frames) are too short to chunk with "
                "context on both sides: use longer windows, or pass --stride_frames 0 to chunk without context"
            )
        if self.stride_frames is not None:
            most = (self.window_frames - 1) // 2
            if not 0 <= self.stride_frames <= most:
                raise PipelineError(
                    f"--stride_frames {self.stride_frames} must be between 0 and {most} for a window of "
                    f"{max(self.windows)} samples ({self.window_frames} frames): a chunk must keep a frame"
                )

    @classmethod
    def whole(cls, geometry: Geometry | None = None) -> "Layout":
        """preprocess's default layout: whole utterances up to 35 s, longer ones chunked, bins of 100 s of audio."""
        return cls((LONG_WINDOW,), CHUNK, geometry=geometry or Geometry(), exact=True, bin_samples=DEFAULT_BIN_SAMPLES)

    @property
    def window_frames(self) -> int:
        return self.geometry.num_frames(max(self.windows))

    @property
    def stride(self) -> int:
        return self.window_frames // 6 if self.stride_frames is None else self.stride_frames


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
    """Row length: the bin is height x samples float32."""
    rows: list[Row]
    height: int
    """Rows the bin holds: --batch_size for static shapes (the rows past `rows` are zero padding), else as many
    as it has."""


@dataclass(frozen=True)
class Plan:
    bins: list[Bin]
    skipped: list[str]
    cut: list[str]
    chunked: list[str]
    empty: list[str]
    """Utterances too short to give one frame (shorter than the receptive field, or no audio): no row,
    transcribed as empty."""


def window_rows(utt_id: str, num_samples: int, window: int, layout: Layout) -> list[Row]:
    """The rows of one utterance: none if it is too short for one frame; one row if it fits the window;
    else none (skip), its start (cut), or overlapping windows (chunk) whose kept frames tile the utterance's
    frames exactly once.

    Chunk windows start every `window_frames - 2 * stride_frames` frames; each keeps its middle, dropping
    `stride_frames` of context on either side, except at the utterance's ends (as the HF ASR pipeline's
    chunk_length_s / stride_length_s does).
    """
    geometry, stride_frames = layout.geometry, layout.stride
    total_frames = geometry.num_frames(num_samples)
    if total_frames == 0:
        return []
    if num_samples <= window:
        return [Row(utt_id, 0, (0, total_frames))]
    if layout.long_audio == SKIP:
        return []
    if layout.long_audio == CUT:
        return [Row(utt_id, 0, (0, geometry.num_frames(window)))]
    step_frames = geometry.num_frames(window) - 2 * stride_frames
    step_samples = step_frames * geometry.samples_per_frame
    rows = []
    for index in range(-(-max(0, num_samples - window) // step_samples) + 1):
        first_frame = index * step_frames
        start = first_frame * geometry.samples_per_frame
        is_last = start + window >= num_samples
        end = total_frames - first_frame if is_last else stride_frames + step_frames
        rows.append(Row(utt_id, start, (0 if index == 0 else stride_frames, end)))
    return rows


def stitch(rows: Iterable[tuple[str, tuple[int, int], np.ndarray]]) -> Iterator[tuple[str, np.ndarray]]:
    """Each utterance's logits (frames x vocab), as soon as its last row has passed: the kept frames
    `[a, b)` of its rows, in row order. A plan puts an utterance's rows next to each other, so only one
    utterance's logits are held at a time; rows of one utterance that are not adjacent are an error."""
    current, pieces, finished = None, [], set()
    for utt_id, (start, end), logits in rows:
        if utt_id != current:
            if current is not None:
                yield current, np.concatenate(pieces)
                finished.add(current)
            if utt_id in finished:
                raise PipelineError(f"the rows of utterance {utt_id} are not adjacent in the batch map")
            current, pieces = utt_id, []
        pieces.append(logits[start:end])
    if current is not None:
        yield current, np.concatenate(pieces)


def bucket_of(num_samples: int, buckets: tuple[int, ...]) -> int:
    """The shortest bucket that holds the utterance; the longest for one longer than all."""
    return next((bucket for bucket in sorted(buckets) if num_samples <= bucket), max(buckets))


def plan_bins(lengths: dict[str, int], batch_size: int, layout: Layout) -> Plan:
    """All bins. One window: utterances in id order, as the reference does. Several (buckets): each
    utterance in the shortest bucket that holds it, sorted by length, so rows carry little padding. Exact
    (whole utterances): sorted by length, each bin as long as its longest row and holding as many rows as
    `layout.bin_samples` allows, up to `batch_size`."""
    if batch_size < 1:
        raise PipelineError(f"--batch_size must be at least 1, got {batch_size}")
    windows, mode = layout.windows, layout.long_audio
    by_length = len(windows) > 1 or layout.exact
    order = sorted(lengths, key=lambda u: (lengths[u], u)) if by_length else sorted(lengths)
    bins: list[Bin] = []
    for window in sorted(set(windows)):
        rows = [
            row
            for utt_id in order
            if bucket_of(lengths[utt_id], windows) == window
            for row in window_rows(utt_id, lengths[utt_id], window, layout)
        ]
        if layout.exact:  # each bin as long as its longest row: a chunk window, or a whole utterance
            row_samples = [min(window, lengths[r.utt_id] - r.start) for r in rows]
            bins += [Bin(samples, group, len(group)) for samples, group in
                     _fill_bins(rows, row_samples, batch_size, layout.bin_samples)]  # fmt: skip
        else:
            bins += [Bin(window, rows[i : i + batch_size], batch_size) for i in range(0, len(rows), batch_size)]
    longest = max(windows)
    too_long = [utt_id for utt_id in sorted(lengths) if lengths[utt_id] > longest]
    return Plan(
        bins=bins,
        skipped=too_long if mode == SKIP else [],
        cut=too_long if mode == CUT else [],
        chunked=too_long if mode == CHUNK else [],
        empty=[utt_id for utt_id in sorted(lengths) if layout.geometry.num_frames(lengths[utt_id]) == 0],
    )


def _fill_bins(
    rows: list[Row], row_samples: list[int], batch_size: int, budget: int | None
) -> Iterator[tuple[int, list[Row]]]:
    """Rows in order into bins of at most `batch_size` rows and at most `budget` samples (rows x the longest
    row), each with its length: rows sorted by length fill each bin as far as both allow."""
    group: list[Row] = []
    longest = 0
    for row, samples in zip(rows, row_samples, strict=True):
        grown = max(longest, samples)
        if group and (len(group) == batch_size or (budget is not None and (len(group) + 1) * grown > budget)):
            yield longest, group
            group, grown = [], samples
        group.append(row)
        longest = grown
    if group:
        yield longest, group


@dataclass(frozen=True)
class PlanCost:
    computed_samples: int
    """Samples the model runs over: every row of every bin, pad rows included."""
    padding_samples: int
    overlap_samples: int
    """Speech computed more than once (chunk windows' context)."""
    speech_samples: int
    lost_samples: int
    """Speech in no row: skipped and empty utterances, and the part of cut ones past the window."""

    @property
    def padding_share(self) -> float:
        return self.padding_samples / self.computed_samples

    @property
    def overlap_share(self) -> float:
        return self.overlap_samples / self.computed_samples

    @property
    def lost_share(self) -> float:
        return self.lost_samples / self.speech_samples


def plan_cost(plan: Plan, lengths: dict[str, int]) -> PlanCost:
    computed = sum(b.height * b.samples for b in plan.bins)
    in_rows = sum(min(b.samples, lengths[r.utt_id] - r.start) for b in plan.bins for r in b.rows)
    speech = sum(lengths.values())
    longest = max(b.samples for b in plan.bins) if plan.bins else 0
    lost = sum(lengths[u] for u in plan.skipped + plan.empty) + sum(lengths[u] - longest for u in plan.cut)
    return PlanCost(computed, computed - in_rows, in_rows - (speech - lost), speech, lost)
