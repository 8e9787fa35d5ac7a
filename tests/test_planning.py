import pytest

from wav2vec2_pipeline.errors import PipelineError
from wav2vec2_pipeline.model import num_frames
from wav2vec2_pipeline.planning import (
    CHUNK,
    CUT,
    DEFAULT_BIN_SAMPLES,
    LONG_WINDOW,
    SKIP,
    Layout,
    bucket_of,
    plan_bins,
    plan_cost,
    window_rows,
)

WINDOW = 100_000


def covered_frames(rows) -> list[int]:
    """Global frame index of every kept frame, in stitching order (a window starts on a frame boundary)."""
    return [row.start // 320 + j for row in rows for j in range(*row.keep)]


@pytest.mark.parametrize("num_samples", [400, 99_999, 100_000, 100_001, 166_560, 166_561, 298_560, 320_000, 559_360])
@pytest.mark.parametrize("stride_frames", [0, 10, 52, 100])
def test_chunk_windows_cover_every_frame_exactly_once(num_samples, stride_frames) -> None:
    rows = window_rows("u", num_samples, WINDOW, Layout((WINDOW,), CHUNK, stride_frames))
    assert covered_frames(rows) == list(range(num_frames(num_samples)))
    assert rows[-1].start + WINDOW >= num_samples  # the last window reaches the end of the audio
    assert all(row.keep[1] <= num_frames(WINDOW) for row in rows)


def test_chunk_windows_keep_the_middle_and_drop_stride_frames_of_context() -> None:
    rows = window_rows("u", 320_000, WINDOW, Layout((WINDOW,), CHUNK, 52))
    assert [row.start for row in rows] == [0, 66_560, 133_120, 199_680, 266_240]  # every 312 - 2 x 52 frames
    assert [row.keep for row in rows] == [(0, 260), (52, 260), (52, 260), (52, 260), (52, 167)]


def test_skip_and_cut() -> None:
    assert window_rows("u", 120_000, WINDOW, Layout((WINDOW,), SKIP, 52)) == []
    (row,) = window_rows("u", 120_000, WINDOW, Layout((WINDOW,), CUT, 52))
    assert row.start == 0 and row.keep == (0, 312)
    (short,) = window_rows("u", 16_000, WINDOW, Layout((WINDOW,), SKIP, 52))
    assert short.keep == (0, 49)  # frames over padding are not kept


@pytest.mark.parametrize("stride_frames", [-1, 156, 10_000])
def test_a_stride_that_leaves_nothing_to_keep_is_refused_when_the_layout_is_built(stride_frames) -> None:
    with pytest.raises(PipelineError, match="between 0 and 155 for a window of 100000 samples"):
        Layout((WINDOW,), CHUNK, stride_frames)


@pytest.mark.parametrize("windows", [(399,), (0,), (-5,), (48_000, 300)])
def test_a_window_shorter_than_the_receptive_field_is_refused(windows) -> None:
    with pytest.raises(PipelineError, match="shorter than the model's receptive field \\(400 samples"):
        Layout(windows, CHUNK)


def test_audio_too_short_for_one_frame_gets_no_row_and_is_listed_as_empty() -> None:
    lengths = {"silent": 0, "click": 399, "one_frame": 400, "a": 50_000}
    plan = plan_bins(lengths, 2, Layout((WINDOW,), CHUNK))
    assert [[row.utt_id for row in b.rows] for b in plan.bins] == [["a", "one_frame"]]
    assert plan.empty == ["click", "silent"] and plan.bins[0].rows[1].keep == (0, 1)
    assert plan_cost(plan, lengths).lost_samples == 399


def test_buckets_pick_the_shortest_that_holds() -> None:
    buckets = (64_000, 128_000, 256_000)
    assert [bucket_of(n, buckets) for n in (1, 64_000, 64_001, 256_000, 900_000)] == [
        64_000, 64_000, 128_000, 256_000, 256_000,
    ]  # fmt: skip


def test_plan_batches_rows_in_order_and_pads_only_the_last_bin() -> None:
    lengths = {"a": 50_000, "b": 120_000, "c": 90_000, "d": 10_000}
    plan = plan_bins(lengths, 3, Layout((WINDOW,), SKIP, 52))
    assert [[row.utt_id for row in b.rows] for b in plan.bins] == [["a", "c", "d"]]
    assert plan.skipped == ["b"] and plan.cut == plan.chunked == []
    chunked = plan_bins(lengths, 2, Layout((WINDOW,), CHUNK, 52))
    assert [[row.utt_id for row in b.rows] for b in chunked.bins] == [["a", "b"], ["b", "c"], ["d"]]
    assert chunked.chunked == ["b"]


def test_bucketed_plan_sorts_by_length_within_buckets() -> None:
    lengths = {"a": 50_000, "b": 120_000, "c": 30_000, "d": 60_000, "e": 70_000}
    plan = plan_bins(lengths, 2, Layout((64_000, 128_000), CHUNK, 26))
    assert [(b.samples, [row.utt_id for row in b.rows]) for b in plan.bins] == [
        (64_000, ["c", "a"]), (64_000, ["d"]), (128_000, ["e", "b"]),
    ]  # fmt: skip
    assert plan.chunked == []


def test_plan_cost_counted_by_hand() -> None:
    lengths = {"a": 50_000, "b": 120_000, "c": 90_000}
    skip = plan_cost(plan_bins(lengths, 2, Layout((WINDOW,), SKIP, 52)), lengths)
    # one bin of 2 x 100000 holding a and c: 60000 samples of padding; b lost
    assert (skip.computed_samples, skip.padding_samples, skip.overlap_samples) == (200_000, 60_000, 0)
    assert skip.lost_samples == 120_000 and skip.lost_share == pytest.approx(120 / 260)
    cut = plan_cost(plan_bins(lengths, 2, Layout((WINDOW,), CUT, 52)), lengths)
    # bins [a, b] and [c, pad]: rows hold 50000 + 100000 + 90000; b loses 20000
    assert (cut.computed_samples, cut.padding_samples, cut.lost_samples) == (400_000, 160_000, 20_000)
    chunk = plan_cost(plan_bins(lengths, 2, Layout((WINDOW,), CHUNK, 52)), lengths)
    # b: windows at 0 and 66560 hold 100000 + 53440 samples, 33440 of them twice
    assert (chunk.computed_samples, chunk.overlap_samples, chunk.lost_samples) == (400_000, 33_440, 0)
    assert chunk.padding_samples == 400_000 - (50_000 + 100_000 + 53_440 + 90_000)


def test_exact_bins_are_as_long_as_their_longest_row_with_utterances_sorted_by_length() -> None:
    lengths = {"a": 50_000, "b": 250_000, "c": 30_000, "d": 31_000, "e": 90_000}
    plan = plan_bins(lengths, 2, Layout((WINDOW,), CHUNK, exact=True))
    assert [[row.utt_id for row in b.rows] for b in plan.bins] == [["c", "d"], ["a", "e"], ["b", "b"], ["b", "b"]]
    assert [b.samples for b in plan.bins] == [31_000, 90_000, WINDOW, WINDOW]
    alone = plan_bins(lengths, 1, Layout((WINDOW,), CHUNK, exact=True))
    last_window = 250_000 - 199_680
    assert [b.samples for b in alone.bins] == [30_000, 31_000, 50_000, 90_000, WINDOW, WINDOW, WINDOW, last_window]
    assert covered_frames([r for b in plan.bins for r in b.rows if r.utt_id == "b"]) == list(range(num_frames(250_000)))
    with pytest.raises(PipelineError, match="choose one"):
        Layout((48_000, 96_000), CHUNK, exact=True)


def test_whole_layout_bins_hold_as_many_rows_as_the_sample_budget_allows() -> None:
    """Sorted by length; short rows fill a bin to --batch_size, 35 s rows only to the budget, so no bin of long rows
    is larger than the budget however large the batch size."""
    lengths = {f"s{i:02d}": 16_000 + i for i in range(20)} | {f"l{i}": 560_000 - i for i in range(5)}
    layout = Layout.whole()
    plan = plan_bins(lengths, 16, layout)
    assert [(b.height, b.samples) for b in plan.bins] == [(16, 16_015), (4, 16_019), (2, 559_997), (2, 559_999),
                                                          (1, 560_000)]  # fmt: skip
    assert all(len(b.rows) == b.height and b.height * b.samples <= DEFAULT_BIN_SAMPLES for b in plan.bins)
    assert [r.utt_id for b in plan.bins for r in b.rows] == sorted(lengths, key=lengths.get)
    unbounded = plan_bins(lengths, 16, Layout((LONG_WINDOW,), CHUNK, exact=True))
    assert [b.height for b in unbounded.bins] == [16, 9]


def test_a_bin_budget_smaller_than_one_row_is_refused() -> None:
    with pytest.raises(PipelineError, match="less than one row of 560000 samples"):
        Layout((LONG_WINDOW,), CHUNK, exact=True, bin_samples=LONG_WINDOW - 1)
    with pytest.raises(PipelineError, match="--bin_samples sizes the bins of --layout whole only"):
        Layout((100_000,), SKIP, bin_samples=10**6)
